//! Message throughput and latency: fan-in, fan-out and rooms. Every connection is a task;
//! publishers are held to a window of deliveries not yet seen by the subscribers (a closed
//! loop), so each broker is measured at the rate it sustains without queueing or dropping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tabmq_protocol::QoS;
use tabmq_protocol::client::ClientEvent;
use tabmq_protocol::flow::SessionFlows;
use tokio::sync::{Barrier, Notify};

use crate::error::BenchError;
use crate::peer::{Peer, config};
use crate::transport::Transport;

/// The message load of a run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// WebSocket or TCP.
    pub transport: Transport,
    /// QoS of publications and subscriptions.
    pub qos: QoS,
    /// Payload size in bytes (at least 8: it carries the send time).
    pub payload: usize,
    /// Messages published in total, across publishers.
    pub messages: u64,
    /// Whether the clients have persistent sessions (a broker then stores their QoS 1/2
    /// messages before acknowledging them).
    pub persistent: bool,
}

/// One connection's part: what it publishes and what it subscribes to.
#[derive(Debug, Clone)]
pub struct Role {
    /// Topic and number of messages to publish there.
    pub publish: Option<(String, u64)>,
    /// Topic to subscribe to, and how many messages will arrive there.
    pub subscribe: Option<(String, u64)>,
    /// Deliveries each of its messages makes (the topic's subscriber count).
    pub fan: u64,
}

/// Filters one decoy client holds (tabmq's default `max_subscriptions_per_session`).
const FILTERS_PER_DECOY: u64 = 100;

/// Clients holding `filters` wildcard filters between them (`decoy/{client}/{n}/+`),
/// none matching a topic of the runs: hold them while the run goes on.
pub async fn decoys(addr: &str, load: Load, filters: u64) -> Result<Vec<Peer>, BenchError> {
    let mut peers = Vec::new();
    for client in 0..filters.div_ceil(FILTERS_PER_DECOY) {
        let (mut peer, _) = Peer::connect(
            load.transport,
            addr,
            config(&format!("bench-decoy-{client}"), false),
            SessionFlows::default(),
        )
        .await?;
        let count = FILTERS_PER_DECOY.min(filters - client * FILTERS_PER_DECOY);
        let list: Vec<String> = (0..count).map(|n| format!("decoy/{client}/{n}/+")).collect();
        peer.subscribe_all(&list).await?;
        peers.push(peer);
    }
    Ok(peers)
}

/// The roles of `connections` peers in a fan-in, fan-out or rooms run.
pub fn roles(shape: Shape, messages: u64) -> Vec<Role> {
    let split = |count: u64, parts: u64, index: u64| count / parts + u64::from(index < count % parts);
    match shape {
        Shape::FanIn { publishers } => {
            let mut roles: Vec<Role> = (0..publishers)
                .map(|i| Role {
                    publish: Some(("bench/fan-in".into(), split(messages, publishers, i))),
                    subscribe: None,
                    fan: 1,
                })
                .collect();
            roles.push(Role {
                publish: None,
                subscribe: Some(("bench/fan-in".into(), messages)),
                fan: 1,
            });
            roles
        }
        Shape::FanOut { subscribers } => {
            let mut roles = vec![Role {
                publish: Some(("bench/fan-out".into(), messages)),
                subscribe: None,
                fan: subscribers,
            }];
            roles.extend((0..subscribers).map(|_| Role {
                publish: None,
                subscribe: Some(("bench/fan-out".into(), messages)),
                fan: subscribers,
            }));
            roles
        }
        Shape::Rooms { rooms, members } => {
            let per_room = |room: u64| split(messages, rooms, room);
            (0..rooms)
                .flat_map(|room| {
                    (0..members).map(move |member| Role {
                        publish: Some((
                            format!("bench/room/{room}"),
                            split(per_room(room), members, member),
                        )),
                        subscribe: Some((format!("bench/room/{room}"), per_room(room))),
                        fan: members,
                    })
                })
                .collect()
        }
    }
}

/// Who talks to whom.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// N publishers to one subscriber.
    FanIn {
        /// Publisher count.
        publishers: u64,
    },
    /// One publisher to N subscribers.
    FanOut {
        /// Subscriber count.
        subscribers: u64,
    },
    /// Rooms of members who all publish to and subscribe to their room.
    Rooms {
        /// Room count.
        rooms: u64,
        /// Members per room.
        members: u64,
    },
}

