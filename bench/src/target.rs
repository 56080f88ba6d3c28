//! The brokers under test, each started as a fresh process per run, and what the
//! kernel says about that process (CPU time, resident memory).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::error::BenchError;

/// A broker to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// tabmq, PUBACK/PUBREC after fsync (`durability = "ack"`, the default).
    Tabmq,
    /// tabmq, fsync once a second (`durability = "interval"`).
    TabmqInterval,
    /// Debian's Mosquitto 2.0 (in-memory persistence, as packaged).
    Mosquitto,
    /// The bare WebSocket relay of this crate: the machine's ceiling.
    Relay,
}

impl Target {
    /// The column name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tabmq => "tabmq",
            Self::TabmqInterval => "tabmq (interval)",
            Self::Mosquitto => "mosquitto",
            Self::Relay => "ws relay",
        }
    }
}

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Programs {
    /// The `tabmq` binary (a release build for figures).
    pub tabmq: PathBuf,
    /// The `mosquitto` binary.
    pub mosquitto: PathBuf,
}

/// A running broker.
pub struct Running {
    child: Child,
    pid: u32,
    /// `host:port` of its WebSocket listener.
    pub ws: String,
    /// `host:port` of its TCP listener, if it has one.
    pub tcp: Option<String>,
    _dir: TempDir,
}

/// How long a broker may take to exit after SIGTERM.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> Result<u16, BenchError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn write(path: &Path, text: &str) -> Result<(), BenchError> {
    std::fs::write(path, text)
        .map_err(|e| BenchError::Process(format!("cannot write {}: {e}", path.display())))
}

impl Running {
    /// Starts `target` on free loopback ports, with limits large enough for every scenario.
    pub async fn start(target: Target, programs: &Programs) -> Result<Self, BenchError> {
        Self::start_with(target, programs, "").await
    }

    /// Like [`Running::start`], with `extra` TOML sections appended to tabmq's config
    /// (`[auth]`, `[authz]`: the security benchmark).
    pub async fn start_with(target: Target, programs: &Programs, extra: &str) -> Result<Self, BenchError> {
        let dir = std::env::temp_dir().join(format!("tabmq-bench-{}-{}", std::process::id(), free_port()?));
        std::fs::create_dir_all(&dir)?;
        let dir = TempDir(dir);
        let (ws, tcp) = (free_port()?, free_port()?);
        let mut command = match target {
            Target::Tabmq | Target::TabmqInterval => {
                let durability = if target == Target::Tabmq {
                    "ack"
                } else {
                    "interval"
                };
                let config = dir.0.join("tabmq.toml");
                write(
                    &config,
                    &format!(
                        "[listeners]\nws = \"127.0.0.1:{ws}\"\ntcp = \"127.0.0.1:{tcp}\"\nwww = \"\"\n\
                         [storage]\ndata_dir = \"{data}\"\ndurability = \"{durability}\"\n\
                         [limits]\nmax_connections = 30000\nmax_inflight = 100\n\
                         max_connections_per_ip = 30000\nmax_connect_rate_per_ip = 1000000\nconnect_burst_per_ip = 1000000\n\
                         max_queued_messages = 200000\nmax_queued_bytes = 1073741824\nmax_backlog = 100000\n\
                         [log]\nlevel = \"warn\"\n{extra}",
                        data = dir.0.join("data").display()
                    ),
                )?;
                let mut command = Command::new(&programs.tabmq);
                command.arg("--config").arg(config);
                command
            }
            Target::Mosquitto => {
                let config = dir.0.join("mosquitto.conf");
                write(
                    &config,
                    &format!(
                        "listener {ws} 127.0.0.1\nprotocol websockets\nlistener {tcp} 127.0.0.1\n\
                         allow_anonymous true\nmax_inflight_messages 100\nmax_queued_messages 200000\n\
                         set_tcp_nodelay true\npersistence false\nlog_type error\n"
                    ),
                )?;
                let mut command = Command::new(&programs.mosquitto);
                command.arg("-c").arg(config);
                command
            }
            Target::Relay => {
                let mut command = Command::new(std::env::current_exe()?);
                command.args(["relay", "--addr", &format!("127.0.0.1:{ws}")]);
                command
            }
        };
        command.kill_on_drop(true).stdout(std::process::Stdio::null());
        let child = command
            .spawn()
            .map_err(|e| BenchError::Process(format!("cannot start {}: {e}", target.name())))?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Process("exited at once".into()))?;
        let running = Self {
            child,
            pid,
            ws: format!("127.0.0.1:{ws}"),
            tcp: (target != Target::Relay).then(|| format!("127.0.0.1:{tcp}")),
            _dir: dir,
        };
        running.wait_listening(&running.ws).await?;
        if let Some(tcp) = &running.tcp {
            running.wait_listening(tcp).await?;
        }
        Ok(running)
    }

    /// Polls until `addr` accepts connections (a process has no "ready" signal to await).
    async fn wait_listening(&self, addr: &str) -> Result<(), BenchError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(BenchError::Process(format!("nothing listens on {addr}")))
    }

    /// CPU time used so far (user + system).
    pub fn cpu(&self) -> Result<Duration, BenchError> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        Ok(Duration::from_millis(
            (ticks(11) + ticks(12)) * 1000 / clock_ticks(),
        ))
    }

    /// Resident memory now and at its peak, in bytes.
    pub fn memory(&self) -> Result<(u64, u64), BenchError> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        Ok((kib("VmRSS:"), kib("VmHWM:")))
    }

    /// Stops the process: SIGTERM, so that it (or a profiler wrapping it) can finish its
    /// output, then SIGKILL if it is still running after a grace period.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = tokio::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(STOP_GRACE, self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// Kernel clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}
