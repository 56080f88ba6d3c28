//! The ACL file, in Mosquitto's syntax:
//!
//! ```text
//! # lines before the first `user` apply to anonymous clients
//! topic read public/#
//! user alice
//! topic readwrite chat/#
//! topic deny chat/secret/#
//! # `pattern` lines apply to every client, wherever they stand; %u is the user name,
//! # %c the client id
//! pattern readwrite devices/%c/#
//! ```
//!
//! Access is `read`, `write`, `readwrite` (the default when omitted) or `deny`; a `deny`
//! rule wins over any grant. A PUBLISH needs a `write` rule matching its topic. A
//! SUBSCRIBE needs a `read` rule whose filter covers the whole subscribed filter (a
//! `#` subscription is not granted by `chat/#`), and no `deny` rule that meets it: the
//! broker refuses it in the SUBACK rather than filtering messages later, so the client
//! knows. Filters starting with a wildcard do not match `$` topics, so `$SYS/#` is
//! readable only where a rule names it.

use std::collections::HashMap;

use tabmq_protocol::topic::{SharedFilter, matches, validate_topic_filter};

use super::filters::{covers, intersects};

/// What a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Access {
    fn reads(self) -> bool {
        matches!(self, Self::Read | Self::ReadWrite)
    }

    fn writes(self) -> bool {
        matches!(self, Self::Write | Self::ReadWrite)
    }
}

/// One `topic` or `pattern` line.
#[derive(Debug, Clone)]
struct Rule {
    access: Access,
    filter: String,
}

/// A line of the ACL file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct AclError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// A parsed ACL file.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

/// Who asks: the authenticated user name (`None`: anonymous) and the client id.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The user name, if the client authenticated.
    pub username: Option<&'a str>,
    /// The client id.
    pub client_id: &'a str,
}

/// `pattern`'s `%u`/`%c` may only stand for a single level without wildcards.
fn substitutable(value: &str) -> bool {
    !value.contains(['+', '#', '/'])
}

impl Acl {
    /// Parses the text of an ACL file.
    pub fn parse(text: &str) -> Result<Self, AclError> {
        let mut acl = Acl::default();
        let mut current: Option<String> = None;
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let error = |reason: String| AclError {
                line: index + 1,
                reason,
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match keyword {
                "user" if rest.is_empty() => return Err(error("`user` needs a name".into())),
                "user" => {
                    acl.users.entry(rest.to_owned()).or_default();
                    current = Some(rest.to_owned());
                }
                "topic" | "pattern" => {
                    let rule = parse_rule(rest).map_err(error)?;
                    match (keyword, &current) {
                        ("pattern", _) => acl.patterns.push(rule),
                        (_, Some(user)) => acl.users.entry(user.clone()).or_default().push(rule),
                        (_, None) => acl.anonymous.push(rule),
                    }
                }
                other => {
                    return Err(error(format!(
                        "unknown keyword `{other}` (expected user, topic or pattern)"
                    )));
                }
            }
        }
        Ok(acl)
    }

    /// The rules that apply to `subject`, with `%u` and `%c` filled in.
    fn rules<'a>(
        &'a self,
        subject: Subject<'a>,
    ) -> impl Iterator<Item = (Access, std::borrow::Cow<'a, str>)> + 'a {
        let own = match subject.username {
            Some(user) => self.users.get(user).map(Vec::as_slice).unwrap_or_default(),
            None => &self.anonymous,
        };
        let patterns = self.patterns.iter().filter_map(move |rule| {
            let mut filter = rule.filter.clone();
            if filter.contains("%u") {
                let user = subject.username.filter(|user| substitutable(user))?;
                filter = filter.replace("%u", user);
            }
            if filter.contains("%c") {
                if !substitutable(subject.client_id) {
                    return None;
                }
                filter = filter.replace("%c", subject.client_id);
            }
            Some((rule.access, filter.into()))
        });
        own.iter()
            .map(|rule| (rule.access, rule.filter.as_str().into()))
            .chain(patterns)
    }

    /// Whether `subject` may publish to `topic`.
    pub fn may_write(&self, subject: Subject<'_>, topic: &str) -> bool {
        let mut granted = false;
        for (access, filter) in self.rules(subject) {
            if !matches(&filter, topic) {
                continue;
            }
            if access == Access::Deny {
                return false;
            }
            granted |= access.writes();
        }
        granted
    }

    /// Whether `subject` may subscribe to `filter` (a shared subscription is judged by
    /// the filter it shares).
    pub fn may_read(&self, subject: Subject<'_>, filter: &str) -> bool {
        let filter = match SharedFilter::parse(filter) {
            Ok(Some(shared)) => shared.filter,
            _ => filter,
        };
        let mut granted = false;
        for (access, rule) in self.rules(subject) {
            if access == Access::Deny {
                if intersects(&rule, filter) {
                    return false;
                }
            } else if access.reads() && covers(&rule, filter) {
                granted = true;
            }
        }
        granted
    }
}

