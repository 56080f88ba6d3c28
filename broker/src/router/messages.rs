//! The messages connections and the router exchange.

use std::sync::Arc;

use tokio::sync::oneshot;

use super::mailbox::Mailbox;
use crate::cluster::{DurableMessage, StreamAck};
use crate::store::StoredSession;
use tabmq_protocol::flow::SessionFlows;
use tabmq_protocol::packet::{Connect, Publish, Suback, Subscribe, Unsuback, Unsubscribe};
use tabmq_protocol::{PacketId, Properties, ReasonCode};

/// A session another cluster node held, as stored in the cluster when that node let go
/// of it, with the QoS 1/2 messages it may have missed since.
#[derive(Debug)]
pub struct MovedSession {
    /// The session as stored (`None`: nothing stored, as for a session that ended).
    pub stored: Option<StoredSession>,
    /// The cluster's messages after the last one the other node routed to it.
    pub since: Vec<DurableMessage>,
    /// The stream sequence `since` reaches.
    pub through: u64,
}

/// Identifies one network connection for the broker's lifetime.
pub type ConnectionId = u64;

/// The router's way to reach a connection task.
#[derive(Debug, Clone)]
pub struct ConnectionLink {
    /// The connection's id.
    pub id: ConnectionId,
    /// Its inbox, with the backlog of what was routed to it and not yet taken.
    pub mailbox: Arc<Mailbox>,
}

/// How a connection's session was let go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetachReason {
    /// The client sent DISCONNECT; `publish_will` for reason 0x04, and the v5 session
    /// expiry it set, if any.
    ClientDisconnect {
        /// Whether the will is published all the same.
        publish_will: bool,
        /// New session expiry interval, if the DISCONNECT set one.
        session_expiry: Option<u32>,
    },
    /// The connection broke or the client broke the protocol: the will is published.
    Lost,
    /// A newer connection took the client id over.
    TakenOver,
    /// The broker is shutting down: the session is kept, the will is not published.
    Shutdown,
    /// The session was given to the connection but could not be stored, so the
    /// connection was refused after all: the session is kept, the will is not published.
    NotStored,
}

/// Which subscriptions a message is routed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every matching subscription.
    All,
    /// Ordinary subscriptions only: in cluster mode, share groups get each message through
    /// the cluster, so that one member in the whole cluster gets it.
    Ordinary,
    /// One member of this share group (`$share/group/filter`) only.
    Group(String),
}

/// From a connection task to the router. Kept to a few words (the rare large messages
/// boxed): every PUBLISH is moved through the router's inbox.
#[derive(Debug)]
pub enum ToRouter {
    /// CONNECT arrived; the router answers `Accepted` or `Refused`.
    Connect {
        /// The connection.
        link: ConnectionLink,
        /// The packet.
        connect: Box<Connect>,
        /// In cluster mode, the session as another node left it, if that node held the
        /// client id: it replaces any older copy this node has.
        moved: Option<Box<MovedSession>>,
    },
    /// A PUBLISH from an accepted client; QoS 1/2 ones are answered with `Acked`.
    Publish {
        /// The publishing connection.
        connection: ConnectionId,
        /// Its client id.
        client_id: Arc<str>,
        /// The message, topic alias resolved.
        publish: Publish,
    },
    /// SUBSCRIBE; answered with `Suback`.
    Subscribe {
        /// The connection.
        connection: ConnectionId,
        /// Its client id.
        client_id: Arc<str>,
        /// The packet.
        subscribe: Box<Subscribe>,
        /// Per filter, whether the ACL refuses it (answered 0x87, not subscribed).
        denied: Vec<bool>,
    },
    /// UNSUBSCRIBE; answered with `Unsuback`.
    Unsubscribe {
        /// The connection.
        connection: ConnectionId,
        /// Its client id.
        client_id: Arc<str>,
        /// The packet.
        unsubscribe: Box<Unsubscribe>,
    },
    /// A message given to the connection is done (acknowledged, sent, or dropped).
    Delivered {
        /// Client id.
        client_id: Arc<str>,
        /// The message's sequence number.
        seq: u64,
    },
    /// A connection ended; its session's QoS state comes back with it.
    Detached {
        /// The connection.
        connection: ConnectionId,
        /// Its client id, if it was accepted.
        client_id: Option<Arc<str>>,
        /// The session's QoS state.
        flows: Box<SessionFlows>,
        /// Why.
        reason: DetachReason,
    },
    /// Once a second: expire sessions, publish due wills and `$SYS/` counters.
    Tick,
    /// Stop: tell every connection the server is shutting down.
    Shutdown,
    /// A message from the cluster, for this node's subscriptions it reaches.
    FromCluster(Box<Publish>, Reach),
    /// Another cluster node took this client id over: its connection here, if any, is
    /// closed as in a takeover, and the session is let go of (left to the other node).
    TakenOverElsewhere {
        /// The client id.
        client_id: Arc<str>,
        /// Told once the session is let go of and every change to it is stored, with
        /// the stream sequence of the last cluster message routed to it.
        let_go: Option<oneshot::Sender<u64>>,
    },
    /// A session of a cluster node that died, adopted by this node.
    Adopted {
        /// The client id.
        client_id: Arc<str>,
        /// The session as stored, with the messages the dead node had not routed to it.
        moved: Box<MovedSession>,
    },
    /// A QoS 1/2 message from the cluster's stream, for the node's ordinary subscriptions
    /// or for one member of a share group (`$share/group/filter`), acknowledged to the
    /// stream with the acker once its routing is stored.
    Durable(Box<(DurableMessage, StreamAck, Option<Arc<str>>)>),
    /// A topic's retained message as the cluster holds it now (an empty payload: none).
    RetainedFromCluster(Box<Publish>),
}

