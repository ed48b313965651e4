//! `cargo run --release -p salesync-bench -- [--duration 30s --warmup 5s
//! --rate 1000 --clients 8 --write docs/benchmarks.md …]`: runs the
//! benchmark phases, prints the markdown table, optionally writes it into a
//! document. A command-line tool, not a service: it logs nothing, shows
//! progress bars, and exits non-zero when an accepted sale never arrived.

use clap::Parser;
use salesync_bench::config::BenchArgs;
use salesync_bench::report;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = BenchArgs::parse();
    if let Err(e) = args.validate() {
        eprintln!("salesync-bench: {e}");
        std::process::exit(2);
    }
    let result = salesync_bench::run(&args).await?;
    let table = report::render(&result);
    println!("\n{table}");
    if let Some(path) = &args.write {
        let existing = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        std::fs::write(path, report::splice(&existing, &table))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        eprintln!("salesync-bench: results written to {}", path.display());
    }
    let losses = result.losses();
    if !losses.is_empty() {
        eprintln!("salesync-bench: accepted but never delivered: {losses:?}");
        std::process::exit(1);
    }
    Ok(())
}
