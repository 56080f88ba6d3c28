//! The broker's clocks: a monotonic one for the protocol state machines, and Unix
//! time for what is stored (expiry instants must survive a restart).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tabmq_protocol::Timestamp;

/// Monotonic time since the broker started, as the protocol crate wants it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn start() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// Now, for the state machines.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// The monotonic instant of a state machine timestamp (for timers).
    pub fn instant(&self, at: Timestamp) -> Instant {
        self.start + std::time::Duration::from_millis(at.as_millis())
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
