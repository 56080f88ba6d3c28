//! Received messages from arrival to acknowledgement.
//!
//! The delivery promise rests here: a QoS 1/2 message is acknowledged (PUBACK, or PUBREC
//! once its packet id is saved) only after the app's handlers have settled, and
//! acknowledgements leave in arrival order (MQTT-4.6.0-2). Messages are handed to the app
//! one at a time, in arrival order: a handler that returns a promise holds the next
//! message, and the acknowledgement, until it settles (back-pressure).
//!
//! If the page dies before the acknowledgement, the broker keeps the message and sends it
//! again (DUP) to the next page: delivered at least once, with nothing written to
//! IndexedDB on the receive path except a QoS 2 packet id just before its PUBREC. While
//! the page lives, a resend of a message it holds is recognised by its packet id and not
//! handed over twice.
//!
//! [`message_id`] gives each message an id that is the same for every redelivery, so an
//! app can deduplicate those (flagged `duplicate`, the PUBLISH's DUP flag).

use std::collections::VecDeque;

use tabmq_protocol::packet::Publish;
use tabmq_protocol::{PacketId, QoS};

use super::io::{DeliveryId, Received};

/// Where a received message is.
#[derive(Debug)]
enum Stage {
    /// Not yet handed to the app.
    Waiting(Received),
    /// Handed over; its handlers have not settled.
    Handling,
    /// Handled; the acknowledgement is due.
    Handled,
}

#[derive(Debug)]
struct Entry {
    delivery: DeliveryId,
    /// The acknowledgement it needs, if any (QoS 1/2 of a session the broker still holds).
    ack: Option<(PacketId, QoS)>,
    /// Handled while disconnected: its acknowledgement goes out after a reconnect, when
    /// the broker may already be resending it.
    late: bool,
    stage: Stage,
}

/// Received messages not yet acknowledged, in arrival order.
#[derive(Debug, Default)]
pub struct Inbox {
    entries: VecDeque<Entry>,
    next_delivery: DeliveryId,
    /// QoS 1 packet ids acknowledged late on this connection: a DUP resend of one is
    /// acknowledged again, not delivered again.
    acked_late: Vec<PacketId>,
}

