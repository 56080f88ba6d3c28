//! SUBSCRIBE and UNSUBSCRIBE: the index, the stored record, and retained messages.

use std::sync::Arc;

use tabmq_protocol::packet::{RetainHandling, Suback, Subscribe, Unsuback, Unsubscribe};
use tabmq_protocol::topic::SharedFilter;
use tabmq_protocol::{Properties, ReasonCode};

use super::publish::tailored;
use super::subscriptions::Subscriber;
use super::{Batch, ConnectionId, Router, ToConnection};
use crate::clock::unix_millis;
use crate::store::{StoreOp, StoredSubscription};

impl Router {
    pub(super) fn subscribe(
        &mut self,
        connection: ConnectionId,
        client_id: &Arc<str>,
        subscribe: Box<Subscribe>,
        denied: &[bool],
        batch: &mut Batch,
    ) {
        let Some(link) = self.link_of(client_id, connection).cloned() else {
            return;
        };
        if self.storage_failing() && self.sessions.get(client_id).is_some_and(|s| s.stored) {
            // A stored session's subscriptions are stored: none is granted while storage fails.
            let suback = Suback {
                packet_id: subscribe.packet_id,
                properties: Properties::default(),
                reasons: vec![ReasonCode::UnspecifiedError; subscribe.subscriptions.len()],
            };
            batch.send(&link, ToConnection::Suback(Box::new(suback)));
            return;
        }
        let now_ms = unix_millis();
        let max_subscriptions = self.config.limits.max_subscriptions_per_session;
        let identifier = subscribe.properties.subscription_identifiers.first().copied();
        let mut reasons = Vec::with_capacity(subscribe.subscriptions.len());
        let mut retained = Vec::new();
        for (index, request) in subscribe.subscriptions.into_iter().enumerate() {
            if denied.get(index).copied().unwrap_or(false) {
                // 3.1.1's SUBACK carries it as 0x80, failure.
                reasons.push(ReasonCode::NotAuthorized);
                continue;
            }
            let Some(session) = self.sessions.get_mut(client_id) else {
                return;
            };
            let subscriptions = &mut session.record.subscriptions;
            let existing = subscriptions.iter().position(|s| s.filter == request.filter);
            if existing.is_none() && subscriptions.len() >= max_subscriptions {
                reasons.push(ReasonCode::QuotaExceeded);
                continue;
            }
            let stored = StoredSubscription {
                filter: request.filter.clone(),
                options: request.options,
                identifier,
            };
            match existing {
                Some(index) => subscriptions[index] = stored,
                None => subscriptions.push(stored),
            }
            let subscriber = Subscriber {
                options: request.options,
                identifier,
            };
            let existed = self.subscriptions.add(client_id, &request.filter, subscriber);
            reasons.push(ReasonCode::granted(request.options.qos));
            let shared = SharedFilter::is_shared(&request.filter);
            let send_retained = match request.options.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendIfNew => !existed,
                RetainHandling::DoNotSend => false,
            };
            if send_retained && !shared {
                let (messages, expired) = self.retained.matching(&request.filter, now_ms);
                batch.ops.extend(expired);
                for message in messages {
                    // Retained messages sent because of a subscription keep RETAIN set.
                    retained.push(tailored(
                        message,
                        request.options.qos,
                        true,
                        identifier.into_iter().collect(),
                    ));
                }
            }
        }
        self.store_record(client_id, batch);
        let suback = Suback {
            packet_id: subscribe.packet_id,
            properties: Properties::default(),
            reasons,
        };
        batch.send(&link, ToConnection::Suback(Box::new(suback)));
        for message in retained {
            let expires_at = message
                .properties
                .message_expiry_interval
                .map(|secs| now_ms + u64::from(secs) * 1000);
            self.deliver_to(client_id, message, expires_at, None, batch);
        }
    }

    pub(super) fn unsubscribe(
        &mut self,
        connection: ConnectionId,
        client_id: &Arc<str>,
        unsubscribe: Box<Unsubscribe>,
        batch: &mut Batch,
    ) {
        let Some(link) = self.link_of(client_id, connection).cloned() else {
            return;
        };
        let mut reasons = Vec::with_capacity(unsubscribe.filters.len());
        for filter in &unsubscribe.filters {
            let removed = self.subscriptions.remove(client_id, filter);
            if let Some(session) = self.sessions.get_mut(client_id) {
                session.record.subscriptions.retain(|s| &s.filter != filter);
            }
            reasons.push(if removed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        self.store_record(client_id, batch);
        let unsuback = Unsuback {
            packet_id: unsubscribe.packet_id,
            properties: Properties::default(),
            reasons,
        };
        batch.send(&link, ToConnection::Unsuback(Box::new(unsuback)));
    }

    /// Writes the session's record if the session is a stored one.
    fn store_record(&self, client_id: &Arc<str>, batch: &mut Batch) {
        if let Some(session) = self.sessions.get(client_id).filter(|s| s.stored) {
            batch.ops.push(StoreOp::PutSession {
                client_id: client_id.to_string(),
                record: Box::new(session.record_to_store(self.cluster.is_some())),
            });
        }
    }
}
