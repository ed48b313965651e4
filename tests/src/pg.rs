//! `PrivatePostgres`: a PostgreSQL cluster of the test's own, for campaigns
//! that restart or stop the database. The machine's shared PostgreSQL on 5432
//! is never touched: this cluster lives in its own temp dir (`initdb`), listens
//! on a free port of 127.0.0.1 (its Unix socket in the same dir), trusts local
//! connections as `postgres`, and is controlled with `pg_ctl`. It is stopped
//! and its directory removed on drop — also after a failure (the log is kept
//! then, for whoever investigates).
//!
//! `initdb` and `postgres` refuse to run as root; as root the harness runs
//! them as the `postgres` user (`runuser -u postgres --`) on a directory it
//! hands to that user. The binaries come from `PG_BIN_DIR`, else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian), else `PATH`.
//!
//! Start-up takes about a second; a fast restart well under one.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::ports::free_port;
use crate::temp::{TempDir, tail, unique_suffix};

/// How long `pg_ctl` may wait for a start, stop or restart.
const PG_CTL_WAIT_SECS: u64 = 60;

/// The user the server runs as when the harness runs as root.
const SERVER_USER: &str = "postgres";

pub struct PrivatePostgres {
    port: u16,
    /// Holds the cluster (`data/`) and the Unix socket; removed on drop, always.
    cluster: PathBuf,
    /// Holds the server log; kept when the thread panics.
    logs: TempDir,
    bin_dir: PathBuf,
    /// `Some(user)` when the server must run as another user (we are root).
    run_as: Option<String>,
    running: bool,
}

/// Where `initdb` and `pg_ctl` are: `PG_BIN_DIR`, else the highest version
/// under `/usr/lib/postgresql`, else the directory on `PATH` that has them.
pub fn pg_bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PG_BIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let versions: Vec<String> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().join("bin/initdb").is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    if let Some(v) = newest_version(&versions) {
        return Path::new("/usr/lib/postgresql").join(v).join("bin");
    }
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).find(|d| d.join("initdb").is_file()))
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

/// The highest numeric version directory name ("9.6" < "15" < "16").
pub fn newest_version(names: &[String]) -> Option<&str> {
    let key = |s: &str| -> Option<(u32, u32)> {
        let mut parts = s.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = match parts.next() {
            Some(m) => m.parse().ok()?,
            None => 0,
        };
        Some((major, minor))
    };
    names
        .iter()
        .filter_map(|n| key(n).map(|k| (k, n.as_str())))
        .max_by_key(|(k, _)| *k)
        .map(|(_, n)| n)
}

/// The server options `pg_ctl -o` passes: our port, socket dir and address
/// only, and durability settings that cost a shared disk nothing (fsync off:
/// the cluster is thrown away, and every restart here is a clean one).
pub fn server_options(port: u16, socket_dir: &Path) -> String {
    format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200",
        socket_dir.display()
    )
}

