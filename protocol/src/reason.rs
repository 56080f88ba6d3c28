//! MQTT 5 reason codes, their meaning per packet, and the 3.1.1 return codes they map to.

use serde::{Deserialize, Serialize};

macro_rules! reason_codes {
    ($($(#[doc = $doc:literal])* $name:ident = $value:literal,)*) => {
        /// An MQTT 5 reason code (section 2.4 of the v5 specification).
        ///
        /// Value 0x00 has several names in the spec (Success, Normal disconnection,
        /// Granted QoS 0); here it is always [`ReasonCode::Success`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[repr(u8)]
        pub enum ReasonCode {
            $($(#[doc = $doc])* $name = $value,)*
        }

        impl ReasonCode {
            /// The reason code for a wire byte, if the byte is a defined code.
            pub fn from_byte(byte: u8) -> Option<Self> {
                match byte {
                    $($value => Some(Self::$name),)*
                    _ => None,
                }
            }

            /// Every defined reason code, in wire order.
            pub const ALL: &'static [ReasonCode] = &[$(Self::$name,)*];
        }
    };
}

reason_codes! {
    /// Success, normal disconnection, or granted QoS 0.
    Success = 0x00,
    /// Granted QoS 1 (SUBACK).
    GrantedQos1 = 0x01,
    /// Granted QoS 2 (SUBACK).
    GrantedQos2 = 0x02,
    /// The client disconnects but wants its will published.
    DisconnectWithWill = 0x04,
    /// Accepted, but nobody subscribes to the topic.
    NoMatchingSubscribers = 0x10,
    /// UNSUBSCRIBE named a filter that had no subscription.
    NoSubscriptionExisted = 0x11,
    /// Continue an enhanced authentication exchange.
    ContinueAuthentication = 0x18,
    /// Start re-authentication.
    ReAuthenticate = 0x19,
    /// An error the sender does not name.
    UnspecifiedError = 0x80,
    /// The packet could not be parsed.
    MalformedPacket = 0x81,
    /// The packet is well formed but breaks the protocol.
    ProtocolError = 0x82,
    /// Valid, but not accepted by this implementation.
    ImplementationSpecificError = 0x83,
    /// The protocol version is not supported.
    UnsupportedProtocolVersion = 0x84,
    /// The client identifier is valid UTF-8 but not allowed.
    ClientIdentifierNotValid = 0x85,
    /// Bad user name or password.
    BadUserNameOrPassword = 0x86,
    /// Not authorized.
    NotAuthorized = 0x87,
    /// The server is unavailable.
    ServerUnavailable = 0x88,
    /// The server is busy; try later.
    ServerBusy = 0x89,
    /// This client is banned.
    Banned = 0x8A,
    /// The server is shutting down.
    ServerShuttingDown = 0x8B,
    /// The authentication method is not supported.
    BadAuthenticationMethod = 0x8C,
    /// No packet arrived within 1.5 times the keep-alive.
    KeepAliveTimeout = 0x8D,
    /// Another connection took over this client identifier's session.
    SessionTakenOver = 0x8E,
    /// The topic filter is malformed or not accepted.
    TopicFilterInvalid = 0x8F,
    /// The topic name is malformed or not accepted.
    TopicNameInvalid = 0x90,
    /// The packet identifier is already in use.
    PacketIdentifierInUse = 0x91,
    /// The packet identifier is not known.
    PacketIdentifierNotFound = 0x92,
    /// More QoS 1/2 publishes in flight than the receive maximum allows.
    ReceiveMaximumExceeded = 0x93,
    /// The topic alias is zero or above the allowed maximum.
    TopicAliasInvalid = 0x94,
    /// The packet is larger than the maximum packet size.
    PacketTooLarge = 0x95,
    /// The message rate is too high.
    MessageRateTooHigh = 0x96,
    /// A quota was exceeded.
    QuotaExceeded = 0x97,
    /// Closed by an administrator.
    AdministrativeAction = 0x98,
    /// The payload does not match its payload format indicator.
    PayloadFormatInvalid = 0x99,
    /// Retained messages are not supported.
    RetainNotSupported = 0x9A,
    /// The QoS is above the maximum the server supports.
    QosNotSupported = 0x9B,
    /// Use another server, temporarily.
    UseAnotherServer = 0x9C,
    /// The server has moved, permanently.
    ServerMoved = 0x9D,
    /// Shared subscriptions are not supported.
    SharedSubscriptionsNotSupported = 0x9E,
    /// Connections arrive too fast.
    ConnectionRateExceeded = 0x9F,
    /// The maximum connect time was reached.
    MaximumConnectTime = 0xA0,
    /// Subscription identifiers are not supported.
    SubscriptionIdentifiersNotSupported = 0xA1,
    /// Wildcard subscriptions are not supported.
    WildcardSubscriptionsNotSupported = 0xA2,
}

/// The kinds of packet that carry a reason code; each allows its own set of codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonContext {
    /// CONNACK.
    Connack,
    /// PUBACK and PUBREC.
    PubackPubrec,
    /// PUBREL and PUBCOMP.
    PubrelPubcomp,
    /// SUBACK, one code per filter.
    Suback,
    /// UNSUBACK, one code per filter.
    Unsuback,
    /// DISCONNECT.
    Disconnect,
    /// AUTH.
    Auth,
}

impl ReasonCode {
    /// The wire byte.
    pub fn byte(self) -> u8 {
        self as u8
    }

    /// Whether the code reports a failure (0x80 and above).
    pub fn is_error(self) -> bool {
        self.byte() >= 0x80
    }

    /// Whether the v5 specification allows this code in the given packet.
    pub fn allowed_in(self, context: ReasonContext) -> bool {
        use ReasonCode::*;
        match context {
            ReasonContext::Connack => matches!(
                self,
                Success
                    | UnspecifiedError
                    | MalformedPacket
                    | ProtocolError
                    | ImplementationSpecificError
                    | UnsupportedProtocolVersion
                    | ClientIdentifierNotValid
                    | BadUserNameOrPassword
                    | NotAuthorized
                    | ServerUnavailable
                    | ServerBusy
                    | Banned
                    | BadAuthenticationMethod
                    | TopicNameInvalid
                    | PacketTooLarge
                    | QuotaExceeded
                    | PayloadFormatInvalid
                    | RetainNotSupported
                    | QosNotSupported
                    | UseAnotherServer
                    | ServerMoved
                    | ConnectionRateExceeded
            ),
            ReasonContext::PubackPubrec => matches!(
                self,
                Success
                    | NoMatchingSubscribers
                    | UnspecifiedError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | TopicNameInvalid
                    | PacketIdentifierInUse
                    | QuotaExceeded
                    | PayloadFormatInvalid
            ),
            ReasonContext::PubrelPubcomp => matches!(self, Success | PacketIdentifierNotFound),
            ReasonContext::Suback => matches!(
                self,
                Success
                    | GrantedQos1
                    | GrantedQos2
                    | UnspecifiedError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | TopicFilterInvalid
                    | PacketIdentifierInUse
                    | QuotaExceeded
                    | SharedSubscriptionsNotSupported
                    | SubscriptionIdentifiersNotSupported
                    | WildcardSubscriptionsNotSupported
            ),
            ReasonContext::Unsuback => matches!(
                self,
                Success
                    | NoSubscriptionExisted
                    | UnspecifiedError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | TopicFilterInvalid
                    | PacketIdentifierInUse
            ),
            ReasonContext::Disconnect => matches!(
                self,
                Success
                    | DisconnectWithWill
                    | UnspecifiedError
                    | MalformedPacket
                    | ProtocolError
                    | ImplementationSpecificError
                    | NotAuthorized
                    | ServerBusy
                    | ServerShuttingDown
                    | KeepAliveTimeout
                    | SessionTakenOver
                    | TopicFilterInvalid
                    | TopicNameInvalid
                    | ReceiveMaximumExceeded
                    | TopicAliasInvalid
                    | PacketTooLarge
                    | MessageRateTooHigh
                    | QuotaExceeded
                    | AdministrativeAction
                    | PayloadFormatInvalid
                    | RetainNotSupported
                    | QosNotSupported
                    | UseAnotherServer
                    | ServerMoved
                    | SharedSubscriptionsNotSupported
                    | ConnectionRateExceeded
                    | MaximumConnectTime
                    | SubscriptionIdentifiersNotSupported
                    | WildcardSubscriptionsNotSupported
            ),
            ReasonContext::Auth => matches!(self, Success | ContinueAuthentication | ReAuthenticate),
        }
    }

    /// The MQTT 3.1.1 CONNACK return code closest to this reason (section 3.2.2.3).
    pub fn to_v311_connack(self) -> u8 {
        use ReasonCode::*;
        match self {
            Success => 0,
            UnsupportedProtocolVersion => 1,
            ClientIdentifierNotValid => 2,
            BadUserNameOrPassword | BadAuthenticationMethod => 4,
            NotAuthorized | Banned => 5,
            _ => 3,
        }
    }

    /// The reason for an MQTT 3.1.1 CONNACK return code, if the code is defined.
    pub fn from_v311_connack(code: u8) -> Option<Self> {
        use ReasonCode::*;
        Some(match code {
            0 => Success,
            1 => UnsupportedProtocolVersion,
            2 => ClientIdentifierNotValid,
            3 => ServerUnavailable,
            4 => BadUserNameOrPassword,
            5 => NotAuthorized,
            _ => return None,
        })
    }

    /// The SUBACK reason granting `qos`.
    pub fn granted(qos: crate::QoS) -> Self {
        match qos {
            crate::QoS::AtMostOnce => Self::Success,
            crate::QoS::AtLeastOnce => Self::GrantedQos1,
            crate::QoS::ExactlyOnce => Self::GrantedQos2,
        }
    }
}
