//! The cluster's storage backend: every stored session, with its queued, in-flight and
//! incoming QoS 1/2 state, in the replicated JetStream stream `<prefix>-state`, so a
//! session resumes on any node.
//!
//! One subject per record, holding its latest value (`max_messages_per_subject = 1`):
//! `<prefix>.state.<client id in hex>.r` (the session record), `….q.<seq>.m` (a queued
//! message), `….q.<seq>.f` (its packet id and handshake state once in flight),
//! `….i.<packet id>` (a QoS 2 packet id received and not released) and `….d` (the highest
//! stream sequence of the cluster's messages the session is done with). A removal purges
//! the subjects, leaving nothing behind. Values are sealed as in the embedded store
//! (CRC-32 over table, key and bytes). A commit returns once JetStream has acknowledged
//! every write, which it does when a quorum of its replicas holds it. A commit also
//! hands QoS 1/2 messages to the other nodes ([`DurableMessages`]) and changes which of
//! theirs this node receives. Retained messages
//! live in the cluster's retained bucket, not here.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::stream::{Config, Stream};
use futures_util::StreamExt;
use tokio::runtime::Handle;

use crate::cluster::{ClusterError, DurableMessages, hex_key, open_stream};

use super::format::{self, InflightRecord, MessageRecord, RecordKey, SessionRecordV2};
use super::{Snapshot, Store, StoreError, StoreOp, StoreView, StoredSession};

/// How long one commit may wait for JetStream before it counts as failed (and is retried).
const COMMIT_PATIENCE: Duration = Duration::from_secs(10);

/// How long a commit writes again while NATS routes its writes to no stream yet ("no
/// stream found": streams just created, as at a cluster's first start, whose interest has
/// not reached every server). Writing again is safe: every write is of a record's latest
/// value or a purge, and a message of the cluster's stream carries an id JetStream keeps
/// it once by.
const NOT_ROUTED_PATIENCE: Duration = Duration::from_secs(3);

/// Why writing a commit failed.
enum WriteError {
    /// NATS routed a write to no stream (yet).
    NotRouted(String),
    /// Anything else.
    Failed(StoreError),
}

impl From<StoreError> for WriteError {
    fn from(error: StoreError) -> Self {
        Self::Failed(error)
    }
}

fn write_error(error: async_nats::jetstream::context::PublishError) -> WriteError {
    match error.kind() {
        async_nats::jetstream::context::PublishErrorKind::StreamNotFound => {
            WriteError::NotRouted(error.to_string())
        }
        _ => WriteError::Failed(io(error)),
    }
}

/// Sessions in JetStream (see the module's documentation).
#[derive(Clone)]
pub struct JetStreamStore {
    jetstream: async_nats::jetstream::Context,
    stream: Stream,
    /// `<prefix>.state`
    subjects: String,
    /// `<prefix>-state`
    name: String,
    /// The cluster's stream of QoS 1/2 messages, and this node's filter of it.
    durable: DurableMessages,
    /// The runtime the writer thread runs JetStream's futures on.
    runtime: Handle,
}

fn io(error: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("JetStream: {error}"))
}

impl JetStreamStore {
    /// Opens (or creates) the stream `<prefix>-state` with `replicas` copies; commits hand
    /// QoS 1/2 messages and filter changes to `durable`.
    pub async fn open(
        jetstream: async_nats::jetstream::Context,
        prefix: &str,
        replicas: usize,
        durable: DurableMessages,
    ) -> Result<Self, ClusterError> {
        let subjects = format!("{prefix}.state");
        let config = Config {
            name: format!("{prefix}-state"),
            description: Some("tabmq: sessions and their QoS 1/2 messages".into()),
            subjects: vec![format!("{subjects}.>")],
            max_messages_per_subject: 1,
            num_replicas: replicas,
            ..Config::default()
        };
        let name = config.name.clone();
        let stream = open_stream(&jetstream, config).await?;
        Ok(Self {
            jetstream,
            stream,
            subjects,
            name,
            durable,
            runtime: Handle::current(),
        })
    }

    fn session_subject(&self, client_id: &str) -> String {
        format!("{}.{}", self.subjects, hex_key(client_id))
    }

