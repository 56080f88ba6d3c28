//! Outgoing QoS bookkeeping: the send queue, the in-flight window and packet ids.
//!
//! Both ends of a connection send PUBLISH packets that the other acknowledges, so the
//! client and the server state machines share this type. Messages wait in a queue
//! until the peer's receive maximum leaves room, then get a packet id and stay in
//! flight, in send order, until the last acknowledgement of their QoS arrives.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::packet::{Packet, PubResponse, Publish};
use crate::qos::{PacketId, QoS};
use crate::reason::ReasonCode;

/// Identifies a message handed to [`OutgoingFlows::enqueue`] until it completes.
pub type MessageId = u64;

/// Where a QoS 1/2 message in flight stands in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InflightState {
    /// QoS 1 PUBLISH sent; waiting for PUBACK.
    AwaitingPuback,
    /// QoS 2 PUBLISH sent; waiting for PUBREC.
    AwaitingPubrec,
    /// PUBREL sent; waiting for PUBCOMP. The peer owns the message now.
    AwaitingPubcomp,
}

/// A message waiting to be sent, or in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMessage {
    /// Caller's handle for this message.
    pub id: MessageId,
    /// The PUBLISH, with its packet id once one is assigned.
    pub publish: Publish,
    /// Handshake position; `None` while still queued.
    pub state: Option<InflightState>,
}

/// What an acknowledgement did to the outgoing flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    /// The message's handshake is complete (successfully or refused, per `reason`).
    Completed {
        /// The message's handle.
        id: MessageId,
        /// The peer's reason code; an error code means the peer refused the message.
        reason: ReasonCode,
    },
    /// PUBREC accepted: send PUBREL for this packet id.
    SendPubrel(PacketId),
    /// The acknowledgement named no message in the matching state; ignored.
    Unknown,
}

/// The send queue and in-flight window of one direction of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingFlows {
    next_message_id: MessageId,
    next_packet_id: u16,
    /// In send order.
    inflight: VecDeque<OutgoingMessage>,
    queued: VecDeque<OutgoingMessage>,
}

impl OutgoingFlows {
    /// Queues `publish` (any QoS; its packet id is ignored) and returns its handle.
    pub fn enqueue(&mut self, mut publish: Publish) -> MessageId {
        self.next_message_id += 1;
        publish.packet_id = None;
        publish.dup = false;
        self.queued.push_back(OutgoingMessage {
            id: self.next_message_id,
            publish,
            state: None,
        });
        self.next_message_id
    }

    /// Queues `publish` under a handle the caller chose (a broker uses its storage
    /// sequence number). Handles must be unique and increasing.
    pub fn enqueue_as(&mut self, id: MessageId, mut publish: Publish) {
        self.next_message_id = self.next_message_id.max(id);
        publish.packet_id = None;
        publish.dup = false;
        self.queued.push_back(OutgoingMessage {
            id,
            publish,
            state: None,
        });
    }

    /// Puts back a message that was in flight when the session was saved, with its
    /// packet id and handshake state, so it is resent with DUP (or PUBREL) on resume.
    /// Call in the original send order, before any [`OutgoingFlows::enqueue_as`].
    pub fn restore_inflight(&mut self, id: MessageId, publish: Publish, state: InflightState) {
        self.next_message_id = self.next_message_id.max(id);
        self.inflight.push_back(OutgoingMessage {
            id,
            publish,
            state: Some(state),
        });
    }

    /// Number of QoS 1/2 messages in flight.
    pub fn inflight_len(&self) -> usize {
        self.inflight.len()
    }

    /// Number of messages waiting to be sent.
    pub fn queued_len(&self) -> usize {
        self.queued.len()
    }

    /// Messages in flight, in send order.
    pub fn inflight(&self) -> impl Iterator<Item = &OutgoingMessage> {
        self.inflight.iter()
    }

    /// Messages in flight (send order) then queued ones.
    pub fn iter(&self) -> impl Iterator<Item = &OutgoingMessage> {
        self.inflight.iter().chain(self.queued.iter())
    }

    /// Whether `id` is used by a message in flight.
    pub fn uses_packet_id(&self, id: u16) -> bool {
        self.inflight
            .iter()
            .any(|m| m.publish.packet_id.map(PacketId::get) == Some(id))
    }

    /// Takes the next queued message that the window allows, assigning a packet id
    /// for QoS 1/2. `window` is the peer's receive maximum; `maximum_qos` the highest
    /// QoS the peer accepts (higher ones are sent at it, as v5 prescribes);
    /// `other_in_use` reports packet ids taken by something else (SUBSCRIBE,
    /// UNSUBSCRIBE). Call until `None`.
    pub fn next_to_send(
        &mut self,
        window: u16,
        maximum_qos: QoS,
        other_in_use: impl Fn(u16) -> bool,
    ) -> Option<(MessageId, Publish)> {
        let front = self.queued.front_mut()?;
        front.publish.qos = front.publish.qos.min(maximum_qos);
        if front.publish.qos == QoS::AtMostOnce {
            let message = self.queued.pop_front()?;
            return Some((message.id, message.publish));
        }
        if self.inflight.len() >= usize::from(window) {
            return None;
        }
        let packet_id = self.allocate_packet_id(other_in_use)?;
        let mut message = self.queued.pop_front()?;
        message.publish.packet_id = Some(packet_id);
        message.state = Some(match message.publish.qos {
            QoS::ExactlyOnce => InflightState::AwaitingPubrec,
            _ => InflightState::AwaitingPuback,
        });
        let sent = (message.id, message.publish.clone());
        self.inflight.push_back(message);
        Some(sent)
    }

