//! Reconnect delays: exponential, jittered, reset after a stream that worked.
//!
//! Jitter matters here: when discovery restarts, every gateway of the mesh loses its stream at
//! the same instant, and without jitter they would all come back in lockstep.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    base: Duration,
    random: XorShift,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff::with_seed(min, max, process_random_seed())
    }

    fn with_seed(min: Duration, max: Duration, seed: u64) -> Self {
        let max = max.max(min);
        Backoff {
            min,
            max,
            base: min,
            random: XorShift::new(seed),
        }
    }

    /// The delay before the next attempt: uniform in [base/2, 3·base/2], kept within
    /// [min, max]; the base doubles each time.
    pub fn next_delay(&mut self) -> Duration {
        let spread = self.random.unit_interval();
        let delay = self.base.mul_f64(0.5 + spread).clamp(self.min, self.max);
        self.base = self.base.saturating_mul(2).min(self.max);
        delay
    }

    /// After a stream that delivered configuration, the next failure is a fresh one.
    pub fn reset(&mut self) {
        self.base = self.min;
    }
}

/// Seeds the jitter from std's per-process random hasher keys, so gateways started together
/// still draw different delays, without a dependency on a random-number crate.
fn process_random_seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(u64::from(std::process::id()));
    hasher.finish()
}

/// Marsaglia's xorshift64: plenty for spreading reconnects, not for anything secret.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Zero is xorshift's one fixed point.
        XorShift(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// A value in [0, 1).
    fn unit_interval(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        // The top 53 bits fill an f64 mantissa exactly.
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(30);

    #[test]
    fn delays_stay_within_min_and_max() {
        for seed in 1..200 {
            let mut backoff = Backoff::with_seed(MIN, MAX, seed);
            for _ in 0..20 {
                let delay = backoff.next_delay();
                assert!((MIN..=MAX).contains(&delay), "seed {seed}: {delay:?}");
            }
        }
    }

    #[test]
    fn delays_grow_roughly_exponentially() {
        let mut backoff = Backoff::with_seed(MIN, MAX, 42);
        let delays: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
        // Attempt n lies in [100ms·2^n / 2, 100ms·2^n · 3/2].
        for (attempt, delay) in delays.iter().enumerate() {
            let base = MIN * 2u32.pow(u32::try_from(attempt).expect("small"));
            assert!(*delay >= (base / 2).max(MIN), "{attempt}: {delay:?}");
            assert!(*delay <= base * 3 / 2, "{attempt}: {delay:?}");
        }
        assert!(delays[5] > delays[0] * 4, "{delays:?}");
    }

    #[test]
    fn delays_are_jittered() {
        let mut first = Backoff::with_seed(MIN, MAX, 1);
        let mut second = Backoff::with_seed(MIN, MAX, 2);
        let a: Vec<Duration> = (0..8).map(|_| first.next_delay()).collect();
        let b: Vec<Duration> = (0..8).map(|_| second.next_delay()).collect();
        assert_ne!(a, b);
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::with_seed(MIN, MAX, 7);
        for _ in 0..10 {
            backoff.next_delay();
        }
        assert!(backoff.next_delay() >= MAX / 2);
        backoff.reset();
        assert!(backoff.next_delay() <= MIN * 3 / 2);
    }

    #[test]
    fn unit_interval_is_half_open() {
        let mut random = XorShift::new(0);
        for _ in 0..10_000 {
            let value = random.unit_interval();
            assert!((0.0..1.0).contains(&value), "{value}");
        }
    }
}
