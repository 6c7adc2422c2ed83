//! Certificate validity windows, expressed in `SystemTime` at the API and `time` inside rcgen.

use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

/// Certificates start a little in the past so that peers whose clocks run slightly behind
/// do not see a brand-new certificate as "not yet valid".
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60);

/// 9999-12-31T23:59:59Z, the last instant a GeneralizedTime can express.
const X509_MAX_TIME: Duration = Duration::from_secs(253_402_300_799);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidityError {
    #[error(
        "certificate validity is empty: not_after {not_after:?} is not after not_before {not_before:?}"
    )]
    Empty {
        not_before: SystemTime,
        not_after: SystemTime,
    },
    #[error("certificate validity {when:?} cannot be written in X.509 (out of range)")]
    OutOfRange { when: SystemTime },
}

/// The `[not_before, not_after]` window of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// An explicit window; also used by tests to make already-expired certificates.
    pub fn new(not_before: SystemTime, not_after: SystemTime) -> Result<Self, ValidityError> {
        if not_after <= not_before {
            return Err(ValidityError::Empty {
                not_before,
                not_after,
            });
        }
        Ok(Self {
            not_before,
            not_after,
        })
    }

    /// `lifetime` from `now`, with `not_before` moved back by [`CLOCK_SKEW_ALLOWANCE`].
    pub fn starting_at(now: SystemTime, lifetime: Duration) -> Self {
        Self {
            not_before: now.checked_sub(CLOCK_SKEW_ALLOWANCE).unwrap_or(now),
            // An absurd lifetime saturates at the X.509 maximum instead of overflowing.
            not_after: now
                .checked_add(lifetime)
                .unwrap_or(SystemTime::UNIX_EPOCH + X509_MAX_TIME),
        }
    }

    /// [`Validity::starting_at`] with the current clock.
    pub fn starting_now(lifetime: Duration) -> Self {
        Self::starting_at(SystemTime::now(), lifetime)
    }

    /// Shortens the window so it ends no later than `limit` (a leaf must not outlive its CA).
    pub fn capped_at(self, limit: SystemTime) -> Result<Self, ValidityError> {
        Self::new(self.not_before, self.not_after.min(limit))
    }

    pub(crate) fn to_offset(when: SystemTime) -> Result<OffsetDateTime, ValidityError> {
        let to_offset = || -> Option<OffsetDateTime> {
            let nanos: i128 = match when.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(after) => i128::try_from(after.as_nanos()).ok()?,
                Err(before) => -i128::try_from(before.duration().as_nanos()).ok()?,
            };
            OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
        };
        // X.509 times carry whole seconds; dropping the fraction keeps round trips exact.
        to_offset()
            .and_then(|t| t.replace_nanosecond(0).ok())
            .ok_or(ValidityError::OutOfRange { when })
    }

    pub(crate) fn from_unix_seconds(seconds: i64) -> SystemTime {
        let magnitude = Duration::from_secs(seconds.unsigned_abs());
        if seconds >= 0 {
            SystemTime::UNIX_EPOCH + magnitude
        } else {
            SystemTime::UNIX_EPOCH - magnitude
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_window_is_refused() {
        let now = SystemTime::now();
        assert!(matches!(
            Validity::new(now, now),
            Err(ValidityError::Empty { .. })
        ));
    }

    #[test]
    fn starting_at_backdates_by_the_skew_allowance() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let validity = Validity::starting_at(now, Duration::from_secs(3600));
        assert_eq!(
            now.duration_since(validity.not_before).unwrap(),
            CLOCK_SKEW_ALLOWANCE
        );
        assert_eq!(
            validity.not_after.duration_since(now).unwrap(),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn absurd_lifetimes_saturate() {
        let validity = Validity::starting_now(Duration::MAX);
        assert_eq!(validity.not_after, SystemTime::UNIX_EPOCH + X509_MAX_TIME);
        assert!(Validity::to_offset(validity.not_after).is_ok());
    }

    #[test]
    fn capping_shortens_but_never_lengthens() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let validity = Validity::starting_at(now, Duration::from_secs(3600));
        let limit = now + Duration::from_secs(60);
        assert_eq!(validity.capped_at(limit).unwrap().not_after, limit);
        let later = now + Duration::from_secs(7200);
        assert_eq!(validity.capped_at(later).unwrap(), validity);
    }

    #[test]
    fn offset_conversion_drops_sub_second_precision() {
        let when = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let offset = Validity::to_offset(when).unwrap();
        assert_eq!(offset.unix_timestamp(), 1_700_000_000);
        assert_eq!(offset.nanosecond(), 0);
        assert_eq!(
            Validity::from_unix_seconds(offset.unix_timestamp()),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
    }
}
