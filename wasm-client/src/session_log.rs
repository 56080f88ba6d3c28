//! The stored session as a log: each save is one IndexedDB record, an entry holding that
//! save's [`SessionWrites`] (messages written whole, runs of completed ids, the received
//! QoS 2 ids). A page reads a session by applying its entries in order. Every
//! [`COMPACT_EVERY`] saves one entry holds the whole session and the earlier ones are
//! deleted in the same transaction, so the log stays short.
//!
//! One put per save, whatever the number of messages in it: IndexedDB's cost is per
//! request and per transaction far more than per byte (in the Chromium of the tests, 25
//! records of 90 bytes put one by one take twice as long as one record of their 2.2 KB).
//!
//! Entry layout, format 1: `1`, a flags byte (bit 0: replaces everything before it; bit 1:
//! holds the received QoS 2 ids), then
//! - the put count (u32 LE), each put as its length (u32 LE) and a [`crate::record`];
//! - the delete-run count (u32 LE), each run as its first and last id (u64 LE each);
//! - with bit 1: the id count (u32 LE) and the ids (u16 BE each).

use std::ops::RangeInclusive;

use tabmq_protocol::PacketId;
use tabmq_protocol::flow::{OutgoingMessage, SessionFlows};

use crate::mirror::{SessionWrites, restore_session};
use crate::record::{RecordError, decode_packet_ids, decode_record, encode_packet_ids, encode_record};

/// Saves between two entries that hold the whole session.
pub const COMPACT_EVERY: u64 = 64;

const FORMAT: u8 = 1;
const REPLACES: u8 = 1;
const HAS_INCOMING: u8 = 2;

/// The entry of one save.
pub fn encode_entry(writes: &SessionWrites) -> Result<Vec<u8>, RecordError> {
    let mut flags = 0;
    if writes.replace_all {
        flags |= REPLACES;
    }
    if writes.incoming.is_some() {
        flags |= HAS_INCOMING;
    }
    let mut entry = vec![FORMAT, flags];
    entry.extend_from_slice(&(writes.put.len() as u32).to_le_bytes());
    for message in &writes.put {
        let record = encode_record(message)?;
        entry.extend_from_slice(&(record.len() as u32).to_le_bytes());
        entry.extend_from_slice(&record);
    }
    entry.extend_from_slice(&(writes.delete.len() as u32).to_le_bytes());
    for run in &writes.delete {
        entry.extend_from_slice(&run.start().to_le_bytes());
        entry.extend_from_slice(&run.end().to_le_bytes());
    }
    if let Some(ids) = &writes.incoming {
        entry.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        entry.extend_from_slice(&encode_packet_ids(ids));
    }
    Ok(entry)
}

/// Reads an entry, refusing anything truncated or of another format.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(RecordError::UnknownFormat)?;
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        let mut bytes = [0; 4];
        bytes.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(bytes))
    }

    fn u64(&mut self) -> Result<u64, RecordError> {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(bytes))
    }
}

/// The writes an entry holds.
pub fn decode_entry(entry: &[u8]) -> Result<SessionWrites, RecordError> {
    let mut cursor = Cursor(entry);
    let header = cursor.take(2)?;
    if header[0] != FORMAT {
        return Err(RecordError::UnknownFormat);
    }
    let flags = header[1];
    let mut writes = SessionWrites {
        replace_all: flags & REPLACES != 0,
        ..SessionWrites::default()
    };
    for _ in 0..cursor.u32()? {
        let length = cursor.u32()? as usize;
        writes.put.push(decode_record(cursor.take(length)?)?);
    }
    for _ in 0..cursor.u32()? {
        let (first, last) = (cursor.u64()?, cursor.u64()?);
        writes.delete.push(first..=last);
    }
    if flags & HAS_INCOMING != 0 {
        let count = cursor.u32()? as usize;
        writes.incoming = Some(decode_packet_ids(cursor.take(count * 2)?).collect());
    }
    if !cursor.0.is_empty() {
        return Err(RecordError::UnknownFormat);
    }
    Ok(writes)
}

