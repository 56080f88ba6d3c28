//! The value of a client id's entry in the ownership bucket, as text:
//! `<node> connected|offline[ takeovers=<ms>,<ms>…][ blocked=<ms>]`: the node holding
//! it, whether its client is connected there, the times (Unix ms) of its recent
//! takeovers between nodes, and until when new connections are refused because there
//! were too many (the flap guard, cluster-wide).

use std::time::Duration;

/// A client id's ownership entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OwnerEntry {
    /// The node holding the client id.
    pub(super) node: String,
    /// Whether its client is connected there.
    pub(super) connected: bool,
    /// When other nodes took it over recently (Unix ms), oldest first.
    pub(super) takeovers: Vec<u64>,
    /// Until when (Unix ms) new connections are refused, if they are.
    pub(super) blocked_until: Option<u64>,
}

/// The flap guard's limits, applied to takeovers between nodes with the entry's history.
#[derive(Debug, Clone, Copy)]
pub struct FlapLimits {
    /// Takeovers within `window` that stop the loop.
    pub max_takeovers: u32,
    /// The window.
    pub window: Duration,
    /// How long new connections are refused then.
    pub cooldown: Duration,
}

impl OwnerEntry {
    /// Held by `node`, connected or not, with no history.
    pub(super) fn new(node: &str, connected: bool) -> Self {
        Self {
            node: node.to_owned(),
            connected,
            takeovers: Vec::new(),
            blocked_until: None,
        }
    }

    /// Reads an entry's value; `None` if it is not one.
    pub(super) fn parse(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?;
        let mut parts = text.split(' ');
        let node = parts.next()?.to_owned();
        let connected = match parts.next()? {
            "connected" => true,
            "offline" => false,
            _ => return None,
        };
        let mut entry = Self::new(&node, connected);
        for part in parts {
            match part.split_once('=')? {
                ("takeovers", times) => {
                    entry.takeovers = times.split(',').map(str::parse).collect::<Result<_, _>>().ok()?;
                }
                ("blocked", until) => entry.blocked_until = Some(until.parse().ok()?),
                _ => return None,
            }
        }
        Some(entry)
    }

    /// The value to write.
    pub(super) fn to_bytes(&self) -> bytes::Bytes {
        let state = if self.connected { "connected" } else { "offline" };
        let mut text = format!("{} {state}", self.node);
        if !self.takeovers.is_empty() {
            let times: Vec<String> = self.takeovers.iter().map(u64::to_string).collect();
            text.push_str(&format!(" takeovers={}", times.join(",")));
        }
        if let Some(until) = self.blocked_until {
            text.push_str(&format!(" blocked={until}"));
        }
        text.into()
    }

    /// Whether new connections are refused at `now_ms`.
    pub(super) fn is_blocked(&self, now_ms: u64) -> bool {
        self.blocked_until.is_some_and(|until| until > now_ms)
    }

    /// Records a takeover at `now_ms`, forgetting those older than the window; `true`
    /// if that makes too many, and then blocks new connections for the cooldown.
    pub(super) fn record_takeover(&mut self, now_ms: u64, limits: FlapLimits) -> bool {
        let window = limits.window.as_millis() as u64;
        self.takeovers.retain(|at| now_ms.saturating_sub(*at) <= window);
        self.takeovers.push(now_ms);
        if self.takeovers.len() > limits.max_takeovers as usize {
            self.blocked_until = Some(now_ms + limits.cooldown.as_millis() as u64);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FlapLimits = FlapLimits {
        max_takeovers: 2,
        window: Duration::from_secs(10),
        cooldown: Duration::from_secs(30),
    };

    #[test]
    fn an_entry_comes_back_from_its_value() {
        let mut entry = OwnerEntry::new("node-1", true);
        assert_eq!(entry.to_bytes(), "node-1 connected");
        entry.takeovers = vec![5, 7];
        entry.blocked_until = Some(9);
        assert_eq!(entry.to_bytes(), "node-1 connected takeovers=5,7 blocked=9");
        assert_eq!(OwnerEntry::parse(&entry.to_bytes()), Some(entry));
        assert_eq!(
            OwnerEntry::parse(b"node-2 offline"),
            Some(OwnerEntry::new("node-2", false))
        );
        assert_eq!(OwnerEntry::parse(b"node-2 gone"), None);
        assert_eq!(OwnerEntry::parse(b"node-2 offline takeovers=x"), None);
    }

    #[test]
    fn too_many_takeovers_in_the_window_block_for_the_cooldown() {
        let mut entry = OwnerEntry::new("n", true);
        assert!(!entry.record_takeover(1_000, LIMITS));
        assert!(!entry.record_takeover(2_000, LIMITS));
        assert!(entry.record_takeover(3_000, LIMITS), "a third within 10 s");
        assert!(entry.is_blocked(32_999));
        assert!(!entry.is_blocked(33_000));
        let mut spread = OwnerEntry::new("n", true);
        for at in [0, 11_000, 22_000, 33_000] {
            assert!(!spread.record_takeover(at, LIMITS), "one per window at {at}");
        }
    }
}
