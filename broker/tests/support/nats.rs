//! A local NATS cluster with JetStream for a test ([`nats_local`]), its logs kept if the
//! test fails.

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
}

impl NatsCluster {
    /// Starts the servers of cluster `name` and waits until each is healthy.
    pub fn start(name: &str) -> Self {
        let servers = nats_local::NatsCluster::start_temporary(&program(), name)
            .unwrap_or_else(|error| panic!("{error}; `cargo xtask test` installs nats-server"));
        Self { servers }
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

    /// A JetStream context on server 0, to look at what the nodes keep there.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = async_nats::connect(self.servers.client_url(0))
            .await
            .expect("connect to NATS");
        async_nats::jetstream::new(client)
    }
}
