//! Quality of service levels and packet identifiers.

use std::num::NonZeroU16;

use serde::{Deserialize, Serialize};

/// A packet identifier: never zero on the wire.
pub type PacketId = NonZeroU16;

/// MQTT quality of service: how hard the sender tries to deliver a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub enum QoS {
    /// At most once: fire and forget.
    #[default]
    AtMostOnce = 0,
    /// At least once: acknowledged by PUBACK, may be duplicated.
    AtLeastOnce = 1,
    /// Exactly once: the PUBREC/PUBREL/PUBCOMP handshake.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for its two-bit wire value; `None` for the invalid value 3.
    pub fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }

    /// The wire value, 0 to 2.
    pub fn bits(self) -> u8 {
        self as u8
    }
}
