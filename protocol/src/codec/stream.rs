//! Both directions of one connection's byte stream, as the state machines use it.

use crate::codec::{decode, decode_from_server, encode};
use crate::error::{DecodeError, EncodeError};
use crate::packet::Packet;
use crate::version::ProtocolVersion;

/// Received bytes not yet decoded, and encoded bytes not yet handed to the transport.
#[derive(Debug, Default)]
pub(crate) struct PacketStream {
    received: Vec<u8>,
    /// How much of `received` is decoded already. It is dropped in one move once only an
    /// incomplete packet is left, not once per packet: a 64 KiB chunk of small packets
    /// would otherwise be moved hundreds of times.
    decoded: usize,
    transmit: Vec<u8>,
}

impl PacketStream {
    pub(crate) fn receive(&mut self, bytes: &[u8]) {
        self.drop_decoded();
        self.received.extend_from_slice(bytes);
    }

    /// Whether received bytes wait to be decoded (an incomplete packet, or packets held
    /// back until the connection may go on).
    pub(crate) fn has_partial(&self) -> bool {
        self.decoded < self.received.len()
    }

    fn drop_decoded(&mut self) {
        self.received.drain(..self.decoded);
        self.decoded = 0;
    }

    /// The next whole packet received, if any; `FROM_SERVER` on a client's stream
    /// (see [`crate::codec::decode_from_server`]).
    pub(crate) fn next_packet<const FROM_SERVER: bool>(
        &mut self,
        version: ProtocolVersion,
        max_packet_size: u32,
    ) -> Result<Option<Packet>, DecodeError> {
        let undecoded = &self.received[self.decoded..];
        let decoded = if FROM_SERVER {
            decode_from_server(undecoded, version, max_packet_size)?
        } else {
            decode(undecoded, version, max_packet_size)?
        };
        match decoded {
            Some((packet, used)) => {
                self.decoded += used;
                Ok(Some(packet))
            }
            None => {
                self.drop_decoded();
                Ok(None)
            }
        }
    }

    /// Encodes `packet` for sending.
    pub(crate) fn send(&mut self, packet: &Packet, version: ProtocolVersion) -> Result<(), EncodeError> {
        encode(packet, version, &mut self.transmit)
    }

    /// Encodes `packet` for sending if its encoding is at most `max_size` bytes; `false`,
    /// with nothing queued, if it is larger.
    pub(crate) fn send_within(
        &mut self,
        packet: &Packet,
        version: ProtocolVersion,
        max_size: u32,
    ) -> Result<bool, EncodeError> {
        let start = self.transmit.len();
        encode(packet, version, &mut self.transmit)?;
        if (self.transmit.len() - start) as u64 > u64::from(max_size) {
            self.transmit.truncate(start);
            return Ok(false);
        }
        Ok(true)
    }

    /// Encodes a packet this crate built itself (acknowledgements, pings, DISCONNECT),
    /// which cannot fail to encode.
    pub(crate) fn send_control(&mut self, packet: &Packet, version: ProtocolVersion) {
        let result = self.send(packet, version);
        debug_assert!(result.is_ok(), "control packet failed to encode: {result:?}");
    }

    /// Bytes encoded and not yet taken by [`PacketStream::take_transmit`].
    pub(crate) fn pending_len(&self) -> usize {
        self.transmit.len()
    }

    /// Everything encoded since the last call, or `None`.
    pub(crate) fn take_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.transmit.is_empty()).then(|| std::mem::take(&mut self.transmit))
    }

    /// Gives back the room the last burst left, once everything received is decoded and
    /// everything encoded was taken.
    pub(crate) fn release_idle(&mut self) {
        if self.decoded == self.received.len() {
            self.received = Vec::new();
            self.decoded = 0;
        }
        if self.transmit.is_empty() {
            self.transmit = Vec::new();
        }
    }

    /// Forgets both directions (the transport closed).
    pub(crate) fn reset(&mut self) {
        self.received.clear();
        self.decoded = 0;
        self.transmit.clear();
    }
}
