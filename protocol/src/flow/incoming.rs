//! Incoming QoS 2 bookkeeping: which packet ids were received and await PUBREL.
//!
//! Exactly-once delivery rests on this set: a QoS 2 PUBLISH whose packet id is
//! already here is a resend of a message already delivered, so it is acknowledged
//! again but not delivered again.

use serde::{Deserialize, Serialize};

use crate::qos::PacketId;

/// Packet ids of QoS 2 messages received and not yet released by PUBREL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingQos2 {
    /// Ascending. A sorted list rather than a tree: the set is bounded by the receiver's
    /// Receive Maximum, and a tree would add kilobytes to the browser client's wasm.
    awaiting_release: Vec<PacketId>,
}

impl IncomingQos2 {
    /// Records a QoS 2 PUBLISH; `true` if it is new and must be delivered.
    pub fn on_publish(&mut self, packet_id: PacketId) -> bool {
        match self.awaiting_release.binary_search(&packet_id) {
            Ok(_) => false,
            Err(index) => {
                self.awaiting_release.insert(index, packet_id);
                true
            }
        }
    }

    /// Handles PUBREL; `true` if the packet id was awaiting release.
    pub fn on_pubrel(&mut self, packet_id: PacketId) -> bool {
        match self.awaiting_release.binary_search(&packet_id) {
            Ok(index) => {
                self.awaiting_release.remove(index);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether a message with this packet id was received and not yet released.
    pub fn contains(&self, packet_id: PacketId) -> bool {
        self.awaiting_release.binary_search(&packet_id).is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u16) -> PacketId {
        PacketId::new(n).expect("non-zero")
    }

    #[test]
    fn a_packet_id_is_new_once_until_released() {
        let mut set = IncomingQos2::default();
        for n in [9, 2, 65_535, 5] {
            assert!(set.on_publish(id(n)), "{n} is new");
        }
        assert!(!set.on_publish(id(2)), "a resend is not delivered again");
        assert_eq!(
            set.iter().map(PacketId::get).collect::<Vec<_>>(),
            [2, 5, 9, 65_535]
        );
        assert!(set.on_pubrel(id(5)));
        assert!(!set.on_pubrel(id(5)), "released once");
        assert!(!set.contains(id(5)) && set.contains(id(9)));
        assert!(set.on_publish(id(5)), "a released id is new again");
        assert_eq!(set.len(), 4);
    }
}
