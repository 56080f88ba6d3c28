//! The router: the one owner of sessions, subscriptions and retained messages.
//!
//! Connection tasks own their sockets and talk to the router only through
//! [`ToRouter`] messages; the router answers with [`ToConnection`] messages. It works
//! in batches: it takes every message waiting in its inbox, applies them to its state in
//! the order they came, and hands the resulting store changes to the store as one
//! commit. The batch's answers (CONNACKs, acknowledgements, deliveries) are held until
//! that commit is durable, then released;
//! meanwhile the router goes on with the next batches. Commits finish in the order they
//! were begun and batches are released in that order, so nothing is acknowledged or
//! passed on before it is on disk, each connection receives its answers in order, and
//! many clients share one fsync without anyone waiting for it to route.

mod backlog;
mod connect;
mod filter_trie;
mod flap_guard;
pub mod inbox;
mod interest;
mod mailbox;
pub mod messages;
mod publish;
mod retained;
mod session;
mod subscribe;
mod subscriptions;
mod tick;

use std::collections::VecDeque;
use std::sync::Arc;

// The router's tables are looked up per message: foldhash, seeded per process, is several
// times faster than std's SipHash on short keys.
use foldhash::HashMap;

use tabmq_protocol::ReasonCode;
use tabmq_protocol::flow::SessionFlows;
use tabmq_protocol::packet::{Connect, Publish};
use tokio::sync::oneshot;
use tracing::warn;

pub use self::connect::DROPPED_PROPERTY;
use self::flap_guard::FlapGuard;
pub use self::inbox::{RouterGone, RouterReceiver, RouterSender, inbox};
pub use self::interest::InterestChange;
pub use self::mailbox::Mailbox;
pub use self::messages::{
    ConnectionId, ConnectionLink, DetachReason, MovedSession, Reach, ToConnection, ToRouter,
};
use self::retained::Retained;
use self::session::Session;
use self::subscriptions::SubscriptionIndex;
use crate::cluster::{ClusterLink, DurableMessage, StreamAck};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{PendingCommit, Snapshot, StoreError, StoreHandle, StoreOp};

/// Most inbox messages handled in one batch.
const MAX_BATCH: usize = 1024;

/// Most batches whose commits may be under way at once; beyond, the router waits for
/// the oldest (its inbox then fills, and connections stop being read).
const MAX_UNRELEASED: usize = 64;

/// Answers waiting to be sent, in order.
type Sends = Vec<(ConnectionLink, ToConnection)>;

/// Store changes and answers produced by one batch; answers wait for the commit.
#[derive(Default)]
struct Batch {
    ops: Vec<StoreOp>,
    sends: Sends,
    /// What to do once the batch's changes are stored.
    after_commit: Vec<AfterCommit>,
}

/// What a batch does in cluster mode once its changes are stored.
enum AfterCommit {
    /// Tell a node waiting for a session that it is let go of, and up to which stream
    /// sequence the cluster's messages were routed to it.
    LetGo(oneshot::Sender<u64>, u64),
    /// Acknowledge a cluster message to the stream: its routing is stored.
    Acknowledge(StreamAck),
}

impl Batch {
    /// Queues `message` for `link`; it counts in the connection's backlog from now on.
    fn send(&mut self, link: &ConnectionLink, message: ToConnection) {
        link.mailbox.backlog().add(message.backlog_bytes());
        self.sends.push((link.clone(), message));
    }
}

/// A batch whose commit is under way: its answers wait for it.
struct Unreleased {
    commit: PendingCommit,
    sends: Sends,
    after_commit: Vec<AfterCommit>,
}

/// Takes back what `sends` was to deliver to a connection that has ended: its
/// deliveries, in order, go back into the session (the rest no longer matters).
fn take_deliveries_to(sends: &mut Sends, connection: ConnectionId) -> Vec<(u64, Publish)> {
    let mut taken = Vec::new();
    let mut kept = Vec::with_capacity(sends.len());
    for (link, message) in sends.drain(..) {
        match message {
            ToConnection::Deliver { seq, publish } if link.id == connection => taken.push((seq, publish)),
            _ if link.id == connection => {}
            message => kept.push((link, message)),
        }
    }
    *sends = kept;
    taken
}

