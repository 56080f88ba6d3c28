//! The tab lock where Web Locks are missing.
//!
//! `navigator.locks` exists only in secure contexts (https, localhost). A page opened at
//! `http://192.168.1.20:8080/` has IndexedDB and BroadcastChannel but no Web Locks, so
//! there the leader holds a lease instead: a record `[tabId, expiresAtMs]` in IndexedDB,
//! claimed and renewed in one read-write transaction each (IndexedDB runs them one at a
//! time, so two tabs cannot both claim it). The leader renews it every [`RENEW_MS`]; a tab
//! may take it once it has expired, [`TTL_MS`] after the last renewal, or at once when
//! the leader gave it up (page closed, device id changed). A leader that finds its lease
//! taken (its tab was frozen longer than the lease) closes its connection and follows.

/// How long a lease lasts after its last renewal.
pub const TTL_MS: f64 = 8_000.0;

/// How often the leader renews its lease, and followers try to claim it.
pub const RENEW_MS: u32 = 1_000;

/// A lease as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The tab holding it.
    pub owner: String,
    /// When it expires, in milliseconds since the epoch.
    pub expires_ms: f64,
}

/// Whether `tab` may take (or renew) the lease at `now_ms`, given the stored one.
pub fn may_claim(stored: Option<&Lease>, tab: &str, now_ms: f64) -> bool {
    stored.is_none_or(|lease| lease.owner == tab || lease.expires_ms <= now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(owner: &str, expires_ms: f64) -> Lease {
        Lease {
            owner: owner.into(),
            expires_ms,
        }
    }

    #[test]
    fn a_lease_is_taken_when_free_or_expired_and_renewed_only_by_its_owner() {
        assert!(may_claim(None, "a", 0.0));
        assert!(may_claim(Some(&lease("a", 100.0)), "a", 50.0), "renewal");
        assert!(
            !may_claim(Some(&lease("a", 100.0)), "b", 50.0),
            "held by another tab"
        );
        assert!(may_claim(Some(&lease("a", 100.0)), "b", 100.0), "expired");
    }
}
