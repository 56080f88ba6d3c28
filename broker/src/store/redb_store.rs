//! The embedded backend: one redb file in the data directory.
//!
//! redb is a pure-Rust, copy-on-write B-tree store with ACID transactions: a commit
//! with `Durability::Immediate` is fsynced, one with `Durability::None` is not (and is
//! made durable by the next immediate commit). A torn or corrupt file is reported
//! at open, never silently replaced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tabmq_protocol::PacketId;
use tabmq_protocol::flow::InflightState;

use super::{SessionRecord, Snapshot, Store, StoreError, StoreOp, StoredSession};

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
const INFLIGHT: TableDefinition<(&str, u64), (u16, u8)> = TableDefinition::new("inflight");
const INCOMING: TableDefinition<(&str, u16), ()> = TableDefinition::new("incoming");
const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "tabmq.redb";

/// A [`Store`] in a single redb file.
pub struct RedbStore {
    db: Database,
}

fn io(error: impl std::fmt::Display) -> StoreError {
    StoreError::Io(error.to_string())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(value).map_err(io)
}

fn decode<T: DeserializeOwned>(bytes: &[u8], table: &'static str) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|error| StoreError::Corrupt {
        table,
        message: error.to_string(),
    })
}

fn state_byte(state: InflightState) -> u8 {
    match state {
        InflightState::AwaitingPuback => 0,
        InflightState::AwaitingPubrec => 1,
        InflightState::AwaitingPubcomp => 2,
    }
}

fn state_from_byte(byte: u8) -> Result<InflightState, StoreError> {
    match byte {
        0 => Ok(InflightState::AwaitingPuback),
        1 => Ok(InflightState::AwaitingPubrec),
        2 => Ok(InflightState::AwaitingPubcomp),
        _ => Err(StoreError::Corrupt {
            table: "inflight",
            message: format!("state byte {byte}"),
        }),
    }
}

fn packet_id(value: u16, table: &'static str) -> Result<PacketId, StoreError> {
    PacketId::new(value).ok_or(StoreError::Corrupt {
        table,
        message: "packet id 0".into(),
    })
}

impl RedbStore {
    /// Opens (or creates) the database in `data_dir`, creating the directory if needed.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path: PathBuf = data_dir.join(DATABASE_FILE);
        let open_error = |message: String| StoreError::Open {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(data_dir).map_err(|error| open_error(error.to_string()))?;
        let db = Database::create(&path).map_err(|error| open_error(error.to_string()))?;
        let txn = db.begin_write().map_err(|error| open_error(error.to_string()))?;
        {
            let tables = (
                txn.open_table(SESSIONS),
                txn.open_table(MESSAGES),
                txn.open_table(INFLIGHT),
                txn.open_table(INCOMING),
                txn.open_table(RETAINED),
            );
            let result = [
                tables.0.err(),
                tables.1.err(),
                tables.2.err(),
                tables.3.err(),
                tables.4.err(),
            ];
            if let Some(error) = result.into_iter().flatten().next() {
                return Err(open_error(error.to_string()));
            }
        }
        txn.commit().map_err(|error| open_error(error.to_string()))?;
        Ok(Self { db })
    }

