//! Reconnect delays: exponential, capped, with jitter, reset after a stable connection.

/// Backoff settings, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffOptions {
    /// First delay.
    pub initial_ms: u32,
    /// Largest delay.
    pub max_ms: u32,
    /// A connection that lasts this long resets the delay to `initial_ms`.
    pub stable_ms: u32,
}

impl Default for BackoffOptions {
    fn default() -> Self {
        Self {
            initial_ms: 500,
            max_ms: 30_000,
            stable_ms: 10_000,
        }
    }
}

/// The delay schedule of one client.
#[derive(Debug, Clone)]
pub struct Backoff {
    options: BackoffOptions,
    attempt: u32,
}

impl Backoff {
    /// A schedule at its first attempt.
    pub fn new(options: BackoffOptions) -> Self {
        Self { options, attempt: 0 }
    }

    /// Attempts made since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The next delay: `initial * 2^attempt`, capped, then scaled by `jitter` (0.0 to
    /// 1.0, random) into the upper half, so clients that dropped together spread out.
    pub fn next_delay(&mut self, jitter: f64) -> u32 {
        let exponential = u64::from(self.options.initial_ms) << self.attempt.min(20);
        let capped = exponential.min(u64::from(self.options.max_ms)) as f64;
        self.attempt = self.attempt.saturating_add(1);
        (capped * (0.5 + 0.5 * jitter.clamp(0.0, 1.0))).round() as u32
    }

    /// A connection ended after lasting `lasted_ms`: a stable one resets the schedule.
    pub fn connection_ended(&mut self, lasted_ms: f64) {
        if lasted_ms >= f64::from(self.options.stable_ms) {
            self.attempt = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stay_in_the_upper_half() {
        let mut backoff = Backoff::new(BackoffOptions {
            initial_ms: 100,
            max_ms: 1000,
            stable_ms: 5000,
        });
        let full: Vec<u32> = (0..6).map(|_| backoff.next_delay(1.0)).collect();
        assert_eq!(full, [100, 200, 400, 800, 1000, 1000]);
        let mut backoff = Backoff::new(BackoffOptions {
            initial_ms: 100,
            max_ms: 1000,
            stable_ms: 5000,
        });
        assert_eq!(backoff.next_delay(0.0), 50, "jitter never goes below half");
    }

    #[test]
    fn only_a_stable_connection_resets_the_schedule() {
        let mut backoff = Backoff::new(BackoffOptions {
            initial_ms: 100,
            max_ms: 1000,
            stable_ms: 5000,
        });
        backoff.next_delay(1.0);
        backoff.next_delay(1.0);
        backoff.connection_ended(200.0);
        assert_eq!(backoff.next_delay(1.0), 400, "a short connection does not reset");
        backoff.connection_ended(6000.0);
        assert_eq!(backoff.next_delay(1.0), 100);
    }
}
