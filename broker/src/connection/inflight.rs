//! Persisting where each outgoing QoS 1/2 handshake stands.
//!
//! Exactly-once across a broker crash needs two facts on disk before bytes leave:
//! the packet id a QoS 2 message is sent with (so a resend after restart reuses it
//! and the client recognises the duplicate), and that PUBREL was sent (so the broker
//! resends PUBREL, not the PUBLISH, after restart). QoS 1 ids are recorded without
//! waiting: a lost record only means a duplicate, which QoS 1 allows.

use tabmq_protocol::PacketId;
use tabmq_protocol::flow::{InflightState, MessageId, SessionFlows};

use crate::store::StoreOp;

/// One in-flight message as last written: its id, packet id and handshake state.
type Written = (MessageId, PacketId, InflightState);

/// What was last written for each message in flight, sorted by message id. A round costs
/// O(in flight × log in flight) with no hashing: it runs once per batch of packets.
#[derive(Debug, Default)]
pub(crate) struct InflightRecorder {
    written: Vec<Written>,
}

/// Store changes for one round, and whether they must be durable before sending.
#[derive(Debug, Default)]
pub(crate) struct InflightChanges {
    /// The writes.
    pub(crate) ops: Vec<StoreOp>,
    /// Whether the round's bytes may only leave after these are synced.
    pub(crate) must_sync: bool,
}

impl InflightRecorder {
    /// Treats the current in-flight state as already written (it came from the store).
    pub(crate) fn seed(&mut self, flows: &SessionFlows) {
        self.written = Self::current(flows);
    }

    /// The in-flight messages (only those: the queue can be an offline session's long
    /// backlog), sorted by id.
    fn current(flows: &SessionFlows) -> Vec<Written> {
        let mut current: Vec<Written> = flows
            .outgoing
            .inflight()
            .filter_map(|message| Some((message.id, message.publish.packet_id?, message.state?)))
            .collect();
        current.sort_unstable_by_key(|(id, _, _)| *id);
        current
    }

    /// The writes needed since the last call.
    pub(crate) fn changes(&mut self, client_id: &str, flows: &SessionFlows) -> InflightChanges {
        let mut changes = InflightChanges::default();
        let current = Self::current(flows);
        for &(id, packet_id, state) in &current {
            let unchanged = self
                .written
                .binary_search_by_key(&id, |(written, _, _)| *written)
                .is_ok_and(|at| self.written[at] == (id, packet_id, state));
            if unchanged {
                continue;
            }
            // Only QoS 2 messages are ever in the PUBREC or PUBCOMP states.
            changes.must_sync |= state != InflightState::AwaitingPuback;
            changes.ops.push(StoreOp::PutInflight {
                client_id: client_id.to_owned(),
                seq: id,
                packet_id,
                state,
            });
        }
        self.written = current;
        changes
    }
}

#[cfg(test)]
mod tests {
    use tabmq_protocol::packet::Publish;
    use tabmq_protocol::{PacketId, QoS};

    use super::*;

    fn flows_with(inflight: &[(MessageId, u16, QoS, InflightState)]) -> SessionFlows {
        let mut flows = SessionFlows::default();
        for &(id, packet_id, qos, state) in inflight {
            let mut publish = Publish::new("t", "m", qos);
            publish.packet_id = PacketId::new(packet_id);
            flows.outgoing.restore_inflight(id, publish, state);
        }
        flows
    }

    /// (seq, state) of each write in `changes`.
    fn written(changes: &InflightChanges) -> Vec<(u64, InflightState)> {
        changes
            .ops
            .iter()
            .map(|op| match op {
                StoreOp::PutInflight { seq, state, .. } => (*seq, *state),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_qos1_send_is_written_without_waiting_and_only_once() {
        let mut recorder = InflightRecorder::default();
        let flows = flows_with(&[(1, 1, QoS::AtLeastOnce, InflightState::AwaitingPuback)]);
        let changes = recorder.changes("c", &flows);
        assert_eq!(written(&changes), [(1, InflightState::AwaitingPuback)]);
        assert!(!changes.must_sync, "a lost QoS 1 record only means a duplicate");
        assert!(recorder.changes("c", &flows).ops.is_empty(), "unchanged since");
    }

    #[test]
    fn qos2_states_must_be_durable_before_the_bytes_leave() {
        let mut recorder = InflightRecorder::default();
        let sent = flows_with(&[(5, 9, QoS::ExactlyOnce, InflightState::AwaitingPubrec)]);
        let changes = recorder.changes("c", &sent);
        assert!(changes.must_sync, "the packet id a resend must reuse");
        let released = flows_with(&[(5, 9, QoS::ExactlyOnce, InflightState::AwaitingPubcomp)]);
        let changes = recorder.changes("c", &released);
        assert_eq!(written(&changes), [(5, InflightState::AwaitingPubcomp)]);
        assert!(
            changes.must_sync,
            "PUBREL sent: a restart resends PUBREL, not the message"
        );
    }

    #[test]
    fn a_seeded_window_is_not_written_again_and_new_sends_are() {
        let stored = flows_with(&[
            (1, 1, QoS::AtLeastOnce, InflightState::AwaitingPuback),
            (2, 2, QoS::ExactlyOnce, InflightState::AwaitingPubrec),
        ]);
        let mut recorder = InflightRecorder::default();
        recorder.seed(&stored);
        assert!(recorder.changes("c", &stored).ops.is_empty());
        let grown = flows_with(&[
            (1, 1, QoS::AtLeastOnce, InflightState::AwaitingPuback),
            (2, 2, QoS::ExactlyOnce, InflightState::AwaitingPubrec),
            (3, 3, QoS::AtLeastOnce, InflightState::AwaitingPuback),
        ]);
        assert_eq!(
            written(&recorder.changes("c", &grown)),
            [(3, InflightState::AwaitingPuback)]
        );
    }
}
