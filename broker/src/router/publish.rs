//! Routing: from one PUBLISH to every session that subscribes to its topic.

use std::sync::Arc;

use tabmq_protocol::packet::Publish;
use tabmq_protocol::{QoS, ReasonCode};

use super::session::Outstanding;
use super::subscriptions::{ShareGroup, Subscriber};
use super::{Batch, ConnectionId, HashMap, Reach, Router, ToConnection};
use crate::clock::unix_millis;
use crate::cluster::{DurableMessage, session_seq};
use crate::config::QueueFullPolicy;
use crate::metrics::Metrics;
use crate::store::{StoreOp, StoredMessage};
use tabmq_protocol::topic::{self, SharedFilter};

/// How many of the latest cluster messages a node remembers for sessions moving to it.
const RECENT_MESSAGES: usize = 10_000;

/// Topics under this prefix carry the broker's own counters and are not stored.
pub(super) const SYS_PREFIX: &str = "$SYS/";

/// What one session gets of a message: the best of its matching subscriptions.
#[derive(Debug, Default)]
struct Target {
    qos: QoS,
    identifiers: Vec<u32>,
    retain_as_published: bool,
}

impl Target {
    fn of(subscriber: &Subscriber) -> Self {
        Self {
            qos: subscriber.options.qos,
            identifiers: subscriber.identifier.into_iter().collect(),
            retain_as_published: subscriber.options.retain_as_published,
        }
    }

    fn merge(&mut self, other: Target) {
        self.qos = self.qos.max(other.qos);
        self.retain_as_published |= other.retain_as_published;
        self.identifiers.extend(other.identifiers);
    }
}

/// Merges the targets of one session into one (a session with several matching
/// filters gets the message once). A list sorted by client id, not a map: most messages
/// reach one session, which then costs no hashing and no table.
fn merge_by_session(targets: &mut Vec<(Arc<str>, Target)>) {
    if targets.len() > 1 {
        targets.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        targets.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1.merge(std::mem::take(&mut later.1));
            }
            same
        });
    }
}

/// The member of a share group whose turn it is (an online one if any), the turn passed on.
fn member_in_turn(
    group: &mut ShareGroup,
    sessions: &HashMap<Arc<str>, Box<super::session::Session>>,
) -> Option<(Arc<str>, Target)> {
    let online = |(id, _): &&(Arc<str>, Subscriber)| sessions.get(id).is_some_and(|s| s.link.is_some());
    let (client_id, subscriber) = group
        .in_turn()
        .find(online)
        .or_else(|| group.in_turn().next())
        .cloned()?;
    group.advance_past(&client_id);
    Some((client_id, Target::of(&subscriber)))
}

/// Whether the share group `shared` (`$share/group/filter`) wants a message on `topic`:
/// one from the cluster reached it by NATS wildcards, which also reach `$` topics that
/// MQTT's leading wildcards do not.
pub(super) fn group_wants(shared: &str, topic: &str) -> bool {
    SharedFilter::parse(shared)
        .ok()
        .flatten()
        .is_some_and(|parsed| topic::matches(parsed.filter, topic))
}

/// A copy of a published message, made into what one subscriber receives.
pub(super) fn tailored(mut out: Publish, qos: QoS, retain: bool, identifiers: Vec<u32>) -> Publish {
    out.qos = out.qos.min(qos);
    out.retain = retain;
    out.dup = false;
    out.packet_id = None;
    out.properties.edit_if_any(|p| {
        p.topic_alias = None;
        p.subscription_identifiers.clear();
    });
    if !identifiers.is_empty() {
        out.properties.subscription_identifiers = identifiers;
    }
    out
}

impl Router {
    pub(super) fn publish_from_client(
        &mut self,
        connection: ConnectionId,
        client_id: &Arc<str>,
        publish: Publish,
        batch: &mut Batch,
    ) {
        let Some(link) = self.link_of(client_id, connection).cloned() else {
            return;
        };
        Metrics::inc(self.metrics.messages_in(publish.qos));
        let packet_id = publish.packet_id;
        let qos = publish.qos;
        if let Some(packet_id) = packet_id
            && self.storage_failing()
            && self.needs_storage(&publish, client_id)
        {
            // Not routed: acknowledging it would promise what cannot be stored.
            let reason = ReasonCode::ImplementationSpecificError;
            batch.send(&link, ToConnection::Acked { packet_id, reason });
            return;
        }
        // Who may publish where (`$` topics included) was decided by the connection.
        let matched = self.share_in_cluster(&publish, Some(client_id), batch) || {
            let reach = self.local_reach();
            self.route(publish, Some(client_id), &reach, None, batch)
        };
        // A cluster node does not know the other nodes' subscribers.
        let reason = if matched || self.cluster.is_some() {
            ReasonCode::Success
        } else {
            ReasonCode::NoMatchingSubscribers
        };
        let Some(packet_id) = packet_id else { return };
        if qos == QoS::ExactlyOnce
            && !reason.is_error()
            && self.sessions.get(client_id).is_some_and(|s| s.stored)
        {
            batch.ops.push(StoreOp::PutIncoming {
                client_id: client_id.to_string(),
                packet_id,
            });
        }
        batch.send(&link, ToConnection::Acked { packet_id, reason });
    }

