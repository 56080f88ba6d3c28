//! Errors in bytes received from the peer, and in packets we are asked to encode.
//!
//! A [`DecodeError`] always means the peer is at fault: the bytes are malformed or
//! break a rule that can be checked without session state. Each one maps to the
//! reason code the receiver answers with ([`DecodeError::reason_code`]); for MQTT
//! 3.1.1, which has no reason codes, the answer is to close the connection (or, for
//! a CONNECT with an unknown protocol level, CONNACK return code 1 first).

use thiserror::Error;

use crate::packet::PacketType;
use crate::properties::PropertyId;
use crate::reason::{ReasonCode, ReasonContext};

/// The peer sent bytes that are not a valid MQTT packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The fixed header announces more bytes than the maximum packet size allows.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max}")]
    PacketTooLarge {
        /// Total size announced by the fixed header.
        size: u64,
        /// The limit in force.
        max: u32,
    },
    /// The remaining length used more than four bytes.
    #[error("remaining length is longer than four bytes")]
    RemainingLengthTooLong,
    /// The packet type nibble is 0 (reserved), or AUTH on an MQTT 3.1.1 connection.
    #[error("packet type {0} is reserved or not part of this protocol version")]
    InvalidPacketType(u8),
    /// A client received a packet type only clients send (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ).
    #[error("{0:?} is never sent by a server")]
    NotSentByServer(PacketType),
    /// The fixed header flags are not the ones the packet type requires.
    #[error("{packet_type:?} with reserved fixed-header flags {flags:#06b}")]
    InvalidHeaderFlags {
        /// The packet type.
        packet_type: PacketType,
        /// The four flag bits received.
        flags: u8,
    },
    /// A QoS field holds the value 3.
    #[error("QoS 3 is not a valid quality of service")]
    InvalidQos,
    /// A PUBLISH has both QoS 0 and the DUP flag set.
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupOnQos0,
    /// A packet identifier that must be non-zero is zero.
    #[error("packet identifier 0 in {0:?}")]
    ZeroPacketId(PacketType),
    /// The packet ends before all of its fields.
    #[error("packet ends before its fields do")]
    Truncated,
    /// Bytes follow the last field of the packet.
    #[error("{0} unexpected bytes after the end of the packet")]
    TrailingBytes(usize),
    /// A UTF-8 string field is not well-formed UTF-8.
    #[error("string is not well-formed UTF-8")]
    InvalidUtf8,
    /// A UTF-8 string field contains U+0000.
    #[error("string contains the null character U+0000")]
    NullCharacter,
    /// CONNECT's protocol name is not "MQTT".
    #[error("protocol name is not MQTT")]
    InvalidProtocolName,
    /// CONNECT's protocol level is not 4 (3.1.1) or 5 (5.0).
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolVersion(u8),
    /// CONNECT's reserved flag bit is set.
    #[error("CONNECT reserved flag is set")]
    ConnectReservedFlag,
    /// Will QoS or will retain is set without the will flag, or will QoS is 3.
    #[error("will QoS or retain set without a will")]
    InvalidWillFlags,
    /// MQTT 3.1.1 forbids a password without a user name.
    #[error("password flag set without user name flag")]
    PasswordWithoutUsername,
    /// A topic name is empty (where no topic alias stands in) or contains a wildcard.
    #[error("invalid topic name: {0}")]
    InvalidTopicName(crate::topic::TopicError),
    /// A topic filter is malformed.
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(crate::topic::TopicError),
    /// SUBSCRIBE or UNSUBSCRIBE carries no topic filter.
    #[error("{0:?} without any topic filter")]
    NoTopicFilters(PacketType),
    /// Subscription options with reserved bits set, or retain handling 3.
    #[error("invalid subscription options byte {0:#010b}")]
    InvalidSubscriptionOptions(u8),
    /// No Local on a shared subscription, which v5 forbids.
    #[error("no-local set on a shared subscription")]
    NoLocalOnSharedSubscription,
    /// A property identifier that the v5 specification does not define.
    #[error("unknown property identifier {0:#04x}")]
    UnknownProperty(u8),
    /// A property that is not allowed in this packet.
    #[error("property {property:?} is not allowed in {context}")]
    PropertyNotAllowed {
        /// The property.
        property: PropertyId,
        /// Where it appeared.
        context: &'static str,
    },
    /// A property that may appear once appeared twice.
    #[error("property {0:?} appears more than once")]
    DuplicateProperty(PropertyId),
    /// A property holds a value outside its range (receive maximum 0, a flag of 2, ...).
    #[error("property {0:?} has a value outside its allowed range")]
    InvalidPropertyValue(PropertyId),
    /// A reason code the packet type does not allow.
    #[error("reason code {code:#04x} is not allowed in {context:?}")]
    InvalidReasonCode {
        /// The byte received.
        code: u8,
        /// The packet that carried it.
        context: ReasonContext,
    },
    /// An MQTT 3.1.1 CONNACK return code above 5, or a SUBACK code outside 0-2 and 0x80.
    #[error("return code {0:#04x} is not defined by MQTT 3.1.1")]
    InvalidReturnCode(u8),
    /// CONNACK's reserved acknowledge flags are set, or session present with an error.
    #[error("invalid CONNACK acknowledge flags {0:#010b}")]
    InvalidConnackFlags(u8),
}

