//! The MQTT control packets of 3.1.1 and 5.0, as one set of types.
//!
//! A packet type holds the union of both versions' fields; fields that only exist in
//! v5 (properties, reason codes on acknowledgements) are empty or `Success` in 3.1.1.

mod ack;
mod connack;
mod connect;
mod disconnect;
mod publish;
mod subscribe;
mod unsubscribe;

pub use ack::PubResponse;
pub use connack::Connack;
pub use connect::{Connect, Will};
pub use disconnect::{Auth, Disconnect};
pub use publish::{BoxedProperties, Publish};
pub use subscribe::{RetainHandling, Suback, Subscribe, Subscription, SubscriptionOptions};
pub use unsubscribe::{Unsuback, Unsubscribe};

use crate::codec::reader::Reader;
use crate::codec::writer;
use crate::error::{DecodeError, EncodeError};
use crate::qos::PacketId;
use crate::version::ProtocolVersion;

/// The control packet types, numbered as in the fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // Named as in the specification.
pub enum PacketType {
    Connect = 1,
    Connack = 2,
    Publish = 3,
    Puback = 4,
    Pubrec = 5,
    Pubrel = 6,
    Pubcomp = 7,
    Subscribe = 8,
    Suback = 9,
    Unsubscribe = 10,
    Unsuback = 11,
    Pingreq = 12,
    Pingresp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl PacketType {
    /// The packet type for a fixed header's upper nibble (1 to 15).
    pub fn from_nibble(nibble: u8) -> Option<Self> {
        use PacketType::*;
        Some(match nibble {
            1 => Connect,
            2 => Connack,
            3 => Publish,
            4 => Puback,
            5 => Pubrec,
            6 => Pubrel,
            7 => Pubcomp,
            8 => Subscribe,
            9 => Suback,
            10 => Unsubscribe,
            11 => Unsuback,
            12 => Pingreq,
            13 => Pingresp,
            14 => Disconnect,
            15 => Auth,
            _ => return None,
        })
    }

    /// The fixed-header flags this type must carry; PUBLISH's flags carry data instead.
    fn required_flags(self) -> Option<u8> {
        match self {
            Self::Publish => None,
            Self::Pubrel | Self::Subscribe | Self::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }
}

/// One MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // Each variant is the packet of the same name.
pub enum Packet {
    Connect(Box<Connect>),
    Connack(Connack),
    Publish(Publish),
    Puback(PubResponse),
    Pubrec(PubResponse),
    Pubrel(PubResponse),
    Pubcomp(PubResponse),
    Subscribe(Subscribe),
    Suback(Suback),
    Unsubscribe(Unsubscribe),
    Unsuback(Unsuback),
    Pingreq,
    Pingresp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    /// This packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::Connack(_) => PacketType::Connack,
            Self::Publish(_) => PacketType::Publish,
            Self::Puback(_) => PacketType::Puback,
            Self::Pubrec(_) => PacketType::Pubrec,
            Self::Pubrel(_) => PacketType::Pubrel,
            Self::Pubcomp(_) => PacketType::Pubcomp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::Suback(_) => PacketType::Suback,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::Unsuback(_) => PacketType::Unsuback,
            Self::Pingreq => PacketType::Pingreq,
            Self::Pingresp => PacketType::Pingresp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }

    /// Decodes a packet body whose fixed header said `packet_type` and `flags`.
    ///
    /// With `FROM_SERVER`, the packet types only a client sends are refused: a client
    /// never decodes them, and its binary does not carry their decoders.
    pub(crate) fn decode_body<const FROM_SERVER: bool>(
        packet_type: PacketType,
        flags: u8,
        body: &[u8],
        version: ProtocolVersion,
    ) -> Result<Packet, DecodeError> {
        if let Some(required) = packet_type.required_flags()
            && flags != required
        {
            return Err(DecodeError::InvalidHeaderFlags { packet_type, flags });
        }
        let mut r = Reader::new(body);
        let packet = match packet_type {
            PacketType::Connect if !FROM_SERVER => Packet::Connect(Box::new(Connect::decode(&mut r)?)),
            PacketType::Connack => Packet::Connack(Connack::decode(&mut r, version)?),
            PacketType::Publish => Packet::Publish(Publish::decode(&mut r, flags, version)?),
            PacketType::Puback => Packet::Puback(PubResponse::decode(&mut r, packet_type, version)?),
            PacketType::Pubrec => Packet::Pubrec(PubResponse::decode(&mut r, packet_type, version)?),
            PacketType::Pubrel => Packet::Pubrel(PubResponse::decode(&mut r, packet_type, version)?),
            PacketType::Pubcomp => Packet::Pubcomp(PubResponse::decode(&mut r, packet_type, version)?),
            PacketType::Subscribe if !FROM_SERVER => Packet::Subscribe(Subscribe::decode(&mut r, version)?),
            PacketType::Suback => Packet::Suback(Suback::decode(&mut r, version)?),
            PacketType::Unsubscribe if !FROM_SERVER => {
                Packet::Unsubscribe(Unsubscribe::decode(&mut r, version)?)
            }
            PacketType::Unsuback => Packet::Unsuback(Unsuback::decode(&mut r, version)?),
            PacketType::Pingreq if !FROM_SERVER => Packet::Pingreq,
            PacketType::Pingresp => Packet::Pingresp,
            PacketType::Disconnect => Packet::Disconnect(Disconnect::decode(&mut r, version)?),
            PacketType::Auth => {
                if !version.is_v5() {
                    return Err(DecodeError::InvalidPacketType(PacketType::Auth as u8));
                }
                Packet::Auth(Auth::decode(&mut r)?)
            }
            PacketType::Connect | PacketType::Subscribe | PacketType::Unsubscribe | PacketType::Pingreq => {
                return Err(DecodeError::NotSentByServer(packet_type));
            }
        };
        r.finish()?;
        Ok(packet)
    }

    /// Writes this packet's body and returns the fixed header's flag bits.
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>, version: ProtocolVersion) -> Result<u8, EncodeError> {
        match self {
            Self::Connect(p) => p.encode(out)?,
            Self::Connack(p) => p.encode(out, version)?,
            Self::Publish(p) => return p.encode(out, version),
            Self::Puback(p) | Self::Pubrec(p) | Self::Pubrel(p) | Self::Pubcomp(p) => {
                p.encode(out, version)?
            }
            Self::Subscribe(p) => p.encode(out, version)?,
            Self::Suback(p) => p.encode(out, version)?,
            Self::Unsubscribe(p) => p.encode(out, version)?,
            Self::Unsuback(p) => p.encode(out, version)?,
            Self::Pingreq | Self::Pingresp => {}
            Self::Disconnect(p) => p.encode(out, version)?,
            Self::Auth(p) => {
                if !version.is_v5() {
                    return Err(EncodeError::NotInVersion(PacketType::Auth));
                }
                p.encode(out)?
            }
        }
        Ok(self.packet_type().required_flags().unwrap_or(0))
    }
}

/// Reads a packet identifier that must be non-zero.
pub(crate) fn read_packet_id(r: &mut Reader<'_>, packet_type: PacketType) -> Result<PacketId, DecodeError> {
    PacketId::new(r.u16()?).ok_or(DecodeError::ZeroPacketId(packet_type))
}

/// Writes a packet identifier.
pub(crate) fn write_packet_id(out: &mut Vec<u8>, id: PacketId) {
    writer::u16(out, id.get());
}
