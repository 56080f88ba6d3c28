//! Which of the cluster's QoS 1/2 messages this node's consumer receives: those whose
//! topic matches a filter its sessions hold, so a node receives only what its clients
//! subscribe to.
//!
//! Messages are stored in the stream under their topic's subject
//! (`<prefix>.durable.msg.<levels>`, see [`super::subject`]); the node's durable consumer
//! filters on a cover of its filters' subjects ([`subject_set::cover`]). The filter
//! changes as part of the router's commits ([`crate::store::StoreOp::FollowInterest`]):
//! a SUBACK goes once the consumer has the subscription's subjects, so every message
//! published after it, on any node, reaches it. A session moving here has its filters
//! held ([`NodeFilter::hold`]) before the messages it missed are read, so that none falls
//! between that reading and the consumer.
//!
//! When its filter changes, JetStream gives the consumer again the messages after its
//! acknowledgement floor that the new filter matches, some published before the
//! subscription; [`Replays`] recognises those (at or before the stream's last sequence
//! when the change was made, and not matching the filter before it) so they are dropped.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::stream::Stream;
use tabmq_protocol::topic::SharedFilter;

use super::subject::filter_subjects;
use super::subject_set::{cover, matches};
use crate::router::InterestChange;

/// How long a moving session's filters stay in the consumer's filter without the router
/// asking for them (it does in milliseconds, once the session is here).
const HOLD: Duration = Duration::from_secs(30);

/// How long a filter change is remembered to recognise the replays it causes.
const REPLAY_MEMORY: Duration = Duration::from_secs(60);

/// This node's consumer filter; cloned handles share it.
#[derive(Clone)]
pub struct NodeFilter {
    state: Arc<tokio::sync::Mutex<FilterState>>,
    replays: Arc<Mutex<Replays>>,
}

struct FilterState {
    stream: Stream,
    /// The consumer's configuration, its filter aside.
    config: PullConfig,
    /// `<prefix>.durable`: the subjects of topics are under `<prefix>.durable.msg`.
    prefix: String,
    /// The ordinary (not shared) MQTT filters the router's sessions hold.
    filters: BTreeSet<String>,
    /// Subjects held for sessions moving here, and since when.
    holds: Vec<(Instant, Vec<String>)>,
    /// The consumer's filter subjects now (none: every message).
    applied: Vec<String>,
}

impl NodeFilter {
    /// The filter of the consumer `config` describes, whose filter subjects are
    /// `applied` now; they are held for a while, for the sessions the node had.
    pub(super) fn new(stream: Stream, config: PullConfig, prefix: String, applied: Vec<String>) -> Self {
        let state = FilterState {
            stream,
            config,
            prefix,
            filters: BTreeSet::new(),
            holds: vec![(Instant::now(), applied.clone())],
            applied,
        };
        Self {
            state: Arc::new(tokio::sync::Mutex::new(state)),
            replays: Arc::default(),
        }
    }

    /// Takes filters that gained their first subscription or lost their last; returns
    /// once the consumer's filter follows.
    pub async fn follow(&self, changes: &[InterestChange]) -> Result<(), String> {
        let mut state = self.state.lock().await;
        for change in changes {
            match change {
                InterestChange::Gained(filter) if !SharedFilter::is_shared(filter) => {
                    state.filters.insert(filter.clone());
                }
                InterestChange::Lost(filter) => {
                    state.filters.remove(filter);
                }
                InterestChange::Gained(_) => {}
            }
        }
        state.apply(&self.replays).await
    }

    /// Adds the subjects of `filters` to the consumer's filter for a while; returns once
    /// the consumer has them.
    pub async fn hold(&self, filters: impl Iterator<Item = &str>) -> Result<(), String> {
        let mut state = self.state.lock().await;
        let subjects = filters
            .filter(|filter| !SharedFilter::is_shared(filter))
            .flat_map(|filter| filter_subjects(&state.prefix, filter))
            .collect();
        state.holds.push((Instant::now(), subjects));
        state.apply(&self.replays).await
    }

