//! `PrivateRabbit`: a RabbitMQ node of the test's own, for tests that take
//! the broker away. The shared broker on 5672 is never touched: this node has
//! its own name (`sstest-<rand>@localhost`), AMQP and distribution ports, data
//! and log dirs, Erlang cookie (`HOME` points into its temp dir) and an
//! empty plugin list (so it does not fight the shared node for the
//! management port). `/etc/rabbitmq` is bypassed with our own config and env
//! files. Controlled with `rabbitmqctl -n <node>`; stopped on drop, always.
//!
//! On a 2-core machine a start takes about 5 s (a minute when it is loaded).
//!
//! Several nodes started with one cookie form a cluster (`rabbit_cluster`);
//! a node can be killed with SIGKILL and started again on its data.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::ports::free_port;
use crate::temp::{TempDir, tail, unique_suffix};

const START_TIMEOUT: Duration = Duration::from_secs(180);

pub struct PrivateRabbit {
    node: String,
    port: u16,
    dist_port: u16,
    dir: TempDir,
    bin_dir: PathBuf,
    server: Option<Child>,
}

/// Where `rabbitmq-server` and `rabbitmqctl` are: `RABBITMQ_BIN_DIR`, else
/// Debian's `/usr/lib/rabbitmq/bin` (the `/usr/sbin` wrappers would switch to
/// the `rabbitmq` user and use its cookie), else whatever is on `PATH`.
fn rabbit_bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RABBITMQ_BIN_DIR") {
        return PathBuf::from(d);
    }
    let debian = Path::new("/usr/lib/rabbitmq/bin");
    if debian.join("rabbitmq-server").exists() {
        return debian.to_path_buf();
    }
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).find(|d| d.join("rabbitmq-server").exists()))
        .unwrap_or_else(|| PathBuf::from("/usr/sbin"))
}

/// The `rabbitmq.conf` of a private node: nothing but what differs from defaults.
pub fn config_file_contents() -> String {
    // Listeners come from RABBITMQ_NODE_IP_ADDRESS/RABBITMQ_NODE_PORT; a
    // `listeners.tcp.*` line here would add a second listener on the port.
    "loopback_users.guest = true\nlog.console = true\nlog.console.level = warning\n".into()
}

