//! `Services`: the five salesync binaries as separate OS processes, the way
//! they run in production — so a test can SIGKILL one mid-stream, SIGTERM it
//! and watch it drain, or run several replicas competing for a queue.
//!
//! Binaries come from `SALESYNC_BIN_DIR`, else `$CARGO_TARGET_DIR/<profile>`,
//! else `<workspace>/target/<profile>` (`debug` in debug builds of this crate,
//! `release` otherwise). Each process logs to its own file in a temp dir,
//! appended across restarts, kept when a test fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::ports::free_port;
use crate::temp::{TempDir, tail, unique_suffix};

/// What a service logs when the port it was given is taken.
const ADDR_IN_USE: &str = "Address already in use";
/// How often one start may move a process to another port.
const MAX_PORT_MOVES: usize = 3;

/// How long a process gets to answer `/readyz` with 200.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKind {
    Ingest,
    Console,
    ConditionFilter,
    Forwarder,
    StatusPoller,
}

impl ServiceKind {
    /// The data plane (ingest), the control plane (console), the pipeline
    /// workers.
    pub const ALL: [ServiceKind; 5] = [
        ServiceKind::Ingest,
        ServiceKind::Console,
        ServiceKind::ConditionFilter,
        ServiceKind::Forwarder,
        ServiceKind::StatusPoller,
    ];

    /// The binary's file name.
    pub fn binary(&self) -> &'static str {
        match self {
            ServiceKind::Ingest => "ingest",
            ServiceKind::Console => "console",
            ServiceKind::ConditionFilter => "condition-filter",
            ServiceKind::Forwarder => "forwarder",
            ServiceKind::StatusPoller => "status-poller",
        }
    }
}

impl std::fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.binary())
    }
}

/// How many processes of each service to run (default: one each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replicas(BTreeMap<ServiceKind, usize>);

impl Default for Replicas {
    fn default() -> Self {
        Self(ServiceKind::ALL.iter().map(|k| (*k, 1)).collect())
    }
}

impl Replicas {
    pub fn one_each() -> Self {
        Self::default()
    }

    /// `n` processes of `kind` (0 leaves it out).
    #[must_use]
    pub fn with(mut self, kind: ServiceKind, n: usize) -> Self {
        self.0.insert(kind, n);
        self
    }

    pub fn of(&self, kind: ServiceKind) -> usize {
        self.0.get(&kind).copied().unwrap_or(0)
    }
}

/// Everything the processes are started with.
#[derive(Clone, Debug)]
pub struct ServicesConfig {
    pub database_url: String,
    pub amqp_url: String,
    /// `ADMIN_TOKEN` of console.
    pub admin_token: String,
    /// `SALESYNC_ENCRYPTION_KEYS` (the same for every service).
    pub encryption_keys: String,
    pub replicas: Replicas,
    /// Per-service environment; applied over the defaults of `new`.
    pub env: BTreeMap<ServiceKind, BTreeMap<String, String>>,
    /// Where the binaries are; `None` resolves as the module doc says.
    pub bin_dir: Option<PathBuf>,
    /// Give console its own address as `PUBLIC_URL`, so that a provider
    /// (on this deployment or another) can call it back.
    pub public_console: bool,
}

impl ServicesConfig {
    /// Defaults tuned for tests: short retry delays, timeouts and poll
    /// intervals so failure paths finish in seconds.
    pub fn new(database_url: &str, amqp_url: &str) -> Self {
        let rust_log = std::env::var("SALESYNC_SERVICE_LOG")
            .unwrap_or_else(|_| "info,sqlx=warn,lapin=warn".into());
        let common = [
            ("RUST_LOG", rust_log.as_str()),
            ("LOG_FORMAT", "text"),
            // Log files, not terminals: no colour escapes.
            ("NO_COLOR", "1"),
            ("SHUTDOWN_GRACE_SECS", "5"),
            ("DATABASE_MAX_CONNECTIONS", "5"),
        ];
        let mut env = BTreeMap::new();
        for kind in ServiceKind::ALL {
            let mut vars: BTreeMap<String, String> = common
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let specific: &[(&str, &str)] = match kind {
                ServiceKind::Ingest | ServiceKind::Console => &[],
                ServiceKind::ConditionFilter => &[("PREFETCH", "100")],
                ServiceKind::Forwarder => &[
                    ("REQUEST_TIMEOUT", "2s"),
                    ("CONNECT_TIMEOUT", "1s"),
                    ("RETRY_DELAYS", "200ms,400ms,800ms"),
                    ("MAX_ATTEMPTS", "5"),
                    ("PREFETCH", "50"),
                ],
                ServiceKind::StatusPoller => &[("POLL_INTERVAL", "200ms"), ("LOOKUP_CHUNK", "100")],
            };
            vars.extend(specific.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            env.insert(kind, vars);
        }
        Self {
            database_url: database_url.into(),
            amqp_url: amqp_url.into(),
            admin_token: format!("admin-{}", unique_suffix()),
            encryption_keys: salesync_core::crypto::SecretBox::generate_spec("k1"),
            replicas: Replicas::default(),
            env,
            bin_dir: None,
            public_console: false,
        }
    }

    /// Sets (or overrides) one environment variable of one service.
    #[must_use]
    pub fn env(mut self, kind: ServiceKind, key: &str, value: &str) -> Self {
        self.env
            .entry(kind)
            .or_default()
            .insert(key.into(), value.into());
        self
    }

    #[must_use]
    pub fn replicas(mut self, replicas: Replicas) -> Self {
        self.replicas = replicas;
        self
    }
}

/// The directory the service binaries are taken from.
pub fn bin_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    resolve_bin_dir(
        std::env::var_os("SALESYNC_BIN_DIR").map(PathBuf::from),
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from),
        &workspace,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )
}

