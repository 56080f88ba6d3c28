//! Repeated authentication failures from one address are answered ever more slowly:
//! the refusal waits `BASE_DELAY` doubled per failure, up to `MAX_DELAY`, so guessing
//! costs the guesser. An address is forgotten `FORGET_AFTER` after its last failure; the
//! log holds at most `MAX_ADDRESSES` (the oldest goes first), so a flood of addresses
//! cannot grow it without end. Loopback addresses are not exempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The delay after the first failure.
pub const BASE_DELAY: Duration = Duration::from_millis(250);
/// The longest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(8);
/// How long after its last failure an address starts afresh.
pub const FORGET_AFTER: Duration = Duration::from_secs(300);
const MAX_ADDRESSES: usize = 10_000;

/// Failures per address.
#[derive(Debug, Default)]
pub struct FailureLog {
    failures: HashMap<IpAddr, (u32, Instant)>,
}

impl FailureLog {
    /// Records a failure from `address` at `now`; returns how long its refusal waits.
    pub fn record(&mut self, address: IpAddr, now: Instant) -> Duration {
        if self.failures.len() >= MAX_ADDRESSES && !self.failures.contains_key(&address) {
            self.failures
                .retain(|_, (_, last)| now.duration_since(*last) < FORGET_AFTER);
            if self.failures.len() >= MAX_ADDRESSES
                && let Some(oldest) = self
                    .failures
                    .iter()
                    .min_by_key(|(_, (_, last))| *last)
                    .map(|(a, _)| *a)
            {
                self.failures.remove(&oldest);
            }
        }
        let entry = self.failures.entry(address).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        delay_after(entry.0)
    }
}

/// The wait after `failures` failures in a row.
pub fn delay_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BASE_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_per_failure_up_to_the_cap_and_is_forgotten() {
        let mut log = FailureLog::default();
        let address: IpAddr = "127.0.0.1".parse().expect("address");
        let other: IpAddr = "10.0.0.2".parse().expect("address");
        let start = Instant::now();
        let delays: Vec<Duration> = (0..7).map(|_| log.record(address, start)).collect();
        assert_eq!(delays[0], BASE_DELAY);
        assert_eq!(delays[1], BASE_DELAY * 2);
        assert_eq!(delays[2], BASE_DELAY * 4);
        assert_eq!(delays[6], MAX_DELAY);
        assert_eq!(log.record(other, start), BASE_DELAY, "per address");
        assert_eq!(log.record(address, start + FORGET_AFTER), BASE_DELAY, "forgotten");
    }

    #[test]
    fn the_log_stays_bounded() {
        let mut log = FailureLog::default();
        let now = Instant::now();
        for n in 0..(MAX_ADDRESSES as u32 + 50) {
            log.record(
                IpAddr::from(n.to_be_bytes()),
                now + Duration::from_millis(n.into()),
            );
        }
        assert!(log.failures.len() <= MAX_ADDRESSES);
    }
}
