//! Once a second: expire sessions, publish due wills, publish `$SYS/` counters.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tabmq_protocol::QoS;
use tabmq_protocol::packet::Publish;
use tracing::info;

use super::publish::SYS_PREFIX;
use super::{Batch, Reach, Router};
use crate::clock::unix_millis;
use crate::metrics::Metrics;
use crate::store::StoreOp;

/// `$SYS/` counters are published every this many ticks.
const SYS_EVERY_TICKS: u64 = 10;

impl Router {
    pub(super) fn tick(&mut self, batch: &mut Batch) {
        let now_ms = unix_millis();
        let expired: Vec<Arc<str>> = self
            .sessions
            .values()
            .filter(|s| s.link.is_none() && s.record.expires_at_ms.is_some_and(|at| at <= now_ms))
            .map(|s| s.client_id.clone())
            .collect();
        for client_id in expired {
            if let Some(mut session) = self.sessions.remove(&client_id) {
                info!(%client_id, "session expired");
                let will = session.record.pending_will.take().map(|(will, _)| will);
                self.end_session(session, will, batch);
            }
        }
        let due: Vec<Arc<str>> = self
            .sessions
            .values()
            .filter(|s| {
                s.link.is_none()
                    && s.record
                        .pending_will
                        .as_ref()
                        .is_some_and(|(_, at)| *at <= now_ms)
            })
            .map(|s| s.client_id.clone())
            .collect();
        for client_id in due {
            let Some(session) = self.sessions.get_mut(&client_id) else {
                continue;
            };
            let Some((will, _)) = session.record.pending_will.take() else {
                continue;
            };
            let record = session.record.clone();
            batch.ops.push(StoreOp::PutSession {
                client_id: client_id.to_string(),
                record: Box::new(record),
            });
            self.publish_will(will, &client_id, batch);
        }
        Metrics::set(&self.metrics.sessions, self.sessions.len() as u64);
        let now = Instant::now();
        self.flap_guard.prune(now);
        self.let_go_at
            .retain(|_, (_, at)| now.duration_since(*at) < super::connect::LET_GO_MEMORY);
        self.ticks += 1;
        if self.ticks.is_multiple_of(SYS_EVERY_TICKS) {
            self.publish_sys(batch);
        }
    }

    /// Publishes every counter as a retained `$SYS/broker/<name>` message.
    fn publish_sys(&mut self, batch: &mut Batch) {
        for (name, _, _, value) in self.metrics.values() {
            let topic = format!("{SYS_PREFIX}broker/{name}");
            let publish = Publish {
                retain: true,
                ..Publish::new(topic, Bytes::from(value.to_string()), QoS::AtMostOnce)
            };
            self.route(publish, None, &Reach::All, None, batch);
        }
    }
}
