//! Every packet type of both versions survives encode then decode unchanged, whole or
//! fed one byte at a time, and encode the same behind bytes already in the buffer.

mod support;

use proptest::prelude::*;
use tabmq_protocol::codec::{PROTOCOL_MAX_PACKET_SIZE, decode, encode, encode_to_vec};
use tabmq_protocol::{Packet, ProtocolVersion};

fn assert_roundtrip(packet: &Packet, version: ProtocolVersion) -> Result<(), TestCaseError> {
    let bytes = encode_to_vec(packet, version).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let decoded = decode(&bytes, version, PROTOCOL_MAX_PACKET_SIZE);
    prop_assert_eq!(decoded, Ok(Some((packet.clone(), bytes.len()))));
    let mut appended = b"earlier packets".to_vec();
    encode(packet, version, &mut appended).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&appended[..15], b"earlier packets");
    prop_assert_eq!(&appended[15..], &bytes[..]);
    for cut in 0..bytes.len() {
        prop_assert_eq!(
            decode(&bytes[..cut], version, PROTOCOL_MAX_PACKET_SIZE),
            Ok(None),
            "prefix of {}",
            cut
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn every_v311_packet_roundtrips(packet in support::strategies::packet(ProtocolVersion::V311)) {
        assert_roundtrip(&packet, ProtocolVersion::V311)?;
    }

    #[test]
    fn every_v5_packet_roundtrips(packet in support::strategies::packet(ProtocolVersion::V5)) {
        assert_roundtrip(&packet, ProtocolVersion::V5)?;
    }
}