    /// In cluster mode, hands a message published on this node to the cluster: QoS 1/2
    /// ones go to the cluster's stream with this batch's commit, and come back to this
    /// node, as to every node, from there (`true`: it is handed over).
    /// Everything goes to the other nodes directly too (for QoS 0, share groups and
    /// retained messages).
    pub(super) fn share_in_cluster(
        &mut self,
        publish: &Publish,
        origin: Option<&Arc<str>>,
        batch: &mut Batch,
    ) -> bool {
        let Some(cluster) = &self.cluster else {
            return false;
        };
        cluster.forward(publish);
        if publish.qos == QoS::AtMostOnce {
            return false;
        }
        let expires_at_ms = publish
            .properties
            .message_expiry_interval
            .map(|secs| unix_millis() + u64::from(secs) * 1000);
        self.next_share_id += 1;
        batch.ops.push(StoreOp::ShareMessage {
            message: StoredMessage {
                publish: publish.clone(),
                expires_at_ms,
            },
            origin: origin.map(ToString::to_string),
            id: self.next_share_id,
        });
        true
    }

    /// Routes a QoS 1/2 message of the cluster's stream to this node's sessions (ordinary
    /// subscriptions: share groups get it directly from its node).
    pub(super) fn route_from_stream(&mut self, message: DurableMessage, batch: &mut Batch) {
        // The stream gives a message again when its acknowledgement came late (a node
        // slower than the stream's patience); routed already, it is only acknowledged.
        if self.recent_seqs.contains(&message.seq) {
            return;
        }
        self.stream_position = self.stream_position.max(message.seq);
        if self.recent.len() == RECENT_MESSAGES
            && let Some(oldest) = self.recent.pop_front()
        {
            self.recent_seqs.remove(&oldest.seq);
        }
        self.recent_seqs.insert(message.seq);
        self.recent.push_back(message.clone());
        let DurableMessage { seq, publish, origin } = message;
        self.route(publish, origin.as_ref(), &Reach::Ordinary, Some(seq), batch);
    }

    /// Routes a message of the cluster's stream to one session only: one that came from
    /// another node, for the messages it missed while moving. A message it already has
    /// (the same stream sequence) is not given twice.
    pub(super) fn route_to_session(
        &mut self,
        client_id: &Arc<str>,
        message: DurableMessage,
        batch: &mut Batch,
    ) {
        let Some(session) = self.sessions.get(client_id) else {
            return;
        };
        if message.seq <= session.stream_done {
            // Done with already, on the node it moved from.
            return;
        }
        let mut target: Option<Target> = None;
        for subscription in &session.record.subscriptions {
            let no_local = subscription.options.no_local && message.origin.as_ref() == Some(client_id);
            if !SharedFilter::is_shared(&subscription.filter)
                && !no_local
                && topic::matches(&subscription.filter, &message.publish.topic)
            {
                let found = Target::of(&Subscriber {
                    options: subscription.options,
                    identifier: subscription.identifier,
                });
                match &mut target {
                    Some(target) => target.merge(found),
                    None => target = Some(found),
                }
            }
        }
        let Some(target) = target else { return };
        let expires_at = message
            .publish
            .properties
            .message_expiry_interval
            .map(|secs| unix_millis() + u64::from(secs) * 1000);
        self.deliver_target(
            client_id,
            message.publish,
            target,
            expires_at,
            Some(message.seq),
            batch,
        );
    }

