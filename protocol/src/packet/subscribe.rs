//! SUBSCRIBE and SUBACK.

use serde::{Deserialize, Serialize};

use super::{PacketType, read_packet_id, write_packet_id};
use crate::codec::reader::Reader;
use crate::codec::writer;
use crate::error::{DecodeError, EncodeError};
use crate::properties::{Properties, PropertyContext};
use crate::qos::{PacketId, QoS};
use crate::reason::{ReasonCode, ReasonContext};
use crate::topic::{SharedFilter, validate_topic_filter};
use crate::version::ProtocolVersion;

/// When the server sends retained messages for a new subscription (v5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum RetainHandling {
    /// Send retained messages at every subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// Send them only if the subscription did not exist yet.
    SendIfNew = 1,
    /// Never send them.
    DoNotSend = 2,
}

/// The options byte of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SubscriptionOptions {
    /// Maximum QoS the subscriber accepts.
    pub qos: QoS,
    /// v5: do not send this client its own publishes.
    pub no_local: bool,
    /// v5: keep the RETAIN flag as published instead of clearing it.
    pub retain_as_published: bool,
    /// v5: when to send retained messages.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    fn decode(byte: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let reserved = match version {
            ProtocolVersion::V311 => 0b1111_1100,
            ProtocolVersion::V5 => 0b1100_0000,
        };
        if byte & reserved != 0 {
            return Err(DecodeError::InvalidSubscriptionOptions(byte));
        }
        let retain_handling = match (byte >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::InvalidSubscriptionOptions(byte)),
        };
        Ok(Self {
            qos: QoS::from_bits(byte & 0b11).ok_or(DecodeError::InvalidQos)?,
            no_local: byte & 0b100 != 0,
            retain_as_published: byte & 0b1000 != 0,
            retain_handling,
        })
    }

    fn byte(&self, version: ProtocolVersion) -> u8 {
        let mut byte = self.qos.bits();
        if version.is_v5() {
            byte |= (u8::from(self.no_local) << 2)
                | (u8::from(self.retain_as_published) << 3)
                | ((self.retain_handling as u8) << 4);
        }
        byte
    }
}

/// One topic filter with its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// The topic filter, possibly `$share/group/filter`.
    pub filter: String,
    /// Its options.
    pub options: SubscriptionOptions,
}

/// SUBSCRIBE: asks for one or more subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Identifies the request; SUBACK echoes it.
    pub packet_id: PacketId,
    /// Properties (v5): subscription identifier and user properties.
    pub properties: Properties,
    /// The filters, at least one.
    pub subscriptions: Vec<Subscription>,
}

impl Subscribe {
    pub(crate) fn decode(r: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(r, PacketType::Subscribe)?;
        let properties = match version {
            ProtocolVersion::V5 => Properties::decode(r, PropertyContext::Subscribe)?,
            ProtocolVersion::V311 => Properties::default(),
        };
        let mut subscriptions = Vec::new();
        while !r.is_empty() {
            let filter = r.string()?;
            validate_topic_filter(&filter).map_err(DecodeError::InvalidTopicFilter)?;
            let options = SubscriptionOptions::decode(r.u8()?, version)?;
            if options.no_local && matches!(SharedFilter::parse(&filter), Ok(Some(_))) {
                return Err(DecodeError::NoLocalOnSharedSubscription);
            }
            subscriptions.push(Subscription { filter, options });
        }
        if subscriptions.is_empty() {
            return Err(DecodeError::NoTopicFilters(PacketType::Subscribe));
        }
        Ok(Subscribe {
            packet_id,
            properties,
            subscriptions,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>, version: ProtocolVersion) -> Result<(), EncodeError> {
        write_packet_id(out, self.packet_id);
        if version.is_v5() {
            self.properties.encode(out, PropertyContext::Subscribe)?;
        }
        for subscription in &self.subscriptions {
            writer::string(out, &subscription.filter)?;
            out.push(subscription.options.byte(version));
        }
        Ok(())
    }
}

/// SUBACK: one reason code per requested filter, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suback {
    /// The SUBSCRIBE's packet identifier.
    pub packet_id: PacketId,
    /// Properties (v5): reason string and user properties.
    pub properties: Properties,
    /// Granted QoS or failure, per filter. In 3.1.1 every failure is sent as 0x80.
    pub reasons: Vec<ReasonCode>,
}

impl Suback {
    pub(crate) fn decode(r: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(r, PacketType::Suback)?;
        let properties = match version {
            ProtocolVersion::V5 => Properties::decode(r, PropertyContext::SubResponse)?,
            ProtocolVersion::V311 => Properties::default(),
        };
        let reasons = r
            .rest()
            .iter()
            .map(|&code| match version {
                ProtocolVersion::V311 => match code {
                    0x00 => Ok(ReasonCode::Success),
                    0x01 => Ok(ReasonCode::GrantedQos1),
                    0x02 => Ok(ReasonCode::GrantedQos2),
                    0x80 => Ok(ReasonCode::UnspecifiedError),
                    _ => Err(DecodeError::InvalidReturnCode(code)),
                },
                ProtocolVersion::V5 => ReasonCode::from_byte(code)
                    .filter(|reason| reason.allowed_in(ReasonContext::Suback))
                    .ok_or(DecodeError::InvalidReasonCode {
                        code,
                        context: ReasonContext::Suback,
                    }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Suback {
            packet_id,
            properties,
            reasons,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>, version: ProtocolVersion) -> Result<(), EncodeError> {
        write_packet_id(out, self.packet_id);
        if version.is_v5() {
            self.properties.encode(out, PropertyContext::SubResponse)?;
        }
        for reason in &self.reasons {
            let byte = if !version.is_v5() && reason.is_error() {
                0x80
            } else {
                reason.byte()
            };
            out.push(byte);
        }
        Ok(())
    }
}
