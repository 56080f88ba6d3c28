//! One task per network connection: it owns the socket and the protocol state
//! machine, and talks to the router by messages.
//!
//! Each turn of its loop waits for one thing (bytes from the socket, a message from
//! the router, or the state machine's timer), feeds it to the state machine, passes
//! the machine's events on, persists what must be on disk before the reply, and
//! only then writes the machine's output to the socket.

mod inflight;
pub mod stream;
pub mod transport;
pub mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tabmq_protocol::packet::Connect;
use tabmq_protocol::server::{CloseCause, Connection, ConnectionPhase, ServerConfig, ServerEvent};
use tabmq_protocol::topic::SharedFilter;
use tabmq_protocol::{ProtocolVersion, ReasonCode};
use tracing::{debug, info, warn};

use self::inflight::InflightRecorder;
use self::transport::{CLOSE_SESSION_TAKEN_OVER, Transport};
use crate::clock::Clock;
use crate::cluster::{ClaimError, Handover};
use crate::config::{Config, TakeoverPolicy};
use crate::limits::{PerAddress, PublishRate};
use crate::listener::proxy::TrustedProxies;
use crate::metrics::Metrics;
use crate::router::{
    ConnectionLink, DetachReason, Mailbox, MovedSession, RouterSender, ToConnection, ToRouter,
};
use crate::security::{Identity, Security};
use crate::store::{StoreHandle, StoreOp};

/// Most router messages applied before the connection writes to its socket.
const MAX_INBOX_BATCH: usize = 512;

/// Most payload bytes of router messages applied before the connection writes to its
/// socket: what a connection holds for a slow socket, beyond its inbox.
const MAX_INBOX_BATCH_BYTES: usize = 256 * 1024;

/// What every connection task shares.
pub struct Shared {
    /// The configuration.
    pub config: Arc<Config>,
    /// The router's inbox.
    pub router: RouterSender,
    /// The store.
    pub store: StoreHandle,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The protocol clock.
    pub clock: Clock,
    /// The next connection id.
    pub next_id: AtomicU64,
    /// Authentication and authorization.
    pub security: Arc<Security>,
    /// Connections per client address.
    pub per_address: Arc<PerAddress>,
    /// The proxies whose word on the client's address is taken.
    pub proxies: TrustedProxies,
    /// Claims client ids and brings their sessions from other nodes (cluster mode).
    pub handover: Option<Handover>,
}

impl Shared {
    fn server_config(&self) -> ServerConfig {
        let limits = &self.config.limits;
        ServerConfig {
            maximum_packet_size: limits.max_packet_size,
            receive_maximum: limits.max_inflight,
            topic_alias_maximum: limits.topic_alias_maximum,
            aliases_to_client: limits.topic_aliases_to_client,
            maximum_qos: tabmq_protocol::QoS::ExactlyOnce,
            max_keep_alive: (limits.max_keep_alive_secs != 0).then_some(limits.max_keep_alive_secs),
            connect_timeout: std::time::Duration::from_secs(limits.connect_timeout_secs),
        }
    }

    /// Whether a topic filter is within the configured length and depth (a shared one's
    /// depth is its filter's).
    fn filter_within_limits(&self, filter: &str) -> bool {
        let plain = match SharedFilter::parse(filter) {
            Ok(Some(shared)) => shared.filter,
            _ => filter,
        };
        filter.len() <= self.config.limits.max_topic_length && self.levels_within_limits(plain)
    }

    /// Whether a topic name is within the configured length and depth (run on every PUBLISH).
    fn topic_within_limits(&self, topic: &str) -> bool {
        topic.len() <= self.config.limits.max_topic_length && self.levels_within_limits(topic)
    }

    fn levels_within_limits(&self, topic: &str) -> bool {
        topic.bytes().filter(|byte| *byte == b'/').count() < self.config.limits.max_topic_levels
    }
}

