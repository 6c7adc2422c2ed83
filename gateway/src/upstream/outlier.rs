//! Passive health: endpoints that keep refusing connections are ejected for a while.
//!
//! Time is passed in, never read here, so the rules are testable without sleeping.

use std::time::{Duration, Instant};

use crate::config::{MAX_EJECTION, OutlierPolicy};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassiveHealth {
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
    /// Grows with every ejection and shrinks with every success, so an endpoint that flaps
    /// stays out longer each time (Envoy's ejection multiplier).
    times_ejected: u32,
}

impl PassiveHealth {
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|until| now < until)
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn record_success(&mut self) {
        self.consecutive_failures = 0;
        self.times_ejected = self.times_ejected.saturating_sub(1);
    }

    /// Counts a connect failure; returns the ejection time when this failure ejects the
    /// endpoint. `may_eject` is false when the cluster already has its maximum share ejected.
    pub fn record_failure(
        &mut self,
        now: Instant,
        policy: &OutlierPolicy,
        may_eject: bool,
    ) -> Option<Duration> {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.is_ejected(now)
            || !may_eject
            || self.consecutive_failures < policy.consecutive_errors.max(1)
        {
            return None;
        }
        self.times_ejected = self.times_ejected.saturating_add(1);
        let duration = policy
            .base_ejection
            .saturating_mul(self.times_ejected)
            .min(MAX_EJECTION.max(policy.base_ejection));
        self.ejected_until = Some(now + duration);
        self.consecutive_failures = 0;
        Some(duration)
    }
}

/// Envoy's rule: eject only while the ejected share is below the maximum, checked before the
/// ejection, so a cluster of any size can always lose one endpoint.
pub fn may_eject(ejected: usize, total: usize, max_percent: u32) -> bool {
    total > 0 && ejected * 100 < total * max_percent as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(errors: u32, base_ms: u64) -> OutlierPolicy {
        OutlierPolicy {
            consecutive_errors: errors,
            base_ejection: Duration::from_millis(base_ms),
            max_ejection_percent: 100,
        }
    }

    #[test]
    fn ejects_after_consecutive_failures_and_returns() {
        let now = Instant::now();
        let policy = policy(3, 1000);
        let mut health = PassiveHealth::default();
        assert_eq!(health.record_failure(now, &policy, true), None);
        assert_eq!(health.record_failure(now, &policy, true), None);
        assert_eq!(
            health.record_failure(now, &policy, true),
            Some(Duration::from_secs(1))
        );
        assert!(health.is_ejected(now + Duration::from_millis(999)));
        assert!(!health.is_ejected(now + Duration::from_millis(1000)));
    }

    #[test]
    fn success_resets_the_count() {
        let now = Instant::now();
        let policy = policy(2, 1000);
        let mut health = PassiveHealth::default();
        health.record_failure(now, &policy, true);
        health.record_success();
        assert_eq!(health.record_failure(now, &policy, true), None);
        assert_eq!(health.consecutive_failures(), 1);
    }

    #[test]
    fn repeated_ejections_last_longer_up_to_the_cap() {
        let mut now = Instant::now();
        let policy = policy(1, 100_000);
        let mut health = PassiveHealth::default();
        let mut durations = Vec::new();
        for _ in 0..5 {
            durations.push(health.record_failure(now, &policy, true).unwrap());
            now += Duration::from_secs(1000);
        }
        let secs: Vec<u64> = durations.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [100, 200, 300, 300, 300]);
    }

    #[test]
    fn ejection_share_is_limited() {
        assert!(may_eject(0, 2, 10));
        assert!(!may_eject(1, 2, 10));
        assert!(may_eject(1, 2, 100));
        assert!(!may_eject(2, 2, 100));
        assert!(may_eject(1, 20, 10));
        assert!(!may_eject(2, 20, 10));
        assert!(!may_eject(0, 0, 100));

        let now = Instant::now();
        let mut health = PassiveHealth::default();
        assert_eq!(health.record_failure(now, &policy(1, 10), false), None);
    }
}
