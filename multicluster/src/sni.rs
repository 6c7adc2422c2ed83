//! Istio's names for an upstream (service, port, subset).
//!
//! Two spellings of the same key travel on the wire:
//! - the SNI a workload proxy puts in its ClientHello, which the east-west gateway matches
//!   exactly: `outbound_.9080_.v1_.reviews.default.svc.cluster.local`;
//! - the cluster name used inside configuration: `outbound|9080|v1|reviews.default.svc.cluster.local`.
//!
//! An empty subset is the empty string in both forms: `outbound_.9080_._.reviews...` is
//! `outbound_.` + `9080` + `_.` + `` + `_.` + `reviews...`. Subset names are DNS labels and
//! can never contain `_`, so the first `_.` after the port always ends the subset.

use std::fmt;

use thiserror::Error;

/// DNS limits (RFC 1035): the SNI must fit in a host name.
pub const MAX_NAME_LEN: usize = 255;
pub const MAX_LABEL_LEN: usize = 63;

const SNI_PREFIX: &str = "outbound_.";
const SNI_SEPARATOR: &str = "_.";
const CLUSTER_PREFIX: &str = "outbound|";

/// One upstream as Istio keys it. Only the outbound direction exists on the east-west path:
/// an inbound name arriving at a gateway is a client bug or a probe, never a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SniKey {
    port: u16,
    subset: Option<String>,
    host: String,
}

/// Which part of a name broke a rule, so the message can point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamePart {
    Subset,
    Host,
}

impl fmt::Display for NamePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NamePart::Subset => "subset",
            NamePart::Host => "host",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SniError {
    #[error(
        "{name:?} is not an outbound name: it must start with \"outbound_.\" (inbound and other directions are never routed by a gateway)"
    )]
    NotOutbound { name: String },
    #[error("{name:?} is missing parts: expected outbound_.<port>_.<subset, may be empty>_.<host>")]
    MissingParts { name: String },
    #[error("port {port:?} in {name:?} is not a number from 1 to 65535 without leading zeros")]
    InvalidPort { name: String, port: String },
    #[error("{part} {value:?} in {name:?} is not valid: {reason}")]
    InvalidLabel {
        name: String,
        part: NamePart,
        value: String,
        reason: &'static str,
    },
    #[error("{part} label {label:?} is {len} bytes; DNS allows at most {MAX_LABEL_LEN} per label")]
    LabelTooLong {
        part: NamePart,
        label: String,
        len: usize,
    },
    #[error(
        "name is {len} bytes; DNS allows at most {MAX_NAME_LEN} (host {host_len} bytes, subset {subset_len} bytes)"
    )]
    NameTooLong {
        len: usize,
        host_len: usize,
        subset_len: usize,
    },
}

// === impl SniKey ===

impl SniKey {
    /// Builds a key, checking that both of its spellings are valid DNS-sized names.
    pub fn new(port: u16, subset: Option<&str>, host: &str) -> Result<Self, SniError> {
        let subset = subset.filter(|s| !s.is_empty());
        let display = || format!("outbound|{port}|{}|{host}", subset.unwrap_or(""));
        if port == 0 {
            return Err(SniError::InvalidPort {
                name: display(),
                port: "0".into(),
            });
        }
        if let Some(subset) = subset {
            check_label(subset, NamePart::Subset, &display)?;
        }
        check_host(host, &display)?;
        let key = SniKey {
            port,
            subset: subset.map(str::to_owned),
            host: host.to_owned(),
        };
        let len = key.sni_len();
        if len > MAX_NAME_LEN {
            return Err(SniError::NameTooLong {
                len,
                host_len: host.len(),
                subset_len: key.subset.as_deref().map_or(0, str::len),
            });
        }
        Ok(key)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn subset(&self) -> Option<&str> {
        self.subset.as_deref()
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// `outbound_.<port>_.<subset>_.<host>`
    pub fn to_sni(&self) -> String {
        let mut out = String::with_capacity(self.sni_len());
        out.push_str(SNI_PREFIX);
        out.push_str(&self.port.to_string());
        out.push_str(SNI_SEPARATOR);
        out.push_str(self.subset.as_deref().unwrap_or_default());
        out.push_str(SNI_SEPARATOR);
        out.push_str(&self.host);
        out
    }

    /// `outbound|<port>|<subset>|<host>`
    pub fn to_cluster_name(&self) -> String {
        format!(
            "{CLUSTER_PREFIX}{}|{}|{}",
            self.port,
            self.subset.as_deref().unwrap_or(""),
            self.host
        )
    }

    /// Parses the SNI form. Host names compare case-insensitively in DNS, but the gateway matches
    /// exactly what discovery produced, so no case folding happens here.
    pub fn from_sni(name: &str) -> Result<Self, SniError> {
        let rest = name
            .strip_prefix(SNI_PREFIX)
            .ok_or_else(|| SniError::NotOutbound { name: name.into() })?;
        let missing = || SniError::MissingParts { name: name.into() };
        let (port, rest) = rest.split_once(SNI_SEPARATOR).ok_or_else(missing)?;
        let (subset, host) = rest.split_once(SNI_SEPARATOR).ok_or_else(missing)?;
        if host.is_empty() {
            return Err(missing());
        }
        let port = parse_port(port, name)?;
        Self::new(port, Some(subset), host).map_err(|e| rename(e, name))
    }

    /// Parses the cluster form `outbound|<port>|<subset>|<host>`.
    pub fn from_cluster_name(name: &str) -> Result<Self, SniError> {
        let rest = name
            .strip_prefix(CLUSTER_PREFIX)
            .ok_or_else(|| SniError::NotOutbound { name: name.into() })?;
        let mut parts = rest.splitn(3, '|');
        let (Some(port), Some(subset), Some(host)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SniError::MissingParts { name: name.into() });
        };
        if host.is_empty() {
            return Err(SniError::MissingParts { name: name.into() });
        }
        let port = parse_port(port, name)?;
        Self::new(port, Some(subset), host).map_err(|e| rename(e, name))
    }

    fn sni_len(&self) -> usize {
        SNI_PREFIX.len()
            + decimal_len(self.port)
            + SNI_SEPARATOR.len() * 2
            + self.subset.as_deref().map_or(0, str::len)
            + self.host.len()
    }
}

impl fmt::Display for SniKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_sni())
    }
}