/// A connection's state beyond the protocol machine.
struct Session {
    client_id: Option<Arc<str>>,
    /// Who the client authenticated as.
    identity: Identity,
    /// Its PUBLISH rate so far.
    publish_rate: PublishRate,
    persistent: bool,
    recorder: InflightRecorder,
    /// Store writes that must be durable before this round's bytes leave.
    durable_ops: Vec<StoreOp>,
    detach: DetachReason,
    close: (u16, &'static str),
}

/// Runs one connection to its end; `certified` is the user its TLS client certificate
/// names, when that is how users authenticate.
pub async fn run(shared: Arc<Shared>, mut transport: Transport, peer: SocketAddr, certified: Option<String>) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let inbox = Arc::new(Mailbox::default());
    let link = ConnectionLink {
        id,
        mailbox: inbox.clone(),
    };
    let clock = shared.clock;
    let mut machine = Connection::new(shared.server_config(), clock.now());
    let mut state = Session {
        client_id: None,
        identity: Identity::default(),
        publish_rate: PublishRate::new(&shared.config.limits, std::time::Instant::now()),
        persistent: false,
        recorder: InflightRecorder::default(),
        durable_ops: Vec::new(),
        detach: DetachReason::Lost,
        close: (1000, ""),
    };
    Metrics::inc(&shared.metrics.connections);
    debug!(%peer, id, "connection opened");
    loop {
        let deadline = machine
            .poll_timeout()
            .map(|at| tokio::time::Instant::from_std(clock.instant(at)));
        machine.release_idle_memory();
        let now = clock.now();
        let mut received_bytes = |bytes: &[u8]| {
            Metrics::add(&shared.metrics.bytes_in_total, bytes.len() as u64);
            machine.handle_bytes(bytes, now);
        };
        tokio::select! {
            received = transport.recv(&mut received_bytes) => match received {
                Ok(true) => {}
                Ok(false) => break,
                Err(error) => {
                    info!(%peer, %error, "closing connection: transport error");
                    Metrics::inc(&shared.metrics.protocol_errors_total);
                    state.close = (error.close_code(), "");
                    break;
                }
            },
            message = inbox.recv() => {
                let mut bytes = message.backlog_bytes();
                apply(&shared, &mut machine, &mut state, message);
                // Take more of what is waiting, so one socket write carries it.
                for _ in 0..MAX_INBOX_BATCH {
                    if bytes >= MAX_INBOX_BATCH_BYTES {
                        break;
                    }
                    let Some(message) = inbox.try_recv() else { break };
                    bytes += message.backlog_bytes();
                    apply(&shared, &mut machine, &mut state, message);
                }
            },
            () = sleep_until(deadline) => machine.handle_timeout(clock.now()),
            () = sleep_until_unix(state.identity.expires_at) => {
                info!(%peer, client_id = state.client_id.as_deref(), "closing connection: its token expired");
                state.identity.expires_at = None;
                machine.close_explained(ReasonCode::MaximumConnectTime, Some("token expired"));
                state.close = (1008, "token expired");
            }
        }
        while let Some(connect) = handle_events(&shared, &link, &mut machine, &mut state, peer).await {
            // Events after the CONNECT wait in the machine until it is decided.
            // Boxed: authentication's future is large and lives only for a moment; inline,
            // it would take room in every connection's future for the connection's life.
            let identity = Box::pin(
                shared
                    .security
                    .authenticate(&connect, peer.ip(), certified.as_deref()),
            )
            .await;
            let claimed = match identity {
                Ok(identity) => Box::pin(claim_in_cluster(&shared, &connect))
                    .await
                    .map(|moved| (identity, moved)),
                Err(reason) => Err(reason),
            };
            match claimed {
                Ok((identity, moved)) => {
                    state.identity = identity;
                    let _ = shared
                        .router
                        .send(ToRouter::Connect {
                            link: link.clone(),
                            connect,
                            moved: moved.map(Box::new),
                        })
                        .await;
                }
                Err(reason) => machine.refuse(reason),
            }
        }
        if !persist(&shared, &mut machine, &mut state).await {
            break;
        }
        let output = machine.poll_transmit();
        if output.is_some() || transport.has_replies() {
            let bytes = output.unwrap_or_default();
            Metrics::add(&shared.metrics.bytes_out_total, bytes.len() as u64);
            if transport.send(bytes).await.is_err() {
                break;
            }
        }
        if machine.phase() == ConnectionPhase::Closed {
            break;
        }
    }
    transport.close(state.close.0, state.close.1).await;
    // Messages the router already handed over go back with the session, not into the void;
    // once the inbox is closed, the router keeps any later ones itself.
    for message in inbox.close() {
        if let ToConnection::Deliver { seq, publish } = message {
            machine.deliver_as(seq, publish);
        }
    }
    let flows = machine.take_session();
    let client_id = state.client_id.clone();
    let detached = ToRouter::Detached {
        connection: id,
        client_id: state.client_id,
        flows: Box::new(flows),
        reason: state.detach,
    };
    let _ = shared.router.send(detached).await;
    if let (Some(handover), Some(client_id)) = (&shared.handover, client_id) {
        Box::pin(handover.release(&client_id)).await;
    }
    Metrics::dec(&shared.metrics.connections);
    debug!(%peer, id, "connection closed");
}

