//! Server TLS per terminating Gateway server, built at apply time. A server whose TLS cannot
//! be built (credential missing or broken, a version range rustls cannot serve, ISTIO_MUTUAL
//! without a mesh identity) is rejected alone: the others on the port keep serving, as
//! Istio keeps serving the other servers of a Gateway. The rejection is logged, counted in
//! `isthmus_rejected_servers` and listed by the admin endpoint.

use std::collections::HashMap;
use std::sync::Arc;

use multicluster::proto::{self, TlsMode};
use rustls::ServerConfig;
use rustls::server::ResolvesServerCert;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;

use super::credentials::{CredentialCache, CredentialError};
use crate::config::{ListenerKey, RuntimeConfig, TerminatedRouting, TerminatingServer};

/// A server left out of service, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRejection {
    pub listener: String,
    pub server: String,
    pub reason: String,
}

/// The gateway's own mesh certificate, for ISTIO_MUTUAL servers.
#[derive(Debug, Clone)]
pub struct MeshMaterial {
    pub key: Arc<CertifiedKey>,
    pub roots: Vec<CertificateDer<'static>>,
}

/// The TLS server configurations of one listener, by server name.
#[derive(Debug, Default)]
pub struct ListenerTls {
    pub servers: HashMap<String, ServerTls>,
}

/// One terminating server's TLS.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    /// The client-certificate rules inside `config`, kept apart so a QUIC handshake shared
    /// with the port's other servers applies the very same rules once the SNI is known.
    pub client_rules: Arc<dyn ClientCertVerifier>,
    /// The version range includes TLS 1.3, which QUIC needs.
    pub allows_tls13: bool,
}

struct FixedCert(Arc<CertifiedKey>);

impl std::fmt::Debug for FixedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixedCert")
    }
}

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// Builds every terminating server's TLS; returns the tables and the rejected servers.
pub fn build(
    config: &RuntimeConfig,
    credentials: &CredentialCache,
    mesh: Option<&MeshMaterial>,
) -> (HashMap<ListenerKey, Arc<ListenerTls>>, Vec<ServerRejection>) {
    let by_name: HashMap<&str, &proto::TlsCredential> = config
        .source
        .credentials
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let mut tables = HashMap::new();
    let mut rejected = Vec::new();
    for (key, routes) in &config.listeners {
        if routes.terminating.is_empty() {
            continue;
        }
        let mut table = ListenerTls::default();
        for server in &routes.terminating {
            match server_config(server, &by_name, credentials, mesh) {
                Ok((built, warnings)) => {
                    for warning in warnings {
                        tracing::warn!(listener = %routes.name, server = %server.name, %warning, "TLS settings narrowed");
                    }
                    table.servers.insert(server.name.clone(), built);
                }
                Err(reason) => {
                    tracing::warn!(listener = %routes.name, server = %server.name, %reason, "server rejected: its TLS cannot be served; the listener's other servers keep serving");
                    rejected.push(ServerRejection {
                        listener: routes.name.clone(),
                        server: server.name.clone(),
                        reason,
                    });
                }
            }
        }
        tables.insert(*key, Arc::new(table));
    }
    (tables, rejected)
}

fn alpn(server: &TerminatingServer) -> Vec<Vec<u8>> {
    match server.routing {
        TerminatedRouting::Http { .. } => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        TerminatedRouting::Tcp(_) => Vec::new(),
    }
}

fn version(value: i32) -> certs::TlsVersion {
    match proto::TlsVersion::try_from(value) {
        Ok(proto::TlsVersion::Tlsv10) => certs::TlsVersion::V1_0,
        Ok(proto::TlsVersion::Tlsv11) => certs::TlsVersion::V1_1,
        Ok(proto::TlsVersion::Tlsv12) => certs::TlsVersion::V1_2,
        Ok(proto::TlsVersion::Tlsv13) => certs::TlsVersion::V1_3,
        _ => certs::TlsVersion::Auto,
    }
}

