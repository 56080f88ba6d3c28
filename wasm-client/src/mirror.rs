//! What IndexedDB holds of a session, so that a save writes only what changed: one
//! record per message that is new or moved on in its handshake, one range delete per
//! run of stored messages that completed, and the incoming QoS 2 ids when they changed.
//! A save costs O(session) comparisons of a few integers, and IndexedDB work in
//! proportion to the change, not to the session.
//!
//! A QoS 1 message is stored as queued for its whole life: its packet id and in-flight
//! state are never written, so it costs one put and one (range) delete. After a reload it
//! is sent again as a new message, which at-least-once allows. A QoS 2 message's packet id
//! and state are written before each step leaves, since exactly-once rests on them.
//!
//! Deletes are ranges because acknowledgements mostly arrive in order, and Chromium
//! deletes a run of 25 records with one range in about a fifth of the time it takes for
//! 25 single deletes (measured in the Chromium the tests use).

use std::ops::RangeInclusive;

use tabmq_protocol::flow::{InflightState, MessageId, OutgoingMessage, SessionFlows};
use tabmq_protocol::{PacketId, QoS};

/// One stored message as last written: its id, packet id and handshake state.
type Written = (MessageId, Option<PacketId>, Option<InflightState>);

fn written(message: &OutgoingMessage) -> Written {
    match message.publish.qos {
        QoS::ExactlyOnce => (message.id, message.publish.packet_id, message.state),
        _ => (message.id, None, None),
    }
}

/// `message` as it is stored: a QoS 0/1 message as queued (see the module notes).
fn durable(message: &OutgoingMessage) -> OutgoingMessage {
    let mut stored = message.clone();
    if stored.publish.qos != QoS::ExactlyOnce {
        stored.state = None;
        stored.publish.packet_id = None;
        stored.publish.dup = false;
    }
    stored
}

/// The stored state of one session, as far as the writes need to know it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionMirror {
    /// Sorted by message id.
    messages: Vec<Written>,
    /// Ascending.
    incoming: Vec<PacketId>,
}

/// The writes that bring the stored session up to date.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionWrites {
    /// Messages that are new or changed state, to (over)write.
    pub put: Vec<OutgoingMessage>,
    /// Runs of stored messages that completed or were dropped: no stored message of
    /// the session lies inside a run, so each can be deleted as one key range.
    pub delete: Vec<RangeInclusive<MessageId>>,
    /// The incoming QoS 2 packet ids awaiting PUBREL, when they changed.
    pub incoming: Option<Vec<PacketId>>,
    /// Delete every stored message of the session first: the stored state is unknown
    /// (a save failed), so this save writes the whole session.
    pub replace_all: bool,
}

impl SessionWrites {
    /// Whether the stored session is already up to date.
    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.delete.is_empty() && self.incoming.is_none() && !self.replace_all
    }

    /// Whether outgoing messages change (not only the received QoS 2 ids).
    pub fn changes_outgoing(&self) -> bool {
        !self.put.is_empty() || !self.delete.is_empty() || self.replace_all
    }
}

/// The session a store holds: its messages (in any order) and its received QoS 2 ids.
/// In-flight messages are restored in id (send) order, to be resent with DUP, then the queue.
pub fn restore_session(
    messages: Vec<OutgoingMessage>,
    incoming: impl IntoIterator<Item = PacketId>,
) -> SessionFlows {
    let mut flows = SessionFlows::default();
    // By id, which is send order (`restore_inflight` must precede `enqueue_as`).
    let mut queued = Vec::new();
    for message in sorted_by_id(messages, |message| message.id) {
        match message.state {
            Some(state) => flows
                .outgoing
                .restore_inflight(message.id, message.publish, state),
            None => queued.push(message),
        }
    }
    for message in queued {
        flows.outgoing.enqueue_as(message.id, message.publish);
    }
    for id in incoming {
        flows.incoming.on_publish(id);
    }
    flows
}

/// `items` in ascending message id. The flows hand messages out in id order already (ids
/// are given in queue order and leave the queue in order), so this insertion sort only
/// checks that, in one pass; it stays correct, only slower, if that ever changes. (A
/// library sort would add kilobytes of wasm for nothing.)
fn sorted_by_id<T>(items: impl IntoIterator<Item = T>, id: impl Fn(&T) -> MessageId) -> Vec<T> {
    let mut sorted: Vec<T> = Vec::new();
    for item in items {
        let at = sorted
            .iter()
            .rposition(|earlier| id(earlier) < id(&item))
            .map_or(0, |index| index + 1);
        sorted.insert(at, item);
    }
    sorted
}