    /// The session of `client_id` as stored, if it is.
    pub async fn load_session(&self, client_id: &str) -> Result<Option<StoredSession>, StoreError> {
        let consumer = self
            .stream
            .create_consumer(OrderedConfig {
                filter_subject: format!("{}.>", self.session_subject(client_id)),
                deliver_policy: DeliverPolicy::All,
                ..OrderedConfig::default()
            })
            .await
            .map_err(io)?;
        let mut remaining = consumer.cached_info().num_pending;
        let mut record = None;
        let mut messages = BTreeMap::new();
        let mut inflight = BTreeMap::new();
        let mut incoming = Vec::new();
        let mut stream_done = 0;
        let mut delivered = consumer.messages().await.map_err(io)?;
        while remaining > 0 {
            let Some(message) = delivered.next().await else {
                break;
            };
            let message = message.map_err(io)?;
            remaining = message.info().map_err(io)?.pending;
            let tail = message
                .subject
                .strip_prefix(self.session_subject(client_id).as_str())
                .unwrap_or_default();
            let parts: Vec<&str> = tail.trim_start_matches('.').split('.').collect();
            let value = &message.payload;
            let damaged = |damage: format::Damage| StoreError::Damaged {
                path: format!("JetStream stream {}", self.name).into(),
                damage: vec![damage],
            };
            match parts.as_slice() {
                ["r"] => {
                    let opened: SessionRecordV2 =
                        format::open("sessions", &RecordKey::named(client_id), value).map_err(damaged)?;
                    record = Some(opened.try_into().map_err(io)?);
                }
                ["q", seq, "m"] => {
                    let seq: u64 = seq.parse().map_err(io)?;
                    let opened: MessageRecord =
                        format::open("messages", &RecordKey::numbered(client_id, seq), value)
                            .map_err(damaged)?;
                    messages.insert(seq, opened.try_into().map_err(io)?);
                }
                ["q", seq, "f"] => {
                    let seq: u64 = seq.parse().map_err(io)?;
                    let opened: InflightRecord =
                        format::open("inflight", &RecordKey::numbered(client_id, seq), value)
                            .map_err(damaged)?;
                    if let Some(parts) = opened.parts() {
                        inflight.insert(seq, parts);
                    }
                }
                ["i", packet_id] => {
                    let number: u16 = packet_id.parse().map_err(io)?;
                    format::open::<()>(
                        "incoming",
                        &RecordKey::numbered(client_id, u64::from(number)),
                        value,
                    )
                    .map_err(damaged)?;
                    incoming.extend(tabmq_protocol::PacketId::new(number));
                }
                ["d"] => {
                    stream_done =
                        format::open("stream-done", &RecordKey::named(client_id), value).map_err(damaged)?;
                }
                _ => {}
            }
        }
        // In-flight state without its message belongs to a message already done.
        inflight.retain(|seq, _| messages.contains_key(seq));
        Ok(record.map(|record| StoredSession {
            record,
            messages,
            inflight,
            incoming,
            stream_done,
        }))
    }

    /// The sessions of `client_ids` that are stored.
    pub async fn load_sessions(&self, client_ids: &[String]) -> Result<Snapshot, StoreError> {
        let mut snapshot = Snapshot::default();
        for client_id in client_ids {
            if let Some(session) = self.load_session(client_id).await? {
                snapshot.sessions.insert(client_id.clone(), session);
            }
        }
        Ok(snapshot)
    }

