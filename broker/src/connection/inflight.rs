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
