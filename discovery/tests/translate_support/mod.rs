//! Loads the translation scenarios under `testdata/translate/<name>/`: a mesh description,
//! its cluster directories, and `gateways.yaml` naming the gateways to translate for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use discovery::mesh::MeshSnapshot;
use discovery::mesh_config::MeshConfig;
use discovery::source::load_once;
use multicluster::proto::GatewayIdentity;

#[derive(serde::Deserialize)]
struct GatewayEntry {
    name: String,
    namespace: String,
    cluster: String,
    network: String,
    labels: BTreeMap<String, String>,
}

pub fn scenario_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/translate")
        .join(name)
}

/// The scenario's snapshot and the identities of its gateways, in file order.
pub fn load_scenario(name: &str) -> (MeshSnapshot, Vec<GatewayIdentity>) {
    let dir = scenario_dir(name);
    let mesh = MeshConfig::load(&dir.join("mesh.yaml")).expect("mesh description loads");
    let text = std::fs::read_to_string(dir.join("gateways.yaml")).expect("gateways.yaml reads");
    let entries: Vec<GatewayEntry> = serde_saphyr::from_str(&text).expect("gateways.yaml parses");
    let identities = entries
        .into_iter()
        .map(|entry| GatewayIdentity {
            name: entry.name,
            namespace: entry.namespace,
            labels: entry.labels,
            cluster: entry.cluster,
            network: entry.network,
            ..Default::default()
        })
        .collect();
    (load_once(&mesh), identities)
}
