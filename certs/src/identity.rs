//! SPIFFE identities as Istio writes them: `spiffe://<trust-domain>/ns/<namespace>/sa/<sa>`.

use std::fmt;
use std::str::FromStr;

const SCHEME: &str = "spiffe://";
const EXPECTED_SHAPE: &str = "spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>";

/// Why a string is not an Istio workload identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "identity {input:?} is not a SPIFFE id: it must start with \"spiffe://\" ({EXPECTED_SHAPE})"
    )]
    WrongScheme { input: String },
    #[error("SPIFFE id {input:?} has a bad trust domain: {reason} ({EXPECTED_SHAPE})")]
    BadTrustDomain { input: String, reason: String },
    #[error("SPIFFE id {input:?} names no namespace: expected {EXPECTED_SHAPE}")]
    MissingNamespace { input: String },
    #[error("SPIFFE id {input:?} names no service account: expected {EXPECTED_SHAPE}")]
    MissingServiceAccount { input: String },
    #[error("SPIFFE id {input:?} has an unexpected path: {reason} (expected {EXPECTED_SHAPE})")]
    BadPath { input: String, reason: String },
}

/// A workload or gateway identity. Always valid once constructed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    trust_domain: String,
    namespace: String,
    service_account: String,
}

impl Identity {
    /// Builds an identity from its parts, validating each the way [`Identity::from_str`] does.
    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, IdentityError> {
        format!("{SCHEME}{trust_domain}/ns/{namespace}/sa/{service_account}").parse()
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn service_account(&self) -> &str {
        &self.service_account
    }

    /// The URI as it appears in a certificate's URI SAN.
    pub fn uri(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for Identity {
    type Err = IdentityError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let owned = || input.to_owned();
        let rest =
            strip_scheme(input).ok_or_else(|| IdentityError::WrongScheme { input: owned() })?;
        let (trust_domain, path) = rest.split_once('/').unwrap_or((rest, ""));
        validate_trust_domain(trust_domain).map_err(|reason| IdentityError::BadTrustDomain {
            input: owned(),
            reason,
        })?;

        let segments: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        let namespace = match segments.as_slice() {
            ["ns", namespace, ..] if !namespace.is_empty() => *namespace,
            [] | ["ns"] | ["ns", ""] | ["ns", "", ..] => {
                return Err(IdentityError::MissingNamespace { input: owned() });
            }
            [first, ..] => {
                return Err(IdentityError::BadPath {
                    input: owned(),
                    reason: format!("path starts with {first:?}, not \"ns\""),
                });
            }
        };
        let service_account = match &segments[2..] {
            ["sa", sa] if !sa.is_empty() => *sa,
            [] | ["sa"] | ["sa", ""] => {
                return Err(IdentityError::MissingServiceAccount { input: owned() });
            }
            ["sa", _, extra, ..] => {
                return Err(IdentityError::BadPath {
                    input: owned(),
                    reason: format!("unexpected segment {extra:?} after the service account"),
                });
            }
            [other, ..] => {
                return Err(IdentityError::BadPath {
                    input: owned(),
                    reason: format!("expected \"sa\" after the namespace, found {other:?}"),
                });
            }
        };
        for (what, segment) in [
            ("namespace", namespace),
            ("service account", service_account),
        ] {
            validate_path_segment(segment).map_err(|reason| IdentityError::BadPath {
                input: owned(),
                reason: format!("{what} {segment:?} {reason}"),
            })?;
        }
        Ok(Self {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        })
    }
}

fn strip_scheme(input: &str) -> Option<&str> {
    // The SPIFFE spec makes the scheme case-insensitive; trust domains themselves are lowercase.
    let head = input.get(..SCHEME.len())?;
    head.eq_ignore_ascii_case(SCHEME)
        .then(|| &input[SCHEME.len()..])
}

/// Checks a trust domain against the SPIFFE rules (lowercase letters, digits, `.`, `-`, `_`).
pub fn validate_trust_domain(trust_domain: &str) -> Result<(), String> {
    if trust_domain.is_empty() {
        return Err("it is empty".to_owned());
    }
    if trust_domain.len() > 255 {
        return Err("it is longer than 255 characters".to_owned());
    }
    if let Some(bad) = trust_domain
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "{trust_domain:?} contains {bad:?}; only lowercase letters, digits, '.', '-' and '_' are allowed"
        ));
    }
    Ok(())
}

