//! MQTT 5 properties: one struct holding every property, and the rules of which
//! packet may carry which.
//!
//! A single [`Properties`] type keeps the packet structs simple; the codec refuses a
//! property in a packet that does not allow it, on decode ([`DecodeError::PropertyNotAllowed`])
//! and on encode ([`EncodeError::PropertyNotAllowed`]). MQTT 3.1.1 packets carry none.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::codec::reader::Reader;
use crate::codec::writer;
use crate::error::{DecodeError, EncodeError};

/// Identifiers of the v5 properties (section 2.2.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)] // Each variant is named exactly as in the specification.
pub enum PropertyId {
    PayloadFormatIndicator = 0x01,
    MessageExpiryInterval = 0x02,
    ContentType = 0x03,
    ResponseTopic = 0x08,
    CorrelationData = 0x09,
    SubscriptionIdentifier = 0x0B,
    SessionExpiryInterval = 0x11,
    AssignedClientIdentifier = 0x12,
    ServerKeepAlive = 0x13,
    AuthenticationMethod = 0x15,
    AuthenticationData = 0x16,
    RequestProblemInformation = 0x17,
    WillDelayInterval = 0x18,
    RequestResponseInformation = 0x19,
    ResponseInformation = 0x1A,
    ServerReference = 0x1C,
    ReasonString = 0x1F,
    ReceiveMaximum = 0x21,
    TopicAliasMaximum = 0x22,
    TopicAlias = 0x23,
    MaximumQos = 0x24,
    RetainAvailable = 0x25,
    UserProperty = 0x26,
    MaximumPacketSize = 0x27,
    WildcardSubscriptionAvailable = 0x28,
    SubscriptionIdentifierAvailable = 0x29,
    SharedSubscriptionAvailable = 0x2A,
}

impl PropertyId {
    fn from_byte(byte: u8) -> Option<Self> {
        use PropertyId::*;
        Some(match byte {
            0x01 => PayloadFormatIndicator,
            0x02 => MessageExpiryInterval,
            0x03 => ContentType,
            0x08 => ResponseTopic,
            0x09 => CorrelationData,
            0x0B => SubscriptionIdentifier,
            0x11 => SessionExpiryInterval,
            0x12 => AssignedClientIdentifier,
            0x13 => ServerKeepAlive,
            0x15 => AuthenticationMethod,
            0x16 => AuthenticationData,
            0x17 => RequestProblemInformation,
            0x18 => WillDelayInterval,
            0x19 => RequestResponseInformation,
            0x1A => ResponseInformation,
            0x1C => ServerReference,
            0x1F => ReasonString,
            0x21 => ReceiveMaximum,
            0x22 => TopicAliasMaximum,
            0x23 => TopicAlias,
            0x24 => MaximumQos,
            0x25 => RetainAvailable,
            0x26 => UserProperty,
            0x27 => MaximumPacketSize,
            0x28 => WildcardSubscriptionAvailable,
            0x29 => SubscriptionIdentifierAvailable,
            0x2A => SharedSubscriptionAvailable,
            _ => return None,
        })
    }
}

/// Where a property list appears; each place allows its own properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyContext {
    /// CONNECT's variable header.
    Connect,
    /// The will properties in CONNECT's payload.
    Will,
    /// CONNACK.
    Connack,
    /// PUBLISH.
    Publish,
    /// PUBACK, PUBREC, PUBREL and PUBCOMP.
    PubResponse,
    /// SUBSCRIBE.
    Subscribe,
    /// SUBACK and UNSUBACK.
    SubResponse,
    /// UNSUBSCRIBE.
    Unsubscribe,
    /// DISCONNECT.
    Disconnect,
    /// AUTH.
    Auth,
}

