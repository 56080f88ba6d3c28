//! One benchmark case run against one target: start a fresh broker, run the scenario,
//! read the broker's CPU time and memory, stop it.

use hdrhistogram::Histogram;
use tabmq_protocol::QoS;

use crate::connections;
use crate::error::BenchError;
use crate::messaging::{self, Load, Shape};
use crate::target::{Programs, Running, Target};
use crate::transport::Transport;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub enum Scenario {
    /// Fan-in, fan-out or rooms.
    Messaging(Shape, Load),
    /// Drain QoS 1 messages queued for an offline session.
    Backlog {
        /// WebSocket or TCP.
        transport: Transport,
        /// Messages queued.
        messages: u64,
        /// Payload bytes.
        payload: usize,
    },
    /// Connect and subscribe this many clients at once.
    Storm(Transport, u64),
    /// Hold this many idle connections.
    Idle(Transport, u64),
    /// A messaging run while other clients hold this many wildcard filters that match
    /// none of its topics (the cost of unrelated subscriptions to routing).
    Wildcards(Shape, Load, u64),
    /// Subscribers that never read, flooded with QoS 0 messages; then a bystander's latency.
    Stalled {
        /// Subscribers that never read.
        subscribers: u64,
        /// Payload bytes.
        payload: usize,
        /// Messages published.
        messages: u64,
    },
}

impl Scenario {
    /// Whether `target` can run it: the relay has no sessions and no TCP listener.
    pub fn supports(&self, target: Target) -> bool {
        let transport = match self {
            Self::Messaging(_, load) => load.transport,
            Self::Backlog { .. } | Self::Wildcards(..) | Self::Stalled { .. } => {
                return target != Target::Relay;
            }
            Self::Storm(transport, _) | Self::Idle(transport, _) => *transport,
        };
        target != Target::Relay || transport == Transport::Ws
    }

    /// Whether durability settings matter (QoS 1/2 traffic is written to disk).
    pub fn is_durable(&self) -> bool {
        match self {
            Self::Messaging(_, load) | Self::Wildcards(_, load, _) => load.qos != QoS::AtMostOnce,
            Self::Backlog { .. } => true,
            Self::Storm(..) | Self::Idle(..) | Self::Stalled { .. } => false,
        }
    }

    /// What the rate counts, per second (or per connection for idle memory).
    pub fn unit(&self) -> &'static str {
        match self {
            Self::Messaging(..) | Self::Backlog { .. } | Self::Wildcards(..) | Self::Stalled { .. } => {
                "msg/s"
            }
            Self::Storm(..) => "conn/s",
            Self::Idle(..) => "KiB/conn",
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Deliveries (or connections) per second; for idle, KiB of broker memory per connection.
    pub rate: f64,
    /// p50, p99 and p99.9 latency in milliseconds, where latency applies.
    pub latency: Option<[f64; 3]>,
    /// Broker CPU seconds during the run.
    pub cpu: f64,
    /// Broker peak resident memory, bytes.
    pub peak_rss: u64,
    /// Wall-clock seconds of the measured part.
    pub seconds: f64,
    /// False when the run was cut short at the time limit.
    pub complete: bool,
}

/// A rate as the reports print it: one decimal below 100 (memory per connection in KiB,
/// rates of a stalled broker), none above.
pub fn figure(rate: f64) -> String {
    if rate < 100.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.0}")
    }
}

fn percentiles(histogram: &Histogram<u64>) -> Option<[f64; 3]> {
    (!histogram.is_empty())
        .then(|| [50.0, 99.0, 99.9].map(|q| histogram.value_at_quantile(q / 100.0) as f64 / 1_000.0))
}

/// Runs `scenario` once against a fresh `target`.
pub async fn run(scenario: Scenario, target: Target, programs: &Programs) -> Result<Sample, BenchError> {
    let broker = Running::start(target, programs).await?;
    let addr = |transport: Transport| match transport {
        Transport::Ws => Ok(broker.ws.clone()),
        Transport::Tcp => broker
            .tcp
            .clone()
            .ok_or_else(|| BenchError::Process("no TCP listener".into())),
    };
    let cpu_before = broker.cpu()?;
    let mut complete = true;
    let (rate, latency, seconds) = match scenario {
        Scenario::Messaging(shape, load) | Scenario::Wildcards(shape, load, _) => {
            let decoys = match scenario {
                Scenario::Wildcards(_, _, filters) => {
                    messaging::decoys(&addr(load.transport)?, load, filters).await?
                }
                _ => Vec::new(),
            };
            let roles = messaging::roles(shape, load.messages);
            let measured = messaging::run(&addr(load.transport)?, load, roles).await?;
            drop(decoys);
            complete = measured.complete;
            let seconds = measured.elapsed.as_secs_f64();
            (
                measured.delivered as f64 / seconds,
                percentiles(&measured.latency),
                seconds,
            )
        }
        Scenario::Backlog {
            transport,
            messages,
            payload,
        } => {
            let drained = connections::backlog(transport, &addr(transport)?, messages, payload).await?;
            let seconds = drained.elapsed.as_secs_f64();
            (drained.delivered as f64 / seconds, None, seconds)
        }
        Scenario::Stalled {
            subscribers,
            payload,
            messages,
        } => {
            let flood = connections::stalled(
                Transport::Ws,
                &addr(Transport::Ws)?,
                subscribers,
                payload,
                messages,
            )
            .await?;
            let seconds = flood.elapsed.as_secs_f64();
            (
                flood.published as f64 / seconds,
                percentiles(&flood.bystander),
                seconds,
            )
        }
        Scenario::Storm(transport, clients) => {
            let storm = connections::storm(transport, &addr(transport)?, clients).await?;
            let seconds = storm.elapsed.as_secs_f64();
            (
                storm.clients as f64 / seconds,
                percentiles(&storm.latency),
                seconds,
            )
        }
        Scenario::Idle(transport, connections) => {
            let started = std::time::Instant::now();
            let idle = connections::idle(transport, &broker, connections).await?;
            let per_connection =
                idle.rss_after.saturating_sub(idle.rss_before) as f64 / idle.connections as f64;
            (per_connection / 1024.0, None, started.elapsed().as_secs_f64())
        }
    };
    let cpu = (broker.cpu()? - cpu_before).as_secs_f64();
    let (_, peak_rss) = broker.memory()?;
    broker.stop().await;
    Ok(Sample {
        rate,
        latency,
        cpu,
        peak_rss,
        seconds,
        complete,
    })
}
