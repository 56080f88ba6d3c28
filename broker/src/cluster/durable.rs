//! QoS 1 and 2 messages between nodes, through the replicated JetStream stream
//! `<prefix>-messages` (subjects `<prefix>.durable.msg.<topic levels>`), so that none is
//! lost when a node dies.
//!
//! The node a message is published on writes it to the stream as part of its commit (see
//! [`crate::store::StoreOp::ShareMessage`]): the publisher's PUBACK or PUBREC goes once a
//! quorum of JetStream replicas holds it. Every node, the publishing one too, reads the
//! stream with one durable consumer named after the node (not one per subscription),
//! filtered on the topics its sessions subscribe to ([`NodeFilter`]), routes each message
//! to its own sessions, and acknowledges it once that routing is stored. A node that
//! restarts goes on from its last acknowledgement.
//!
//! A message's stream sequence number is its identity: a stored session keeps it under a
//! sequence number made from it ([`session_seq`]), so a message routed twice to a session
//! (again after a crash, or once by a node that let go of the session and once more by
//! the next) is kept once. When a session moves, the node taking it reads the messages
//! after the position of the node that let go (or, for a dead node, after the last one it
//! acknowledged) and gives the session those it did not get ([`DurableMessages::since`]).

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::pull::{Config as PullConfig, OrderedConfig};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::stream::{Config, Stream};
use futures_util::StreamExt;
use tabmq_protocol::packet::Publish;
use tracing::warn;

use super::node_filter::NodeFilter;
use super::share_groups::ShareGroups;
use super::subject::{filter_subjects, topic_subject};
use super::subject_set::cover;
use super::{ClusterError, hex_key};
use crate::router::{RouterSender, ToRouter};
use crate::store::{StoredMessage, message_bytes, message_from_bytes};

/// How long the stream keeps a message: the longest a node may stay dead and still have
/// the sessions it held resume with every message since.
pub(super) const RETENTION: Duration = Duration::from_secs(24 * 3600);

/// How many messages a node may hold unacknowledged (routed, not yet stored).
const MAX_UNACKNOWLEDGED: i64 = 20_000;

/// How long the stream waits for a node's acknowledgement before giving the message
/// again (a node acknowledges once its routing is stored, in milliseconds normally; a
/// restarted node gets what it had not acknowledged after this).
const ACK_WAIT: Duration = Duration::from_secs(10);

/// How often the server shows a waiting pull is alive; missing ones mean reading again.
const PULL_HEARTBEAT: Duration = Duration::from_secs(1);

/// How long one pull request waits on the server before it is made again.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// The header naming a message's publishing client (for the no-local option).
const ORIGIN_HEADER: &str = "Tabmq-Origin";

/// The bit that sets a session sequence number made from a stream sequence apart from the
/// session's own counter.
const FROM_STREAM: u64 = 1 << 63;

/// The session sequence number under which a session keeps the stream's message `seq`.
pub fn session_seq(stream_seq: u64) -> u64 {
    FROM_STREAM | stream_seq
}

/// The stream sequence a [`session_seq`] was made from.
pub fn stream_seq_of(session_seq: u64) -> u64 {
    session_seq & !FROM_STREAM
}

/// Whether a session sequence number was made by [`session_seq`].
pub fn is_from_stream(session_seq: u64) -> bool {
    session_seq & FROM_STREAM != 0
}

/// A message of the stream.
#[derive(Debug, Clone)]
pub struct DurableMessage {
    /// Its stream sequence number.
    pub seq: u64,
    /// The message as published.
    pub publish: Publish,
    /// The publishing client, if a client published it (not a will).
    pub origin: Option<Arc<str>>,
}

/// The stream of QoS 1/2 messages, and which of them this node's consumer receives.
#[derive(Clone)]
pub struct DurableMessages {
    stream: Stream,
    /// `<prefix>.durable`
    prefix: String,
    /// This node's id in hex, for the messages' ids.
    node: String,
    filter: NodeFilter,
    groups: ShareGroups,
}

/// The name of `node_id`'s consumer.
fn consumer_name(node_id: &str) -> String {
    format!("node-{}", hex_key(node_id))
}

/// A durable consumer named `name`: from the next message on, each message
/// acknowledged once routed and given again if it is not in time.
fn consumer_config(name: String, description: String) -> PullConfig {
    PullConfig {
        durable_name: Some(name),
        description: Some(description),
        deliver_policy: DeliverPolicy::New,
        ack_policy: AckPolicy::Explicit,
        max_ack_pending: MAX_UNACKNOWLEDGED,
        ack_wait: ACK_WAIT,
        ..PullConfig::default()
    }
}

