//! PKI and TLS for Isthmus: the mesh CA hierarchy (one root, one intermediate per cluster),
//! workload and gateway certificates with SPIFFE identities, loading from files and
//! Kubernetes Secrets, rotation, and every rustls configuration the project uses.
//!
//! Which builder serves which Istio setting:
//!
//! | setting | builder |
//! |---|---|
//! | Gateway `tls.mode` SIMPLE / MUTUAL / OPTIONAL_MUTUAL | [`gateway_server_config`] (or [`resolve_server_tls`] + [`ServerTlsPieces::server_config`] / [`ServerTlsPieces::quic_server_config`]) |
//! | Gateway ISTIO_MUTUAL, discovery's gRPC port, workload inbound | [`mesh_server_config`], then [`peer_identity`] |
//! | workload outbound mTLS (expected server identities) | [`mesh_client_config`] |
//! | DestinationRule `tls` SIMPLE / MUTUAL (origination) | [`upstream_client_config`] |
//! | several servers with their own certificates on one port | [`SniCertResolver`] |
//! | one QUIC handshake for servers with different client-certificate rules | [`PortClientVerifier`] + [`shared_quic_server_config`], then [`admit_client`] |
//! | `credentialName` / certificate files that change | [`RotatingCert`] fed by [`material_from_secret`] / [`load_pem_files`] |
//! | discovery signing a workload CSR | [`Authority::sign_csr_for_peer`] with the verified peer chain |
//! | `isthmus certs` | [`generate_mesh_files`] |
//!
//! Configurations always use the ring provider explicitly ([`crypto_provider`]).

pub mod authority;
pub mod csr;
pub mod files;
pub mod fingerprint;
pub mod identity;
pub mod inspect;
pub mod issue;
pub mod load;
pub mod pem;
pub mod policy;
pub mod rotation;
pub mod secret;
pub mod tls_config;
pub mod validity;

pub use authority::{Authority, AuthorityError, AuthorityPem};
pub use csr::{CsrAndKey, CsrError, MAX_WORKLOAD_CERT_LIFETIME, SignedChain, new_csr};
pub use files::{
    CaLifetimes, FilesError, MeshFiles, generate_mesh_files, load_authority_files,
    write_workload_files,
};
pub use fingerprint::{cert_sha256_hex, spki_sha256_base64};
pub use identity::{Identity, IdentityError};
pub use issue::{IssueError, IssuedCert, LeafSpec};
pub use load::{LoadError, TlsMaterial, certified_key_from_pem, load_pem_files};
pub use policy::versions::TlsVersion;
pub use rotation::{RotatingCert, RotationError};
pub use secret::{SecretError, ca_from_secret, ca_secret_name, material_from_secret};
pub use tls_config::gateway::{
    GatewayServerTls, ServerTlsMode, ServerTlsPieces, ServerTlsPolicy, gateway_server_config,
    resolve_server_tls,
};
pub use tls_config::mesh::{
    identity_of_chain, istio_alpn, mesh_client_config, mesh_client_verifier, mesh_server_config,
    mesh_server_config_with, peer_identity,
};
pub use tls_config::shared_port::{
    ClientAdmission, ClientRefused, PortClientVerifier, admit_client, shared_quic_server_config,
};
pub use tls_config::sni::SniCertResolver;
pub use tls_config::upstream::{
    UpstreamTls, UpstreamTlsMode, UpstreamTlsPolicy, upstream_client_config,
};
pub use tls_config::{TlsConfigError, crypto_provider};
pub use validity::Validity;
