//! Harnesses shared by the cargo-fuzz targets (`protocol/fuzz`) and the test that
//! replays their committed corpus on every `cargo test`. Each panics only on a bug.

use crate::codec::{PROTOCOL_MAX_PACKET_SIZE, decode, encode_to_vec};
use crate::flow::SessionFlows;
use crate::properties::Properties;
use crate::reason::ReasonCode;
use crate::server::{Connection, ServerConfig, ServerEvent};
use crate::time::Timestamp;
use crate::version::ProtocolVersion;

/// Decodes packets from `data` until it runs out or fails; each decoded packet must
/// encode back to bytes that decode to the same packet.
pub fn decode_stream(data: &[u8], version: ProtocolVersion) {
    let mut rest = data;
    while let Ok(Some((packet, used))) = decode(rest, version, PROTOCOL_MAX_PACKET_SIZE) {
        assert!(
            used > 0 && used <= rest.len(),
            "decode consumed {used} of {} bytes",
            rest.len()
        );
        let encoded = encode_to_vec(&packet, version).expect("a decoded packet encodes");
        let again = decode(&encoded, version, PROTOCOL_MAX_PACKET_SIZE);
        assert_eq!(
            again,
            Ok(Some((packet, encoded.len()))),
            "re-decoding changed the packet"
        );
        rest = &rest[used..];
    }
}

/// Feeds `data` to a server connection in chunks whose sizes come from the data
/// itself, playing a broker that accepts, acknowledges and echoes every publish.
pub fn drive_server(data: &[u8]) {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(split % 16) + 1;
    let config = ServerConfig {
        maximum_packet_size: 4096,
        ..ServerConfig::default()
    };
    let mut server = Connection::new(config, Timestamp::from_millis(0));
    for (index, bytes) in data.chunks(chunk).enumerate() {
        let now = Timestamp::from_millis(index as u64 * 500);
        server.handle_bytes(bytes, now);
        server.handle_timeout(now);
        while let Some(event) = server.poll_event() {
            match event {
                ServerEvent::Connect(_) => {
                    server.accept(false, SessionFlows::default(), Properties::default(), now)
                }
                ServerEvent::Publish(publish) => {
                    if let Some(id) = publish.packet_id {
                        server.acknowledge(id, ReasonCode::Success);
                    }
                    server.deliver(publish);
                }
                _ => {}
            }
        }
        if let Some(out) = server.poll_transmit() {
            decode_stream(&out, server.version());
        }
    }
}
