//! Endpoint-only changes applied through the `EndpointIndex` give exactly the snapshot a full
//! rebuild from the same files gives; anything else is left to the full rebuild.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how they report a failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use discovery::index::{
    ClusterResources, EndpointIndex, FileChange, IndexInput, build_indexed, build_snapshot,
};
use discovery::mesh::MeshSnapshot;
use discovery::mesh_config::MeshConfig;
use discovery::resolve::ResolvedHosts;
use discovery::resource::{Decoded, decode_documents};
use multicluster::model::ClusterId;

const MESH: &str = "clusters:\n\
- {id: cluster1, network: network1, files: ./cluster1}\n\
- {id: cluster2, network: network2, files: ./cluster2}\n";

/// The mesh configuration checks that each cluster's directory exists; the files themselves
/// are kept in memory, so the directories only live for the parse. Parsed once, so that every
/// build in a test names the same directories.
fn config() -> MeshConfig {
    static CONFIG: LazyLock<MeshConfig> = LazyLock::new(|| {
        let dir = tempfile::tempdir().unwrap();
        for cluster in ["cluster1", "cluster2"] {
            std::fs::create_dir(dir.path().join(cluster)).unwrap();
        }
        MeshConfig::parse(MESH, dir.path(), "mesh.yaml").unwrap()
    });
    CONFIG.clone()
}

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  ports:\n  - {{name: http, port: 9080}}\n"
    )
}

fn pod(name: &str, ip: &str, version: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n  labels: {{app: x, version: {version}, security.istio.io/tlsMode: istio}}\n\
         spec: {{serviceAccountName: sa}}\nstatus: {{podIP: {ip}}}\n"
    )
}

fn slice(name: &str, service: &str, endpoints: &[(&str, &str)]) -> String {
    let mut text = format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}\n  namespace: default\n  labels: {{kubernetes.io/service-name: {service}}}\n\
         addressType: IPv4\nports:\n- {{name: http, port: 9080}}\nendpoints:\n"
    );
    for (address, pod) in endpoints {
        text.push_str(&format!(
            "- addresses: [{address}]\n  targetRef: {{kind: Pod, name: {pod}, namespace: default}}\n"
        ));
    }
    text
}

fn documents(parts: &[String]) -> String {
    parts.join("---\n")
}

/// A mesh as directories of files, decoded the way the file source decodes them.
#[derive(Clone)]
struct Files {
    clusters: BTreeMap<String, BTreeMap<PathBuf, String>>,
}

impl Files {
    fn new() -> Self {
        let mut cluster1 = BTreeMap::new();
        cluster1.insert(
            path("cluster1", "reviews.yaml"),
            documents(&[
                service("reviews"),
                pod("reviews-a", "10.1.0.1", "v1"),
                pod("reviews-b", "10.1.0.2", "v2"),
                slice(
                    "reviews-1",
                    "reviews",
                    &[("10.1.0.1", "reviews-a"), ("10.1.0.2", "reviews-b")],
                ),
            ]),
        );
        cluster1.insert(
            path("cluster1", "ratings.yaml"),
            documents(&[
                service("ratings"),
                slice("ratings-1", "ratings", &[("10.1.1.1", "ratings-a")]),
            ]),
        );
        cluster1.insert(
            path("cluster1", "ratings-pods.yaml"),
            pod("ratings-a", "10.1.1.1", "v1"),
        );
        let mut cluster2 = BTreeMap::new();
        cluster2.insert(
            path("cluster2", "reviews.yaml"),
            documents(&[
                service("reviews"),
                pod("reviews-c", "10.2.0.1", "v3"),
                slice("reviews-2", "reviews", &[("10.2.0.1", "reviews-c")]),
            ]),
        );
        Files {
            clusters: [
                ("cluster1".to_string(), cluster1),
                ("cluster2".to_string(), cluster2),
            ]
            .into(),
        }
    }

