//! Moving queued messages onto the wire, shared by the client and server machines.

use super::aliases::TopicAliasing;
use super::{MessageId, OutgoingFlows};
use crate::codec::stream::PacketStream;
use crate::packet::Packet;
use crate::qos::{PacketId, QoS};
use crate::reason::ReasonCode;
use crate::version::ProtocolVersion;

/// What the receiving peer allows us to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerLimits {
    /// The peer's receive maximum.
    pub(crate) receive_maximum: u16,
    /// The largest packet the peer accepts.
    pub(crate) maximum_packet_size: u32,
    /// The highest QoS the peer accepts.
    pub(crate) maximum_qos: QoS,
}

impl PeerLimits {
    /// No limit beyond the protocol's own.
    pub(crate) const UNLIMITED: PeerLimits = PeerLimits {
        receive_maximum: u16::MAX,
        maximum_packet_size: crate::codec::PROTOCOL_MAX_PACKET_SIZE,
        maximum_qos: QoS::ExactlyOnce,
    };
}

/// Encodes queued messages into `stream` while the peer's window has room, naming their
/// topics through `aliases`.
///
/// Returns the messages finished by this: QoS 0 ones (done once sent) with
/// `Success`, and ones larger than the peer's maximum packet size with
/// `PacketTooLarge` (never sent, as both specs require).
pub(crate) fn transmit_queued(
    outgoing: &mut OutgoingFlows,
    stream: &mut PacketStream,
    version: ProtocolVersion,
    limits: PeerLimits,
    aliases: &mut impl TopicAliasing,
    other_in_use: impl Fn(u16) -> bool,
) -> Vec<(MessageId, ReasonCode)> {
    let mut finished = Vec::new();
    while let Some((id, mut publish)) =
        outgoing.next_to_send(limits.receive_maximum, limits.maximum_qos, &other_in_use)
    {
        let (qos, packet_id) = (publish.qos, publish.packet_id);
        let alias = aliases.apply(&mut publish);
        let packet = Packet::Publish(publish);
        match stream.send_within(&packet, version, limits.maximum_packet_size) {
            Ok(true) => {
                if let (Some(alias), Packet::Publish(publish)) = (alias, packet) {
                    aliases.sent(alias, publish.topic);
                }
                if qos == QoS::AtMostOnce {
                    finished.push((id, ReasonCode::Success));
                }
            }
            _ => {
                packet_id.map(|packet_id: PacketId| outgoing.remove(packet_id));
                finished.push((id, ReasonCode::PacketTooLarge));
            }
        }
    }
    finished
}