    /// Delivers `publish` to every matching session; `true` if any matched.
    /// `origin` is the publishing client, for the no-local option; `stream_seq` the
    /// message's sequence in the cluster's stream, if it came from there.
    pub(super) fn route(
        &mut self,
        publish: Publish,
        origin: Option<&Arc<str>>,
        reach: &Reach,
        stream_seq: Option<u64>,
        batch: &mut Batch,
    ) -> bool {
        let expires_at = publish
            .properties
            .message_expiry_interval
            .map(|secs| unix_millis() + u64::from(secs) * 1000);
        // While storage fails, a retained QoS 0 message is delivered but not retained
        // (QoS 1/2 ones needing storage are refused before routing).
        if publish.retain && !self.storage_failing() {
            let op = self.retained.update(&publish, expires_at);
            if !publish.topic.starts_with(SYS_PREFIX) {
                batch.ops.push(op);
            }
            Metrics::set(&self.metrics.retained_messages, self.retained.len() as u64);
        }
        let mut targets: Vec<(Arc<str>, Target)> = Vec::new();
        {
            let Router {
                subscriptions,
                sessions,
                ..
            } = self;
            if let Reach::Group(shared) = reach {
                if group_wants(shared, &publish.topic)
                    && let Some(group) = subscriptions.share_group_mut(shared)
                {
                    targets.extend(member_in_turn(group, sessions));
                }
            } else {
                let groups = subscriptions.matching(&publish.topic, |client_id, subscriber| {
                    if !(subscriber.options.no_local && origin == Some(client_id)) {
                        targets.push((client_id.clone(), Target::of(subscriber)));
                    }
                });
                if *reach == Reach::All {
                    for group in groups {
                        targets.extend(member_in_turn(group, sessions));
                    }
                }
            }
        }
        merge_by_session(&mut targets);
        let matched = !targets.is_empty();
        if let Some(seq) = stream_seq
            && !matches!(reach, Reach::Group(_))
        {
            // A session that moved here was given the stream's messages up to its floor
            // (its share groups' messages come from their own consumers, not so given).
            targets.retain(|(id, _)| self.sessions.get(id).is_none_or(|s| seq > s.stream_floor));
        }
        // Every target but the last gets a copy; the last gets the message itself.
        let last = targets.pop();
        for (client_id, target) in targets {
            self.deliver_target(&client_id, publish.clone(), target, expires_at, stream_seq, batch);
        }
        if let Some((client_id, target)) = last {
            self.deliver_target(&client_id, publish, target, expires_at, stream_seq, batch);
        }
        matched
    }

    /// Whether routing `publish` (QoS 1/2) from `origin` would write to storage: it is
    /// retained, or a QoS 2 publish of a stored session, or it reaches a stored session at
    /// QoS 1 or 2, or it goes to the cluster's stream.
    fn needs_storage(&mut self, publish: &Publish, origin: &Arc<str>) -> bool {
        let stored = |sessions: &HashMap<Arc<str>, Box<super::session::Session>>, id: &Arc<str>| {
            sessions.get(id).is_some_and(|s| s.stored)
        };
        // A cluster node hands every QoS 1/2 message to the cluster's stream.
        if (publish.retain && !publish.topic.starts_with(SYS_PREFIX))
            || (publish.qos == QoS::ExactlyOnce && stored(&self.sessions, origin))
            || self.cluster.is_some()
        {
            return true;
        }
        let Router {
            subscriptions,
            sessions,
            ..
        } = self;
        let mut needed = false;
        let groups = subscriptions.matching(&publish.topic, |client_id, subscriber| {
            needed |= subscriber.options.qos != QoS::AtMostOnce && stored(sessions, client_id);
        });
        needed
            || groups.into_iter().any(|group| {
                group
                    .in_turn()
                    .any(|(id, sub)| sub.options.qos != QoS::AtMostOnce && stored(sessions, id))
            })
    }

    /// Tailors `publish` for one target session and hands it over.
    fn deliver_target(
        &mut self,
        client_id: &Arc<str>,
        publish: Publish,
        target: Target,
        expires_at: Option<u64>,
        stream_seq: Option<u64>,
        batch: &mut Batch,
    ) {
        let retain = publish.retain && target.retain_as_published;
        let out = tailored(publish, target.qos, retain, target.identifiers);
        self.deliver_to(client_id, out, expires_at, stream_seq, batch);
    }

