//! Persisting where each outgoing QoS 1/2 handshake stands.
//!
//! Exactly-once across a broker crash needs two facts on disk before bytes leave:
//! the packet id a QoS 2 message is sent with (so a resend after restart reuses it
//! and the client recognises the duplicate), and that PUBREL was sent (so the broker
//! resends PUBREL, not the PUBLISH, after restart). QoS 1 ids are recorded without
//! waiting: a lost record only means a duplicate, which QoS 1 allows.

use std::collections::HashMap;

use tabmq_protocol::PacketId;
use tabmq_protocol::flow::{InflightState, MessageId, SessionFlows};

use crate::store::StoreOp;

/// What was last written for each message in flight.
#[derive(Debug, Default)]
pub(crate) struct InflightRecorder {
    written: HashMap<MessageId, (PacketId, InflightState)>,
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
        self.written = Self::current(flows).collect();
    }

    fn current(flows: &SessionFlows) -> impl Iterator<Item = (MessageId, (PacketId, InflightState))> + '_ {
        flows
            .outgoing
            .iter()
            .filter_map(|message| Some((message.id, (message.publish.packet_id?, message.state?))))
    }

    /// The writes needed since the last call.
    pub(crate) fn changes(&mut self, client_id: &str, flows: &SessionFlows) -> InflightChanges {
        let mut changes = InflightChanges::default();
        let mut still_in_flight = HashMap::with_capacity(self.written.len());
        for (id, (packet_id, state)) in Self::current(flows) {
            still_in_flight.insert(id, (packet_id, state));
            if self.written.get(&id) == Some(&(packet_id, state)) {
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
        self.written = still_in_flight;
        changes
    }
}