impl ToRouter {
    /// About how many bytes the message carries, for the router inbox's bound; `None`
    /// for messages bounded elsewhere, which never wait: acknowledgements of deliveries
    /// (as many as the connection was sent), a connection's end (once per connection),
    /// and the broker's own.
    pub fn cost(&self) -> Option<usize> {
        let bytes = match self {
            ToRouter::Connect { connect, .. } => connect
                .will
                .as_ref()
                .map_or(0, |will| will.topic.len() + will.payload.len()),
            ToRouter::Publish { publish, .. } => publish.topic.len() + publish.payload.len(),
            ToRouter::FromCluster(publish, _) => publish.topic.len() + publish.payload.len(),
            ToRouter::TakenOverElsewhere { client_id, .. } | ToRouter::Adopted { client_id, .. } => {
                client_id.len()
            }
            ToRouter::Durable(message) => message.0.publish.topic.len() + message.0.publish.payload.len(),
            ToRouter::RetainedFromCluster(publish) => publish.topic.len() + publish.payload.len(),
            ToRouter::Subscribe { subscribe, .. } => subscribe
                .subscriptions
                .iter()
                .map(|subscription| subscription.filter.len() + 16)
                .sum(),
            ToRouter::Unsubscribe { unsubscribe, .. } => {
                unsubscribe.filters.iter().map(|filter| filter.len() + 16).sum()
            }
            ToRouter::Delivered { .. } | ToRouter::Detached { .. } | ToRouter::Tick | ToRouter::Shutdown => {
                return None;
            }
        };
        Some(bytes)
    }
}

/// From the router to a connection task. Kept to a few words (the rare large answers
/// boxed): every delivery is moved through a connection's inbox.
#[derive(Debug)]
pub enum ToConnection {
    /// The CONNECT is accepted.
    Accepted {
        /// The client id in force (assigned if the client sent none).
        client_id: Arc<str>,
        /// Whether a stored session was resumed.
        session_present: bool,
        /// Whether the session is stored (outlives the connection): its QoS state
        /// changes must then be persisted.
        persistent: bool,
        /// The session's QoS state.
        flows: Box<SessionFlows>,
        /// CONNACK properties chosen by the router.
        properties: Box<Properties>,
    },
    /// The CONNECT is refused with this reason.
    Refused(ReasonCode),
    /// Send this message; `seq` comes back in `Delivered`.
    Deliver {
        /// The message's sequence number in the session.
        seq: u64,
        /// The message.
        publish: Publish,
    },
    /// A QoS 1/2 PUBLISH from the client is stored (or refused): acknowledge it.
    Acked {
        /// Its packet id.
        packet_id: PacketId,
        /// The reason for PUBACK/PUBREC.
        reason: ReasonCode,
    },
    /// Answer to SUBSCRIBE.
    Suback(Box<Suback>),
    /// Answer to UNSUBSCRIBE.
    Unsuback(Box<Unsuback>),
    /// Another connection took over the client id: close, saying why.
    TakenOver,
    /// The broker is shutting down: close with 0x8B.
    Shutdown,
}

impl ToConnection {
    /// The payload and topic bytes it carries, for the connection's backlog.
    pub fn backlog_bytes(&self) -> usize {
        match self {
            ToConnection::Deliver { publish, .. } => publish.topic.len() + publish.payload.len(),
            _ => 0,
        }
    }
}

// A PUBLISH (connection, client id and `Publish`) is the largest message.
const _: () = assert!(std::mem::size_of::<ToRouter>() <= 104);

// A delivery (sequence number and `Publish`) is the largest message (see `ToConnection`).
const _: () = assert!(std::mem::size_of::<ToConnection>() <= 96);
