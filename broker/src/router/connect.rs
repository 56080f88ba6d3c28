//! Sessions coming and going: CONNECT, takeover, disconnect, restore at startup.

use std::sync::Arc;
use std::time::Instant;

use tabmq_protocol::flow::SessionFlows;
use tabmq_protocol::packet::{Connect, Publish, Will};
use tabmq_protocol::{Properties, QoS, ReasonCode};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::MovedSession;
use super::flap_guard::Verdict;
use super::session::{Outstanding, Session};
use super::subscriptions::Subscriber;
use super::{AfterCommit, Batch, ConnectionId, ConnectionLink, DetachReason, Router, ToConnection};
use crate::clock::unix_millis;
use crate::cluster::{DurableMessage, is_from_stream};
use crate::config::TakeoverPolicy;
use crate::metrics::Metrics;
use crate::store::{SessionRecord, StoreOp, StoredSession};

/// CONNACK user property (v5) telling a client how many messages its session dropped
/// (queue full, expired) since it last connected.
pub const DROPPED_PROPERTY: &str = "tabmq-dropped-messages";

/// How long a node remembers a session it let go of to another node.
pub(super) const LET_GO_MEMORY: std::time::Duration = std::time::Duration::from_secs(60);

/// The PUBLISH a will turns into.
pub(super) fn will_to_publish(will: Will) -> Publish {
    let mut properties = will.properties;
    properties.edit_if_any(|p| p.will_delay_interval = None);
    Publish {
        retain: will.retain,
        properties,
        ..Publish::new(will.topic, will.payload, will.qos)
    }
}

impl Router {
    /// Publishes `client_id`'s will, here and on the other cluster nodes.
    pub(super) fn publish_will(&mut self, will: Will, client_id: &Arc<str>, batch: &mut Batch) {
        let publish = will_to_publish(will);
        if self.share_in_cluster(&publish, Some(client_id), batch) {
            return;
        }
        let reach = self.local_reach();
        self.route(publish, Some(client_id), &reach, None, batch);
    }

    /// Rebuilds one stored session at startup.
    pub(super) fn restore_session(&mut self, client_id: String, stored: StoredSession) {
        let client_id: Arc<str> = client_id.into();
        for subscription in &stored.record.subscriptions {
            let subscriber = Subscriber {
                options: subscription.options,
                identifier: subscription.identifier,
            };
            self.subscriptions
                .add(&client_id, &subscription.filter, subscriber);
        }
        let mut session = Session::new(client_id.clone(), stored.record);
        session.stored = true;
        // This node's stream reader must not give again what the session is done with.
        session.stream_done = stored.stream_done;
        session.stream_floor = stored.stream_done;
        let mut flows = SessionFlows::default();
        for (seq, message) in stored.messages {
            let outstanding = Outstanding {
                bytes: message.publish.payload.len(),
                expires_at_ms: message.expires_at_ms,
            };
            session.add_outstanding(seq, outstanding);
            if !is_from_stream(seq) {
                session.next_seq = session.next_seq.max(seq + 1);
            }
            match stored.inflight.get(&seq) {
                Some((packet_id, state)) => {
                    let publish = Publish {
                        packet_id: Some(*packet_id),
                        ..message.publish
                    };
                    flows.outgoing.restore_inflight(seq, publish, *state);
                }
                None => flows.outgoing.enqueue_as(seq, message.publish),
            }
        }
        for packet_id in stored.incoming {
            flows.incoming.on_publish(packet_id);
        }
        session.offline = flows;
        Metrics::add(&self.metrics.messages_queued, session.outstanding.len() as u64);
        self.sessions.insert(client_id, Box::new(session));
    }

