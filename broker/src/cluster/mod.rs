//! Cluster mode: broker nodes that serve as one over NATS with JetStream.
//!
//! - QoS 0 messages and share groups go over NATS core: each node publishes what its
//!   clients publish to the message's subject (see [`subject`]) and subscribes to the
//!   subjects of the filters its sessions hold, counted by the router ([`InterestChange`]),
//!   so a node receives only what its clients want. A message comes back to its own node
//!   when that node also wants it; the node id in its headers drops it there. Two
//!   overlapping filters (`a/#`, `a/+`) make NATS deliver a message once per subscription;
//!   a sequence number per sending node drops the second copy. Share groups
//!   (`$share/group/filter`) are NATS queue subscriptions named after group and filter on
//!   every node, so one member in the whole cluster gets each QoS 0 message.
//! - QoS 1/2 messages go through a replicated stream ([`DurableMessages`]), written with
//!   the publisher's commit and read by every node with one consumer each, filtered on
//!   the topics its sessions subscribe to ([`NodeFilter`]); each share group has a
//!   consumer too, read by the nodes with members ([`ShareGroups`]).
//! - Which node holds each client id is kept in JetStream ([`Ownership`]); a session moves
//!   between nodes with [`Handover`], and the sessions of a dead node are adopted
//!   (`liveness`). Stored sessions themselves are in JetStream too
//!   ([`crate::store::JetStreamStore`]), and so are retained messages ([`RetainedBucket`]).

mod durable;
mod handover;
mod liveness;
mod node_filter;
mod owner_entry;
mod ownership;
mod retained;
mod share_groups;
pub mod subject;
mod subject_set;

pub use durable::{
    DurableMessage, DurableMessages, StreamAck, StreamReader, is_from_stream, session_seq, stream_seq_of,
};
pub use handover::Handover;
pub use node_filter::NodeFilter;
pub use owner_entry::FlapLimits;
pub use ownership::{ClaimError, Ownership};
pub use retained::RetainedBucket;
pub use share_groups::ShareGroups;

/// How long a node waits at startup for JetStream to create or open a bucket (leaders
/// being elected, other nodes creating the same bucket at the same time).
const BUCKET_PATIENCE: Duration = Duration::from_secs(30);

/// Opens the key-value bucket `bucket` (one value per key, `replicas` copies), creating it
/// if no node has yet; tries again while JetStream is not ready.
async fn open_bucket(
    jetstream: &async_nats::jetstream::Context,
    bucket: String,
    description: &str,
    replicas: usize,
) -> Result<async_nats::jetstream::kv::Store, ClusterError> {
    let config = async_nats::jetstream::kv::Config {
        bucket,
        description: description.to_owned(),
        history: 1,
        num_replicas: replicas,
        ..async_nats::jetstream::kv::Config::default()
    };
    let name = config.bucket.clone();
    patiently(&name, || async {
        match jetstream.get_key_value(config.bucket.as_str()).await {
            Ok(store) => Ok(store),
            Err(_) => jetstream
                .create_key_value(config.clone())
                .await
                .map_err(|error| error.to_string()),
        }
    })
    .await
}

/// Opens the stream `config` names, creating it if no node has yet; tries again while
/// JetStream is not ready.
pub(crate) async fn open_stream(
    jetstream: &async_nats::jetstream::Context,
    config: async_nats::jetstream::stream::Config,
) -> Result<async_nats::jetstream::stream::Stream, ClusterError> {
    patiently(&config.name, || async {
        jetstream
            .get_or_create_stream(config.clone())
            .await
            .map_err(|error| error.to_string())
    })
    .await
}