    /// Whether the message of stream sequence `seq` on `subject` came again only because
    /// the filter changed (see the module's documentation).
    pub fn is_replay(&self, seq: u64, subject: &str) -> bool {
        self.replays
            .lock()
            .map(|replays| replays.is_replay(seq, subject))
            .unwrap_or(false)
    }
}

impl FilterState {
    /// Gives the consumer the filter the sessions' filters and the holds make, if it changed.
    async fn apply(&mut self, replays: &Mutex<Replays>) -> Result<(), String> {
        self.holds.retain(|(since, _)| since.elapsed() < HOLD);
        let subjects: Vec<String> = self
            .filters
            .iter()
            .flat_map(|filter| filter_subjects(&self.prefix, filter))
            .chain(self.holds.iter().flat_map(|(_, held)| held.iter().cloned()))
            .collect();
        let mut wanted = cover(
            &format!("{}.msg", self.prefix),
            subjects.iter().map(String::as_str),
        );
        if wanted.is_empty() {
            // A subject no message has: a consumer without filter would take them all.
            wanted.push(format!("{}.none", self.prefix));
        }
        if wanted == self.applied {
            return Ok(());
        }
        let through = self
            .stream
            .get_info()
            .await
            .map_err(|error| error.to_string())?
            .state
            .last_sequence;
        let config = PullConfig {
            filter_subjects: wanted.clone(),
            ..self.config.clone()
        };
        self.stream
            .update_consumer(config)
            .await
            .map_err(|error| error.to_string())?;
        let before = std::mem::replace(&mut self.applied, wanted);
        if let Ok(mut replays) = replays.lock() {
            replays.remember(through, before);
        }
        Ok(())
    }
}

/// Recent filter changes, to recognise the messages they make JetStream give again.
#[derive(Default)]
struct Replays {
    changes: VecDeque<FilterChange>,
    /// The highest stream sequence of the changes forgotten.
    forgotten_through: u64,
}

struct FilterChange {
    made: Instant,
    /// The stream's last sequence when it was made.
    through: u64,
    /// The filter subjects before it (none: every message).
    before: Vec<String>,
}

impl Replays {
    fn remember(&mut self, through: u64, before: Vec<String>) {
        while let Some(oldest) = self.changes.front() {
            if oldest.made.elapsed() < REPLAY_MEMORY {
                break;
            }
            self.forgotten_through = self.forgotten_through.max(oldest.through);
            self.changes.pop_front();
        }
        self.changes.push_back(FilterChange {
            made: Instant::now(),
            through,
            before,
        });
    }

    /// A message the filter in force when it was stored did not match.
    fn is_replay(&self, seq: u64, subject: &str) -> bool {
        if seq <= self.forgotten_through {
            return false;
        }
        let Some(change) = self.changes.iter().find(|change| seq <= change.through) else {
            return false;
        };
        !change.before.is_empty() && !change.before.iter().any(|pattern| matches(pattern, subject))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_the_filter_in_force_did_not_match_is_a_replay() {
        let mut replays = Replays::default();
        replays.remember(10, vec!["p.a".into()]);
        replays.remember(20, vec!["p.a".into(), "p.b".into()]);
        assert!(!replays.is_replay(5, "p.a"), "matched before the first change");
        assert!(replays.is_replay(5, "p.b"), "p.b came with the first change");
        assert!(!replays.is_replay(15, "p.b"), "matched between the changes");
        assert!(replays.is_replay(15, "p.c"));
        assert!(!replays.is_replay(21, "p.c"), "after the last change: new");
    }

    #[test]
    fn a_consumer_that_took_everything_has_no_replays() {
        let mut replays = Replays::default();
        replays.remember(10, Vec::new());
        assert!(!replays.is_replay(5, "p.z"));
    }
}
