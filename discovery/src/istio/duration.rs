//! Durations written the way Istio users write them ("1s", "500ms", "1m", "1.5s", "1h30m").
//!
//! The raw text is kept next to the parsed value so a bad duration does not make the whole
//! resource undecodable: validation reports it with its field path instead.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a duration string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error(
        "invalid duration {raw:?}: write a number followed by a unit (ns, us, ms, s, m, h), e.g. \"1s\", \"500ms\", \"1.5s\" or \"1m\""
    )]
    Malformed { raw: String },
    #[error("invalid duration {raw:?}: unknown unit {unit:?}; use ns, us, ms, s, m or h")]
    UnknownUnit { raw: String, unit: String },
    #[error("invalid duration {raw:?}: negative durations are not allowed")]
    Negative { raw: String },
    #[error("invalid duration {raw:?}: too large")]
    Overflow { raw: String },
}

const NANOS_PER_SECOND: u128 = 1_000_000_000;

fn unit_nanos(unit: &str) -> Option<u128> {
    match unit {
        "ns" => Some(1),
        "us" | "µs" | "μs" => Some(1_000),
        "ms" => Some(1_000_000),
        "s" => Some(NANOS_PER_SECOND),
        "m" => Some(60 * NANOS_PER_SECOND),
        "h" => Some(3_600 * NANOS_PER_SECOND),
        _ => None,
    }
}

/// Parses a Go-style duration (the grammar Istio's CRDs accept): one or more
/// `<decimal><unit>` components, or a bare `0`.
pub fn parse_duration(raw: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed {
        raw: raw.to_string(),
    };
    let text = raw.trim();
    if let Some(rest) = text.strip_prefix('-') {
        if rest.is_empty() {
            return Err(malformed());
        }
        return Err(DurationError::Negative {
            raw: raw.to_string(),
        });
    }
    let text = text.strip_prefix('+').unwrap_or(text);
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(malformed());
    }
    let mut total_nanos: u128 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after_number) = rest.split_at(number_len);
        let unit_len = after_number
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_number.len());
        let (unit, after_unit) = after_number.split_at(unit_len);
        if number.is_empty() || unit.is_empty() {
            return Err(malformed());
        }
        let Some(scale) = unit_nanos(unit) else {
            return Err(DurationError::UnknownUnit {
                raw: raw.to_string(),
                unit: unit.to_string(),
            });
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(malformed());
        }
        if fraction.contains('.') {
            return Err(malformed());
        }
        let overflow = || DurationError::Overflow {
            raw: raw.to_string(),
        };
        let whole_value: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| overflow())?
        };
        let mut component = whole_value.checked_mul(scale).ok_or_else(overflow)?;
        // Digits past nanosecond precision cannot change the result; cap them to avoid overflow.
        let fraction = &fraction[..fraction.len().min(18)];
        if !fraction.is_empty() {
            let fraction_value: u128 = fraction.parse().map_err(|_| malformed())?;
            let denominator = 10u128.pow(u32::try_from(fraction.len()).map_err(|_| overflow())?);
            component = component
                .checked_add(fraction_value * scale / denominator)
                .ok_or_else(overflow)?;
        }
        total_nanos = total_nanos.checked_add(component).ok_or_else(overflow)?;
        rest = after_unit;
    }
    let seconds =
        u64::try_from(total_nanos / NANOS_PER_SECOND).map_err(|_| DurationError::Overflow {
            raw: raw.to_string(),
        })?;
    // The remainder of a division by 1e9 always fits in u32.
    let nanos = (total_nanos % NANOS_PER_SECOND) as u32;
    Ok(Duration::new(seconds, nanos))
}

/// A duration field of an Istio resource: the text as written plus its parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IstioDuration {
    raw: String,
    parsed: Result<Duration, DurationError>,
}

impl IstioDuration {
    pub fn new(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        let parsed = parse_duration(&raw);
        Self { raw, parsed }
    }

    /// The text as written in the resource.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The parsed duration; validation reports the error with its field path.
    pub fn get(&self) -> Result<Duration, &DurationError> {
        self.parsed.as_ref().copied()
    }

    /// The parsed duration, or `None` when it did not parse (validated resources always parse).
    pub fn duration(&self) -> Option<Duration> {
        self.parsed.as_ref().ok().copied()
    }
}

impl From<Duration> for IstioDuration {
    fn from(duration: Duration) -> Self {
        Self {
            raw: format!("{}ms", duration.as_millis()),
            parsed: Ok(duration),
        }
    }
}

impl fmt::Display for IstioDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for IstioDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = IstioDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"1s\" or \"500ms\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(IstioDuration::new(v))
    }

    // A bare number is kept as text so validation can say the unit is missing.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(IstioDuration::new(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(IstioDuration::new(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(IstioDuration::new(v.to_string()))
    }
}

impl<'de> Deserialize<'de> for IstioDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_istio_users_write() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn rejects_malformed_text_with_a_hint() {
        let err = parse_duration("abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid duration \"abc\": write a number followed by a unit (ns, us, ms, s, m, h), e.g. \"1s\", \"500ms\", \"1.5s\" or \"1m\""
        );
        assert!(matches!(
            parse_duration("5"),
            Err(DurationError::Malformed { .. })
        ));
        assert!(matches!(
            parse_duration(""),
            Err(DurationError::Malformed { .. })
        ));
        assert_eq!(
            parse_duration("5d").unwrap_err().to_string(),
            "invalid duration \"5d\": unknown unit \"d\"; use ns, us, ms, s, m or h"
        );
        assert!(matches!(
            parse_duration("-1s"),
            Err(DurationError::Negative { .. })
        ));
        assert!(matches!(
            parse_duration("1.2.3s"),
            Err(DurationError::Malformed { .. })
        ));
    }

    #[test]
    fn keeps_raw_text_and_round_trips_through_serde() {
        let parsed: IstioDuration = serde_json::from_str("\"1.5s\"").unwrap();
        assert_eq!(parsed.raw(), "1.5s");
        assert_eq!(parsed.duration(), Some(Duration::from_millis(1500)));
        assert_eq!(serde_json::to_string(&parsed).unwrap(), "\"1.5s\"");
        let bare: IstioDuration = serde_json::from_str("5").unwrap();
        assert_eq!(bare.raw(), "5");
        assert!(bare.get().is_err());
    }
}
