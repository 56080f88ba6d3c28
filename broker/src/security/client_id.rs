//! Client-id ownership: `authz.client_id_pattern`, such as `*-%u-*`, is what a user's client
//! ids must look like, `%u` standing for the user's name and `*` for any text (empty
//! too). So bob can never connect as `chat-alice-phone`, and never take over alice's
//! session. Anonymous clients may use only client ids no user could own: ids that do not
//! fit the pattern with `%u` read as any non-empty text.

/// A parsed `client_id_pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdPattern {
    pattern: String,
}

/// One piece of a pattern, once `%u` is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    /// `*`: any text, possibly empty.
    Any,
    /// `%u` for an anonymous client: any non-empty text.
    SomeUser,
}

impl ClientIdPattern {
    /// The pattern text, which must name the user (`%u`): otherwise it would not tell
    /// one user's ids from another's.
    pub fn parse(pattern: &str) -> Result<Self, &'static str> {
        if !pattern.contains("%u") {
            return Err("must contain %u, the user name");
        }
        Ok(Self {
            pattern: pattern.to_owned(),
        })
    }

    /// Whether `client_id` is one that the user `username` (`None`: anonymous) may use.
    pub fn allows(&self, client_id: &str, username: Option<&str>) -> bool {
        match username {
            Some(user) => glob(&self.pieces(Some(user)), client_id),
            None => !glob(&self.pieces(None), client_id),
        }
    }

    fn pieces<'a>(&'a self, user: Option<&'a str>) -> Vec<Piece<'a>> {
        let mut pieces = Vec::new();
        for (index, part) in self.pattern.split("%u").enumerate() {
            if index > 0 {
                pieces.push(user.map_or(Piece::SomeUser, Piece::Text));
            }
            for (star, text) in part.split('*').enumerate() {
                if star > 0 {
                    pieces.push(Piece::Any);
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(text));
                }
            }
        }
        pieces
    }
}

/// Whether `text` fits `pieces` whole (backtracking over the wildcards; patterns are short).
fn glob(pieces: &[Piece<'_>], text: &str) -> bool {
    match pieces.split_first() {
        None => text.is_empty(),
        Some((Piece::Text(literal), rest)) => text.strip_prefix(literal).is_some_and(|tail| glob(rest, tail)),
        Some((wildcard, rest)) => {
            let first = usize::from(*wildcard == Piece::SomeUser);
            text.char_indices()
                .map(|(at, _)| at)
                .chain([text.len()])
                .filter(|&at| at >= first)
                .any(|at| glob(rest, &text[at..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_may_use_only_ids_that_name_them() {
        let pattern = ClientIdPattern::parse("*-%u-*").expect("valid");
        assert!(pattern.allows("chat-alice-phone", Some("alice")));
        assert!(pattern.allows("-alice-", Some("alice")));
        assert!(!pattern.allows("chat-alice-phone", Some("bob")));
        assert!(!pattern.allows("chat-alicee-phone", Some("alice")));
        assert!(!pattern.allows("alice", Some("alice")));
        let exact = ClientIdPattern::parse("%u").expect("valid");
        assert!(exact.allows("bob", Some("bob")));
        assert!(!exact.allows("bob2", Some("bob")));
    }

    #[test]
    fn anonymous_clients_may_not_use_an_id_a_user_could_own() {
        let pattern = ClientIdPattern::parse("*-%u-*").expect("valid");
        assert!(!pattern.allows("chat-alice-phone", None));
        assert!(
            pattern.allows("chat--phone", None),
            "no user name fits an empty %u"
        );
        assert!(pattern.allows("sensor17", None));
    }

    #[test]
    fn a_pattern_without_the_user_is_refused() {
        assert!(ClientIdPattern::parse("app-*").is_err());
    }
}
