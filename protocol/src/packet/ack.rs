//! PUBACK, PUBREC, PUBREL and PUBCOMP: the QoS 1 and QoS 2 acknowledgements.

use super::{PacketType, read_packet_id, write_packet_id};
use crate::codec::reader::Reader;
use crate::error::{DecodeError, EncodeError};
use crate::properties::{Properties, PropertyContext};
use crate::qos::PacketId;
use crate::reason::{ReasonCode, ReasonContext};
use crate::version::ProtocolVersion;

/// The body shared by PUBACK, PUBREC, PUBREL and PUBCOMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubResponse {
    /// The packet identifier of the PUBLISH (or PUBREL) this answers.
    pub packet_id: PacketId,
    /// Outcome (v5); always `Success` in 3.1.1.
    pub reason: ReasonCode,
    /// Properties (v5): reason string and user properties.
    pub properties: Properties,
}

impl PubResponse {
    /// A successful acknowledgement of `packet_id` with no properties.
    pub fn success(packet_id: PacketId) -> Self {
        Self {
            packet_id,
            reason: ReasonCode::Success,
            properties: Properties::default(),
        }
    }

    pub(crate) fn decode(
        r: &mut Reader<'_>,
        packet_type: PacketType,
        version: ProtocolVersion,
    ) -> Result<Self, DecodeError> {
        let packet_id = read_packet_id(r, packet_type)?;
        let mut response = Self::success(packet_id);
        if version.is_v5() && !r.is_empty() {
            let context = match packet_type {
                PacketType::Puback | PacketType::Pubrec => ReasonContext::PubackPubrec,
                _ => ReasonContext::PubrelPubcomp,
            };
            let code = r.u8()?;
            response.reason = ReasonCode::from_byte(code)
                .filter(|reason| reason.allowed_in(context))
                .ok_or(DecodeError::InvalidReasonCode { code, context })?;
            if !r.is_empty() {
                response.properties = Properties::decode(r, PropertyContext::PubResponse)?;
            }
        }
        Ok(response)
    }

    /// Writes the shortest form the spec allows: the reason and properties are left out when default.
    pub(crate) fn encode(&self, out: &mut Vec<u8>, version: ProtocolVersion) -> Result<(), EncodeError> {
        write_packet_id(out, self.packet_id);
        if version.is_v5() {
            let has_properties = !self.properties.is_empty();
            if self.reason != ReasonCode::Success || has_properties {
                out.push(self.reason.byte());
            }
            if has_properties {
                self.properties.encode(out, PropertyContext::PubResponse)?;
            }
        }
        Ok(())
    }
}
