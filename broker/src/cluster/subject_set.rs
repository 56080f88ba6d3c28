//! Sets of NATS subject patterns as a JetStream consumer takes them.
//!
//! A consumer's filter subjects may not overlap: no subject may match two of them. A
//! node's MQTT filters often do (`a/#` and `a/+/c`), so the node asks for a cover of
//! them instead: patterns that do not overlap and match at least every subject the
//! filters match. Two overlapping patterns are replaced by the narrowest one matching
//! both (`a.*.c` and `a.b.*` by `a.*.*`); a node then receives a few messages none of
//! its sessions wants, and its own subscription index drops them. Past [`MAX_PATTERNS`]
//! the cover coarsens to first levels, then to everything.

use std::collections::BTreeSet;

/// The most patterns a cover holds: JetStream checks each consumer's patterns against
/// each other, and every message against them.
pub(super) const MAX_PATTERNS: usize = 256;

/// Whether the NATS `pattern` (`*` one token, `>` one or more at the end) matches `subject`.
pub(super) fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in pattern.split('.') {
        match token {
            ">" => return subject_tokens.next().is_some(),
            "*" => {
                if subject_tokens.next().is_none() {
                    return false;
                }
            }
            literal => {
                if subject_tokens.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    subject_tokens.next().is_none()
}

/// Whether some subject matches both patterns.
fn overlap(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.split('.'), b.split('.'));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) if x == y || x == "*" || y == "*" => {}
            _ => return false,
        }
    }
}

/// The narrowest pattern matching every subject either of two overlapping patterns does.
fn widened(a: &str, b: &str) -> String {
    let mut tokens = Vec::new();
    for (x, y) in a.split('.').zip(b.split('.')) {
        if x == ">" || y == ">" {
            tokens.push(">");
            break;
        }
        tokens.push(if x == y { x } else { "*" });
    }
    tokens.join(".")
}

/// Patterns that do not overlap and match every subject `patterns` match, each under
/// `base` (whose own tokens are kept when coarsening).
pub(super) fn cover<'a>(base: &str, patterns: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let patterns: BTreeSet<&str> = patterns.into_iter().collect();
    if let Some(exact) = disjoint(patterns.iter().map(|p| (*p).to_owned()).collect()) {
        return exact;
    }
    // Each pattern cut after its first level under `base`.
    let depth = base.split('.').count() + 1;
    let coarse = patterns
        .iter()
        .map(|pattern| {
            let tokens: Vec<&str> = pattern.split('.').collect();
            if tokens.len() > depth {
                format!("{}.>", tokens[..depth].join("."))
            } else {
                (*pattern).to_owned()
            }
        })
        .collect();
    disjoint(coarse).unwrap_or_else(|| vec![format!("{base}.>")])
}

/// Merges overlapping patterns until none overlap; `None` when more than [`MAX_PATTERNS`]
/// remain (or more than four times as many are given: merging costs their square).
fn disjoint(patterns: BTreeSet<String>) -> Option<Vec<String>> {
    if patterns.len() > 4 * MAX_PATTERNS {
        return None;
    }
    let mut result: Vec<String> = Vec::new();
    for mut pattern in patterns {
        while let Some(at) = result.iter().position(|kept| overlap(kept, &pattern)) {
            let kept = result.swap_remove(at);
            pattern = widened(&kept, &pattern);
        }
        result.push(pattern);
    }
    result.sort();
    (result.len() <= MAX_PATTERNS).then_some(result)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn overlapping_patterns_merge_into_the_narrowest_common_one() {
        assert_eq!(cover("p", ["p.a.*.c", "p.a.b.*"]), ["p.a.*.*"]);
        assert_eq!(cover("p", ["p.a.>", "p.a.b"]), ["p.a.>"]);
        assert_eq!(cover("p", ["p.a", "p.a.>"]), ["p.a", "p.a.>"]);
        assert_eq!(cover("p", ["p.a.b", "p.c.d"]), ["p.a.b", "p.c.d"]);
        assert_eq!(cover("p", ["p.a.b", "p.a.b"]), ["p.a.b"]);
        assert_eq!(cover("p", ["p.a.b", "p.*.c", "p.a.*"]), ["p.*.*"]);
    }

    #[test]
    fn too_many_patterns_coarsen_to_first_levels_then_to_everything() {
        let many: Vec<String> = (0..MAX_PATTERNS + 1)
            .map(|i| format!("p.m.t{}.x{i}", i % 3))
            .collect();
        assert_eq!(
            cover("p.m", many.iter().map(String::as_str)),
            ["p.m.t0.>", "p.m.t1.>", "p.m.t2.>"]
        );
        let wide: Vec<String> = (0..MAX_PATTERNS + 1).map(|i| format!("p.m.t{i}.x")).collect();
        assert_eq!(cover("p.m", wide.iter().map(String::as_str)), ["p.m.>"]);
    }

    fn pattern() -> impl Strategy<Value = String> {
        let token = prop_oneof![Just("a"), Just("b"), Just("*")];
        (prop::collection::vec(token, 1..4), any::<bool>()).prop_map(|(tokens, tail)| {
            let mut pattern = format!("p.{}", tokens.join("."));
            if tail {
                pattern.push_str(".>");
            }
            pattern
        })
    }

    fn subject() -> impl Strategy<Value = String> {
        prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 1..6)
            .prop_map(|tokens| format!("p.{}", tokens.join(".")))
    }

    proptest! {
        #[test]
        fn a_cover_does_not_overlap_and_matches_all_its_patterns_match(
            patterns in prop::collection::vec(pattern(), 0..8),
            subjects in prop::collection::vec(subject(), 1..20),
        ) {
            let covered = cover("p", patterns.iter().map(String::as_str));
            for subject in &subjects {
                let matching = covered.iter().filter(|c| matches(c, subject)).count();
                prop_assert!(matching <= 1, "{subject} matched twice by {covered:?}");
                if patterns.iter().any(|p| matches(p, subject)) {
                    prop_assert_eq!(matching, 1, "{} lost by {:?}", subject, covered);
                }
            }
            for (i, a) in covered.iter().enumerate() {
                for b in &covered[i + 1..] {
                    prop_assert!(!overlap(a, b), "{a} and {b}");
                }
            }
        }
    }
}
