//! Certificates and keys from PEM files (Gateway `serverCertificate`/`privateKey`/
//! `caCertificates`, DestinationRule `clientCertificate`/...), checked as a pair.

use std::io;
use std::path::{Path, PathBuf};

use rustls::sign::CertifiedKey;
use rustls::{Error as RustlsError, InconsistentKeys};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::pem::{self, PemError};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: file not found (check the path in the TLS settings)", path.display())]
    Missing { path: PathBuf },
    #[error("{}: cannot read: {source}", path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{origin}: {source}")]
    Pem { origin: String, source: PemError },
    #[error("{origin}: the private key cannot be used: {reason}")]
    BadKey { origin: String, reason: String },
    #[error("{origin}: the certificate cannot be used: {reason}")]
    BadCertificate { origin: String, reason: String },
    #[error(
        "the private key in {key_origin} does not match the certificate in {cert_origin}: they are not a pair"
    )]
    KeyMismatch {
        cert_origin: String,
        key_origin: String,
    },
}

/// A certificate chain, its key, and optionally the CA bundle used to verify peers.
#[derive(Debug)]
pub struct TlsMaterial {
    /// Leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Empty when no CA was given.
    pub ca_certs: Vec<CertificateDer<'static>>,
}

impl Clone for TlsMaterial {
    fn clone(&self) -> Self {
        Self {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
            ca_certs: self.ca_certs.clone(),
        }
    }
}

/// Where a PEM text came from, for error messages ("/etc/certs/tls.crt",
/// "secret istio-system/cred key tls.crt").
#[derive(Debug, Clone, Copy)]
pub struct PemSource<'a> {
    pub origin: &'a str,
    pub text: &'a [u8],
}

impl TlsMaterial {
    /// Parses and cross-checks a chain and key (and CA, if any).
    pub fn from_pem(
        cert: PemSource<'_>,
        key: PemSource<'_>,
        ca: Option<PemSource<'_>>,
    ) -> Result<Self, LoadError> {
        let pem_error = |origin: &str| {
            let origin = origin.to_owned();
            move |source| LoadError::Pem { origin, source }
        };
        let cert_chain = pem::certificates(cert.text).map_err(pem_error(cert.origin))?;
        let private_key = pem::private_key(key.text).map_err(pem_error(key.origin))?;
        let ca_certs = match ca {
            Some(ca) => pem::certificates(ca.text).map_err(pem_error(ca.origin))?,
            None => Vec::new(),
        };
        let material = Self {
            cert_chain,
            key: private_key,
            ca_certs,
        };
        material.certified_key_labelled(cert.origin, key.origin)?;
        Ok(material)
    }

    /// The rustls form, with the key checked against the leaf.
    pub fn certified_key(&self) -> Result<CertifiedKey, LoadError> {
        self.certified_key_labelled("certificate chain", "private key")
    }

    fn certified_key_labelled(
        &self,
        cert_origin: &str,
        key_origin: &str,
    ) -> Result<CertifiedKey, LoadError> {
        let provider = rustls::crypto::ring::default_provider();
        let signing_key = provider
            .key_provider
            .load_private_key(self.key.clone_key())
            .map_err(|err| LoadError::BadKey {
                origin: key_origin.to_owned(),
                reason: err.to_string(),
            })?;
        let certified = CertifiedKey::new(self.cert_chain.clone(), signing_key);
        match certified.keys_match() {
            Ok(()) | Err(RustlsError::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
            Err(RustlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                Err(LoadError::KeyMismatch {
                    cert_origin: cert_origin.to_owned(),
                    key_origin: key_origin.to_owned(),
                })
            }
            Err(err) => Err(LoadError::BadCertificate {
                origin: cert_origin.to_owned(),
                reason: err.to_string(),
            }),
        }
    }
}

/// Reads `cert_path` (chain, leaf first), `key_path` and, if given, `ca_path`.
pub fn load_pem_files(
    cert_path: &Path,
    key_path: &Path,
    ca_path: Option<&Path>,
) -> Result<TlsMaterial, LoadError> {
    let cert_text = read(cert_path)?;
    let key_text = read(key_path)?;
    let ca_text = ca_path.map(read).transpose()?;
    let cert_origin = cert_path.display().to_string();
    let key_origin = key_path.display().to_string();
    let ca_origin = ca_path.map(|p| p.display().to_string());
    TlsMaterial::from_pem(
        PemSource {
            origin: &cert_origin,
            text: &cert_text,
        },
        PemSource {
            origin: &key_origin,
            text: &key_text,
        },
        ca_origin
            .as_deref()
            .zip(ca_text.as_deref())
            .map(|(origin, text)| PemSource { origin, text }),
    )
}

/// A CA bundle file (`caCertificates`).
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let text = read(path)?;
    pem::certificates(&text).map_err(|source| LoadError::Pem {
        origin: path.display().to_string(),
        source,
    })
}

/// A rustls key from PEM texts already in memory (issued certificates, CSR responses).
pub fn certified_key_from_pem(chain_pem: &str, key_pem: &str) -> Result<CertifiedKey, LoadError> {
    TlsMaterial::from_pem(
        PemSource {
            origin: "certificate chain",
            text: chain_pem.as_bytes(),
        },
        PemSource {
            origin: "private key",
            text: key_pem.as_bytes(),
        },
        None,
    )?
    .certified_key()
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => LoadError::Missing {
            path: path.to_owned(),
        },
        _ => LoadError::Unreadable {
            path: path.to_owned(),
            source,
        },
    })
}
