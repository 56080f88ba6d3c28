//! Topic aliases an end assigns to the topics it sends (MQTT 5), so that a topic sent
//! again and again crosses the wire as two bytes.
//!
//! The peer announces how many it accepts (Topic Alias Maximum); this end uses at most
//! that many, and at most its own bound. A topic gets an alias on its second use while
//! aliases are free; once all are taken, the alias of the least-used topic moves to a
//! topic used more. Use counts are halved every [`AGE_EVERY`] messages, so that the
//! topics in use now win over those used much a while ago. Nothing survives the
//! connection: aliases start over on every connection, as the protocol requires.

use std::collections::HashMap;

use crate::packet::Publish;

/// Messages between two halvings of the use counts.
const AGE_EVERY: u32 = 4096;

/// How `transmit_queued` names topics: with aliases (server side) or not (`()`).
pub(crate) trait TopicAliasing {
    /// Rewrites `publish` to use an alias where it pays; returns what to record once the
    /// packet is sent.
    fn apply(&mut self, publish: &mut Publish) -> Option<AliasChoice>;
    /// The packet carrying `choice` was sent: the peer now knows the alias.
    fn sent(&mut self, choice: AliasChoice, topic: String);
}

impl TopicAliasing for () {
    fn apply(&mut self, _publish: &mut Publish) -> Option<AliasChoice> {
        None
    }

    fn sent(&mut self, _choice: AliasChoice, _topic: String) {}
}

/// An alias given to a topic in one packet, to record once the packet is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AliasChoice {
    alias: u16,
}

/// The aliases one connection has told its peer about.
#[derive(Debug, Default)]
pub(crate) struct OutgoingAliases {
    maximum: u16,
    /// Topic of each alias, by alias - 1.
    topics: Vec<String>,
    /// Alias of each topic the peer knows.
    assigned: HashMap<String, u16>,
    /// Recent uses of each topic seen (assigned or not), bounded.
    uses: HashMap<String, u32>,
    since_aging: u32,
}

impl OutgoingAliases {
    /// Aliases for a peer that accepts `peer_maximum`, using at most `own_maximum`.
    pub(crate) fn new(peer_maximum: u16, own_maximum: u16) -> Self {
        Self {
            maximum: peer_maximum.min(own_maximum),
            ..Self::default()
        }
    }

    /// Most topics whose uses are counted: enough to find the busiest ones.
    fn counted_limit(&self) -> usize {
        usize::from(self.maximum) * 4 + 64
    }

    /// Counts a use of `topic`; returns its count.
    fn count_use(&mut self, topic: &str) -> u32 {
        self.since_aging += 1;
        if self.since_aging >= AGE_EVERY {
            self.since_aging = 0;
            self.uses.values_mut().for_each(|count| *count /= 2);
            self.uses.retain(|_, count| *count > 0);
        }
        if let Some(count) = self.uses.get_mut(topic) {
            *count += 1;
            return *count;
        }
        if self.uses.len() >= self.counted_limit() {
            // Make room among the topics seen once, then among all.
            self.uses.retain(|_, count| *count > 1);
            if self.uses.len() >= self.counted_limit() {
                return 1;
            }
        }
        self.uses.insert(topic.to_owned(), 1);
        1
    }

    /// The alias a new topic may take: a free one, or that of a topic used less.
    fn alias_for_new(&self, uses: u32) -> Option<u16> {
        if self.topics.len() < usize::from(self.maximum) {
            return u16::try_from(self.topics.len() + 1).ok();
        }
        let (index, least) = self
            .topics
            .iter()
            .enumerate()
            .map(|(index, topic)| (index, self.uses.get(topic).copied().unwrap_or(0)))
            .min_by_key(|(_, count)| *count)?;
        (least < uses).then(|| u16::try_from(index + 1).ok()).flatten()
    }
}

impl TopicAliasing for OutgoingAliases {
    fn apply(&mut self, publish: &mut Publish) -> Option<AliasChoice> {
        if self.maximum == 0 || publish.topic.is_empty() {
            return None;
        }
        let uses = self.count_use(&publish.topic);
        if let Some(&alias) = self.assigned.get(&publish.topic) {
            publish.properties.topic_alias = Some(alias);
            publish.topic.clear();
            return None;
        }
        if uses < 2 {
            return None;
        }
        let alias = self.alias_for_new(uses)?;
        publish.properties.topic_alias = Some(alias);
        Some(AliasChoice { alias })
    }

