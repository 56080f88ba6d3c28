//! The flap guard: stops two clients with one client id from taking the session from
//! each other in a loop.
//!
//! Each takeover of a client id is recorded. When more than `max_takeovers` happen
//! within `window`, the id is refused new connections for `cooldown` (CONNACK 0x9F,
//! connection rate exceeded), which leaves the current holder in peace. Logged once
//! per episode, counted in `tabmq_flap_guard_refusals_total`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Takeover history per client id.
#[derive(Debug)]
pub(crate) struct FlapGuard {
    max_takeovers: usize,
    window: Duration,
    cooldown: Duration,
    takeovers: HashMap<String, VecDeque<Instant>>,
    blocked_until: HashMap<String, Instant>,
}

/// The guard's verdict on a connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Let it through.
    Allow,
    /// Refuse it: the id is cooling down. `first` is true once per episode (log it).
    Refuse {
        /// Whether this refusal starts the episode.
        first: bool,
    },
}

impl FlapGuard {
    /// A guard with the given thresholds.
    pub(crate) fn new(max_takeovers: u32, window: Duration, cooldown: Duration) -> Self {
        Self {
            max_takeovers: max_takeovers as usize,
            window,
            cooldown,
            takeovers: HashMap::new(),
            blocked_until: HashMap::new(),
        }
    }

    /// Whether a new connection for `client_id` may proceed at `now`.
    pub(crate) fn check(&mut self, client_id: &str, now: Instant) -> Verdict {
        match self.blocked_until.get(client_id) {
            Some(until) if *until > now => Verdict::Refuse { first: false },
            Some(_) => {
                self.blocked_until.remove(client_id);
                self.takeovers.remove(client_id);
                Verdict::Allow
            }
            None => Verdict::Allow,
        }
    }

    /// Records a takeover of `client_id`; refuses it if that makes too many.
    pub(crate) fn record_takeover(&mut self, client_id: &str, now: Instant) -> Verdict {
        let history = self.takeovers.entry(client_id.to_owned()).or_default();
        while history
            .front()
            .is_some_and(|at| now.duration_since(*at) > self.window)
        {
            history.pop_front();
        }
        history.push_back(now);
        if history.len() > self.max_takeovers {
            self.blocked_until
                .insert(client_id.to_owned(), now + self.cooldown);
            return Verdict::Refuse { first: true };
        }
        Verdict::Allow
    }

    /// Forgets ids whose history and cooldown are over (called from the router's tick).
    pub(crate) fn prune(&mut self, now: Instant) {
        self.blocked_until.retain(|_, until| *until > now);
        let window = self.window;
        self.takeovers
            .retain(|_, history| history.back().is_some_and(|at| now.duration_since(*at) <= window));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn guard() -> FlapGuard {
        FlapGuard::new(3, Duration::from_secs(10), Duration::from_secs(30))
    }

    #[test]
    fn takeovers_beyond_the_maximum_within_the_window_start_a_cooldown() {
        let mut guard = guard();
        let start = Instant::now();
        for n in 0..3 {
            assert_eq!(guard.record_takeover("id", start + n * SECOND), Verdict::Allow);
        }
        assert_eq!(
            guard.record_takeover("id", start + 3 * SECOND),
            Verdict::Refuse { first: true }
        );
        assert_eq!(
            guard.check("id", start + 4 * SECOND),
            Verdict::Refuse { first: false },
            "logged once per episode"
        );
        assert_eq!(
            guard.check("other", start + 4 * SECOND),
            Verdict::Allow,
            "per client id"
        );
        assert_eq!(
            guard.check("id", start + 34 * SECOND),
            Verdict::Allow,
            "cooled down"
        );
        assert_eq!(
            guard.record_takeover("id", start + 35 * SECOND),
            Verdict::Allow,
            "history forgotten with the cooldown"
        );
    }

    #[test]
    fn takeovers_spread_wider_than_the_window_never_trip_it() {
        let mut guard = guard();
        let start = Instant::now();
        for n in 0..20 {
            assert_eq!(
                guard.record_takeover("id", start + n * 4 * SECOND),
                Verdict::Allow
            );
        }
    }

    #[test]
    fn prune_forgets_finished_histories_and_cooldowns() {
        let mut guard = guard();
        let start = Instant::now();
        for n in 0..4 {
            guard.record_takeover("flapping", start + n * SECOND);
        }
        guard.record_takeover("calm", start);
        guard.prune(start + 20 * SECOND);
        assert!(!guard.takeovers.contains_key("calm"), "its window is over");
        assert!(guard.blocked_until.contains_key("flapping"), "still cooling down");
        guard.prune(start + 40 * SECOND);
        assert!(guard.takeovers.is_empty() && guard.blocked_until.is_empty());
    }
}
