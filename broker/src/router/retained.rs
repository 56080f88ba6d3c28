//! Retained messages: one per topic, replaced by the next retained publish, deleted
//! by an empty one.

use std::collections::HashMap;

use tabmq_protocol::packet::Publish;
use tabmq_protocol::topic::matches;

use crate::store::{StoreOp, StoredMessage};

/// The retained messages, by topic.
#[derive(Debug, Default)]
pub(crate) struct Retained {
    messages: HashMap<String, StoredMessage>,
}

impl Retained {
    /// Starts from what the store holds.
    pub(crate) fn from_stored(messages: impl IntoIterator<Item = (String, StoredMessage)>) -> Self {
        Self {
            messages: messages.into_iter().collect(),
        }
    }

    /// How many are held.
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    /// Applies a retained publish: an empty payload deletes. Returns the store change.
    pub(crate) fn update(&mut self, publish: &Publish, expires_at_ms: Option<u64>) -> StoreOp {
        let topic = publish.topic.clone();
        if publish.payload.is_empty() {
            self.messages.remove(&topic);
            return StoreOp::DeleteRetained { topic };
        }
        let mut stored = publish.clone();
        stored.packet_id = None;
        stored.dup = false;
        stored.properties.edit_if_any(|p| {
            p.topic_alias = None;
            p.subscription_identifiers.clear();
        });
        let message = StoredMessage {
            publish: stored,
            expires_at_ms,
        };
        self.messages.insert(topic.clone(), message.clone());
        StoreOp::PutRetained { topic, message }
    }

    /// The live retained messages matching `filter`, with the remaining message
    /// expiry set. Expired ones are removed and their store deletions returned too.
    pub(crate) fn matching(&mut self, filter: &str, now_ms: u64) -> (Vec<Publish>, Vec<StoreOp>) {
        let mut found = Vec::new();
        let mut expired = Vec::new();
        for (topic, message) in &self.messages {
            if !matches(filter, topic) {
                continue;
            }
            let mut publish = message.publish.clone();
            match message.expires_at_ms {
                Some(at) if at <= now_ms => expired.push(topic.clone()),
                Some(at) => {
                    publish.properties.message_expiry_interval = Some((at - now_ms).div_ceil(1000) as u32);
                    found.push(publish);
                }
                None => found.push(publish),
            }
        }
        let ops = expired
            .into_iter()
            .map(|topic| {
                self.messages.remove(&topic);
                StoreOp::DeleteRetained { topic }
            })
            .collect();
        (found, ops)
    }
}
