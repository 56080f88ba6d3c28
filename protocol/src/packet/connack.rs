//! CONNACK: the server's answer to CONNECT.

use crate::codec::reader::Reader;
use crate::error::{DecodeError, EncodeError};
use crate::properties::{Properties, PropertyContext};
use crate::reason::{ReasonCode, ReasonContext};
use crate::version::ProtocolVersion;

/// CONNACK: accepts or refuses a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connack {
    /// Whether the server resumed a stored session.
    pub session_present: bool,
    /// Success, or why the connection is refused (3.1.1 return codes map to the nearest reason).
    pub reason: ReasonCode,
    /// CONNACK properties (v5).
    pub properties: Properties,
}

impl Connack {
    pub(crate) fn decode(r: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let flags = r.u8()?;
        let code = r.u8()?;
        let reason = match version {
            ProtocolVersion::V311 => {
                ReasonCode::from_v311_connack(code).ok_or(DecodeError::InvalidReturnCode(code))?
            }
            ProtocolVersion::V5 => ReasonCode::from_byte(code)
                .filter(|reason| reason.allowed_in(ReasonContext::Connack))
                .ok_or(DecodeError::InvalidReasonCode {
                    code,
                    context: ReasonContext::Connack,
                })?,
        };
        let session_present = flags == 1;
        if flags > 1 || (session_present && reason.is_error()) {
            return Err(DecodeError::InvalidConnackFlags(flags));
        }
        let properties = match version {
            ProtocolVersion::V5 => Properties::decode(r, PropertyContext::Connack)?,
            ProtocolVersion::V311 => Properties::default(),
        };
        Ok(Connack {
            session_present,
            reason,
            properties,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>, version: ProtocolVersion) -> Result<(), EncodeError> {
        out.push(u8::from(self.session_present && !self.reason.is_error()));
        match version {
            ProtocolVersion::V311 => out.push(self.reason.to_v311_connack()),
            ProtocolVersion::V5 => {
                out.push(self.reason.byte());
                self.properties.encode(out, PropertyContext::Connack)?;
            }
        }
        Ok(())
    }
}