/// The durable consumer of the share group `shared` (`$share/group/filter`, whose topic
/// filter is `filter`), created if no node has yet; every node with members reads it.
pub(super) async fn group_consumer(
    stream: &Stream,
    prefix: &str,
    shared: &str,
    filter: &str,
) -> Result<PullConsumer, String> {
    let subjects = filter_subjects(prefix, filter);
    let name = group_consumer_name(shared);
    let config = PullConfig {
        filter_subjects: cover(&format!("{prefix}.msg"), subjects.iter().map(String::as_str)),
        inactive_threshold: RETENTION,
        ..consumer_config(name.clone(), format!("tabmq share group {shared}"))
    };
    stream
        .get_or_create_consumer(&name, config)
        .await
        .map_err(|error| format!("cannot create or open the consumer of share group {shared}: {error}"))
}

/// A share group's consumer name: a hash of `$share/group/filter` (any length and any
/// characters; consumer names take few), the same on every node.
fn group_consumer_name(shared: &str) -> String {
    // FNV-1a, 64 bits.
    let hash = shared.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("share-{hash:016x}")
}

fn decode(message: &async_nats::Message, seq: u64) -> Option<DurableMessage> {
    let StoredMessage { publish, .. } = message_from_bytes(&message.payload)?;
    let origin = message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(ORIGIN_HEADER))
        .map(|value| Arc::from(value.as_str()));
    Some(DurableMessage { seq, publish, origin })
}

impl DurableMessages {
    /// Opens (or creates) the stream with `replicas` copies, and `node_id`'s consumer of
    /// it, created with the next message if the node is new (before the node takes
    /// connections, so that it misses nothing its clients may subscribe to).
    pub async fn open(
        jetstream: &async_nats::jetstream::Context,
        prefix: &str,
        replicas: usize,
        node_id: &str,
    ) -> Result<(Self, StreamReader), ClusterError> {
        let name = format!("{prefix}-messages");
        let prefix = format!("{prefix}.durable");
        let config = Config {
            name,
            description: Some("tabmq: QoS 1/2 messages between nodes".into()),
            subjects: vec![format!("{prefix}.>")],
            max_age: RETENTION,
            num_replicas: replicas,
            ..Config::default()
        };
        let stream = super::open_stream(jetstream, config).await?;
        let name = consumer_name(node_id);
        let config = consumer_config(name.clone(), format!("tabmq node {node_id}"));
        let created = PullConfig {
            // Nothing until its sessions' filters come.
            filter_subjects: vec![format!("{prefix}.none")],
            ..config.clone()
        };
        let label = format!("{} (consumer {name})", stream.cached_info().config.name);
        let consumer: PullConsumer = super::patiently(&label, || async {
            stream
                .get_or_create_consumer(&name, created.clone())
                .await
                .map_err(|error| error.to_string())
        })
        .await?;
        let applied = {
            let current = &consumer.cached_info().config;
            match current.filter_subject.as_str() {
                "" => current.filter_subjects.clone(),
                one => vec![one.to_owned()],
            }
        };
        let filter = NodeFilter::new(stream.clone(), config, prefix.clone(), applied);
        let groups = ShareGroups::new(stream.clone(), prefix.clone());
        let consumer = StreamReader {
            consumer,
            reading: Reading::Node(filter.clone()),
        };
        Ok((
            Self {
                stream,
                prefix,
                node: hex_key(node_id),
                filter,
                groups,
            },
            consumer,
        ))
    }

    /// Which messages this node's consumer receives.
    pub fn filter(&self) -> &NodeFilter {
        &self.filter
    }

    /// The share groups this node reads QoS 1/2 messages for.
    pub fn share_groups(&self) -> &ShareGroups {
        &self.groups
    }

