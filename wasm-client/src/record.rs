//! One outgoing message as IndexedDB keeps it: a few header bytes and the PUBLISH
//! itself, encoded by the protocol's own codec (so every v5 property survives a reload
//! without a second serialization format in the package).
//!
//! Layout, format 1:
//!
//! | bytes | meaning |
//! |---|---|
//! | 0 | format, `1` |
//! | 1 | handshake state: 0 queued, 1 awaiting PUBACK, 2 awaiting PUBREC, 3 awaiting PUBCOMP |
//! | 2 | QoS |
//! | 3..5 | packet id, big-endian; 0 while queued |
//! | 5..13 | message id, little-endian |
//! | 13.. | the PUBLISH packet for MQTT 5 at QoS 0 (it then needs no packet id) |

use tabmq_protocol::codec::{PROTOCOL_MAX_PACKET_SIZE, decode_from_server, encode};
use tabmq_protocol::flow::{InflightState, OutgoingMessage};
use tabmq_protocol::{Packet, PacketId, ProtocolVersion, QoS};

const FORMAT: u8 = 1;
const HEADER_LENGTH: usize = 13;

/// Why a stored record could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Shorter than its header, or written by an unknown format.
    #[error("unknown record format")]
    UnknownFormat,
    /// A header field holds a value no writer produces.
    #[error("invalid record header")]
    InvalidHeader,
    /// The PUBLISH does not decode.
    #[error("stored PUBLISH is unreadable: {0}")]
    Publish(String),
}

fn state_byte(state: Option<InflightState>) -> u8 {
    match state {
        None => 0,
        Some(InflightState::AwaitingPuback) => 1,
        Some(InflightState::AwaitingPubrec) => 2,
        Some(InflightState::AwaitingPubcomp) => 3,
    }
}

fn state_of(byte: u8) -> Result<Option<InflightState>, RecordError> {
    match byte {
        0 => Ok(None),
        1 => Ok(Some(InflightState::AwaitingPuback)),
        2 => Ok(Some(InflightState::AwaitingPubrec)),
        3 => Ok(Some(InflightState::AwaitingPubcomp)),
        _ => Err(RecordError::InvalidHeader),
    }
}

/// The record of `message`. Fails only for a PUBLISH the codec cannot encode, which
/// the client never accepts in the first place.
pub fn encode_record(message: &OutgoingMessage) -> Result<Vec<u8>, RecordError> {
    let publish = &message.publish;
    let mut record = Vec::with_capacity(HEADER_LENGTH + 16 + publish.topic.len() + publish.payload.len());
    record.push(FORMAT);
    record.push(state_byte(message.state));
    record.push(publish.qos.bits());
    record.extend_from_slice(&publish.packet_id.map_or(0, PacketId::get).to_be_bytes());
    record.extend_from_slice(&message.id.to_le_bytes());
    let mut bare = publish.clone();
    bare.qos = QoS::AtMostOnce;
    bare.packet_id = None;
    bare.dup = false;
    encode(&Packet::Publish(bare), ProtocolVersion::V5, &mut record)
        .map_err(|error| RecordError::Publish(error.to_string()))?;
    Ok(record)
}

/// The message a record holds.
pub fn decode_record(record: &[u8]) -> Result<OutgoingMessage, RecordError> {
    let (header, packet) = record
        .split_at_checked(HEADER_LENGTH)
        .filter(|(header, _)| header[0] == FORMAT)
        .ok_or(RecordError::UnknownFormat)?;
    let state = state_of(header[1])?;
    let qos = QoS::from_bits(header[2]).ok_or(RecordError::InvalidHeader)?;
    let packet_id = PacketId::new(u16::from_be_bytes([header[3], header[4]]));
    let mut id = [0; 8];
    id.copy_from_slice(&header[5..HEADER_LENGTH]);
    if state.is_some() != packet_id.is_some() || (state.is_some() && qos == QoS::AtMostOnce) {
        return Err(RecordError::InvalidHeader);
    }
    let mut publish = match decode_from_server(packet, ProtocolVersion::V5, PROTOCOL_MAX_PACKET_SIZE) {
        Ok(Some((Packet::Publish(publish), used))) if used == packet.len() => publish,
        Ok(_) => return Err(RecordError::Publish("not one whole PUBLISH".into())),
        Err(error) => return Err(RecordError::Publish(error.to_string())),
    };
    publish.qos = qos;
    publish.packet_id = packet_id;
    Ok(OutgoingMessage {
        id: u64::from_le_bytes(id),
        publish,
        state,
    })
}

