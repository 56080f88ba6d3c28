//! Which node holds each client id's connection, in the JetStream key-value bucket
//! `<prefix>-sessions`: one entry per client id, `<node id> connected|offline`.
//!
//! A node claims a client id before accepting its CONNECT, by compare-and-set on the
//! entry's revision: of two nodes claiming at once, one wins each revision and the other
//! reads again, so the entry names one node at a time. Every node watches the bucket; a
//! claim by another node of a client id connected here is a takeover, told to the router
//! like a local one (v5 DISCONNECT 0x8E, WebSocket close 4000). With `takeover = "reject"`
//! a claim fails while another node holds the client id connected.
//!
//! The flap guard works across nodes with the entry: it keeps the times of the client
//! id's recent takeovers between nodes, and a claim that would make too many blocks the id
//! for the cooldown instead (written to the entry, so every node refuses it), before any
//! connection is taken over: the current holder stays connected, as on one node.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{Operation, Store};
use foldhash::HashMap;
use futures_util::StreamExt;
use tracing::warn;

use super::owner_entry::{FlapLimits, OwnerEntry};
use super::{ClusterError, hex_key, open_bucket, text_of_hex_key};
use crate::router::{RouterSender, ToRouter};

/// How long a claim keeps trying while the bucket answers with errors.
const CLAIM_PATIENCE: Duration = Duration::from_secs(5);

/// The wait between two tries of a claim.
const CLAIM_RETRY: Duration = Duration::from_millis(20);

/// Why a claim failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another node holds the client id connected, and takeovers are refused.
    #[error("the client id is connected on node {0}")]
    Held(String),
    /// The client id is taken over too often (the flap guard); `first` for the claim
    /// that started the cooldown.
    #[error("the client id is taken over too often")]
    Flapping {
        /// Whether this claim started the cooldown.
        first: bool,
    },
    /// The bucket could not be read or written.
    #[error("cluster session bucket: {0}")]
    Unavailable(String),
}

/// This node's view of the ownership bucket.
#[derive(Clone)]
pub struct Ownership {
    kv: Store,
    node_id: String,
    flap: FlapLimits,
    /// This node's latest claim per key.
    claims: Arc<Mutex<HashMap<String, Claim>>>,
}

/// An entry this node holds, as last written: by this node's claim, or by another node
/// that kept it here while blocking newcomers (the flap guard).
struct Claim {
    /// Its revision: older entries seen by the watch are history, not takeovers; a
    /// release is written at this revision.
    revision: u64,
    /// Its value, kept when released (the takeover history and any block).
    entry: OwnerEntry,
}

impl Ownership {
    /// Opens (or creates) the bucket with `replicas` copies; `flap` limits takeovers
    /// between nodes.
    pub async fn open(
        jetstream: &async_nats::jetstream::Context,
        prefix: &str,
        replicas: usize,
        node_id: &str,
        flap: FlapLimits,
    ) -> Result<Self, ClusterError> {
        let kv = open_bucket(
            jetstream,
            format!("{prefix}-sessions"),
            "tabmq: the node holding each client id",
            replicas,
        )
        .await?;
        Ok(Self {
            kv,
            node_id: node_id.to_owned(),
            flap,
            claims: Arc::default(),
        })
    }

    /// Makes this node the holder of `client_id`; with `reject`, fails while another
    /// node holds it connected; fails while the id is blocked by the flap guard, or when
    /// this claim would be one takeover too many. Returns the node that held it before,
    /// if another one.
    pub async fn claim(&self, client_id: &str, reject: bool) -> Result<Option<String>, ClaimError> {
        let key = hex_key(client_id);
        // Writes that lose a race are read again at once; errors (a JetStream leader being
        // elected) are tried again a little later, for a while.
        let deadline = Instant::now() + CLAIM_PATIENCE;
        loop {
            let now_ms = crate::clock::unix_millis();
            let mut previous = None;
            let mut claimed = OwnerEntry::new(&self.node_id, true);
            let written = match self.kv.entry(key.as_str()).await {
                Ok(entry) => match entry.filter(|e| e.operation == Operation::Put) {
                    Some(entry) => {
                        let mut current = OwnerEntry::parse(&entry.value)
                            .unwrap_or_else(|| OwnerEntry::new(&self.node_id, false));
                        if current.is_blocked(now_ms) {
                            return Err(ClaimError::Flapping { first: false });
                        }
                        if current.node != self.node_id && current.connected {
                            if reject {
                                return Err(ClaimError::Held(current.node));
                            }
                            if current.record_takeover(now_ms, self.flap) {
                                // The holder keeps the id; every node refuses newcomers.
                                match self.kv.update(&key, current.to_bytes(), entry.revision).await {
                                    Ok(_) => return Err(ClaimError::Flapping { first: true }),
                                    Err(_) => continue,
                                }
                            }
                        }
                        if current.node != self.node_id {
                            previous = Some(current.node);
                        }
                        claimed.takeovers = current.takeovers;
                        self.kv
                            .update(&key, claimed.to_bytes(), entry.revision)
                            .await
                            .map_err(|e| e.to_string())
                    }
                    None => self
                        .kv
                        .create(&key, claimed.to_bytes())
                        .await
                        .map_err(|e| e.to_string()),
                },
                Err(error) => Err(error.to_string()),
            };
            match written {
                Ok(revision) => {
                    self.claims
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(
                            key,
                            Claim {
                                revision,
                                entry: claimed,
                            },
                        );
                    return Ok(previous);
                }
                Err(error) if Instant::now() >= deadline => return Err(ClaimError::Unavailable(error)),
                Err(_) => tokio::time::sleep(CLAIM_RETRY).await,
            }
        }
    }

