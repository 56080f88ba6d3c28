#![no_main]
//! The server connection state machine fed raw bytes in random chunks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tabmq_protocol::fuzzing::drive_server(data);
});
