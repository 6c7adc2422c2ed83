//! `cipherSuites` by OpenSSL name (as Envoy takes them) mapped to rustls suites. TLS 1.3 suites
//! are not configurable in Envoy either: they always stay enabled.

use rustls::SupportedCipherSuite;
use rustls::crypto::ring::cipher_suite as ring_suites;

use super::versions::VersionRange;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error(
        "unknown cipher suite {name:?} in cipherSuites: use OpenSSL names such as ECDHE-RSA-AES256-GCM-SHA384 (supported: {supported})"
    )]
    Unknown { name: String, supported: String },
    #[error(
        "none of the cipherSuites {names:?} is supported by this gateway (supported TLS 1.2 suites: {supported})"
    )]
    NoneSupported {
        names: Vec<String>,
        supported: String,
    },
}

enum Lookup {
    Tls12(SupportedCipherSuite),
    Tls13,
    KnownUnsupported,
    Unknown,
}

/// The TLS 1.2 suites rustls (ring) implements, by OpenSSL and IANA name.
fn supported_tls12() -> [(&'static str, &'static str, SupportedCipherSuite); 6] {
    [
        (
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            ring_suites::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "ECDHE-RSA-AES128-GCM-SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ring_suites::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            ring_suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "ECDHE-RSA-AES256-GCM-SHA384",
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            ring_suites::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            ring_suites::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "ECDHE-RSA-CHACHA20-POLY1305",
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            ring_suites::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ]
}

const TLS13_NAMES: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Names BoringSSL (and so Envoy) accepts but rustls does not implement (CBC, static RSA,
/// PSK, 3DES).
const KNOWN_UNSUPPORTED: [&str; 20] = [
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "AES128-SHA256",
    "AES256-SHA256",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES128-SHA256",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES256-SHA384",
    "ECDHE-PSK-AES128-CBC-SHA",
    "ECDHE-PSK-AES256-CBC-SHA",
    "ECDHE-PSK-CHACHA20-POLY1305",
    "PSK-AES128-CBC-SHA",
    "PSK-AES256-CBC-SHA",
    "DES-CBC3-SHA",
];

fn lookup(name: &str) -> Lookup {
    if let Some((_, _, suite)) = supported_tls12()
        .into_iter()
        .find(|(openssl, iana, _)| *openssl == name || *iana == name)
    {
        return Lookup::Tls12(suite);
    }
    if TLS13_NAMES.contains(&name) {
        return Lookup::Tls13;
    }
    if KNOWN_UNSUPPORTED.contains(&name) {
        return Lookup::KnownUnsupported;
    }
    Lookup::Unknown
}

/// The OpenSSL name of a TLS 1.2 suite rustls supports, for messages and listings.
pub fn openssl_name(suite: SupportedCipherSuite) -> Option<&'static str> {
    supported_tls12()
        .into_iter()
        .find(|(_, _, known)| known.suite() == suite.suite())
        .map(|(openssl, _, _)| openssl)
}

fn supported_list() -> String {
    supported_tls12()
        .iter()
        .map(|(openssl, _, _)| *openssl)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Suites to enable and warnings about names that are known but cannot be honoured.
#[derive(Debug, Clone)]
pub struct CipherSelection {
    pub suites: Vec<SupportedCipherSuite>,
    pub warnings: Vec<String>,
}

/// Maps `cipherSuites` onto rustls. Empty means rustls' defaults. Envoy's equal-preference
/// groups (`[A|B]`) are accepted and flattened.
pub fn resolve_cipher_suites(
    names: &[String],
    versions: &VersionRange,
) -> Result<CipherSelection, CipherError> {
    let all = rustls::crypto::ring::DEFAULT_CIPHER_SUITES;
    let mut warnings = Vec::new();
    if names.is_empty() {
        return Ok(CipherSelection {
            suites: all.to_vec(),
            warnings,
        });
    }
    let mut chosen_tls12: Vec<SupportedCipherSuite> = Vec::new();
    let mut unsupported = Vec::new();
    let flattened = names
        .iter()
        .flat_map(|entry| {
            entry
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split('|')
        })
        .map(str::trim)
        .filter(|name| !name.is_empty());
    for name in flattened {
        match lookup(name) {
            Lookup::Tls12(suite) => {
                if !chosen_tls12.iter().any(|s| s.suite() == suite.suite()) {
                    chosen_tls12.push(suite);
                }
            }
            Lookup::Tls13 => {}
            Lookup::KnownUnsupported => unsupported.push(name.to_owned()),
            Lookup::Unknown => {
                return Err(CipherError::Unknown {
                    name: name.to_owned(),
                    supported: supported_list(),
                });
            }
        }
    }
    if !unsupported.is_empty() {
        warnings.push(format!(
            "cipherSuites {unsupported:?} are not supported by this gateway and are skipped (supported TLS 1.2 suites: {})",
            supported_list()
        ));
    }
    if chosen_tls12.is_empty() && versions.allows_tls12() && !versions.allows_tls13() {
        return Err(CipherError::NoneSupported {
            names: names.to_vec(),
            supported: supported_list(),
        });
    }
    if chosen_tls12.is_empty() && versions.allows_tls12() {
        warnings.push(
            "cipherSuites select no TLS 1.2 suite: only TLS 1.3 clients can connect".to_owned(),
        );
    }
    let suites = all
        .iter()
        .copied()
        .filter(|suite| suite.version() == &rustls::version::TLS13)
        .chain(chosen_tls12)
        .collect();
    Ok(CipherSelection { suites, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::versions::{TlsVersion, resolve_versions};

    fn both() -> VersionRange {
        resolve_versions(TlsVersion::Auto, TlsVersion::Auto).unwrap()
    }

    fn tls12_names(selection: &CipherSelection) -> Vec<&'static str> {
        selection
            .suites
            .iter()
            .filter_map(|s| openssl_name(*s))
            .collect()
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn openssl_names_map_to_rustls_suites() {
        let table = [
            (
                "ECDHE-RSA-AES256-GCM-SHA384",
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            ),
            (
                "ECDHE-RSA-AES128-GCM-SHA256",
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            ),
            (
                "ECDHE-ECDSA-AES256-GCM-SHA384",
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ),
            (
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            ),
            (
                "ECDHE-ECDSA-CHACHA20-POLY1305",
                rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            ),
            (
                "ECDHE-RSA-CHACHA20-POLY1305",
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ),
            (
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            ),
        ];
        for (name, expected) in table {
            let selection = resolve_cipher_suites(&strings(&[name]), &both()).unwrap();
            let tls12: Vec<_> = selection
                .suites
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS12)
                .map(|s| s.suite())
                .collect();
            assert_eq!(tls12, vec![expected], "{name}");
        }
    }

    #[test]
    fn tls13_suites_always_stay_enabled() {
        let selection =
            resolve_cipher_suites(&strings(&["ECDHE-RSA-AES256-GCM-SHA384"]), &both()).unwrap();
        let tls13 = selection
            .suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .count();
        assert_eq!(tls13, 3);
    }

    #[test]
    fn order_is_kept_and_duplicates_dropped() {
        let names = strings(&[
            "ECDHE-RSA-AES128-GCM-SHA256",
            "[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]",
            "ECDHE-RSA-AES128-GCM-SHA256",
        ]);
        let selection = resolve_cipher_suites(&names, &both()).unwrap();
        assert_eq!(
            tls12_names(&selection),
            [
                "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-CHACHA20-POLY1305"
            ]
        );
    }

    #[test]
    fn unknown_names_are_errors_naming_the_suite() {
        let err = resolve_cipher_suites(
            &strings(&["ECDHE-RSA-AES256-GCM-SHA384", "BOGUS-SUITE"]),
            &both(),
        )
        .unwrap_err();
        assert!(matches!(&err, CipherError::Unknown { name, .. } if name == "BOGUS-SUITE"));
        assert!(err.to_string().contains("\"BOGUS-SUITE\""), "{err}");
    }

    #[test]
    fn known_but_unsupported_names_warn() {
        let names = strings(&["AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384"]);
        let selection = resolve_cipher_suites(&names, &both()).unwrap();
        assert_eq!(tls12_names(&selection), ["ECDHE-RSA-AES256-GCM-SHA384"]);
        assert!(
            selection.warnings[0].contains("AES256-GCM-SHA384"),
            "{:?}",
            selection.warnings
        );
    }

    #[test]
    fn nothing_usable_for_a_tls12_only_server_is_an_error() {
        let tls12_only = resolve_versions(TlsVersion::V1_2, TlsVersion::V1_2).unwrap();
        let err = resolve_cipher_suites(&strings(&["AES128-SHA"]), &tls12_only).unwrap_err();
        assert!(matches!(err, CipherError::NoneSupported { .. }), "{err}");
    }

    #[test]
    fn empty_list_means_defaults() {
        let selection = resolve_cipher_suites(&[], &both()).unwrap();
        assert_eq!(
            selection.suites.len(),
            rustls::crypto::ring::DEFAULT_CIPHER_SUITES.len()
        );
        assert!(selection.warnings.is_empty());
    }
}
