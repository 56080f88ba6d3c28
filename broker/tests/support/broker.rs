//! Runs the real broker binary for a test: its own ports, its own data directory.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A broker process.
pub struct Broker {
    child: Option<Child>,
    /// MQTT over TCP.
    pub tcp: SocketAddr,
    /// HTTP and MQTT over WebSocket.
    pub ws: SocketAddr,
    /// The test's directory (data, config, log).
    pub dir: PathBuf,
    extra_config: String,
    /// The `--www` directory (`""`: none).
    www: String,
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address")
}

impl Broker {
    /// Starts a broker whose config file gets `extra_config` appended (TOML sections).
    pub fn start(extra_config: &str) -> Self {
        Self::start_serving(extra_config, "")
    }

    /// Like [`Broker::start`], on a data directory holding a copy of the files in `seed`.
    pub fn start_on_copy_of(extra_config: &str, seed: &Path) -> Self {
        Self::start_with(extra_config, |data_dir| {
            for entry in std::fs::read_dir(seed).expect("seed directory") {
                let path = entry.expect("seed entry").path();
                if path.is_file() {
                    let name = path.file_name().expect("a file name");
                    std::fs::copy(&path, data_dir.join(name)).expect("copy a seed file");
                }
            }
        })
    }

    /// Like [`Broker::start`], once `prepare` has set up the (created, empty) data directory.
    pub fn start_with(extra_config: &str, prepare: impl FnOnce(&Path)) -> Self {
        let mut broker = Self::prepare(extra_config, "");
        std::fs::create_dir_all(broker.data_dir()).expect("data directory");
        prepare(&broker.data_dir());
        broker.launch();
        broker
    }

    /// Like [`Broker::start`], serving the static files of `www` over HTTP.
    pub fn start_serving(extra_config: &str, www: &str) -> Self {
        let mut broker = Self::prepare(extra_config, www);
        broker.launch();
        broker
    }

    /// A broker not started yet, with its directory and ports.
    fn prepare(extra_config: &str, www: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tabmq-test-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test directory");
        Broker {
            child: None,
            tcp: free_port(),
            ws: free_port(),
            dir,
            extra_config: extra_config.to_owned(),
            www: www.to_owned(),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("tabmq.toml")
    }

    /// Runs the broker until it listens on its ports. Ports are picked free, but another
    /// process may take one before the broker binds it: then it runs again on other ports.
    fn launch(&mut self) {
        for _ in 0..3 {
            let logged = self.log().len();
            self.spawn();
            if self.listening(logged) {
                return;
            }
            self.tcp = free_port();
            self.ws = free_port();
        }
        panic!(
            "the broker could not bind free ports three times; log:\n{}",
            self.log()
        );
    }

    /// Waits until the broker listens on both ports; `false` if it exited because a port
    /// was taken (said in its log after `logged` bytes).
    fn listening(&mut self, logged: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.tcp).is_err() || TcpStream::connect(self.ws).is_err() {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log = self.log();
                let this_run = log.get(logged..).unwrap_or_default();
                assert!(
                    this_run.contains("Address already in use"),
                    "the broker exited ({status}):\n{this_run}"
                );
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "broker never listened on {} and {}",
                self.tcp,
                self.ws
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    fn spawn(&mut self) {
        std::fs::write(self.config_path(), &self.extra_config).expect("write config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("broker.log"))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_tabmq"))
            .arg("--config")
            .arg(self.config_path())
            .args([
                "--ws",
                &self.ws.to_string(),
                "--tcp",
                &self.tcp.to_string(),
                "--www",
                &self.www,
            ])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the broker");
        self.child = Some(child);
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    /// Kills the broker with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "broker did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the broker again on the same data, and on the same ports while they are free.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the broker first");
        self.launch();
    }

    /// The value of a Prometheus metric (without the `tabmq_` prefix).
    pub fn metric(&self, name: &str) -> u64 {
        let body = http_get(self.ws, "/metrics");
        let line = format!("tabmq_{name} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not found in:\n{body}"))
    }

    /// Like [`Broker::metric`], asking again while the broker refuses the request (a test
    /// that spent its per-address connections or rate waits for them to come back).
    pub fn metric_when_admitted(&self, name: &str) -> u64 {
        let line = format!("tabmq_{name} ");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let body = try_http_get(self.ws, "/metrics").unwrap_or_default();
            if let Some(value) = body.lines().find_map(|l| l.strip_prefix(&line)) {
                return value.trim().parse().expect("a number");
            }
            assert!(Instant::now() < deadline, "metrics never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The broker process's resident memory (`VmRSS`) and its peak so far (`VmHWM`), in bytes.
    pub fn memory(&self) -> (u64, u64) {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
        let kib = |field: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("{field} not in /proc/{pid}/status"))
        };
        (kib("VmRSS:") * 1024, kib("VmHWM:") * 1024)
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A plain HTTP/1.1 GET; returns the body.
pub fn http_get(address: SocketAddr, path: &str) -> String {
    try_http_get(address, path).expect("an HTTP answer")
}

/// A plain HTTP/1.1 GET; the body, or `None` when the broker closed the connection
/// without answering (refused by a limit).
pub fn try_http_get(address: SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(address).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default(),
    )
}

/// Runs the broker binary with `args` and returns (exit code, stderr).
pub fn run_binary(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tabmq"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run the broker binary");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
