//! Splitting PEM text into certificates and keys, with errors that say which part was wrong.

use rustls_pki_types::pem::{self, SectionKind};
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("not PEM: no \"-----BEGIN ...-----\" section found")]
    NotPem,
    #[error("malformed PEM: {0}")]
    Malformed(String),
    #[error("no certificate (\"-----BEGIN CERTIFICATE-----\") found")]
    NoCertificate,
    #[error(
        "no private key found (expected \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\")"
    )]
    NoPrivateKey,
    #[error("{count} private keys found where one was expected")]
    SeveralPrivateKeys { count: usize },
}

/// All recognised PEM sections, in order. Unknown section labels are skipped.
pub fn sections(text: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, PemError> {
    let mut rest = text;
    let mut found = Vec::new();
    loop {
        match pem::from_buf(&mut rest) {
            Ok(Some(section)) => found.push(section),
            Ok(None) => break,
            Err(err) => return Err(PemError::Malformed(err.to_string())),
        }
    }
    if found.is_empty() && !contains_begin_marker(text) {
        return Err(PemError::NotPem);
    }
    Ok(found)
}

fn contains_begin_marker(text: &[u8]) -> bool {
    text.windows(b"-----BEGIN ".len())
        .any(|w| w == b"-----BEGIN ")
}

/// Every certificate in `text`, in file order; at least one.
pub fn certificates(text: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs: Vec<CertificateDer<'static>> = sections(text)?
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    if certs.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(certs)
}

/// The single private key in `text` (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(text: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    let mut keys: Vec<PrivateKeyDer<'static>> = sections(text)?
        .into_iter()
        .filter_map(|(kind, der)| match kind {
            SectionKind::PrivateKey => Some(PrivatePkcs8KeyDer::from(der).into()),
            SectionKind::RsaPrivateKey => Some(PrivatePkcs1KeyDer::from(der).into()),
            SectionKind::EcPrivateKey => Some(PrivateSec1KeyDer::from(der).into()),
            _ => None,
        })
        .collect();
    match keys.len() {
        0 => Err(PemError::NoPrivateKey),
        1 => Ok(keys.remove(0)),
        count => Err(PemError::SeveralPrivateKeys { count }),
    }
}

/// PEM text for one DER certificate.
pub fn encode_certificate(der: &[u8]) -> String {
    encode("CERTIFICATE", der)
}

pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // RFC 7468 wraps base64 at 64 columns; base64 output is ASCII so byte chunks are whole chars.
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_markers_is_not_pem() {
        assert!(matches!(certificates(b"hello"), Err(PemError::NotPem)));
        assert!(matches!(certificates(b""), Err(PemError::NotPem)));
    }

    #[test]
    fn a_key_is_not_a_certificate() {
        let key = encode("PRIVATE KEY", &[1, 2, 3]);
        assert!(matches!(
            certificates(key.as_bytes()),
            Err(PemError::NoCertificate)
        ));
        assert!(matches!(
            private_key(key.as_bytes()),
            Ok(PrivateKeyDer::Pkcs8(_))
        ));
    }

    #[test]
    fn certificates_come_back_in_order() {
        let text = format!(
            "{}{}",
            encode_certificate(&[1, 2]),
            encode_certificate(&[3, 4])
        );
        let certs = certificates(text.as_bytes()).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].as_ref(), &[1, 2]);
        assert_eq!(certs[1].as_ref(), &[3, 4]);
    }

    #[test]
    fn two_keys_are_ambiguous() {
        let text = format!(
            "{}{}",
            encode("EC PRIVATE KEY", &[1]),
            encode("RSA PRIVATE KEY", &[2])
        );
        assert!(matches!(
            private_key(text.as_bytes()),
            Err(PemError::SeveralPrivateKeys { count: 2 })
        ));
    }

    #[test]
    fn long_bodies_wrap_at_64_columns() {
        let text = encode_certificate(&[7u8; 100]);
        assert!(
            text.lines()
                .all(|line| line.len() <= 64 || line.starts_with("-----"))
        );
        assert_eq!(
            certificates(text.as_bytes()).unwrap()[0].as_ref(),
            &[7u8; 100]
        );
    }
}
