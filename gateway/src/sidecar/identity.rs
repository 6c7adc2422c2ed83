//! The sidecar's own mesh identity and the rustls configurations built from it.
//!
//! Both directions resolve the certificate through one [`RotatingCert`], so whoever renews
//! it (the CSR client) only calls [`RotatingCert::replace`]: new handshakes use the new
//! certificate, nothing is rebuilt here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use certs::{Identity, RotatingCert, TlsConfigError};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::CertificateDer;
use thiserror::Error;

/// ALPN of the upstream leg: `istio` for opaque TCP, `istio-http/1.1` when the sidecar itself
/// speaks HTTP/1.1 over it. Both are on the list AUTO_PASSTHROUGH gateways require.
pub const ALPN_TCP: &[u8] = b"istio";
pub const ALPN_HTTP1: &[u8] = b"istio-http/1.1";

#[derive(Debug, Error)]
pub enum MeshTlsError {
    #[error(
        "the sidecar certificate has no usable SPIFFE identity (is --cert-chain a workload certificate?): {0}"
    )]
    OwnIdentity(#[source] TlsConfigError),
    #[error("building the mesh TLS configuration: {0}")]
    Config(#[from] TlsConfigError),
}

pub struct MeshTls {
    certificate: Arc<RotatingCert>,
    roots: Vec<CertificateDer<'static>>,
    own: Identity,
    server: Arc<ServerConfig>,
    clients: Mutex<ClientConfigs>,
}

/// (expected server identity, offered ALPN).
type ClientKey = (Option<Identity>, &'static [u8]);

/// Client configs by [`ClientKey`] (few distinct keys per mesh), for one certificate.
///
/// A config's session store holds TLS tickets, and a resumed session skips the client
/// certificate: the peer would go on seeing the certificate the ticket was issued under. So
/// the configs (and their tickets) are dropped when the certificate is replaced, and the
/// first connection after a rotation presents the new one.
struct ClientConfigs {
    issued_for: Arc<CertifiedKey>,
    configs: HashMap<ClientKey, Arc<ClientConfig>>,
}

impl MeshTls {
    /// `roots` are the mesh root(s) every peer must chain to.
    pub fn new(
        certificate: Arc<RotatingCert>,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, MeshTlsError> {
        let own = certs::identity_of_chain(&certificate.current().cert)
            .map_err(MeshTlsError::OwnIdentity)?;
        let server = certs::mesh_server_config(
            Arc::clone(&certificate) as _,
            &roots,
            None,
            certs::istio_alpn(),
        )?;
        let clients = Mutex::new(ClientConfigs {
            issued_for: certificate.current(),
            configs: HashMap::new(),
        });
        Ok(MeshTls {
            certificate,
            roots,
            own,
            server: Arc::new(server),
            clients,
        })
    }

    /// The SPIFFE identity this sidecar presents (`By=` in XFCC).
    pub fn own_identity(&self) -> &Identity {
        &self.own
    }

    pub fn certificate(&self) -> &Arc<RotatingCert> {
        &self.certificate
    }

    /// Inbound: client certificate required, chaining to the mesh root, Istio's ALPN list.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.server)
    }

    /// Outbound: the server must chain to the root and, when `expected` is given, be that
    /// identity; otherwise any identity under the root.
    pub fn client_config(
        &self,
        expected: Option<&Identity>,
        alpn: &'static [u8],
    ) -> Result<Arc<ClientConfig>, MeshTlsError> {
        let key = (expected.cloned(), alpn);
        let current = self.certificate.current();
        {
            let mut clients = lock(&self.clients);
            if !Arc::ptr_eq(&clients.issued_for, &current) {
                clients.configs.clear();
                clients.issued_for = Arc::clone(&current);
            }
            if let Some(config) = clients.configs.get(&key) {
                return Ok(Arc::clone(config));
            }
        }
        let expected: Vec<Identity> = expected.into_iter().cloned().collect();
        let config = Arc::new(certs::mesh_client_config(
            Arc::clone(&self.certificate) as _,
            &self.roots,
            &expected,
            vec![alpn.to_vec()],
        )?);
        let mut clients = lock(&self.clients);
        // A rotation while the config was being built: keep it out of the new generation's
        // cache (it is still fine for this one connection, which resolves the certificate live).
        if Arc::ptr_eq(&clients.issued_for, &current) {
            clients.configs.insert(key, Arc::clone(&config));
        }
        Ok(config)
    }
}

/// The cache only gains complete entries or is cleared whole, so a poisoned lock still holds
/// valid configs.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
