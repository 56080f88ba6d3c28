//! PUBLISH: an application message.

use std::fmt;
use std::ops::{Deref, DerefMut};

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    pub properties: BoxedProperties,
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
            ProtocolVersion::V5 => Properties::decode(r, PropertyContext::Publish)?.into(),
            ProtocolVersion::V311 => BoxedProperties::default(),
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
            properties: BoxedProperties::default(),
            payload: payload.into(),
        }
    }
}

/// A PUBLISH's properties, behind a pointer allocated only once one is set. Most
/// messages carry none, and a `Publish` is cloned and moved on every delivery: inline,
/// the 344 bytes of [`Properties`] made a `Publish` 408 bytes, and a broker connection's
/// inbox keeps room for 32 messages even when idle. Reads go through `Deref` (an empty
/// set when nothing is stored); `DerefMut` allocates, so edits that only remove
/// properties go through [`BoxedProperties::edit_if_any`].
#[derive(Clone, Default)]
pub struct BoxedProperties(Option<Box<Properties>>);

static NO_PROPERTIES: Properties = Properties::EMPTY;

impl BoxedProperties {
    /// Whether the properties take a heap allocation (some property was set, or written).
    pub fn is_allocated(&self) -> bool {
        self.0.is_some()
    }

    /// Runs `edit` on the stored properties if there are any; with none it allocates
    /// nothing and returns `T::default()`. For edits that only take properties away
    /// (a topic alias, subscription identifiers), which a message without properties
    /// must not pay an allocation for.
    pub fn edit_if_any<T: Default>(&mut self, edit: impl FnOnce(&mut Properties) -> T) -> T {
        self.0.as_deref_mut().map(edit).unwrap_or_default()
    }
}

impl Deref for BoxedProperties {
    type Target = Properties;

    fn deref(&self) -> &Properties {
        self.0.as_deref().unwrap_or(&NO_PROPERTIES)
    }
}

impl DerefMut for BoxedProperties {
    fn deref_mut(&mut self) -> &mut Properties {
        self.0.get_or_insert_with(Box::default)
    }
}

impl From<Properties> for BoxedProperties {
    fn from(properties: Properties) -> Self {
        Self((!properties.is_empty()).then(|| Box::new(properties)))
    }
}

impl PartialEq for BoxedProperties {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for BoxedProperties {}

impl fmt::Debug for BoxedProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

/// Stored exactly as [`Properties`]: the pointer is not part of the format.
impl Serialize for BoxedProperties {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for BoxedProperties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Properties::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_content_type() -> Properties {
        Properties {
            content_type: Some("text/plain".into()),
            ..Properties::default()
        }
    }

    #[test]
    fn no_properties_take_no_allocation_and_compare_by_content() {
        let mut empty = BoxedProperties::default();
        assert!(!empty.is_allocated() && empty.is_empty());
        assert!(!BoxedProperties::from(Properties::default()).is_allocated());
        // A mutable borrow allocates, but an unset allocation still equals no allocation.
        empty.topic_alias = None;
        assert!(empty.is_allocated());
        assert_eq!(empty, BoxedProperties::default());
        let set = BoxedProperties::from(with_content_type());
        assert_eq!(set.content_type.as_deref(), Some("text/plain"));
        assert_ne!(set, BoxedProperties::default());
    }

    #[test]
    fn removing_edits_allocate_nothing_when_there_is_nothing_to_remove() {
        let mut none = BoxedProperties::default();
        assert_eq!(none.edit_if_any(|p| p.topic_alias.take()), None);
        assert!(!none.is_allocated());
        let mut some = BoxedProperties::from(Properties {
            topic_alias: Some(3),
            ..Properties::default()
        });
        assert_eq!(some.edit_if_any(|p| p.topic_alias.take()), Some(3));
        assert_eq!(some.topic_alias, None);
    }

    #[test]
    fn serialized_exactly_as_the_properties_themselves() {
        for properties in [Properties::default(), with_content_type()] {
            let boxed = BoxedProperties::from(properties.clone());
            let json = serde_json::to_string(&boxed).expect("serializes");
            assert_eq!(json, serde_json::to_string(&properties).expect("serializes"));
            let back: BoxedProperties = serde_json::from_str(&json).expect("deserializes");
            assert_eq!(*back, properties);
        }
    }

    #[test]
    fn a_publish_without_properties_stays_small() {
        // Queued per subscriber and per connection inbox slot: keep it a few words.
        assert!(
            std::mem::size_of::<Publish>() <= 96,
            "{}",
            std::mem::size_of::<Publish>()
        );
    }
}
