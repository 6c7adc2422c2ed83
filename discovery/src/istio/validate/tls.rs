//! TLS settings: Gateway server TLS (Istio's validateTLSOptions plus what rustls can serve)
//! and DestinationRule client TLS (Istio's ValidateTLS).

use crate::istio::destination_rule::{ClientTlsMode, ClientTlsSettings};
use crate::istio::gateway::{ServerTlsMode, ServerTlsSettings, TlsProtocolVersion};

use super::Findings;

/// OpenSSL names of the TLS 1.2 suites Isthmus (rustls) can negotiate.
pub const ISTHMUS_CIPHER_SUITES: [&str; 6] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

/// Names Envoy accepts that rustls has no implementation of (CBC, static RSA, 3DES).
const ENVOY_ONLY_CIPHER_SUITES: [&str; 9] = [
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

pub fn is_supported_cipher_suite(name: &str) -> bool {
    ISTHMUS_CIPHER_SUITES.contains(&name)
}

/// Go's `%v` of a string slice: `[a b]`.
fn go_list(items: &[&str]) -> String {
    format!("[{}]", items.join(" "))
}

pub(super) fn validate_server_tls(tls: &ServerTlsSettings, field: &str, findings: &mut Findings) {
    validate_versions(tls, field, findings);
    validate_cipher_suites(tls, field, findings);
    validate_pins(tls, field, findings);

    if tls.mode == ServerTlsMode::IstioMutual {
        let forbidden = [
            (
                &tls.server_certificate,
                "serverCertificate",
                "server certificate",
            ),
            (&tls.private_key, "privateKey", "private key"),
            (&tls.ca_certificates, "caCertificates", "CA bundle"),
            (&tls.credential_name, "credentialName", "credentialName"),
        ];
        for (value, name, what) in forbidden {
            if !value.is_empty() {
                findings.error(
                    &format!("{field}.{name}"),
                    format!("ISTIO_MUTUAL TLS cannot have associated {what}"),
                );
            }
        }
        return;
    }

    if tls.mode.is_passthrough()
        && [
            &tls.ca_crl,
            &tls.server_certificate,
            &tls.private_key,
            &tls.ca_certificates,
            &tls.credential_name,
        ]
        .iter()
        .any(|value| !value.is_empty())
    {
        findings.warn(
            &format!("{field}.mode"),
            format!(
                "{} mode does not use certificates, they will be ignored",
                tls.mode.name()
            ),
        );
    }

    let has_file_pair = !tls.server_certificate.is_empty() && !tls.private_key.is_empty();
    if has_file_pair && !tls.credential_name.is_empty() {
        findings.error(
            &format!("{field}.credentialName"),
            "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified",
        );
    }

    let terminating = matches!(
        tls.mode,
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if terminating && !tls.credential_name.is_empty() {
        // The Secret named by credentialName brings the certificate, key and CA.
        return;
    }
    if terminating {
        let prefix = if tls.mode == ServerTlsMode::Simple {
            "SIMPLE TLS"
        } else {
            if tls.ca_certificates.is_empty() {
                findings.error(
                    &format!("{field}.caCertificates"),
                    "MUTUAL TLS requires a client CA bundle",
                );
            }
            "MUTUAL TLS"
        };
        if tls.server_certificate.is_empty() {
            findings.error(
                &format!("{field}.serverCertificate"),
                format!("{prefix} requires a server certificate"),
            );
        }
        if tls.private_key.is_empty() {
            findings.error(
                &format!("{field}.privateKey"),
                format!("{prefix} requires a private key"),
            );
        }
    }
    if !tls.ca_crl.is_empty() {
        if !tls.credential_name.is_empty() {
            findings.error(
                &format!("{field}.caCrl"),
                "CRL is not supported with credentialName. CRL has to be specified in the credential",
            );
        }
        if tls.mode == ServerTlsMode::Simple {
            findings.error(
                &format!("{field}.caCrl"),
                "CRL is not supported with SIMPLE TLS",
            );
        }
    }
}

/// Isthmus serves TLS through rustls, which implements TLS 1.2 and 1.3 only: ranges are
/// honoured exactly where they overlap 1.2–1.3 and refused where they do not.
fn validate_versions(tls: &ServerTlsSettings, field: &str, findings: &mut Findings) {
    let min = tls.min_protocol_version;
    let max = tls.max_protocol_version;
    if min != TlsProtocolVersion::TlsAuto && max != TlsProtocolVersion::TlsAuto && min > max {
        findings.error(
            &format!("{field}.minProtocolVersion"),
            format!(
                "minProtocolVersion {} is greater than maxProtocolVersion {}: no TLS version is allowed; lower minProtocolVersion or raise maxProtocolVersion",
                min.name(),
                max.name()
            ),
        );
        return;
    }
    if max.is_legacy() {
        findings.error(
            &format!("{field}.maxProtocolVersion"),
            format!(
                "maxProtocolVersion {} allows only TLS 1.0/1.1, which Isthmus cannot serve (rustls implements TLS 1.2 and 1.3 only): set maxProtocolVersion to TLSV1_2 or TLSV1_3",
                max.name()
            ),
        );
        return;
    }
    if min.is_legacy() {
        findings.warn(
            &format!("{field}.minProtocolVersion"),
            format!(
                "minProtocolVersion {} is below TLS 1.2: Isthmus serves TLS 1.2 and 1.3 only (rustls has no TLS 1.0/1.1), so clients need TLS 1.2 or later",
                min.name()
            ),
        );
    }
}

fn validate_cipher_suites(tls: &ServerTlsSettings, field: &str, findings: &mut Findings) {
    let mut seen: Vec<&str> = Vec::new();
    let mut duplicates: Vec<&str> = Vec::new();
    for (index, suite) in tls.cipher_suites.iter().enumerate() {
        let suite_field = format!("{field}.cipherSuites[{index}]");
        if is_supported_cipher_suite(suite) {
            if seen.contains(&suite.as_str()) {
                if !duplicates.contains(&suite.as_str()) {
                    duplicates.push(suite);
                }
            } else {
                seen.push(suite);
            }
        } else if ENVOY_ONLY_CIPHER_SUITES.contains(&suite.as_str()) {
            findings.error(
                &suite_field,
                format!(
                    "cipher suite {suite:?} is not supported by Isthmus (rustls offers only ECDHE with AES-GCM or CHACHA20-POLY1305 for TLS 1.2): use one of {}",
                    ISTHMUS_CIPHER_SUITES.join(", ")
                ),
            );
        } else {
            findings.error(
                &suite_field,
                format!(
                    "invalid cipher suite {suite:?}: use OpenSSL names, one of {}",
                    ISTHMUS_CIPHER_SUITES.join(", ")
                ),
            );
        }
    }
    if !duplicates.is_empty() {
        duplicates.sort_unstable();
        findings.warn(
            &format!("{field}.cipherSuites"),
            format!("ignoring duplicate cipher suites: {}", go_list(&duplicates)),
        );
    }
    if !tls.cipher_suites.is_empty() && tls.min_protocol_version == TlsProtocolVersion::TlsV1_3 {
        findings.warn(
            &format!("{field}.cipherSuites"),
            "cipherSuites apply to TLS 1.2 only and are ignored with minProtocolVersion TLSV1_3",
        );
    }
}

/// A base64 (standard alphabet, padded) SHA-256 digest is 44 characters ending in one `=`.
fn is_base64_sha256(value: &str) -> bool {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = value.as_bytes();
    if bytes.len() != 44 || bytes[43] != b'=' {
        return false;
    }
    let Some(last_digit) = ALPHABET.iter().position(|c| *c == bytes[42]) else {
        return false;
    };
    // 32 bytes use 2 of the last digit's 6 bits less; canonical encodings leave them zero.
    bytes[..42].iter().all(|b| ALPHABET.contains(b)) && last_digit % 4 == 0
}

/// A SHA-256 digest in hex, either plain or as colon-separated byte pairs.
fn is_hex_sha256(value: &str) -> bool {
    let plain = value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit());
    let colons = value.len() == 95
        && value.split(':').count() == 32
        && value
            .split(':')
            .all(|pair| pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()));
    plain || colons
}