impl PrivateRabbit {
    /// Starts a node and waits until it accepts AMQP connections.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with_cookie(&new_cookie()).await
    }

    /// Starts a node with a given Erlang cookie: nodes that share one can
    /// be clustered (and `rabbitmqctl` of any of them reaches all).
    pub async fn start_with_cookie(cookie: &str) -> anyhow::Result<Self> {
        let dir = TempDir::new("salesync-e2e-rabbit")?;
        let node = format!("sstest-{}@localhost", unique_suffix());
        let port = free_port()?;
        let mut dist_port = free_port()?;
        while dist_port == port {
            dist_port = free_port()?;
        }
        let home = dir.path().join("home");
        for sub in ["home", "mnesia", "log"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        write_cookie(&home, cookie)?;
        std::fs::write(dir.path().join("enabled_plugins"), "[].")?;
        std::fs::write(dir.path().join("rabbitmq.conf"), config_file_contents())?;
        std::fs::write(dir.path().join("rabbitmq-env.conf"), "")?;

        let mut rabbit = Self {
            node,
            port,
            dist_port,
            dir,
            bin_dir: rabbit_bin_dir(),
            server: None,
        };
        // On failure the node is dropped, which stops it.
        rabbit.spawn_server()?;
        rabbit.await_startup().await?;
        Ok(rabbit)
    }

    /// Runs `rabbitmq-server` on this node's ports and data (its log is
    /// appended to, so a restart keeps what happened before).
    fn spawn_server(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.server_log())?;
        let err = log.try_clone()?;
        let d = self.dir.path();
        let mut command = Command::new(self.bin_dir.join("rabbitmq-server"));
        command
            .envs(self.base_env())
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_PID_FILE", self.pid_file())
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        // A group of its own: the script and the VM it starts can be killed
        // together (the VM's pid file may not exist yet), and Ctrl-C at the
        // terminal reaches only us, who clean up.
        command.process_group(0);
        let server = command
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run rabbitmq-server: {e}"))?;
        self.server = Some(server);
        Ok(())
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The node's own directory (data, logs, cookie), removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the node's server process is running (not killed or stopped).
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    fn server_log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("rabbit.pid")
    }

    /// The last lines of the node's console log (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.server_log(), lines)
    }

    /// Environment every rabbitmq command of this node runs with.
    fn base_env(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("HOME", self.dir.path().join("home")),
            (
                "RABBITMQ_CONF_ENV_FILE",
                self.dir.path().join("rabbitmq-env.conf"),
            ),
            ("RABBITMQ_NODENAME", PathBuf::from(&self.node)),
        ]
    }

    /// Runs `rabbitmqctl -n <node> <args>` and fails with its output.
    pub async fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new(self.bin_dir.join("rabbitmqctl"))
            .envs(self.base_env())
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            anyhow::bail!(
                "rabbitmqctl {} failed ({}): {text}",
                args.join(" "),
                out.status
            );
        }
        Ok(text)
    }

    /// Waits until the node has booted and its AMQP port accepts connections.
    pub async fn await_startup(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(server) = self.server.as_mut()
                && let Ok(Some(status)) = server.try_wait()
            {
                anyhow::bail!(
                    "rabbitmq-server exited ({status}) during start-up; log tail:\n{}",
                    tail(&self.server_log(), 30)
                );
            }
            // await_startup fails at once while the node is not yet
            // registered with epmd, so it is polled.
            if self
                .ctl(&["-q", "await_startup", "--timeout", "30"])
                .await
                .is_ok()
                && tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            if start.elapsed() > START_TIMEOUT {
                anyhow::bail!(
                    "private RabbitMQ {} not up after {START_TIMEOUT:?}; log tail:\n{}",
                    self.node,
                    tail(&self.server_log(), 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Stops the RabbitMQ application (the broker goes away; the Erlang node
    /// stays so `start_app` can bring it back with its data).
    pub async fn stop_app(&self) -> anyhow::Result<()> {
        self.ctl(&["-q", "stop_app"]).await.map(drop)
    }

    pub async fn start_app(&mut self) -> anyhow::Result<()> {
        self.ctl(&["-q", "start_app"]).await?;
        self.await_startup().await
    }

    /// Stops the node (also done on drop).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut server) = self.server.take() else {
            return Ok(());
        };
        let result = self.ctl(&["-q", "stop"]).await;
        match tokio::time::timeout(Duration::from_secs(30), server.wait()).await {
            Ok(_) => {}
            Err(_) => {
                let _ = server.kill().await;
            }
        }
        self.kill_by_pid_file();
        result.map(drop)
    }

    /// `kill -9` of the Erlang VM: the node is gone at once, as in a crash
    /// (connections cut, no goodbye to the cluster). Its data stays for
    /// [`start_again`](Self::start_again).
    pub async fn kill9(&mut self) -> anyhow::Result<()> {
        let Some(mut server) = self.server.take() else {
            anyhow::bail!("{} is not running", self.node);
        };
        let pid = self.kill_by_pid_file();
        // The `rabbitmq-server` script ends once the VM it waits for is gone.
        if tokio::time::timeout(Duration::from_secs(10), server.wait())
            .await
            .is_err()
        {
            let _ = server.kill().await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid.is_some_and(process_exists) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Starts a killed or stopped node again on its ports and data; a
    /// cluster member rejoins its cluster.
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        if self.server.is_some() {
            anyhow::bail!("{} is already running", self.node);
        }
        self.spawn_server()?;
        self.await_startup().await
    }

    /// Kills the node without asking (for a cluster's teardown: a graceful
    /// stop of one member after another takes long and proves nothing).
    /// Returns once the VM is gone, so its directory can be removed.
    pub fn kill_now(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        let pid = self.kill_by_pid_file();
        kill_group(&server);
        let _ = server.start_kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid.is_some_and(process_exists) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL the Erlang VM recorded in the pid file, and forget the file
    /// (a later kill must not hit whatever process reuses the number).
    fn kill_by_pid_file(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(self.pid_file())
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())?;
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(self.pid_file());
        Some(pid)
    }
}

/// Whether a process (not a zombie) with this id is alive.
fn process_exists(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'))
    })
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        // Blocking is fine here: rabbitmqctl is its own process, and the
        // node must not outlive the test (it would hold ports and CPU).
        let stop = std::process::Command::new(self.bin_dir.join("rabbitmqctl"))
            .envs(self.base_env())
            .args(["-n", &self.node, "-q", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut stop) = stop {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = stop.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = stop.kill();
            let _ = stop.wait();
        }
        self.kill_by_pid_file();
        kill_group(&server);
        let _ = server.start_kill();
    }
}

/// SIGKILL the server's whole process group (the script and its VM).
fn kill_group(server: &Child) {
    if let Some(id) = server.id() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{id}")])
            .stderr(Stdio::null())
            .status();
    }
}

/// A fresh random Erlang cookie.
pub fn new_cookie() -> String {
    unique_suffix().to_uppercase() + &unique_suffix().to_uppercase()
}

/// The node's Erlang cookie (mode 0400, as Erlang insists).
fn write_cookie(home: &Path, cookie: &str) -> std::io::Result<()> {
    let path = home.join(".erlang.cookie");
    std::fs::write(&path, cookie)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_declares_no_listeners_or_plugins() {
        let conf = config_file_contents();
        assert!(!conf.contains("listeners"));
        assert!(!conf.contains("management"));
    }
}