    /// Marks `client_id` offline, if this node still holds it.
    pub async fn release(&self, client_id: &str) {
        let key = hex_key(client_id);
        let claim = self
            .claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
        if let Some(Claim { revision, entry }) = claim {
            let released = OwnerEntry {
                connected: false,
                ..entry
            };
            // Fails if another node claimed it since: then it is not ours to release.
            let _ = self.kv.update(&key, released.to_bytes(), revision).await;
        }
    }

    /// The client ids this node holds (connected when it stopped, or offline), to resume
    /// their sessions at startup.
    pub async fn held_here(&self) -> Result<Vec<String>, ClusterError> {
        let held = self.held_by(&self.node_id).await?;
        let mut claims = self
            .claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(held
            .into_iter()
            .map(|(client_id, revision)| {
                let entry = OwnerEntry::new(&self.node_id, false);
                claims.insert(hex_key(&client_id), Claim { revision, entry });
                client_id
            })
            .collect())
    }

    /// The client ids `node` holds, with the revision of each one's entry.
    pub async fn held_by(&self, node: &str) -> Result<Vec<(String, u64)>, ClusterError> {
        let failed = |error: &dyn std::fmt::Display| ClusterError::Bucket {
            bucket: "sessions".into(),
            reason: error.to_string(),
        };
        let mut held = Vec::new();
        let mut keys = self.kv.keys().await.map_err(|e| failed(&e))?;
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| failed(&e))?;
            let Some(entry) = self.kv.entry(key.as_str()).await.map_err(|e| failed(&e))? else {
                continue;
            };
            if entry.operation == Operation::Put
                && OwnerEntry::parse(&entry.value).is_some_and(|owner| owner.node == node)
                && let Some(client_id) = text_of_hex_key(&key)
            {
                held.push((client_id, entry.revision));
            }
        }
        Ok(held)
    }

    /// Makes this node the holder of `client_id`, offline, if its entry is still at
    /// `revision` (a dead node's): `false` if another node changed it first.
    pub async fn adopt(&self, client_id: &str, revision: u64) -> bool {
        let key = hex_key(client_id);
        let entry = OwnerEntry::new(&self.node_id, false);
        match self.kv.update(&key, entry.to_bytes(), revision).await {
            Ok(revision) => {
                self.claims
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(key, Claim { revision, entry });
                true
            }
            Err(_) => false,
        }
    }

    /// Whether `owner`, the entry of `key` at `revision`, takes the client id from this
    /// node. An entry another node wrote keeping the client id here (a flap-guard block)
    /// becomes this node's claim: the release goes at its revision, and keeps the block.
    fn is_takeover(&self, key: &str, revision: u64, owner: OwnerEntry) -> bool {
        let mut claims = self
            .claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ours = claims.get_mut(key);
        if owner.node == self.node_id {
            if let Some(claim) = ours.filter(|claim| claim.revision < revision) {
                claim.revision = revision;
                claim.entry = owner;
            }
            return false;
        }
        owner.connected && ours.is_none_or(|claim| claim.revision <= revision)
    }

    /// Tells the router of every claim by another node of a client id, until the bucket
    /// or the router goes away.
    pub async fn watch_takeovers(self, router: RouterSender) {
        let mut watch = match self.kv.watch_all().await {
            Ok(watch) => watch,
            Err(error) => {
                warn!(%error, "cluster: cannot watch the session bucket; takeovers from other nodes go unseen");
                return;
            }
        };
        while let Some(entry) = watch.next().await {
            let Ok(entry) = entry else { continue };
            let Some(owner) = OwnerEntry::parse(&entry.value) else {
                continue;
            };
            if !self.is_takeover(&entry.key, entry.revision, owner) {
                continue;
            }
            let Some(client_id) = text_of_hex_key(&entry.key) else {
                continue;
            };
            let taken = ToRouter::TakenOverElsewhere {
                client_id: client_id.into(),
                let_go: None,
            };
            if router.send(taken).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_become_keys_and_come_back() {
        for client_id in ["device-1", "a.b c/ü", ""] {
            assert!(hex_key(client_id).bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(text_of_hex_key(&hex_key(client_id)).as_deref(), Some(client_id));
        }
    }
}