impl PropertyContext {
    fn name(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::Will => "will properties",
            Self::Connack => "CONNACK",
            Self::Publish => "PUBLISH",
            Self::PubResponse => "PUBACK/PUBREC/PUBREL/PUBCOMP",
            Self::Subscribe => "SUBSCRIBE",
            Self::SubResponse => "SUBACK/UNSUBACK",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::Disconnect => "DISCONNECT",
            Self::Auth => "AUTH",
        }
    }

    /// Whether the v5 specification allows `property` here.
    pub fn allows(self, property: PropertyId) -> bool {
        use PropertyContext as C;
        use PropertyId::*;
        match property {
            UserProperty => true,
            PayloadFormatIndicator
            | MessageExpiryInterval
            | ContentType
            | ResponseTopic
            | CorrelationData => matches!(self, C::Publish | C::Will),
            SubscriptionIdentifier => matches!(self, C::Publish | C::Subscribe),
            SessionExpiryInterval => matches!(self, C::Connect | C::Connack | C::Disconnect),
            AssignedClientIdentifier
            | ServerKeepAlive
            | ResponseInformation
            | MaximumQos
            | RetainAvailable
            | WildcardSubscriptionAvailable
            | SubscriptionIdentifierAvailable
            | SharedSubscriptionAvailable => self == C::Connack,
            AuthenticationMethod | AuthenticationData => {
                matches!(self, C::Connect | C::Connack | C::Auth)
            }
            RequestProblemInformation | RequestResponseInformation => self == C::Connect,
            WillDelayInterval => self == C::Will,
            ServerReference => matches!(self, C::Connack | C::Disconnect),
            ReasonString => !matches!(
                self,
                C::Connect | C::Will | C::Publish | C::Subscribe | C::Unsubscribe
            ),
            ReceiveMaximum | TopicAliasMaximum | MaximumPacketSize => {
                matches!(self, C::Connect | C::Connack)
            }
            TopicAlias => self == C::Publish,
        }
    }
}

/// Every MQTT 5 property; unset ones are `None` (or empty).
///
/// Property meanings are those of the v5 specification, section 3 per packet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)] // Each field is named exactly as the property in the specification.
pub struct Properties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    /// One per matching subscription in PUBLISH; at most one in SUBSCRIBE.
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<String>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<String>,
    pub authentication_data: Option<Bytes>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<u8>,
    pub response_information: Option<String>,
    pub server_reference: Option<String>,
    pub reason_string: Option<String>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<u8>,
    /// Name/value pairs, in order; names may repeat.
    pub user_properties: Vec<(String, String)>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<u8>,
    pub subscription_identifier_available: Option<u8>,
    pub shared_subscription_available: Option<u8>,
}

impl Properties {
    /// No property set: what [`Properties::default`] gives, usable in constants.
    pub const EMPTY: Properties = Properties {
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        subscription_identifiers: Vec::new(),
        session_expiry_interval: None,
        assigned_client_identifier: None,
        server_keep_alive: None,
        authentication_method: None,
        authentication_data: None,
        request_problem_information: None,
        will_delay_interval: None,
        request_response_information: None,
        response_information: None,
        server_reference: None,
        reason_string: None,
        receive_maximum: None,
        topic_alias_maximum: None,
        topic_alias: None,
        maximum_qos: None,
        retain_available: None,
        user_properties: Vec::new(),
        maximum_packet_size: None,
        wildcard_subscription_available: None,
        subscription_identifier_available: None,
        shared_subscription_available: None,
    };
}

/// Stores a value into a single-valued property, refusing a second occurrence.
fn set_once<T>(slot: &mut Option<T>, id: PropertyId, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty(id));
    }
    *slot = Some(value);
    Ok(())
}

/// A byte property that may only be 0 or 1.
fn flag(reader: &mut Reader<'_>, id: PropertyId) -> Result<u8, DecodeError> {
    match reader.u8()? {
        value @ (0 | 1) => Ok(value),
        _ => Err(DecodeError::InvalidPropertyValue(id)),
    }
}

/// A numeric property that may not be zero.
fn non_zero<T: PartialEq + Default>(value: T, id: PropertyId) -> Result<T, DecodeError> {
    if value == T::default() {
        return Err(DecodeError::InvalidPropertyValue(id));
    }
    Ok(value)
}

impl Properties {
    /// Whether no property is set. (Field by field, not `== Properties::default()`,
    /// which builds and compares a whole default: a kilobyte more in the wasm client.
    /// The destructuring makes a new field a compile error here until it is checked.)
    pub fn is_empty(&self) -> bool {
        let Properties {
            payload_format_indicator,
            message_expiry_interval,
            content_type,
            response_topic,
            correlation_data,
            subscription_identifiers,
            session_expiry_interval,
            assigned_client_identifier,
            server_keep_alive,
            authentication_method,
            authentication_data,
            request_problem_information,
            will_delay_interval,
            request_response_information,
            response_information,
            server_reference,
            reason_string,
            receive_maximum,
            topic_alias_maximum,
            topic_alias,
            maximum_qos,
            retain_available,
            user_properties,
            maximum_packet_size,
            wildcard_subscription_available,
            subscription_identifier_available,
            shared_subscription_available,
        } = self;
        subscription_identifiers.is_empty()
            && user_properties.is_empty()
            && payload_format_indicator.is_none()
            && message_expiry_interval.is_none()
            && content_type.is_none()
            && response_topic.is_none()
            && correlation_data.is_none()
            && session_expiry_interval.is_none()
            && assigned_client_identifier.is_none()
            && server_keep_alive.is_none()
            && authentication_method.is_none()
            && authentication_data.is_none()
            && request_problem_information.is_none()
            && will_delay_interval.is_none()
            && request_response_information.is_none()
            && response_information.is_none()
            && server_reference.is_none()
            && reason_string.is_none()
            && receive_maximum.is_none()
            && topic_alias_maximum.is_none()
            && topic_alias.is_none()
            && maximum_qos.is_none()
            && retain_available.is_none()
            && maximum_packet_size.is_none()
            && wildcard_subscription_available.is_none()
            && subscription_identifier_available.is_none()
            && shared_subscription_available.is_none()
    }

