//! The subscription index: which sessions want which topics.
//!
//! Filters without wildcards are found by a hash lookup; wildcard filters in a trie by
//! level ([`FilterTrie`]), so a publish costs nothing for filters that cannot match it.
//! Shared subscriptions (`$share/group/filter`) are kept per group at their filter's node
//! and resolved to one member per message, round-robin.

use std::sync::Arc;

use foldhash::HashMap;

use tabmq_protocol::packet::SubscriptionOptions;
use tabmq_protocol::topic::SharedFilter;

use super::filter_trie::FilterTrie;
use super::interest::{Interest, InterestChange};

/// One session's subscription to one filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subscriber {
    /// Its options.
    pub(crate) options: SubscriptionOptions,
    /// v5 subscription identifier.
    pub(crate) identifier: Option<u32>,
}

/// A share group: its members take turns.
#[derive(Debug, Default)]
pub(crate) struct ShareGroup {
    members: Vec<(Arc<str>, Subscriber)>,
    next: usize,
}

impl ShareGroup {
    /// The members, starting with the one whose turn it is.
    pub(crate) fn in_turn(&self) -> impl Iterator<Item = &(Arc<str>, Subscriber)> {
        let start = self.next % self.members.len().max(1);
        self.members[start..].iter().chain(self.members[..start].iter())
    }

    /// Moves the turn past `client_id`.
    pub(crate) fn advance_past(&mut self, client_id: &str) {
        if let Some(index) = self.members.iter().position(|(id, _)| &**id == client_id) {
            self.next = index + 1;
        }
    }
}

/// Every subscription of every session.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionIndex {
    exact: HashMap<String, HashMap<Arc<str>, Subscriber>>,
    wildcard: FilterTrie<HashMap<Arc<str>, Subscriber>>,
    /// Share groups by filter, then by group name.
    shared: FilterTrie<HashMap<String, ShareGroup>>,
    /// Subscriptions counted per filter (cluster mode).
    interest: Interest,
}

impl SubscriptionIndex {
    /// An index that also counts its subscriptions per filter (see [`Interest`]).
    pub(crate) fn counting_interest() -> Self {
        Self {
            interest: Interest::counting(),
            ..Self::default()
        }
    }

    /// The filters that gained their first subscription or lost their last since the last
    /// call (only when counting).
    pub(crate) fn take_interest_changes(&mut self) -> Vec<InterestChange> {
        self.interest.take_changes()
    }

    /// Adds or replaces a subscription; `true` if it already existed.
    pub(crate) fn add(&mut self, client_id: &Arc<str>, filter: &str, subscriber: Subscriber) -> bool {
        let existed = self.add_entry(client_id, filter, subscriber);
        if !existed {
            self.interest.gained(filter);
        }
        existed
    }

    /// Removes a subscription; `true` if it existed.
    pub(crate) fn remove(&mut self, client_id: &str, filter: &str) -> bool {
        let removed = self.remove_entry(client_id, filter);
        if removed {
            self.interest.lost(filter);
        }
        removed
    }

    fn add_entry(&mut self, client_id: &Arc<str>, filter: &str, subscriber: Subscriber) -> bool {
        if let Ok(Some(shared)) = SharedFilter::parse(filter) {
            let group = self
                .shared
                .entry(shared.filter)
                .entry(shared.group.to_owned())
                .or_default();
            if let Some(existing) = group.members.iter_mut().find(|(id, _)| id == client_id) {
                existing.1 = subscriber;
                return true;
            }
            group.members.push((client_id.clone(), subscriber));
            return false;
        }
        let subscribers = if filter.contains(['+', '#']) {
            self.wildcard.entry(filter)
        } else {
            self.exact.entry(filter.to_owned()).or_default()
        };
        subscribers.insert(client_id.clone(), subscriber).is_some()
    }

    fn remove_entry(&mut self, client_id: &str, filter: &str) -> bool {
        if let Ok(Some(shared)) = SharedFilter::parse(filter) {
            let Some(groups) = self.shared.get_mut(shared.filter) else {
                return false;
            };
            let Some(group) = groups.get_mut(shared.group) else {
                return false;
            };
            let before = group.members.len();
            group.members.retain(|(id, _)| &**id != client_id);
            let removed = group.members.len() != before;
            if group.members.is_empty() {
                groups.remove(shared.group);
            }
            if groups.is_empty() {
                self.shared.remove(shared.filter);
            }
            return removed;
        }
        if filter.contains(['+', '#']) {
            let Some(subscribers) = self.wildcard.get_mut(filter) else {
                return false;
            };
            let removed = subscribers.remove(client_id).is_some();
            if subscribers.is_empty() {
                self.wildcard.remove(filter);
            }
            return removed;
        }
        let Some(subscribers) = self.exact.get_mut(filter) else {
            return false;
        };
        let removed = subscribers.remove(client_id).is_some();
        if subscribers.is_empty() {
            self.exact.remove(filter);
        }
        removed
    }

