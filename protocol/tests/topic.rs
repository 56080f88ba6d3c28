//! Topic matching, `$`-topics, and shared-subscription parsing.

use tabmq_protocol::topic::{SharedFilter, TopicError, matches, validate_topic_filter, validate_topic_name};

#[test]
fn single_level_wildcard_matches_exactly_one_level() {
    assert!(matches("a/+/c", "a/b/c"));
    assert!(matches("a/+", "a/"), "an empty level is a level");
    assert!(matches("+/+", "/x"));
    assert!(!matches("a/+", "a/b/c"));
    assert!(!matches("a/+", "a"));
}

#[test]
fn multi_level_wildcard_matches_the_parent_and_everything_below() {
    assert!(matches("a/#", "a"));
    assert!(matches("a/#", "a/b/c"));
    assert!(matches("#", "a/b"));
    assert!(matches("#", "/"));
    assert!(!matches("a/#", "b/a"));
}

#[test]
fn literal_filters_match_only_the_same_topic() {
    assert!(matches("a/b", "a/b"));
    assert!(!matches("a/b", "a/b/"));
    assert!(!matches("a/b", "A/b"), "topics are case sensitive");
    assert!(!matches("a//b", "a/b"));
}

#[test]
fn dollar_topics_are_not_matched_by_leading_wildcards() {
    assert!(!matches("#", "$SYS/broker/uptime"));
    assert!(!matches("+/broker/uptime", "$SYS/broker/uptime"));
    assert!(matches("$SYS/#", "$SYS/broker/uptime"));
    assert!(matches("$SYS/+/uptime", "$SYS/broker/uptime"));
    assert!(matches("a/#", "a/$b"), "only a leading $ is special");
}

#[test]
fn shared_subscriptions_split_into_group_and_filter() {
    assert_eq!(
        SharedFilter::parse("$share/workers/jobs/+"),
        Ok(Some(SharedFilter {
            group: "workers",
            filter: "jobs/+"
        }))
    );
    assert_eq!(SharedFilter::parse("jobs/+"), Ok(None));
    assert_eq!(
        SharedFilter::parse("$share/g"),
        Err(TopicError::InvalidSharedSubscription)
    );
    assert_eq!(
        SharedFilter::parse("$share/g#/x"),
        Err(TopicError::InvalidSharedSubscription)
    );
    assert_eq!(
        validate_topic_filter("$share/g/a/#/b"),
        Err(TopicError::MisplacedWildcard)
    );
    assert_eq!(
        validate_topic_filter("$shared/g/x"),
        Ok(()),
        "only the exact prefix is special"
    );
}

#[test]
fn names_and_filters_follow_the_wildcard_rules() {
    assert_eq!(validate_topic_name("a/b c/ü"), Ok(()));
    assert_eq!(validate_topic_name("/"), Ok(()));
    assert_eq!(validate_topic_name("a/+"), Err(TopicError::WildcardInName));
    assert_eq!(validate_topic_filter("+/a/#"), Ok(()));
    assert_eq!(validate_topic_filter("a/#/"), Err(TopicError::MisplacedWildcard));
    assert_eq!(validate_topic_filter("a/b+"), Err(TopicError::MisplacedWildcard));
}
