//! DISCONNECT and AUTH: a reason code and properties, both optional on the wire.

use crate::codec::reader::Reader;
use crate::error::{DecodeError, EncodeError};
use crate::properties::{Properties, PropertyContext};
use crate::reason::{ReasonCode, ReasonContext};
use crate::version::ProtocolVersion;

/// DISCONNECT: the last packet of a connection; in v5 either side may send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Why (v5); `Success` is a normal disconnection. Always `Success` in 3.1.1.
    pub reason: ReasonCode,
    /// Properties (v5): session expiry, reason string, server reference, user properties.
    pub properties: Properties,
}

impl Disconnect {
    /// A DISCONNECT with `reason` and no properties.
    pub fn with_reason(reason: ReasonCode) -> Self {
        Self {
            reason,
            properties: Properties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let (reason, properties) = match version {
            ProtocolVersion::V311 => (ReasonCode::Success, Properties::default()),
            ProtocolVersion::V5 => {
                decode_reason_and_properties(r, ReasonContext::Disconnect, PropertyContext::Disconnect)?
            }
        };
        Ok(Disconnect { reason, properties })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>, version: ProtocolVersion) -> Result<(), EncodeError> {
        if version.is_v5() {
            encode_reason_and_properties(out, self.reason, &self.properties, PropertyContext::Disconnect)?;
        }
        Ok(())
    }
}

/// AUTH (v5 only): a step of enhanced authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Success, continue authentication, or re-authenticate.
    pub reason: ReasonCode,
    /// Properties: authentication method and data, reason string, user properties.
    pub properties: Properties,
}

impl Auth {
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (reason, properties) =
            decode_reason_and_properties(r, ReasonContext::Auth, PropertyContext::Auth)?;
        Ok(Auth { reason, properties })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_reason_and_properties(out, self.reason, &self.properties, PropertyContext::Auth)
    }
}

/// An empty body means success with no properties; a lone reason byte means no properties.
fn decode_reason_and_properties(
    r: &mut Reader<'_>,
    reasons: ReasonContext,
    properties: PropertyContext,
) -> Result<(ReasonCode, Properties), DecodeError> {
    if r.is_empty() {
        return Ok((ReasonCode::Success, Properties::default()));
    }
    let code = r.u8()?;
    let reason = ReasonCode::from_byte(code)
        .filter(|reason| reason.allowed_in(reasons))
        .ok_or(DecodeError::InvalidReasonCode {
            code,
            context: reasons,
        })?;
    let properties = if r.is_empty() {
        Properties::default()
    } else {
        Properties::decode(r, properties)?
    };
    Ok((reason, properties))
}

fn encode_reason_and_properties(
    out: &mut Vec<u8>,
    reason: ReasonCode,
    properties: &Properties,
    context: PropertyContext,
) -> Result<(), EncodeError> {
    let has_properties = !properties.is_empty();
    if reason != ReasonCode::Success || has_properties {
        out.push(reason.byte());
    }
    if has_properties {
        properties.encode(out, context)?;
    }
    Ok(())
}
