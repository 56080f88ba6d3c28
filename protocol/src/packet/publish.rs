//! PUBLISH: an application message.

use bytes::Bytes;

use super::{PacketType, read_packet_id, write_packet_id};
use crate::codec::reader::Reader;
use crate::codec::writer;
use crate::error::{DecodeError, EncodeError};
use crate::properties::{Properties, PropertyContext};
use crate::qos::{PacketId, QoS};
use crate::topic::{TopicError, validate_topic_name};
use crate::version::ProtocolVersion;

/// PUBLISH: carries an application message in either direction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Publish {
    /// Set on a resend of a QoS 1/2 message.
    pub dup: bool,
    /// Delivery guarantee of this transmission.
    pub qos: QoS,
    /// Retained message flag.
    pub retain: bool,
    /// The topic; empty only in v5 when a topic alias stands in for it.
    pub topic: String,
    /// Present exactly when QoS is 1 or 2.
    pub packet_id: Option<PacketId>,
    /// PUBLISH properties (v5).
    pub properties: Properties,
    /// The application payload.
    pub payload: Bytes,
}

impl Publish {
    pub(crate) fn decode(
        r: &mut Reader<'_>,
        flags: u8,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let dup = flags & 0b1000 != 0;
        let qos = QoS::from_bits((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQos)?;
        if dup && qos == QoS::AtMostOnce {
            return Err(DecodeError::DupOnQos0);
        }
        let topic = r.string()?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            _ => Some(read_packet_id(r, PacketType::Publish)?),
        };
        let properties = match version {
            ProtocolVersion::V5 => Properties::decode(r, PropertyContext::Publish)?,
            ProtocolVersion::V311 => Properties::default(),
        };
        match validate_topic_name(&topic) {
            Err(TopicError::Empty) if properties.topic_alias.is_some() => {}
            result => result.map_err(DecodeError::InvalidTopicName)?,
        }
        Ok(Publish {
            dup,
            qos,
            retain: flags & 0b1 != 0,
            topic,
            packet_id,
            properties,
            payload: Bytes::copy_from_slice(r.rest()),
        })
    }

    /// Writes the body and returns the fixed-header flags (DUP, QoS, RETAIN).
    pub(crate) fn encode(&self, out: &mut Vec<u8>, version: ProtocolVersion) -> Result<u8, EncodeError> {
        writer::string(out, &self.topic)?;
        match (self.qos, self.packet_id) {
            (QoS::AtMostOnce, None) => {}
            (QoS::AtLeastOnce | QoS::ExactlyOnce, Some(id)) => write_packet_id(out, id),
            _ => return Err(EncodeError::PacketIdMismatch),
        }
        if version.is_v5() {
            self.properties.encode(out, PropertyContext::Publish)?;
        }
        out.extend_from_slice(&self.payload);
        Ok((u8::from(self.dup) << 3) | (self.qos.bits() << 1) | u8::from(self.retain))
    }
}

impl Publish {
    /// A PUBLISH of `payload` to `topic` at `qos`, not retained, with no properties.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>, qos: QoS) -> Self {
        Self {
            dup: false,
            qos,
            retain: false,
            topic: topic.into(),
            packet_id: None,
            properties: Properties::default(),
            payload: payload.into(),
        }
    }
}
