//! Topic names, topic filters, matching, and shared subscriptions.
//!
//! Rules (MQTT 3.1.1 section 4.7, MQTT 5.0 section 4.7 and 4.8.2):
//! - a topic name is non-empty and holds no wildcard;
//! - in a filter, `+` fills a whole level and `#` is the whole last level;
//! - a filter starting with a wildcard does not match a topic starting with `$`;
//! - `$share/{group}/{filter}` is a shared subscription: the group name is non-empty
//!   and holds none of `/`, `+`, `#`.

use thiserror::Error;

/// Why a topic name or filter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TopicError {
    /// The topic or filter is the empty string.
    #[error("empty")]
    Empty,
    /// A topic name contains `+` or `#`.
    #[error("wildcard in a topic name")]
    WildcardInName,
    /// `+` or `#` shares a level with other characters, or `#` is not last.
    #[error("wildcard does not fill a whole level, or '#' is not the last level")]
    MisplacedWildcard,
    /// `$share/` is not followed by a valid group name and filter.
    #[error("malformed shared subscription")]
    InvalidSharedSubscription,
}

/// Checks a topic name used in PUBLISH or a will.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.contains(['+', '#']) {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a topic filter used in SUBSCRIBE or UNSUBSCRIBE, including `$share/` filters.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    match SharedFilter::parse(filter)? {
        Some(shared) => validate_plain_filter(shared.filter),
        None => validate_plain_filter(filter),
    }
}

fn validate_plain_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        match level {
            "+" => {}
            "#" if is_last => {}
            _ if level.contains(['+', '#']) => return Err(TopicError::MisplacedWildcard),
            "#" => return Err(TopicError::MisplacedWildcard),
            _ => {}
        }
    }
    Ok(())
}

/// Whether a (non-shared, valid) topic filter matches a topic name.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for filter_level in filter.split('/') {
        match filter_level {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            literal => {
                if topic_levels.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

/// A `$share/{group}/{filter}` subscription, split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The share group: subscribers in one group receive each message once between them.
    pub group: &'a str,
    /// The topic filter the group subscribes to.
    pub filter: &'a str,
}

impl<'a> SharedFilter<'a> {
    /// The prefix that marks a shared subscription.
    pub const PREFIX: &'static str = "$share/";

    /// Splits a shared subscription; `Ok(None)` for an ordinary filter.
    pub fn parse(filter: &'a str) -> Result<Option<Self>, TopicError> {
        let Some(rest) = filter.strip_prefix(Self::PREFIX) else {
            return Ok(None);
        };
        let (group, filter) = rest
            .split_once('/')
            .ok_or(TopicError::InvalidSharedSubscription)?;
        if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
            return Err(TopicError::InvalidSharedSubscription);
        }
        Ok(Some(Self { group, filter }))
    }

    /// Whether `filter` is a well-formed shared subscription.
    pub fn is_shared(filter: &str) -> bool {
        matches!(SharedFilter::parse(filter), Ok(Some(_)))
    }
}