    /// Writes `ops` in order. Writes are sent without waiting for each other, removals
    /// (purge requests) likewise among themselves; a run of removals waits for the writes
    /// before it, and a write after removals waits for them. Every write is acknowledged
    /// before this returns.
    async fn apply(&self, ops: &[StoreOp]) -> Result<(), WriteError> {
        let mut unacknowledged: Vec<PublishAckFuture> = Vec::new();
        let mut removals: Vec<String> = Vec::new();
        for op in ops {
            let (subject, headers, value) = match op {
                StoreOp::PutSession { client_id, record } => (
                    format!("{}.r", self.session_subject(client_id)),
                    None,
                    format::seal(
                        "sessions",
                        &RecordKey::named(client_id),
                        &SessionRecordV2::from(&**record),
                    ),
                ),
                StoreOp::PutMessage {
                    client_id,
                    seq,
                    message,
                } => (
                    format!("{}.q.{seq}.m", self.session_subject(client_id)),
                    None,
                    format::seal(
                        "messages",
                        &RecordKey::numbered(client_id, *seq),
                        &MessageRecord::from(message),
                    ),
                ),
                StoreOp::PutInflight {
                    client_id,
                    seq,
                    packet_id,
                    state,
                } => (
                    format!("{}.q.{seq}.f", self.session_subject(client_id)),
                    None,
                    format::seal(
                        "inflight",
                        &RecordKey::numbered(client_id, *seq),
                        &InflightRecord::new(*packet_id, *state),
                    ),
                ),
                StoreOp::PutIncoming { client_id, packet_id } => (
                    format!("{}.i.{}", self.session_subject(client_id), packet_id.get()),
                    None,
                    format::seal(
                        "incoming",
                        &RecordKey::numbered(client_id, u64::from(packet_id.get())),
                        &(),
                    ),
                ),
                StoreOp::PutStreamDone { client_id, through } => (
                    format!("{}.d", self.session_subject(client_id)),
                    None,
                    format::seal("stream-done", &RecordKey::named(client_id), through),
                ),
                StoreOp::ShareMessage { message, origin, id } => {
                    let (subject, headers, body) = self.durable.encode(message, origin.as_deref(), *id);
                    (subject, Some(headers), body)
                }
                StoreOp::FollowInterest { changes } => {
                    self.durable.filter().follow(changes).await.map_err(io)?;
                    self.durable.share_groups().follow(changes).await.map_err(io)?;
                    continue;
                }
                StoreOp::DeleteSession { client_id } => {
                    removals.push(format!("{}.>", self.session_subject(client_id)));
                    continue;
                }
                StoreOp::DeleteMessage { client_id, seq } => {
                    removals.push(format!("{}.q.{seq}.*", self.session_subject(client_id)));
                    continue;
                }
                StoreOp::DeleteIncoming { client_id, packet_id } => {
                    removals.push(format!(
                        "{}.i.{}",
                        self.session_subject(client_id),
                        packet_id.get()
                    ));
                    continue;
                }
                StoreOp::PutRetained { .. } | StoreOp::DeleteRetained { .. } => continue,
            };
            self.remove(&mut removals, &mut unacknowledged).await?;
            let sent = match headers {
                Some(headers) => {
                    self.jetstream
                        .publish_with_headers(subject, headers, value.into())
                        .await
                }
                None => self.jetstream.publish(subject, value.into()).await,
            };
            unacknowledged.push(sent.map_err(write_error)?);
        }
        self.remove(&mut removals, &mut unacknowledged).await?;
        Self::acknowledged(&mut unacknowledged).await
    }

    /// Applies `ops`, again while NATS routes them to no stream, for [`NOT_ROUTED_PATIENCE`].
    async fn apply_when_routed(&self, ops: &[StoreOp]) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + NOT_ROUTED_PATIENCE;
        loop {
            match self.apply(ops).await {
                Ok(()) => return Ok(()),
                Err(WriteError::NotRouted(_)) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(WriteError::NotRouted(reason)) => return Err(io(reason)),
                Err(WriteError::Failed(error)) => return Err(error),
            }
        }
    }

    /// Purges the subjects of `removals`, all at once, once the writes before them are
    /// acknowledged.
    async fn remove(
        &self,
        removals: &mut Vec<String>,
        unacknowledged: &mut Vec<PublishAckFuture>,
    ) -> Result<(), WriteError> {
        if removals.is_empty() {
            return Ok(());
        }
        Self::acknowledged(unacknowledged).await?;
        let purges = removals
            .drain(..)
            .map(|subject| async move { self.stream.purge().filter(subject).await.map_err(io) });
        futures_util::future::try_join_all(purges).await?;
        Ok(())
    }

    async fn acknowledged(unacknowledged: &mut Vec<PublishAckFuture>) -> Result<(), WriteError> {
        for ack in unacknowledged.drain(..) {
            ack.await.map_err(write_error)?;
        }
        Ok(())
    }
}

impl Store for JetStreamStore {
    fn commit(&mut self, ops: &[StoreOp], _sync: bool) -> Result<(), StoreError> {
        // The timer is made inside the runtime (it needs the runtime's clock).
        let store = &*self;
        self.runtime.block_on(async move {
            tokio::time::timeout(COMMIT_PATIENCE, store.apply_when_routed(ops))
                .await
                .unwrap_or_else(|_| Err(StoreError::Io("JetStream did not answer in time".into())))
        })
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        // Every commit is acknowledged by a quorum of replicas before it returns.
        Ok(())
    }

    fn reopen(&mut self) -> Result<(), StoreError> {
        // The NATS client reconnects by itself.
        Ok(())
    }

    fn view(&self) -> Result<StoreView, StoreError> {
        Err(StoreError::Unavailable(
            "a cluster node keeps sessions in JetStream: back up the NATS servers' JetStream instead".into(),
        ))
    }
}
