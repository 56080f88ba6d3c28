#![no_main]
//! MQTT 5.0 decoding: arbitrary bytes never panic, decoded packets re-encode faithfully.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tabmq_protocol::fuzzing::decode_stream(data, tabmq_protocol::ProtocolVersion::V5);
});
