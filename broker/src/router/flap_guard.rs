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
