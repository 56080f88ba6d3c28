//! Reading a whole database and checking every record, without changing the file.
//!
//! redb writes to a file as it opens it (a recovery flag, a repair after a crash) and can
//! panic on a damaged one. So the file is copied first and only the copy is opened, on a
//! thread of its own: a panic there is a damaged file, reported, and the original stays
//! byte for byte as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{Database, ReadTransaction, ReadableTable, TableDefinition, TableHandle};

use super::format::{
    self, Damage, FORMAT_VERSION, InflightRecord, MessageRecord, RecordKey, SessionRecordV2,
};
use super::{EngineError, Snapshot, StoreError, StoredMessage, StoredSession, format_v1};

/// The name of the thread that opens the copy; its panics are reported, not printed.
pub const VERIFY_THREAD: &str = "tabmq-verify";

/// Everything a database holds that is intact, and what is not.
#[derive(Debug)]
pub struct Verified {
    /// The storage format the file was written in.
    pub format: u64,
    /// The intact records.
    pub snapshot: Snapshot,
    /// The damaged ones.
    pub damage: Vec<Damage>,
}

/// Reads and checks a copy of the database at `path`, leaving `path` untouched. Errors
/// name `path`, not the copy.
pub fn verify_copy(path: &Path) -> Result<Verified, StoreError> {
    let scratch = scratch_copy(path)?;
    let opened = scratch.clone();
    let outcome = std::thread::Builder::new()
        .name(VERIFY_THREAD.into())
        .spawn(move || verify_in_place(&opened))
        .map_err(|error| StoreError::Io(format!("cannot start the verification thread: {error}")))?
        .join();
    let _ = std::fs::remove_file(&scratch);
    match outcome {
        Ok(result) => result.map_err(|error| error.about(path)),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "the storage engine failed on it".into());
            Err(StoreError::Damaged {
                path: path.to_owned(),
                damage: vec![Damage {
                    table: "(file)",
                    key: String::new(),
                    reason: message,
                }],
            })
        }
    }
}

/// Copies `path` beside itself, or into the temporary directory if there is no room.
fn scratch_copy(path: &Path) -> Result<PathBuf, StoreError> {
    let name = format!(
        ".{}.verify-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("db"),
        std::process::id()
    );
    let beside = path.with_file_name(&name);
    if std::fs::copy(path, &beside).is_ok() {
        return Ok(beside);
    }
    let _ = std::fs::remove_file(&beside);
    let temp = std::env::temp_dir().join(&name);
    std::fs::copy(path, &temp)
        .map(|_| temp)
        .map_err(|error| StoreError::Io(format!("cannot copy {} to check it: {error}", path.display())))
}

/// Opens the database at `path` (which this may change) and reads every record.
fn verify_in_place(path: &Path) -> Result<Verified, StoreError> {
    let damaged = |reason: String| StoreError::Damaged {
        path: path.to_owned(),
        damage: vec![Damage {
            table: "(file)",
            key: String::new(),
            reason,
        }],
    };
    let mut db = Database::open(path).map_err(|error| damaged(error.to_string()))?;
    // The engine's own page checksums; the records are still read after a failure here,
    // to say which are damaged and to let `recover` copy the others.
    let engine_damage = match db.check_integrity() {
        Ok(true) => None,
        Ok(false) => Some("the storage engine found damaged pages".to_owned()),
        Err(error) => Some(error.to_string()),
    };
    let txn = db.begin_read().map_err(|error| damaged(error.to_string()))?;
    let mut verified = read_all(&txn).map_err(|error| damaged(error.to_string()))?;
    if let Some(reason) = engine_damage {
        verified.damage.insert(
            0,
            Damage {
                table: "(file)",
                key: String::new(),
                reason,
            },
        );
    }
    if verified.format != 1 && verified.format != FORMAT_VERSION {
        return Err(StoreError::UnknownFormat {
            path: path.to_owned(),
            found: verified.format,
            supported: FORMAT_VERSION,
        });
    }
    Ok(verified)
}