/// What a messaging run measured.
pub struct Measured {
    /// Messages received by subscribers, in total.
    pub delivered: u64,
    /// From the first publication to the last delivery.
    pub elapsed: Duration,
    /// Publish-to-delivery latency, microseconds (empty when cut short).
    pub latency: Histogram<u64>,
    /// False when the run was cut at [`RUN_LIMIT`]: the rate is what got through by then.
    pub complete: bool,
}

/// The longest a messaging run may take; a broker slower than that is cut short.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Deliveries in flight (published and not yet received) that publishers may not exceed.
const WINDOW: u64 = 2_000;

/// Messages a publisher may have queued or in flight at once.
const MAX_UNFINISHED: usize = 256;

/// Bytes of publications written between two reads.
const MAX_BATCH_BYTES: usize = 64 * 1024;

struct Shared {
    epoch: Instant,
    /// Deliveries implied by what was published so far.
    owed: AtomicU64,
    delivered: AtomicU64,
    progress: Notify,
    start: Barrier,
}

impl Shared {
    /// Whether publishers may publish: fewer than [`WINDOW`] deliveries are outstanding.
    fn window_open(&self) -> bool {
        self.owed.load(Ordering::Relaxed) < self.delivered.load(Ordering::Relaxed) + WINDOW
    }
}

/// Runs `roles` against the broker at `addr`.
pub async fn run(addr: &str, load: Load, roles: Vec<Role>) -> Result<Measured, BenchError> {
    run_spread(&[addr.to_owned()], load, roles).await
}

/// Runs `roles` against the brokers at `addrs` (nodes of one cluster): the `n`th
/// connection goes to the `n`th node, round robin.
pub async fn run_spread(addrs: &[String], load: Load, roles: Vec<Role>) -> Result<Measured, BenchError> {
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        owed: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        progress: Notify::new(),
        start: Barrier::new(roles.len() + 1),
    });
    let mut tasks = Vec::new();
    let addrs: Arc<[String]> = addrs.into();
    for (index, role) in roles.into_iter().enumerate() {
        let (shared, addrs) = (shared.clone(), addrs.clone());
        tasks.push(tokio::spawn(async move {
            member(&addrs, load, index, role, &shared).await
        }));
    }
    shared.start.wait().await;
    let started = Instant::now();
    let mut latency = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    let aborts: Vec<_> = tasks.iter().map(|task| task.abort_handle()).collect();
    let joined = tokio::time::timeout(RUN_LIMIT, async {
        for task in tasks {
            let histogram = task
                .await
                .map_err(|e| BenchError::Protocol(format!("a peer task failed: {e}")))??;
            latency.add(histogram).expect("same precision");
        }
        Ok::<_, BenchError>(())
    })
    .await;
    let complete = match joined {
        Ok(result) => {
            result?;
            true
        }
        Err(_) => {
            aborts.iter().for_each(|task| task.abort());
            false
        }
    };
    Ok(Measured {
        delivered: shared.delivered.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        latency: if complete {
            latency
        } else {
            Histogram::new(3).expect("valid")
        },
        complete,
    })
}