/// The router's state.
pub struct Router {
    config: Arc<Config>,
    store: StoreHandle,
    metrics: Arc<Metrics>,
    /// Boxed: the table keeps room for more entries than it holds, a pointer each.
    sessions: HashMap<Arc<str>, Box<Session>>,
    subscriptions: SubscriptionIndex,
    retained: Retained,
    flap_guard: FlapGuard,
    /// New connections waiting for the connection they take over to let go.
    waiting_takeovers: HashMap<Arc<str>, (ConnectionLink, Box<Connect>)>,
    /// Other cluster nodes waiting for a session connected here to be let go of.
    waiting_let_go: HashMap<Arc<str>, Vec<oneshot::Sender<u64>>>,
    /// Sessions let go of to other cluster nodes lately: the stream position then, and
    /// when (for a node asking after the fact, and so as not to adopt a session of a dead
    /// node that another node has taken meanwhile).
    let_go_at: HashMap<Arc<str>, (u64, std::time::Instant)>,
    /// The stream sequence of the last cluster message routed here.
    stream_position: u64,
    /// The latest cluster messages routed here, oldest first, for a session that arrives
    /// from another node to get those routed before it arrived.
    recent: VecDeque<DurableMessage>,
    /// The stream sequences of `recent`.
    recent_seqs: foldhash::HashSet<u64>,
    /// The id of the next QoS 1/2 message handed to the cluster's stream, unique per node
    /// across restarts: the stream keeps a message written twice (a commit retried) once.
    next_share_id: u64,
    /// Deliveries that reached a connection after its inbox closed, by connection.
    orphans: HashMap<ConnectionId, Vec<(u64, Publish)>>,
    /// Batches committing, oldest first.
    unreleased: VecDeque<Unreleased>,
    /// The other cluster nodes, in cluster mode.
    cluster: Option<ClusterLink>,
    assigned_ids: u64,
    ticks: u64,
    shutting_down: bool,
}

impl Router {
    /// A router resuming what the store holds.
    pub fn new(
        config: Arc<Config>,
        store: StoreHandle,
        metrics: Arc<Metrics>,
        snapshot: Snapshot,
        cluster: Option<ClusterLink>,
    ) -> Self {
        let flap_guard = FlapGuard::new(
            config.sessions.flap_max_takeovers,
            std::time::Duration::from_secs(config.sessions.flap_window_secs),
            std::time::Duration::from_secs(config.sessions.flap_cooldown_secs),
        );
        let mut router = Self {
            config,
            store,
            metrics,
            sessions: HashMap::default(),
            subscriptions: match cluster {
                Some(_) => SubscriptionIndex::counting_interest(),
                None => SubscriptionIndex::default(),
            },
            retained: Retained::from_stored(snapshot.retained),
            flap_guard,
            waiting_takeovers: HashMap::default(),
            waiting_let_go: HashMap::default(),
            let_go_at: HashMap::default(),
            stream_position: 0,
            recent: VecDeque::new(),
            recent_seqs: foldhash::HashSet::default(),
            next_share_id: crate::clock::unix_millis().saturating_mul(1_000_000),
            orphans: HashMap::default(),
            unreleased: VecDeque::new(),
            cluster,
            assigned_ids: 0,
            ticks: 0,
            shutting_down: false,
        };
        for (client_id, stored) in snapshot.sessions {
            router.restore_session(client_id, stored);
        }
        if router.cluster.is_some() {
            // The sessions this node held when it stopped: their connections ended with it.
            let now_ms = crate::clock::unix_millis();
            for session in router.sessions.values_mut() {
                session.lost_with_its_node(now_ms);
            }
        }
        Metrics::set(&router.metrics.sessions, router.sessions.len() as u64);
        Metrics::set(&router.metrics.retained_messages, router.retained.len() as u64);
        let mut batch = Batch::default();
        router.tell_cluster_interest(&mut batch);
        router.begin_release(batch);
        router
    }

