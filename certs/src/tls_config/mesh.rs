//! Mesh mTLS (ISTIO_MUTUAL, discovery's gRPC port, workload proxies): both sides present
//! SPIFFE certificates chaining to the mesh root(s), and identities are checked instead of
//! host names.

use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::{ClientConfig, CommonState, ServerConfig};
use rustls_pki_types::CertificateDer;

use super::verify::{
    AllowedIdentities, AnyIdentity, CheckedClientVerifier, EndEntityCheck, ExpectedServerIdentity,
    NameFreeServerVerifier,
};
use super::{TlsConfigError, crypto_provider, root_store, rustls_error};
use crate::identity::Identity;
use crate::inspect;

/// Mesh ALPN values workload proxies offer on mTLS connections (Istio's conventions).
pub const ISTIO_ALPN: [&[u8]; 5] = [
    b"istio",
    b"istio-peer-exchange",
    b"istio-http/1.0",
    b"istio-http/1.1",
    b"istio-h2",
];

/// Server side of mesh mTLS. Clients must present a certificate chaining to `roots` with one
/// SPIFFE id; when `allowed_peers` is given, that id must be in it.
pub fn mesh_server_config(
    certs: Arc<dyn ResolvesServerCert>,
    roots: &[CertificateDer<'static>],
    allowed_peers: Option<&[Identity]>,
    alpn: Vec<Vec<u8>>,
) -> Result<ServerConfig, TlsConfigError> {
    mesh_server_config_with(mesh_client_verifier(roots, allowed_peers)?, certs, alpn)
}

/// [`mesh_server_config`] around a verifier from [`mesh_client_verifier`], for callers that
/// also need the verifier itself.
pub fn mesh_server_config_with(
    verifier: Arc<dyn ClientCertVerifier>,
    certs: Arc<dyn ResolvesServerCert>,
    alpn: Vec<Vec<u8>>,
) -> Result<ServerConfig, TlsConfigError> {
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_error("mesh mTLS server"))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(certs);
    config.alpn_protocols = alpn;
    Ok(config)
}

/// The client-certificate rules of [`mesh_server_config`] alone, for a handshake shared with
/// other servers ([`super::shared_port`]).
pub fn mesh_client_verifier(
    roots: &[CertificateDer<'static>],
    allowed_peers: Option<&[Identity]>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsConfigError> {
    let webpki = WebPkiClientVerifier::builder_with_provider(
        root_store(roots, "mesh mTLS server")?,
        crypto_provider(),
    )
    .build()
    .map_err(|source| TlsConfigError::Verifier {
        what: "mesh mTLS server",
        source,
    })?;
    let check: Box<dyn EndEntityCheck> = match allowed_peers {
        Some(allowed) => Box::new(AllowedIdentities(allowed.to_vec())),
        None => Box::new(AnyIdentity),
    };
    Ok(Arc::new(CheckedClientVerifier {
        inner: webpki,
        check,
    }))
}

/// Client side of mesh mTLS. The server must chain to `roots` and present one of
/// `expected_server` (any mesh identity when empty); the TLS server name is used only as SNI.
pub fn mesh_client_config(
    certs: Arc<dyn ResolvesClientCert>,
    roots: &[CertificateDer<'static>],
    expected_server: &[Identity],
    alpn: Vec<Vec<u8>>,
) -> Result<ClientConfig, TlsConfigError> {
    let provider = crypto_provider();
    let verifier = Arc::new(NameFreeServerVerifier {
        roots: root_store(roots, "mesh mTLS client")?,
        algorithms: provider.signature_verification_algorithms,
        check: Box::new(ExpectedServerIdentity(expected_server.to_vec())),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(rustls_error("mesh mTLS client"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(certs);
    config.alpn_protocols = alpn;
    Ok(config)
}

/// The verified SPIFFE identity of the peer of a finished handshake.
pub fn peer_identity(connection: &CommonState) -> Result<Identity, TlsConfigError> {
    identity_of_chain(connection.peer_certificates().unwrap_or_default())
}

/// The SPIFFE identity in the leaf of a peer chain (as tonic's `peer_certs()` gives it).
pub fn identity_of_chain(chain: &[CertificateDer<'_>]) -> Result<Identity, TlsConfigError> {
    let leaf = chain.first().ok_or(TlsConfigError::NoPeerCertificate)?;
    Ok(inspect::spiffe_identity(leaf)?)
}

/// [`ISTIO_ALPN`] as the owned list configs take.
pub fn istio_alpn() -> Vec<Vec<u8>> {
    ISTIO_ALPN.iter().map(|p| p.to_vec()).collect()
}
