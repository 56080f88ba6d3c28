//! The router: the one owner of sessions, subscriptions and retained messages.
//!
//! Connection tasks own their sockets and talk to the router only through
//! [`ToRouter`] messages; the router answers with [`ToConnection`] messages. It works
//! in batches: it takes every message waiting in its inbox, applies them to its
//! state, commits the resulting store changes in one group commit, and only then
//! releases its answers (CONNACKs, acknowledgements, deliveries). So nothing is
//! acknowledged or passed on before it is on disk, and many clients share one fsync.

mod connect;
mod filter_trie;
mod flap_guard;
pub mod messages;
mod publish;
mod retained;
mod session;
mod subscribe;
mod subscriptions;
mod tick;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tabmq_protocol::ReasonCode;
use tabmq_protocol::packet::Connect;
use tokio::sync::mpsc;
use tracing::error;

pub use self::connect::DROPPED_PROPERTY;
use self::flap_guard::FlapGuard;
pub use self::messages::{ConnectionId, ConnectionLink, DetachReason, ToConnection, ToRouter};
use self::retained::Retained;
use self::session::Session;
use self::subscriptions::SubscriptionIndex;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{Snapshot, StoreHandle, StoreOp};

/// Most inbox messages handled in one batch.
const MAX_BATCH: usize = 1024;

/// Store changes and answers produced by one batch; answers wait for the commit.
#[derive(Default)]
struct Batch {
    ops: Vec<StoreOp>,
    sends: Vec<(ConnectionLink, ToConnection)>,
}

impl Batch {
    fn send(&mut self, link: &ConnectionLink, message: ToConnection) {
        self.sends.push((link.clone(), message));
    }

    /// Takes back what this batch was to send to a connection that has ended: its
    /// deliveries, in order, go back into the session (the rest no longer matters).
    fn take_deliveries_to(
        &mut self,
        connection: ConnectionId,
    ) -> Vec<(u64, tabmq_protocol::packet::Publish)> {
        let mut taken = Vec::new();
        let mut kept = Vec::with_capacity(self.sends.len());
        for (link, message) in self.sends.drain(..) {
            match message {
                ToConnection::Deliver { seq, publish } if link.id == connection => taken.push((seq, publish)),
                _ if link.id == connection => {}
                message => kept.push((link, message)),
            }
        }
        self.sends = kept;
        taken
    }
}

/// The router's state.
pub struct Router {
    config: Arc<Config>,
    store: StoreHandle,
    metrics: Arc<Metrics>,
    sessions: HashMap<Arc<str>, Session>,
    subscriptions: SubscriptionIndex,
    retained: Retained,
    flap_guard: FlapGuard,
    /// New connections waiting for the connection they take over to let go.
    waiting_takeovers: HashMap<Arc<str>, (ConnectionLink, Box<Connect>)>,
    /// Deliveries that reached a connection after its inbox closed, by connection.
    orphans: HashMap<ConnectionId, Vec<(u64, tabmq_protocol::packet::Publish)>>,
    assigned_ids: u64,
    ticks: u64,
    shutting_down: bool,
}

impl Router {
    /// A router resuming what the store holds.
    pub fn new(config: Arc<Config>, store: StoreHandle, metrics: Arc<Metrics>, snapshot: Snapshot) -> Self {
        let flap_guard = FlapGuard::new(
            config.sessions.flap_max_takeovers,
            std::time::Duration::from_secs(config.sessions.flap_window_secs),
            std::time::Duration::from_secs(config.sessions.flap_cooldown_secs),
        );
        let mut router = Self {
            config,
            store,
            metrics,
            sessions: HashMap::new(),
            subscriptions: SubscriptionIndex::default(),
            retained: Retained::from_stored(snapshot.retained),
            flap_guard,
            waiting_takeovers: HashMap::new(),
            orphans: HashMap::new(),
            assigned_ids: 0,
            ticks: 0,
            shutting_down: false,
        };
        for (client_id, stored) in snapshot.sessions {
            router.restore_session(client_id, stored);
        }
        Metrics::set(&router.metrics.sessions, router.sessions.len() as u64);
        Metrics::set(&router.metrics.retained_messages, router.retained.len() as u64);
        router
    }

    /// Handles messages until every sender is gone.
    pub async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<ToRouter>) {
        while let Some(first) = inbox.recv().await {
            let mut batch = Batch::default();
            self.handle(first, &mut batch);
            while batch.sends.len() + batch.ops.len() < MAX_BATCH {
                match inbox.try_recv() {
                    Ok(message) => self.handle(message, &mut batch),
                    Err(_) => break,
                }
            }
            self.commit_and_release(batch).await;
        }
    }

    async fn commit_and_release(&mut self, mut batch: Batch) {
        let ops = std::mem::take(&mut batch.ops);
        let failed = match self.store.commit(ops).await {
            Ok(()) => false,
            Err(error) => {
                error!(%error, "storage commit failed; acknowledgements in this batch report failure");
                Metrics::inc(&self.metrics.storage_errors_total);
                true
            }
        };
        for (link, mut message) in batch.sends {
            if let (true, ToConnection::Acked { reason, .. }) = (failed, &mut message) {
                *reason = ReasonCode::ImplementationSpecificError;
            }
            link.backlog.fetch_add(1, Ordering::Relaxed);
            // A closed inbox means the connection is ending and its Detached message
            // follows: keep the messages it missed, to put back into the session then.
            if let Err(mpsc::error::SendError(ToConnection::Deliver { seq, publish })) = link.tx.send(message)
            {
                self.orphans.entry(link.id).or_default().push((seq, publish));
            }
        }
    }

    fn handle(&mut self, message: ToRouter, batch: &mut Batch) {
        match message {
            ToRouter::Connect { link, connect } => self.connect(link, connect, batch),
            ToRouter::Publish {
                connection,
                client_id,
                publish,
            } => self.publish_from_client(connection, &client_id, publish, batch),
            ToRouter::Subscribe {
                connection,
                client_id,
                subscribe,
                denied,
            } => self.subscribe(connection, &client_id, subscribe, &denied, batch),
            ToRouter::Unsubscribe {
                connection,
                client_id,
                unsubscribe,
            } => self.unsubscribe(connection, &client_id, unsubscribe, batch),
            ToRouter::Delivered { client_id, seq } => self.delivered(&client_id, seq, batch),
            ToRouter::Detached {
                connection,
                client_id,
                flows,
                reason,
            } => {
                if let Some(client_id) = client_id {
                    self.detach(connection, &client_id, flows, reason, batch);
                }
            }
            ToRouter::Tick => self.tick(batch),
            ToRouter::Shutdown => self.shutdown(batch),
        }
    }

    /// The session's connection link, if `connection` is the one holding it.
    fn link_of(&self, client_id: &str, connection: ConnectionId) -> Option<&ConnectionLink> {
        self.sessions
            .get(client_id)?
            .link
            .as_ref()
            .filter(|link| link.id == connection)
    }

    fn shutdown(&mut self, batch: &mut Batch) {
        self.shutting_down = true;
        for session in self.sessions.values() {
            if let Some(link) = &session.link {
                batch.send(link, ToConnection::Shutdown);
            }
        }
        for (link, _) in self.waiting_takeovers.values() {
            batch.send(link, ToConnection::Refused(ReasonCode::ServerShuttingDown));
        }
        self.waiting_takeovers.clear();
    }
}
