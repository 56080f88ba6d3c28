//! What the client state machine reports to its driver.

use crate::error::ConnectionError;
use crate::flow::MessageId;
use crate::packet::Publish;
use crate::properties::Properties;
use crate::qos::PacketId;
use crate::reason::ReasonCode;

/// An event from [`Client::poll_event`](super::Client::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// CONNACK accepted the connection.
    Connected {
        /// Whether the server resumed our stored session.
        session_present: bool,
        /// CONNACK properties (v5): assigned client id, server limits, ...
        properties: Box<Properties>,
    },
    /// An application message arrived. Each message is reported once, QoS 2 included.
    Message(Publish),
    /// A message given to `publish` finished: sent (QoS 0), PUBACK (QoS 1) or PUBCOMP
    /// (QoS 2) received, or refused by the server (`reason` is an error then).
    PublishDone {
        /// The handle `publish` returned.
        id: MessageId,
        /// The server's reason code, or the local reason it could not be sent.
        reason: ReasonCode,
    },
    /// SUBACK arrived.
    Subscribed {
        /// The SUBSCRIBE's packet id, as `subscribe` returned it.
        packet_id: PacketId,
        /// Granted QoS or failure per filter.
        reasons: Vec<ReasonCode>,
    },
    /// UNSUBACK arrived.
    Unsubscribed {
        /// The UNSUBSCRIBE's packet id, as `unsubscribe` returned it.
        packet_id: PacketId,
        /// Per-filter results (v5); empty in 3.1.1.
        reasons: Vec<ReasonCode>,
    },
    /// The connection is over; the driver closes the transport.
    Disconnected(DisconnectCause),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectCause {
    /// The server sent DISCONNECT (v5).
    ServerDisconnect {
        /// The reason code; [`ReasonCode::SessionTakenOver`] means another connection
        /// with our client id replaced us.
        reason: ReasonCode,
        /// The server's reason string, if any.
        reason_string: Option<String>,
    },
    /// The server refused the connection in CONNACK.
    Refused(ReasonCode),
    /// The server broke the protocol, or went silent.
    Error(ConnectionError),
    /// The transport closed without an MQTT-level reason.
    TransportClosed,
    /// We disconnected on purpose.
    Local,
}

impl DisconnectCause {
    /// Whether the server says another connection took over this client id.
    pub fn is_takeover(&self) -> bool {
        matches!(
            self,
            Self::ServerDisconnect {
                reason: ReasonCode::SessionTakenOver,
                ..
            }
        )
    }
}
