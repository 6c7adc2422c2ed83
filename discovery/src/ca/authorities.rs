//! The cluster CAs discovery signs with, and discovery's own serving certificate.

use std::sync::Arc;
use std::time::Duration;

use certs::{
    Authority, FilesError, Identity, IdentityError, IssueError, IssuedCert, LeafSpec, Validity,
};
use multicluster::model::ClusterId;
use tonic::transport::{Certificate, ServerTlsConfig};

use crate::mesh_config::MeshConfig;

/// The service account in discovery's own SPIFFE id (istiod's is `istiod`).
pub const DISCOVERY_SERVICE_ACCOUNT: &str = "isthmus-discovery";

/// Discovery's certificate lives as long as the process usually does; it is not rotated, so a
/// discovery running longer than this must be restarted (the intermediate caps it anyway).
const DISCOVERY_CERT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("discovery holds no cluster CA: add `ca: <dir>` to a cluster in the mesh description")]
    NoAuthorities,
    #[error("cluster {cluster}: cannot load its CA: {source}")]
    Load {
        cluster: ClusterId,
        #[source]
        source: FilesError,
    },
    #[error(
        "discovery's own identity is invalid ({source}): check trustDomain and systemNamespace in the mesh description"
    )]
    Identity {
        #[source]
        source: IdentityError,
    },
    #[error("cannot issue discovery's serving certificate from cluster {cluster}'s CA: {source}")]
    ServingCert {
        cluster: ClusterId,
        #[source]
        source: IssueError,
    },
}

/// Every cluster CA named in the mesh description, in the order written.
#[derive(Debug, Clone)]
pub struct CertificateAuthorities {
    authorities: Vec<(ClusterId, Arc<Authority>)>,
}

/// What discovery serves its gRPC port with when it holds a CA.
#[derive(Clone)]
pub struct DiscoveryTls {
    pub server: ServerTlsConfig,
    /// Discovery's certificate, so callers (and tests) can see what clients are shown.
    pub serving: IssuedCert,
    /// The roots clients must chain to, PEM.
    pub roots_pem: String,
}

impl std::fmt::Debug for DiscoveryTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryTls")
            .field("serving", &self.serving)
            .finish_non_exhaustive()
    }
}

/// The DNS name in discovery's certificate; clients using hostname verification
/// (tonic's `ClientTlsConfig::domain_name`) ask for this name.
pub fn discovery_dns_name(system_namespace: &str) -> String {
    format!("{DISCOVERY_SERVICE_ACCOUNT}.{system_namespace}.svc")
}

impl CertificateAuthorities {
    /// Loads every `ca:` directory of `mesh`; `None` when no cluster names one.
    pub fn load(mesh: &MeshConfig) -> Result<Option<Self>, CaError> {
        if mesh.certificate_authorities.is_empty() {
            return Ok(None);
        }
        let mut authorities = Vec::with_capacity(mesh.certificate_authorities.len());
        for entry in &mesh.certificate_authorities {
            let authority =
                certs::load_authority_files(&entry.directory).map_err(|source| CaError::Load {
                    cluster: entry.cluster.clone(),
                    source,
                })?;
            tracing::info!(
                cluster = %entry.cluster,
                directory = %entry.directory.display(),
                not_after = ?authority.not_after(),
                "loaded cluster CA"
            );
            authorities.push((entry.cluster.clone(), Arc::new(authority)));
        }
        Ok(Some(CertificateAuthorities { authorities }))
    }

    /// Wraps CAs already in memory (tests, embedders).
    pub fn from_authorities(authorities: Vec<(ClusterId, Authority)>) -> Option<Self> {
        if authorities.is_empty() {
            return None;
        }
        Some(CertificateAuthorities {
            authorities: authorities
                .into_iter()
                .map(|(cluster, ca)| (cluster, Arc::new(ca)))
                .collect(),
        })
    }

