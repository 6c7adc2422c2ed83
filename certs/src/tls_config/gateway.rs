//! Server-side TLS of a Gateway server (SIMPLE, MUTUAL, OPTIONAL_MUTUAL) from its `tls`
//! settings. ISTIO_MUTUAL uses [`super::mesh::mesh_server_config`].

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::{ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::CertificateDer;

use super::verify::CheckedClientVerifier;
use super::{TlsConfigError, crypto_provider, root_store, rustls_error};
use crate::policy::ciphers::resolve_cipher_suites;
use crate::policy::client_cert::ClientCertAllowList;
use crate::policy::versions::{TlsVersion, resolve_versions};

/// The terminating modes of Istio's `ServerTLSSettings.TLSmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerTlsMode {
    #[default]
    Simple,
    Mutual,
    OptionalMutual,
}

impl ServerTlsMode {
    fn istio_name(self) -> &'static str {
        match self {
            Self::Simple => "SIMPLE",
            Self::Mutual => "MUTUAL",
            Self::OptionalMutual => "OPTIONAL_MUTUAL",
        }
    }
}

/// The parts of a Gateway server's `tls` block that shape the TLS handshake; the gateway maps
/// the protobuf into this.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerTlsPolicy {
    pub mode: ServerTlsMode,
    /// `subjectAltNames`: accepted client certificate SANs.
    pub subject_alt_names: Vec<String>,
    /// `verifyCertificateSpki`: base64 SHA-256 of accepted client SPKIs.
    pub spki: Vec<String>,
    /// `verifyCertificateHash`: hex SHA-256 of accepted client certificates.
    pub hashes: Vec<String>,
    pub min: TlsVersion,
    pub max: TlsVersion,
    /// `cipherSuites`, OpenSSL names.
    pub cipher_suites: Vec<String>,
}

/// Everything but the certificate: lets one policy serve several certificate sets (and the
/// QUIC side of the same port) without re-validating.
#[derive(Debug, Clone)]
pub struct ServerTlsPieces {
    pub provider: Arc<CryptoProvider>,
    pub versions: Vec<&'static SupportedProtocolVersion>,
    pub client_verifier: Arc<dyn ClientCertVerifier>,
    /// Parts of the policy that could not be honoured exactly; log or report them.
    pub warnings: Vec<String>,
}

impl ServerTlsPieces {
    pub fn allows_tls13(&self) -> bool {
        self.versions.contains(&&rustls::version::TLS13)
    }

    /// The same policy for HTTP/3 on the UDP side of the port: QUIC is TLS 1.3 only.
    pub fn quic_server_config(
        &self,
        certs: Arc<dyn ResolvesServerCert>,
        alpn: Vec<Vec<u8>>,
    ) -> Result<ServerConfig, TlsConfigError> {
        if !self.allows_tls13() {
            return Err(TlsConfigError::QuicNeedsTls13);
        }
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(rustls_error("gateway QUIC server"))?
            .with_client_cert_verifier(Arc::clone(&self.client_verifier))
            .with_cert_resolver(certs);
        config.alpn_protocols = alpn;
        // quinn accepts only 0 (no 0-RTT) or u32::MAX here; replayable 0-RTT stays off.
        config.max_early_data_size = 0;
        Ok(config)
    }

    pub fn server_config(
        &self,
        certs: Arc<dyn ResolvesServerCert>,
        alpn: Vec<Vec<u8>>,
    ) -> Result<ServerConfig, TlsConfigError> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&self.versions)
            .map_err(rustls_error("gateway server"))?
            .with_client_cert_verifier(Arc::clone(&self.client_verifier))
            .with_cert_resolver(certs);
        config.alpn_protocols = alpn;
        Ok(config)
    }
}

/// Validates `policy` and prepares its pieces. `client_ca` is the CA bundle for MUTUAL
/// (`caCertificates`, `ca.crt`, or the `<name>-cacert` Secret).
pub fn resolve_server_tls(
    policy: &ServerTlsPolicy,
    client_ca: &[CertificateDer<'static>],
) -> Result<ServerTlsPieces, TlsConfigError> {
    let range = resolve_versions(policy.min, policy.max)?;
    let ciphers = resolve_cipher_suites(&policy.cipher_suites, &range)?;
    let mut warnings = range.warnings.clone();
    warnings.extend(ciphers.warnings);
    let provider = Arc::new(CryptoProvider {
        cipher_suites: ciphers.suites,
        ..(*crypto_provider()).clone()
    });
    let allow_list =
        ClientCertAllowList::new(&policy.subject_alt_names, &policy.spki, &policy.hashes)?;

    let client_verifier = match policy.mode {
        ServerTlsMode::Simple => {
            if !allow_list.is_empty() {
                warnings.push(
                    "subjectAltNames/verifyCertificateSpki/verifyCertificateHash are ignored in SIMPLE mode: client certificates are not requested".to_owned(),
                );
            }
            WebPkiClientVerifier::no_client_auth()
        }
        ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual => {
            if client_ca.is_empty() {
                return Err(TlsConfigError::MutualWithoutCa {
                    mode: policy.mode.istio_name(),
                });
            }
            let what = "gateway MUTUAL server";
            let mut builder = WebPkiClientVerifier::builder_with_provider(
                root_store(client_ca, what)?,
                Arc::clone(&provider),
            );
            if policy.mode == ServerTlsMode::OptionalMutual {
                builder = builder.allow_unauthenticated();
            }
            let webpki = builder
                .build()
                .map_err(|source| TlsConfigError::Verifier { what, source })?;
            Arc::new(CheckedClientVerifier {
                inner: webpki,
                check: Box::new(allow_list),
            })
        }
    };
    for warning in &warnings {
        tracing::warn!(mode = policy.mode.istio_name(), warning = %warning, "server TLS settings narrowed");
    }
    Ok(ServerTlsPieces {
        provider,
        versions: range.versions,
        client_verifier,
        warnings,
    })
}

/// A gateway server's rustls configuration and the warnings it produced.
#[derive(Debug)]
pub struct GatewayServerTls {
    pub config: ServerConfig,
    pub warnings: Vec<String>,
}

/// [`resolve_server_tls`] and [`ServerTlsPieces::server_config`] in one step.
pub fn gateway_server_config(
    policy: &ServerTlsPolicy,
    client_ca: &[CertificateDer<'static>],
    certs: Arc<dyn ResolvesServerCert>,
    alpn: Vec<Vec<u8>>,
) -> Result<GatewayServerTls, TlsConfigError> {
    let pieces = resolve_server_tls(policy, client_ca)?;
    Ok(GatewayServerTls {
        config: pieces.server_config(certs, alpn)?,
        warnings: pieces.warnings,
    })
}
