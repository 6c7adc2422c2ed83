//! A mesh described in YAML files in a temporary directory, and a discovery serving it.
//!
//! Tests copy a scenario from `tests/scenarios/` and add the files that depend on the run
//! (endpoints at the ports backends really got), then edit files while discovery watches.

use std::path::{Path, PathBuf};

use discovery::app::{Discovery, DiscoveryOptions};
use discovery::mesh_config::MeshConfig;
use tempfile::TempDir;

/// The root test scenarios: `tests/scenarios/<name>/`.
pub fn scenario_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

pub struct MeshFiles {
    dir: TempDir,
}

impl MeshFiles {
    /// A copy of scenario `name` (its `mesh.yaml` and one directory per cluster).
    pub fn from_scenario(name: &str) -> MeshFiles {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&scenario_dir(name), dir.path());
        MeshFiles { dir }
    }

    pub fn mesh_path(&self) -> PathBuf {
        self.dir.path().join("mesh.yaml")
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `relative` whole at once (write then rename), so the watching source never
    /// reads half a file.
    pub fn write(&self, relative: &str, contents: &str) {
        let target = self.path(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let staging = self
            .dir
            .path()
            .join(format!(".staging-{}", relative.replace('/', "_")));
        std::fs::write(&staging, contents).unwrap();
        std::fs::rename(&staging, &target).unwrap();
    }

    pub fn load(&self) -> MeshConfig {
        MeshConfig::load(&self.mesh_path()).unwrap()
    }

    /// Discovery over these files on loopback with free ports.
    pub async fn start_discovery(&self) -> Discovery {
        let discovery = Discovery::start(DiscoveryOptions::ephemeral(self.load()))
            .await
            .unwrap();
        discovery.wait_for_generation(1).await;
        discovery
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A Pod and an EndpointSlice putting one workload of `service` at `address:port`: what a
/// test writes once its backend listens. `labels` are the Pod's, beside `app: <service>`.
pub fn workload_yaml(
    namespace: &str,
    service: &str,
    pod: &str,
    labels: &[(&str, &str)],
    port_name: &str,
    address: std::net::SocketAddr,
) -> String {
    let ip = address.ip();
    let port = address.port();
    let mut label_text = format!("app: {service}, security.istio.io/tlsMode: istio");
    for (key, value) in labels {
        label_text.push_str(&format!(", {key}: {value}"));
    }
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {pod}
  namespace: {namespace}
  labels: {{{label_text}}}
spec:
  serviceAccountName: {service}
  containers: [{{name: app, image: example}}]
status: {{podIP: {ip}}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {pod}
  namespace: {namespace}
  labels: {{kubernetes.io/service-name: {service}}}
addressType: IPv4
ports: [{{name: {port_name}, port: {port}, protocol: TCP}}]
endpoints:
- addresses: [\"{ip}\"]
  conditions: {{ready: true}}
  targetRef: {{kind: Pod, name: {pod}, namespace: {namespace}}}
"
    )
}
