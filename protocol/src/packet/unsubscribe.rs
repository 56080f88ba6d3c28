//! UNSUBSCRIBE and UNSUBACK.

use super::{PacketType, read_packet_id, write_packet_id};
use crate::codec::reader::Reader;
use crate::codec::writer;
use crate::error::{DecodeError, EncodeError};
use crate::properties::{Properties, PropertyContext};
use crate::qos::PacketId;
use crate::reason::{ReasonCode, ReasonContext};
use crate::topic::validate_topic_filter;
use crate::version::ProtocolVersion;

/// UNSUBSCRIBE: removes one or more subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Identifies the request; UNSUBACK echoes it.
    pub packet_id: PacketId,
    /// Properties (v5): user properties.
    pub properties: Properties,
    /// The filters to remove, at least one.
    pub filters: Vec<String>,
}

impl Unsubscribe {
    pub(crate) fn decode(r: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(r, PacketType::Unsubscribe)?;
        let properties = match version {
            ProtocolVersion::V5 => Properties::decode(r, PropertyContext::Unsubscribe)?,
            ProtocolVersion::V311 => Properties::default(),
        };
        let mut filters = Vec::new();
        while !r.is_empty() {
            let filter = r.string()?;
            validate_topic_filter(&filter).map_err(DecodeError::InvalidTopicFilter)?;
            filters.push(filter);
        }
        if filters.is_empty() {
            return Err(DecodeError::NoTopicFilters(PacketType::Unsubscribe));
        }
        Ok(Unsubscribe {
            packet_id,
            properties,
            filters,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>, version: ProtocolVersion) -> Result<(), EncodeError> {
        write_packet_id(out, self.packet_id);
        if version.is_v5() {
            self.properties.encode(out, PropertyContext::Unsubscribe)?;
        }
        for filter in &self.filters {
            writer::string(out, filter)?;
        }
        Ok(())
    }
}

/// UNSUBACK: confirms an UNSUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsuback {
    /// The UNSUBSCRIBE's packet identifier.
    pub packet_id: PacketId,
    /// Properties (v5): reason string and user properties.
    pub properties: Properties,
    /// One reason per filter (v5); empty in 3.1.1, which has none.
    pub reasons: Vec<ReasonCode>,
}

impl Unsuback {
    pub(crate) fn decode(r: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(r, PacketType::Unsuback)?;
        if !version.is_v5() {
            return Ok(Unsuback {
                packet_id,
                properties: Properties::default(),
                reasons: Vec::new(),
            });
        }
        let properties = Properties::decode(r, PropertyContext::SubResponse)?;
        let reasons = r
            .rest()
            .iter()
            .map(|&code| {
                ReasonCode::from_byte(code)
                    .filter(|reason| reason.allowed_in(ReasonContext::Unsuback))
                    .ok_or(DecodeError::InvalidReasonCode {
                        code,
                        context: ReasonContext::Unsuback,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Unsuback {
            packet_id,
            properties,
            reasons,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>, version: ProtocolVersion) -> Result<(), EncodeError> {
        write_packet_id(out, self.packet_id);
        if version.is_v5() {
            self.properties.encode(out, PropertyContext::SubResponse)?;
            out.extend(self.reasons.iter().map(|reason| reason.byte()));
        }
        Ok(())
    }
}