    /// The CA for `cluster`, or the first one when `cluster` is empty.
    pub fn for_cluster(&self, cluster: &str) -> Option<(&ClusterId, &Arc<Authority>)> {
        if cluster.is_empty() {
            return self.authorities.first().map(|(id, ca)| (id, ca));
        }
        self.authorities
            .iter()
            .find(|(id, _)| id.as_str() == cluster)
            .map(|(id, ca)| (id, ca))
    }

    pub fn clusters(&self) -> impl Iterator<Item = &ClusterId> {
        self.authorities.iter().map(|(id, _)| id)
    }

    /// Every distinct root certificate, PEM: what mTLS peers must chain to.
    pub fn roots_pem(&self) -> String {
        let mut seen = Vec::new();
        for (_, ca) in &self.authorities {
            for root in ca.roots() {
                if !seen.contains(root) {
                    seen.push(root.clone());
                }
            }
        }
        seen.iter()
            .map(|der| certs::pem::encode_certificate(der))
            .collect()
    }

    /// Issues discovery's own certificate from the first CA and builds the mTLS settings of
    /// the gRPC port: clients must present a certificate chaining to the mesh root.
    pub fn discovery_tls(
        &self,
        trust_domain: &str,
        system_namespace: &str,
    ) -> Result<DiscoveryTls, CaError> {
        let (cluster, ca) = self
            .authorities
            .first()
            .map(|(id, ca)| (id, ca))
            .ok_or(CaError::NoAuthorities)?;
        let identity = Identity::new(trust_domain, system_namespace, DISCOVERY_SERVICE_ACCOUNT)
            .map_err(|source| CaError::Identity { source })?;
        let mut spec =
            LeafSpec::for_identity(identity, Validity::starting_now(DISCOVERY_CERT_LIFETIME));
        spec.dns_names = vec![discovery_dns_name(system_namespace), "localhost".to_owned()];
        let serving = ca.issue(&spec).map_err(|source| CaError::ServingCert {
            cluster: cluster.clone(),
            source,
        })?;
        let roots_pem = self.roots_pem();
        let server = ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(
                &serving.chain_pem,
                &serving.key_pem,
            ))
            .client_ca_root(Certificate::from_pem(&roots_pem));
        Ok(DiscoveryTls {
            server,
            serving,
            roots_pem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh_config::MeshConfig;

    fn mesh_with_ca(dir: &std::path::Path, ca: &str) -> MeshConfig {
        std::fs::create_dir_all(dir.join("c1")).unwrap();
        MeshConfig::parse(
            &format!("clusters:\n- {{id: cluster1, network: n1, files: c1, ca: {ca}}}\n"),
            dir,
            "mesh.yaml",
        )
        .unwrap()
    }

    #[test]
    fn no_ca_directories_means_no_signing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("c1")).unwrap();
        let mesh = MeshConfig::parse(
            "clusters:\n- {id: cluster1, network: n1, files: c1}\n",
            dir.path(),
            "mesh.yaml",
        )
        .unwrap();
        assert!(CertificateAuthorities::load(&mesh).unwrap().is_none());
    }

    #[test]
    fn loads_the_files_isthmus_certs_writes() {
        let dir = tempfile::tempdir().unwrap();
        certs::generate_mesh_files(
            &dir.path().join("certs"),
            "cluster.local",
            &["cluster1"],
            certs::CaLifetimes::default(),
            false,
        )
        .unwrap();
        let mesh = mesh_with_ca(dir.path(), "certs/cluster1");
        let loaded = CertificateAuthorities::load(&mesh).unwrap().unwrap();
        assert_eq!(
            loaded.clusters().map(|c| c.as_str()).collect::<Vec<_>>(),
            ["cluster1"]
        );
        let root = std::fs::read_to_string(dir.path().join("certs/root-cert.pem")).unwrap();
        assert_eq!(loaded.roots_pem(), root);
    }

    #[test]
    fn an_empty_ca_directory_names_the_cluster() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        let mesh = mesh_with_ca(dir.path(), "empty");
        let error = CertificateAuthorities::load(&mesh).unwrap_err().to_string();
        assert!(
            error.starts_with("cluster cluster1: cannot load its CA"),
            "{error}"
        );
    }
}
