//! The kube source against an in-test API server that speaks the list/watch wire format:
//! the index it builds equals the file source's from the same YAML, and it survives what
//! real API servers do to watches (bookmarks, dropped connections, `410 Gone`).

#![allow(clippy::unwrap_used)] // test helpers: a panic is how they report a failure

mod kube_api;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use discovery::mesh::MeshSnapshot;
use discovery::mesh_config::MeshConfig;
use discovery::resource::Origin;
use discovery::source::kube::{KubeOptions, KubeSource, RunningKube};
use discovery::source::{FileMesh, load_once};
use kube_api::ApiServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(10);
const REVIEWS: &str = "reviews.bookinfo.svc.cluster.local";
const SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";

/// Kinds in the order the kube source keeps them (Namespace, Service, EndpointSlice, Pod,
/// Secret, then the Istio kinds), namespace/name order within a kind: a file in that order
/// is read in the same order as the API server's objects.
const MESH_YAML: &str = r#"apiVersion: v1
kind: Namespace
metadata: {name: bookinfo}
---
apiVersion: v1
kind: Namespace
metadata:
  name: istio-system
  labels: {topology.istio.io/network: network1}
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 9080}
---
apiVersion: v1
kind: Service
metadata:
  name: istio-eastwestgateway
  namespace: istio-system
  labels: {istio: eastwestgateway, topology.istio.io/network: network1}
spec:
  type: LoadBalancer
  selector: {istio: eastwestgateway}
  ports:
  - {name: tls, port: 15443, targetPort: 15443}
status:
  loadBalancer:
    ingress:
    - ip: 192.0.2.1
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-abcde
  namespace: bookinfo
  labels: {kubernetes.io/service-name: reviews}
addressType: IPv4
ports:
- {name: http, port: 9080, protocol: TCP}
endpoints:
- addresses: ["10.10.1.1"]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: reviews-v1-a, namespace: bookinfo}
---
apiVersion: v1
kind: Pod
metadata:
  name: reviews-v1-a
  namespace: bookinfo
  labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}
spec:
  serviceAccountName: bookinfo-reviews
  containers:
  - {name: app, image: example}
status:
  podIP: 10.10.1.1
