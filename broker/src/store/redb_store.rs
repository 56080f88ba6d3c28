//! The embedded backend: one redb file in the data directory.
//!
//! redb is a pure-Rust, copy-on-write B-tree store with ACID transactions: a commit
//! with `Durability::Immediate` is fsynced, one with `Durability::None` is not (and is
//! made durable by the next immediate commit). A torn or corrupt file is reported
//! at open, never silently replaced.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, WriteTransaction};
use tracing::info;

use super::format::{self, FORMAT_VERSION, InflightRecord, MessageRecord, RecordKey, SessionRecordV2};
use super::verify::{V1_TABLES, verify_copy};
use super::{EngineError, Snapshot, Store, StoreError, StoreOp, StoreView};

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "tabmq.redb";

/// A [`Store`] in a single redb file.
pub struct RedbStore {
    path: PathBuf,
    /// `None` after a failed reopen, until one succeeds.
    db: Option<Database>,
}

fn io(error: impl std::fmt::Display) -> StoreError {
    StoreError::Io(error.to_string())
}

impl RedbStore {
    /// Opens the database in `data_dir` (creating the directory and the database if
    /// needed) with everything it holds. An existing file is checked whole first, on a
    /// copy: a damaged one is refused, unchanged. A file of an earlier format is kept
    /// as `tabmq.redb.format-N` and migrated.
    pub fn open(data_dir: &Path) -> Result<(Self, Snapshot), StoreError> {
        let path: PathBuf = data_dir.join(DATABASE_FILE);
        let open_error = |message: String| StoreError::Open {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(data_dir).map_err(|error| open_error(error.to_string()))?;
        let verified = match path.exists() {
            true => Some(verify_copy(&path)?),
            false => None,
        };
        let format = verified.as_ref().map_or(FORMAT_VERSION, |v| v.format);
        if let Some(verified) = &verified
            && !verified.damage.is_empty()
        {
            return Err(StoreError::Damaged {
                path,
                damage: verified.damage.clone(),
            });
        }
        if format == 1 {
            let kept = path.with_file_name(format!("{DATABASE_FILE}.format-1"));
            std::fs::copy(&path, &kept)
                .map_err(|error| open_error(format!("cannot keep a copy before migrating: {error}")))?;
            info!(kept = %kept.display(), "migrating the database from storage format 1 to {FORMAT_VERSION}");
        }
        let db = Database::create(&path).map_err(|error| open_error(error.to_string()))?;
        let snapshot = verified.map(|v| v.snapshot).unwrap_or_default();
        let txn = db.begin_write().map_err(|error| open_error(error.to_string()))?;
        if format == 1 {
            for table in V1_TABLES {
                txn.delete_table(redb::TableDefinition::<&str, &[u8]>::new(table))
                    .map_err(|error| open_error(error.to_string()))?;
            }
            Self::write_all(&txn, &snapshot)?;
        }
        Self::create_tables(&txn).map_err(|error| open_error(error.to_string()))?;
        txn.commit().map_err(|error| open_error(error.to_string()))?;
        Ok((Self { path, db: Some(db) }, snapshot))
    }

    fn db(&self) -> Result<&Database, StoreError> {
        self.db
            .as_ref()
            .ok_or_else(|| StoreError::Io("the database is not open (reopening failed)".into()))
    }

    /// Creates a database file at `path` holding `snapshot`, in this build's format.
    pub fn create_with(path: &Path, snapshot: &Snapshot) -> Result<(), StoreError> {
        let open_error = |error: &dyn std::fmt::Display| StoreError::Open {
            path: path.to_owned(),
            message: error.to_string(),
        };
        let db = Database::create(path).map_err(|e| open_error(&e))?;
        let txn = db.begin_write().map_err(|e| open_error(&e))?;
        Self::create_tables(&txn).map_err(|e| open_error(&e))?;
        Self::write_all(&txn, snapshot)?;
        txn.commit().map_err(|e| open_error(&e))
    }

    fn write_all(txn: &WriteTransaction, snapshot: &Snapshot) -> Result<(), StoreError> {
        snapshot.to_ops().iter().try_for_each(|op| Self::apply(txn, op))
    }

    /// Creates the tables of this format (if absent) and records the format's version.
    fn create_tables(txn: &WriteTransaction) -> Result<(), EngineError> {
        txn.open_table(format::SESSIONS)?;
        txn.open_table(format::MESSAGES)?;
        txn.open_table(format::INFLIGHT)?;
        txn.open_table(format::INCOMING)?;
        txn.open_table(format::RETAINED)?;
        txn.open_table(format::META)?
            .insert(format::FORMAT_KEY, FORMAT_VERSION)?;
        Ok(())
    }

    fn apply(txn: &WriteTransaction, op: &StoreOp) -> Result<(), StoreError> {
        match op {
            StoreOp::PutSession { client_id, record } => {
                let sealed = format::seal(
                    "sessions",
                    &RecordKey::named(client_id),
                    &SessionRecordV2::from(&**record),
                );
                txn.open_table(format::SESSIONS)
                    .map_err(io)?
                    .insert(client_id.as_str(), sealed.as_slice())
                    .map_err(io)?;
            }
            StoreOp::DeleteSession { client_id } => {
                let id = client_id.as_str();
                txn.open_table(format::SESSIONS)
                    .map_err(io)?
                    .remove(id)
                    .map_err(io)?;
                txn.open_table(format::MESSAGES)
                    .map_err(io)?
                    .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)
                    .map_err(io)?;
                txn.open_table(format::INFLIGHT)
                    .map_err(io)?
                    .retain_in((id, 0)..=(id, u64::MAX), |_, _| false)
                    .map_err(io)?;
                txn.open_table(format::INCOMING)
                    .map_err(io)?
                    .retain_in((id, 0)..=(id, u16::MAX), |_, _| false)
                    .map_err(io)?;
            }
            StoreOp::PutMessage {
                client_id,
                seq,
                message,
            } => {
                let sealed = format::seal(
                    "messages",
                    &RecordKey::numbered(client_id, *seq),
                    &MessageRecord::from(message),
                );
                txn.open_table(format::MESSAGES)
                    .map_err(io)?
                    .insert((client_id.as_str(), *seq), sealed.as_slice())
                    .map_err(io)?;
            }
            StoreOp::DeleteMessage { client_id, seq } => {
                let key = (client_id.as_str(), *seq);
                txn.open_table(format::MESSAGES)
                    .map_err(io)?
                    .remove(key)
                    .map_err(io)?;
                txn.open_table(format::INFLIGHT)
                    .map_err(io)?
                    .remove(key)
                    .map_err(io)?;
            }
            StoreOp::PutInflight {
                client_id,
                seq,
                packet_id,
                state,
            } => {
                let record = InflightRecord::new(*packet_id, *state);
                let sealed = format::seal("inflight", &RecordKey::numbered(client_id, *seq), &record);
                txn.open_table(format::INFLIGHT)
                    .map_err(io)?
                    .insert((client_id.as_str(), *seq), sealed.as_slice())
                    .map_err(io)?;
            }
            StoreOp::PutIncoming { client_id, packet_id } => {
                let sealed = format::seal(
                    "incoming",
                    &RecordKey::numbered(client_id, u64::from(packet_id.get())),
                    &(),
                );
                txn.open_table(format::INCOMING)
                    .map_err(io)?
                    .insert((client_id.as_str(), packet_id.get()), sealed.as_slice())
                    .map_err(io)?;
            }
            StoreOp::DeleteIncoming { client_id, packet_id } => {
                txn.open_table(format::INCOMING)
                    .map_err(io)?
                    .remove((client_id.as_str(), packet_id.get()))
                    .map_err(io)?;
            }
            StoreOp::PutRetained { topic, message } => {
                let sealed = format::seal(
                    "retained",
                    &RecordKey::named(topic),
                    &MessageRecord::from(message),
                );
                txn.open_table(format::RETAINED)
                    .map_err(io)?
                    .insert(topic.as_str(), sealed.as_slice())
                    .map_err(io)?;
            }
            StoreOp::DeleteRetained { topic } => {
                txn.open_table(format::RETAINED)
                    .map_err(io)?
                    .remove(topic.as_str())
                    .map_err(io)?;
            }
            StoreOp::ShareMessage { .. } | StoreOp::FollowInterest { .. } | StoreOp::PutStreamDone { .. } => {
            }
        }
        Ok(())
    }
}

impl Store for RedbStore {
    fn commit(&mut self, ops: &[StoreOp], sync: bool) -> Result<(), StoreError> {
        let mut txn = self.db()?.begin_write().map_err(io)?;
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
        let mut txn = self.db()?.begin_write().map_err(io)?;
        txn.set_durability(Durability::Immediate);
        txn.commit().map_err(io)
    }

    fn view(&self) -> Result<StoreView, StoreError> {
        let txn = self.db()?.begin_read().map_err(io)?;
        Ok(StoreView::new(move || {
            let verified = super::verify::read_all(&txn).map_err(io)?;
            match verified.damage.first() {
                None => Ok(verified.snapshot),
                Some(damage) => Err(StoreError::Io(format!("damaged record: {damage}"))),
            }
        }))
    }

    fn reopen(&mut self) -> Result<(), StoreError> {
        // The file is locked while open: the old handle goes first.
        self.db = None;
        self.db = Some(Database::create(&self.path).map_err(io)?);
        Ok(())
    }
}
