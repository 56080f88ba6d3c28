//! What the router has handed a connection that the connection has not taken yet.
//!
//! A connection that cannot write to its socket stops taking messages from its inbox;
//! the router sees its backlog grow and stops handing it QoS 0 messages beyond the
//! bound (QoS 1/2 messages are bounded by the session's queue limits instead).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Messages and payload bytes waiting in one connection's inbox.
#[derive(Debug, Default)]
pub struct Backlog {
    messages: AtomicUsize,
    bytes: AtomicUsize,
}

impl Backlog {
    /// The router handed over a message of `bytes`.
    pub fn add(&self, bytes: usize) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The connection took a message of `bytes`.
    pub fn take(&self, bytes: usize) {
        self.messages.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Whether the backlog has reached `max_messages` or `max_bytes`.
    pub fn is_full(&self, max_messages: usize, max_bytes: usize) -> bool {
        self.messages.load(Ordering::Relaxed) >= max_messages
            || self.bytes.load(Ordering::Relaxed) >= max_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::Backlog;

    #[test]
    fn full_by_count_or_by_bytes_and_empty_again_once_taken() {
        let backlog = Backlog::default();
        assert!(!backlog.is_full(2, 1_000));
        backlog.add(10);
        backlog.add(10);
        assert!(backlog.is_full(2, 1_000), "two messages");
        backlog.take(10);
        assert!(!backlog.is_full(2, 1_000));
        backlog.add(2_000);
        assert!(backlog.is_full(10, 1_000), "2 kB");
        backlog.take(2_000);
        backlog.take(10);
        assert!(!backlog.is_full(1, 1));
    }
}
