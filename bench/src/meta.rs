//! Facts about the run that make a results table reproducible: the date, the
//! machine (cores, CPU model, load average), the git commit and the exact
//! command. Reading them never fails the run; unknowns print as "unknown".

use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    pub date: String,
    pub cores: usize,
    pub cpu_model: String,
    pub commit: String,
    pub command: String,
    pub load_before: Option<f64>,
    pub load_after: Option<f64>,
}

impl Meta {
    /// Everything but `load_after`, which `finish` fills in.
    pub fn collect(load_before: Option<f64>) -> Self {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."));
        Self {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            cores: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(0),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|c| cpu_model(&c))
                .unwrap_or_else(|| "unknown CPU".into()),
            commit: git_commit(workspace).unwrap_or_else(|| "unknown".into()),
            command: command_line(std::env::args().skip(1)),
            load_before,
            load_after: None,
        }
    }
}

/// The first "model name" of /proc/cpuinfo.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name").then(|| v.trim().to_string())
    })
}

fn git(workspace: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(workspace)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Short commit hash, marked when tracked files differ from it.
fn git_commit(workspace: &Path) -> Option<String> {
    let hash = git(workspace, &["rev-parse", "--short", "HEAD"])?;
    let dirty = git(
        workspace,
        &["status", "--porcelain", "--untracked-files=no"],
    )
    .is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{hash} (+ uncommitted changes)")
    } else {
        hash
    })
}

/// The documented way to run the benchmark with these arguments.
pub fn command_line(args: impl Iterator<Item = String>) -> String {
    let mut cmd = String::from("cargo run --release -p salesync-bench --");
    for a in args {
        cmd.push(' ');
        cmd.push_str(&shell_quote(&a));
    }
    cmd
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconstructs_the_command() {
        for (args, want) in [
            (vec![], "cargo run --release -p salesync-bench --"),
            (
                vec!["--write", "docs/benchmarks.md"],
                "cargo run --release -p salesync-bench -- --write docs/benchmarks.md",
            ),
            (
                vec!["--service-env", "forwarder:RUST_LOG=warn,x=off"],
                "cargo run --release -p salesync-bench -- --service-env forwarder:RUST_LOG=warn,x=off",
            ),
            (
                vec!["--x", "a b", "it's", ""],
                r"cargo run --release -p salesync-bench -- --x 'a b' 'it'\''s' ''",
            ),
        ] {
            assert_eq!(command_line(args.into_iter().map(String::from)), want);
        }
    }

    #[test]
    fn cpu_model_from_cpuinfo() {
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model(info).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(cpu_model("processor : 0"), None);
    }
}