/// Runs `attempt` until it succeeds, for at most [`BUCKET_PATIENCE`] (leaders being
/// elected, other nodes creating the same stream or bucket at the same time).
async fn patiently<T, F>(name: &str, mut attempt: impl FnMut() -> F) -> Result<T, ClusterError>
where
    F: std::future::Future<Output = Result<T, String>>,
{
    let deadline = std::time::Instant::now() + BUCKET_PATIENCE;
    loop {
        match attempt().await {
            Ok(opened) => return Ok(opened),
            Err(reason) if std::time::Instant::now() >= deadline => {
                return Err(ClusterError::Bucket {
                    bucket: name.to_owned(),
                    reason,
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A bucket key or subject token for any text (both allow few characters): its bytes in hex.
pub fn hex_key(text: &str) -> String {
    text.bytes().map(|byte| format!("{byte:02x}")).collect()
}

/// The text of a [`hex_key`].
fn text_of_hex_key(key: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..key.len())
        .step_by(2)
        .map(|at| {
            key.get(at..at + 2)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        })
        .collect();
    String::from_utf8(bytes?).ok()
}

use std::time::Duration;

use async_nats::{HeaderMap, ServerAddr};
use foldhash::HashMap;
use futures_util::StreamExt;
use tabmq_protocol::packet::Publish;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use self::liveness::Liveness;
use crate::config::Cluster;
use crate::metrics::Metrics;
use tabmq_protocol::topic::SharedFilter;

use crate::router::{InterestChange, Reach, RouterSender, ToRouter};
use crate::store::{JetStreamStore, Snapshot, StoredMessage, message_bytes, message_from_bytes};

/// Messages waiting to be handed to NATS before new ones are dropped (and counted).
const OUTBOUND_CAPACITY: usize = 16 * 1024;

const NODE_HEADER: &str = "Tabmq-Node";
const SEQ_HEADER: &str = "Tabmq-Seq";

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A `cluster.nats` URL does not parse.
    #[error("cluster.nats: {url:?} is not a NATS URL: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The credentials file cannot be read.
    #[error("cluster.creds_file: {0}")]
    Credentials(std::io::Error),
    /// No NATS server answered.
    #[error("cannot connect to NATS at {urls}: {reason}")]
    Connect {
        /// The URLs tried.
        urls: String,
        /// Why.
        reason: String,
    },
    /// A JetStream bucket or stream cannot be created or opened.
    #[error(
        "cannot create or open the JetStream bucket or stream {bucket}: {reason} (cluster.replicas must not exceed the number of NATS servers)"
    )]
    Bucket {
        /// The bucket.
        bucket: String,
        /// What NATS said.
        reason: String,
    },
    /// The NATS servers run without JetStream.
    #[error(
        "NATS at {urls} has no JetStream for this account ({reason}); start nats-server with -js (jetstream {{}} in its config)"
    )]
    NoJetStream {
        /// The URLs tried.
        urls: String,
        /// What NATS said.
        reason: String,
    },
}

/// What the router hands to the cluster.
enum Outbound {
    Message(Box<Publish>),
    Interest(InterestChange),
}

/// The router's side of the cluster.
#[derive(Clone)]
pub struct ClusterLink {
    outbound: mpsc::Sender<Outbound>,
    acks: mpsc::UnboundedSender<StreamAck>,
    metrics: std::sync::Arc<Metrics>,
}

impl ClusterLink {
    /// Sends a message published on this node to the other nodes.
    pub fn forward(&self, publish: &Publish) {
        if self
            .outbound
            .try_send(Outbound::Message(Box::new(publish.clone())))
            .is_err()
        {
            Metrics::inc(&self.metrics.cluster_dropped_total);
        }
    }

    /// Acknowledges a message of the cluster's stream: its routing is stored.
    pub fn acknowledge(&self, ack: StreamAck) {
        let _ = self.acks.send(ack);
    }

    /// Tells the cluster that this node wants (or no longer wants) a filter's messages.
    pub fn interest(&self, change: InterestChange) {
        if self.outbound.try_send(Outbound::Interest(change)).is_err() {
            warn!("cluster link full: a subscription change was lost");
        }
    }
}