    /// Holds a topic's retained message as the cluster has it (delivering it is the
    /// message's own route's job; the cluster's bucket, not this node's store, keeps it).
    fn retained_from_cluster(&mut self, publish: &Publish) {
        let expires_at = publish
            .properties
            .message_expiry_interval
            .map(|secs| crate::clock::unix_millis() + u64::from(secs) * 1000);
        let _ = self.retained.update(publish, expires_at);
        Metrics::set(&self.metrics.retained_messages, self.retained.len() as u64);
    }

    /// The subscriptions a message published on this node reaches here: all of them, or in
    /// cluster mode the ordinary ones (share groups get it through the cluster).
    fn local_reach(&self) -> Reach {
        match self.cluster {
            Some(_) => Reach::Ordinary,
            None => Reach::All,
        }
    }

    /// Tells the cluster which filters gained or lost their subscriptions: at once for
    /// QoS 0 messages and share groups, with `batch`'s commit for the stream of QoS 1/2
    /// messages (so that its SUBACKs go once the subscriptions are in effect).
    fn tell_cluster_interest(&mut self, batch: &mut Batch) {
        if let Some(cluster) = &self.cluster {
            let changes = self.subscriptions.take_interest_changes();
            if changes.is_empty() {
                return;
            }
            for change in &changes {
                cluster.interest(change.clone());
            }
            batch.ops.push(StoreOp::FollowInterest { changes });
        }
    }

    /// Handles messages until every sender is gone, then releases what is committing.
    pub async fn run(mut self, mut inbox: RouterReceiver) {
        loop {
            let room = self.unreleased.len() < MAX_UNRELEASED;
            tokio::select! {
                biased;
                committed = oldest_commit(&mut self.unreleased) => {
                    if let Some(batch) = self.unreleased.pop_front() {
                        self.release(batch.sends, batch.after_commit, committed);
                    }
                }
                message = inbox.recv(), if room => {
                    let Some(first) = message else { break };
                    let mut batch = Batch::default();
                    self.handle(first, &mut batch);
                    while batch.sends.len() + batch.ops.len() < MAX_BATCH {
                        let Some(message) = inbox.try_recv() else { break };
                        self.handle(message, &mut batch);
                    }
                    inbox.give_back_room();
                    self.tell_cluster_interest(&mut batch);
                    self.begin_release(batch);
                }
            }
        }
        while let Some(batch) = self.unreleased.pop_front() {
            let committed = batch.commit.await;
            self.release(batch.sends, batch.after_commit, committed);
        }
    }

    /// Commits a batch's store changes; its answers go once the commit is durable and
    /// every batch before it has been released.
    fn begin_release(&mut self, batch: Batch) {
        if batch.ops.is_empty() && self.unreleased.is_empty() {
            self.release(batch.sends, batch.after_commit, Ok(()));
            return;
        }
        let commit = self.store.begin_commit(batch.ops);
        self.unreleased.push_back(Unreleased {
            commit,
            sends: batch.sends,
            after_commit: batch.after_commit,
        });
    }

    /// Sends a batch's answers. If its commit failed, nothing it promised is promised:
    /// acknowledgements report an error, SUBACK grants nothing, and a CONNACK for a stored
    /// session becomes a refusal (0x88, server unavailable) that gives the session back.
    /// The failed changes are kept by the store and written once it recovers (the nodes
    /// waiting for sessions let go of are told all the same: theirs to resume now; the
    /// cluster's messages are not acknowledged, so the stream gives them again).
    fn release(&mut self, sends: Sends, after_commit: Vec<AfterCommit>, committed: Result<(), StoreError>) {
        for action in after_commit {
            match action {
                AfterCommit::LetGo(waiting, position) => {
                    let _ = waiting.send(position);
                }
                AfterCommit::Acknowledge(acker) if committed.is_ok() => {
                    if let Some(cluster) = &self.cluster {
                        cluster.acknowledge(acker);
                    }
                }
                AfterCommit::Acknowledge(_) => {}
            }
        }
        let commit_failed = committed.is_err();
        if let Err(error) = committed {
            warn!(%error, "storage commit failed; this batch's acknowledgements report failure");
        }
        let mut not_stored = Vec::new();
        for (link, mut message) in sends {
            if commit_failed {
                unpromise(&mut message, |client_id, flows| {
                    not_stored.push((link.id, client_id, flows))
                });
            }
            // A closed inbox means the connection is ending and its Detached message
            // follows: keep the messages it missed, to put back into the session then.
            if let Err(ToConnection::Deliver { seq, publish }) = link.mailbox.send(message) {
                self.orphans.entry(link.id).or_default().push((seq, publish));
            }
        }
        for (connection, client_id, flows) in not_stored {
            let mut batch = Batch::default();
            self.detach(connection, &client_id, flows, DetachReason::NotStored, &mut batch);
            self.begin_release(batch);
        }
    }