    /// Reads a property list (length then properties) in the given context.
    pub(crate) fn decode(reader: &mut Reader<'_>, context: PropertyContext) -> Result<Self, DecodeError> {
        let length = reader.varint()? as usize;
        let mut list = Reader::new(reader.take(length)?);
        let mut props = Properties::default();
        while !list.is_empty() {
            let byte = list.u8()?;
            let id = PropertyId::from_byte(byte).ok_or(DecodeError::UnknownProperty(byte))?;
            if !context.allows(id) {
                return Err(DecodeError::PropertyNotAllowed {
                    property: id,
                    context: context.name(),
                });
            }
            props.read_value(&mut list, id, context)?;
        }
        Ok(props)
    }

    fn read_value(
        &mut self,
        r: &mut Reader<'_>,
        id: PropertyId,
        context: PropertyContext,
    ) -> Result<(), DecodeError> {
        use PropertyId::*;
        match id {
            PayloadFormatIndicator => set_once(&mut self.payload_format_indicator, id, flag(r, id)?),
            MessageExpiryInterval => set_once(&mut self.message_expiry_interval, id, r.u32()?),
            ContentType => set_once(&mut self.content_type, id, r.string()?),
            ResponseTopic => {
                let topic = r.string()?;
                crate::topic::validate_topic_name(&topic).map_err(DecodeError::InvalidTopicName)?;
                set_once(&mut self.response_topic, id, topic)
            }
            CorrelationData => set_once(&mut self.correlation_data, id, r.binary()?),
            SubscriptionIdentifier => {
                let value = non_zero(r.varint()?, id)?;
                if context == PropertyContext::Subscribe && !self.subscription_identifiers.is_empty() {
                    return Err(DecodeError::DuplicateProperty(id));
                }
                self.subscription_identifiers.push(value);
                Ok(())
            }
            SessionExpiryInterval => set_once(&mut self.session_expiry_interval, id, r.u32()?),
            AssignedClientIdentifier => set_once(&mut self.assigned_client_identifier, id, r.string()?),
            ServerKeepAlive => set_once(&mut self.server_keep_alive, id, r.u16()?),
            AuthenticationMethod => set_once(&mut self.authentication_method, id, r.string()?),
            AuthenticationData => set_once(&mut self.authentication_data, id, r.binary()?),
            RequestProblemInformation => set_once(&mut self.request_problem_information, id, flag(r, id)?),
            WillDelayInterval => set_once(&mut self.will_delay_interval, id, r.u32()?),
            RequestResponseInformation => set_once(&mut self.request_response_information, id, flag(r, id)?),
            ResponseInformation => set_once(&mut self.response_information, id, r.string()?),
            ServerReference => set_once(&mut self.server_reference, id, r.string()?),
            ReasonString => set_once(&mut self.reason_string, id, r.string()?),
            ReceiveMaximum => set_once(&mut self.receive_maximum, id, non_zero(r.u16()?, id)?),
            TopicAliasMaximum => set_once(&mut self.topic_alias_maximum, id, r.u16()?),
            TopicAlias => set_once(&mut self.topic_alias, id, non_zero(r.u16()?, id)?),
            MaximumQos => set_once(&mut self.maximum_qos, id, flag(r, id)?),
            RetainAvailable => set_once(&mut self.retain_available, id, flag(r, id)?),
            UserProperty => {
                let pair = (r.string()?, r.string()?);
                self.user_properties.push(pair);
                Ok(())
            }
            MaximumPacketSize => set_once(&mut self.maximum_packet_size, id, non_zero(r.u32()?, id)?),
            WildcardSubscriptionAvailable => {
                set_once(&mut self.wildcard_subscription_available, id, flag(r, id)?)
            }
            SubscriptionIdentifierAvailable => {
                set_once(&mut self.subscription_identifier_available, id, flag(r, id)?)
            }
            SharedSubscriptionAvailable => {
                set_once(&mut self.shared_subscription_available, id, flag(r, id)?)
            }
        }
    }