/// The incoming QoS 2 packet ids awaiting PUBREL as stored: two bytes each, big-endian.
pub fn encode_packet_ids(ids: &[PacketId]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.get().to_be_bytes()).collect()
}

/// The packet ids [`encode_packet_ids`] stored (a zero or a trailing odd byte is skipped).
pub fn decode_packet_ids(bytes: &[u8]) -> impl Iterator<Item = PacketId> + '_ {
    bytes
        .chunks_exact(2)
        .filter_map(|pair| PacketId::new(u16::from_be_bytes([pair[0], pair[1]])))
}

#[cfg(test)]
mod tests {
    use tabmq_protocol::packet::Publish;

    use super::*;

    fn message(state: Option<InflightState>, qos: QoS, packet_id: u16) -> OutgoingMessage {
        let mut publish = Publish::new("room/1", &b"\x00hello\xff"[..], qos);
        publish.retain = true;
        publish.packet_id = PacketId::new(packet_id);
        publish.properties.content_type = Some("text/plain".into());
        publish.properties.message_expiry_interval = Some(60);
        publish.properties.user_properties = vec![("a".into(), "b".into())];
        publish.properties.correlation_data = Some(vec![1, 2, 3].into());
        OutgoingMessage {
            id: (1 << 40) + 7,
            publish,
            state,
        }
    }

    #[test]
    fn every_state_and_property_survives_a_round_trip() {
        let messages = [
            message(None, QoS::AtMostOnce, 0),
            message(None, QoS::ExactlyOnce, 0),
            message(Some(InflightState::AwaitingPuback), QoS::AtLeastOnce, 1),
            message(Some(InflightState::AwaitingPubrec), QoS::ExactlyOnce, 65_535),
            message(Some(InflightState::AwaitingPubcomp), QoS::ExactlyOnce, 300),
        ];
        for original in messages {
            let record = encode_record(&original).expect("encodes");
            assert_eq!(decode_record(&record), Ok(original));
        }
    }

    #[test]
    fn incoming_packet_ids_survive_a_round_trip() {
        let ids: Vec<PacketId> = [1, 258, 65_535].into_iter().filter_map(PacketId::new).collect();
        let bytes = encode_packet_ids(&ids);
        assert_eq!(bytes, [0, 1, 1, 2, 255, 255]);
        assert_eq!(decode_packet_ids(&bytes).collect::<Vec<_>>(), ids);
    }

    #[test]
    fn damaged_records_are_refused_with_the_reason() {
        let record = encode_record(&message(Some(InflightState::AwaitingPuback), QoS::AtLeastOnce, 9))
            .expect("encodes");
        assert_eq!(decode_record(&record[..5]), Err(RecordError::UnknownFormat));
        let mut other_format = record.clone();
        other_format[0] = 2;
        assert_eq!(decode_record(&other_format), Err(RecordError::UnknownFormat));
        let mut bad_state = record.clone();
        bad_state[1] = 4;
        assert_eq!(decode_record(&bad_state), Err(RecordError::InvalidHeader));
        let mut in_flight_without_id = record.clone();
        in_flight_without_id[3..5].copy_from_slice(&[0, 0]);
        assert_eq!(
            decode_record(&in_flight_without_id),
            Err(RecordError::InvalidHeader)
        );
        let truncated = &record[..record.len() - 1];
        assert!(matches!(decode_record(truncated), Err(RecordError::Publish(_))));
    }
}