impl DecodeError {
    /// The v5 reason code the receiver reports when it closes the connection for this.
    pub fn reason_code(&self) -> ReasonCode {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            UnsupportedProtocolVersion(_) => ReasonCode::UnsupportedProtocolVersion,
            InvalidTopicName(_) => ReasonCode::TopicNameInvalid,
            InvalidTopicFilter(_) => ReasonCode::TopicFilterInvalid,
            ZeroPacketId(_)
            | NoTopicFilters(_)
            | NoLocalOnSharedSubscription
            | DuplicateProperty(_)
            | NotSentByServer(_)
            | InvalidPropertyValue(_) => ReasonCode::ProtocolError,
            RemainingLengthTooLong
            | InvalidPacketType(_)
            | InvalidHeaderFlags { .. }
            | InvalidQos
            | DupOnQos0
            | Truncated
            | TrailingBytes(_)
            | InvalidUtf8
            | NullCharacter
            | InvalidProtocolName
            | ConnectReservedFlag
            | InvalidWillFlags
            | PasswordWithoutUsername
            | InvalidSubscriptionOptions(_)
            | UnknownProperty(_)
            | PropertyNotAllowed { .. }
            | InvalidReasonCode { .. }
            | InvalidReturnCode(_)
            | InvalidConnackFlags(_) => ReasonCode::MalformedPacket,
        }
    }
}

/// A packet cannot be encoded as asked: the caller built something the protocol forbids.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A string or binary field is longer than 65,535 bytes.
    #[error("field of {0} bytes exceeds the 65535-byte limit")]
    FieldTooLong(usize),
    /// The packet body is longer than the 268,435,455 bytes a remaining length can say.
    #[error("packet body of {0} bytes exceeds the protocol's maximum")]
    PacketTooLarge(usize),
    /// A QoS 1/2 PUBLISH without a packet identifier, or a QoS 0 one with one.
    #[error("packet identifier presence does not match the QoS")]
    PacketIdMismatch,
    /// The packet type does not exist in the protocol version asked for (AUTH in 3.1.1).
    #[error("{0:?} does not exist in MQTT 3.1.1")]
    NotInVersion(PacketType),
    /// A property set in a packet that does not allow it.
    #[error("property {property:?} is not allowed in {context}")]
    PropertyNotAllowed {
        /// The property.
        property: PropertyId,
        /// The packet or section it was set on.
        context: &'static str,
    },
}

/// Well-formed packets that break the protocol at this point of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolViolation {
    /// The first packet of a connection was not CONNECT.
    #[error("expected CONNECT first, got {0:?}")]
    ConnectExpected(PacketType),
    /// A second CONNECT on one connection.
    #[error("CONNECT sent twice on one connection")]
    SecondConnect,
    /// The client's first packet after CONNECT was not CONNACK.
    #[error("expected CONNACK, got {0:?}")]
    ConnackExpected(PacketType),
    /// A packet this side of the connection never receives (a client sending SUBACK, ...).
    #[error("{0:?} is not valid in this direction or state")]
    UnexpectedPacket(PacketType),
    /// A topic alias of 0 or above the receiver's topic alias maximum.
    #[error("topic alias {0} is outside the allowed range")]
    TopicAliasOutOfRange(u16),
    /// An empty topic with a topic alias that was never set.
    #[error("topic alias {0} was never assigned a topic")]
    UnknownTopicAlias(u16),
    /// More QoS 1/2 messages in flight than the receiver's receive maximum.
    #[error("more than {0} QoS 1/2 messages in flight")]
    ReceiveMaximumExceeded(u16),
    /// A client PUBLISH carried a subscription identifier, which only servers send.
    #[error("subscription identifier in a PUBLISH from a client")]
    SubscriptionIdentifierFromClient,
    /// A PUBLISH with a QoS above the maximum QoS the receiver announced.
    #[error("QoS {0:?} is above the maximum QoS allowed")]
    QosNotSupported(crate::QoS),
    /// A client DISCONNECT set a session expiry although CONNECT's was 0.
    #[error("session expiry set at DISCONNECT after CONNECT set it to 0")]
    SessionExpiryAfterZero,
    /// AUTH received, but no authentication method was negotiated.
    #[error("AUTH received without an authentication method")]
    UnexpectedAuth,
    /// The peer did not respect the maximum packet size in force.
    #[error("packet larger than the negotiated maximum")]
    PacketTooLarge,
}

impl ProtocolViolation {
    /// The v5 reason code that reports this violation.
    pub fn reason_code(&self) -> ReasonCode {
        use ProtocolViolation::*;
        match self {
            TopicAliasOutOfRange(_) => ReasonCode::TopicAliasInvalid,
            ReceiveMaximumExceeded(_) => ReasonCode::ReceiveMaximumExceeded,
            QosNotSupported(_) => ReasonCode::QosNotSupported,
            PacketTooLarge => ReasonCode::PacketTooLarge,
            ConnectExpected(_)
            | SecondConnect
            | ConnackExpected(_)
            | UnexpectedPacket(_)
            | UnknownTopicAlias(_)
            | SubscriptionIdentifierFromClient
            | SessionExpiryAfterZero
            | UnexpectedAuth => ReasonCode::ProtocolError,
        }
    }
}

/// Why a state machine ended its connection: the peer's bytes, its protocol order, or silence.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConnectionError {
    /// The peer sent malformed bytes.
    #[error("malformed packet: {0}")]
    Decode(#[from] DecodeError),
    /// The peer sent a valid packet at the wrong time.
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolViolation),
    /// Nothing arrived within the keep-alive allowance.
    #[error("keep-alive timeout")]
    KeepAliveTimeout,
    /// The peer did not complete the CONNECT/CONNACK exchange in time.
    #[error("connect timeout")]
    ConnectTimeout,
}

impl ConnectionError {
    /// The v5 reason code sent in DISCONNECT (or CONNACK) for this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::Decode(error) => error.reason_code(),
            Self::Protocol(violation) => violation.reason_code(),
            Self::KeepAliveTimeout => ReasonCode::KeepAliveTimeout,
            Self::ConnectTimeout => ReasonCode::MaximumConnectTime,
        }
    }
}
