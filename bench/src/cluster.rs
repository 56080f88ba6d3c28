//! The cost of cluster mode on the same load: one node on its embedded store, one node on
//! a three-server NATS cluster with JetStream, and three nodes on it with the clients
//! spread over them, in the same run, throughput and publish-to-delivery latency; and, as
//! the floor under the QoS 1 rows on NATS, the same messages through JetStream alone.

use std::path::Path;

use tabmq_protocol::QoS;

use crate::error::BenchError;
use crate::jetstream_alone;
use crate::messaging::{self, Load, Shape};
use crate::target::{Programs, Running, Target};
use crate::transport::Transport;

/// Three `nats-server` processes with JetStream on free loopback ports, in a temporary
/// directory.
struct NatsCluster(nats_local::NatsCluster);

impl NatsCluster {
    fn start(program: &Path) -> Result<Self, BenchError> {
        nats_local::NatsCluster::start_temporary(program, "bench")
            .map(Self)
            .map_err(|error| BenchError::Process(error.to_string()))
    }

    /// The `[cluster]` section of node `index`, on NATS server `index`.
    fn node_config(&self, index: usize) -> String {
        format!(
            "[cluster]\nnats = [\"{}\"]\nnode_id = \"node-{index}\"\n",
            self.0.client_url(index % nats_local::SERVERS)
        )
    }
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
    // The floor under the QoS 1 rows on NATS: the same messages through JetStream alone.
    let nats = NatsCluster::start(nats_server)?;
    let alone = jetstream_alone::run(&nats.0.client_url(0), messages).await?;
    let line = format!(
        "| fan-in 10→1, QoS 1, 64 B | JetStream alone (R3; publish, pull, acknowledge; no broker) | {:.0} | {:.1} ms | {:.1} ms |\n",
        alone.rate,
        alone.latency.value_at_quantile(0.5) as f64 / 1000.0,
        alone.latency.value_at_quantile(0.99) as f64 / 1000.0,
    );
    eprint!("{line}");
    table.push_str(&line);
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
