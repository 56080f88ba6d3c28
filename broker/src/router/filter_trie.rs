//! Topic filters stored by level, so that matching a topic costs in proportion to its
//! levels and to the filters that match it, not to every filter held: a node per level,
//! with its literal children, a `+` child, and the values of the filters that end in `#`
//! there or end exactly there. Filters whose first level is a wildcard do not match `$`
//! topics, as the specification says.

use foldhash::HashMap;

/// One level of the trie.
#[derive(Debug)]
struct Node<V> {
    literal: HashMap<String, Node<V>>,
    plus: Option<Box<Node<V>>>,
    /// The filter ending in `#` at this level (`a/#` lives on node `a`).
    hash: Option<V>,
    /// The filter ending exactly here.
    end: Option<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Self {
            literal: HashMap::default(),
            plus: None,
            hash: None,
            end: None,
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.plus.is_none() && self.hash.is_none() && self.end.is_none()
    }
}

/// Values keyed by topic filter, found by the topics they match.
#[derive(Debug)]
pub(crate) struct FilterTrie<V> {
    root: Node<V>,
}

impl<V> Default for FilterTrie<V> {
    fn default() -> Self {
        Self {
            root: Node::default(),
        }
    }
}

impl<V> FilterTrie<V> {
    /// The value of `filter`, created with `V::default()` if absent.
    pub(crate) fn entry(&mut self, filter: &str) -> &mut V
    where
        V: Default,
    {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            match level {
                "#" => return node.hash.get_or_insert_with(V::default),
                "+" => node = node.plus.get_or_insert_with(Box::default),
                literal => node = node.literal.entry(literal.to_owned()).or_default(),
            }
            if levels.peek().is_none() {
                return node.end.get_or_insert_with(V::default);
            }
        }
        node.end.get_or_insert_with(V::default)
    }

    /// The value of `filter`, if any.
    pub(crate) fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            match level {
                "#" => return node.hash.as_mut(),
                "+" => node = node.plus.as_deref_mut()?,
                literal => node = node.literal.get_mut(literal)?,
            }
            if levels.peek().is_none() {
                return node.end.as_mut();
            }
        }
        node.end.as_mut()
    }

    /// Removes the value of `filter` and the nodes left empty; returns it.
    pub(crate) fn remove(&mut self, filter: &str) -> Option<V> {
        let levels: Vec<&str> = filter.split('/').collect();
        remove_from(&mut self.root, &levels)
    }

    /// Calls `found` with the value of every filter matching `topic`.
    pub(crate) fn for_each_match<'a>(&'a mut self, topic: &str, mut found: impl FnMut(&'a mut V)) {
        if self.root.is_empty() {
            return;
        }
        let dollar = topic.starts_with('$');
        visit(&mut self.root, Some(topic), dollar, &mut found);
    }
}

fn remove_from<V>(node: &mut Node<V>, levels: &[&str]) -> Option<V> {
    let (level, rest) = levels.split_first()?;
    match *level {
        "#" => node.hash.take(),
        "+" => {
            let child = node.plus.as_deref_mut()?;
            let removed = if rest.is_empty() {
                child.end.take()
            } else {
                remove_from(child, rest)
            };
            if child.is_empty() {
                node.plus = None;
            }
            removed
        }
        literal => {
            let child = node.literal.get_mut(literal)?;
            let removed = if rest.is_empty() {
                child.end.take()
            } else {
                remove_from(child, rest)
            };
            if child.is_empty() {
                node.literal.remove(literal);
            }
            removed
        }
    }
}

/// Visits the values under `node` matching `levels`, the rest of the topic (`None` once
/// every level is consumed); `wildcards_barred` while the first level of a `$` topic is
/// being matched.
fn visit<'a, V>(
    node: &'a mut Node<V>,
    levels: Option<&str>,
    wildcards_barred: bool,
    found: &mut impl FnMut(&'a mut V),
) {
    let Node {
        literal,
        plus,
        hash,
        end,
    } = node;
    if !wildcards_barred && let Some(value) = hash.as_mut() {
        // `a/#` matches `a/b/c` and also `a` itself.
        found(value);
    }
    let Some(levels) = levels else {
        if let Some(value) = end.as_mut() {
            found(value);
        }
        return;
    };
    let (level, rest) = match levels.split_once('/') {
        Some((level, rest)) => (level, Some(rest)),
        None => (levels, None),
    };
    if let Some(child) = literal.get_mut(level) {
        visit(child, rest, false, found);
    }
    if !wildcards_barred && let Some(child) = plus.as_deref_mut() {
        visit(child, rest, false, found);
    }
}

#[cfg(test)]
mod tests {
    use tabmq_protocol::topic::matches;

    use super::*;

    const FILTERS: [&str; 12] = [
        "#", "+", "a", "a/#", "a/+", "a/b", "+/b", "a/+/c", "+/+/+", "$SYS/#", "$SYS/+", "a/b/c/#",
    ];
    const TOPICS: [&str; 9] = [
        "a",
        "b",
        "a/b",
        "a/c",
        "x/b",
        "a/b/c",
        "a/b/c/d",
        "$SYS/uptime",
        "$SYS",
    ];

    /// The values of every filter matching `topic`.
    fn matching<V: Clone>(trie: &mut FilterTrie<V>, topic: &str) -> Vec<V> {
        let mut found = Vec::new();
        trie.for_each_match(topic, |value| found.push(value.clone()));
        found
    }

    fn trie() -> FilterTrie<String> {
        let mut trie = FilterTrie::default();
        for filter in FILTERS {
            *trie.entry(filter) = filter.to_owned();
        }
        trie
    }

    #[test]
    fn a_topic_finds_exactly_the_filters_that_match_it() {
        let mut trie = trie();
        for topic in TOPICS {
            let mut found = matching(&mut trie, topic);
            found.sort();
            let mut expected: Vec<String> = FILTERS
                .iter()
                .filter(|f| matches(f, topic))
                .map(|f| (*f).to_owned())
                .collect();
            expected.sort();
            assert_eq!(found, expected, "{topic}");
        }
    }

    #[test]
    fn removing_a_filter_removes_it_alone_and_prunes_empty_levels() {
        let mut trie = trie();
        assert_eq!(trie.remove("a/+/c").as_deref(), Some("a/+/c"));
        assert_eq!(trie.remove("a/+/c"), None);
        assert!(matching(&mut trie, "a/b/c").iter().all(|v| v.as_str() != "a/+/c"));
        assert_eq!(trie.get_mut("a/+").map(|v| v.clone()).as_deref(), Some("a/+"));
        for filter in FILTERS.iter().filter(|f| **f != "a/+/c") {
            assert_eq!(trie.remove(filter).as_deref(), Some(*filter));
        }
        assert!(trie.root.is_empty(), "every node pruned");
    }

    #[test]
    fn unrelated_filters_are_never_visited() {
        let mut trie: FilterTrie<u32> = FilterTrie::default();
        for n in 0..10_000 {
            *trie.entry(&format!("other/{n}/+")) = n;
        }
        *trie.entry("room/+") = 1;
        assert_eq!(matching(&mut trie, "room/7").len(), 1);
        assert!(matching(&mut trie, "nothing/here").is_empty());
    }
}
