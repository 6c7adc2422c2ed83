//! Certificate fingerprints in the forms Istio's `verifyCertificateSpki` / `verifyCertificateHash`
//! use.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    #[error("cannot fingerprint: certificate is not valid DER X.509 ({0})")]
    BadCertificate(String),
    #[error(
        "verifyCertificateSpki entry {value:?} is not a base64 SHA-256 digest (expected 44 base64 characters decoding to 32 bytes)"
    )]
    BadSpki { value: String },
    #[error(
        "verifyCertificateHash entry {value:?} is not a hex SHA-256 digest (expected 64 hex digits, colons allowed)"
    )]
    BadHash { value: String },
}

/// Base64 (standard alphabet, padded) SHA-256 of the certificate's SubjectPublicKeyInfo.
pub fn spki_sha256_base64(cert_der: &[u8]) -> Result<String, FingerprintError> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|err| FingerprintError::BadCertificate(err.to_string()))?;
    let digest = Sha256::digest(cert.public_key().raw);
    Ok(base64::engine::general_purpose::STANDARD.encode(digest))
}

/// Lowercase hex SHA-256 of the whole DER certificate, without separators.
pub fn cert_sha256_hex(cert_der: &[u8]) -> String {
    Sha256::digest(cert_der)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Canonical form of a `verifyCertificateHash` entry: colons removed, lowercase.
pub fn normalize_cert_hash(value: &str) -> Result<String, FingerprintError> {
    let hex: String = value
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(FingerprintError::BadHash {
            value: value.to_owned(),
        });
    }
    Ok(hex)
}

/// Checks a `verifyCertificateSpki` entry and returns its decoded digest.
pub fn decode_spki_pin(value: &str) -> Result<[u8; 32], FingerprintError> {
    let bad = || FingerprintError::BadSpki {
        value: value.to_owned(),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_hash_is_sha256_of_the_der() {
        // SHA-256 of the empty input, a well-known value.
        assert_eq!(
            cert_sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hashes_accept_colons_and_any_case() {
        let plain = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let colons = plain
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|pair| String::from_utf8_lossy(pair).into_owned())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(normalize_cert_hash(&colons).unwrap(), plain);
        assert!(matches!(
            normalize_cert_hash("abc"),
            Err(FingerprintError::BadHash { .. })
        ));
        let not_hex = "z".repeat(64);
        assert!(normalize_cert_hash(&not_hex).is_err());
    }

    #[test]
    fn spki_pins_must_be_32_bytes() {
        let digest = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        assert_eq!(decode_spki_pin(&digest).unwrap(), [9u8; 32]);
        let short = base64::engine::general_purpose::STANDARD.encode([9u8; 20]);
        assert!(matches!(
            decode_spki_pin(&short),
            Err(FingerprintError::BadSpki { .. })
        ));
        assert!(decode_spki_pin("not base64!").is_err());
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(
            spki_sha256_base64(b"garbage"),
            Err(FingerprintError::BadCertificate(_))
        ));
    }
}
