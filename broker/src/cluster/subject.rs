//! MQTT topics and filters as NATS subjects.
//!
//! Each topic level becomes one subject token under `<prefix>.msg.`. NATS tokens are
//! separated by `.`, cannot be empty or hold white space, take `*` and `>` as wildcards
//! and reserve subjects starting with `$`; MQTT levels may be or hold any of those. So a
//! level is escaped: every byte outside ASCII letters, digits, `-` and `_` becomes `%XX`
//! (hex), and an empty level is the token `%` alone (which escaping never produces).
//! Filters map `+` to `*` and `#` to `>`; `a/#` also matches `a` itself, so it takes two
//! subjects. NATS wildcards reach `$` topics that MQTT's leading wildcards do not: the
//! receiving node's own subscription index applies MQTT's rule.

use std::fmt::Write as _;

/// The token of an empty topic level.
const EMPTY_LEVEL: &str = "%";

/// The subject of messages on `topic`.
pub fn topic_subject(prefix: &str, topic: &str) -> String {
    let mut subject = format!("{prefix}.msg");
    for level in topic.split('/') {
        subject.push('.');
        push_level(&mut subject, level);
    }
    subject
}

fn push_level(subject: &mut String, level: &str) {
    if level.is_empty() {
        subject.push_str(EMPTY_LEVEL);
        return;
    }
    for byte in level.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => subject.push(char::from(byte)),
            _ => {
                let _ = write!(subject, "%{byte:02X}");
            }
        }
    }
}

/// The subjects a node subscribes to for the MQTT `filter` (one, or two for `…/#`).
pub fn filter_subjects(prefix: &str, filter: &str) -> Vec<String> {
    let mut subject = format!("{prefix}.msg");
    let levels: Vec<&str> = filter.split('/').collect();
    for (index, level) in levels.iter().enumerate() {
        match *level {
            "#" => {
                // `a/#` matches `a` too; a lone `#` matches everything.
                let parent = (index > 0).then(|| subject.clone());
                subject.push_str(".>");
                return parent.into_iter().chain([subject]).collect();
            }
            "+" => subject.push_str(".*"),
            literal => {
                subject.push('.');
                push_level(&mut subject, literal);
            }
        }
    }
    vec![subject]
}

/// The MQTT topic of a message subject, if it is one of `prefix`'s and well formed.
pub fn subject_topic(prefix: &str, subject: &str) -> Option<String> {
    let tokens = subject.strip_prefix(prefix)?.strip_prefix(".msg.")?;
    let mut topic = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.split('.').enumerate() {
        if index > 0 {
            topic.push(b'/');
        }
        if token == EMPTY_LEVEL {
            continue;
        }
        let mut bytes = token.bytes();
        while let Some(byte) = bytes.next() {
            match byte {
                b'%' => {
                    let high = char::from(bytes.next()?).to_digit(16)?;
                    let low = char::from(bytes.next()?).to_digit(16)?;
                    topic.push((high * 16 + low) as u8);
                }
                _ => topic.push(byte),
            }
        }
    }
    String::from_utf8(topic).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tabmq_protocol::topic::matches;

    use super::*;
    use crate::cluster::subject_set::matches as nats_matches;

    /// A subject NATS accepts: non-empty tokens of visible ASCII without wildcards.
    fn is_valid_subject(subject: &str) -> bool {
        subject.split('.').all(|token| {
            !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()) && token != "*" && token != ">"
        })
    }

    #[test]
    fn levels_nats_cannot_carry_are_escaped_and_come_back() {
        let topics = [
            "a/b",
            "a.b/c d",
            "*/>",
            "",
            "/",
            "a//b",
            "%",
            "$SYS/x",
            "ünï/cödé",
            "tab\tbed",
        ];
        for topic in topics {
            let subject = topic_subject("tabmq", topic);
            assert!(is_valid_subject(&subject), "{topic:?} -> {subject}");
            assert_eq!(
                subject_topic("tabmq", &subject).as_deref(),
                Some(topic),
                "{subject}"
            );
        }
        assert_eq!(topic_subject("tabmq", "a.b/c d"), "tabmq.msg.a%2Eb.c%20d");
        assert_eq!(topic_subject("tabmq", "a//b"), "tabmq.msg.a.%.b");
        assert_eq!(subject_topic("other", "tabmq.msg.a"), None, "another prefix");
        assert_eq!(subject_topic("tabmq", "tabmq.msg.a%2"), None, "a cut escape");
    }

    #[test]
    fn filters_map_to_wildcards_and_a_multi_level_one_also_matches_its_parent() {
        assert_eq!(filter_subjects("t", "a/+/c"), ["t.msg.a.*.c"]);
        assert_eq!(filter_subjects("t", "a/#"), ["t.msg.a", "t.msg.a.>"]);
        assert_eq!(filter_subjects("t", "#"), ["t.msg.>"]);
        assert_eq!(filter_subjects("t", "+"), ["t.msg.*"]);
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-c]{1,2}",
            "[a.* >%$/_-]{1,3}".prop_map(|s| s.replace('/', "")),
            "\\PC{1,2}".prop_map(|s| s.replace(['/', '+', '#', '\0'], "x")),
        ]
    }

    fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..4).prop_map(|levels| levels.join("/"))
    }

    fn filter() -> impl Strategy<Value = String> {
        let filter_level = prop_oneof![level(), Just("+".to_owned())];
        (prop::collection::vec(filter_level, 1..4), any::<bool>()).prop_map(|(mut levels, hash)| {
            if hash {
                levels.push("#".into());
            }
            levels.join("/")
        })
    }

    proptest! {
        #[test]
        fn a_subject_matches_a_filter_subject_exactly_when_the_topic_matches_the_filter(
            topic in topic(),
            filter in filter(),
        ) {
            prop_assume!(!topic.starts_with('$'));
            let subject = topic_subject("p", &topic);
            prop_assert!(is_valid_subject(&subject));
            prop_assert_eq!(subject_topic("p", &subject), Some(topic.clone()));
            let by_nats = filter_subjects("p", &filter).iter().any(|pattern| nats_matches(pattern, &subject));
            prop_assert_eq!(by_nats, matches(&filter, &topic), "{} on {}", filter, topic);
        }
    }
}