fn parse_rule(rest: &str) -> Result<Rule, String> {
    let (first, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let (access, filter) = match first {
        "read" => (Access::Read, after.trim()),
        "write" => (Access::Write, after.trim()),
        "readwrite" => (Access::ReadWrite, after.trim()),
        "deny" => (Access::Deny, after.trim()),
        _ => (Access::ReadWrite, rest),
    };
    if filter.is_empty() {
        return Err("a rule needs a topic filter".into());
    }
    validate_topic_filter(filter).map_err(|error| format!("invalid topic filter `{filter}`: {error}"))?;
    Ok(Rule {
        access,
        filter: filter.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# anonymous clients
topic read public/#

user alice
topic readwrite chat/#
topic deny chat/secret/#
topic write $app/alice
user bob
topic read chat/+/bob
pattern readwrite devices/%c/#
pattern read users/%u/#
";

    fn alice() -> Subject<'static> {
        Subject {
            username: Some("alice"),
            client_id: "app-alice-phone",
        }
    }

    fn anonymous() -> Subject<'static> {
        Subject {
            username: None,
            client_id: "anon",
        }
    }

    #[test]
    fn users_get_their_own_rules_and_anonymous_clients_the_leading_ones() {
        let acl = Acl::parse(FILE).expect("parses");
        assert!(acl.may_write(alice(), "chat/room"));
        assert!(!acl.may_write(alice(), "public/news"));
        assert!(acl.may_read(anonymous(), "public/#"));
        assert!(!acl.may_write(anonymous(), "public/news"));
        assert!(!acl.may_read(anonymous(), "chat/#"));
        let bob = Subject {
            username: Some("bob"),
            client_id: "b",
        };
        assert!(acl.may_read(bob, "chat/room/bob"));
        assert!(!acl.may_read(bob, "chat/#"));
        assert!(!acl.may_write(bob, "chat/room/bob"));
        let stranger = Subject {
            username: Some("eve"),
            client_id: "e",
        };
        assert!(
            !acl.may_read(stranger, "public/#"),
            "the anonymous rules are not everyone's"
        );
    }

    #[test]
    fn a_subscription_is_granted_only_when_covered_and_clear_of_denials() {
        let acl = Acl::parse(FILE).expect("parses");
        assert!(acl.may_read(alice(), "chat/room/+"));
        assert!(
            !acl.may_read(alice(), "chat/+"),
            "chat/secret is one of its topics, and denied"
        );
        assert!(!acl.may_read(alice(), "chat/#"), "it meets chat/secret/#");
        assert!(!acl.may_read(alice(), "#"));
        assert!(!acl.may_write(alice(), "chat/secret/plans"));
        assert!(acl.may_read(alice(), "$share/g/chat/room"));
        assert!(!acl.may_read(alice(), "$share/g/#"));
    }

    #[test]
    fn patterns_fill_in_the_user_and_client_id() {
        let acl = Acl::parse(FILE).expect("parses");
        assert!(acl.may_write(alice(), "devices/app-alice-phone/status"));
        assert!(!acl.may_write(alice(), "devices/app-bob-phone/status"));
        assert!(acl.may_read(alice(), "users/alice/#"));
        assert!(!acl.may_read(alice(), "users/bob/#"));
        assert!(
            !acl.may_read(anonymous(), "users/+/#"),
            "%u never stands for anonymous"
        );
        let sneaky = Subject {
            username: Some("#"),
            client_id: "+",
        };
        assert!(
            !acl.may_read(sneaky, "users/x/y"),
            "wildcards are not substituted"
        );
        assert!(!acl.may_write(sneaky, "devices/x/y"));
    }

    #[test]
    fn dollar_topics_need_a_rule_that_names_them() {
        let acl = Acl::parse("topic readwrite #\nuser alice\ntopic write $app/alice\n").expect("parses");
        assert!(!acl.may_read(anonymous(), "$SYS/#"));
        assert!(!acl.may_write(anonymous(), "$app/x"));
        assert!(acl.may_write(alice(), "$app/alice"));
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        assert_eq!(
            Acl::parse("user\n").map(drop),
            Err(AclError {
                line: 1,
                reason: "`user` needs a name".into()
            })
        );
        let error = Acl::parse("# ok\ntopic read a/#/b\n")
            .map(drop)
            .expect_err("invalid filter");
        assert_eq!(error.line, 2);
        assert!(error.reason.contains("a/#/b"), "{}", error.reason);
        assert!(Acl::parse("topics read a\n").is_err());
        assert!(Acl::parse("topic read\n").is_err());
    }
}