    /// Writes the property list (length then properties), checking each is allowed here.
    pub(crate) fn encode(&self, out: &mut Vec<u8>, context: PropertyContext) -> Result<(), EncodeError> {
        let start = out.len();
        if let Err(error) = self.encode_body(out, context) {
            out.truncate(start);
            return Err(error);
        }
        writer::prefix_length(out, start, None)
    }

    fn encode_body(&self, out: &mut Vec<u8>, context: PropertyContext) -> Result<(), EncodeError> {
        use PropertyId::*;
        let mut w = PropertyWriter { out, context };
        w.byte(PayloadFormatIndicator, self.payload_format_indicator)?;
        w.four(MessageExpiryInterval, self.message_expiry_interval)?;
        w.string(ContentType, self.content_type.as_deref())?;
        w.string(ResponseTopic, self.response_topic.as_deref())?;
        w.binary(CorrelationData, self.correlation_data.as_deref())?;
        for id in &self.subscription_identifiers {
            w.header(SubscriptionIdentifier)?;
            writer::varint(w.out, *id);
        }
        w.four(SessionExpiryInterval, self.session_expiry_interval)?;
        w.string(
            AssignedClientIdentifier,
            self.assigned_client_identifier.as_deref(),
        )?;
        w.two(ServerKeepAlive, self.server_keep_alive)?;
        w.string(AuthenticationMethod, self.authentication_method.as_deref())?;
        w.binary(AuthenticationData, self.authentication_data.as_deref())?;
        w.byte(RequestProblemInformation, self.request_problem_information)?;
        w.four(WillDelayInterval, self.will_delay_interval)?;
        w.byte(RequestResponseInformation, self.request_response_information)?;
        w.string(ResponseInformation, self.response_information.as_deref())?;
        w.string(ServerReference, self.server_reference.as_deref())?;
        w.string(ReasonString, self.reason_string.as_deref())?;
        w.two(ReceiveMaximum, self.receive_maximum)?;
        w.two(TopicAliasMaximum, self.topic_alias_maximum)?;
        w.two(TopicAlias, self.topic_alias)?;
        w.byte(MaximumQos, self.maximum_qos)?;
        w.byte(RetainAvailable, self.retain_available)?;
        for (name, value) in &self.user_properties {
            w.header(UserProperty)?;
            writer::string(w.out, name)?;
            writer::string(w.out, value)?;
        }
        w.four(MaximumPacketSize, self.maximum_packet_size)?;
        w.byte(
            WildcardSubscriptionAvailable,
            self.wildcard_subscription_available,
        )?;
        w.byte(
            SubscriptionIdentifierAvailable,
            self.subscription_identifier_available,
        )?;
        w.byte(SharedSubscriptionAvailable, self.shared_subscription_available)?;
        Ok(())
    }
}

/// Writes single properties, refusing those the context does not allow.
struct PropertyWriter<'a> {
    out: &'a mut Vec<u8>,
    context: PropertyContext,
}

impl PropertyWriter<'_> {
    fn header(&mut self, id: PropertyId) -> Result<(), EncodeError> {
        if !self.context.allows(id) {
            return Err(EncodeError::PropertyNotAllowed {
                property: id,
                context: self.context.name(),
            });
        }
        self.out.push(id as u8);
        Ok(())
    }

    fn byte(&mut self, id: PropertyId, value: Option<u8>) -> Result<(), EncodeError> {
        if let Some(value) = value {
            self.header(id)?;
            self.out.push(value);
        }
        Ok(())
    }

    fn two(&mut self, id: PropertyId, value: Option<u16>) -> Result<(), EncodeError> {
        if let Some(value) = value {
            self.header(id)?;
            writer::u16(self.out, value);
        }
        Ok(())
    }

    fn four(&mut self, id: PropertyId, value: Option<u32>) -> Result<(), EncodeError> {
        if let Some(value) = value {
            self.header(id)?;
            writer::u32(self.out, value);
        }
        Ok(())
    }

    fn string(&mut self, id: PropertyId, value: Option<&str>) -> Result<(), EncodeError> {
        if let Some(value) = value {
            self.header(id)?;
            writer::string(self.out, value)?;
        }
        Ok(())
    }

    fn binary(&mut self, id: PropertyId, value: Option<&[u8]>) -> Result<(), EncodeError> {
        if let Some(value) = value {
            self.header(id)?;
            writer::binary(self.out, value)?;
        }
        Ok(())
    }
}