    fn sent(&mut self, choice: AliasChoice, topic: String) {
        let index = usize::from(choice.alias) - 1;
        if let Some(previous) = self.topics.get_mut(index) {
            let previous = std::mem::replace(previous, topic.clone());
            self.assigned.remove(&previous);
        } else {
            self.topics.push(topic.clone());
        }
        self.assigned.insert(topic, choice.alias);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qos::QoS;

    /// Sends `topic` through `aliases` as `transmit_queued` does: the wire's topic and alias.
    fn send(aliases: &mut OutgoingAliases, topic: &str) -> (String, Option<u16>) {
        let mut publish = Publish::new(topic, "m", QoS::AtMostOnce);
        if let Some(choice) = aliases.apply(&mut publish) {
            aliases.sent(choice, topic.to_owned());
        }
        (publish.topic, publish.properties.topic_alias)
    }

    #[test]
    fn a_repeated_topic_is_named_once_with_its_alias_then_by_alias_alone() {
        let mut aliases = OutgoingAliases::new(10, 16);
        assert_eq!(send(&mut aliases, "room/1"), ("room/1".into(), None), "first use");
        assert_eq!(
            send(&mut aliases, "room/1"),
            ("room/1".into(), Some(1)),
            "alias made known"
        );
        assert_eq!(send(&mut aliases, "room/1"), (String::new(), Some(1)));
        assert_eq!(send(&mut aliases, "room/2"), ("room/2".into(), None));
        assert_eq!(send(&mut aliases, "room/2"), ("room/2".into(), Some(2)));
        assert_eq!(send(&mut aliases, "room/1"), (String::new(), Some(1)));
    }

    #[test]
    fn no_alias_for_a_peer_that_takes_none() {
        let mut aliases = OutgoingAliases::new(0, 16);
        for _ in 0..5 {
            assert_eq!(send(&mut aliases, "t"), ("t".into(), None));
        }
    }

    #[test]
    fn never_beyond_the_peers_maximum_or_our_own() {
        for (peer, own, expected) in [(2, 16, 2), (100, 3, 3)] {
            let mut aliases = OutgoingAliases::new(peer, own);
            let mut highest = 0;
            for round in 0..20 {
                for topic in 0..10 {
                    let (_, alias) = send(&mut aliases, &format!("t/{topic}/{}", round % 3));
                    highest = highest.max(alias.unwrap_or(0));
                }
            }
            assert_eq!(highest, expected);
        }
    }

    #[test]
    fn the_busiest_topics_take_the_aliases_from_the_least_used() {
        let mut aliases = OutgoingAliases::new(1, 16);
        send(&mut aliases, "quiet");
        assert_eq!(send(&mut aliases, "quiet").1, Some(1));
        for _ in 0..2 {
            assert_eq!(
                send(&mut aliases, "busy"),
                ("busy".into(), None),
                "not more used yet"
            );
        }
        assert_eq!(
            send(&mut aliases, "busy"),
            ("busy".into(), Some(1)),
            "3 uses against 2"
        );
        assert_eq!(send(&mut aliases, "busy"), (String::new(), Some(1)));
        assert_eq!(
            send(&mut aliases, "quiet"),
            ("quiet".into(), None),
            "its alias moved on"
        );
    }

    #[test]
    fn an_alias_is_known_only_once_its_packet_was_sent() {
        let mut aliases = OutgoingAliases::new(4, 16);
        send(&mut aliases, "big");
        let mut publish = Publish::new("big", "m", QoS::AtMostOnce);
        assert!(
            aliases.apply(&mut publish).is_some(),
            "offered, then the packet is not sent"
        );
        assert_eq!(
            send(&mut aliases, "big"),
            ("big".into(), Some(1)),
            "named again in full"
        );
    }

    #[test]
    fn counting_stays_bounded_with_endless_new_topics() {
        let mut aliases = OutgoingAliases::new(2, 16);
        for n in 0..20_000 {
            send(&mut aliases, &format!("unique/{n}"));
        }
        assert!(aliases.uses.len() <= aliases.counted_limit());
        assert_eq!(send(&mut aliases, "again"), ("again".into(), None));
        assert_eq!(send(&mut aliases, "again"), ("again".into(), Some(1)));
    }
}
