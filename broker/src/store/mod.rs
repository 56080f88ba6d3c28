//! Durable storage behind a small trait, with one embedded backend ([`redb`]).
//!
//! Everything the broker must not lose goes through [`StoreHandle`], which groups
//! the writes of all connections and the router into one transaction and one fsync
//! (group commit), so "acknowledged means on disk" stays fast under load.

mod format;
mod format_v1;
mod jetstream_store;
mod records;
mod redb_store;
mod verify;
mod writer;

pub use format::{Damage, FORMAT_VERSION, message_bytes, message_from_bytes};
pub use jetstream_store::JetStreamStore;
pub use records::{SessionRecord, Snapshot, StoredMessage, StoredSession, StoredSubscription};
pub use redb_store::{DATABASE_FILE, RedbStore};
pub use verify::{VERIFY_THREAD, Verified, verify_copy};
pub use writer::{PendingCommit, StoreHandle};

use tabmq_protocol::PacketId;
use tabmq_protocol::flow::InflightState;
use thiserror::Error;

/// A storage failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The data directory or database file cannot be opened or is corrupt.
    #[error("cannot open the database at {path}: {message}")]
    Open {
        /// The database file.
        path: std::path::PathBuf,
        /// The backend's explanation.
        message: String,
    },
    /// A read or write failed (disk full, I/O error).
    #[error("storage failure: {0}")]
    Io(String),
    /// The database file is damaged: nothing was changed in it.
    #[error("the database at {path} is damaged ({} damaged: {}); it was left unchanged. Run `tabmq check` for a report and `tabmq recover` to copy what is intact", damage.len(), damage.iter().take(3).map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Damaged {
        /// The database file.
        path: std::path::PathBuf,
        /// What is damaged.
        damage: Vec<Damage>,
    },
    /// The database was written in a storage format this build does not read.
    #[error(
        "the database at {path} has storage format {found}; this build reads formats 1 to {supported} (written by a newer tabmq, or not a tabmq database)"
    )]
    UnknownFormat {
        /// The database file.
        path: std::path::PathBuf,
        /// The format found.
        found: u64,
        /// The newest format this build reads.
        supported: u64,
    },
    /// Storage is failing: the write was not attempted, and is kept to retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The writer thread is gone (the broker is shutting down).
    #[error("the storage writer has stopped")]
    Stopped,
}

/// An error of the storage engine, boxed: redb's own error type is large.
#[derive(Debug)]
pub(crate) struct EngineError(Box<redb::Error>);

impl<E: Into<redb::Error>> From<E> for EngineError {
    fn from(error: E) -> Self {
        Self(Box::new(error.into()))
    }
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl StoreError {
    /// The same error, about the file at `path` (it was found in a copy of that file).
    pub(crate) fn about(self, path: &std::path::Path) -> Self {
        match self {
            StoreError::Damaged { damage, .. } => StoreError::Damaged {
                path: path.to_owned(),
                damage,
            },
            StoreError::UnknownFormat { found, supported, .. } => StoreError::UnknownFormat {
                path: path.to_owned(),
                found,
                supported,
            },
            other => other,
        }
    }
}

/// One change to the stored state.
#[derive(Debug, Clone)]
pub enum StoreOp {
    /// Create or replace a session's record.
    PutSession {
        /// Client id.
        client_id: String,
        /// The record.
        record: Box<SessionRecord>,
    },
    /// Remove a session and everything stored under it.
    DeleteSession {
        /// Client id.
        client_id: String,
    },
    /// Store a QoS 1/2 message queued for a session.
    PutMessage {
        /// Client id.
        client_id: String,
        /// The message's sequence number in that session.
        seq: u64,
        /// The message.
        message: StoredMessage,
    },
    /// Remove a delivered (or dropped) message and its in-flight state.
    DeleteMessage {
        /// Client id.
        client_id: String,
        /// Sequence number.
        seq: u64,
    },
    /// Record the packet id and handshake state of a message in flight.
    PutInflight {
        /// Client id.
        client_id: String,
        /// Sequence number.
        seq: u64,
        /// Packet id it was sent with.
        packet_id: PacketId,
        /// Where its handshake stands.
        state: InflightState,
    },
    /// Record a QoS 2 packet id received from the client and not yet released.
    PutIncoming {
        /// Client id.
        client_id: String,
        /// Packet id.
        packet_id: PacketId,
    },
    /// The client released a QoS 2 packet id.
    DeleteIncoming {
        /// Client id.
        client_id: String,
        /// Packet id.
        packet_id: PacketId,
    },
    /// Set a retained message.
    PutRetained {
        /// Topic.
        topic: String,
        /// The message.
        message: StoredMessage,
    },
    /// Clear a topic's retained message.
    DeleteRetained {
        /// Topic.
        topic: String,
    },
    /// Cluster mode: hand a QoS 1/2 message to every node, in the cluster's replicated
    /// stream of messages (one node has no other nodes: its store has nothing to do).
    ShareMessage {
        /// The message.
        message: StoredMessage,
        /// The publishing client, if a client published it.
        origin: Option<String>,
        /// Unique per node: the stream keeps the message once if it is written again.
        id: u64,
    },
    /// Cluster mode: the highest stream sequence of the cluster's messages a stored
    /// session is done with (see [`StoredSession::stream_done`]; one node keeps none).
    PutStreamDone {
        /// Client id.
        client_id: String,
        /// The stream sequence.
        through: u64,
    },
    /// Cluster mode: filters that gained their node's first subscription or lost its
    /// last, so that the node receives the cluster's QoS 1/2 messages on them from the
    /// commit on (one node receives its own messages: its store has nothing to do).
    FollowInterest {
        /// The changes, in order.
        changes: Vec<crate::router::InterestChange>,
    },
}

/// A storage backend: applies batches of changes (it is opened with everything it holds).
pub trait Store: Send + 'static {
    /// Applies `ops` atomically; with `sync`, they are on stable storage when this returns.
    fn commit(&mut self, ops: &[StoreOp], sync: bool) -> Result<(), StoreError>;

    /// Makes every earlier commit durable.
    fn sync(&mut self) -> Result<(), StoreError>;

    /// Closes and opens the store again, as an engine requires after an I/O error.
    fn reopen(&mut self) -> Result<(), StoreError>;

    /// A consistent view of everything committed so far, readable on another thread
    /// while writes go on.
    fn view(&self) -> Result<StoreView, StoreError>;
}

/// Everything a store held at one moment, read when [`StoreView::read`] is called.
pub struct StoreView(Box<dyn FnOnce() -> Result<Snapshot, StoreError> + Send>);

impl StoreView {
    /// A view that `read` reads.
    pub fn new(read: impl FnOnce() -> Result<Snapshot, StoreError> + Send + 'static) -> Self {
        Self(Box::new(read))
    }

    /// Reads the view (on the calling thread).
    pub fn read(self) -> Result<Snapshot, StoreError> {
        (self.0)()
    }
}