/// The session's messages by id.
fn sorted_messages(flows: &SessionFlows) -> Vec<&OutgoingMessage> {
    sorted_by_id(flows.outgoing.iter(), |message| message.id)
}

/// Collects deleted ids, in stored order, into runs of consecutive stored records.
#[derive(Default)]
struct DeleteRuns {
    runs: Vec<RangeInclusive<MessageId>>,
    open: Option<RangeInclusive<MessageId>>,
}

impl DeleteRuns {
    /// The next stored record, in order, is deleted.
    fn extend(&mut self, id: MessageId) {
        self.open = Some(match self.open.take() {
            Some(run) => *run.start()..=id,
            None => id..=id,
        });
    }

    /// The next stored record stays: the open run ends before it.
    fn interrupt(&mut self) {
        self.runs.extend(self.open.take());
    }

    fn finish(mut self) -> Vec<RangeInclusive<MessageId>> {
        self.interrupt();
        self.runs
    }
}

impl SessionMirror {
    /// The mirror of a session as it is stored (just read, or just written whole).
    pub fn of(flows: &SessionFlows) -> Self {
        Self {
            messages: sorted_messages(flows).into_iter().map(written).collect(),
            incoming: flows.incoming.iter().collect(),
        }
    }

    /// The writes that store `flows` whole over a stored state that is unknown.
    pub fn rewrite(flows: &SessionFlows) -> (SessionWrites, SessionMirror) {
        let (mut writes, next) = SessionMirror::default().diff(flows);
        writes.replace_all = true;
        writes.incoming = Some(next.incoming.clone());
        (writes, next)
    }

    /// The writes from this stored state to `flows`, and the mirror once they are
    /// committed (kept apart: a failed save leaves the store, and so this mirror, as it was).
    pub fn diff(&self, flows: &SessionFlows) -> (SessionWrites, SessionMirror) {
        let current = sorted_messages(flows);
        let mut writes = SessionWrites::default();
        let mut deleted = DeleteRuns::default();
        let mut old = self.messages.iter().peekable();
        for message in &current {
            while let Some(&&(id, _, _)) = old.peek()
                && id < message.id
            {
                deleted.extend(id);
                old.next();
            }
            match old.next_if(|stored| stored.0 == message.id) {
                Some(stored) => {
                    deleted.interrupt();
                    if *stored != written(message) {
                        writes.put.push(durable(message));
                    }
                }
                None => writes.put.push(durable(message)),
            }
        }
        for &(id, _, _) in old {
            deleted.extend(id);
        }
        writes.delete = deleted.finish();
        let incoming: Vec<PacketId> = flows.incoming.iter().collect();
        if incoming != self.incoming {
            writes.incoming = Some(incoming.clone());
        }
        let next = SessionMirror {
            messages: current.into_iter().map(written).collect(),
            incoming,
        };
        (writes, next)
    }
}

#[cfg(test)]
mod tests {
    use tabmq_protocol::QoS;
    use tabmq_protocol::flow::AckOutcome;
    use tabmq_protocol::packet::{PubResponse, Publish};

    use super::*;

    fn publish(topic: &str, qos: QoS) -> Publish {
        Publish::new(topic, &b"payload"[..], qos)
    }

    fn send_all(flows: &mut SessionFlows) -> Vec<PacketId> {
        let mut sent = Vec::new();
        while let Some((_, publish)) = flows.outgoing.next_to_send(100, QoS::ExactlyOnce, |_| false) {
            sent.extend(publish.packet_id);
        }
        sent
    }

    #[test]
    fn an_unchanged_session_needs_no_write() {
        let mut flows = SessionFlows::default();
        flows.outgoing.enqueue(publish("a", QoS::AtLeastOnce));
        let mirror = SessionMirror::of(&flows);
        let (writes, next) = mirror.diff(&flows);
        assert!(writes.is_empty());
        assert_eq!(next, mirror);
    }

