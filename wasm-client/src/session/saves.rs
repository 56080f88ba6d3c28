//! Nothing leaves before the state it depends on is stored.
//!
//! Each turn of the session machine may change the session and produce bytes. The bytes
//! are held, tagged with the save that covers the state they were produced from, and
//! released in order once that save has committed; the changes made meanwhile go into the
//! next save, so under load each save carries a whole batch. Up to [`MAX_SAVES_IN_FLIGHT`]
//! saves wait for their commit at once (IndexedDB commits read-write transactions on one
//! store in the order they were opened). Bytes that need no new state (a PUBACK, a
//! PINGREQ) wait only for the saves already issued, to keep the packets in order.

use std::collections::VecDeque;

use tabmq_protocol::flow::SessionFlows;

use super::io::{SaveId, SocketId};
use crate::mirror::{SessionMirror, SessionWrites};
use crate::session_log::COMPACT_EVERY;

/// How many saves may be waiting for their commit at once. One: IndexedDB runs them one
/// at a time anyway, and fewer, larger saves publish faster (in Chromium, publishing QoS 1
/// with 50 in flight: 5,000-5,800 msg/s with one, 4,200-4,500 with two, 3,400-3,800 with three).
pub const MAX_SAVES_IN_FLIGHT: usize = 1;

/// A save to issue.
#[derive(Debug)]
pub struct Save {
    /// Its sequence number.
    pub id: SaveId,
    /// Its entry's key in the session's log (after the entries already stored).
    pub seq: u64,
    /// What to write.
    pub writes: SessionWrites,
}

/// The save pipeline of one session.
#[derive(Debug, Default)]
pub struct Saves {
    /// What the store holds once every issued save has committed.
    stored: SessionMirror,
    /// The store's state is unknown (a save failed), or the log is long: the next save
    /// writes everything, and replaces the entries before it.
    rewrite: bool,
    /// The key of the last entry stored before this page's first save.
    base_seq: u64,
    /// Saves since the last one that wrote everything.
    since_rewrite: u64,
    issued: SaveId,
    committed: SaveId,
    /// Issued saves, oldest first, with whether each changes outgoing messages.
    in_flight: VecDeque<(SaveId, bool)>,
    /// Bytes waiting for a save: the save they need, their socket, the bytes.
    held: VecDeque<(SaveId, SocketId, Vec<u8>)>,
    /// A save failed: no save is issued until [`Saves::retry`] (the next connection), so a
    /// full disk or quota costs one attempt per reconnect, not a loop of failing writes.
    paused: bool,
}

/// What a commit releases.
#[derive(Debug, Default)]
pub struct Committed {
    /// Bytes to send now, in order, with their socket.
    pub release: Vec<(SocketId, Vec<u8>)>,
    /// Whether the save changed outgoing messages (the app's `pending` changed).
    pub outgoing_changed: bool,
}

impl Saves {
    /// The pipeline of a session as it was just read from the store, whose last log
    /// entry has the key `last_seq`.
    pub fn of(flows: &SessionFlows, last_seq: u64) -> Self {
        Self {
            stored: SessionMirror::of(flows),
            base_seq: last_seq,
            ..Self::default()
        }
    }

    /// After a turn: issues a save if `flows` differs from what is stored (or will be) and
    /// a slot is free, and holds `bytes` (if any) until the save covering them commits.
    /// Returns the save to issue and the bytes that may be sent at once.
    pub fn after_turn(
        &mut self,
        flows: &SessionFlows,
        socket: SocketId,
        bytes: Option<Vec<u8>>,
    ) -> (Option<Save>, Option<Vec<u8>>) {
        self.rewrite |= self.since_rewrite >= COMPACT_EVERY;
        let (writes, next) = if self.rewrite {
            SessionMirror::rewrite(flows)
        } else {
            self.stored.diff(flows)
        };
        let changed = !writes.is_empty();
        let mut save = None;
        if changed && !self.paused && self.in_flight.len() < MAX_SAVES_IN_FLIGHT {
            self.since_rewrite = if writes.replace_all {
                0
            } else {
                self.since_rewrite + 1
            };
            self.rewrite = false;
            self.stored = next;
            self.issued += 1;
            self.in_flight.push_back((self.issued, writes.changes_outgoing()));
            save = Some(Save {
                id: self.issued,
                seq: self.base_seq + self.issued,
                writes,
            });
        }
        // Changed without a free slot: the next save issued covers these bytes.
        let needs = if changed && save.is_none() {
            self.issued + 1
        } else {
            self.issued
        };
        let Some(bytes) = bytes else {
            return (save, None);
        };
        if needs <= self.committed && self.held.is_empty() {
            return (save, Some(bytes));
        }
        self.held.push_back((needs, socket, bytes));
        (save, None)
    }

    /// A save committed: the bytes it covered may leave (those of `current`, the socket
    /// now open; bytes of an older socket are dropped), and the next save may be issued.
    pub fn committed(&mut self, save: SaveId, current: Option<SocketId>) -> Committed {
        let mut outcome = Committed::default();
        let Some(index) = self.in_flight.iter().position(|(id, _)| *id == save) else {
            return outcome;
        };
        outcome.outgoing_changed = self.in_flight.remove(index).is_some_and(|(_, changed)| changed);
        self.committed = self.committed.max(save);
        while let Some((needs, _, _)) = self.held.front()
            && *needs <= self.committed
        {
            let (_, socket, bytes) = self.held.pop_front().expect("front exists");
            if Some(socket) == current {
                outcome.release.push((socket, bytes));
            }
        }
        outcome
    }

