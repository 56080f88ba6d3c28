//! `cargo xtask cluster`: a local cluster to try cluster mode: three NATS servers with
//! JetStream and three tabmq nodes on loopback, each node serving the demo page, with
//! their data in `target/cluster`, until Ctrl-C.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nats_local::{NatsCluster, Ports};

use crate::cmd::{self, TaskError};
use crate::{package, setup};

/// The nodes: (NATS client port, NATS route port, NATS monitoring port, tabmq WebSocket
/// port, tabmq TCP port).
const NODES: [(u16, u16, u16, u16, u16); 3] = [
    (4222, 6222, 8222, 8081, 1884),
    (4223, 6223, 8223, 8082, 1885),
    (4224, 6224, 8224, 8083, 1886),
];

/// Kills the processes it holds when dropped (Ctrl-C reaches them too).
struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(program: &Path, args: &[String], log: &Path) -> Result<Child, TaskError> {
    let log = std::fs::File::create(log).map_err(|error| TaskError::Check(error.to_string()))?;
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|source| TaskError::Spawn {
            command: program.display().to_string(),
            source,
        })
}

/// Builds everything and runs the cluster until Ctrl-C.
pub(crate) fn run() -> Result<(), TaskError> {
    let python = setup::python_env()?;
    package::build()?;
    cmd::run(&mut cmd::command(
        "cargo",
        &["build", "--package", "tabmq-broker"],
    ))?;
    let root = cmd::workspace_root();
    let dir = root.join("target/cluster");
    std::fs::create_dir_all(&dir).map_err(|error| TaskError::Check(error.to_string()))?;
    let nats_server = python.with_file_name("nats-server");
    let ports = NODES.map(|(client, route, monitor, ..)| Ports {
        client,
        route,
        monitor,
    });
    let mut nats = NatsCluster::start(&nats_server, "tabmq-local", &dir, &ports)
        .map_err(|error| TaskError::Check(error.to_string()))?;
    let mut processes = Processes(Vec::new());
    let broker = root.join("target/debug/tabmq");
    for (index, (client, _, _, ws, tcp)) in NODES.iter().enumerate() {
        let config = dir.join(format!("node-{index}.toml"));
        let text = format!("[cluster]\nnats = [\"nats://127.0.0.1:{client}\"]\nnode_id = \"node-{index}\"\n");
        std::fs::write(&config, text).map_err(|error| TaskError::Check(error.to_string()))?;
        let args = [
            "--config",
            &config.to_string_lossy(),
            "--ws",
            &format!("127.0.0.1:{ws}"),
            "--tcp",
            &format!("127.0.0.1:{tcp}"),
            "--www",
            &root.join("www").to_string_lossy(),
            "--data-dir",
            &dir.join(format!("node-{index}")).to_string_lossy(),
        ]
        .map(String::from);
        processes
            .0
            .push(spawn(&broker, &args, &dir.join(format!("node-{index}.log")))?);
        eprintln!("==> node-{index}: demo page http://127.0.0.1:{ws}/, MQTT over TCP on 127.0.0.1:{tcp}");
    }
    eprintln!(
        "    3 NATS servers with JetStream on 4222-4224; logs in {}; stop with Ctrl-C\n",
        dir.display()
    );
    // Until a node or a server stops (Ctrl-C stops them all).
    loop {
        for child in &mut processes.0 {
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!("a node of the cluster exited ({status}); stopping the others");
                return Ok(());
            }
        }
        if nats.exited() {
            eprintln!("a NATS server of the cluster exited; stopping the others");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