fn server_config(
    server: &TerminatingServer,
    credentials_by_name: &HashMap<&str, &proto::TlsCredential>,
    credentials: &CredentialCache,
    mesh: Option<&MeshMaterial>,
) -> Result<(ServerTls, Vec<String>), String> {
    let tls = &server.tls;
    if server.mode == TlsMode::IstioMutual {
        if !tls.credential.is_empty() {
            return Err(format!(
                "ISTIO_MUTUAL uses the gateway's mesh certificate: credential {:?} must not be set alongside it",
                tls.credential
            ));
        }
        let mesh = mesh.ok_or_else(|| {
            "ISTIO_MUTUAL needs the gateway's mesh identity (GatewayOptions.mesh_identity: certificate chain, key and root files); none is configured".to_owned()
        })?;
        let client_rules =
            certs::mesh_client_verifier(&mesh.roots, None).map_err(|e| e.to_string())?;
        let config = certs::mesh_server_config_with(
            Arc::clone(&client_rules),
            Arc::new(FixedCert(Arc::clone(&mesh.key))),
            alpn(server),
        )
        .map_err(|e| e.to_string())?;
        let built = ServerTls {
            config: Arc::new(config),
            client_rules,
            // Mesh servers use rustls' safe defaults: TLS 1.2 and 1.3.
            allows_tls13: true,
        };
        return Ok((built, Vec::new()));
    }
    let (mode, mode_name) = match server.mode {
        TlsMode::Mutual => (certs::ServerTlsMode::Mutual, "MUTUAL"),
        TlsMode::OptionalMutual => (certs::ServerTlsMode::OptionalMutual, "OPTIONAL_MUTUAL"),
        _ => (certs::ServerTlsMode::Simple, "SIMPLE"),
    };
    let credential = credentials
        .load(credentials_by_name, &tls.credential)
        .map_err(|e| e.to_string())?;
    let key = credential.key.clone().ok_or_else(|| {
        CredentialError::NoCertificate {
            name: tls.credential.clone(),
            mode: mode_name,
        }
        .to_string()
    })?;
    if mode != certs::ServerTlsMode::Simple && credential.ca.is_empty() {
        return Err(CredentialError::NoCa {
            name: tls.credential.clone(),
            mode: mode_name,
        }
        .to_string());
    }
    let policy = certs::ServerTlsPolicy {
        mode,
        subject_alt_names: tls.subject_alt_names.clone(),
        spki: tls.verify_certificate_spki.clone(),
        hashes: tls.verify_certificate_hash.clone(),
        min: version(tls.min_version),
        max: version(tls.max_version),
        cipher_suites: tls.cipher_suites.clone(),
    };
    let error = |e: certs::TlsConfigError| format!("{mode_name} server TLS: {e}");
    let pieces = certs::resolve_server_tls(&policy, &credential.ca).map_err(error)?;
    let config = pieces
        .server_config(Arc::new(FixedCert(key)), alpn(server))
        .map_err(error)?;
    let built = ServerTls {
        config: Arc::new(config),
        client_rules: Arc::clone(&pieces.client_verifier),
        allows_tls13: pieces.allows_tls13(),
    };
    Ok((built, pieces.warnings))
}

/// Reads the mesh identity files; a failure makes ISTIO_MUTUAL servers rejected, nothing else.
pub fn load_mesh(identity: &crate::runtime::MeshIdentity) -> Result<MeshMaterial, String> {
    let material = certs::load_pem_files(
        &identity.cert_chain,
        &identity.private_key,
        Some(&identity.roots),
    )
    .map_err(|e| format!("mesh identity: {e}"))?;
    let key = material
        .certified_key()
        .map_err(|e| format!("mesh identity: {e}"))?;
    Ok(MeshMaterial {
        key: Arc::new(key),
        roots: material.ca_certs,
    })
}
