//! Client-certificate allow-lists of a MUTUAL server: `subjectAltNames`,
//! `verifyCertificateSpki`, `verifyCertificateHash`. As in Envoy, a certificate must match
//! the SAN list (when set) and, when pins are set, one pin from either pin list.

use sha2::{Digest, Sha256};

use crate::fingerprint::{self, FingerprintError};
use crate::inspect::{self, InspectError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientCertError {
    #[error(transparent)]
    BadPin(#[from] FingerprintError),
    #[error(transparent)]
    BadCertificate(#[from] InspectError),
    #[error("client certificate SANs {presented:?} match none of subjectAltNames {allowed:?}")]
    SanNotAllowed {
        presented: Vec<String>,
        allowed: Vec<String>,
    },
    #[error(
        "client certificate (SPKI sha256 {spki}, certificate sha256 {hash}) matches none of verifyCertificateSpki/verifyCertificateHash"
    )]
    NotPinned { spki: String, hash: String },
}

/// A validated allow-list; build it once per server config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCertAllowList {
    subject_alt_names: Vec<String>,
    spki_pins: Vec<[u8; 32]>,
    cert_hashes: Vec<String>,
}

impl ClientCertAllowList {
    /// Checks the pin formats up front, so a typo is a configuration error, not a handshake
    /// failure for everyone.
    pub fn new(
        subject_alt_names: &[String],
        spki: &[String],
        hashes: &[String],
    ) -> Result<Self, ClientCertError> {
        Ok(Self {
            subject_alt_names: subject_alt_names.to_vec(),
            spki_pins: spki
                .iter()
                .map(|pin| fingerprint::decode_spki_pin(pin))
                .collect::<Result<_, _>>()?,
            cert_hashes: hashes
                .iter()
                .map(|hash| fingerprint::normalize_cert_hash(hash))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.subject_alt_names.is_empty()
            && self.spki_pins.is_empty()
            && self.cert_hashes.is_empty()
    }

    /// Whether an already chain-verified end-entity certificate passes the lists.
    pub fn check(&self, cert_der: &[u8]) -> Result<(), ClientCertError> {
        if !self.subject_alt_names.is_empty() {
            let info = inspect::inspect(cert_der)?;
            let allowed = info.subject_alt_names.iter().any(|san| {
                self.subject_alt_names
                    .iter()
                    .any(|wanted| san.matches(wanted))
            });
            if !allowed {
                return Err(ClientCertError::SanNotAllowed {
                    presented: info
                        .subject_alt_names
                        .iter()
                        .map(ToString::to_string)
                        .collect(),
                    allowed: self.subject_alt_names.clone(),
                });
            }
        }
        if self.spki_pins.is_empty() && self.cert_hashes.is_empty() {
            return Ok(());
        }
        let hash = fingerprint::cert_sha256_hex(cert_der);
        if self.cert_hashes.contains(&hash) {
            return Ok(());
        }
        let cert = inspect::parse(cert_der)?;
        let spki: [u8; 32] = Sha256::digest(cert.public_key().raw).into();
        if self.spki_pins.contains(&spki) {
            return Ok(());
        }
        Err(ClientCertError::NotPinned {
            spki: fingerprint::spki_sha256_base64(cert_der)?,
            hash,
        })
    }
}
