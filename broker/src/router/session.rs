//! A session as the router holds it.

use std::sync::Arc;

use foldhash::HashMap;

use tabmq_protocol::flow::SessionFlows;
use tabmq_protocol::packet::Will;

use super::messages::ConnectionLink;
use crate::cluster::{is_from_stream, stream_seq_of};
use crate::store::{SessionRecord, StoreOp};

/// The `pending_will` time under which a cluster node stores a connected session's will:
/// published, as after a lost connection, if the node holding the connection dies.
pub(crate) const WILL_WHEN_NODE_DIES: u64 = u64::MAX;

/// A QoS 1/2 message handed to the session and not yet done.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outstanding {
    /// Payload size, for the byte limit.
    pub(crate) bytes: usize,
    /// When it expires (Unix ms), for v5 message expiry while queued.
    pub(crate) expires_at_ms: Option<u64>,
}

/// One client id's session.
#[derive(Debug)]
pub(crate) struct Session {
    /// The client id.
    pub(crate) client_id: Arc<str>,
    /// What is stored about it.
    pub(crate) record: SessionRecord,
    /// Whether `record` has been written to the store.
    pub(crate) stored: bool,
    /// In cluster mode: a clean session's record is stored while it is connected with a
    /// will, so that the node adopting it publishes the will if this node dies.
    pub(crate) stored_for_will: bool,
    /// The connection holding it, if any.
    pub(crate) link: Option<ConnectionLink>,
    /// The current connection's will.
    pub(crate) will: Option<Will>,
    /// The QoS state while no connection holds it.
    pub(crate) offline: SessionFlows,
    /// The next message sequence number.
    pub(crate) next_seq: u64,
    /// QoS 1/2 messages handed over and not yet done, by sequence number.
    pub(crate) outstanding: HashMap<u64, Outstanding>,
    /// Sum of `outstanding` payload sizes.
    pub(crate) outstanding_bytes: usize,
    /// Messages dropped for this session (queue full, expired) since its client last
    /// connected; reported to v5 clients in CONNACK.
    pub(crate) dropped: u64,
    /// In cluster mode: another node took the client id over, so the session is let go
    /// of once its connection here has ended.
    pub(crate) moved_away: bool,
    /// In cluster mode: the cluster's stream messages up to this sequence were given to
    /// the session when it came to this node; the node's own reader, if behind, skips them.
    pub(crate) stream_floor: u64,
    /// In cluster mode: the highest stream sequence among the cluster's messages it is
    /// done with (delivered or dropped), stored so that no node gives them again.
    pub(crate) stream_done: u64,
}

impl Session {
    /// A new, empty session.
    pub(crate) fn new(client_id: Arc<str>, record: SessionRecord) -> Self {
        Self {
            client_id,
            record,
            stored: false,
            stored_for_will: false,
            link: None,
            will: None,
            offline: SessionFlows::default(),
            next_seq: 1,
            outstanding: HashMap::default(),
            outstanding_bytes: 0,
            dropped: 0,
            moved_away: false,
            stream_floor: 0,
            stream_done: 0,
        }
    }

    /// Whether the session outlives its connection.
    pub(crate) fn is_persistent(&self) -> bool {
        self.record.expiry_interval > 0
    }

    /// The record to store: in cluster mode, a connected session's will is in it too
    /// (see [`WILL_WHEN_NODE_DIES`]).
    pub(crate) fn record_to_store(&self, in_cluster: bool) -> SessionRecord {
        let mut record = self.record.clone();
        if in_cluster && self.link.is_some() && record.pending_will.is_none() {
            record.pending_will = self.will.clone().map(|will| (will, WILL_WHEN_NODE_DIES));
        }
        record
    }

    /// A session stored while connected on a cluster node that died: its connection is
    /// lost now, so its expiry starts and its will is due after its delay.
    pub(crate) fn lost_with_its_node(&mut self, now_ms: u64) {
        let expiry = self.record.expiry_interval;
        if let Some((will, at)) = &mut self.record.pending_will
            && *at == WILL_WHEN_NODE_DIES
        {
            let delay = will.properties.will_delay_interval.unwrap_or(0).min(expiry);
            *at = now_ms + u64::from(delay) * 1000;
        }
        if self.record.expires_at_ms.is_none() && expiry != u32::MAX {
            self.record.expires_at_ms = Some(now_ms + u64::from(expiry) * 1000);
        }
    }

    /// Takes a sequence number.
    pub(crate) fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Forgets message `seq` (delivered or dropped), with the store's ops for it if the
    /// session is stored: a message of the cluster's stream is remembered as done.
    pub(crate) fn forget_message(&mut self, seq: u64, ops: &mut Vec<StoreOp>) {
        if !self.stored {
            return;
        }
        ops.push(StoreOp::DeleteMessage {
            client_id: self.client_id.to_string(),
            seq,
        });
        if is_from_stream(seq) && stream_seq_of(seq) > self.stream_done {
            self.stream_done = stream_seq_of(seq);
            ops.push(StoreOp::PutStreamDone {
                client_id: self.client_id.to_string(),
                through: self.stream_done,
            });
        }
    }

    /// Records a message handed over.
    pub(crate) fn add_outstanding(&mut self, seq: u64, outstanding: Outstanding) {
        self.outstanding_bytes += outstanding.bytes;
        self.outstanding.insert(seq, outstanding);
    }

    /// Forgets a message that is done; `true` if it was outstanding.
    pub(crate) fn remove_outstanding(&mut self, seq: u64) -> bool {
        match self.outstanding.remove(&seq) {
            Some(outstanding) => {
                self.outstanding_bytes -= outstanding.bytes;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::session_seq;

    fn stored_session() -> Session {
        let mut session = Session::new(
            "c".into(),
            SessionRecord::new(tabmq_protocol::ProtocolVersion::V5),
        );
        session.stored = true;
        session
    }

    fn done_through(ops: &[StoreOp]) -> Vec<u64> {
        ops.iter()
            .filter_map(|op| match op {
                StoreOp::PutStreamDone { through, .. } => Some(*through),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_highest_stream_message_done_with_is_stored() {
        let mut session = stored_session();
        let mut ops = Vec::new();
        session.forget_message(session_seq(5), &mut ops);
        assert_eq!(done_through(&ops), [5]);
        assert_eq!(ops.len(), 2, "the message is deleted too");
        ops.clear();
        session.forget_message(session_seq(3), &mut ops);
        assert_eq!(
            done_through(&ops),
            [] as [u64; 0],
            "a lower one leaves the mark at 5"
        );
        session.forget_message(7, &mut ops);
        assert_eq!(
            done_through(&ops),
            [] as [u64; 0],
            "the session's own messages are not the stream's"
        );
        assert_eq!(ops.len(), 2, "both deleted");
        assert_eq!(session.stream_done, 5);
    }

    #[test]
    fn a_session_not_stored_writes_nothing() {
        let mut session = stored_session();
        session.stored = false;
        let mut ops = Vec::new();
        session.forget_message(session_seq(5), &mut ops);
        assert!(ops.is_empty());
    }
}
