//! TLS material from Kubernetes Secrets, in the shapes Istio's `credentialName` accepts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use rustls_pki_types::CertificateDer;

use crate::load::{LoadError, PemSource, TlsMaterial};
use crate::pem;

const CERT_KEYS: [&str; 2] = ["tls.crt", "cert"];
const KEY_KEYS: [&str; 2] = ["tls.key", "key"];
const CA_KEYS: [&str; 2] = ["ca.crt", "cacert"];

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "secret {secret}: no certificate: expected key \"tls.crt\" (or Istio's \"cert\"); found keys {found:?}"
    )]
    MissingCertificate { secret: String, found: Vec<String> },
    #[error(
        "secret {secret}: no private key: expected key \"tls.key\" (or Istio's \"key\"); found keys {found:?}"
    )]
    MissingKey { secret: String, found: Vec<String> },
    #[error(
        "secret {secret}: no CA certificate: expected key \"ca.crt\" (or Istio's \"cacert\"); found keys {found:?}"
    )]
    MissingCa { secret: String, found: Vec<String> },
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// The name of the Secret Istio looks in for the CA of credential `name`.
pub fn ca_secret_name(name: &str) -> String {
    format!("{name}-cacert")
}

/// Certificate, key and (if present) CA from `secret`; when `secret` holds no CA,
/// `ca_secret` (the `<name>-cacert` Secret) supplies it.
pub fn material_from_secret(
    secret: &Secret,
    ca_secret: Option<&Secret>,
) -> Result<TlsMaterial, SecretError> {
    let entries = SecretEntries::of(secret);
    let (cert_key, cert) =
        entries
            .first_of(&CERT_KEYS)
            .ok_or_else(|| SecretError::MissingCertificate {
                secret: entries.name.clone(),
                found: entries.keys(),
            })?;
    let (key_key, key) = entries
        .first_of(&KEY_KEYS)
        .ok_or_else(|| SecretError::MissingKey {
            secret: entries.name.clone(),
            found: entries.keys(),
        })?;
    let cert_origin = entries.origin(cert_key);
    let key_origin = entries.origin(key_key);
    let mut material = TlsMaterial::from_pem(
        PemSource {
            origin: &cert_origin,
            text: &cert,
        },
        PemSource {
            origin: &key_origin,
            text: &key,
        },
        None,
    )?;
    material.ca_certs = match entries.first_of(&CA_KEYS) {
        Some((ca_key, ca)) => parse_ca(&entries.origin(ca_key), &ca)?,
        None => match ca_secret {
            Some(ca_secret) => ca_from_secret(ca_secret)?,
            None => Vec::new(),
        },
    };
    Ok(material)
}

/// The CA bundle of a CA-only Secret (`<name>-cacert` with `ca.crt`, or `cacert`).
pub fn ca_from_secret(secret: &Secret) -> Result<Vec<CertificateDer<'static>>, SecretError> {
    let entries = SecretEntries::of(secret);
    let (ca_key, ca) = entries
        .first_of(&CA_KEYS)
        .ok_or_else(|| SecretError::MissingCa {
            secret: entries.name.clone(),
            found: entries.keys(),
        })?;
    parse_ca(&entries.origin(ca_key), &ca)
}

fn parse_ca(origin: &str, text: &[u8]) -> Result<Vec<CertificateDer<'static>>, SecretError> {
    pem::certificates(text).map_err(|source| {
        LoadError::Pem {
            origin: origin.to_owned(),
            source,
        }
        .into()
    })
}

/// `data` and `stringData` merged; `stringData` wins, as the API server does on write.
struct SecretEntries {
    name: String,
    values: BTreeMap<String, Vec<u8>>,
}

impl SecretEntries {
    fn of(secret: &Secret) -> Self {
        let meta = &secret.metadata;
        let name = format!(
            "{}/{}",
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref().unwrap_or("<unnamed>")
        );
        let mut values: BTreeMap<String, Vec<u8>> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in secret.string_data.iter().flatten() {
            values.insert(k.clone(), v.as_bytes().to_vec());
        }
        Self { name, values }
    }

    fn first_of(&self, keys: &[&'static str]) -> Option<(&'static str, Vec<u8>)> {
        keys.iter().find_map(|key| {
            self.values
                .get(*key)
                .filter(|v| !v.is_empty())
                .map(|v| (*key, v.clone()))
        })
    }

    fn keys(&self) -> Vec<String> {
        self.values.keys().cloned().collect()
    }

    fn origin(&self, key: &str) -> String {
        format!("secret {} key {key}", self.name)
    }
}