fn validate_path_segment(segment: &str) -> Result<(), String> {
    if segment == "." || segment == ".." {
        return Err("is a relative path segment".to_owned());
    }
    if let Some(bad) = segment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!("contains {bad:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_workload_identity() {
        let id: Identity = "spiffe://cluster.local/ns/bookinfo/sa/reviews"
            .parse()
            .unwrap();
        assert_eq!(id.trust_domain(), "cluster.local");
        assert_eq!(id.namespace(), "bookinfo");
        assert_eq!(id.service_account(), "reviews");
        assert_eq!(
            id.to_string(),
            "spiffe://cluster.local/ns/bookinfo/sa/reviews"
        );
        assert_eq!(
            Identity::new("cluster.local", "bookinfo", "reviews").unwrap(),
            id
        );
    }

    #[test]
    fn scheme_is_case_insensitive() {
        let id: Identity = "SPIFFE://td/ns/a/sa/b".parse().unwrap();
        assert_eq!(id.uri(), "spiffe://td/ns/a/sa/b");
    }

    #[test]
    fn distinct_errors_for_each_kind_of_bad_input() {
        type IsExpected = fn(&IdentityError) -> bool;
        let cases: &[(&str, IsExpected)] = &[
            ("https://td/ns/a/sa/b", |e| {
                matches!(e, IdentityError::WrongScheme { .. })
            }),
            ("td/ns/a/sa/b", |e| {
                matches!(e, IdentityError::WrongScheme { .. })
            }),
            ("spiffe:///ns/a/sa/b", |e| {
                matches!(e, IdentityError::BadTrustDomain { .. })
            }),
            ("spiffe://Cluster.Local/ns/a/sa/b", |e| {
                matches!(e, IdentityError::BadTrustDomain { .. })
            }),
            ("spiffe://td:8080/ns/a/sa/b", |e| {
                matches!(e, IdentityError::BadTrustDomain { .. })
            }),
            ("spiffe://td", |e| {
                matches!(e, IdentityError::MissingNamespace { .. })
            }),
            ("spiffe://td/ns/", |e| {
                matches!(e, IdentityError::MissingNamespace { .. })
            }),
            ("spiffe://td/ns/a", |e| {
                matches!(e, IdentityError::MissingServiceAccount { .. })
            }),
            ("spiffe://td/ns/a/sa/", |e| {
                matches!(e, IdentityError::MissingServiceAccount { .. })
            }),
            ("spiffe://td/sa/b/ns/a", |e| {
                matches!(e, IdentityError::BadPath { .. })
            }),
            ("spiffe://td/ns/a/sa/b/extra", |e| {
                matches!(e, IdentityError::BadPath { .. })
            }),
            ("spiffe://td/ns/a/xx/b", |e| {
                matches!(e, IdentityError::BadPath { .. })
            }),
            ("spiffe://td/ns/../sa/b", |e| {
                matches!(e, IdentityError::BadPath { .. })
            }),
            ("spiffe://td/ns/a b/sa/b", |e| {
                matches!(e, IdentityError::BadPath { .. })
            }),
        ];
        for (input, is_expected) in cases {
            let err = input.parse::<Identity>().unwrap_err();
            assert!(is_expected(&err), "{input}: unexpected error {err:?}");
            assert!(
                err.to_string().contains(input),
                "{input}: message {err} should quote the input"
            );
        }
    }

    #[test]
    fn missing_namespace_message_shows_the_expected_shape() {
        let err = "spiffe://td".parse::<Identity>().unwrap_err();
        assert!(
            err.to_string()
                .contains("/ns/<namespace>/sa/<service-account>"),
            "{err}"
        );
    }
}
