//! One `Sign` call over mesh mTLS, presenting the caller's current certificate.

use std::sync::Arc;
use std::time::Duration;

use certs::{Identity, RotatingCert};
use multicluster::proto::SignRequest;
use rustls_pki_types::CertificateDer;
use tonic::transport::Endpoint;

use super::connector::MeshTlsConnector;
use super::generated::certificates_client::CertificatesClient;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(
        "discovery address {uri:?} is not a valid URI: {source}; expected e.g. http://discovery:15012"
    )]
    InvalidUri {
        uri: String,
        source: tonic::transport::Error,
    },
    #[error("cannot build the mTLS settings towards discovery: {0}")]
    Tls(#[from] certs::TlsConfigError),
    #[error(
        "cannot reach discovery's certificate service at {uri} over mTLS: {reason}; is discovery running with a CA, and is this workload's certificate still valid and from the mesh root?"
    )]
    Connect { uri: String, reason: String },
    #[error("discovery at {uri} refused to sign: {code:?}: {message}")]
    Refused {
        uri: String,
        code: tonic::Code,
        message: String,
    },
    #[error("discovery at {uri} returned an empty certificate chain")]
    EmptyChain { uri: String },
}

/// Where to find discovery's signing service and how to trust it.
#[derive(Debug, Clone)]
pub struct CaClientOptions {
    /// `http://host:port` (the scheme is ignored: the connection is always mesh mTLS).
    pub discovery: String,
    /// The mesh root(s) discovery's certificate must chain to.
    pub roots: Vec<CertificateDer<'static>>,
    /// Discovery's SPIFFE id; `None` accepts any mesh identity.
    pub discovery_identity: Option<Identity>,
    /// The cluster whose intermediate should sign; empty lets discovery pick its first.
    pub cluster: String,
    /// What to ask for; discovery may shorten it. Zero asks for discovery's default.
    pub lifetime: Duration,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl CaClientOptions {
    pub fn new(discovery: impl Into<String>, roots: Vec<CertificateDer<'static>>) -> Self {
        CaClientOptions {
            discovery: discovery.into(),
            roots,
            discovery_identity: None,
            cluster: String::new(),
            lifetime: Duration::ZERO,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Calls `Sign` with a fresh connection each time, so the handshake presents the certificate
/// `cert` holds at that moment (renewals are rare; a pooled connection would keep proving the
/// identity with whatever certificate it was opened with).
#[derive(Debug, Clone)]
pub struct CaClient {
    options: CaClientOptions,
    connector: MeshTlsConnector,
}

impl CaClient {
    pub fn new(options: CaClientOptions, cert: Arc<RotatingCert>) -> Result<Self, SignError> {
        let connector = MeshTlsConnector::to_discovery(
            cert,
            &options.roots,
            options.discovery_identity.as_ref(),
        )?;
        Ok(CaClient { connector, options })
    }

    pub fn options(&self) -> &CaClientOptions {
        &self.options
    }

    /// Sends `csr_pem` and returns the signed chain, PEM, leaf first.
    pub async fn sign(&self, csr_pem: &str) -> Result<Vec<String>, SignError> {
        let uri = self.options.discovery.clone();
        // The connector does TLS itself; tonic must see a plaintext scheme or it would insist on
        // its own TLS settings.
        let plain = match uri.split_once("://") {
            Some((_, rest)) => format!("http://{rest}"),
            None => format!("http://{uri}"),
        };
        let endpoint = Endpoint::from_shared(plain)
            .map_err(|source| SignError::InvalidUri {
                uri: uri.clone(),
                source,
            })?
            .connect_timeout(self.options.connect_timeout)
            .timeout(self.options.request_timeout);
        let channel = endpoint
            .connect_with_connector(self.connector.clone())
            .await
            .map_err(|error| SignError::Connect {
                uri: uri.clone(),
                reason: error_chain(&error),
            })?;
        let request = SignRequest {
            csr_pem: csr_pem.to_owned(),
            lifetime_seconds: self.options.lifetime.as_secs(),
            cluster: self.options.cluster.clone(),
        };
        let response = CertificatesClient::new(channel)
            .sign(request)
            .await
            .map_err(|status| refused_or_unreachable(&uri, status))?
            .into_inner();
        if response.cert_chain.is_empty() {
            return Err(SignError::EmptyChain { uri });
        }
        Ok(response.cert_chain)
    }
}

/// A handshake refused by discovery surfaces as a transport error inside a `Status`; that is a
/// connection problem (bad or expired certificate), not a refusal of the CSR.
fn refused_or_unreachable(uri: &str, status: tonic::Status) -> SignError {
    let from_server = status.metadata().contains_key("content-type")
        || !matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown
        );
    if from_server {
        SignError::Refused {
            uri: uri.to_owned(),
            code: status.code(),
            message: status.message().to_owned(),
        }
    } else {
        SignError::Connect {
            uri: uri.to_owned(),
            reason: match std::error::Error::source(&status) {
                Some(source) => format!("{}: {}", status.message(), error_chain(source)),
                None => status.message().to_owned(),
            },
        }
    }
}

/// `error: cause: cause`, since tonic's transport errors hide the useful part (the TLS alert)
/// in their sources.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
