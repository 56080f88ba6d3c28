//! Incoming QoS 2 bookkeeping: which packet ids were received and await PUBREL.
//!
//! Exactly-once delivery rests on this set: a QoS 2 PUBLISH whose packet id is
//! already here is a resend of a message already delivered, so it is acknowledged
//! again but not delivered again.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::qos::PacketId;

/// Packet ids of QoS 2 messages received and not yet released by PUBREL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingQos2 {
    awaiting_release: BTreeSet<PacketId>,
}

impl IncomingQos2 {
    /// Records a QoS 2 PUBLISH; `true` if it is new and must be delivered.
    pub fn on_publish(&mut self, packet_id: PacketId) -> bool {
        self.awaiting_release.insert(packet_id)
    }

    /// Handles PUBREL; `true` if the packet id was awaiting release.
    pub fn on_pubrel(&mut self, packet_id: PacketId) -> bool {
        self.awaiting_release.remove(&packet_id)
    }

    /// Whether a message with this packet id was received and not yet released.
    pub fn contains(&self, packet_id: PacketId) -> bool {
        self.awaiting_release.contains(&packet_id)
    }

    /// Number of messages awaiting PUBREL.
    pub fn len(&self) -> usize {
        self.awaiting_release.len()
    }

    /// Whether nothing awaits PUBREL.
    pub fn is_empty(&self) -> bool {
        self.awaiting_release.is_empty()
    }

    /// Forgets everything (the session ended).
    pub fn clear(&mut self) {
        self.awaiting_release.clear();
    }

    /// Packet ids awaiting PUBREL, ascending.
    pub fn iter(&self) -> impl Iterator<Item = PacketId> + '_ {
        self.awaiting_release.iter().copied()
    }
}
