//! What the server connection state machine reports to the broker.

use crate::error::ConnectionError;
use crate::flow::MessageId;
use crate::packet::{Connect, Disconnect, Publish, Subscribe, Unsubscribe};
use crate::qos::PacketId;
use crate::reason::ReasonCode;

/// An event from [`Connection::poll_event`](super::Connection::poll_event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// CONNECT arrived: answer with [`Connection::accept`](super::Connection::accept)
    /// or [`Connection::refuse`](super::Connection::refuse).
    Connect(Box<Connect>),
    /// An application message from the client, topic alias already resolved. For QoS
    /// 1/2, call [`Connection::acknowledge`](super::Connection::acknowledge) once the
    /// message is safely stored; resends of a QoS 2 message are not reported twice.
    Publish(Publish),
    /// SUBSCRIBE: answer with [`Connection::send_suback`](super::Connection::send_suback).
    Subscribe(Box<Subscribe>),
    /// UNSUBSCRIBE: answer with [`Connection::send_unsuback`](super::Connection::send_unsuback).
    Unsubscribe(Box<Unsubscribe>),
    /// A message given to [`Connection::deliver`](super::Connection::deliver) is done:
    /// acknowledged by the client, sent (QoS 0), or too large for it (`PacketTooLarge`).
    Delivered {
        /// The handle `deliver` returned.
        id: MessageId,
        /// The client's reason code, or the reason it was not sent.
        reason: ReasonCode,
    },
    /// The client released an incoming QoS 2 message (PUBREL): its id may be forgotten.
    Released {
        /// The released packet id.
        packet_id: PacketId,
    },
    /// The connection is over; the broker closes the transport.
    Closed(CloseCause),
}

/// Why a server connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseCause {
    /// The client sent DISCONNECT.
    ClientDisconnect(Box<Disconnect>),
    /// The client broke the protocol or went silent.
    Error(ConnectionError),
    /// The broker refused the CONNECT.
    Refused(ReasonCode),
}

impl CloseCause {
    /// Whether the will message is published: always, unless the client disconnected
    /// normally (v5 reason 0x04 "disconnect with will" asks for it all the same), and
    /// never for a refused connection, which never had a session.
    pub fn publishes_will(&self) -> bool {
        match self {
            Self::ClientDisconnect(disconnect) => disconnect.reason == ReasonCode::DisconnectWithWill,
            Self::Error(_) => true,
            Self::Refused(_) => false,
        }
    }
}
