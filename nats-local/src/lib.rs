//! A local NATS cluster with JetStream: three `nats-server` processes on loopback, routed
//! to each other, each with its own store and log in one directory, killed when dropped
//! (and a temporary directory removed, unless a test is failing: its logs stay).
//! Started by the broker's cluster tests, `tabmq-bench cluster` and `cargo xtask cluster`.

use std::fmt;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How many servers a cluster has.
pub const SERVERS: usize = 3;

/// How long the servers may take to report themselves healthy.
const HEALTHY_PATIENCE: Duration = Duration::from_secs(30);

/// How many times a cluster on free ports is started again when a port was taken between
/// picking it and binding it.
const PORT_TRIES: usize = 3;

/// The loopback ports of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// For clients.
    pub client: u16,
    /// For the other servers of the cluster.
    pub route: u16,
    /// For HTTP monitoring (`/healthz`).
    pub monitor: u16,
}

/// Why a cluster did not start.
#[derive(Debug)]
pub enum StartError {
    /// `nats-server` could not be run.
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The directory, a free port or a log file could not be had.
    Io(std::io::Error),
    /// A server exited or did not become healthy in time; its log says why.
    Unhealthy {
        /// Where the logs are.
        dir: PathBuf,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spawn { program, source } => write!(f, "cannot run {}: {source}", program.display()),
            Self::Io(error) => write!(f, "cannot prepare the NATS servers: {error}"),
            Self::Unhealthy { dir } => {
                write!(f, "NATS never became healthy; logs in {}", dir.display())
            }
        }
    }
}

impl std::error::Error for StartError {}

impl From<std::io::Error> for StartError {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

/// Three NATS servers clustered with JetStream.
pub struct NatsCluster {
    servers: Vec<Child>,
    ports: Vec<Ports>,
    /// The temporary directory it made, removed when dropped.
    temporary: Option<PathBuf>,
}

/// A port no one listens on now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl NatsCluster {
    /// Starts servers `<name>-0` to `-2` of cluster `name` on free ports, in a temporary
    /// directory of their own, as [`start_on_free_ports`](Self::start_on_free_ports) does.
    pub fn start_temporary(program: &Path, name: &str) -> Result<Self, StartError> {
        let dir = std::env::temp_dir().join(format!(
            "tabmq-nats-{name}-{}-{}",
            std::process::id(),
            free_port()?
        ));
        let mut cluster = Self::start_on_free_ports(program, name, &dir)?;
        cluster.temporary = Some(dir);
        Ok(cluster)
    }

    /// Starts servers `<name>-0` to `-2` of cluster `name` on free ports, with their stores
    /// and logs in `dir`, and waits until each reports itself healthy, JetStream included.
    /// A port taken by another process before a server binds it makes the cluster start
    /// again on other ports.
    pub fn start_on_free_ports(program: &Path, name: &str, dir: &Path) -> Result<Self, StartError> {
        let mut last = None;
        for _ in 0..PORT_TRIES {
            let mut ports = Vec::with_capacity(SERVERS);
            for _ in 0..SERVERS {
                ports.push(Ports {
                    client: free_port()?,
                    route: free_port()?,
                    monitor: free_port()?,
                });
            }
            match Self::start(program, name, dir, &ports) {
                Err(StartError::Unhealthy { dir }) => last = Some(StartError::Unhealthy { dir }),
                started => return started,
            }
        }
        Err(last.unwrap_or(StartError::Unhealthy { dir: dir.into() }))
    }

    /// Starts one server per entry of `ports` as [`start_on_free_ports`](Self::start_on_free_ports) does.
    pub fn start(program: &Path, name: &str, dir: &Path, ports: &[Ports]) -> Result<Self, StartError> {
        let routes: Vec<String> = ports
            .iter()
            .map(|ports| format!("nats://127.0.0.1:{}", ports.route))
            .collect();
        let mut cluster = Self {
            servers: Vec::new(),
            ports: ports.to_vec(),
            temporary: None,
        };
        for (index, server) in ports.iter().enumerate() {
            let store = dir.join(format!("n{index}"));
            std::fs::create_dir_all(&store)?;
            let log = std::fs::File::create(dir.join(format!("n{index}.log")))?;
            let child = Command::new(program)
                .args(["-a", "127.0.0.1", "-p", &server.client.to_string()])
                .args(["-m", &server.monitor.to_string()])
                .args(["-n", &format!("{name}-{index}"), "--cluster_name", name])
                .args(["-cluster", &routes[index], "-routes", &routes.join(",")])
                .arg("-js")
                .arg("-sd")
                .arg(&store)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|source| StartError::Spawn {
                    program: program.into(),
                    source,
                })?;
            cluster.servers.push(child);
        }
        let deadline = Instant::now() + HEALTHY_PATIENCE;
        for server in ports {
            while !healthy(server.monitor) {
                if cluster.exited() || Instant::now() > deadline {
                    return Err(StartError::Unhealthy { dir: dir.into() });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(cluster)
    }

    /// The `nats://` URL of server `index`'s client port.
    pub fn client_url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.ports[index].client)
    }

    /// Kills server `index` with SIGKILL, as a crash would.
    pub fn kill(&mut self, index: usize) {
        let _ = self.servers[index].kill();
        let _ = self.servers[index].wait();
    }

    /// Whether a server has exited.
    pub fn exited(&mut self) -> bool {
        self.servers
            .iter_mut()
            .any(|server| server.try_wait().ok().flatten().is_some())
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.servers.len() {
            self.kill(index);
        }
        if let Some(dir) = &self.temporary
            && !std::thread::panicking()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Whether the server monitored on `port` reports itself healthy (JetStream included).
fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.contains("\"ok\"")
}
