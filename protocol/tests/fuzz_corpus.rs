//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same
//! harnesses the fuzz targets run, so every `cargo test` re-checks every input the
//! fuzzers found interesting.

use std::fs;
use std::path::PathBuf;

use tabmq_protocol::ProtocolVersion;
use tabmq_protocol::fuzzing::{decode_stream, drive_server};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = fs::read_dir(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    let inputs: Vec<Vec<u8>> = entries
        .map(|entry| fs::read(entry.expect("readable entry").path()).expect("readable file"))
        .collect();
    assert!(
        inputs.len() >= 20,
        "{target}: the corpus holds only {} inputs",
        inputs.len()
    );
    inputs
}

#[test]
fn decode_v311_corpus_replays_cleanly() {
    for input in corpus("decode_v311") {
        decode_stream(&input, ProtocolVersion::V311);
    }
}

#[test]
fn decode_v5_corpus_replays_cleanly() {
    for input in corpus("decode_v5") {
        decode_stream(&input, ProtocolVersion::V5);
    }
}

#[test]
fn server_bytes_corpus_replays_cleanly() {
    for input in corpus("server_bytes") {
        drive_server(&input);
    }
}
