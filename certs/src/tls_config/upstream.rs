//! Client-side TLS towards upstreams (DestinationRule `tls`, TLS origination): SIMPLE or
//! MUTUAL, CA required (no system or downloaded roots), optional SNI override and SAN list.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls_pki_types::{CertificateDer, ServerName};

use super::verify::{NameFreeServerVerifier, ServerSanAllowList};
use super::{TlsConfigError, crypto_provider, root_store, rustls_error};

/// Istio's `ClientTLSSettings.TLSmode` values that originate TLS with explicit material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamTlsMode {
    #[default]
    Simple,
    Mutual,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTlsPolicy {
    pub mode: UpstreamTlsMode,
    /// `sni`: the server name to send instead of the destination host.
    pub sni: Option<String>,
    /// `subjectAltNames`: when set, the server certificate must carry one of these instead of
    /// matching the server name.
    pub subject_alt_names: Vec<String>,
}

/// The configuration plus the name to hand to `TlsConnector::connect`.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
}

/// Builds the client side for `host` (the destination's host name, used as SNI and for the
/// certificate name check unless the policy overrides them).
pub fn upstream_client_config(
    policy: &UpstreamTlsPolicy,
    host: &str,
    ca: &[CertificateDer<'static>],
    client_cert: Option<Arc<dyn ResolvesClientCert>>,
    alpn: Vec<Vec<u8>>,
) -> Result<UpstreamTls, TlsConfigError> {
    let what = "upstream TLS origination";
    let name = policy.sni.as_deref().unwrap_or(host);
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|err| TlsConfigError::BadServerName {
            name: name.to_owned(),
            reason: err.to_string(),
        })?;
    let provider = crypto_provider();
    let roots = root_store(ca, what)?;
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(rustls_error(what))?;
    let builder = if policy.subject_alt_names.is_empty() {
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .build()
            .map_err(|source| TlsConfigError::Verifier { what, source })?;
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NameFreeServerVerifier {
                roots,
                algorithms: provider.signature_verification_algorithms,
                check: Box::new(ServerSanAllowList(policy.subject_alt_names.clone())),
            }))
    };
    let mut config = match (policy.mode, client_cert) {
        (UpstreamTlsMode::Simple, _) => builder.with_no_client_auth(),
        (UpstreamTlsMode::Mutual, Some(certs)) => builder.with_client_cert_resolver(certs),
        (UpstreamTlsMode::Mutual, None) => return Err(TlsConfigError::MutualWithoutClientCert),
    };
    config.alpn_protocols = alpn;
    Ok(UpstreamTls {
        config: Arc::new(config),
        server_name,
    })
}