    pub(super) fn connect(&mut self, link: ConnectionLink, mut connect: Box<Connect>, batch: &mut Batch) {
        if self.shutting_down {
            batch.send(&link, ToConnection::Refused(ReasonCode::ServerShuttingDown));
            return;
        }
        let mut assigned = false;
        if connect.client_id.is_empty() {
            if !connect.version.is_v5() && !connect.clean_start {
                // MQTT 3.1.1: a persistent session needs a client id (return code 2).
                batch.send(&link, ToConnection::Refused(ReasonCode::ClientIdentifierNotValid));
                return;
            }
            self.assigned_ids += 1;
            connect.client_id = format!("tabmq-{:x}-{}", unix_millis(), self.assigned_ids);
            assigned = true;
        }
        let client_id: Arc<str> = connect.client_id.as_str().into();
        let stored = self.sessions.get(&client_id).is_some_and(|s| s.stored);
        if self.storage_failing() && (self.session_expiry(&connect) > 0 || stored) {
            // Its session would have to be stored (or removed from storage) first.
            info!(%client_id, "refused: storage is failing and the session is stored");
            batch.send(&link, ToConnection::Refused(ReasonCode::ServerUnavailable));
            return;
        }
        let now = Instant::now();
        if let Verdict::Refuse { .. } = self.flap_guard.check(&client_id, now) {
            Metrics::inc(&self.metrics.flap_guard_refusals_total);
            batch.send(&link, ToConnection::Refused(ReasonCode::ConnectionRateExceeded));
            return;
        }
        let holder = self
            .sessions
            .get(&client_id)
            .and_then(|session| session.link.clone());
        let Some(holder) = holder else {
            self.attach(link, connect, client_id, assigned, batch);
            return;
        };
        if self.config.sessions.takeover == TakeoverPolicy::Reject {
            info!(%client_id, "refused: client id already connected (takeover policy reject)");
            batch.send(&link, ToConnection::Refused(ReasonCode::ClientIdentifierNotValid));
            return;
        }
        if let Verdict::Refuse { first } = self.flap_guard.record_takeover(&client_id, now) {
            if first {
                warn!(
                    %client_id,
                    cooldown_secs = self.config.sessions.flap_cooldown_secs,
                    "client id is being taken over repeatedly (two clients sharing one id?); refusing newcomers"
                );
            }
            Metrics::inc(&self.metrics.flap_guard_refusals_total);
            batch.send(&link, ToConnection::Refused(ReasonCode::ConnectionRateExceeded));
            return;
        }
        info!(%client_id, "session taken over by a new connection");
        Metrics::inc(&self.metrics.takeovers_total);
        batch.send(&holder, ToConnection::TakenOver);
        if let Some((earlier, _)) = self.waiting_takeovers.insert(client_id, (link, connect)) {
            batch.send(&earlier, ToConnection::Refused(ReasonCode::ServerBusy));
        }
    }

    /// The session expiry interval granted to `connect` (0: the session ends with the
    /// connection and is not stored).
    fn session_expiry(&self, connect: &Connect) -> u32 {
        let sessions_config = &self.config.sessions;
        match (connect.version.is_v5(), connect.clean_start) {
            (true, _) => connect
                .properties
                .session_expiry_interval
                .unwrap_or(0)
                .min(sessions_config.max_session_expiry_secs),
            (false, true) => 0,
            (false, false) => sessions_config.v311_session_expiry_secs,
        }
    }

    /// Another cluster node took `client_id` over: its connection here, if any, is told
    /// as in a local takeover (the claim counted it for the flap guard) and the session
    /// let go of once that connection has ended; an offline session is let go of at once.
    /// `let_go` is told when that is done and stored.
    pub(super) fn taken_over_elsewhere(
        &mut self,
        client_id: &Arc<str>,
        let_go: Option<oneshot::Sender<u64>>,
        batch: &mut Batch,
    ) {
        let Some(session) = self.sessions.get_mut(client_id) else {
            // Let go of before (or not here yet): where it was then, remembered against
            // adopting it later.
            if let Some(waiting) = let_go {
                let (position, _) = *self
                    .let_go_at
                    .entry(client_id.clone())
                    .or_insert((self.stream_position, Instant::now()));
                batch.after_commit.push(AfterCommit::LetGo(waiting, position));
            }
            return;
        };
        let Some(link) = session.link.clone() else {
            let position = self.let_go_of(client_id);
            if let Some(waiting) = let_go {
                batch.after_commit.push(AfterCommit::LetGo(waiting, position));
            }
            return;
        };
        if let Some(waiting) = let_go {
            self.waiting_let_go
                .entry(client_id.clone())
                .or_default()
                .push(waiting);
        }
        if session.moved_away {
            return;
        }
        session.moved_away = true;
        info!(%client_id, "session taken over by a connection on another node");
        Metrics::inc(&self.metrics.takeovers_total);
        batch.send(&link, ToConnection::TakenOver);
    }

