//! When to look a DNS name up again. Discovery (network gateway hostnames) and the gateway
//! (ServiceEntry `resolution: DNS` hosts) follow the same rule and differ only in its bounds.

use std::time::Duration;

/// The bounds a re-resolution delay is held within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshBounds {
    /// Asking more often than this loads the DNS server for nothing (TTL 0 answers).
    pub min: Duration,
    /// Asking at least this often notices a moved host even under a long TTL.
    pub max: Duration,
}

impl RefreshBounds {
    /// After an answer valid for `ttl`.
    pub fn after_answer(&self, ttl: Duration) -> Duration {
        ttl.clamp(self.min, self.max)
    }

    /// After `failures` failed lookups in a row: doubling from the minimum, up to the maximum.
    pub fn after_failures(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(8);
        self.min.saturating_mul(factor).min(self.max)
    }
}