    /// A free packet id, searching upwards from the last one given; `None` if all are taken.
    pub fn allocate_packet_id(&mut self, other_in_use: impl Fn(u16) -> bool) -> Option<PacketId> {
        for _ in 0..u16::MAX {
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            let candidate = self.next_packet_id;
            if !self.uses_packet_id(candidate) && !other_in_use(candidate) {
                return PacketId::new(candidate);
            }
        }
        None
    }

    fn position(&self, packet_id: PacketId, state: InflightState) -> Option<usize> {
        self.inflight
            .iter()
            .position(|m| m.publish.packet_id == Some(packet_id) && m.state == Some(state))
    }

    fn complete(&mut self, index: usize, reason: ReasonCode) -> AckOutcome {
        match self.inflight.remove(index) {
            Some(message) => AckOutcome::Completed {
                id: message.id,
                reason,
            },
            None => AckOutcome::Unknown,
        }
    }

    /// Removes the message in flight under `packet_id` without an acknowledgement
    /// (it could not be sent), returning its handle.
    pub fn remove(&mut self, packet_id: PacketId) -> Option<MessageId> {
        let index = self
            .inflight
            .iter()
            .position(|m| m.publish.packet_id == Some(packet_id))?;
        self.inflight.remove(index).map(|message| message.id)
    }

    /// Handles PUBACK.
    pub fn on_puback(&mut self, ack: &PubResponse) -> AckOutcome {
        match self.position(ack.packet_id, InflightState::AwaitingPuback) {
            Some(index) => self.complete(index, ack.reason),
            None => AckOutcome::Unknown,
        }
    }

    /// Handles PUBREC: a refusal ends the message; success moves it on to PUBREL.
    /// A repeated PUBREC for a message already released gets its PUBREL again.
    pub fn on_pubrec(&mut self, ack: &PubResponse) -> AckOutcome {
        if let Some(index) = self.position(ack.packet_id, InflightState::AwaitingPubrec) {
            if ack.reason.is_error() {
                return self.complete(index, ack.reason);
            }
            self.inflight[index].state = Some(InflightState::AwaitingPubcomp);
            return AckOutcome::SendPubrel(ack.packet_id);
        }
        if self
            .position(ack.packet_id, InflightState::AwaitingPubcomp)
            .is_some()
        {
            return AckOutcome::SendPubrel(ack.packet_id);
        }
        AckOutcome::Unknown
    }

    /// Handles PUBCOMP. The message is delivered whatever its reason code: the peer took
    /// it over with PUBREC, and PUBCOMP's only other code, 0x92 (packet identifier not
    /// found), is what a peer answers to a PUBREL resent after it already completed the
    /// handshake ("not an error during recovery", MQTT 5 section 3.7.2.1).
    pub fn on_pubcomp(&mut self, ack: &PubResponse) -> AckOutcome {
        match self.position(ack.packet_id, InflightState::AwaitingPubcomp) {
            Some(index) => self.complete(index, ReasonCode::Success),
            None => AckOutcome::Unknown,
        }
    }

    /// The packets to send again on a connection that resumed this session, in the
    /// original order: PUBLISH with DUP set, or PUBREL for released QoS 2 messages.
    pub fn resend(&self) -> Vec<Packet> {
        self.inflight
            .iter()
            .filter_map(|message| {
                let packet_id = message.publish.packet_id?;
                match message.state? {
                    InflightState::AwaitingPubcomp => Some(Packet::Pubrel(PubResponse::success(packet_id))),
                    InflightState::AwaitingPuback | InflightState::AwaitingPubrec => {
                        let mut publish = message.publish.clone();
                        publish.dup = true;
                        Some(Packet::Publish(publish))
                    }
                }
            })
            .collect()
    }

    /// The peer has no session for us (session present = 0): its packet ids mean nothing.
    ///
    /// Messages it never acknowledged go back to the front of the queue, in order, to
    /// be sent afresh (no DUP, new packet ids). Released QoS 2 messages (PUBREL sent)
    /// had already passed to the peer, so they are complete; their handles are returned.
    pub fn restart_without_session(&mut self) -> Vec<MessageId> {
        let mut released = Vec::new();
        while let Some(mut message) = self.inflight.pop_back() {
            if message.state == Some(InflightState::AwaitingPubcomp) {
                released.push(message.id);
                continue;
            }
            message.state = None;
            message.publish.packet_id = None;
            message.publish.dup = false;
            self.queued.push_front(message);
        }
        released.reverse();
        released
    }

    /// Keeps the queued (not in flight) messages for which `keep` returns true, letting
    /// it edit them; returns the handles of those removed.
    pub fn retain_queued(&mut self, mut keep: impl FnMut(&mut OutgoingMessage) -> bool) -> Vec<MessageId> {
        let mut removed = Vec::new();
        self.queued.retain_mut(|message| {
            let kept = keep(message);
            if !kept {
                removed.push(message.id);
            }
            kept
        });
        removed
    }

    /// Drops every message, in flight or queued (clean start), returning their handles.
    pub fn clear(&mut self) -> Vec<MessageId> {
        self.inflight
            .drain(..)
            .chain(self.queued.drain(..))
            .map(|m| m.id)
            .collect()
    }
}