    /// Drops a session another cluster node holds now, and remembers the stream position
    /// up to which messages were routed to it here (returned).
    fn let_go_of(&mut self, client_id: &Arc<str>) -> u64 {
        self.forget_session(client_id);
        self.let_go_at
            .insert(client_id.clone(), (self.stream_position, Instant::now()));
        self.stream_position
    }

    /// A session of a dead node that this node won: resumed, unless another node took the
    /// client id over from this one meanwhile (a client reconnecting faster than the
    /// adoption): then it is that node's.
    pub(super) fn adopt(&mut self, client_id: &Arc<str>, moved: MovedSession, batch: &mut Batch) {
        if self.let_go_at.contains_key(client_id) {
            info!(%client_id, "not adopting a dead node's session: another node has it now");
            return;
        }
        self.session_moved_here(client_id, moved, batch);
    }

    /// Drops a session from this node without touching what is stored of it: another
    /// cluster node holds it now, or a newer copy replaces it.
    fn forget_session(&mut self, client_id: &Arc<str>) {
        let Some(session) = self.sessions.remove(client_id) else {
            return;
        };
        for subscription in &session.record.subscriptions {
            self.subscriptions.remove(client_id, &subscription.filter);
        }
        Metrics::sub(&self.metrics.messages_queued, session.outstanding.len() as u64);
        Metrics::set(&self.metrics.sessions, self.sessions.len() as u64);
    }

    /// A session stored while connected on a node that died: its connection is lost, its
    /// will published if due now (before a new connection would cancel it).
    pub(super) fn lose_with_its_node(&mut self, client_id: &Arc<str>, batch: &mut Batch) {
        let now_ms = unix_millis();
        let Some(session) = self.sessions.get_mut(client_id) else {
            return;
        };
        session.lost_with_its_node(now_ms);
        if session
            .record
            .pending_will
            .as_ref()
            .is_some_and(|(_, at)| *at <= now_ms)
            && let Some((will, _)) = session.record.pending_will.take()
        {
            batch.ops.push(StoreOp::PutSession {
                client_id: client_id.to_string(),
                record: Box::new(session.record.clone()),
            });
            self.publish_will(will, client_id, batch);
        }
    }

    /// Replaces this node's copy of a session, if any, with the one another cluster node
    /// left in the cluster's storage, and gives it the cluster's messages routed since.
    pub(super) fn session_moved_here(&mut self, client_id: &str, moved: MovedSession, batch: &mut Batch) {
        let client_id: Arc<str> = client_id.into();
        if self.sessions.get(&client_id).is_some_and(|s| s.link.is_some()) {
            // Connected here since the claim: this node's copy is the newer one.
            return;
        }
        self.forget_session(&client_id);
        self.let_go_at.remove(&client_id);
        let Some(stored) = moved.stored else {
            return;
        };
        self.restore_session(client_id.to_string(), stored);
        Metrics::set(&self.metrics.sessions, self.sessions.len() as u64);
        self.lose_with_its_node(&client_id, batch);
        let routed_here_since: Vec<DurableMessage> = self
            .recent
            .iter()
            .filter(|message| message.seq > moved.through)
            .cloned()
            .collect();
        if self
            .recent
            .front()
            .is_some_and(|oldest| oldest.seq > moved.through + 1)
        {
            warn!(%client_id, "a session moved here may miss cluster messages routed before it came (more than this node remembers)");
        }
        let through = moved.through.max(self.stream_position);
        for message in moved.since.into_iter().chain(routed_here_since) {
            self.route_to_session(&client_id, message, batch);
        }
        // This node's stream reader may be behind the messages just given: it must not
        // give them again once the client has completed them.
        if let Some(session) = self.sessions.get_mut(&client_id)
            && through != u64::MAX
        {
            session.stream_floor = session.stream_floor.max(through);
        }
    }

