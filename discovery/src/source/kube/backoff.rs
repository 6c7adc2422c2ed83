//! The pause between a failed list or watch and the next attempt.

use std::time::Duration;

use kube::runtime::utils::Backoff;

/// Doubling from `initial` up to `max`, back to `initial` after a success. kube-rs's own
/// policy starts at 800 ms; tests need shorter pauses to stay fast.
#[derive(Debug, Clone)]
pub(super) struct RetryBackoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl RetryBackoff {
    pub(super) fn new(initial: Duration, max: Duration) -> Self {
        RetryBackoff {
            initial,
            max: max.max(initial),
            next: initial,
        }
    }
}

impl Iterator for RetryBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let current = self.next;
        self.next = (current * 2).min(self.max);
        Some(current)
    }
}

impl Backoff for RetryBackoff {
    fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = RetryBackoff::new(Duration::from_millis(100), Duration::from_millis(300));
        let pauses: Vec<_> = backoff.by_ref().take(4).collect();
        assert_eq!(
            pauses,
            [100, 200, 300, 300].map(Duration::from_millis).to_vec()
        );
        backoff.reset();
        assert_eq!(backoff.next(), Some(Duration::from_millis(100)));
    }
}