/// Reads every record of a database in either format.
pub(super) fn read_all(txn: &ReadTransaction) -> Result<Verified, EngineError> {
    let tables: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
    let has = |name: &str| tables.iter().any(|t| t == name);
    let mut reader = Reader::default();
    let format = if has(format::META.name()) {
        let version = txn
            .open_table(format::META)?
            .get(format::FORMAT_KEY)?
            .map(|v| v.value());
        version.unwrap_or(0)
    } else if has(V1_SESSIONS.name()) {
        1
    } else {
        FORMAT_VERSION
    };
    match format {
        1 => reader.read_v1(txn)?,
        FORMAT_VERSION => reader.read_v2(txn, &has)?,
        _ => {}
    }
    Ok(Verified {
        format,
        snapshot: reader.snapshot,
        damage: reader.damage,
    })
}

const V1_SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const V1_MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
const V1_INFLIGHT: TableDefinition<(&str, u64), (u16, u8)> = TableDefinition::new("inflight");
const V1_INCOMING: TableDefinition<(&str, u16), ()> = TableDefinition::new("incoming");
const V1_RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");

/// The names of format 1's tables, removed once migrated.
pub(super) const V1_TABLES: [&str; 5] = ["sessions", "messages", "inflight", "incoming", "retained"];

#[derive(Default)]
struct Reader {
    snapshot: Snapshot,
    sessions: BTreeMap<String, StoredSession>,
    damage: Vec<Damage>,
}

impl Reader {
    fn damaged(&mut self, table: &'static str, key: String, reason: impl ToString) {
        self.damage.push(Damage {
            table,
            key,
            reason: reason.to_string(),
        });
    }

    fn add_session(&mut self, client_id: &str, record: super::SessionRecord) {
        let session = StoredSession {
            record,
            messages: BTreeMap::new(),
            inflight: BTreeMap::new(),
            incoming: Vec::new(),
            stream_done: 0,
        };
        self.sessions.insert(client_id.to_owned(), session);
    }

    fn read_v2(&mut self, txn: &ReadTransaction, has: &dyn Fn(&str) -> bool) -> Result<(), EngineError> {
        if has(format::SESSIONS.name()) {
            let table = "sessions";
            for entry in txn.open_table(format::SESSIONS)?.iter()? {
                let (key, value) = entry?;
                let client_id = key.value();
                let record_key = RecordKey {
                    name: client_id,
                    number: None,
                };
                match format::open::<SessionRecordV2>(table, &record_key, value.value())
                    .and_then(|r| r.try_into().map_err(|e| undecodable(table, &record_key, e)))
                {
                    Ok(record) => self.add_session(client_id, record),
                    Err(damage) => self.damage.push(damage),
                }
            }
        }
        if has(format::MESSAGES.name()) {
            let table = "messages";
            for entry in txn.open_table(format::MESSAGES)?.iter()? {
                let (key, value) = entry?;
                let (client_id, seq) = key.value();
                let record_key = RecordKey {
                    name: client_id,
                    number: Some(seq),
                };
                match format::open::<MessageRecord>(table, &record_key, value.value())
                    .and_then(|m| StoredMessage::try_from(m).map_err(|e| undecodable(table, &record_key, e)))
                {
                    Ok(message) => {
                        if let Some(session) = self.sessions.get_mut(client_id) {
                            session.messages.insert(seq, message);
                        }
                    }
                    Err(damage) => self.damage.push(damage),
                }
            }
        }
        if has(format::INFLIGHT.name()) {
            let table = "inflight";
            for entry in txn.open_table(format::INFLIGHT)?.iter()? {
                let (key, value) = entry?;
                let (client_id, seq) = key.value();
                let record_key = RecordKey {
                    name: client_id,
                    number: Some(seq),
                };
                match format::open::<InflightRecord>(table, &record_key, value.value()) {
                    Ok(record) => match record.parts() {
                        Some(parts) => {
                            if let Some(session) = self.sessions.get_mut(client_id) {
                                session.inflight.insert(seq, parts);
                            }
                        }
                        None => self.damaged(
                            table,
                            format!("{client_id:?} #{seq}"),
                            "invalid packet id or state",
                        ),
                    },
                    Err(damage) => self.damage.push(damage),
                }
            }
        }
        if has(format::INCOMING.name()) {
            let table = "incoming";
            for entry in txn.open_table(format::INCOMING)?.iter()? {
                let (key, value) = entry?;
                let (client_id, id) = key.value();
                let record_key = RecordKey {
                    name: client_id,
                    number: Some(u64::from(id)),
                };
                match format::open::<()>(table, &record_key, value.value()) {
                    Ok(()) => match (
                        self.sessions.get_mut(client_id),
                        tabmq_protocol::PacketId::new(id),
                    ) {
                        (Some(session), Some(id)) => session.incoming.push(id),
                        (_, None) => self.damaged(table, format!("{client_id:?} #0"), "packet id 0"),
                        (None, _) => {}
                    },
                    Err(damage) => self.damage.push(damage),
                }
            }
        }
        if has(format::RETAINED.name()) {
            let table = "retained";
            for entry in txn.open_table(format::RETAINED)?.iter()? {
                let (key, value) = entry?;
                let topic = key.value();
                let record_key = RecordKey {
                    name: topic,
                    number: None,
                };
                match format::open::<MessageRecord>(table, &record_key, value.value())
                    .and_then(|m| StoredMessage::try_from(m).map_err(|e| undecodable(table, &record_key, e)))
                {
                    Ok(message) => {
                        self.snapshot.retained.insert(topic.to_owned(), message);
                    }
                    Err(damage) => self.damage.push(damage),
                }
            }
        }
        self.finish();
        Ok(())
    }

