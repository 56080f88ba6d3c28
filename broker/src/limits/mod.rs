//! Limits against floods: per client address (connections held, new connections per
//! second) and per connection (PUBLISH messages and bytes per second). Each refusal is
//! counted in `/metrics`.
//!
//! - [`bucket`]: the token bucket behind the rates;
//! - [`PerAddress`]: the per-address table, checked at accept.

pub mod bucket;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use self::bucket::TokenBucket;
use crate::config::Limits;

/// Addresses remembered before idle ones (no connection, bucket full) are forgotten.
const FORGET_IDLE_ABOVE: usize = 10_000;

/// Why a connection from an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRefusal {
    /// It holds `max_connections_per_ip` already.
    TooManyConnections,
    /// It opened connections faster than `max_connect_rate_per_ip`.
    TooFast,
}

#[derive(Debug)]
struct Address {
    open: usize,
    bucket: TokenBucket,
}

/// Connections and connection rate per client address.
#[derive(Debug)]
pub struct PerAddress {
    max_connections: usize,
    rate: f64,
    burst: f64,
    table: Mutex<HashMap<IpAddr, Address>>,
}

/// One accepted connection, counted against its address until dropped.
#[derive(Debug)]
pub struct AddressSlot {
    limits: Arc<PerAddress>,
    address: IpAddr,
}

impl PerAddress {
    /// The limits `[limits]` sets.
    pub fn new(limits: &Limits) -> Arc<Self> {
        Arc::new(Self {
            max_connections: limits.max_connections_per_ip,
            rate: f64::from(limits.max_connect_rate_per_ip),
            burst: f64::from(limits.connect_burst_per_ip),
            table: Mutex::default(),
        })
    }

    /// Admits a new connection from `address`, or says why not.
    pub fn admit(self: &Arc<Self>, address: IpAddr, now: Instant) -> Result<AddressSlot, AddressRefusal> {
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if table.len() > FORGET_IDLE_ABOVE {
            table.retain(|_, entry| entry.open > 0 || !entry.bucket.is_full(now));
        }
        let entry = table.entry(address).or_insert_with(|| Address {
            open: 0,
            bucket: TokenBucket::new(self.rate, self.burst, now),
        });
        if entry.open >= self.max_connections {
            return Err(AddressRefusal::TooManyConnections);
        }
        if !entry.bucket.take(1.0, now) {
            return Err(AddressRefusal::TooFast);
        }
        entry.open += 1;
        Ok(AddressSlot {
            limits: self.clone(),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut table = self
            .limits
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = table.get_mut(&self.address) {
            entry.open = entry.open.saturating_sub(1);
        }
    }
}

/// A connection's PUBLISH rate: messages and payload bytes per second, each a token
/// bucket holding one second's worth; `None` where unlimited.
#[derive(Debug)]
pub struct PublishRate {
    messages: Option<TokenBucket>,
    bytes: Option<TokenBucket>,
}

impl PublishRate {
    /// The rates `[limits]` sets.
    pub fn new(limits: &Limits, now: Instant) -> Self {
        let bucket = |rate: u64| (rate > 0).then(|| TokenBucket::new(rate as f64, rate as f64, now));
        Self {
            messages: bucket(limits.max_publish_rate),
            bytes: bucket(limits.max_publish_bytes_rate),
        }
    }

    /// Counts a PUBLISH of `bytes` payload bytes at the time `now` gives (asked only when
    /// a rate is set); false when it exceeds a rate.
    pub fn allow(&mut self, bytes: usize, now: impl FnOnce() -> Instant) -> bool {
        if self.messages.is_none() && self.bytes.is_none() {
            return true;
        }
        let now = now();
        let messages = self.messages.as_mut().is_none_or(|bucket| bucket.take(1.0, now));
        let bytes = self
            .bytes
            .as_mut()
            .is_none_or(|bucket| bucket.take(bytes as f64, now));
        messages && bytes
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(per_ip: usize, rate: u32, burst: u32) -> Limits {
        Limits {
            max_connections_per_ip: per_ip,
            max_connect_rate_per_ip: rate,
            connect_burst_per_ip: burst,
            ..Limits::default()
        }
    }

    #[test]
    fn an_address_holds_at_most_its_connections_and_gets_them_back() {
        let table = PerAddress::new(&limits(2, 1000, 1000));
        let now = Instant::now();
        let address: IpAddr = "127.0.0.1".parse().expect("address");
        let first = table.admit(address, now).expect("first");
        let _second = table.admit(address, now).expect("second");
        assert_eq!(
            table.admit(address, now).map(drop),
            Err(AddressRefusal::TooManyConnections)
        );
        assert!(
            table.admit("127.0.0.2".parse().expect("address"), now).is_ok(),
            "per address"
        );
        drop(first);
        assert!(
            table.admit(address, now).is_ok(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn an_address_opens_connections_at_most_at_its_rate_after_a_burst() {
        let table = PerAddress::new(&limits(1000, 10, 3));
        let now = Instant::now();
        let address: IpAddr = "10.1.2.3".parse().expect("address");
        let held: Vec<_> = (0..3)
            .map(|_| table.admit(address, now).expect("burst"))
            .collect();
        assert_eq!(table.admit(address, now).map(drop), Err(AddressRefusal::TooFast));
        drop(held);
        assert_eq!(
            table.admit(address, now).map(drop),
            Err(AddressRefusal::TooFast),
            "closing does not refill"
        );
        assert!(table.admit(address, now + Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn a_publisher_over_its_rates_is_told_so() {
        let now = Instant::now();
        let mut messages = PublishRate::new(
            &Limits {
                max_publish_rate: 2,
                ..Limits::default()
            },
            now,
        );
        assert!(messages.allow(10, || now) && messages.allow(10, || now));
        assert!(!messages.allow(10, || now));
        let mut bytes = PublishRate::new(
            &Limits {
                max_publish_bytes_rate: 100,
                ..Limits::default()
            },
            now,
        );
        assert!(bytes.allow(60, || now));
        assert!(!bytes.allow(60, || now));
        assert!(bytes.allow(60, || now + Duration::from_secs(1)));
        assert!(
            PublishRate::new(&Limits::default(), now).allow(1 << 30, || now),
            "unlimited by default"
        );
    }
}
