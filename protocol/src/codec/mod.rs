//! Framing: the fixed header, and whole packets to and from bytes.
//!
//! [`decode`] is incremental: `Ok(None)` means the buffer does not yet hold a whole
//! packet and nothing was consumed; call again with more bytes. The maximum packet
//! size is checked against the fixed header before the body is waited for, so a peer
//! cannot make the receiver buffer an oversized packet.

pub(crate) mod reader;
pub(crate) mod stream;
pub(crate) mod writer;

use crate::error::{DecodeError, EncodeError};
use crate::packet::{Packet, PacketType};
use crate::version::ProtocolVersion;

/// The largest packet MQTT can express: a 5-byte fixed header and a 268,435,455-byte body.
pub const PROTOCOL_MAX_PACKET_SIZE: u32 = 268_435_460;

/// The fixed header of a packet whose whole header has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The packet type nibble, as received (1 to 15).
    pub type_nibble: u8,
    /// The four flag bits.
    pub flags: u8,
    /// Length of the body that follows the header.
    pub remaining_length: u32,
    /// Length of the fixed header itself (2 to 5 bytes).
    pub header_length: usize,
}

impl FixedHeader {
    /// Total size of the packet on the wire.
    pub fn packet_length(&self) -> u64 {
        self.header_length as u64 + u64::from(self.remaining_length)
    }

    /// Parses a fixed header; `Ok(None)` if `bytes` ends inside it.
    pub fn parse(bytes: &[u8]) -> Result<Option<Self>, DecodeError> {
        let Some(&first) = bytes.first() else {
            return Ok(None);
        };
        let mut remaining_length = 0u32;
        for index in 0..4 {
            let Some(&byte) = bytes.get(1 + index) else {
                return Ok(None);
            };
            remaining_length |= u32::from(byte & 0x7F) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(Some(FixedHeader {
                    type_nibble: first >> 4,
                    flags: first & 0x0F,
                    remaining_length,
                    header_length: 2 + index,
                }));
            }
        }
        Err(DecodeError::RemainingLengthTooLong)
    }
}

/// Decodes one packet from the front of `bytes`.
///
/// Returns the packet and how many bytes it used, `Ok(None)` if more bytes are needed,
/// or the error that makes the stream unusable. `version` is the connection's version;
/// a CONNECT carries its own and ignores it. `max_packet_size` bounds the whole packet.
pub fn decode(
    bytes: &[u8],
    version: ProtocolVersion,
    max_packet_size: u32,
) -> Result<Option<(Packet, usize)>, DecodeError> {
    decode_as::<false>(bytes, version, max_packet_size)
}

/// [`decode`] for a client: packet types only a client sends are refused with
/// [`DecodeError::NotSentByServer`], and their decoders stay out of the client's binary.
pub fn decode_from_server(
    bytes: &[u8],
    version: ProtocolVersion,
    max_packet_size: u32,
) -> Result<Option<(Packet, usize)>, DecodeError> {
    decode_as::<true>(bytes, version, max_packet_size)
}

fn decode_as<const FROM_SERVER: bool>(
    bytes: &[u8],
    version: ProtocolVersion,
    max_packet_size: u32,
) -> Result<Option<(Packet, usize)>, DecodeError> {
    let Some(header) = FixedHeader::parse(bytes)? else {
        return Ok(None);
    };
    let packet_type = PacketType::from_nibble(header.type_nibble)
        .ok_or(DecodeError::InvalidPacketType(header.type_nibble))?;
    let size = header.packet_length();
    if size > u64::from(max_packet_size) {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: max_packet_size,
        });
    }
    let size = size as usize;
    if bytes.len() < size {
        return Ok(None);
    }
    let body = &bytes[header.header_length..size];
    let packet = Packet::decode_body::<FROM_SERVER>(packet_type, header.flags, body, version)?;
    Ok(Some((packet, size)))
}

/// Appends `packet`, encoded for `version`, to `out`. On error `out` is left unchanged.
pub fn encode(packet: &Packet, version: ProtocolVersion, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let start = out.len();
    match packet.encode_body(out, version) {
        Ok(flags) => writer::prefix_length(out, start, Some(((packet.packet_type() as u8) << 4) | flags)),
        Err(error) => {
            out.truncate(start);
            Err(error)
        }
    }
}

/// `packet` encoded for `version`, as a new buffer.
pub fn encode_to_vec(packet: &Packet, version: ProtocolVersion) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode(packet, version, &mut out)?;
    Ok(out)
}