/// One connection of a run, on node `index` (modulo the nodes) of `addrs`.
async fn member(
    addrs: &[String],
    load: Load,
    index: usize,
    role: Role,
    shared: &Shared,
) -> Result<Histogram<u64>, BenchError> {
    let mut latency = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    let addr = &addrs[index % addrs.len()];
    let (mut peer, _) = match Peer::connect(
        load.transport,
        addr,
        config(&format!("bench-{index}"), load.persistent),
        SessionFlows::default(),
    )
    .await
    {
        Ok(connected) => connected,
        Err(error) => {
            shared.start.wait().await;
            return Err(error);
        }
    };
    if let Some((topic, _)) = &role.subscribe {
        peer.subscribe(topic, load.qos).await?;
        let others = addrs.iter().filter(|other| *other != addr);
        for (node, other) in others.enumerate() {
            if let Err(error) = interest_reached(&mut peer, topic, other, load.transport, node).await {
                shared.start.wait().await;
                return Err(error);
            }
        }
    }
    shared.start.wait().await;
    let (topic, mut to_publish) = role.publish.clone().unwrap_or_default();
    let mut to_receive = role.subscribe.as_ref().map_or(0, |(_, count)| *count);
    let mut payload = vec![0u8; load.payload.max(8)];
    loop {
        // Publish while the window allows it, then flush once.
        let mut published = false;
        let mut batch_bytes = 0;
        while to_publish > 0 && shared.window_open() {
            let sent_at = shared.epoch.elapsed().as_nanos() as u64;
            payload[..8].copy_from_slice(&sent_at.to_be_bytes());
            peer.publish(&topic, payload.clone(), load.qos)?;
            shared.owed.fetch_add(role.fan, Ordering::Relaxed);
            to_publish -= 1;
            published = true;
            batch_bytes += payload.len();
            // Small writes between reads: a task blocked writing while the broker is
            // blocked writing to it would deadlock both.
            if peer.unfinished() >= MAX_UNFINISHED || batch_bytes >= MAX_BATCH_BYTES {
                break;
            }
        }
        if published {
            peer.flush().await?;
        }
        let acknowledging = load.qos != QoS::AtMostOnce && peer.unfinished() > 0;
        if to_publish == 0 && to_receive == 0 && !acknowledging {
            return Ok(latency);
        }
        // Wait for bytes, or for subscribers to open the window.
        let progress = shared.progress.notified();
        tokio::pin!(progress);
        progress.as_mut().enable();
        let window_open = to_publish > 0 && shared.window_open() && peer.unfinished() < MAX_UNFINISHED;
        if window_open {
            continue;
        }
        let bytes = tokio::select! {
            bytes = peer.next_bytes() => Some(bytes?),
            () = &mut progress, if to_publish > 0 => None,
        };
        if let Some(bytes) = bytes {
            let mut arrived = 0;
            peer.handle(&bytes, |event| {
                // Probes (see `interest_reached`) carry no send time.
                if let ClientEvent::Message(message) = event
                    && message.payload.len() >= 8
                {
                    let now = shared.epoch.elapsed().as_nanos() as u64;
                    let mut sent = [0u8; 8];
                    sent.copy_from_slice(&message.payload[..8]);
                    let micros = now.saturating_sub(u64::from_be_bytes(sent)) / 1_000;
                    let _ = latency.record(micros.max(1));
                    arrived += 1;
                }
            })
            .await?;
            if arrived > 0 {
                to_receive = to_receive.saturating_sub(arrived);
                shared.delivered.fetch_add(arrived, Ordering::Relaxed);
                shared.progress.notify_waiters();
            }
        }
    }
}

/// How long a subscription may take to reach another node before the run fails.
const INTEREST_PATIENCE: Duration = Duration::from_secs(10);

/// Waits until `subscriber`'s subscription to `topic` takes messages published on node
/// `addr` (QoS 0 between nodes is at most once: messages published before it gets there
/// are lost, and a closed-loop run would wait for them in vain). Publishes probes there,
/// one-byte payloads the run does not count, until one arrives.
async fn interest_reached(
    subscriber: &mut Peer,
    topic: &str,
    addr: &str,
    transport: Transport,
    node: usize,
) -> Result<(), BenchError> {
    let marker = vec![node as u8];
    let (mut prober, _) = Peer::connect(
        transport,
        addr,
        config(&format!("bench-probe-{topic}-{node}"), false),
        SessionFlows::default(),
    )
    .await?;
    let probing = {
        let (topic, marker) = (topic.to_owned(), marker.clone());
        tokio::spawn(async move {
            while prober.publish(&topic, marker.clone(), QoS::AtMostOnce).is_ok()
                && prober.flush().await.is_ok()
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let arrived = tokio::time::timeout(
        INTEREST_PATIENCE,
        subscriber.until(|event| matches!(event, ClientEvent::Message(m) if *m.payload == *marker)),
    )
    .await;
    probing.abort();
    match arrived {
        Ok(result) => result,
        Err(_) => Err(BenchError::Protocol(format!(
            "a subscription to {topic} did not reach the node at {addr} within {INTEREST_PATIENCE:?}"
        ))),
    }
}