---
apiVersion: v1
kind: Secret
metadata: {name: bookinfo-cert, namespace: istio-system}
type: kubernetes.io/tls
data: {tls.crt: Y2VydA==, tls.key: a2V5}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: cross-network-gateway, namespace: istio-system}
spec:
  selector: {istio: eastwestgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    tls: {mode: AUTO_PASSTHROUGH}
    hosts: ["*.local"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: bookinfo}
spec:
  hosts: ["bookinfo.*"]
  http:
  - route: [{destination: {host: reviews, port: {number: 9080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: bookinfo}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {number: 443, name: tls, protocol: TLS}
  endpoints:
  - {address: 203.0.113.7}
"#;

fn fast_options() -> KubeOptions {
    KubeOptions {
        remote_cluster_timeout: Duration::from_secs(1),
        probe_interval: Duration::from_millis(200),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        debounce: Duration::from_millis(20),
    }
}

/// A mesh of one cluster read through `server`.
fn kube_mesh_config(dir: &Path, server: &ApiServer) -> MeshConfig {
    std::fs::write(dir.join("cluster1.kubeconfig"), server.kubeconfig()).unwrap();
    MeshConfig::parse(
        "clusters:\n- {id: cluster1, network: network1, kubeconfig: cluster1.kubeconfig}\n",
        dir,
        "mesh.yaml",
    )
    .unwrap()
}

struct KubeMesh {
    _kube: RunningKube,
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    task: JoinHandle<()>,
}

impl Drop for KubeMesh {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(config: MeshConfig) -> KubeMesh {
    let kube = KubeSource::new(config.clone())
        .with_options(fast_options())
        .start()
        .await
        .unwrap();
    let (out, snapshots) = watch::channel(Arc::new(MeshSnapshot::default()));
    let source = FileMesh::new(config)
        .with_debounce(Duration::from_millis(10))
        .with_external(kube.clusters());
    let task = tokio::spawn(async move {
        source.run(out, std::future::pending()).await.unwrap();
    });
    KubeMesh {
        _kube: kube,
        snapshots,
        task,
    }
}

impl KubeMesh {
    async fn wait(
        &mut self,
        what: &str,
        condition: impl Fn(&MeshSnapshot) -> bool,
    ) -> Arc<MeshSnapshot> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let snapshot = Arc::clone(&self.snapshots.borrow_and_update());
            if snapshot.generation > 0 && condition(&snapshot) {
                return snapshot;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; clusters {:?}",
                snapshot.clusters
            );
            let _ =
                tokio::time::timeout(Duration::from_millis(100), self.snapshots.changed()).await;
        }
    }
}

fn reviews_endpoints(snapshot: &MeshSnapshot) -> Vec<String> {
    snapshot
        .service(REVIEWS)
        .map(|record| {
            record
                .endpoints
                .iter()
                .map(|endpoint| endpoint.address.to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Where each object came from is the one thing the sources may word differently.
fn without_origins(snapshot: &MeshSnapshot) -> MeshSnapshot {
    let nowhere = || Origin {
        path: String::new(),
        document: 0,
        line: 0,
        item: None,
    };
    let mut snapshot = snapshot.clone();
    snapshot.generation = 0;
    for cluster in &mut snapshot.clusters {
        cluster.source.clear();
    }
    for rejection in &mut snapshot.rejections {
        rejection.origin.clear();
    }
    snapshot
        .gateways
        .iter_mut()
        .for_each(|s| s.origin = nowhere());
    snapshot
        .virtual_services
        .iter_mut()
        .for_each(|s| s.origin = nowhere());
    snapshot
        .destination_rules
        .iter_mut()
        .for_each(|s| s.origin = nowhere());
    snapshot
        .service_entries
        .iter_mut()
        .for_each(|s| s.origin = nowhere());
    snapshot
        .secrets
        .values_mut()
        .for_each(|s| s.origin = nowhere());
    snapshot
}

#[tokio::test]
async fn the_kube_source_builds_the_index_the_file_source_builds_from_the_same_yaml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cluster1")).unwrap();
    std::fs::write(dir.path().join("cluster1/mesh.yaml"), MESH_YAML).unwrap();
    let files = MeshConfig::parse(
        "clusters:\n- {id: cluster1, network: network1, files: cluster1}\n",
        dir.path(),
        "mesh.yaml",
    )
    .unwrap();
    let from_files = load_once(&files);

    let server = ApiServer::start().await;
    server.apply_yaml(MESH_YAML);
    let mut mesh = start(kube_mesh_config(dir.path(), &server)).await;
    let from_kube = mesh
        .wait("the cluster to sync", |snapshot| {
            snapshot.clusters[0].sync == discovery::mesh::SyncState::Synced
        })
        .await;

    // Not vacuous: services, endpoints, gateways, Istio config, a Secret and a rejection.
    assert_eq!(reviews_endpoints(&from_kube), ["10.10.1.1"]);
    assert_eq!(from_kube.network_gateways.len(), 1);
    assert_eq!(from_kube.gateways.len(), 1);
    assert_eq!(
        from_kube.virtual_services.len(),
        1,
        "the broken one is left out"
    );
    assert_eq!(from_kube.destination_rules.len(), 1);
    assert_eq!(from_kube.service_entries.len(), 1);
    assert_eq!(from_kube.secrets.len(), 1);
    let rejected: Vec<String> = from_kube.errors().map(ToString::to_string).collect();
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert!(
        rejected[0].contains("/apis/networking.istio.io/v1/namespaces/bookinfo/virtualservices/broken: VirtualService bookinfo/broken")
            && rejected[0].contains(r#"domain name "*" invalid"#),
        "{}",
        rejected[0]
    );
    assert_eq!(without_origins(&from_kube), without_origins(&from_files));
}

#[tokio::test]
async fn watches_resume_after_bookmarks_and_dropped_connections_and_relist_after_410() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start().await;
    server.apply_yaml(MESH_YAML);
    let mut mesh = start(kube_mesh_config(dir.path(), &server)).await;
    mesh.wait("the first endpoint", |s| {
        reviews_endpoints(s) == ["10.10.1.1"]
    })
    .await;
    assert_eq!(server.requests_to(SLICES, false).len(), 1, "one list");

    // A bookmark moves the watch's version on without an event...
    let bookmark = server.bookmark();
    // Nothing outside the watcher shows that it has read the bookmark; give it time to.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...so after a dropped connection the watch resumes from it, without a new list.
    server.drop_connections();
    server.apply_yaml(&MESH_YAML.replace("10.10.1.1", "10.10.1.2"));
    mesh.wait("the change made while the watch was down", |s| {
        reviews_endpoints(s) == ["10.10.1.2"]
    })
    .await;
    let watches = server.requests_to(SLICES, true);
    assert!(
        watches
            .iter()
            .any(|w| w.contains("allowWatchBookmarks=true")),
        "{watches:#?}"
    );
    assert!(
        watches
            .iter()
            .any(|w| w.contains(&format!("resourceVersion={bookmark}&"))
                || w.ends_with(&format!("resourceVersion={bookmark}"))),
        "a watch resumed from the bookmark's version {bookmark}: {watches:#?}"
    );
    assert_eq!(
        server.requests_to(SLICES, false).len(),
        1,
        "resumed, not relisted"
    );

    // Changes no watch saw, then 410 Gone: only a relist can find them.
    server.expire_watches(|silent| {
        silent.apply_yaml(&MESH_YAML.replace("10.10.1.1", "10.10.1.3"));
        silent.delete("VirtualService", "bookinfo", "reviews");
    });
    let relisted = mesh
        .wait("the relist after 410 Gone", |s| {
            reviews_endpoints(s) == ["10.10.1.3"] && s.virtual_services.is_empty()
        })
        .await;
    assert_eq!(relisted.service_entries.len(), 1, "the rest is kept");
    assert!(server.requests_to(SLICES, false).len() >= 2, "relisted");

    // Deletions arrive as DELETED events.
    server.delete("ServiceEntry", "bookinfo", "external");
    mesh.wait("the deletion", |s| s.service_entries.is_empty())
        .await;
}

#[tokio::test]
async fn istio_kinds_fall_back_to_an_older_api_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start_with_istio(&["v1beta1", "v1alpha3"]).await;
    server.apply_yaml(MESH_YAML);
    let mut mesh = start(kube_mesh_config(dir.path(), &server)).await;
    let snapshot = mesh
        .wait("the Istio kinds", |s| s.gateways.len() == 1)
        .await;
    assert_eq!(
        snapshot.gateways[0].object.api_version,
        "networking.istio.io/v1beta1"
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("/apis/networking.istio.io/v1beta1/gateways")),
        "{:#?}",
        server.requests()
    );
}

#[tokio::test]
async fn a_kind_without_rbac_is_reported_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = ApiServer::start().await;
    server.forbid("pods");
    server.apply_yaml(MESH_YAML);
    let mut mesh = start(kube_mesh_config(dir.path(), &server)).await;
    let snapshot = mesh
        .wait("the cluster to sync without pods", |s| {
            s.clusters[0].sync == discovery::mesh::SyncState::Synced
        })
        .await;
    assert_eq!(reviews_endpoints(&snapshot), ["10.10.1.1"]);
    assert_eq!(snapshot.clusters[0].resources.get("Pod"), None);
    let refused: Vec<String> = snapshot.errors().map(ToString::to_string).collect();
    assert!(
        refused
            .iter()
            .any(|e| e.contains("/api/v1/pods: cannot list and watch pods")
                && e.contains("(403): grant discovery's service account list and watch on pods")),
        "{refused:#?}"
    );
}
