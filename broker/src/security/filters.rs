//! Topic-filter algebra for authorization: whether one filter grants everything another
//! can match, and whether two filters can match a common topic. A topic filter is a
//! set of topic names; an ACL filter grants a SUBSCRIBE only if it covers the whole set.
//!
//! As in matching, a filter starting with a wildcard matches no `$` topic, and `a/#`
//! also matches `a`.

/// Whether every topic `inner` can match is also matched by `outer` (both valid filters).
pub fn covers(outer: &str, inner: &str) -> bool {
    if inner.starts_with('$') && outer.starts_with(['+', '#']) {
        return false;
    }
    let mut outer_levels = outer.split('/');
    let mut inner_levels = inner.split('/');
    loop {
        match (outer_levels.next(), inner_levels.next()) {
            (Some("#"), _) => return true,
            (None, None) => return true,
            // `a/#` matches `a`; so an inner `a` is covered, an inner `a/#` is not by `a/+`.
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(_), Some("+")) => return false,
            (Some(outer), Some(inner)) if outer != inner => return false,
            _ => {}
        }
    }
}

/// Whether some topic matches both filters.
pub fn intersects(a: &str, b: &str) -> bool {
    let dollar = |filter: &str| filter.starts_with('$');
    let wildcard_first = |filter: &str| filter.starts_with(['+', '#']);
    if (dollar(a) && wildcard_first(b)) || (dollar(b) && wildcard_first(a)) {
        return false;
    }
    let mut a_levels = a.split('/');
    let mut b_levels = b.split('/');
    loop {
        match (a_levels.next(), b_levels.next()) {
            (Some("#"), _) | (_, Some("#")) | (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(a), Some(b)) if a != b => return false,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use tabmq_protocol::topic::matches;

    use super::*;

    #[test]
    fn a_filter_covers_only_what_it_matches_entirely() {
        for (outer, inner) in [
            ("#", "a/b"),
            ("#", "#"),
            ("a/#", "a"),
            ("a/#", "a/+/c"),
            ("a/#", "a/#"),
            ("a/+", "a/b"),
            ("a/+", "a/+"),
            ("+/+", "a/+"),
            ("$SYS/#", "$SYS/broker/+"),
            ("a/b", "a/b"),
        ] {
            assert!(covers(outer, inner), "{outer} covers {inner}");
        }
        for (outer, inner) in [
            ("a/+", "a/#"),
            ("a/+", "a"),
            ("a/b", "a/+"),
            ("a/b", "a/b/c"),
            ("a/b/c", "a/b"),
            ("a/#", "#"),
            ("#", "$SYS/broker"),
            ("+/broker", "$SYS/broker"),
            ("b/#", "a/b"),
        ] {
            assert!(!covers(outer, inner), "{outer} does not cover {inner}");
        }
    }

    #[test]
    fn filters_intersect_when_a_topic_matches_both() {
        for (a, b) in [
            ("#", "a/b"),
            ("a/+", "+/b"),
            ("a/#", "a"),
            ("secret/#", "#"),
            ("a/b", "a/b"),
        ] {
            assert!(intersects(a, b) && intersects(b, a), "{a} meets {b}");
        }
        for (a, b) in [
            ("a/+", "b/+"),
            ("a/b", "a/b/c"),
            ("#", "$SYS/x"),
            ("a/+/c", "a/b/d"),
        ] {
            assert!(!intersects(a, b) && !intersects(b, a), "{a} misses {b}");
        }
    }

    #[test]
    fn covering_agrees_with_matching_on_topic_names() {
        let filters = ["#", "a/#", "a/+", "+/b", "a/b", "$SYS/#", "+", "a/+/c"];
        let topics = ["a", "a/b", "b/b", "a/b/c", "$SYS/x", "x"];
        for filter in filters {
            for topic in topics {
                assert_eq!(
                    covers(filter, topic),
                    matches(filter, topic),
                    "{filter} vs {topic}"
                );
                assert_eq!(
                    intersects(filter, topic),
                    matches(filter, topic),
                    "{filter} meets {topic}"
                );
            }
        }
    }
}
