//! Every rustls `ServerConfig` and `ClientConfig` of the project is built here, always with
//! the ring provider passed explicitly (never a process-wide default).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::CertificateDer;

use crate::policy::ciphers::CipherError;
use crate::policy::client_cert::ClientCertError;
use crate::policy::versions::VersionError;

pub mod gateway;
pub mod mesh;
pub mod shared_port;
pub mod sni;
pub mod upstream;
pub mod verify;

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("{what} needs at least one trusted CA certificate, and none was given")]
    NoRoots { what: &'static str },
    #[error("CA certificate cannot be used as a trust anchor: {0}")]
    BadRoot(rustls::Error),
    #[error("rustls refused the {what} configuration: {source}")]
    Rustls {
        what: &'static str,
        source: rustls::Error,
    },
    #[error("cannot build the certificate verifier for {what}: {source}")]
    Verifier {
        what: &'static str,
        source: rustls::server::VerifierBuilderError,
    },
    #[error(transparent)]
    Version(#[from] VersionError),
    #[error(transparent)]
    Cipher(#[from] CipherError),
    #[error(transparent)]
    ClientCert(#[from] ClientCertError),
    #[error(
        "tls mode {mode} needs caCertificates (or a credentialName Secret with ca.crt, or a <name>-cacert Secret) to verify client certificates"
    )]
    MutualWithoutCa { mode: &'static str },
    #[error("DestinationRule tls mode MUTUAL needs clientCertificate and privateKey")]
    MutualWithoutClientCert,
    #[error("{name:?} is not a valid TLS server name (SNI): {reason}")]
    BadServerName { name: String, reason: String },
    #[error("host {host:?} is given a certificate twice: each SNI host may appear once per port")]
    DuplicateHost { host: String },
    #[error(
        "HTTP/3 needs TLS 1.3, but this server's maxProtocolVersion excludes it: raise it to TLSV1_3 or serve this port without HTTP/3"
    )]
    QuicNeedsTls13,
    #[error("the peer presented no certificate, so it has no identity")]
    NoPeerCertificate,
    #[error("the peer's certificate has no usable SPIFFE identity: {0}")]
    PeerIdentity(#[from] crate::inspect::InspectError),
}

/// The one crypto provider every configuration uses: ring, with its default suites.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn root_store(
    roots: &[CertificateDer<'static>],
    what: &'static str,
) -> Result<Arc<RootCertStore>, TlsConfigError> {
    if roots.is_empty() {
        return Err(TlsConfigError::NoRoots { what });
    }
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).map_err(TlsConfigError::BadRoot)?;
    }
    Ok(Arc::new(store))
}

pub(crate) fn rustls_error(what: &'static str) -> impl FnOnce(rustls::Error) -> TlsConfigError {
    move |source| TlsConfigError::Rustls { what, source }
}
