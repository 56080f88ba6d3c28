//! A local NATS cluster with JetStream for a test: three `nats-server` processes on free
//! loopback ports, routed to each other, each with its own store; killed when dropped.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::broker::try_http_get;

/// The `nats-server` program: `$NATS_SERVER`, the one `cargo xtask test` installs in the
/// interop virtual environment, or the first on the `PATH`.
fn program() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return path.into();
    }
    let installed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/interop-venv/bin/nats-server");
    match installed.exists() {
        true => installed,
        false => "nats-server".into(),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Three NATS servers clustered with JetStream.
pub struct NatsCluster {
    servers: Vec<Child>,
    /// The client port of each server.
    pub clients: Vec<SocketAddr>,
    dir: PathBuf,
}

impl NatsCluster {
    /// Starts the servers and waits until each reports itself healthy, JetStream included.
    /// Ports are picked free, but another process may take one before a server binds it:
    /// then the cluster starts again on other ports.
    pub fn start(name: &str) -> Self {
        for _ in 0..3 {
            if let Some(cluster) = Self::try_start(name) {
                return cluster;
            }
        }
        panic!("NATS could not bind its ports three times");
    }

    /// The cluster, or `None` if a server exited at once (a port was taken meanwhile).
    fn try_start(name: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("tabmq-nats-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_urls: Vec<String> = routes
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect();
        let mut cluster = Self {
            servers: Vec::new(),
            clients: Vec::new(),
            dir: dir.clone(),
        };
        let mut monitors = Vec::new();
        for (index, route) in routes.iter().enumerate() {
            let client = free_port();
            let monitor = free_port();
            let store = dir.join(format!("n{index}"));
            std::fs::create_dir_all(&store).expect("store directory");
            let child = Command::new(program())
                .args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &client.to_string(),
                    "-m",
                    &monitor.to_string(),
                ])
                .args(["-n", &format!("{name}-{index}"), "--cluster_name", name])
                .args(["-cluster", &format!("nats://127.0.0.1:{route}")])
                .args(["-routes", &route_urls.join(",")])
                .arg("-js")
                .arg("-sd")
                .arg(&store)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join(format!("n{index}.log"))).expect("log"))
                .spawn()
                .unwrap_or_else(|error| {
                    panic!(
                        "cannot run {} ({error}); `cargo xtask test` installs it",
                        program().display()
                    )
                });
            cluster.servers.push(child);
            cluster.clients.push(SocketAddr::from(([127, 0, 0, 1], client)));
            monitors.push(SocketAddr::from(([127, 0, 0, 1], monitor)));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for monitor in monitors {
            while !try_http_get(monitor, "/healthz").is_some_and(|body| body.contains("\"ok\"")) {
                if cluster
                    .servers
                    .iter_mut()
                    .any(|server| server.try_wait().ok().flatten().is_some())
                {
                    return None;
                }
                assert!(
                    Instant::now() < deadline,
                    "NATS never became healthy; logs in {}",
                    dir.display()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Some(cluster)
    }

    /// Kills server `index` with SIGKILL, as a crash would.
    pub fn kill(&mut self, index: usize) {
        let _ = self.servers[index].kill();
        let _ = self.servers[index].wait();
    }

    /// The `[cluster]` config section of a tabmq node named `node_id`, using server `index`.
    pub fn node_config(&self, node_id: &str, index: usize) -> String {
        format!(
            "[cluster]\nnats = [\"nats://{}\"]\nnode_id = \"{node_id}\"\nreplicas = 3\n",
            self.clients[index]
        )
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