    /// Takes back every delivery to `connection` not yet handed to it, oldest first:
    /// those it refused, those of committing batches, those of `batch`.
    fn take_deliveries_to(&mut self, connection: ConnectionId, batch: &mut Batch) -> Vec<(u64, Publish)> {
        let mut taken = self.orphans.remove(&connection).unwrap_or_default();
        for unreleased in &mut self.unreleased {
            taken.extend(take_deliveries_to(&mut unreleased.sends, connection));
        }
        taken.extend(take_deliveries_to(&mut batch.sends, connection));
        taken
    }

    fn handle(&mut self, message: ToRouter, batch: &mut Batch) {
        match message {
            ToRouter::Connect { link, connect, moved } => {
                if let Some(moved) = moved {
                    self.session_moved_here(&connect.client_id, *moved, batch);
                }
                self.connect(link, connect, batch);
            }
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
                    self.detach(connection, &client_id, *flows, reason, batch);
                }
            }
            ToRouter::Tick => self.tick(batch),
            ToRouter::Shutdown => self.shutdown(batch),
            ToRouter::FromCluster(publish, reach) => {
                self.route(*publish, None, &reach, None, batch);
            }
            ToRouter::Adopted { client_id, moved } => self.adopt(&client_id, *moved, batch),
            ToRouter::Durable(message) => match *message {
                (message, acker, None) => {
                    self.route_from_stream(message, batch);
                    batch.after_commit.push(AfterCommit::Acknowledge(acker));
                }
                (message, acker, Some(group)) => {
                    // With no member here now (the last one just left), the stream gives
                    // the message to another node once it is not acknowledged in time; one
                    // the group does not want is only acknowledged.
                    let DurableMessage { seq, publish, origin } = message;
                    let wanted = publish::group_wants(&group, &publish.topic);
                    let reach = Reach::Group(group.to_string());
                    if !wanted || self.route(publish, origin.as_ref(), &reach, Some(seq), batch) {
                        batch.after_commit.push(AfterCommit::Acknowledge(acker));
                    }
                }
            },
            ToRouter::TakenOverElsewhere { client_id, let_go } => {
                self.taken_over_elsewhere(&client_id, let_go, batch);
            }
            ToRouter::RetainedFromCluster(publish) => self.retained_from_cluster(&publish),
        }
    }

    /// Whether storage is failing now: what would need it is refused meanwhile.
    fn storage_failing(&self) -> bool {
        self.store.health().is_failing()
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

/// Turns an answer whose commit failed into one that promises nothing; a CONNACK
/// for a stored session is refused and its session handed to `give_back`.
fn unpromise(message: &mut ToConnection, give_back: impl FnOnce(Arc<str>, SessionFlows)) {
    match message {
        ToConnection::Acked { reason, .. } => *reason = ReasonCode::ImplementationSpecificError,
        ToConnection::Suback(suback) => {
            for reason in suback.reasons.iter_mut().filter(|reason| !reason.is_error()) {
                *reason = ReasonCode::UnspecifiedError;
            }
        }
        ToConnection::Accepted {
            persistent: true,
            client_id,
            flows,
            ..
        } => {
            give_back(client_id.clone(), std::mem::take(&mut **flows));
            *message = ToConnection::Refused(ReasonCode::ServerUnavailable);
        }
        _ => {}
    }
}

/// The oldest committing batch's commit result; pending while there is none.
async fn oldest_commit(unreleased: &mut VecDeque<Unreleased>) -> Result<(), StoreError> {
    match unreleased.front_mut() {
        Some(oldest) => (&mut oldest.commit).await,
        None => std::future::pending().await,
    }
}
