//! salesync-chaos: the fault campaign of issue 3, from one command.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo run --release -p salesync-e2e --bin salesync-chaos -- --sales 20000 [--replicas 2] [--cluster 3] [--duration-limit 15m]
//! ```
//!
//! Runs its own PostgreSQL cluster and RabbitMQ node or `--cluster 3` nodes
//! (never the machine's shared ones), the five release binaries on them,
//! and posts a steady
//! stream of sales while it kills processes, stops and disconnects the
//! broker, restarts the database and makes targets misbehave. Ends with the
//! ledger: exit 0 when every accepted sale reached every target it should,
//! exactly once, and every service is ready again; 1 when not; 2 when the
//! campaign could not run. Ctrl-C or SIGTERM stop it and clean everything up.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use salesync_core::config::parse_duration;
use salesync_e2e::chaos::{self, CampaignConfig};

#[derive(Parser, Debug)]
#[command(
    about = "Chaos campaign: sales through the real services while processes, broker, database and targets fail; then the ledger"
)]
struct Args {
    /// How many sales the POS posts.
    #[arg(long, env = "CHAOS_SALES", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    sales: u64,
    /// Sales per second the POS aims at (half in batches, half single).
    #[arg(long, env = "CHAOS_RATE", default_value_t = 250.0, value_parser = parse_rate)]
    rate: f64,
    /// Processes per service (2 adds "kill two replicas at once").
    #[arg(long, env = "CHAOS_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=4))]
    replicas: u64,
    /// RabbitMQ nodes: 1, or a cluster of 3 (or 5) whose node leading the
    /// work queues is killed with SIGKILL and restarted, in place of the
    /// single node's stop_app/start_app.
    #[arg(long, env = "CHAOS_CLUSTER", default_value_t = 1, value_parser = parse_cluster)]
    cluster: usize,
    /// Bound on the whole run: posting and faults stop here, the drain gets
    /// what is left (at least 30 s), then the ledger is drawn up.
    #[arg(long, env = "CHAOS_DURATION_LIMIT", default_value = "15m", value_parser = parse_duration)]
    duration_limit: Duration,
    /// How long the slow target takes per request.
    #[arg(long, env = "CHAOS_SLOW_DELAY", default_value = "2s", value_parser = parse_duration)]
    slow_delay: Duration,
    /// How long a flaky target misbehaves per window.
    #[arg(long, env = "CHAOS_WINDOW", default_value = "6s", value_parser = parse_duration)]
    window: Duration,
    /// Sales per batch request.
    #[arg(long, env = "CHAOS_BATCH", default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    batch: u64,
    /// Concurrent POS clients.
    #[arg(long, env = "CHAOS_CLIENTS", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    clients: u64,
    /// Keep the service logs even when the ledger balances.
    #[arg(long)]
    keep_logs: bool,
    /// No progress bars (log lines instead), e.g. in CI.
    #[arg(long)]
    no_progress: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "'{s}': a rate is a positive number of sales per second"
        )),
    }
}

fn parse_cluster(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n @ (1 | 3 | 5)) => Ok(n),
        _ => Err(format!(
            "'{s}': 1 node, or a cluster of 3 or 5 (a quorum queue must keep a majority when one node is lost)"
        )),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let sales = usize::try_from(args.sales).unwrap_or(usize::MAX);
    let cfg = CampaignConfig {
        rate: args.rate,
        replicas: usize::try_from(args.replicas).unwrap_or(1),
        broker_nodes: args.cluster,
        duration_limit: args.duration_limit,
        slow_delay: args.slow_delay,
        window: args.window,
        batch: usize::try_from(args.batch).unwrap_or(50),
        clients: usize::try_from(args.clients).unwrap_or(8),
        keep_logs: args.keep_logs,
        show_progress: !args.no_progress && std::io::stderr().is_terminal(),
        ..CampaignConfig::full(sales)
    };
    // Dropping the campaign (on a signal) stops the services, the broker
    // node(s) and the database cluster, and removes them.
    let outcome = tokio::select! {
        r = chaos::run(&cfg) => Some(r),
        _ = interrupted() => None,
    };
    let Some(result) = outcome else {
        eprintln!("salesync-chaos: interrupted; everything it started has been stopped");
        return ExitCode::from(130);
    };
    match result {
        Ok(report) => {
            println!("{report}");
            if report.balanced() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("salesync-chaos: the campaign could not run: {e:#}");
            ExitCode::from(2)
        }
    }
}
