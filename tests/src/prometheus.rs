//! A real Prometheus (Debian's `prometheus` package, which deploy/setup.sh
//! installs) started by a test on a free port with a config it writes, and a
//! client for its HTTP API. The process is killed and its directory removed
//! on drop. tests/tests/observability_queries.rs runs the Grafana
//! dashboard's and the alert rules' queries through it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::ports::free_port;
use crate::temp::{TempDir, tail};
use crate::wait::wait_until;

/// Where the binaries are: `PROMETHEUS_BIN_DIR`, else Debian's `/usr/bin`.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("PROMETHEUS_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin"))
}

/// `name` (`prometheus`, `promtool`) in [`bin_dir`]; an error that says how to
/// get it when it is missing (tests fail, they do not skip).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = bin_dir().join(name);
    if !path.is_file() {
        bail!(
            "{} not found: install Debian's `prometheus` package (deploy/setup.sh does) \
             or set PROMETHEUS_BIN_DIR",
            path.display()
        );
    }
    Ok(path)
}

/// The workspace's root (for deploy/ files).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs `promtool <args>`; its output on success, an error with it otherwise.
pub async fn promtool(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(binary("promtool")?)
        .args(args)
        .output()
        .await
        .context("running promtool")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("promtool {args:?} failed ({}):\n{text}", out.status);
    }
    Ok(text)
}

/// One running Prometheus.
pub struct Prometheus {
    child: Option<Child>,
    dir: TempDir,
    url: String,
    http: reqwest::Client,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML; rule files by absolute path)
    /// and waits until it answers.
    pub async fn start(config: &str) -> anyhow::Result<Self> {
        let bin = binary("prometheus")?;
        let dir = TempDir::new("salesync-prometheus")?;
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting prometheus")?;
        let mut me = Self {
            child: Some(child),
            dir,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let ready = format!("{}/-/ready", me.url);
        let answered = wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
            let (http, ready) = (me.http.clone(), ready.clone());
            async move {
                http.get(&ready)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        if let Err(e) = answered {
            let exited = me.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            bail!(
                "prometheus not ready ({e}; exited: {exited:?}):\n{}",
                me.log_tail(30)
            );
        }
        Ok(me)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The last lines Prometheus logged.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.dir.path().join("prometheus.log"), lines)
    }

    /// GET `/api/v1/<path>` with `query`; the `data` of a `success` answer.
    pub async fn api(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/{path}", self.url), query)?;
        let resp = self.http.get(url).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.context("prometheus answer")?;
        if body["status"] != "success" {
            bail!(
                "{path} {query:?}: HTTP {status}, {}: {}",
                body["errorType"],
                body["error"]
            );
        }
        Ok(body["data"].clone())
    }

    /// An instant query: the result's series (an error for a failed query).
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<Value>> {
        let data = self.api("query", &[("query", promql)]).await?;
        match &data["result"] {
            Value::Array(series) => Ok(series.clone()),
            // A scalar or string result is one value.
            other => Ok(vec![other.clone()]),
        }
    }

    /// Each scrape target's job, health and last error.
    pub async fn targets(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        let data = self.api("targets", &[]).await?;
        Ok(data["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                (
                    format!("{} {}", text(&t["labels"]["job"]), text(&t["scrapeUrl"])),
                    text(&t["health"]),
                    text(&t["lastError"]),
                )
            })
            .collect())
    }

    /// Alerts pending or firing: (alertname, state).
    pub async fn alerts(&self) -> anyhow::Result<Vec<(String, String)>> {
        let data = self.api("alerts", &[]).await?;
        Ok(data["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or_default().into(),
                    a["state"].as_str().unwrap_or_default().into(),
                )
            })
            .collect())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            // Reap it, so no zombie outlives the test.
            if let Some(pid) = child.id() {
                let _ = wait_gone(pid);
            }
        }
    }
}

/// Waits for the killed child `pid` (blocking, bounded: SIGKILL is prompt).
fn wait_gone(pid: u32) -> std::io::Result<()> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    for _ in 0..100 {
        // A zombie keeps its /proc entry until reaped; tokio reaps it for
        // us in the background, so wait until it is gone or a zombie.
        match std::fs::read_to_string(proc_dir.join("stat")) {
            Err(_) => return Ok(()),
            Ok(stat) if stat.split_whitespace().nth(2) == Some("Z") => return Ok(()),
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    Ok(())
}
