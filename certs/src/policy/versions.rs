//! `minProtocolVersion` / `maxProtocolVersion`. rustls speaks TLS 1.2 and 1.3 only, so ranges
//! reaching below 1.2 are narrowed (with a warning) and ranges entirely below it are refused.

use std::fmt;
use std::str::FromStr;

use rustls::SupportedProtocolVersion;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error(
        "unknown TLS protocol version {0:?}: expected TLS_AUTO, TLSV1_0, TLSV1_1, TLSV1_2 or TLSV1_3"
    )]
    Unknown(String),
    #[error("minProtocolVersion {min} is greater than maxProtocolVersion {max}")]
    MinAboveMax { min: TlsVersion, max: TlsVersion },
    #[error(
        "TLS version range {min}..{max} allows only TLS 1.0/1.1, which this gateway does not support (TLS 1.2 and 1.3 only): set maxProtocolVersion to TLSV1_2 or higher"
    )]
    OnlyLegacyVersions { min: TlsVersion, max: TlsVersion },
}

/// Istio's `ServerTLSSettings.TLSProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum TlsVersion {
    #[default]
    Auto,
    V1_0,
    V1_1,
    V1_2,
    V1_3,
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "TLS_AUTO",
            Self::V1_0 => "TLSV1_0",
            Self::V1_1 => "TLSV1_1",
            Self::V1_2 => "TLSV1_2",
            Self::V1_3 => "TLSV1_3",
        })
    }
}

impl FromStr for TlsVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "" | "TLS_AUTO" => Self::Auto,
            "TLSV1_0" => Self::V1_0,
            "TLSV1_1" => Self::V1_1,
            "TLSV1_2" => Self::V1_2,
            "TLSV1_3" => Self::V1_3,
            other => return Err(VersionError::Unknown(other.to_owned())),
        })
    }
}

/// The versions to enable, and warnings for the parts of the request that cannot be honoured.
#[derive(Debug, Clone)]
pub struct VersionRange {
    /// Highest first; never empty.
    pub versions: Vec<&'static SupportedProtocolVersion>,
    pub warnings: Vec<String>,
}

impl VersionRange {
    pub fn allows_tls12(&self) -> bool {
        self.versions.contains(&&rustls::version::TLS12)
    }

    pub fn allows_tls13(&self) -> bool {
        self.versions.contains(&&rustls::version::TLS13)
    }
}

/// Server defaults as Envoy/Istio apply them: `TLS_AUTO` min is TLS 1.2, max is TLS 1.3.
pub fn resolve_versions(min: TlsVersion, max: TlsVersion) -> Result<VersionRange, VersionError> {
    if min != TlsVersion::Auto && max != TlsVersion::Auto && min > max {
        return Err(VersionError::MinAboveMax { min, max });
    }
    let effective_min = if min == TlsVersion::Auto {
        TlsVersion::V1_2
    } else {
        min
    };
    let effective_max = if max == TlsVersion::Auto {
        TlsVersion::V1_3
    } else {
        max
    };
    if effective_max < TlsVersion::V1_2 {
        return Err(VersionError::OnlyLegacyVersions {
            min: if min == TlsVersion::Auto {
                TlsVersion::V1_0
            } else {
                min
            },
            max,
        });
    }
    let mut warnings = Vec::new();
    if effective_min < TlsVersion::V1_2 {
        warnings.push(format!(
            "minProtocolVersion {min} is below TLS 1.2, which this gateway does not support: serving TLS 1.2..{effective_max} only; TLS 1.0/1.1 clients will be refused"
        ));
    }
    let mut versions = Vec::new();
    if effective_max >= TlsVersion::V1_3 {
        versions.push(&rustls::version::TLS13);
    }
    if effective_min <= TlsVersion::V1_2 {
        versions.push(&rustls::version::TLS12);
    }
    Ok(VersionRange { versions, warnings })
}

#[cfg(test)]
mod tests {
    use super::TlsVersion::*;
    use super::*;

    fn names(range: &VersionRange) -> Vec<&'static str> {
        range
            .versions
            .iter()
            .map(|v| match v.version {
                rustls::ProtocolVersion::TLSv1_3 => "1.3",
                rustls::ProtocolVersion::TLSv1_2 => "1.2",
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn mapping_table() {
        // (min, max, enabled versions, warns)
        let table: &[(TlsVersion, TlsVersion, &[&str], bool)] = &[
            (Auto, Auto, &["1.3", "1.2"], false),
            (V1_2, Auto, &["1.3", "1.2"], false),
            (V1_3, Auto, &["1.3"], false),
            (Auto, V1_2, &["1.2"], false),
            (V1_2, V1_2, &["1.2"], false),
            (V1_3, V1_3, &["1.3"], false),
            (V1_2, V1_3, &["1.3", "1.2"], false),
            (V1_0, V1_3, &["1.3", "1.2"], true),
            (V1_1, Auto, &["1.3", "1.2"], true),
            (V1_0, V1_2, &["1.2"], true),
        ];
        for (min, max, expected, warns) in table {
            let range = resolve_versions(*min, *max).unwrap();
            assert_eq!(names(&range), *expected, "{min}..{max}");
            assert_eq!(
                !range.warnings.is_empty(),
                *warns,
                "{min}..{max}: {:?}",
                range.warnings
            );
        }
    }

    #[test]
    fn widened_range_warning_says_what_is_served() {
        let range = resolve_versions(V1_0, V1_3).unwrap();
        assert!(
            range.warnings[0].contains("TLSV1_0"),
            "{:?}",
            range.warnings
        );
        assert!(
            range.warnings[0].contains("TLS 1.2..TLSV1_3"),
            "{:?}",
            range.warnings
        );
    }

    #[test]
    fn legacy_only_ranges_are_errors() {
        for (min, max) in [(V1_0, V1_0), (V1_0, V1_1), (V1_1, V1_1), (Auto, V1_1)] {
            let err = resolve_versions(min, max).unwrap_err();
            assert!(
                matches!(err, VersionError::OnlyLegacyVersions { .. }),
                "{min}..{max}"
            );
            assert!(err.to_string().contains("TLSV1_1") || err.to_string().contains("TLSV1_0"));
            assert!(err.to_string().contains("TLS 1.2 and 1.3 only"), "{err}");
        }
    }

    #[test]
    fn inverted_range_is_an_error() {
        assert_eq!(
            resolve_versions(V1_3, V1_2).unwrap_err(),
            VersionError::MinAboveMax {
                min: V1_3,
                max: V1_2
            }
        );
    }

    #[test]
    fn parses_istio_names() {
        assert_eq!("TLSV1_2".parse::<TlsVersion>().unwrap(), V1_2);
        assert_eq!("TLS_AUTO".parse::<TlsVersion>().unwrap(), Auto);
        assert!(matches!(
            "TLSv1.2".parse::<TlsVersion>(),
            Err(VersionError::Unknown(_))
        ));
        for v in [Auto, V1_0, V1_1, V1_2, V1_3] {
            assert_eq!(v.to_string().parse::<TlsVersion>().unwrap(), v);
        }
    }
}