    fn decoded(&self, cluster: &str, file: &Path) -> Vec<Decoded> {
        self.clusters[cluster]
            .get(file)
            .map(|text| decode_documents(text, &file.display().to_string()).0)
            .unwrap_or_default()
    }

    fn resources(&self) -> Vec<ClusterResources> {
        self.clusters
            .iter()
            .map(|(cluster, files)| {
                let resources = files
                    .keys()
                    .flat_map(|file| self.decoded(cluster, file))
                    .collect();
                ClusterResources::new(ClusterId::new(cluster.as_str()).unwrap(), resources)
            })
            .collect()
    }
}

fn path(cluster: &str, file: &str) -> PathBuf {
    Path::new("/mesh").join(cluster).join(file)
}

fn full(files: &Files) -> MeshSnapshot {
    let config = config();
    build_snapshot(IndexInput {
        config: &config,
        clusters: &files.resources(),
        resolved: &ResolvedHosts::new(),
        generation: 7,
    })
}

fn indexed(files: &Files) -> (MeshSnapshot, EndpointIndex) {
    let config = config();
    build_indexed(IndexInput {
        config: &config,
        clusters: &files.resources(),
        resolved: &ResolvedHosts::new(),
        generation: 7,
    })
}

/// Writes `text` (or deletes the file, for `None`) and applies the change incrementally.
fn change(
    files: &mut Files,
    index: &mut EndpointIndex,
    previous: &MeshSnapshot,
    cluster: &str,
    file: &str,
    text: Option<String>,
) -> Option<MeshSnapshot> {
    let file = path(cluster, file);
    let before = files.decoded(cluster, &file);
    match text {
        Some(text) => files
            .clusters
            .get_mut(cluster)
            .unwrap()
            .insert(file.clone(), text),
        None => files.clusters.get_mut(cluster).unwrap().remove(&file),
    };
    let after = files.decoded(cluster, &file);
    let change = FileChange {
        path: file,
        before,
        after,
        problems_changed: false,
    };
    index
        .apply(previous, &ClusterId::new(cluster).unwrap(), &[change])
        .ok()
        .map(|applied| applied.snapshot)
}

const REVIEWS: &str = "reviews.default.svc.cluster.local";
const RATINGS: &str = "ratings.default.svc.cluster.local";

#[test]
fn a_moved_pod_gives_the_full_rebuild_and_shares_the_other_services() {
    let mut files = Files::new();
    let (previous, mut index) = indexed(&files);
    assert_eq!(
        previous,
        full(&files),
        "the indexed build is the full build"
    );
    let moved = documents(&[
        service("reviews"),
        pod("reviews-a", "10.1.0.9", "v1"),
        pod("reviews-b", "10.1.0.2", "v2"),
        slice(
            "reviews-1",
            "reviews",
            &[("10.1.0.9", "reviews-a"), ("10.1.0.2", "reviews-b")],
        ),
    ]);
    let next = change(
        &mut files,
        &mut index,
        &previous,
        "cluster1",
        "reviews.yaml",
        Some(moved),
    )
    .expect("an endpoint-only change");
    assert_eq!(next, full(&files));
    assert!(
        Arc::ptr_eq(&next.services[RATINGS], &previous.services[RATINGS]),
        "an untouched service is shared"
    );
    assert!(!Arc::ptr_eq(
        &next.services[REVIEWS],
        &previous.services[REVIEWS]
    ));
    let addresses: Vec<String> = next.services[REVIEWS]
        .endpoints
        .iter()
        .map(|e| e.address.to_string())
        .collect();
    assert_eq!(
        addresses,
        ["10.1.0.2", "10.1.0.9", "10.2.0.1"],
        "cluster1's, then cluster2's"
    );
}