    #[test]
    fn only_new_and_changed_messages_are_written_and_finished_ones_deleted() {
        let mut flows = SessionFlows::default();
        let first = flows.outgoing.enqueue(publish("a", QoS::AtLeastOnce));
        let second = flows.outgoing.enqueue(publish("b", QoS::ExactlyOnce));
        let (writes, mirror) = SessionMirror::default().diff(&flows);
        assert_eq!(
            writes.put.iter().map(|m| m.id).collect::<Vec<_>>(),
            [first, second]
        );

        // Both sent: only the QoS 2 state change is written (QoS 1 stays stored as
        // queued). Then a third is queued: one new record.
        let packet_ids = send_all(&mut flows);
        let third = flows.outgoing.enqueue(publish("c", QoS::AtLeastOnce));
        let (writes, mirror) = mirror.diff(&flows);
        assert_eq!(
            writes.put.iter().map(|m| m.id).collect::<Vec<_>>(),
            [second, third]
        );
        assert!(
            writes
                .put
                .iter()
                .all(|m| m.publish.qos == QoS::ExactlyOnce || m.state.is_none())
        );
        assert!(writes.delete.is_empty());

        // PUBACK for the first deletes it; PUBREC for the second rewrites it; the third is untouched.
        let outcome = flows.outgoing.on_puback(&PubResponse::success(packet_ids[0]));
        assert!(matches!(outcome, AckOutcome::Completed { .. }));
        flows.outgoing.on_pubrec(&PubResponse::success(packet_ids[1]));
        let (writes, mirror) = mirror.diff(&flows);
        assert_eq!(writes.delete, [first..=first]);
        assert_eq!(writes.put.len(), 1);
        assert_eq!(writes.put[0].id, second);
        assert_eq!(writes.put[0].state, Some(InflightState::AwaitingPubcomp));

        // The broker lost the session: the unacknowledged third goes back to the queue,
        // which its stored record already says.
        send_all(&mut flows);
        let (_, mirror) = mirror.diff(&flows);
        flows.outgoing.restart_without_session();
        let (writes, _) = mirror.diff(&flows);
        assert_eq!(writes.delete, [second..=second], "released QoS 2 is complete");
        assert!(writes.put.is_empty(), "{:?}", writes.put);
        assert_eq!(
            flows.outgoing.iter().map(|m| (m.id, m.state)).collect::<Vec<_>>(),
            [(third, None)]
        );
    }

    #[test]
    fn completed_messages_are_deleted_in_runs_that_skip_the_ones_still_stored() {
        let mut flows = SessionFlows::default();
        let ids: Vec<MessageId> = (0..6)
            .map(|n| {
                flows
                    .outgoing
                    .enqueue(publish(&format!("t/{n}"), QoS::AtLeastOnce))
            })
            .collect();
        let packet_ids = send_all(&mut flows);
        let (_, mirror) = SessionMirror::default().diff(&flows);
        // Acknowledged: 0, 1, 3, 4 and 5; 2 is still awaiting its PUBACK.
        for index in [0, 1, 3, 4, 5] {
            flows.outgoing.on_puback(&PubResponse::success(packet_ids[index]));
        }
        let (writes, _) = mirror.diff(&flows);
        assert_eq!(writes.delete, [ids[0]..=ids[1], ids[3]..=ids[5]]);
        assert!(writes.put.is_empty());
    }

    #[test]
    fn messages_handed_out_of_id_order_are_still_diffed_by_id() {
        let mut flows = SessionFlows::default();
        for id in [5, 3, 9, 4] {
            flows.outgoing.enqueue_as(id, publish("t", QoS::AtLeastOnce));
        }
        let (writes, mirror) = SessionMirror::default().diff(&flows);
        assert_eq!(writes.put.iter().map(|m| m.id).collect::<Vec<_>>(), [3, 4, 5, 9]);
        flows.outgoing.retain_queued(|message| message.id == 9);
        let (writes, _) = mirror.diff(&flows);
        assert_eq!(writes.delete, [3..=5]);
        assert!(writes.put.is_empty());
    }

    #[test]
    fn incoming_qos2_ids_are_written_when_they_change() {
        let mut flows = SessionFlows::default();
        let id = PacketId::new(7).expect("non-zero");
        flows.incoming.on_publish(id);
        let (writes, mirror) = SessionMirror::default().diff(&flows);
        assert_eq!(writes.incoming, Some(vec![id]));
        let (writes, mirror) = mirror.diff(&flows);
        assert_eq!(writes.incoming, None);
        flows.incoming.on_pubrel(id);
        let (writes, _) = mirror.diff(&flows);
        assert_eq!(writes.incoming, Some(vec![]));
    }
}
