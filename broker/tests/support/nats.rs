//! A local NATS cluster with JetStream for a test ([`nats_local`]), its logs and stores in
//! a directory of its own, removed unless the test failed.

use std::net::SocketAddr;
use std::path::PathBuf;

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

/// Three NATS servers clustered with JetStream.
pub struct NatsCluster {
    servers: nats_local::NatsCluster,
    /// The client port of each server.
    pub clients: Vec<SocketAddr>,
    dir: PathBuf,
}

impl NatsCluster {
    /// Starts the servers of cluster `name` and waits until each is healthy.
    pub fn start(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tabmq-nats-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let servers = nats_local::NatsCluster::start_on_free_ports(&program(), name, &dir)
            .unwrap_or_else(|error| panic!("{error}; `cargo xtask test` installs nats-server"));
        Self {
            clients: servers.clients(),
            servers,
            dir,
        }
    }

    /// Kills server `index` with SIGKILL, as a crash would.
    pub fn kill(&mut self, index: usize) {
        self.servers.kill(index);
    }

    /// The `[cluster]` config section of a tabmq node named `node_id`, using server `index`.
    pub fn node_config(&self, node_id: &str, index: usize) -> String {
        format!(
            "[cluster]\nnats = [\"{}\"]\nnode_id = \"{node_id}\"\nreplicas = 3\n",
            self.servers.client_url(index)
        )
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..nats_local::SERVERS {
            self.servers.kill(index);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
