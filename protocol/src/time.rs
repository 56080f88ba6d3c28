//! Time as the state machines see it: passed in by the caller, never read from a clock.
//!
//! `std::time::Instant::now()` panics on `wasm32-unknown-unknown`, so the state machines
//! take a [`Timestamp`] that the driver builds from whatever clock its platform has
//! (`tokio::time::Instant` in the broker, `performance.now()` in the browser).

use std::ops::Add;
use std::time::Duration;

/// A point in time, in milliseconds since an epoch chosen by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// A timestamp `millis` milliseconds after the driver's epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the driver's epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, rhs: Duration) -> Timestamp {
        let millis = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }
}