    /// Hands a message, already tailored for the session, to its connection or queue. A
    /// message of the cluster's stream (`stream_seq`) is kept under a sequence number
    /// made from its own, once.
    pub(super) fn deliver_to(
        &mut self,
        client_id: &Arc<str>,
        out: Publish,
        expires_at: Option<u64>,
        stream_seq: Option<u64>,
        batch: &mut Batch,
    ) {
        let limits = &self.config.limits;
        let metrics = &self.metrics;
        let Some(session) = self.sessions.get_mut(client_id) else {
            return;
        };
        if out.qos == QoS::AtMostOnce {
            match session.link.clone() {
                Some(link)
                    if !link
                        .mailbox
                        .backlog()
                        .is_full(limits.max_backlog, limits.max_backlog_bytes) =>
                {
                    let seq = session.take_seq();
                    batch.send(&link, ToConnection::Deliver { seq, publish: out });
                }
                // QoS 0 is not queued for offline sessions, nor for clients that fall behind.
                Some(_) => {
                    session.dropped += 1;
                    Metrics::inc(&metrics.messages_dropped_total);
                }
                None => {}
            }
            return;
        }
        let seq = match stream_seq {
            Some(stream_seq) => session_seq(stream_seq),
            None => session.take_seq(),
        };
        if session.outstanding.contains_key(&seq) {
            return;
        }
        let bytes = out.payload.len();
        // Like Mosquitto's max_queued_messages, the bound counts messages beyond those in flight.
        let full = session.outstanding.len() >= limits.max_queued_messages + usize::from(limits.max_inflight)
            || session.outstanding_bytes + bytes > limits.max_queued_bytes;
        if full {
            let oldest_queued = session
                .offline
                .outgoing
                .iter()
                .find(|m| m.state.is_none())
                .map(|m| m.id);
            match (limits.queue_full, session.link.is_none(), oldest_queued) {
                (QueueFullPolicy::DropOldest, true, Some(oldest)) => {
                    session.offline.outgoing.retain_queued(|m| m.id != oldest);
                    session.remove_outstanding(oldest);
                    Metrics::dec(&metrics.messages_queued);
                    session.forget_message(oldest, &mut batch.ops);
                }
                _ => {
                    session.dropped += 1;
                    Metrics::inc(&metrics.messages_dropped_total);
                    return;
                }
            }
            session.dropped += 1;
            Metrics::inc(&metrics.messages_dropped_total);
        }
        if session.stored {
            let message = StoredMessage {
                publish: out.clone(),
                expires_at_ms: expires_at,
            };
            batch.ops.push(StoreOp::PutMessage {
                client_id: client_id.to_string(),
                seq,
                message,
            });
        }
        session.add_outstanding(
            seq,
            Outstanding {
                bytes,
                expires_at_ms: expires_at,
            },
        );
        Metrics::inc(&metrics.messages_queued);
        match &session.link {
            Some(link) => batch.send(link, ToConnection::Deliver { seq, publish: out }),
            None => session.offline.outgoing.enqueue_as(seq, out),
        }
    }

    /// A message handed to a connection is done.
    pub(super) fn delivered(&mut self, client_id: &str, seq: u64, batch: &mut Batch) {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return;
        };
        if session.remove_outstanding(seq) {
            Metrics::dec(&self.metrics.messages_queued);
            session.forget_message(seq, &mut batch.ops);
        }
    }
}

#[cfg(test)]
mod tests {
    use tabmq_protocol::QoS;
    use tabmq_protocol::packet::Publish;

    use super::tailored;

    #[test]
    fn a_session_matched_by_several_filters_gets_the_best_of_them_once() {
        let subscriber = |qos, identifier, retain_as_published| {
            super::Target::of(&super::Subscriber {
                options: tabmq_protocol::packet::SubscriptionOptions {
                    qos,
                    retain_as_published,
                    ..Default::default()
                },
                identifier,
            })
        };
        let (a, b): (std::sync::Arc<str>, std::sync::Arc<str>) = ("a".into(), "b".into());
        let mut merged = vec![
            (b.clone(), subscriber(QoS::AtMostOnce, None, false)),
            (a.clone(), subscriber(QoS::AtMostOnce, Some(1), false)),
            (b.clone(), subscriber(QoS::ExactlyOnce, Some(2), true)),
        ];
        super::merge_by_session(&mut merged);
        let summary: Vec<(&str, QoS, Vec<u32>, bool)> = merged
            .iter()
            .map(|(id, t)| (&**id, t.qos, t.identifiers.clone(), t.retain_as_published))
            .collect();
        assert_eq!(
            summary,
            [
                ("a", QoS::AtMostOnce, vec![1], false),
                ("b", QoS::ExactlyOnce, vec![2], true)
            ]
        );
    }

    #[test]
    fn a_message_without_properties_is_tailored_without_allocating_them() {
        let publish = Publish::new("t", "m", QoS::AtLeastOnce);
        let out = tailored(publish.clone(), QoS::AtMostOnce, false, Vec::new());
        assert_eq!(out.qos, QoS::AtMostOnce);
        assert!(
            !out.properties.is_allocated(),
            "one allocation per subscriber for nothing"
        );
        let out = tailored(publish, QoS::AtLeastOnce, false, vec![7]);
        assert_eq!(out.properties.subscription_identifiers, [7]);
    }
}
