//! What is stored, in the shapes the router uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tabmq_protocol::PacketId;
use tabmq_protocol::ProtocolVersion;
use tabmq_protocol::flow::InflightState;
use tabmq_protocol::packet::{Publish, SubscriptionOptions, Will};

use super::StoreOp;

/// A message stored for a session or as a retained message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// The message as it will be sent (packet id and DUP unset).
    pub publish: Publish,
    /// When it expires (v5 message expiry), in Unix milliseconds.
    pub expires_at_ms: Option<u64>,
}

/// A subscription as stored: filter, options and v5 subscription identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSubscription {
    /// The topic filter, possibly `$share/group/filter`.
    pub filter: String,
    /// Its options.
    pub options: SubscriptionOptions,
    /// v5 subscription identifier, if given.
    pub identifier: Option<u32>,
}

/// A session's lasting attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Protocol version of the last connection.
    pub version: ProtocolVersion,
    /// Session expiry interval in seconds once disconnected.
    pub expiry_interval: u32,
    /// When the session expires (Unix ms), if disconnected.
    pub expires_at_ms: Option<u64>,
    /// Subscriptions, by filter.
    pub subscriptions: Vec<StoredSubscription>,
    /// A will waiting for its delay to pass: the will and when to publish it (Unix ms).
    pub pending_will: Option<(Will, u64)>,
}

/// One session as loaded at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// Its record.
    pub record: SessionRecord,
    /// Queued and in-flight messages, by sequence number.
    pub messages: BTreeMap<u64, StoredMessage>,
    /// Packet id and state of the messages in flight, by sequence number.
    pub inflight: BTreeMap<u64, (PacketId, InflightState)>,
    /// QoS 2 packet ids received and not yet released.
    pub incoming: Vec<PacketId>,
    /// Cluster mode: the highest stream sequence among the cluster's messages it is done
    /// with (delivered or dropped), so that no node gives them again; 0 elsewhere.
    pub stream_done: u64,
}

/// Everything stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Sessions by client id.
    pub sessions: BTreeMap<String, StoredSession>,
    /// Retained messages by topic.
    pub retained: BTreeMap<String, StoredMessage>,
}

impl Snapshot {
    /// The changes that write everything in this snapshot into an empty store.
    pub fn to_ops(&self) -> Vec<StoreOp> {
        let mut ops = Vec::new();
        for (client_id, session) in &self.sessions {
            ops.push(StoreOp::PutSession {
                client_id: client_id.clone(),
                record: Box::new(session.record.clone()),
            });
            for (seq, message) in &session.messages {
                ops.push(StoreOp::PutMessage {
                    client_id: client_id.clone(),
                    seq: *seq,
                    message: message.clone(),
                });
            }
            for (seq, (packet_id, state)) in &session.inflight {
                ops.push(StoreOp::PutInflight {
                    client_id: client_id.clone(),
                    seq: *seq,
                    packet_id: *packet_id,
                    state: *state,
                });
            }
            for packet_id in &session.incoming {
                ops.push(StoreOp::PutIncoming {
                    client_id: client_id.clone(),
                    packet_id: *packet_id,
                });
            }
        }
        for (topic, message) in &self.retained {
            ops.push(StoreOp::PutRetained {
                topic: topic.clone(),
                message: message.clone(),
            });
        }
        ops
    }
}