    /// A save failed: the store's state is unknown, so the next save rewrites the whole
    /// session; every held byte is dropped (the connection is closed: what they carried is
    /// sent again from the session after the reconnect).
    pub fn failed(&mut self, save: SaveId) {
        if let Some(index) = self.in_flight.iter().position(|(id, _)| *id == save) {
            self.in_flight.remove(index);
        }
        self.committed = self.committed.max(save);
        self.rewrite = true;
        self.paused = true;
        self.held.clear();
    }

    /// Saves may be tried again (a new connection is starting): the next one writes the
    /// whole session.
    pub fn retry(&mut self) {
        self.paused = false;
    }
}

#[cfg(test)]
mod tests {
    use tabmq_protocol::QoS;
    use tabmq_protocol::packet::Publish;

    use super::*;

    fn queue_one(flows: &mut SessionFlows, topic: &str) {
        flows
            .outgoing
            .enqueue(Publish::new(topic, &b"x"[..], QoS::AtLeastOnce));
    }

    #[test]
    fn bytes_wait_for_the_save_of_their_state_and_leave_in_order() {
        let mut flows = SessionFlows::default();
        let mut saves = Saves::of(&flows, 0);
        queue_one(&mut flows, "a");
        let (save, now) = saves.after_turn(&flows, 1, Some(b"A".to_vec()));
        let first = save.expect("a save for the new message");
        assert!(now.is_none(), "held until committed");
        // A ping needs no new state but must not overtake A.
        let (save, now) = saves.after_turn(&flows, 1, Some(b"P".to_vec()));
        assert!(save.is_none() && now.is_none());
        let committed = saves.committed(first.id, Some(1));
        assert_eq!(committed.release, [(1, b"A".to_vec()), (1, b"P".to_vec())]);
        assert!(committed.outgoing_changed);
        let (save, now) = saves.after_turn(&flows, 1, Some(b"Q".to_vec()));
        assert!(save.is_none());
        assert_eq!(now, Some(b"Q".to_vec()), "nothing pending: sent at once");
    }

    #[test]
    fn at_most_max_saves_run_and_the_next_change_waits_for_a_slot() {
        let mut flows = SessionFlows::default();
        let mut saves = Saves::of(&flows, 0);
        let mut issued = Vec::new();
        let topics: Vec<String> = (0..=MAX_SAVES_IN_FLIGHT).map(|n| format!("t{n}")).collect();
        for topic in &topics {
            queue_one(&mut flows, topic);
            let (save, _) = saves.after_turn(&flows, 1, Some(topic.as_bytes().to_vec()));
            issued.extend(save.map(|save| save.id));
        }
        assert_eq!(issued, (1..=MAX_SAVES_IN_FLIGHT as u64).collect::<Vec<_>>());
        let released = saves.committed(1, Some(1)).release;
        assert_eq!(released, [(1, topics[0].as_bytes().to_vec())]);
        let (save, _) = saves.after_turn(&flows, 1, None);
        let last = save.expect("the slot is free again");
        assert_eq!(last.writes.put.len(), 1, "only the last message is new");
        for id in 2..=MAX_SAVES_IN_FLIGHT as u64 {
            let released = saves.committed(id, Some(1)).release;
            assert_eq!(released, [(1, topics[id as usize - 1].as_bytes().to_vec())]);
        }
        assert_eq!(
            saves.committed(last.id, Some(1)).release,
            [(1, topics[MAX_SAVES_IN_FLIGHT].as_bytes().to_vec())]
        );
    }

    #[test]
    fn after_a_failed_save_nothing_held_leaves_and_the_next_save_rewrites_all() {
        let mut flows = SessionFlows::default();
        let mut saves = Saves::of(&flows, 0);
        queue_one(&mut flows, "a");
        let (save, _) = saves.after_turn(&flows, 1, Some(b"A".to_vec()));
        saves.failed(save.expect("issued").id);
        assert!(saves.in_flight.is_empty(), "the failed save left the pipeline");
        let (save, _) = saves.after_turn(&flows, 1, None);
        assert!(
            save.is_none(),
            "no retry loop: saves wait for the next connection"
        );
        saves.retry();
        let (save, now) = saves.after_turn(&flows, 2, None);
        let rewrite = save.expect("rewritten");
        assert!(rewrite.writes.replace_all);
        assert_eq!(rewrite.writes.put.len(), 1);
        assert!(now.is_none());
        assert!(
            saves.committed(rewrite.id, Some(2)).release.is_empty(),
            "A was dropped"
        );
    }

    #[test]
    fn entries_follow_the_stored_log_and_every_so_often_one_holds_everything() {
        let mut flows = SessionFlows::default();
        let mut saves = Saves::of(&flows, 40);
        let mut rewrites = Vec::new();
        for n in 0..(2 * COMPACT_EVERY + 2) {
            queue_one(&mut flows, "t");
            let (save, _) = saves.after_turn(&flows, 1, None);
            let save = save.expect("one save per change");
            assert_eq!(save.seq, 41 + n);
            if save.writes.replace_all {
                rewrites.push(n);
                assert_eq!(save.writes.put.len() as u64, n + 1, "the whole session");
            }
            saves.committed(save.id, Some(1));
        }
        assert_eq!(rewrites, [COMPACT_EVERY, 2 * COMPACT_EVERY + 1]);
    }

    #[test]
    fn bytes_of_a_closed_socket_are_dropped_at_release() {
        let mut flows = SessionFlows::default();
        let mut saves = Saves::of(&flows, 0);
        queue_one(&mut flows, "a");
        let (save, _) = saves.after_turn(&flows, 1, Some(b"A".to_vec()));
        assert!(
            saves
                .committed(save.expect("issued").id, Some(2))
                .release
                .is_empty()
        );
    }
}
