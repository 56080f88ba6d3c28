//! QoS 1/2 messages of share groups (`$share/group/filter`) between nodes: each group has
//! one durable consumer of the cluster's stream, filtered on the group's topic filter and
//! read by every node with members of the group, so JetStream gives each message to one
//! node, which routes it to one of its members and acknowledges it once that is stored. A
//! message a node took and did not acknowledge (it died, or its last member just left) is
//! given again, to a node with members. QoS 0 messages of share groups go over NATS core
//! queue subscriptions instead (see [`super::Bridge`]).
//!
//! A node starts reading a group's consumer in the commit of its first member's SUBSCRIBE
//! (creating the consumer if no node has), so the SUBACK goes once the group receives
//! messages, and stops when its last member leaves; JetStream deletes a consumer no node
//! has read for [`super::durable::RETENTION`].

use std::sync::{Arc, Mutex};

use async_nats::jetstream::stream::Stream;
use foldhash::HashMap;
use tabmq_protocol::topic::SharedFilter;
use tokio::task::JoinHandle;

use super::StreamReader;
use super::durable::group_consumer;
use crate::router::{InterestChange, RouterSender};

/// The share groups this node has members of, and their readers.
#[derive(Clone)]
pub struct ShareGroups {
    stream: Stream,
    /// `<prefix>.durable`
    prefix: String,
    state: Arc<Mutex<Groups>>,
}

#[derive(Default)]
struct Groups {
    /// Where readers hand messages: set by [`ShareGroups::start`], before the router
    /// makes its first commit (the only way groups come).
    router: Option<RouterSender>,
    /// The reader of each `$share/group/filter`.
    readers: HashMap<String, JoinHandle<()>>,
}

impl ShareGroups {
    /// No groups yet, on `stream`, whose subjects are under `prefix` (`<prefix>.durable`).
    pub(super) fn new(stream: Stream, prefix: String) -> Self {
        Self {
            stream,
            prefix,
            state: Arc::default(),
        }
    }

    /// Readers from now on hand their messages to `router`.
    pub(super) fn start(&self, router: RouterSender) {
        if let Ok(mut groups) = self.state.lock() {
            groups.router = Some(router);
        }
    }

    /// Stops every reader (at shutdown: they hold a way to the router).
    pub(super) fn stop(&self) {
        if let Ok(mut groups) = self.state.lock() {
            for (_, reader) in groups.readers.drain() {
                reader.abort();
            }
            groups.router = None;
        }
    }

    /// Takes filters that gained their first subscription here or lost their last: a
    /// share group's first member starts its reading, its last one stops it. Returns once
    /// every new group's consumer exists.
    pub async fn follow(&self, changes: &[InterestChange]) -> Result<(), String> {
        for change in changes {
            match change {
                InterestChange::Gained(shared) => {
                    let Ok(Some(parsed)) = SharedFilter::parse(shared) else {
                        continue;
                    };
                    if self.is_read(shared) {
                        continue;
                    }
                    let consumer = group_consumer(&self.stream, &self.prefix, shared, parsed.filter).await?;
                    self.read(shared, StreamReader::for_group(consumer, shared))?;
                }
                InterestChange::Lost(shared) => {
                    let removed = self
                        .state
                        .lock()
                        .ok()
                        .and_then(|mut groups| groups.readers.remove(shared));
                    if let Some(reader) = removed {
                        reader.abort();
                    }
                }
            }
        }
        Ok(())
    }

    fn is_read(&self, shared: &str) -> bool {
        self.state
            .lock()
            .is_ok_and(|groups| groups.readers.contains_key(shared))
    }

    fn read(&self, shared: &str, reader: StreamReader) -> Result<(), String> {
        let mut groups = self.state.lock().map_err(|error| error.to_string())?;
        let router = groups
            .router
            .clone()
            .ok_or_else(|| format!("share group {shared}: the node is not started or stopping"))?;
        groups
            .readers
            .insert(shared.to_owned(), tokio::spawn(reader.run(router)));
        Ok(())
    }
}