#[test]
fn a_pod_in_another_file_updates_the_service_its_slice_names() {
    let mut files = Files::new();
    let (previous, mut index) = indexed(&files);
    let relabelled = pod("ratings-a", "10.1.1.1", "v7");
    let next = change(
        &mut files,
        &mut index,
        &previous,
        "cluster1",
        "ratings-pods.yaml",
        Some(relabelled),
    )
    .expect("an endpoint-only change");
    assert_eq!(next, full(&files));
    assert_eq!(
        next.services[RATINGS].endpoints[0]
            .labels
            .get("version")
            .map(String::as_str),
        Some("v7")
    );
    assert!(Arc::ptr_eq(
        &next.services[REVIEWS],
        &previous.services[REVIEWS]
    ));
}

#[test]
fn a_sequence_of_endpoint_files_added_changed_and_deleted_stays_equal_to_full_rebuilds() {
    let mut files = Files::new();
    let (mut snapshot, mut index) = indexed(&files);
    let steps: Vec<(&str, &str, Option<String>)> = vec![
        (
            "cluster2",
            "reviews-more.yaml",
            Some(documents(&[
                pod("reviews-d", "10.2.0.2", "v3"),
                slice("reviews-3", "reviews", &[("10.2.0.2", "reviews-d")]),
            ])),
        ),
        ("cluster1", "ratings-pods.yaml", None),
        (
            "cluster1",
            "ratings-pods.yaml",
            Some(pod("ratings-a", "10.1.1.1", "v2")),
        ),
        ("cluster2", "reviews-more.yaml", None),
        (
            "cluster1",
            "reviews.yaml",
            Some(documents(&[
                service("reviews"),
                pod("reviews-a", "10.1.0.1", "v1"),
                slice("reviews-1", "reviews", &[("10.1.0.1", "reviews-a")]),
            ])),
        ),
    ];
    for (step, (cluster, file, text)) in steps.into_iter().enumerate() {
        snapshot = change(&mut files, &mut index, &snapshot, cluster, file, text)
            .unwrap_or_else(|| panic!("step {step} is endpoint-only"));
        assert_eq!(snapshot, full(&files), "after step {step}");
    }
}

#[test]
fn a_changed_service_is_left_to_the_full_rebuild() {
    let mut files = Files::new();
    let (previous, mut index) = indexed(&files);
    let text = documents(&[
        service("ratings").replace("9080", "9081"),
        slice("ratings-1", "ratings", &[("10.1.1.1", "ratings-a")]),
    ]);
    assert!(
        change(
            &mut files,
            &mut index,
            &previous,
            "cluster1",
            "ratings.yaml",
            Some(text)
        )
        .is_none()
    );
}

#[test]
fn an_address_claimed_twice_is_left_to_the_full_rebuild() {
    let mut files = Files::new();
    let (previous, mut index) = indexed(&files);
    // ratings-a's address, now also claimed by a pod of another file.
    let text = documents(&[pod("intruder", "10.1.1.1", "v1")]);
    assert!(
        change(
            &mut files,
            &mut index,
            &previous,
            "cluster1",
            "intruder.yaml",
            Some(text)
        )
        .is_none()
    );
}

#[test]
fn a_name_defined_twice_is_left_to_the_full_rebuild() {
    let mut files = Files::new();
    let (previous, mut index) = indexed(&files);
    let text = pod("reviews-a", "10.1.9.9", "v1");
    assert!(
        change(
            &mut files,
            &mut index,
            &previous,
            "cluster1",
            "again.yaml",
            Some(text)
        )
        .is_none()
    );
}

#[test]
fn a_new_slice_with_a_problem_is_left_to_the_full_rebuild() {
    let mut files = Files::new();
    let (previous, mut index) = indexed(&files);
    // Names a Service this cluster does not declare: the full build warns about it.
    let text = slice("details-1", "details", &[("10.1.5.1", "details-a")]);
    assert!(
        change(
            &mut files,
            &mut index,
            &previous,
            "cluster1",
            "details.yaml",
            Some(text)
        )
        .is_none()
    );
}