fn decimal_len(port: u16) -> usize {
    match port {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1000..=9999 => 4,
        _ => 5,
    }
}

/// Leading zeros or signs would make two spellings for one key, so only canonical decimals pass.
fn parse_port(port: &str, name: &str) -> Result<u16, SniError> {
    let invalid = || SniError::InvalidPort {
        name: name.into(),
        port: port.into(),
    };
    if port.is_empty() || port.starts_with('0') || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    port.parse::<u16>().map_err(|_| invalid())
}

/// Errors raised while building from a parsed name should quote that name, not the rebuilt one.
fn rename(error: SniError, name: &str) -> SniError {
    match error {
        SniError::InvalidLabel {
            part,
            value,
            reason,
            ..
        } => SniError::InvalidLabel {
            name: name.into(),
            part,
            value,
            reason,
        },
        SniError::InvalidPort { port, .. } => SniError::InvalidPort {
            name: name.into(),
            port,
        },
        other => other,
    }
}

fn check_host(host: &str, display: &dyn Fn() -> String) -> Result<(), SniError> {
    if host.is_empty() {
        return Err(invalid_label(display, NamePart::Host, host, "it is empty"));
    }
    if host.len() > MAX_NAME_LEN {
        return Err(SniError::NameTooLong {
            len: host.len(),
            host_len: host.len(),
            subset_len: 0,
        });
    }
    for label in host.split('.') {
        check_label(label, NamePart::Host, display)?;
    }
    Ok(())
}

/// RFC 1123 labels, lowercase: Kubernetes service names and DestinationRule subsets both obey it.
fn check_label(label: &str, part: NamePart, display: &dyn Fn() -> String) -> Result<(), SniError> {
    if label.is_empty() {
        return Err(invalid_label(display, part, label, "it has an empty label"));
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(SniError::LabelTooLong {
            part,
            label: label.into(),
            len: label.len(),
        });
    }
    let bytes = label.as_bytes();
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return Err(invalid_label(
            display,
            part,
            label,
            "only lowercase letters, digits and '-' are allowed",
        ));
    }
    if bytes.first() == Some(&b'-') || bytes.last() == Some(&b'-') {
        return Err(invalid_label(
            display,
            part,
            label,
            "a label cannot start or end with '-'",
        ));
    }
    Ok(())
}