/// A node's connection to NATS, its view of which node holds which client id, and the
/// retained messages of the cluster.
pub struct Nats {
    client: async_nats::Client,
    ownership: Ownership,
    /// Claims client ids and brings sessions over from other nodes.
    pub handover: Handover,
    /// Where sessions are stored: the broker's store in cluster mode.
    pub state: JetStreamStore,
    consumer: StreamReader,
    share_groups: ShareGroups,
    liveness: Liveness,
    /// The sessions this node held when it stopped, to resume.
    pub held_sessions: Snapshot,
    retained: RetainedBucket,
    /// The retained messages held when the node started.
    pub initial_retained: Vec<StoredMessage>,
    retained_changes: async_nats::jetstream::kv::Watch,
}

/// Connects to NATS, checks that JetStream is there and opens the buckets, with
/// `cluster.replicas` copies (at most as many as NATS servers); `flap` limits takeovers
/// between nodes.
pub async fn connect(config: &Cluster, flap: FlapLimits) -> Result<Nats, ClusterError> {
    let urls = config.nats.join(", ");
    let addresses = config
        .nats
        .iter()
        .map(|url| {
            url.parse::<ServerAddr>().map_err(|error| ClusterError::BadUrl {
                url: url.clone(),
                reason: error.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("tabmq {}", config.node_id))
        .connection_timeout(Duration::from_secs(5));
    if !config.user.is_empty() {
        options = options.user_and_password(config.user.clone(), config.password.clone());
    } else if !config.token.is_empty() {
        options = options.token(config.token.clone());
    } else if !config.creds_file.is_empty() {
        options = options
            .credentials_file(&config.creds_file)
            .await
            .map_err(ClusterError::Credentials)?;
    }
    let client = options
        .connect(addresses)
        .await
        .map_err(|error| ClusterError::Connect {
            urls: urls.clone(),
            reason: error.to_string(),
        })?;
    async_nats::jetstream::new(client.clone())
        .query_account()
        .await
        .map_err(|error| ClusterError::NoJetStream {
            urls,
            reason: error.to_string(),
        })?;
    let info = client.server_info();
    // One server alone holds one copy; a cluster holds as many as configured (its other
    // servers' addresses reach a client later than its first INFO: they do not say its size).
    let replicas = match info.cluster {
        Some(_) => config.replicas,
        None => 1,
    };
    info!(
        server = %info.server_name,
        cluster = info.cluster.as_deref().unwrap_or("-"),
        replicas,
        "cluster mode: connected to NATS with JetStream"
    );
    let jetstream = async_nats::jetstream::new(client.clone());
    let ownership = Ownership::open(&jetstream, &config.prefix, replicas, &config.node_id, flap).await?;
    let (durable, consumer) =
        DurableMessages::open(&jetstream, &config.prefix, replicas, &config.node_id).await?;
    let state = JetStreamStore::open(jetstream.clone(), &config.prefix, replicas, durable.clone()).await?;
    let held = ownership.held_here().await?;
    let held_sessions = state
        .load_sessions(&held)
        .await
        .map_err(|error| ClusterError::Bucket {
            bucket: format!("{}-state", config.prefix),
            reason: error.to_string(),
        })?;
    // Their connections ended with this node's last run.
    for client_id in &held {
        ownership.release(client_id).await;
    }
    let liveness = Liveness::open(
        &jetstream,
        &config.prefix,
        replicas,
        &config.node_id,
        ownership.clone(),
        state.clone(),
        durable.clone(),
    )
    .await?;
    let handover = Handover::new(
        client.clone(),
        ownership.clone(),
        state.clone(),
        durable.clone(),
        &config.prefix,
    );
    let retained = RetainedBucket::open(&jetstream, &config.prefix, replicas).await?;
    let (initial_retained, retained_changes) = retained.load().await?;
    let share_groups = durable.share_groups().clone();
    Ok(Nats {
        client,
        ownership,
        handover,
        state,
        consumer,
        share_groups,
        liveness,
        held_sessions,
        retained,
        initial_retained,
        retained_changes,
    })
}

/// The cluster's tasks, stopped together at shutdown: each holds a way to the router,
/// which ends only once they are gone.
pub struct ClusterTasks {
    tasks: Vec<JoinHandle<()>>,
    share_groups: ShareGroups,
}

impl ClusterTasks {
    /// Stops every task.
    pub async fn stop(self) {
        self.share_groups.stop();
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts the tasks that carry messages between this node and NATS and watch for
/// takeovers by other nodes.
pub fn start(
    nats: Nats,
    config: &Cluster,
    router: RouterSender,
    metrics: std::sync::Arc<Metrics>,
) -> (ClusterLink, ClusterTasks) {
    let (outbound, requests) = mpsc::channel(OUTBOUND_CAPACITY);
    let watch = tokio::spawn(nats.ownership.clone().watch_takeovers(router.clone()));
    let handovers = tokio::spawn(
        nats.handover
            .clone()
            .serve(config.node_id.clone(), router.clone()),
    );
    let consumer = tokio::spawn(nats.consumer.run(router.clone()));
    nats.share_groups.start(router.clone());
    let liveness = tokio::spawn(nats.liveness.run(router.clone()));
    let (acks, to_acknowledge) = mpsc::unbounded_channel();
    let acknowledger = tokio::spawn(durable::acknowledge(to_acknowledge));
    let follow = tokio::spawn(RetainedBucket::follow(nats.retained_changes, router.clone()));
    let bridge = Bridge {
        client: nats.client,
        retained: nats.retained,
        prefix: config.prefix.clone(),
        node_id: config.node_id.clone(),
        // A new sequence per boot, above the last one's: the other nodes keep the highest
        // they saw from this node.
        next_seq: crate::clock::unix_millis().saturating_mul(1_000_000),
        subscriptions: HashMap::default(),
        last_seen: HashMap::default(),
        router,
    };
    let bridge = tokio::spawn(bridge.run(requests));
    let tasks = ClusterTasks {
        tasks: vec![bridge, watch, handovers, consumer, liveness, acknowledger, follow],
        share_groups: nats.share_groups,
    };
    (
        ClusterLink {
            outbound,
            acks,
            metrics,
        },
        tasks,
    )
}

/// A message from the cluster, as received.
struct Incoming {
    subject: async_nats::Subject,
    headers: Option<HeaderMap>,
    payload: bytes::Bytes,
    /// The share group (`$share/group/filter`) whose queue subscription received it;
    /// `None` for an ordinary subscription.
    group: Option<String>,
}

struct Bridge {
    client: async_nats::Client,
    retained: RetainedBucket,
    prefix: String,
    node_id: String,
    next_seq: u64,
    /// The forwarding tasks of each wanted filter's subjects.
    subscriptions: HashMap<String, Vec<JoinHandle<()>>>,
    /// The highest sequence seen from each node, per ordinary subscriptions (`None`) and
    /// per share group.
    last_seen: HashMap<(String, Option<String>), u64>,
    router: RouterSender,
}

impl Bridge {
    async fn run(mut self, mut requests: mpsc::Receiver<Outbound>) {
        let (incoming_tx, mut incoming) = mpsc::channel::<Incoming>(1024);
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(Outbound::Message(publish)) => self.publish(&publish).await,
                    Some(Outbound::Interest(change)) => self.change_interest(change, &incoming_tx).await,
                    None => break,
                },
                Some(message) = incoming.recv() => {
                    if self.deliver(message).await.is_err() {
                        break;
                    }
                }
            }
        }
        for tasks in self.subscriptions.into_values() {
            tasks.iter().for_each(JoinHandle::abort);
        }
    }

    async fn publish(&mut self, publish: &Publish) {
        if publish.retain {
            self.retained.set(publish).await;
        }
        let subject = subject::topic_subject(&self.prefix, &publish.topic);
        let mut headers = HeaderMap::new();
        headers.insert(NODE_HEADER, self.node_id.as_str());
        headers.insert(SEQ_HEADER, self.next_seq.to_string().as_str());
        self.next_seq += 1;
        let message = StoredMessage {
            publish: publish.clone(),
            expires_at_ms: None,
        };
        if let Err(error) = self
            .client
            .publish_with_headers(subject, headers, message_bytes(&message).into())
            .await
        {
            warn!(%error, "cluster: a message could not be sent to NATS");
        }
    }

    async fn change_interest(&mut self, change: InterestChange, incoming: &mpsc::Sender<Incoming>) {
        match change {
            InterestChange::Gained(filter) => {
                // A share group's filter is a queue subscription, the same on every node
                // with members: NATS gives each message to one of them.
                let (topic_filter, group) = match SharedFilter::parse(&filter) {
                    Ok(Some(shared)) => (shared.filter.to_owned(), Some(filter.clone())),
                    _ => (filter.clone(), None),
                };
                let mut tasks = Vec::new();
                for subject in subject::filter_subjects(&self.prefix, &topic_filter) {
                    let subscribed = match &group {
                        Some(group) => self.client.queue_subscribe(subject, hex_key(group)).await,
                        None => self.client.subscribe(subject).await,
                    };
                    match subscribed {
                        Ok(mut subscriber) => {
                            let incoming = incoming.clone();
                            let group = group.clone();
                            tasks.push(tokio::spawn(async move {
                                while let Some(message) = subscriber.next().await {
                                    let message = Incoming {
                                        subject: message.subject,
                                        headers: message.headers,
                                        payload: message.payload,
                                        group: group.clone(),
                                    };
                                    if incoming.send(message).await.is_err() {
                                        return;
                                    }
                                }
                            }));
                        }
                        Err(error) => warn!(%error, %filter, "cluster: cannot subscribe"),
                    }
                }
                // The server has the subscriptions once this returns.
                let _ = self.client.flush().await;
                self.subscriptions.insert(filter, tasks);
            }
            InterestChange::Lost(filter) => {
                for task in self.subscriptions.remove(&filter).unwrap_or_default() {
                    task.abort();
                }
            }
        }
    }

    /// Hands a message from another node to the router, once.
    async fn deliver(&mut self, message: Incoming) -> Result<(), ()> {
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(name))
                .map(|value| value.as_str().to_owned())
        };
        let (Some(node), Some(seq)) = (
            header(NODE_HEADER),
            header(SEQ_HEADER).and_then(|s| s.parse::<u64>().ok()),
        ) else {
            return Ok(());
        };
        // This node's own messages reach its ordinary subscriptions directly, but its share
        // groups only through the cluster.
        if node == self.node_id && message.group.is_none() {
            return Ok(());
        }
        let last = self.last_seen.entry((node, message.group.clone())).or_default();
        if seq <= *last {
            return Ok(());
        }
        *last = seq;
        let topic = subject::subject_topic(&self.prefix, &message.subject);
        let group = message.group;
        let Some(message) =
            message_from_bytes(&message.payload).filter(|m| Some(&m.publish.topic) == topic.as_ref())
        else {
            warn!(subject = %message.subject, "cluster: a malformed message was dropped");
            return Ok(());
        };
        // QoS 1/2 messages come through the cluster's stream, to share groups too.
        if message.publish.qos != tabmq_protocol::QoS::AtMostOnce {
            return Ok(());
        }
        let reach = match group {
            Some(group) => Reach::Group(group),
            None => Reach::Ordinary,
        };
        self.router
            .send(ToRouter::FromCluster(Box::new(message.publish), reach))
            .await
            .map_err(|_| ())
    }
}
