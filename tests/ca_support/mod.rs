//! Shared pieces of the certificate-signing tests: a mesh whose discovery holds cluster1's
//! intermediate CA, workload certificates issued out of band (the bootstrap), and a CA client.
#![allow(dead_code, clippy::unwrap_used)] // test helpers: a panic is how they report a failure

use std::sync::Arc;
use std::time::Duration;

use certs::{Authority, CaLifetimes, Identity, RotatingCert};
use discovery::app::{Discovery, DiscoveryOptions};
use discovery::mesh_config::MeshConfig;
use gateway::identity::CaClientOptions;

pub const TRUST_DOMAIN: &str = "cluster.local";

pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when a provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("ISTHMUS_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
    });
}

pub fn identity(namespace: &str, service_account: &str) -> Identity {
    Identity::new(TRUST_DOMAIN, namespace, service_account).unwrap()
}

pub fn discovery_identity() -> Identity {
    identity("istio-system", discovery::ca::DISCOVERY_SERVICE_ACCOUNT)
}

/// A running discovery with a CA for cluster1, and that CA for issuing bootstrap certificates.
pub struct SigningMesh {
    pub discovery: Discovery,
    pub cluster_ca: Authority,
    dir: tempfile::TempDir,
}

impl SigningMesh {
    pub async fn start() -> SigningMesh {
        init();
        let dir = tempfile::tempdir().unwrap();
        certs::generate_mesh_files(
            &dir.path().join("certs"),
            TRUST_DOMAIN,
            &["cluster1"],
            CaLifetimes::default(),
            false,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("cluster1")).unwrap();
        let mesh_path = dir.path().join("mesh.yaml");
        std::fs::write(
            &mesh_path,
            "clusters:\n- id: cluster1\n  network: network1\n  files: cluster1\n  ca: certs/cluster1\n",
        )
        .unwrap();
        let mesh = MeshConfig::load(&mesh_path).unwrap();
        let discovery = Discovery::start(DiscoveryOptions::ephemeral(mesh))
            .await
            .unwrap();
        let cluster_ca = certs::load_authority_files(&dir.path().join("certs/cluster1")).unwrap();
        SigningMesh {
            discovery,
            cluster_ca,
            dir,
        }
    }

    /// Adds a YAML file to cluster1's watched directory.
    pub fn write_cluster_file(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join("cluster1").join(name), text).unwrap();
    }

    /// The out-of-band first certificate of `identity`, as `isthmus certs` would write it.
    pub fn bootstrap(&self, identity: &Identity, lifetime: Duration) -> Arc<RotatingCert> {
        let issued = self.cluster_ca.issue_workload(identity, lifetime).unwrap();
        Arc::new(RotatingCert::new(issued.certified_key().unwrap()).unwrap())
    }

    pub fn client_options(&self) -> CaClientOptions {
        let mut options =
            CaClientOptions::new(self.discovery.grpc_uri(), self.cluster_ca.roots().to_vec());
        options.discovery_identity = Some(discovery_identity());
        options
    }
}

/// The SPIFFE id in the leaf handshakes currently get from `cert`.
pub fn identity_of(cert: &RotatingCert) -> Identity {
    certs::inspect::spiffe_identity(&cert.current().cert[0]).unwrap()
}

/// A self-contained CA that is not part of the mesh (another root).
pub fn foreign_ca() -> Authority {
    let day = certs::Validity::starting_now(Duration::from_secs(86_400));
    Authority::generate_root(TRUST_DOMAIN, day)
        .unwrap()
        .generate_intermediate("cluster1", None, day)
        .unwrap()
}