    /// The subject, headers and body of `message` in the stream; `id` (unique on this
    /// node) makes JetStream keep it once if it is written again.
    pub fn encode(
        &self,
        message: &StoredMessage,
        origin: Option<&str>,
        id: u64,
    ) -> (String, HeaderMap, Vec<u8>) {
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{}-{id}", self.node).as_str(),
        );
        if let Some(origin) = origin {
            headers.insert(ORIGIN_HEADER, origin);
        }
        (
            topic_subject(&self.prefix, &message.publish.topic),
            headers,
            message_bytes(message),
        )
    }

    /// The stream sequence up to which `node_id` acknowledged every message: what it
    /// routed and stored, when it is dead.
    pub async fn acknowledged_by(&self, node_id: &str) -> Option<u64> {
        let stream = self.stream.clone();
        let info = stream.consumer_info(consumer_name(node_id)).await.ok()?;
        Some(info.ack_floor.stream_sequence)
    }

    /// Every message after stream sequence `after`, and the last sequence read.
    pub async fn since(&self, after: u64) -> Result<(Vec<DurableMessage>, u64), String> {
        let consumer = self
            .stream
            .create_consumer(OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after + 1,
                },
                ..OrderedConfig::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let mut remaining = consumer.cached_info().num_pending;
        let mut last = after;
        let mut messages = Vec::new();
        let mut delivered = consumer.messages().await.map_err(|e| e.to_string())?;
        while remaining > 0 {
            let Some(message) = delivered.next().await else {
                break;
            };
            let message = message.map_err(|e| e.to_string())?;
            let info = message.info().map_err(|e| e.to_string())?;
            remaining = info.pending;
            last = info.stream_sequence;
            messages.extend(decode(&message, last));
        }
        Ok((messages, last))
    }
}

/// A reader of the cluster's stream of QoS 1/2 messages: a node's own consumer, or a
/// share group's, which every node with members of the group reads.
pub struct StreamReader {
    consumer: PullConsumer,
    reading: Reading,
}

/// What a [`StreamReader`] reads for.
enum Reading {
    /// The node's sessions' ordinary subscriptions, with the node's filter.
    Node(NodeFilter),
    /// One member of a share group (`$share/group/filter`) in the whole cluster.
    Group(Arc<str>),
}

impl StreamReader {
    /// A reader of `consumer` for the share group `shared` (`$share/group/filter`).
    pub(super) fn for_group(consumer: PullConsumer, shared: &str) -> Self {
        Self {
            consumer,
            reading: Reading::Group(shared.into()),
        }
    }

    /// Hands every message to the router, from where this node left off, until the router
    /// goes away. Reading starts again after an error (a NATS server died, the consumer's
    /// leader moved), so the node goes on from its last acknowledgement.
    pub async fn run(self, router: RouterSender) {
        loop {
            let messages = self
                .consumer
                .stream()
                .heartbeat(PULL_HEARTBEAT)
                .expires(PULL_EXPIRES)
                .messages()
                .await;
            match messages {
                Ok(mut messages) => {
                    while let Some(message) = messages.next().await {
                        let message = match message {
                            Ok(message) => message,
                            Err(error) => {
                                warn!(%error, "cluster: reading the stream of QoS 1/2 messages failed; reading again");
                                break;
                            }
                        };
                        if self.hand_over(message, &router).await.is_err() {
                            return;
                        }
                    }
                }
                Err(error) => {
                    warn!(%error, "cluster: cannot read the stream of QoS 1/2 messages; trying again");
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Hands one message to the router; `Err` once the router is gone.
    async fn hand_over(
        &self,
        message: async_nats::jetstream::Message,
        router: &RouterSender,
    ) -> Result<(), ()> {
        let Ok(seq) = message.info().map(|info| info.stream_sequence) else {
            return Ok(());
        };
        let (message, acker) = message.split();
        if let Reading::Node(filter) = &self.reading
            && filter.is_replay(seq, &message.subject)
        {
            let _ = acker.ack().await;
            return Ok(());
        }
        let Some(durable) = decode(&message, seq) else {
            warn!(seq, "cluster: an undecodable QoS 1/2 message was skipped");
            let _ = acker.ack().await;
            return Ok(());
        };
        let group = match &self.reading {
            Reading::Node(_) => None,
            Reading::Group(shared) => Some(shared.clone()),
        };
        let routed = ToRouter::Durable(Box::new((durable, StreamAck(Box::new(acker)), group)));
        router.send(routed).await.map_err(|_| ())
    }
}

/// The acknowledgement of one message to the stream, sent once its routing is stored.
pub struct StreamAck(Box<Acker>);

impl std::fmt::Debug for StreamAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamAck")
    }
}

/// Acknowledges messages once their routing is stored, in the order given.
pub(super) async fn acknowledge(mut acks: tokio::sync::mpsc::UnboundedReceiver<StreamAck>) {
    while let Some(StreamAck(acker)) = acks.recv().await {
        let _ = acker.ack().await;
    }
}