/// Pure part of `bin_dir`: explicit dir, else target dir (relative to the
/// workspace when relative) plus profile.
pub fn resolve_bin_dir(
    explicit: Option<PathBuf>,
    cargo_target_dir: Option<PathBuf>,
    workspace: &Path,
    profile: &str,
) -> PathBuf {
    if let Some(dir) = explicit.filter(|d| !d.as_os_str().is_empty()) {
        return dir;
    }
    let target = match cargo_target_dir.filter(|d| !d.as_os_str().is_empty()) {
        Some(d) if d.is_absolute() => d,
        Some(d) => workspace.join(d),
        None => workspace.join("target"),
    };
    target.join(profile)
}

/// One process of one service.
struct Instance {
    kind: ServiceKind,
    index: usize,
    /// API port for ingest and console, ops port for the others: where
    /// `/readyz` is.
    port: u16,
    env: BTreeMap<String, String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Instance {
    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn label(&self) -> String {
        format!("{}#{}", self.kind, self.index)
    }
}

pub struct Services {
    bin_dir: PathBuf,
    instances: Vec<Instance>,
    logs: TempDir,
    config: ServicesConfig,
    http: reqwest::Client,
}

impl Services {
    /// Starts every replica of every service (not waiting for readiness).
    pub async fn start(config: ServicesConfig) -> anyhow::Result<Self> {
        let bin_dir = config.bin_dir.clone().unwrap_or_else(bin_dir);
        for kind in ServiceKind::ALL {
            if config.replicas.of(kind) > 0 && !bin_dir.join(kind.binary()).is_file() {
                anyhow::bail!(
                    "{} not found in {}; build the services first (cargo build --workspace --bins) or set SALESYNC_BIN_DIR",
                    kind.binary(),
                    bin_dir.display()
                );
            }
        }
        let logs = TempDir::new("salesync-e2e-logs")?;
        let mut instances = Vec::new();
        for kind in ServiceKind::ALL {
            for index in 0..config.replicas.of(kind) {
                let port = free_port()?;
                let log = logs.path().join(format!("{}-{index}.log", kind.binary()));
                instances.push(Instance {
                    kind,
                    index,
                    port,
                    env: instance_env(&config, kind, port),
                    log,
                    child: None,
                });
            }
        }
        let mut services = Self {
            bin_dir,
            instances,
            logs,
            config,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?,
        };
        for i in 0..services.instances.len() {
            services.spawn(i)?;
        }
        Ok(services)
    }

    pub fn config(&self) -> &ServicesConfig {
        &self.config
    }

    pub fn admin_token(&self) -> &str {
        &self.config.admin_token
    }

