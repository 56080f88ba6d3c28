//! CONNECT: the first packet a client sends.

use bytes::Bytes;

use crate::codec::reader::Reader;
use crate::codec::writer;
use crate::error::{DecodeError, EncodeError};
use crate::packet::BoxedProperties;
use crate::properties::{Properties, PropertyContext};
use crate::qos::QoS;
use crate::topic::validate_topic_name;
use crate::version::ProtocolVersion;

const PROTOCOL_NAME: &[u8] = b"MQTT";
/// MQTT 3.1's protocol name, recognised only to refuse it with the right code.
const LEGACY_PROTOCOL_NAME: &[u8] = b"MQIsdp";

/// The message the server publishes for a client that goes away without DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Will {
    /// Where the will is published.
    pub topic: String,
    /// The will's payload.
    pub payload: Bytes,
    /// QoS of the will publish.
    pub qos: QoS,
    /// Whether the will is retained.
    pub retain: bool,
    /// Will properties (v5): will delay interval, message expiry, content type, ...
    pub properties: BoxedProperties,
}

/// CONNECT: opens a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol version, from the protocol level byte.
    pub version: ProtocolVersion,
    /// Clean session (3.1.1) or clean start (5.0).
    pub clean_start: bool,
    /// Keep-alive in seconds; 0 turns keep-alive off.
    pub keep_alive: u16,
    /// CONNECT properties (v5).
    pub properties: Properties,
    /// The client identifier; may be empty.
    pub client_id: String,
    /// The will message, if any.
    pub will: Option<Will>,
    /// User name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Bytes>,
}

impl Connect {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let name_len = usize::from(r.u16()?);
        let name = r.take(name_len)?;
        let level = r.u8()?;
        if name == LEGACY_PROTOCOL_NAME {
            return Err(DecodeError::UnsupportedProtocolVersion(level));
        }
        if name != PROTOCOL_NAME {
            return Err(DecodeError::InvalidProtocolName);
        }
        let version =
            ProtocolVersion::from_level(level).ok_or(DecodeError::UnsupportedProtocolVersion(level))?;
        let flags = r.u8()?;
        if flags & 0b1 != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let has_will = flags & 0b100 != 0;
        let will_qos_bits = (flags >> 3) & 0b11;
        let will_retain = flags & 0b10_0000 != 0;
        let has_password = flags & 0b100_0000 != 0;
        let has_username = flags & 0b1000_0000 != 0;
        if (!has_will && (will_qos_bits != 0 || will_retain)) || will_qos_bits == 3 {
            return Err(DecodeError::InvalidWillFlags);
        }
        if version == ProtocolVersion::V311 && has_password && !has_username {
            return Err(DecodeError::PasswordWithoutUsername);
        }
        let keep_alive = r.u16()?;
        let properties = match version {
            ProtocolVersion::V5 => Properties::decode(r, PropertyContext::Connect)?,
            ProtocolVersion::V311 => Properties::default(),
        };
        let client_id = r.string()?;
        let will = if has_will {
            let properties = match version {
                ProtocolVersion::V5 => Properties::decode(r, PropertyContext::Will)?,
                ProtocolVersion::V311 => Properties::default(),
            };
            let topic = r.string()?;
            validate_topic_name(&topic).map_err(DecodeError::InvalidTopicName)?;
            let payload = r.binary()?;
            let qos = QoS::from_bits(will_qos_bits).ok_or(DecodeError::InvalidWillFlags)?;
            Some(Will {
                topic,
                payload,
                qos,
                retain: will_retain,
                properties: properties.into(),
            })
        } else {
            None
        };
        let username = if has_username { Some(r.string()?) } else { None };
        let password = if has_password { Some(r.binary()?) } else { None };
        Ok(Connect {
            version,
            clean_start: flags & 0b10 != 0,
            keep_alive,
            properties,
            client_id,
            will,
            username,
            password,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        writer::binary(out, PROTOCOL_NAME)?;
        out.push(self.version.level());
        let mut flags = 0u8;
        if self.clean_start {
            flags |= 0b10;
        }
        if let Some(will) = &self.will {
            flags |= 0b100 | (will.qos.bits() << 3);
            if will.retain {
                flags |= 0b10_0000;
            }
        }
        if self.password.is_some() {
            flags |= 0b100_0000;
        }
        if self.username.is_some() {
            flags |= 0b1000_0000;
        }
        out.push(flags);
        writer::u16(out, self.keep_alive);
        let v5 = self.version.is_v5();
        if v5 {
            self.properties.encode(out, PropertyContext::Connect)?;
        }
        writer::string(out, &self.client_id)?;
        if let Some(will) = &self.will {
            if v5 {
                will.properties.encode(out, PropertyContext::Will)?;
            }
            writer::string(out, &will.topic)?;
            writer::binary(out, &will.payload)?;
        }
        if let Some(username) = &self.username {
            writer::string(out, username)?;
        }
        if let Some(password) = &self.password {
            writer::binary(out, password)?;
        }
        Ok(())
    }
}