/// In cluster mode, makes this node the holder of the client id (a takeover of a
/// connection on another node, whose session comes over), or says why the CONNECT is
/// refused.
async fn claim_in_cluster(shared: &Shared, connect: &Connect) -> Result<Option<MovedSession>, ReasonCode> {
    let Some(handover) = &shared.handover else {
        return Ok(None);
    };
    if connect.client_id.is_empty() {
        // The router assigns a unique one.
        return Ok(None);
    }
    let reject = shared.config.sessions.takeover == TakeoverPolicy::Reject;
    match handover.claim(&connect.client_id, reject).await {
        Ok(moved) => Ok(moved),
        Err(ClaimError::Flapping { first }) => {
            if first {
                warn!(
                    client_id = %connect.client_id,
                    cooldown_secs = shared.config.sessions.flap_cooldown_secs,
                    "client id is being taken over repeatedly between nodes (two clients sharing one id?); refusing newcomers"
                );
            }
            Metrics::inc(&shared.metrics.flap_guard_refusals_total);
            Err(ReasonCode::ConnectionRateExceeded)
        }
        Err(ClaimError::Held(node)) => {
            info!(client_id = %connect.client_id, %node, "refused: client id connected on another node (takeover policy reject)");
            Err(ReasonCode::ClientIdentifierNotValid)
        }
        Err(error) => {
            warn!(client_id = %connect.client_id, %error, "refused: the cluster cannot record the connection");
            Err(ReasonCode::ServerUnavailable)
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Waits until `at` (seconds since the Unix epoch); forever for `None`.
async fn sleep_until_unix(at: Option<u64>) {
    match at {
        Some(at) => {
            let left_ms = (at.saturating_mul(1000)).saturating_sub(crate::clock::unix_millis());
            tokio::time::sleep(std::time::Duration::from_millis(left_ms)).await;
        }
        None => std::future::pending().await,
    }
}

/// Applies one message from the router to the state machine.
fn apply(shared: &Shared, machine: &mut Connection, state: &mut Session, message: ToConnection) {
    let now = shared.clock.now();
    match message {
        ToConnection::Accepted {
            client_id,
            session_present,
            persistent,
            flows,
            properties,
        } => {
            Metrics::inc(&shared.metrics.connections_total);
            state.recorder.seed(&flows);
            state.client_id = Some(client_id);
            state.persistent = persistent;
            machine.accept(session_present, *flows, *properties, now);
        }
        ToConnection::Refused(reason) => machine.refuse(reason),
        ToConnection::Deliver { seq, publish } => {
            Metrics::inc(shared.metrics.messages_out(publish.qos));
            machine.deliver_as(seq, publish);
        }
        ToConnection::Acked { packet_id, reason } => {
            if reason.is_error() && machine.version() == ProtocolVersion::V311 {
                // 3.1.1 cannot refuse a message: close, and the client sends it again later.
                machine.close(reason);
            } else {
                machine.acknowledge(packet_id, reason);
            }
        }
        ToConnection::Suback(suback) => machine.send_suback(*suback),
        ToConnection::Unsuback(unsuback) => machine.send_unsuback(*unsuback),
        ToConnection::TakenOver => {
            machine.close_explained(
                ReasonCode::SessionTakenOver,
                Some("session taken over by another connection"),
            );
            state.detach = DetachReason::TakenOver;
            state.close = (CLOSE_SESSION_TAKEN_OVER, "session taken over");
        }
        ToConnection::Shutdown => {
            machine.close_explained(ReasonCode::ServerShuttingDown, Some("server shutting down"));
            state.detach = DetachReason::Shutdown;
            state.close = (1001, "server shutting down");
        }
    }
}

/// Passes the state machine's events on to the router, up to a CONNECT, which it
/// returns for authentication (the events after it stay queued in the machine). Waits
/// while the router's inbox is full: the socket is not read meanwhile.
async fn handle_events(
    shared: &Shared,
    link: &ConnectionLink,
    machine: &mut Connection,
    state: &mut Session,
    peer: SocketAddr,
) -> Option<Box<Connect>> {
    while let Some(event) = machine.poll_event() {
        let to_router = match event {
            ServerEvent::Connect(connect) => return Some(connect),
            ServerEvent::Publish(publish) => {
                if !shared.topic_within_limits(&publish.topic) {
                    info!(%peer, topic_length = publish.topic.len(), "closing connection: topic over the configured limits");
                    machine.close(ReasonCode::TopicNameInvalid);
                    continue;
                }
                let Some(client_id) = state.client_id.clone() else {
                    continue;
                };
                if !state
                    .publish_rate
                    .allow(publish.payload.len(), std::time::Instant::now)
                {
                    info!(%peer, %client_id, "closing connection: publish rate exceeded (limits.max_publish_rate)");
                    Metrics::inc(&shared.metrics.publish_rate_exceeded_total);
                    machine.close_explained(ReasonCode::MessageRateTooHigh, Some("publish rate exceeded"));
                    return None;
                }
                if !shared
                    .security
                    .may_publish(&state.identity, &client_id, &publish.topic)
                {
                    info!(%peer, %client_id, topic = %publish.topic, "publish refused: not authorized");
                    if let Some(packet_id) = publish.packet_id {
                        // MQTT 5 says why; 3.1.1 has no way to, so it acknowledges and
                        // discards the message (MQTT-3.3.5-2).
                        let reason = match machine.version() {
                            ProtocolVersion::V5 => ReasonCode::NotAuthorized,
                            ProtocolVersion::V311 => ReasonCode::Success,
                        };
                        machine.acknowledge(packet_id, reason);
                    }
                    continue;
                }
                Some(ToRouter::Publish {
                    connection: link.id,
                    client_id,
                    publish,
                })
            }
            ServerEvent::Subscribe(subscribe) => {
                if !subscribe
                    .subscriptions
                    .iter()
                    .all(|s| shared.filter_within_limits(&s.filter))
                {
                    info!(%peer, "closing connection: topic filter over the configured limits");
                    machine.close(ReasonCode::TopicFilterInvalid);
                    continue;
                }
                state.client_id.clone().map(|client_id| {
                    let denied = subscribe
                        .subscriptions
                        .iter()
                        .map(|s| {
                            let allowed = shared
                                .security
                                .may_subscribe(&state.identity, &client_id, &s.filter);
                            if !allowed {
                                info!(%peer, %client_id, filter = %s.filter, "subscription refused: not authorized");
                            }
                            !allowed
                        })
                        .collect();
                    ToRouter::Subscribe {
                        connection: link.id,
                        client_id,
                        subscribe,
                        denied,
                    }
                })
            }
            ServerEvent::Unsubscribe(unsubscribe) => {
                state.client_id.clone().map(|client_id| ToRouter::Unsubscribe {
                    connection: link.id,
                    client_id,
                    unsubscribe,
                })
            }
            ServerEvent::Delivered { id, .. } => state
                .client_id
                .clone()
                .map(|client_id| ToRouter::Delivered { client_id, seq: id }),
            ServerEvent::Released { packet_id } => {
                if let (true, Some(client_id)) = (state.persistent, &state.client_id) {
                    state.durable_ops.push(StoreOp::DeleteIncoming {
                        client_id: client_id.to_string(),
                        packet_id,
                    });
                }
                None
            }
            ServerEvent::Closed(cause) => {
                record_close(shared, state, cause, peer);
                None
            }
        };
        if let Some(message) = to_router {
            let _ = shared.router.send(message).await;
        }
    }
    None
}

fn record_close(shared: &Shared, state: &mut Session, cause: CloseCause, peer: SocketAddr) {
    match cause {
        CloseCause::ClientDisconnect(disconnect) => {
            state.detach = DetachReason::ClientDisconnect {
                publish_will: disconnect.reason == ReasonCode::DisconnectWithWill,
                session_expiry: disconnect.properties.session_expiry_interval,
            };
        }
        CloseCause::Error(error) => {
            info!(%peer, client_id = state.client_id.as_deref(), %error, reason = ?error.reason_code(), "closing connection");
            Metrics::inc(&shared.metrics.protocol_errors_total);
            state.detach = DetachReason::Lost;
        }
        CloseCause::Refused(reason) => {
            debug!(%peer, ?reason, "connection refused");
            Metrics::inc(&shared.metrics.connects_refused_total);
        }
    }
}

/// Writes this round's store changes, waiting where the reply depends on them.
/// Returns false if the store failed and the connection must end.
async fn persist(shared: &Shared, machine: &mut Connection, state: &mut Session) -> bool {
    let (true, Some(client_id)) = (state.persistent, &state.client_id) else {
        return true;
    };
    let changes = state.recorder.changes(client_id, machine.session());
    let mut ops = std::mem::take(&mut state.durable_ops);
    let must_sync = changes.must_sync || !ops.is_empty();
    ops.extend(changes.ops);
    if ops.is_empty() {
        return true;
    }
    if !must_sync {
        shared.store.submit(ops);
        return true;
    }
    match shared.store.commit(ops).await {
        Ok(()) => true,
        Err(error) => {
            info!(%client_id, %error, "closing connection: storage failure");
            Metrics::inc(&shared.metrics.storage_errors_total);
            machine.close(ReasonCode::UnspecifiedError);
            false
        }
    }
}