impl PrivatePostgres {
    /// Creates a cluster with `initdb`, starts it and waits until it accepts
    /// connections.
    pub async fn start() -> anyhow::Result<Self> {
        let logs = TempDir::new("salesync-e2e-pglog")?;
        let cluster = std::env::temp_dir().join(format!("salesync-e2e-pg-{}", unique_suffix()));
        std::fs::create_dir_all(&cluster)?;
        let am_root = std::fs::metadata(&cluster)?.uid() == 0;
        let mut pg = Self {
            port: free_port()?,
            cluster,
            logs,
            bin_dir: pg_bin_dir(),
            run_as: am_root.then(|| SERVER_USER.to_string()),
            running: false,
        };
        if pg.run_as.is_some() {
            // The server user must own its data dir and be able to write its log.
            for dir in [pg.cluster.as_path(), pg.logs.path()] {
                let status = std::process::Command::new("chown")
                    .args(["-R", SERVER_USER])
                    .arg(dir)
                    .status()?;
                anyhow::ensure!(
                    status.success(),
                    "cannot hand {} to the {SERVER_USER} user (chown: {status})",
                    dir.display()
                );
            }
        }
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        )
        .await?;
        pg.pg_ctl("start").await?;
        pg.running = true;
        pg.await_connections().await?;
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres` (a server URL for `TestDb`).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the cluster (removed on drop).
    pub fn cluster_dir(&self) -> &Path {
        &self.cluster
    }

    pub fn log_path(&self) -> PathBuf {
        self.logs.path().join("postgres.log")
    }

    /// The last lines of the server log (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }

    fn data_dir(&self) -> PathBuf {
        self.cluster.join("data")
    }

    /// `pg_ctl restart -m fast`: every client connection is cut, the server
    /// is back when this returns.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.pg_ctl("restart").await?;
        self.running = true;
        self.await_connections().await
    }

    /// `pg_ctl stop -m fast` (the cluster stays on disk for `start_again`).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        self.pg_ctl("stop").await?;
        self.running = false;
        Ok(())
    }

    /// Starts a stopped cluster again.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if self.running {
            return Ok(());
        }
        self.pg_ctl("start").await?;
        self.running = true;
        self.await_connections().await
    }

    /// Runs `pg_ctl <action>` with our options, waiting for it to finish.
    async fn pg_ctl(&self, action: &str) -> anyhow::Result<()> {
        let data = self.data_dir();
        let log = self.log_path();
        let opts = server_options(self.port, &self.cluster);
        let wait = PG_CTL_WAIT_SECS.to_string();
        let mut args: Vec<&std::ffi::OsStr> = vec![
            action.as_ref(),
            "-D".as_ref(),
            data.as_os_str(),
            "-w".as_ref(),
            "-t".as_ref(),
            wait.as_ref(),
            "-m".as_ref(),
            "fast".as_ref(),
        ];
        if action != "stop" {
            args.extend(["-l".as_ref(), log.as_os_str(), "-o".as_ref(), opts.as_ref()]);
        }
        self.run("pg_ctl", &args)
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}\nserver log tail:\n{}", self.log_tail(20)))
    }

    /// Runs one PostgreSQL tool (as the server user when we are root).
    async fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
        let program = self.bin_dir.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        cmd.args(args)
            .current_dir(&self.cluster)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        // Its own process group: a Ctrl-C at the terminal must not reach the
        // server (it is stopped in order, by drop) — the postmaster pg_ctl
        // forks inherits the group.
        cmd.as_std_mut().process_group(0);
        let out = cmd
            .output()
            .await
            .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", program.display()))?;
        if !out.status.success() {
            anyhow::bail!(
                "{tool} {} failed ({}): {}{}",
                args.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// `pg_ctl -w` waits for the socket; a TCP connection proves the port.
    async fn await_connections(&self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(2))
                .connect(&self.url())
                .await
            {
                pool.close().await;
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(PG_CTL_WAIT_SECS) {
                anyhow::bail!(
                    "private PostgreSQL on port {} does not accept connections; log tail:\n{}",
                    self.port,
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The postmaster's pid from `postmaster.pid` (first line), if running.
    fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Blocking is fine: pg_ctl is its own process, and the cluster must
        // not outlive the campaign (it would hold a port, memory and disk).
        if self.running || self.postmaster_pid().is_some() {
            let program = self.bin_dir.join("pg_ctl");
            let data = self.data_dir();
            let mut cmd = match &self.run_as {
                Some(user) => {
                    let mut c = std::process::Command::new("runuser");
                    c.args(["-u", user, "--"]).arg(&program);
                    c
                }
                None => std::process::Command::new(&program),
            };
            let _ = cmd
                .arg("stop")
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "-t", "20"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // Last resort: the postmaster takes its children with it.
            if let Some(pid) = self.postmaster_pid() {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "salesync-e2e: private PostgreSQL log kept at {}",
                self.log_path().display()
            );
        }
        let _ = std::fs::remove_dir_all(&self.cluster);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_newest_numeric_version() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (dirs, want) in [
            (names(&["15"]), Some("15")),
            (names(&["9.6", "15", "13"]), Some("15")),
            (names(&["16", "15", "README"]), Some("16")),
            (names(&["9.6", "9.10"]), Some("9.10")),
            (names(&["x"]), None),
            (names(&[]), None),
        ] {
            assert_eq!(newest_version(&dirs), want, "{dirs:?}");
        }
    }

    #[test]
    fn server_options_set_port_socket_and_loopback_only() {
        let o = server_options(45432, Path::new("/tmp/c"));
        assert!(o.starts_with("-p 45432 -k /tmp/c "));
        assert!(o.contains("listen_addresses=127.0.0.1"));
    }
}
