//! A token bucket: `rate` tokens a second, holding at most `burst`.

use std::time::Instant;

/// Tokens refilled continuously up to a ceiling.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
    }

    /// Takes `cost` tokens if there are that many; whether it could.
    pub fn take(&mut self, cost: f64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely (nothing to remember about it).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 5.0, start);
        assert!((0..5).all(|_| bucket.take(1.0, start)));
        assert!(!bucket.take(1.0, start), "the burst is spent");
        assert!(
            bucket.take(1.0, start + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!bucket.take(1.0, start + Duration::from_millis(100)));
        assert!(bucket.is_full(start + Duration::from_secs(10)));
        assert!(
            !bucket.take(6.0, start + Duration::from_secs(10)),
            "never more than the burst"
        );
    }
}
