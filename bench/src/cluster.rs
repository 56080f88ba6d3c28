//! The cost of cluster mode on the same load: one node on its embedded store, one node on
//! a three-server NATS cluster with JetStream, and three nodes on it with the clients
//! spread over them, in the same run, throughput and publish-to-delivery latency.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tabmq_protocol::QoS;

use crate::error::BenchError;
use crate::messaging::{self, Load, Shape};
use crate::target::{Programs, Running, Target};
use crate::transport::Transport;

/// Three `nats-server` processes with JetStream on free loopback ports, killed when dropped.
struct NatsCluster {
    servers: Vec<Child>,
    clients: Vec<String>,
    dir: PathBuf,
}

fn free_port() -> Result<u16, BenchError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl NatsCluster {
    fn start(program: &Path) -> Result<Self, BenchError> {
        let dir = std::env::temp_dir().join(format!(
            "tabmq-bench-nats-{}-{}",
            std::process::id(),
            free_port()?
        ));
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect::<Result<_, _>>()?;
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
            let (client, monitor) = (free_port()?, free_port()?);
            let store = dir.join(format!("n{index}"));
            std::fs::create_dir_all(&store)?;
            let child = Command::new(program)
                .args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &client.to_string(),
                    "-m",
                    &monitor.to_string(),
                ])
                .args(["-n", &format!("bench-{index}"), "--cluster_name", "bench"])
                .args(["-cluster", &format!("nats://127.0.0.1:{route}")])
                .args(["-routes", &route_urls.join(",")])
                .arg("-js")
                .arg("-sd")
                .arg(&store)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| BenchError::Process(format!("cannot start {}: {e}", program.display())))?;
            cluster.servers.push(child);
            cluster.clients.push(format!("nats://127.0.0.1:{client}"));
            monitors.push(monitor);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for monitor in monitors {
            while !healthy(monitor) {
                if Instant::now() > deadline {
                    return Err(BenchError::Process("NATS never became healthy".into()));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(cluster)
    }

    /// The `[cluster]` section of node `index`, on NATS server `index`.
    fn node_config(&self, index: usize) -> String {
        format!(
            "[cluster]\nnats = [\"{}\"]\nnode_id = \"node-{index}\"\n",
            self.clients[index % self.clients.len()]
        )
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the NATS server monitored on `port` says it is healthy (JetStream included).
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    let mut body = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut body).is_ok()
        && body.contains("\"ok\"")
}

/// How the broker is deployed in a case.
#[derive(Debug, Clone, Copy)]
enum Deployment {
    Embedded,
    OneNodeOnNats,
    ThreeNodesOnNats,
}

impl Deployment {
    fn name(self) -> &'static str {
        match self {
            Self::Embedded => "one node, embedded store",
            Self::OneNodeOnNats => "one node on NATS (3 servers, R3)",
            Self::ThreeNodesOnNats => "three nodes on NATS, clients spread",
        }
    }
}

/// Runs fan-in 10→1 at QoS 0 and QoS 1 (`messages` each) against every deployment and
/// returns a Markdown table.
pub async fn run(programs: &Programs, nats_server: &Path, messages: u64) -> Result<String, BenchError> {
    let mut table =
        String::from("| load | deployment | msg/s | p50 latency | p99 latency |\n|---|---|---:|---:|---:|\n");
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let load = Load {
            transport: Transport::Tcp,
            qos,
            payload: 64,
            messages,
            persistent: false,
        };
        for deployment in [
            Deployment::Embedded,
            Deployment::OneNodeOnNats,
            Deployment::ThreeNodesOnNats,
        ] {
            let (_nats, nodes) = start(deployment, programs, nats_server).await?;
            let addrs: Vec<String> = nodes.iter().filter_map(|node| node.tcp.clone()).collect();
            let roles = messaging::roles(Shape::FanIn { publishers: 10 }, messages);
            let measured = messaging::run_spread(&addrs, load, roles).await;
            for node in nodes {
                node.stop().await;
            }
            let measured = measured?;
            let rate = measured.delivered as f64 / measured.elapsed.as_secs_f64();
            let cut = if measured.complete { "" } else { " (cut short)" };
            let line = format!(
                "| fan-in 10→1, QoS {}, 64 B | {} | {:.0}{cut} | {:.1} ms | {:.1} ms |\n",
                qos as u8,
                deployment.name(),
                rate,
                measured.latency.value_at_quantile(0.5) as f64 / 1000.0,
                measured.latency.value_at_quantile(0.99) as f64 / 1000.0,
            );
            eprint!("{line}");
            table.push_str(&line);
        }
    }
    Ok(table)
}

async fn start(
    deployment: Deployment,
    programs: &Programs,
    nats_server: &Path,
) -> Result<(Option<NatsCluster>, Vec<Running>), BenchError> {
    let nodes_on_nats = match deployment {
        Deployment::Embedded => return Ok((None, vec![Running::start(Target::Tabmq, programs).await?])),
        Deployment::OneNodeOnNats => 1,
        Deployment::ThreeNodesOnNats => 3,
    };
    let nats = NatsCluster::start(nats_server)?;
    let mut nodes = Vec::new();
    for index in 0..nodes_on_nats {
        nodes.push(Running::start_with(Target::Tabmq, programs, &nats.node_config(index)).await?);
    }
    Ok((Some(nats), nodes))
}
