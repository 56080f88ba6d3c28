//! Which topic filters the broker's sessions subscribe to, counted, for cluster mode: a
//! node asks the cluster for the messages of a filter when its first subscription comes
//! and stops when its last goes. A shared subscription (`$share/group/filter`) counts as
//! itself: its messages come through the cluster to one member of the group.

use foldhash::HashMap;

/// A filter that gained its first subscription or lost its last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterestChange {
    /// Messages on this filter are wanted now.
    Gained(String),
    /// They are not wanted any more.
    Lost(String),
}

/// Subscriptions per filter, and the changes not yet taken; counts nothing unless on.
#[derive(Debug, Default)]
pub(crate) struct Interest {
    on: bool,
    counts: HashMap<String, usize>,
    changes: Vec<InterestChange>,
}

impl Interest {
    /// Counting from now on.
    pub(crate) fn counting() -> Self {
        Self {
            on: true,
            ..Self::default()
        }
    }

    /// A new subscription to `filter`.
    pub(crate) fn gained(&mut self, filter: &str) {
        if !self.on {
            return;
        }
        let count = self.counts.entry(filter.to_owned()).or_default();
        *count += 1;
        if *count == 1 {
            self.changes.push(InterestChange::Gained(filter.to_owned()));
        }
    }

    /// A subscription to `filter` removed.
    pub(crate) fn lost(&mut self, filter: &str) {
        if !self.on {
            return;
        }
        let Some(count) = self.counts.get_mut(filter) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.counts.remove(filter);
            self.changes.push(InterestChange::Lost(filter.to_owned()));
        }
    }

    /// The changes since the last call, oldest first.
    pub(crate) fn take_changes(&mut self) -> Vec<InterestChange> {
        std::mem::take(&mut self.changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_is_wanted_from_its_first_subscription_to_its_last() {
        let mut interest = Interest::counting();
        interest.gained("a/+");
        interest.gained("a/+");
        interest.gained("$share/g/a/+");
        interest.lost("a/+");
        assert_eq!(
            interest.take_changes(),
            [
                InterestChange::Gained("a/+".into()),
                InterestChange::Gained("$share/g/a/+".into())
            ],
            "a share group is wanted on its own"
        );
        interest.lost("$share/g/a/+");
        interest.lost("a/+");
        assert_eq!(
            interest.take_changes(),
            [
                InterestChange::Lost("$share/g/a/+".into()),
                InterestChange::Lost("a/+".into())
            ]
        );
    }

    #[test]
    fn nothing_is_counted_unless_on() {
        let mut interest = Interest::default();
        interest.gained("a");
        assert!(interest.take_changes().is_empty());
    }
}
