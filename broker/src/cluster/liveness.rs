//! Which nodes are alive, and what happens to the sessions of one that died.
//!
//! Every node writes a heartbeat to its entry of the key-value bucket `<prefix>-nodes`
//! every [`HEARTBEAT`], and reads the others' entries as often. A node whose entry has not
//! changed for [`DEAD_AFTER`] (by this node's clock: machines' clocks need not agree) is
//! dead. Each session the dead node held is then adopted by one surviving node, whichever
//! wins the compare-and-set on the session's ownership entry: it resumes the session as
//! stored, offline, with the messages the dead node had not routed to it, so its session
//! expiry runs and its will is published, once, as if the dead node had lost the
//! connection.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{Operation, Store};
use foldhash::HashMap;
use futures_util::StreamExt;
use tracing::{info, warn};

use super::handover::read_moved_session;
use super::{ClusterError, DurableMessages, Ownership, hex_key, open_bucket, text_of_hex_key};
use crate::router::{RouterSender, ToRouter};
use crate::store::JetStreamStore;

/// How often a node writes its heartbeat and reads the others'.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a node's heartbeat must stand still for the node to count as dead.
pub(super) const DEAD_AFTER: Duration = Duration::from_secs(5);

/// The heartbeats of the cluster's nodes, and the adoption of dead nodes' sessions.
pub(super) struct Liveness {
    kv: Store,
    node_id: String,
    ownership: Ownership,
    state: JetStreamStore,
    durable: DurableMessages,
}

impl Liveness {
    /// Opens (or creates) the bucket of heartbeats.
    pub(super) async fn open(
        jetstream: &async_nats::jetstream::Context,
        prefix: &str,
        replicas: usize,
        node_id: &str,
        ownership: Ownership,
        state: JetStreamStore,
        durable: DurableMessages,
    ) -> Result<Self, ClusterError> {
        let kv = open_bucket(
            jetstream,
            format!("{prefix}-nodes"),
            "tabmq: the nodes' heartbeats",
            replicas,
        )
        .await?;
        Ok(Self {
            kv,
            node_id: node_id.to_owned(),
            ownership,
            state,
            durable,
        })
    }

    /// Beats and watches the other nodes until the router goes away.
    pub(super) async fn run(self, router: RouterSender) {
        let own_key = hex_key(&self.node_id);
        // Per node: the revision of its heartbeat last seen, and since when.
        let mut seen: HashMap<String, (u64, Instant)> = HashMap::default();
        let mut handled: HashSet<String> = HashSet::new();
        let mut beats: u64 = 0;
        let mut ticker = tokio::time::interval(HEARTBEAT);
        loop {
            ticker.tick().await;
            beats += 1;
            if let Err(error) = self.kv.put(&own_key, beats.to_string().into()).await {
                warn!(%error, "cluster: cannot write this node's heartbeat");
            }
            let Ok(mut keys) = self.kv.keys().await else {
                continue;
            };
            let now = Instant::now();
            while let Some(Ok(key)) = keys.next().await {
                if key == own_key {
                    continue;
                }
                let Ok(Some(entry)) = self.kv.entry(key.as_str()).await else {
                    continue;
                };
                if entry.operation != Operation::Put {
                    continue;
                }
                let since = match seen.get(&key) {
                    Some((revision, since)) if *revision == entry.revision => *since,
                    _ => {
                        handled.remove(&key);
                        now
                    }
                };
                seen.insert(key.clone(), (entry.revision, since));
                if now.duration_since(since) >= DEAD_AFTER && handled.insert(key.clone()) {
                    let Some(node) = text_of_hex_key(&key) else {
                        continue;
                    };
                    if self.adopt_sessions_of(&node, &router).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Adopts the sessions the dead `node` held that no other node adopts first; `Err`
    /// once the router is gone.
    async fn adopt_sessions_of(&self, node: &str, router: &RouterSender) -> Result<(), ()> {
        let held = match self.ownership.held_by(node).await {
            Ok(held) => held,
            Err(error) => {
                warn!(%error, %node, "cluster: cannot list a dead node's sessions");
                return Ok(());
            }
        };
        if held.is_empty() {
            return Ok(());
        }
        info!(%node, sessions = held.len(), "cluster: a node stopped beating; adopting its sessions");
        let position = self.durable.acknowledged_by(node).await;
        for (client_id, revision) in held {
            if !self.ownership.adopt(&client_id, revision).await {
                continue;
            }
            let moved = match read_moved_session(&self.state, &self.durable, &client_id, position).await {
                Ok(moved) => moved,
                Err(error) => {
                    warn!(%error, %client_id, "cluster: cannot read an adopted session");
                    continue;
                }
            };
            let adopted = ToRouter::Adopted {
                client_id: client_id.into(),
                moved: Box::new(moved),
            };
            router.send(adopted).await.map_err(|_| ())?;
        }
        Ok(())
    }
}
