//! TLS material a gateway serves or presents: files it reads itself (mounted next to it, as in
//! Istio) or PEM taken from a Kubernetes Secret named by `credentialName`.
//!
//! Secrets resolve in the gateway workload's own namespace and cluster, as Istio's gateway
//! secret discovery does; a Secret elsewhere is never reachable by naming it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use multicluster::proto::{self, tls_credential::Source};

use crate::istio::destination_rule::ClientTlsSettings;
use crate::istio::gateway::{ServerTlsMode, ServerTlsSettings};
use crate::istio::{GatewaySpec, IstioObject};

use super::Translator;

/// Keys Kubernetes (`tls.crt`) and Istio's generic form (`cert`) use for the same thing.
const CERT_KEYS: [&str; 2] = ["tls.crt", "cert"];
const KEY_KEYS: [&str; 2] = ["tls.key", "key"];
const CA_KEYS: [&str; 2] = ["ca.crt", "cacert"];

impl Translator<'_> {
    /// Registers the credential a terminating server presents and returns its name.
    pub(super) fn server_credential(
        &mut self,
        _gateway: &IstioObject<GatewaySpec>,
        settings: &ServerTlsSettings,
    ) -> Result<String, String> {
        let needs_ca = settings.mode == ServerTlsMode::Mutual;
        if !settings.credential_name.is_empty() {
            return self.secret_credential(&settings.credential_name, needs_ca, true);
        }
        if settings.server_certificate.is_empty() || settings.private_key.is_empty() {
            return Err(format!(
                "{} TLS needs credentialName, or serverCertificate and privateKey",
                settings.mode.name()
            ));
        }
        if needs_ca && settings.ca_certificates.is_empty() {
            return Err("MUTUAL TLS needs caCertificates (or a credentialName with ca.crt)".into());
        }
        Ok(self.file_credential(
            &settings.server_certificate,
            &settings.private_key,
            &settings.ca_certificates,
        ))
    }

    /// Registers what a gateway presents/trusts when it originates TLS; empty when nothing.
    pub(super) fn upstream_credential(
        &mut self,
        settings: &ClientTlsSettings,
    ) -> Result<String, String> {
        if !settings.credential_name.is_empty() {
            return self.secret_credential(&settings.credential_name, false, false);
        }
        if settings.client_certificate.is_empty()
            && settings.private_key.is_empty()
            && settings.ca_certificates.is_empty()
        {
            return Ok(String::new());
        }
        Ok(self.file_credential(
            &settings.client_certificate,
            &settings.private_key,
            &settings.ca_certificates,
        ))
    }

    fn file_credential(&mut self, chain: &str, key: &str, ca: &str) -> String {
        let name = format!("file:{chain}:{key}:{ca}");
        self.credentials
            .entry(name.clone())
            .or_insert_with(|| proto::TlsCredential {
                name: name.clone(),
                source: Some(Source::Files(proto::CredentialFiles {
                    certificate_chain: chain.to_owned(),
                    private_key: key.to_owned(),
                    ca_certificates: ca.to_owned(),
                })),
            });
        name
    }

    fn secret_credential(
        &mut self,
        secret_name: &str,
        needs_ca: bool,
        needs_certificate: bool,
    ) -> Result<String, String> {
        let namespace = self.gateway.namespace.as_str();
        let cluster = self.cluster.clone().ok_or_else(|| {
            "the gateway named no cluster, so no Secret can be looked up".to_owned()
        })?;
        let secret = self.snapshot.secret(&cluster, namespace, secret_name).ok_or_else(|| {
            format!(
                "credentialName {secret_name}: no Secret {namespace}/{secret_name} in cluster {cluster} \
                 (credentials resolve in the gateway's own namespace)"
            )
        })?;
        let data = secret_data(secret);
        let chain = first_of(&data, &CERT_KEYS).unwrap_or_default();
        let key = first_of(&data, &KEY_KEYS).unwrap_or_default();
        if needs_certificate && (chain.is_empty() || key.is_empty()) {
            return Err(format!(
                "credentialName {secret_name}: Secret {namespace}/{secret_name} needs tls.crt and tls.key"
            ));
        }
        let ca = match first_of(&data, &CA_KEYS) {
            Some(ca) => ca,
            None => {
                let ca_secret = format!("{secret_name}-cacert");
                self.snapshot
                    .secret(&cluster, namespace, &ca_secret)
                    .and_then(|secret| first_of(&secret_data(secret), &CA_KEYS))
                    .unwrap_or_default()
            }
        };
        if needs_ca && ca.is_empty() {
            return Err(format!(
                "credentialName {secret_name}: MUTUAL TLS needs a CA, but Secret {namespace}/{secret_name} \
                 has no ca.crt and there is no Secret {namespace}/{secret_name}-cacert"
            ));
        }
        let name = format!("secret:{namespace}/{secret_name}");
        self.credentials.insert(
            name.clone(),
            proto::TlsCredential {
                name: name.clone(),
                source: Some(Source::Pem(proto::CredentialPem {
                    certificate_chain: chain,
                    private_key: key,
                    ca_certificates: ca,
                })),
            },
        );
        Ok(name)
    }
}

/// `data` (bytes) and `stringData` merged, as the API server would merge them on write.
fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    let mut merged: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .map(|(key, value)| (key.clone(), String::from_utf8_lossy(&value.0).into_owned()))
        .collect();
    if let Some(strings) = &secret.string_data {
        merged.extend(strings.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    merged
}

fn first_of(data: &BTreeMap<String, String>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|key| data.get(*key))
        .filter(|value| !value.is_empty())
        .cloned()
}
