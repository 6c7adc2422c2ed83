//! The demo's files: the embedded mesh description and cluster YAML, the CA hierarchy, and
//! each workload's bootstrap certificate, in a temporary directory removed at exit.

use std::path::{Path, PathBuf};

use anyhow::Context;
use certs::{Authority, CaLifetimes, Identity};

const MESH: &str = include_str!("../../../examples/demo/mesh.yaml");
const CLUSTER1: &str = include_str!("../../../examples/demo/cluster1.yaml");
const CLUSTER2: &str = include_str!("../../../examples/demo/cluster2.yaml");

pub const TRUST_DOMAIN: &str = "cluster.local";
/// Workload certificates live a day, like Istio's default.
const WORKLOAD_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A temporary directory that is deleted when dropped.
pub struct Workdir {
    path: PathBuf,
}

impl Workdir {
    pub fn create() -> anyhow::Result<Workdir> {
        let path = std::env::temp_dir().join(format!("isthmus-demo-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("removing the stale {}", path.display()))?;
        }
        let workdir = Workdir { path };
        for (relative, text) in [
            ("mesh.yaml", MESH),
            ("cluster1/istio.yaml", CLUSTER1),
            ("cluster2/istio.yaml", CLUSTER2),
        ] {
            let file = workdir.path.join(relative);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
        }
        certs::generate_mesh_files(
            &workdir.path.join("certs"),
            TRUST_DOMAIN,
            &["cluster1", "cluster2"],
            CaLifetimes::default(),
            true,
        )
        .context("creating the demo CA (root and one intermediate per cluster)")?;
        Ok(workdir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn mesh_file(&self) -> PathBuf {
        self.path.join("mesh.yaml")
    }

    pub fn cluster_ca(&self, cluster: &str) -> anyhow::Result<Authority> {
        let dir = self.path.join("certs").join(cluster);
        certs::load_authority_files(&dir).with_context(|| format!("loading {}", dir.display()))
    }

    /// The out-of-band bootstrap: without Kubernetes there is no service-account token, so a
    /// workload's first certificate is written to disk by the operator (as `isthmus certs`
    /// does for CAs); every later one is a CSR to discovery proven by this one.
    pub fn bootstrap_workload(
        &self,
        cluster: &str,
        name: &str,
        identity: &Identity,
    ) -> anyhow::Result<PathBuf> {
        let ca = self.cluster_ca(cluster)?;
        let issued = ca
            .issue_workload(identity, WORKLOAD_LIFETIME)
            .with_context(|| format!("issuing {identity}"))?;
        let dir = self.path.join("workloads").join(name);
        certs::write_workload_files(&dir, &issued, &ca, true)
            .with_context(|| format!("writing {}", dir.display()))?;
        Ok(dir)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        // Best effort: a leftover temp directory is harmless and named after the pid.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