    /// Base URL of the first ingest process (the data plane's API and ops).
    pub fn ingest_url(&self) -> String {
        self.urls(ServiceKind::Ingest)
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// Base URL of the first console process (the control plane's API and
    /// ops).
    pub fn console_url(&self) -> String {
        self.urls(ServiceKind::Console)
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// Base URLs where each replica of `kind` serves `/readyz` (and, for
    /// ingest and console, their API).
    pub fn urls(&self, kind: ServiceKind) -> Vec<String> {
        self.of(kind).map(Instance::base_url).collect()
    }

    /// OS process ids of the running replicas of `kind` (for resource
    /// measurements from /proc, e.g. the benchmark's CPU and RSS figures).
    pub fn pids(&self, kind: ServiceKind) -> Vec<u32> {
        self.of(kind)
            .filter_map(|i| i.child.as_ref().and_then(Child::id))
            .collect()
    }

    pub fn logs_dir(&self) -> &Path {
        self.logs.path()
    }

    /// Keeps the log directory after drop, even when everything passed.
    pub fn keep_logs(&mut self) {
        self.logs.keep();
    }

    pub fn log_path(&self, kind: ServiceKind, index: usize) -> Option<PathBuf> {
        self.of(kind)
            .find(|i| i.index == index)
            .map(|i| i.log.clone())
    }

    /// The last lines of every replica's log of `kind`, for failure messages.
    pub fn log_tail(&self, kind: ServiceKind, lines: usize) -> String {
        self.of(kind)
            .map(|i| {
                format!(
                    "--- {} ({}) ---\n{}",
                    i.label(),
                    i.log.display(),
                    tail(&i.log, lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn of(&self, kind: ServiceKind) -> impl Iterator<Item = &Instance> {
        self.instances.iter().filter(move |i| i.kind == kind)
    }

    fn indexes(&self, kind: ServiceKind) -> Vec<usize> {
        self.instances
            .iter()
            .enumerate()
            .filter(|(_, i)| i.kind == kind)
            .map(|(n, _)| n)
            .collect()
    }

    /// console's `SERVICE_URLS`: every replica where it serves `/readyz`
    /// now (the ports are known only once every instance has one).
    fn service_urls(&self) -> String {
        self.instances
            .iter()
            .map(|i| format!("{}=http://127.0.0.1:{}", i.kind.binary(), i.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, n: usize) -> anyhow::Result<()> {
        let service_urls = self.service_urls();
        let inst = &mut self.instances[n];
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&inst.log)?;
        {
            use std::io::Write;
            writeln!(
                log,
                "===== salesync-e2e: starting {} at {} =====",
                inst.label(),
                chrono::Utc::now().to_rfc3339()
            )?;
        }
        let err = log.try_clone()?;
        let mut command = Command::new(self.bin_dir.join(inst.kind.binary()));
        command.envs(&inst.env);
        if inst.kind == ServiceKind::Console && !inst.env.contains_key("SERVICE_URLS") {
            command.env("SERVICE_URLS", service_urls);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", inst.label()))?;
        inst.child = Some(child);
        Ok(())
    }

    /// Waits until every running process answers `/readyz` with 200; panics
    /// (with the tail of the process's log) after `READY_TIMEOUT`.
    pub async fn wait_ready(&mut self) {
        if let Err(e) = self.try_wait_ready().await {
            panic!("{e:#}");
        }
    }

    /// Like `wait_ready`, returning the failure instead of panicking.
    pub async fn try_wait_ready(&mut self) -> anyhow::Result<()> {
        let all: Vec<usize> = (0..self.instances.len()).collect();
        self.wait_ready_of(&all).await
    }

    /// Waits for the processes of one service only.
    pub async fn wait_ready_kind(&mut self, kind: ServiceKind) {
        if let Err(e) = self.try_wait_ready_kind(kind).await {
            panic!("{e:#}");
        }
    }

    /// Like `wait_ready_kind`, returning the failure instead of panicking.
    pub async fn try_wait_ready_kind(&mut self, kind: ServiceKind) -> anyhow::Result<()> {
        let idx = self.indexes(kind);
        self.wait_ready_of(&idx).await
    }

    /// Processes that ended although nobody killed or stopped them (a crash,
    /// or giving up on a dependency), as (service, replica, how it ended).
    /// They stay listed until started again (`start_kind`).
    pub fn unexpected_exits(&mut self) -> Vec<(ServiceKind, usize, String)> {
        self.instances
            .iter_mut()
            .filter_map(|i| {
                let status = i.child.as_mut()?.try_wait().ok()??;
                Some((i.kind, i.index, status.to_string()))
            })
            .collect()
    }

    /// Starts again the processes that ended on their own.
    pub fn restart_exited(&mut self) -> anyhow::Result<()> {
        for n in 0..self.instances.len() {
            let exited = self.instances[n]
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                self.instances[n].child = None;
                self.spawn(n)?;
            }
        }
        Ok(())
    }

    async fn wait_ready_of(&mut self, which: &[usize]) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for &n in which {
            let mut moves = 0;
            while self.instances[n].child.is_some() {
                let url = format!("{}/readyz", self.instances[n].base_url());
                let exited = match self.instances[n].child.as_mut().map(Child::try_wait) {
                    Some(Ok(Some(status))) => Some(status.to_string()),
                    Some(Err(e)) => Some(e.to_string()),
                    _ => None,
                };
                let inst = &self.instances[n];
                let port_taken = exited.is_some() && tail(&inst.log, 40).contains(ADDR_IN_USE);
                if let Some(status) = exited.filter(|_| !port_taken || moves >= MAX_PORT_MOVES) {
                    anyhow::bail!(
                        "{} exited ({status}) before it was ready; log tail:\n{}",
                        inst.label(),
                        tail(&inst.log, 40)
                    );
                }
                let answer = match self.http.get(&url).send().await {
                    Ok(resp) if resp.status() == reqwest::StatusCode::OK => resp
                        .json::<serde_json::Value>()
                        .await
                        .ok()
                        .and_then(|v| v["pid"].as_u64()),
                    _ => None,
                };
                let ours = inst.child.as_ref().and_then(Child::id).map(u64::from);
                // Another process answering on our port: ours could not bind it.
                let someone_else = answer.is_some() && answer != ours;
                if (port_taken || someone_else) && moves < MAX_PORT_MOVES {
                    moves += 1;
                    self.move_to_free_port(n).await?;
                    continue;
                }
                if answer.is_some() && !someone_else {
                    break;
                }
                if Instant::now() >= deadline {
                    anyhow::bail!(
                        "{} not ready after {READY_TIMEOUT:?} ({url}); log tail:\n{}",
                        inst.label(),
                        tail(&inst.log, 40)
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Restarts a process that lost its port to another one (a free port is
    /// found by binding and letting go, so someone can take it in between)
    /// on a newly found port.
    async fn move_to_free_port(&mut self, n: usize) -> anyhow::Result<()> {
        self.kill_instance(n).await;
        let port = free_port()?;
        let inst = &mut self.instances[n];
        inst.port = port;
        inst.env = instance_env(&self.config, inst.kind, port);
        self.spawn(n)
    }

    /// Whether `/readyz` of every running replica of `kind` says 200 right now.
    pub async fn is_ready(&self, kind: ServiceKind) -> bool {
        for inst in self.of(kind).filter(|i| i.child.is_some()) {
            match self
                .http
                .get(format!("{}/readyz", inst.base_url()))
                .send()
                .await
            {
                Ok(r) if r.status() == reqwest::StatusCode::OK => {}
                _ => return false,
            }
        }
        true
    }

    /// SIGKILLs every replica of `kind` and reaps it.
    pub async fn kill(&mut self, kind: ServiceKind) {
        for n in self.indexes(kind) {
            self.kill_instance(n).await;
        }
    }

    /// SIGKILLs one replica.
    pub async fn kill_one(&mut self, kind: ServiceKind, index: usize) {
        if let Some(n) = self
            .indexes(kind)
            .into_iter()
            .find(|n| self.instances[*n].index == index)
        {
            self.kill_instance(n).await;
        }
    }

    async fn kill_instance(&mut self, n: usize) {
        if let Some(mut child) = self.instances[n].child.take() {
            let _ = child.kill().await;
        }
    }

    /// SIGTERMs every replica of `kind` and waits for each to exit (SIGKILL
    /// after the grace period plus a margin). Returns how each ended.
    pub async fn stop(&mut self, kind: ServiceKind) -> Vec<ExitStatus> {
        let grace = self
            .config
            .env
            .get(&kind)
            .and_then(|e| e.get("SHUTDOWN_GRACE_SECS"))
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(10);
        let limit = Duration::from_secs(grace + 10);
        let mut statuses = Vec::new();
        for n in self.indexes(kind) {
            let Some(mut child) = self.instances[n].child.take() else {
                continue;
            };
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            match tokio::time::timeout(limit, child.wait()).await {
                Ok(Ok(status)) => statuses.push(status),
                _ => {
                    eprintln!(
                        "salesync-e2e: {} ignored SIGTERM for {limit:?}; killing it",
                        self.instances[n].label()
                    );
                    let _ = child.kill().await;
                    if let Ok(status) = child.wait().await {
                        statuses.push(status);
                    }
                }
            }
        }
        statuses
    }

    /// Starts the replicas of `kind` that are not running (same ports, same
    /// environment), without waiting for readiness.
    pub fn start_kind(&mut self, kind: ServiceKind) -> anyhow::Result<()> {
        for n in self.indexes(kind) {
            if self.instances[n].child.is_none() {
                self.spawn(n)?;
            }
        }
        Ok(())
    }

    /// SIGKILLs and starts again every replica of `kind`, waiting for readiness.
    pub async fn restart(&mut self, kind: ServiceKind) -> anyhow::Result<()> {
        self.kill(kind).await;
        self.start_kind(kind)?;
        let idx = self.indexes(kind);
        self.wait_ready_of(&idx).await
    }

    /// SIGTERMs everything (ingest last, so the others can still drain into
    /// it; console before the workers, as it feeds them replays) and waits; returns how each process ended. Dropping `Services`
    /// SIGKILLs instead.
    pub async fn stop_all(&mut self) -> Vec<(ServiceKind, ExitStatus)> {
        let mut ended = Vec::new();
        for kind in [
            ServiceKind::Console,
            ServiceKind::StatusPoller,
            ServiceKind::ConditionFilter,
            ServiceKind::Forwarder,
            ServiceKind::Ingest,
        ] {
            ended.extend(self.stop(kind).await.into_iter().map(|s| (kind, s)));
        }
        ended
    }
}

/// The harness's `TARGET_ALLOW_NETS`: every target it starts is on loopback.
pub const LOOPBACK_NETS: &str = "127.0.0.0/8,::1";

/// The full environment of one process.
fn instance_env(config: &ServicesConfig, kind: ServiceKind, port: u16) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("DATABASE_URL".into(), config.database_url.clone());
    env.insert("AMQP_URL".into(), config.amqp_url.clone());
    let listen = format!("127.0.0.1:{port}");
    match kind {
        ServiceKind::Ingest => {
            env.insert("API_LISTEN".into(), listen);
        }
        ServiceKind::Console => {
            if config.public_console {
                env.insert("PUBLIC_URL".into(), format!("http://{listen}"));
            }
            env.insert("API_LISTEN".into(), listen);
            env.insert("ADMIN_TOKEN".into(), config.admin_token.clone());
        }
        _ => {
            env.insert("OPS_LISTEN".into(), listen);
        }
    }
    // The targets of tests, the demo and the benchmark listen on loopback,
    // which salesync refuses to call unless an operator allows it.
    env.insert("TARGET_ALLOW_NETS".into(), LOOPBACK_NETS.into());
    // Every service gets the key; one that handles no secrets ignores it.
    env.insert(
        "SALESYNC_ENCRYPTION_KEYS".into(),
        config.encryption_keys.clone(),
    );
    if let Some(extra) = config.env.get(&kind) {
        env.extend(extra.clone());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_dir_resolution_order() {
        let ws = Path::new("/ws");
        for (explicit, target, want) in [
            (Some("/bins"), Some("/t"), "/bins"),
            (None, Some("/t"), "/t/debug"),
            (None, Some("rel"), "/ws/rel/debug"),
            (None, None, "/ws/target/debug"),
            (Some(""), Some(""), "/ws/target/debug"),
        ] {
            assert_eq!(
                resolve_bin_dir(
                    explicit.map(PathBuf::from),
                    target.map(PathBuf::from),
                    ws,
                    "debug"
                ),
                PathBuf::from(want),
                "{explicit:?} {target:?}"
            );
        }
    }

    #[test]
    fn replicas_default_to_one_each() {
        let r = Replicas::one_each().with(ServiceKind::Forwarder, 3);
        assert_eq!(r.of(ServiceKind::Forwarder), 3);
        assert_eq!(r.of(ServiceKind::Ingest), 1);
        assert_eq!(r.with(ServiceKind::Ingest, 0).of(ServiceKind::Ingest), 0);
    }

    #[test]
    fn instance_env_wires_ports_keys_and_overrides() {
        let cfg = ServicesConfig::new("postgres://db", "amqp://mq").env(
            ServiceKind::Forwarder,
            "RETRY_DELAYS",
            "1s",
        );
        let ingest = instance_env(&cfg, ServiceKind::Ingest, 4000);
        assert_eq!(ingest["API_LISTEN"], "127.0.0.1:4000");
        assert!(!ingest.contains_key("ADMIN_TOKEN"), "no admin routes");
        assert!(!ingest.contains_key("OPS_LISTEN"));
        let console = instance_env(&cfg, ServiceKind::Console, 4002);
        assert_eq!(console["API_LISTEN"], "127.0.0.1:4002");
        assert_eq!(console["ADMIN_TOKEN"], cfg.admin_token);
        let fwd = instance_env(&cfg, ServiceKind::Forwarder, 4001);
        assert_eq!(fwd["OPS_LISTEN"], "127.0.0.1:4001");
        assert_eq!(fwd["RETRY_DELAYS"], "1s");
        assert_eq!(fwd["DATABASE_URL"], "postgres://db");
        assert_eq!(fwd["AMQP_URL"], "amqp://mq");
        assert!(fwd.contains_key("SALESYNC_ENCRYPTION_KEYS"));
        assert!(salesync_core::crypto::SecretBox::from_spec(&cfg.encryption_keys).is_ok());
    }
}