    /// The share group of a `$share/group/filter` subscription, if it has members.
    pub(crate) fn share_group_mut(&mut self, shared_filter: &str) -> Option<&mut ShareGroup> {
        let Ok(Some(shared)) = SharedFilter::parse(shared_filter) else {
            return None;
        };
        self.shared.get_mut(shared.filter)?.get_mut(shared.group)
    }

    /// Calls `direct` with every ordinary subscription matching `topic` (client id and
    /// subscription; a session with several matching filters once per filter), and returns
    /// the share groups whose filter matches.
    pub(crate) fn matching(
        &mut self,
        topic: &str,
        mut direct: impl FnMut(&Arc<str>, &Subscriber),
    ) -> Vec<&mut ShareGroup> {
        let mut each = |subscribers: &mut HashMap<Arc<str>, Subscriber>| {
            subscribers.iter().for_each(|(id, sub)| direct(id, sub));
        };
        if let Some(subscribers) = self.exact.get_mut(topic) {
            each(subscribers);
        }
        self.wildcard.for_each_match(topic, each);
        let mut groups = Vec::new();
        self.shared
            .for_each_match(topic, |by_name| groups.extend(by_name.values_mut()));
        groups
    }
}

#[cfg(test)]
mod tests {
    use tabmq_protocol::QoS;

    use super::*;

    fn subscriber(qos: QoS) -> Subscriber {
        Subscriber {
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
            identifier: None,
        }
    }

    /// The ids of the sessions `topic` reaches directly, sorted, once each (a session with
    /// several matching filters is matched once per filter; the router merges them).
    fn reached(index: &mut SubscriptionIndex, topic: &str) -> Vec<String> {
        let mut ids = Vec::new();
        index.matching(topic, |id, _| ids.push(id.to_string()));
        ids.sort();
        ids.dedup();
        ids
    }

    #[test]
    fn exact_and_wildcard_filters_reach_their_sessions_and_stop_when_removed() {
        let mut index = SubscriptionIndex::default();
        let (alice, bob): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        assert!(!index.add(&alice, "chat/room", subscriber(QoS::AtMostOnce)));
        assert!(!index.add(&bob, "chat/+", subscriber(QoS::AtLeastOnce)));
        assert!(
            index.add(&bob, "chat/+", subscriber(QoS::ExactlyOnce)),
            "replaced"
        );
        assert_eq!(reached(&mut index, "chat/room"), ["alice", "bob"]);
        assert_eq!(reached(&mut index, "chat/other"), ["bob"]);
        let mut granted = Vec::new();
        index.matching("chat/other", |_, sub| granted.push(sub.options.qos));
        assert_eq!(granted, [QoS::ExactlyOnce], "the newer options");
        assert!(index.remove(&bob, "chat/+"));
        assert!(!index.remove(&bob, "chat/+"), "already gone");
        assert_eq!(reached(&mut index, "chat/room"), ["alice"]);
        assert!(index.remove(&alice, "chat/room"));
        assert!(reached(&mut index, "chat/room").is_empty());
        assert!(index.exact.is_empty(), "empty entries are not kept");
    }

    #[test]
    fn a_share_group_gives_each_message_to_one_member_in_turn() {
        let mut index = SubscriptionIndex::default();
        let members: Vec<Arc<str>> = ["w1", "w2", "w3"].into_iter().map(Arc::from).collect();
        for member in &members {
            index.add(member, "$share/workers/jobs/#", subscriber(QoS::AtLeastOnce));
        }
        index.add(&members[0], "$share/audit/jobs/#", subscriber(QoS::AtMostOnce));
        let mut turns = Vec::new();
        for _ in 0..6 {
            let mut direct = 0;
            let mut groups = index.matching("jobs/1", |_, _| direct += 1);
            assert_eq!(direct, 0, "shared subscriptions are not direct ones");
            assert_eq!(groups.len(), 2, "each group gets the message");
            for group in groups.iter_mut() {
                let chosen = group
                    .in_turn()
                    .next()
                    .map(|(id, _)| id.clone())
                    .expect("a member");
                group.advance_past(&chosen);
                if group.members.len() == 3 {
                    turns.push(chosen.to_string());
                }
            }
        }
        assert_eq!(turns, ["w1", "w2", "w3", "w1", "w2", "w3"]);
        assert!(index.remove(&members[1], "$share/workers/jobs/#"));
        assert!(!index.remove(&members[1], "$share/nobody/jobs/#"));
        let groups = index.matching("jobs/1", |_, _| {});
        let workers = groups.iter().find(|g| g.members.len() == 2);
        assert!(workers.is_some(), "w2 left the group");
    }

    #[test]
    fn dollar_topics_reach_only_filters_that_name_their_first_level() {
        let mut index = SubscriptionIndex::default();
        let (all, sys): (Arc<str>, Arc<str>) = ("all".into(), "sys".into());
        index.add(&all, "#", subscriber(QoS::AtMostOnce));
        index.add(&all, "+/uptime", subscriber(QoS::AtMostOnce));
        index.add(&sys, "$SYS/#", subscriber(QoS::AtMostOnce));
        assert_eq!(reached(&mut index, "$SYS/uptime"), ["sys"]);
        assert_eq!(reached(&mut index, "broker/uptime"), ["all"]);
    }
}