    /// Gives the session of `client_id` to the connection behind `link`.
    fn attach(
        &mut self,
        link: ConnectionLink,
        connect: Box<Connect>,
        client_id: Arc<str>,
        assigned: bool,
        batch: &mut Batch,
    ) {
        let now_ms = unix_millis();
        let requested_expiry = connect.properties.session_expiry_interval.unwrap_or(0);
        let expiry = self.session_expiry(&connect);
        let mut session_present = false;
        let mut session = match self.sessions.remove(&client_id) {
            Some(existing) if !connect.clean_start => {
                session_present = true;
                existing
            }
            Some(existing) => {
                self.end_session(existing, None, batch);
                Box::new(Session::new(
                    client_id.clone(),
                    SessionRecord::new(connect.version),
                ))
            }
            None => Box::new(Session::new(
                client_id.clone(),
                SessionRecord::new(connect.version),
            )),
        };
        session.record.version = connect.version;
        session.record.expiry_interval = expiry;
        session.record.expires_at_ms = None;
        // A new connection before the will delay has passed cancels the will (v5 3.1.2.5).
        session.record.pending_will = None;
        session.will = connect.will.clone();
        session.link = Some(link.clone());
        let mut flows = std::mem::take(&mut session.offline);
        self.drop_expired_queued(&mut session, &mut flows, now_ms, batch);
        if session.is_persistent() {
            batch.ops.push(StoreOp::PutSession {
                client_id: client_id.to_string(),
                record: Box::new(session.record_to_store(self.cluster.is_some())),
            });
            session.stored = true;
        } else if self.cluster.is_some() && session.will.is_some() {
            // Stored for its will only: its messages are not (see `stored_for_will`).
            batch.ops.push(StoreOp::PutSession {
                client_id: client_id.to_string(),
                record: Box::new(session.record_to_store(true)),
            });
            session.stored = false;
            session.stored_for_will = true;
        } else if session.stored || session.stored_for_will {
            batch.ops.push(StoreOp::DeleteSession {
                client_id: client_id.to_string(),
            });
            session.stored = false;
            session.stored_for_will = false;
        }
        let mut properties = Properties::default();
        if connect.version.is_v5() {
            if assigned {
                properties.assigned_client_identifier = Some(client_id.to_string());
            }
            if expiry != requested_expiry {
                properties.session_expiry_interval = Some(expiry);
            }
            if session.dropped > 0 {
                properties
                    .user_properties
                    .push((DROPPED_PROPERTY.to_owned(), session.dropped.to_string()));
            }
        }
        batch.send(
            &link,
            ToConnection::Accepted {
                client_id: client_id.clone(),
                session_present,
                persistent: session.stored,
                flows: Box::new(flows),
                properties: Box::new(properties),
            },
        );
        session.dropped = 0;
        self.sessions.insert(client_id, session);
        Metrics::set(&self.metrics.sessions, self.sessions.len() as u64);
    }

    /// Removes queued messages whose v5 message expiry has passed; sets the remaining
    /// lifetime on the others, as the spec requires when forwarding.
    fn drop_expired_queued(
        &self,
        session: &mut Session,
        flows: &mut SessionFlows,
        now_ms: u64,
        batch: &mut Batch,
    ) {
        let outstanding = &session.outstanding;
        let expired = flows.outgoing.retain_queued(|message| {
            match outstanding.get(&message.id).and_then(|o| o.expires_at_ms) {
                Some(at) if at <= now_ms => false,
                Some(at) => {
                    message.publish.properties.message_expiry_interval =
                        Some((at - now_ms).div_ceil(1000) as u32);
                    true
                }
                None => true,
            }
        });
        for seq in expired {
            if session.remove_outstanding(seq) {
                session.dropped += 1;
                Metrics::dec(&self.metrics.messages_queued);
                Metrics::inc(&self.metrics.messages_dropped_total);
                session.forget_message(seq, &mut batch.ops);
            }
        }
    }