fn validate_pins(tls: &ServerTlsSettings, field: &str, findings: &mut Findings) {
    for (index, spki) in tls.verify_certificate_spki.iter().enumerate() {
        if !is_base64_sha256(spki) {
            findings.error(
                &format!("{field}.verifyCertificateSpki[{index}]"),
                format!(
                    "invalid verifyCertificateSpki {spki:?}: expected the base64 encoding of a SHA-256 digest of the SubjectPublicKeyInfo (44 characters)"
                ),
            );
        }
    }
    for (index, hash) in tls.verify_certificate_hash.iter().enumerate() {
        if !is_hex_sha256(hash) {
            findings.error(
                &format!("{field}.verifyCertificateHash[{index}]"),
                format!(
                    "invalid verifyCertificateHash {hash:?}: expected a SHA-256 digest of the certificate in hex (64 digits, colons between byte pairs allowed)"
                ),
            );
        }
    }
    let pinned = !tls.verify_certificate_spki.is_empty() || !tls.verify_certificate_hash.is_empty();
    let verifies_clients = matches!(
        tls.mode,
        ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if pinned && !verifies_clients {
        findings.warn(
            &format!("{field}.mode"),
            format!(
                "verifyCertificateSpki/verifyCertificateHash have no effect in {} mode: they check client certificates, which only MUTUAL and OPTIONAL_MUTUAL request",
                tls.mode.name()
            ),
        );
    }
}

pub(super) fn validate_client_tls(tls: &ClientTlsSettings, field: &str, findings: &mut Findings) {
    if tls.insecure_skip_verify == Some(true) {
        if tls.mode == ClientTlsMode::Simple
            && (!tls.ca_certificates.is_empty()
                || !tls.credential_name.is_empty()
                || tls.subject_alt_names.is_some())
        {
            findings.error(
                &format!("{field}.insecureSkipVerify"),
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
        if tls.mode == ClientTlsMode::Mutual
            && (!tls.ca_certificates.is_empty() || tls.subject_alt_names.is_some())
        {
            findings.error(
                &format!("{field}.insecureSkipVerify"),
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
    }
    let remote_credentials = matches!(tls.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual)
        && !tls.credential_name.is_empty();
    if remote_credentials {
        if [
            &tls.client_certificate,
            &tls.ca_certificates,
            &tls.private_key,
            &tls.ca_crl,
        ]
        .iter()
        .any(|value| !value.is_empty())
        {
            findings.error(
                &format!("{field}.credentialName"),
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
            );
        }
        return;
    }
    if tls.mode == ClientTlsMode::Mutual {
        if tls.client_certificate.is_empty() {
            findings.error(
                &format!("{field}.clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if tls.private_key.is_empty() {
            findings.error(
                &format!("{field}.privateKey"),
                "private key required for mutual tls",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_formats() {
        assert!(is_base64_sha256(
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        ));
        assert!(!is_base64_sha256(
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB="
        ));
        assert!(!is_base64_sha256("not base64"));
        let hex = "ab".repeat(32);
        assert!(is_hex_sha256(&hex));
        let with_colons = vec!["AB"; 32].join(":");
        assert!(is_hex_sha256(&with_colons));
        assert!(!is_hex_sha256(&hex[..62]));
        assert!(!is_hex_sha256(&"zz".repeat(32)));
    }
}