    fn apply(txn: &WriteTransaction, op: &StoreOp) -> Result<(), StoreError> {
        match op {
            StoreOp::PutSession { client_id, record } => {
                txn.open_table(SESSIONS)
                    .map_err(io)?
                    .insert(client_id.as_str(), encode(record)?.as_slice())
                    .map_err(io)?;
            }
            StoreOp::DeleteSession { client_id } => {
                let id = client_id.as_str();
                txn.open_table(SESSIONS).map_err(io)?.remove(id).map_err(io)?;
                txn.open_table(MESSAGES)
                    .map_err(io)?
                    .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)
                    .map_err(io)?;
                txn.open_table(INFLIGHT)
                    .map_err(io)?
                    .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)
                    .map_err(io)?;
                txn.open_table(INCOMING)
                    .map_err(io)?
                    .retain_in((id, 0)..=(id, u16::MAX), |_, _| false)
                    .map_err(io)?;
            }
            StoreOp::PutMessage {
                client_id,
                seq,
                message,
            } => {
                let bytes = encode(message)?;
                txn.open_table(MESSAGES)
                    .map_err(io)?
                    .insert((client_id.as_str(), *seq), bytes.as_slice())
                    .map_err(io)?;
            }
            StoreOp::DeleteMessage { client_id, seq } => {
                let key = (client_id.as_str(), *seq);
                txn.open_table(MESSAGES).map_err(io)?.remove(key).map_err(io)?;
                txn.open_table(INFLIGHT).map_err(io)?.remove(key).map_err(io)?;
            }
            StoreOp::PutInflight {
                client_id,
                seq,
                packet_id,
                state,
            } => {
                let value = (packet_id.get(), state_byte(*state));
                txn.open_table(INFLIGHT)
                    .map_err(io)?
                    .insert((client_id.as_str(), *seq), value)
                    .map_err(io)?;
            }
            StoreOp::PutIncoming { client_id, packet_id } => {
                txn.open_table(INCOMING)
                    .map_err(io)?
                    .insert((client_id.as_str(), packet_id.get()), ())
                    .map_err(io)?;
            }
            StoreOp::DeleteIncoming { client_id, packet_id } => {
                txn.open_table(INCOMING)
                    .map_err(io)?
                    .remove((client_id.as_str(), packet_id.get()))
                    .map_err(io)?;
            }
            StoreOp::PutRetained { topic, message } => {
                txn.open_table(RETAINED)
                    .map_err(io)?
                    .insert(topic.as_str(), encode(message)?.as_slice())
                    .map_err(io)?;
            }
            StoreOp::DeleteRetained { topic } => {
                txn.open_table(RETAINED)
                    .map_err(io)?
                    .remove(topic.as_str())
                    .map_err(io)?;
            }
        }
        Ok(())
    }
}

impl Store for RedbStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read().map_err(io)?;
        let mut snapshot = Snapshot::default();
        let mut sessions: BTreeMap<String, StoredSession> = BTreeMap::new();
        for entry in txn.open_table(SESSIONS).map_err(io)?.iter().map_err(io)? {
            let (key, value) = entry.map_err(io)?;
            let record: SessionRecord = decode(value.value(), "sessions")?;
            let session = StoredSession {
                record,
                messages: BTreeMap::new(),
                inflight: BTreeMap::new(),
                incoming: Vec::new(),
            };
            sessions.insert(key.value().to_owned(), session);
        }
        for entry in txn.open_table(MESSAGES).map_err(io)?.iter().map_err(io)? {
            let (key, value) = entry.map_err(io)?;
            let (client_id, seq) = key.value();
            if let Some(session) = sessions.get_mut(client_id) {
                session.messages.insert(seq, decode(value.value(), "messages")?);
            }
        }
        for entry in txn.open_table(INFLIGHT).map_err(io)?.iter().map_err(io)? {
            let (key, value) = entry.map_err(io)?;
            let (client_id, seq) = key.value();
            let (id, state) = value.value();
            if let Some(session) = sessions.get_mut(client_id) {
                session
                    .inflight
                    .insert(seq, (packet_id(id, "inflight")?, state_from_byte(state)?));
            }
        }
        for entry in txn.open_table(INCOMING).map_err(io)?.iter().map_err(io)? {
            let (key, _) = entry.map_err(io)?;
            let (client_id, id) = key.value();
            if let Some(session) = sessions.get_mut(client_id) {
                session.incoming.push(packet_id(id, "incoming")?);
            }
        }
        for entry in txn.open_table(RETAINED).map_err(io)?.iter().map_err(io)? {
            let (key, value) = entry.map_err(io)?;
            snapshot
                .retained
                .insert(key.value().to_owned(), decode(value.value(), "retained")?);
        }
        snapshot.sessions = sessions;
        Ok(snapshot)
    }

    fn commit(&mut self, ops: &[StoreOp], sync: bool) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(io)?;
        txn.set_durability(if sync {
            Durability::Immediate
        } else {
            Durability::None
        });
        for op in ops {
            Self::apply(&txn, op)?;
        }
        txn.commit().map_err(io)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(io)?;
        txn.set_durability(Durability::Immediate);
        txn.commit().map_err(io)
    }
}