    /// Hands over the sessions read, without in-flight states whose message is missing
    /// (damaged): such a state is nothing to resume.
    fn finish(&mut self) {
        let mut sessions = std::mem::take(&mut self.sessions);
        for session in sessions.values_mut() {
            let messages = &session.messages;
            session.inflight.retain(|seq, _| messages.contains_key(seq));
        }
        self.snapshot.sessions = sessions;
    }

    fn read_v1(&mut self, txn: &ReadTransaction) -> Result<(), EngineError> {
        for entry in txn.open_table(V1_SESSIONS)?.iter()? {
            let (key, value) = entry?;
            match format_v1::session(value.value()) {
                Ok(record) => self.add_session(key.value(), record),
                Err(error) => self.damaged("sessions", format!("{:?}", key.value()), error),
            }
        }
        for entry in txn.open_table(V1_MESSAGES)?.iter()? {
            let (key, value) = entry?;
            let (client_id, seq) = key.value();
            match format_v1::message(value.value()) {
                Ok(message) => {
                    if let Some(session) = self.sessions.get_mut(client_id) {
                        session.messages.insert(seq, message);
                    }
                }
                Err(error) => self.damaged("messages", format!("{client_id:?} #{seq}"), error),
            }
        }
        for entry in txn.open_table(V1_INFLIGHT)?.iter()? {
            let (key, value) = entry?;
            let (client_id, seq) = key.value();
            let (id, state) = value.value();
            let record = InflightRecord::from_v1(id, state);
            match (record.parts(), self.sessions.get_mut(client_id)) {
                (Some(parts), Some(session)) => {
                    session.inflight.insert(seq, parts);
                }
                (None, _) => self.damaged(
                    "inflight",
                    format!("{client_id:?} #{seq}"),
                    "invalid packet id or state",
                ),
                (Some(_), None) => {}
            }
        }
        for entry in txn.open_table(V1_INCOMING)?.iter()? {
            let (key, _) = entry?;
            let (client_id, id) = key.value();
            if let (Some(session), Some(id)) = (
                self.sessions.get_mut(client_id),
                tabmq_protocol::PacketId::new(id),
            ) {
                session.incoming.push(id);
            }
        }
        for entry in txn.open_table(V1_RETAINED)?.iter()? {
            let (key, value) = entry?;
            match format_v1::message(value.value()) {
                Ok(message) => {
                    self.snapshot.retained.insert(key.value().to_owned(), message);
                }
                Err(error) => self.damaged("retained", format!("{:?}", key.value()), error),
            }
        }
        self.finish();
        Ok(())
    }
}

fn undecodable(table: &'static str, key: &RecordKey<'_>, error: postcard::Error) -> Damage {
    Damage {
        table,
        key: key.printable(),
        reason: format!("invalid value: {error}"),
    }
}