/// An id for `publish` that every resend of it shares: FNV-1a (64 bits) over its packet
/// id, QoS, topic and payload, in hex.
pub fn message_id(publish: &Publish) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let packet_id = publish.packet_id.map_or(0, PacketId::get).to_be_bytes();
    let parts: [&[u8]; 4] = [
        &packet_id,
        &[publish.qos.bits()],
        publish.topic.as_bytes(),
        &publish.payload,
    ];
    for part in parts {
        for byte in part {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        hash = (hash ^ 0xff).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

impl Inbox {
    /// A message arrived. A resend of one still held here is dropped (it is handed over,
    /// and acknowledged, once); a resend of one acknowledged late is acknowledged again.
    pub fn receive(&mut self, publish: Publish) {
        let ack = publish
            .packet_id
            .filter(|_| publish.qos != QoS::AtMostOnce)
            .map(|id| (id, publish.qos));
        if let Some((packet_id, qos)) = ack {
            if self
                .entries
                .iter()
                .any(|entry| entry.ack == Some((packet_id, qos)))
            {
                return;
            }
            if let Some(index) = self.acked_late.iter().position(|id| *id == packet_id)
                && publish.dup
                && qos == QoS::AtLeastOnce
            {
                self.acked_late.swap_remove(index);
                self.push(ack, Stage::Handled);
                return;
            }
        }
        let id = message_id(&publish);
        self.push(ack, Stage::Waiting(Received { publish, id }));
    }

    fn push(&mut self, ack: Option<(PacketId, QoS)>, stage: Stage) {
        self.next_delivery += 1;
        self.entries.push_back(Entry {
            delivery: self.next_delivery,
            ack,
            late: false,
            stage,
        });
    }

    /// The next message to hand to the app, unless one is being handled.
    pub fn next_delivery(&mut self) -> Option<(DeliveryId, Received)> {
        if self
            .entries
            .iter()
            .any(|entry| matches!(entry.stage, Stage::Handling))
        {
            return None;
        }
        let entry = self
            .entries
            .iter_mut()
            .find(|entry| matches!(entry.stage, Stage::Waiting(_)))?;
        match std::mem::replace(&mut entry.stage, Stage::Handling) {
            Stage::Waiting(received) => Some((entry.delivery, received)),
            _ => None,
        }
    }

    /// The handlers of `delivery` settled; `connected` tells whether its acknowledgement
    /// can go out on this connection.
    pub fn handled(&mut self, delivery: DeliveryId, connected: bool) {
        if let Some(entry) = self.entries.iter_mut().find(|entry| entry.delivery == delivery) {
            entry.stage = Stage::Handled;
            entry.late = !connected;
        }
    }

    /// The acknowledgements due now, in arrival order: those of the handled messages at
    /// the front. Call only while connected.
    pub fn take_acks(&mut self) -> Vec<(PacketId, QoS)> {
        let mut acks = Vec::new();
        while let Some(entry) = self.entries.front() {
            if !matches!(entry.stage, Stage::Handled) {
                break;
            }
            let entry = self.entries.pop_front().expect("front exists");
            if let Some((packet_id, qos)) = entry.ack {
                if entry.late && qos == QoS::AtLeastOnce {
                    self.acked_late.push(packet_id);
                }
                acks.push((packet_id, qos));
            }
        }
        acks
    }

    /// A connection was accepted. Without a session present the broker forgot every
    /// message it sent us: nothing held is acknowledged any more (the app still gets each).
    pub fn connected(&mut self, session_present: bool) {
        if !session_present {
            for entry in &mut self.entries {
                entry.ack = None;
            }
        }
    }

    /// The connection ended: handled messages now wait for the next one to be acknowledged.
    pub fn disconnected(&mut self) {
        self.acked_late.clear();
        for entry in &mut self.entries {
            if matches!(entry.stage, Stage::Handled) {
                entry.late = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(packet_id: u16, qos: QoS, text: &str) -> Publish {
        let mut publish = Publish::new("t", text.as_bytes().to_vec(), qos);
        publish.packet_id = PacketId::new(packet_id);
        publish
    }

    fn id(n: u16) -> PacketId {
        PacketId::new(n).expect("non-zero")
    }

    #[test]
    fn messages_are_handed_over_one_at_a_time_and_acknowledged_in_arrival_order() {
        let mut inbox = Inbox::default();
        inbox.receive(publish(1, QoS::AtLeastOnce, "a"));
        inbox.receive(publish(0, QoS::AtMostOnce, "b"));
        inbox.receive(publish(2, QoS::ExactlyOnce, "c"));
        let (first, message) = inbox.next_delivery().expect("a first");
        assert_eq!(message.publish.payload.as_ref(), b"a");
        assert!(inbox.next_delivery().is_none(), "held while the handler runs");
        assert!(inbox.take_acks().is_empty(), "no ack before the handler settles");
        inbox.handled(first, true);
        assert_eq!(inbox.take_acks(), [(id(1), QoS::AtLeastOnce)]);
        let (second, _) = inbox.next_delivery().expect("b next");
        let (third, _) = {
            inbox.handled(second, true);
            inbox.next_delivery().expect("c last")
        };
        inbox.handled(third, true);
        assert_eq!(inbox.take_acks(), [(id(2), QoS::ExactlyOnce)]);
    }

    #[test]
    fn a_resend_of_a_held_message_is_not_handed_over_twice() {
        let mut inbox = Inbox::default();
        inbox.receive(publish(7, QoS::ExactlyOnce, "x"));
        let (delivery, _) = inbox.next_delivery().expect("x");
        inbox.disconnected();
        let mut resend = publish(7, QoS::ExactlyOnce, "x");
        resend.dup = true;
        inbox.receive(resend);
        inbox.handled(delivery, true);
        assert!(inbox.next_delivery().is_none());
        assert_eq!(inbox.take_acks(), [(id(7), QoS::ExactlyOnce)]);
    }

    #[test]
    fn a_late_qos1_ack_answers_a_later_resend_without_a_second_delivery() {
        let mut inbox = Inbox::default();
        inbox.receive(publish(3, QoS::AtLeastOnce, "y"));
        let (delivery, _) = inbox.next_delivery().expect("y");
        inbox.disconnected();
        inbox.handled(delivery, false);
        inbox.connected(true);
        assert_eq!(inbox.take_acks(), [(id(3), QoS::AtLeastOnce)]);
        let mut resend = publish(3, QoS::AtLeastOnce, "y");
        resend.dup = true;
        inbox.receive(resend);
        assert!(inbox.next_delivery().is_none(), "not handed over again");
        assert_eq!(
            inbox.take_acks(),
            [(id(3), QoS::AtLeastOnce)],
            "acknowledged again"
        );
    }

    #[test]
    fn without_a_session_present_held_messages_are_still_delivered_but_not_acknowledged() {
        let mut inbox = Inbox::default();
        inbox.receive(publish(4, QoS::AtLeastOnce, "z"));
        inbox.disconnected();
        inbox.connected(false);
        let (delivery, _) = inbox.next_delivery().expect("z is still handed over");
        inbox.handled(delivery, true);
        assert!(inbox.take_acks().is_empty());
    }

    #[test]
    fn the_message_id_is_the_same_for_a_resend_and_differs_between_messages() {
        let original = publish(9, QoS::ExactlyOnce, "hello");
        let mut resend = original.clone();
        resend.dup = true;
        assert_eq!(message_id(&original), message_id(&resend));
        assert_ne!(
            message_id(&original),
            message_id(&publish(9, QoS::ExactlyOnce, "other"))
        );
        assert_ne!(
            message_id(&original),
            message_id(&publish(10, QoS::ExactlyOnce, "hello"))
        );
        assert_eq!(message_id(&original).len(), 16);
    }
}
