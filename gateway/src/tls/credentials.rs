//! Certificate material named by `TlsCredential`s: files read at every apply (they are
//! mounted next to the gateway and may have been rotated), inline PEM from Kubernetes
//! Secrets. Loads are cached by content, so an unchanged credential keeps the same `Arc`
//! (and upstream pools built on it survive a push).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use multicluster::proto::{self, tls_credential::Source};
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CredentialError {
    #[error(
        "credential {name:?} is not in this configuration; discovery must send it with the server"
    )]
    Unknown { name: String },
    #[error("credential {name:?} has neither files nor PEM")]
    Empty { name: String },
    #[error("credential {name:?}: {reason}")]
    Load { name: String, reason: String },
    #[error("credential {name:?} has no certificate and key, which {mode} needs")]
    NoCertificate { name: String, mode: &'static str },
    #[error("credential {name:?} has no CA certificates, which {mode} needs to verify peers")]
    NoCa { name: String, mode: &'static str },
}

/// A loaded credential: a certificate and key (absent for CA-only credentials such as a
/// DestinationRule with only `caCertificates`) and the CA bundle (possibly empty).
#[derive(Debug)]
pub struct Credential {
    pub key: Option<Arc<CertifiedKey>>,
    pub ca: Vec<CertificateDer<'static>>,
}

/// The bytes a credential was loaded from, and the result.
type Loaded = (Vec<u8>, Arc<Credential>);

#[derive(Default)]
pub struct CredentialCache {
    loaded: Mutex<HashMap<String, Loaded>>,
}

impl CredentialCache {
    /// Loads `name` from `credentials`, reusing the previous load when the bytes are the same.
    pub fn load(
        &self,
        credentials: &HashMap<&str, &proto::TlsCredential>,
        name: &str,
    ) -> Result<Arc<Credential>, CredentialError> {
        let credential = credentials
            .get(name)
            .ok_or_else(|| CredentialError::Unknown {
                name: name.to_owned(),
            })?;
        let load_error = |reason: String| CredentialError::Load {
            name: name.to_owned(),
            reason,
        };
        let texts = match &credential.source {
            None => {
                return Err(CredentialError::Empty {
                    name: name.to_owned(),
                });
            }
            Some(Source::Files(files)) => PemTexts {
                chain: read(&files.certificate_chain).map_err(load_error)?,
                key: read(&files.private_key).map_err(load_error)?,
                ca: read(&files.ca_certificates).map_err(load_error)?,
                origins: [
                    files.certificate_chain.clone(),
                    files.private_key.clone(),
                    files.ca_certificates.clone(),
                ],
            },
            Some(Source::Pem(pem)) => PemTexts {
                chain: pem.certificate_chain.as_bytes().to_vec(),
                key: pem.private_key.as_bytes().to_vec(),
                ca: pem.ca_certificates.as_bytes().to_vec(),
                origins: [
                    format!("{name} tls.crt"),
                    format!("{name} tls.key"),
                    format!("{name} ca.crt"),
                ],
            },
        };
        let fingerprint = texts.fingerprint();
        // The map only gets whole entries inserted; a panic elsewhere cannot corrupt it.
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, credential)) = loaded.get(name)
            && *seen == fingerprint
        {
            return Ok(Arc::clone(credential));
        }
        let credential = Arc::new(texts.parse().map_err(load_error)?);
        loaded.insert(name.to_owned(), (fingerprint, Arc::clone(&credential)));
        Ok(credential)
    }

    /// Forgets credentials no longer named by the configuration.
    pub fn retain(&self, names: &std::collections::HashSet<&str>) {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| names.contains(name.as_str()));
    }
}

struct PemTexts {
    chain: Vec<u8>,
    key: Vec<u8>,
    ca: Vec<u8>,
    origins: [String; 3],
}

impl PemTexts {
    fn fingerprint(&self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.chain.len() + self.key.len() + self.ca.len() + 2);
        all.extend_from_slice(&self.chain);
        all.push(0);
        all.extend_from_slice(&self.key);
        all.push(0);
        all.extend_from_slice(&self.ca);
        all
    }

    fn parse(&self) -> Result<Credential, String> {
        let [chain_origin, key_origin, ca_origin] = &self.origins;
        let key = if self.chain.is_empty() && self.key.is_empty() {
            None
        } else {
            let material = certs::TlsMaterial::from_pem(
                certs::load::PemSource {
                    origin: chain_origin,
                    text: &self.chain,
                },
                certs::load::PemSource {
                    origin: key_origin,
                    text: &self.key,
                },
                None,
            )
            .map_err(|e| e.to_string())?;
            Some(Arc::new(
                material.certified_key().map_err(|e| e.to_string())?,
            ))
        };
        let ca = if self.ca.is_empty() {
            Vec::new()
        } else {
            certs::pem::certificates(&self.ca).map_err(|e| format!("{ca_origin}: {e}"))?
        };
        Ok(Credential { key, ca })
    }
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    std::fs::read(Path::new(path)).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("{path}: file not found (check the path in the TLS settings)")
        }
        _ => format!("{path}: cannot read: {e}"),
    })
}