    /// A connection let go of its session.
    pub(super) fn detach(
        &mut self,
        connection: ConnectionId,
        client_id: &Arc<str>,
        mut flows: SessionFlows,
        reason: DetachReason,
        batch: &mut Batch,
    ) {
        // Deliveries that missed the connection, routed before this detach.
        let orphans = self.take_deliveries_to(connection, batch);
        if self.link_of(client_id, connection).is_none() {
            return;
        }
        for (seq, publish) in orphans {
            flows.outgoing.enqueue_as(seq, publish);
        }
        let now_ms = unix_millis();
        let (publish_will, new_expiry) = match reason {
            DetachReason::ClientDisconnect {
                publish_will,
                session_expiry,
            } => (publish_will, session_expiry),
            DetachReason::Lost | DetachReason::TakenOver => (true, None),
            DetachReason::Shutdown | DetachReason::NotStored => (false, None),
        };
        let cap = self.config.sessions.max_session_expiry_secs;
        let Some(mut session) = self.sessions.remove(client_id) else {
            return;
        };
        session.link = None;
        // QoS 0 messages are not kept for an offline session.
        flows
            .outgoing
            .retain_queued(|message| message.publish.qos != QoS::AtMostOnce);
        session.offline = flows;
        if let Some(expiry) = new_expiry {
            session.record.expiry_interval = expiry.min(cap);
        }
        let will = session.will.take().filter(|_| publish_will);
        if !session.is_persistent() {
            self.end_session(session, will, batch);
        } else {
            let expiry = session.record.expiry_interval;
            session.record.expires_at_ms = (expiry != u32::MAX).then(|| now_ms + u64::from(expiry) * 1000);
            if let Some(will) = will {
                let delay = will.properties.will_delay_interval.unwrap_or(0).min(expiry);
                if delay == 0 {
                    self.publish_will(will, client_id, batch);
                } else {
                    session.record.pending_will = Some((will, now_ms + u64::from(delay) * 1000));
                }
            }
            batch.ops.push(StoreOp::PutSession {
                client_id: client_id.to_string(),
                record: Box::new(session.record.clone()),
            });
            session.stored = true;
            let moved_away = session.moved_away;
            self.sessions.insert(client_id.clone(), session);
            if moved_away {
                self.let_go_of(client_id);
            }
        }
        for waiting in self.waiting_let_go.remove(client_id).unwrap_or_default() {
            batch
                .after_commit
                .push(AfterCommit::LetGo(waiting, self.stream_position));
        }
        Metrics::set(&self.metrics.sessions, self.sessions.len() as u64);
        if let Some((link, connect)) = self.waiting_takeovers.remove(client_id) {
            self.attach(link, connect, client_id.clone(), false, batch);
        }
    }

    /// Ends a session already taken out of the map, publishing `will` if given.
    pub(super) fn end_session(&mut self, session: Box<Session>, will: Option<Will>, batch: &mut Batch) {
        for subscription in &session.record.subscriptions {
            self.subscriptions
                .remove(&session.client_id, &subscription.filter);
        }
        if session.stored || session.stored_for_will {
            batch.ops.push(StoreOp::DeleteSession {
                client_id: session.client_id.to_string(),
            });
        }
        Metrics::sub(&self.metrics.messages_queued, session.outstanding.len() as u64);
        if let Some(will) = will {
            self.publish_will(will, &session.client_id, batch);
        }
    }
}

impl SessionRecord {
    /// The record of a new session.
    pub fn new(version: tabmq_protocol::ProtocolVersion) -> Self {
        Self {
            version,
            expiry_interval: 0,
            expires_at_ms: None,
            subscriptions: Vec::new(),
            pending_will: None,
        }
    }
}
