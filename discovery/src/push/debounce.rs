//! Coalesces a burst of change notifications into one push.
//!
//! A push is due once the inputs have been quiet for `quiet`, or `max_delay` after the first
//! change of the burst, whichever comes first: a trickle of changes that never pauses (a rolling
//! deployment touching one pod every 50 ms) still reaches gateways, as with istiod's
//! `PILOT_DEBOUNCE_AFTER` / `PILOT_DEBOUNCE_MAX`.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct Debounce {
    quiet: Duration,
    max_delay: Duration,
    burst: Option<Burst>,
}

#[derive(Debug, Clone, Copy)]
struct Burst {
    first: Instant,
    last: Instant,
}

impl Debounce {
    /// istiod's defaults are 100 ms quiet / 10 s max; the max here is shorter because one
    /// gateway's config is far cheaper to compute than a mesh-wide xDS push.
    pub const DEFAULT_QUIET: Duration = Duration::from_millis(100);
    pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(1);

    pub fn new(quiet: Duration, max_delay: Duration) -> Self {
        Debounce {
            quiet,
            // A max below the quiet period would make the quiet period meaningless.
            max_delay: max_delay.max(quiet),
            burst: None,
        }
    }

    /// Records one change notification seen at `now`.
    pub fn note_change(&mut self, now: Instant) {
        match &mut self.burst {
            Some(burst) => burst.last = now,
            None => {
                self.burst = Some(Burst {
                    first: now,
                    last: now,
                })
            }
        }
    }

    /// When the pending burst should be pushed; `None` when nothing changed.
    pub fn deadline(&self) -> Option<Instant> {
        self.burst
            .map(|burst| (burst.last + self.quiet).min(burst.first + self.max_delay))
    }

    /// Ends the pending burst, returning when its first change was seen (the start of the push
    /// latency measurement).
    pub fn take(&mut self) -> Option<Instant> {
        self.burst.take().map(|burst| burst.first)
    }
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce::new(Self::DEFAULT_QUIET, Self::DEFAULT_MAX_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_pending_without_changes() {
        let debounce = Debounce::new(ms(100), ms(1000));
        assert_eq!(debounce.deadline(), None);
    }

    #[test]
    fn one_change_is_due_after_the_quiet_period() {
        let start = Instant::now();
        let mut debounce = Debounce::new(ms(100), ms(1000));
        debounce.note_change(start);
        assert_eq!(debounce.deadline(), Some(start + ms(100)));
    }

    #[test]
    fn each_change_in_a_burst_moves_the_deadline() {
        let start = Instant::now();
        let mut debounce = Debounce::new(ms(100), ms(1000));
        for step in 0..50 {
            debounce.note_change(start + ms(step));
        }
        assert_eq!(debounce.deadline(), Some(start + ms(49 + 100)));
    }

    #[test]
    fn endless_trickle_is_pushed_at_the_max_delay() {
        let start = Instant::now();
        let mut debounce = Debounce::new(ms(100), ms(300));
        for step in 0..10 {
            debounce.note_change(start + ms(step * 50));
        }
        assert_eq!(debounce.deadline(), Some(start + ms(300)));
    }

    #[test]
    fn take_returns_first_change_and_clears() {
        let start = Instant::now();
        let mut debounce = Debounce::new(ms(100), ms(1000));
        debounce.note_change(start);
        debounce.note_change(start + ms(30));
        assert_eq!(debounce.take(), Some(start));
        assert_eq!(debounce.deadline(), None);
        assert_eq!(debounce.take(), None);
    }

    #[test]
    fn max_below_quiet_is_raised_to_quiet() {
        let start = Instant::now();
        let mut debounce = Debounce::new(ms(100), ms(10));
        debounce.note_change(start);
        assert_eq!(debounce.deadline(), Some(start + ms(100)));
    }
}