fn invalid_label(
    display: &dyn Fn() -> String,
    part: NamePart,
    value: &str,
    reason: &'static str,
) -> SniError {
    SniError::InvalidLabel {
        name: display(),
        part,
        value: value.into(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_examples_round_trip_exactly() {
        for (sni, cluster) in [
            (
                "outbound_.9080_.v1_.reviews.default.svc.cluster.local",
                "outbound|9080|v1|reviews.default.svc.cluster.local",
            ),
            (
                "outbound_.9080_._.reviews.default.svc.cluster.local",
                "outbound|9080||reviews.default.svc.cluster.local",
            ),
            (
                "outbound_.9080_._.productpage.istio.svc.cluster.local",
                "outbound|9080||productpage.istio.svc.cluster.local",
            ),
            (
                "outbound_.8000_._.httpbin.httpbin.svc.cluster.local",
                "outbound|8000||httpbin.httpbin.svc.cluster.local",
            ),
        ] {
            let from_sni = SniKey::from_sni(sni).unwrap();
            assert_eq!(from_sni.to_sni(), sni);
            assert_eq!(from_sni.to_cluster_name(), cluster);
            let from_cluster = SniKey::from_cluster_name(cluster).unwrap();
            assert_eq!(from_cluster, from_sni);
        }
    }

    #[test]
    fn parts_are_exposed() {
        let key =
            SniKey::from_sni("outbound_.9080_.v1_.reviews.default.svc.cluster.local").unwrap();
        assert_eq!(key.port(), 9080);
        assert_eq!(key.subset(), Some("v1"));
        assert_eq!(key.host(), "reviews.default.svc.cluster.local");
        let empty = SniKey::new(9080, Some(""), "reviews.default.svc.cluster.local").unwrap();
        assert_eq!(empty.subset(), None);
    }

    #[test]
    fn malformed_names_get_distinct_errors() {
        type Expectation = fn(&SniError) -> bool;
        let cases: &[(&str, Expectation)] = &[
            (
                "outbound_.x_._.h",
                |e| matches!(e, SniError::InvalidPort { port, .. } if port == "x"),
            ),
            (
                "outbound_.09080_._.h",
                |e| matches!(e, SniError::InvalidPort { port, .. } if port == "09080"),
            ),
            ("outbound_.70000_._.h", |e| {
                matches!(e, SniError::InvalidPort { .. })
            }),
            ("outbound_.0_._.h", |e| {
                matches!(e, SniError::InvalidPort { .. })
            }),
            ("outbound_.9080_.reviews.default", |e| {
                matches!(e, SniError::MissingParts { .. })
            }),
            ("outbound_.9080", |e| {
                matches!(e, SniError::MissingParts { .. })
            }),
            ("outbound_.9080_._.", |e| {
                matches!(e, SniError::MissingParts { .. })
            }),
            ("outbound_.9080_.__.reviews", |e| {
                matches!(
                    e,
                    SniError::InvalidLabel {
                        part: NamePart::Subset,
                        ..
                    }
                )
            }),
            ("outbound_.9080_.v1_.", |e| {
                matches!(e, SniError::MissingParts { .. })
            }),
            ("inbound_.9080_._.reviews.default.svc.cluster.local", |e| {
                matches!(e, SniError::NotOutbound { .. })
            }),
            ("reviews.default.svc.cluster.local", |e| {
                matches!(e, SniError::NotOutbound { .. })
            }),
            ("outbound_.9080_.V1_.reviews", |e| {
                matches!(
                    e,
                    SniError::InvalidLabel {
                        part: NamePart::Subset,
                        ..
                    }
                )
            }),
            ("outbound_.9080_._.reviews..local", |e| {
                matches!(
                    e,
                    SniError::InvalidLabel {
                        part: NamePart::Host,
                        ..
                    }
                )
            }),
            ("outbound_.9080_._.-reviews.local", |e| {
                matches!(
                    e,
                    SniError::InvalidLabel {
                        part: NamePart::Host,
                        ..
                    }
                )
            }),
        ];
        for (name, expected) in cases {
            let error = SniKey::from_sni(name).unwrap_err();
            assert!(expected(&error), "{name}: unexpected {error:?}");
        }
    }

    #[test]
    fn over_long_names_say_which_part() {
        let long_label = "a".repeat(64);
        let error = SniKey::new(9080, None, &format!("{long_label}.default.svc")).unwrap_err();
        assert_eq!(
            error,
            SniError::LabelTooLong {
                part: NamePart::Host,
                label: long_label.clone(),
                len: 64
            }
        );
        assert!(error.to_string().contains("host label"), "{error}");

        let error = SniKey::new(9080, Some(&long_label), "reviews.default").unwrap_err();
        assert!(matches!(
            error,
            SniError::LabelTooLong {
                part: NamePart::Subset,
                len: 64,
                ..
            }
        ));

        // Every label fits, but the whole SNI does not.
        let host = vec!["a".repeat(60); 4].join(".");
        let error = SniKey::new(9080, Some("v1"), &host).unwrap_err();
        match error {
            SniError::NameTooLong {
                len,
                host_len,
                subset_len,
            } => {
                assert_eq!(host_len, host.len());
                assert_eq!(subset_len, 2);
                assert_eq!(len, "outbound_.9080_.v1_.".len() + host.len());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn longest_valid_name_is_accepted() {
        let prefix_len = "outbound_.65535_._.".len();
        let mut host = String::new();
        while host.len() + prefix_len < MAX_NAME_LEN {
            if !host.is_empty() {
                host.push('.');
            }
            let room = MAX_NAME_LEN - prefix_len - host.len();
            host.push_str(&"b".repeat(room.min(MAX_LABEL_LEN)));
        }
        let key = SniKey::new(65535, None, &host).unwrap();
        assert_eq!(key.to_sni().len(), MAX_NAME_LEN);
        assert_eq!(SniKey::from_sni(&key.to_sni()).unwrap(), key);
    }

    #[test]
    fn cluster_name_errors() {
        assert!(matches!(
            SniKey::from_cluster_name("inbound|9080||reviews").unwrap_err(),
            SniError::NotOutbound { .. }
        ));
        assert!(matches!(
            SniKey::from_cluster_name("outbound|9080|v1").unwrap_err(),
            SniError::MissingParts { .. }
        ));
        assert!(matches!(
            SniKey::from_cluster_name("outbound|x||reviews").unwrap_err(),
            SniError::InvalidPort { .. }
        ));
    }
}