/// A session rebuilt from its entries.
#[derive(Debug, Clone, Default)]
pub struct StoredSession {
    messages: Vec<OutgoingMessage>,
    incoming: Vec<PacketId>,
}

impl StoredSession {
    /// Applies the next entry's writes.
    pub fn apply(&mut self, writes: &SessionWrites) {
        if writes.replace_all {
            self.messages.clear();
        }
        let deleted = |id: &u64, runs: &[RangeInclusive<u64>]| runs.iter().any(|run| run.contains(id));
        self.messages
            .retain(|message| !deleted(&message.id, &writes.delete));
        for message in &writes.put {
            self.messages.retain(|stored| stored.id != message.id);
            self.messages.push(message.clone());
        }
        if let Some(ids) = &writes.incoming {
            self.incoming = ids.clone();
        }
    }

    /// The messages it holds (for tests).
    #[cfg(test)]
    pub fn messages(&self) -> &[OutgoingMessage] {
        &self.messages
    }

    /// The session to resume.
    pub fn flows(&self) -> SessionFlows {
        restore_session(self.messages.clone(), self.incoming.clone())
    }
}

#[cfg(test)]
mod tests {
    use tabmq_protocol::QoS;
    use tabmq_protocol::flow::InflightState;
    use tabmq_protocol::packet::Publish;

    use super::*;

    fn message(id: u64, qos: QoS, state: Option<InflightState>) -> OutgoingMessage {
        let mut publish = Publish::new(format!("t/{id}"), vec![id as u8; 3], qos);
        publish.packet_id = state.and_then(|_| PacketId::new(id as u16));
        OutgoingMessage { id, publish, state }
    }

    #[test]
    fn entries_round_trip_and_rebuild_the_session_in_order() {
        let first = SessionWrites {
            put: vec![
                message(1, QoS::AtLeastOnce, None),
                message(2, QoS::ExactlyOnce, None),
            ],
            ..SessionWrites::default()
        };
        let second = SessionWrites {
            put: vec![message(2, QoS::ExactlyOnce, Some(InflightState::AwaitingPubrec))],
            delete: vec![1..=1],
            incoming: Some(vec![PacketId::new(9).expect("non-zero")]),
            replace_all: false,
        };
        let mut stored = StoredSession::default();
        for writes in [&first, &second] {
            let decoded = decode_entry(&encode_entry(writes).expect("encodes")).expect("decodes");
            assert_eq!(&decoded, writes);
            stored.apply(&decoded);
        }
        let flows = stored.flows();
        assert_eq!(
            flows.outgoing.iter().map(|m| (m.id, m.state)).collect::<Vec<_>>(),
            [(2, Some(InflightState::AwaitingPubrec))]
        );
        assert_eq!(flows.incoming.iter().map(PacketId::get).collect::<Vec<_>>(), [9]);

        let snapshot = SessionWrites {
            put: vec![message(5, QoS::AtLeastOnce, None)],
            incoming: Some(Vec::new()),
            replace_all: true,
            ..SessionWrites::default()
        };
        stored.apply(&decode_entry(&encode_entry(&snapshot).expect("encodes")).expect("decodes"));
        assert_eq!(stored.messages().iter().map(|m| m.id).collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn a_damaged_entry_is_refused() {
        let writes = SessionWrites {
            put: vec![message(1, QoS::AtLeastOnce, None)],
            delete: vec![3..=4],
            ..SessionWrites::default()
        };
        let entry = encode_entry(&writes).expect("encodes");
        for cut in 0..entry.len() {
            assert!(decode_entry(&entry[..cut]).is_err(), "cut at {cut}");
        }
        let mut other = entry.clone();
        other[0] = 2;
        assert_eq!(decode_entry(&other), Err(RecordError::UnknownFormat));
        let mut longer = entry;
        longer.push(0);
        assert_eq!(decode_entry(&longer), Err(RecordError::UnknownFormat));
    }
}
