//! The file source watching a real directory: changes arrive without a restart, bursts are
//! debounced, and a broken file never empties a cluster.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how they report a failure

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use discovery::mesh::{MeshSnapshot, SyncState};
use discovery::mesh_config::{ClusterConfig, ClusterSource, MeshConfig};
use discovery::resolve::{ResolveError, UnavailableResolver};
use discovery::source::FileMesh;
use multicluster::model::{ClusterId, NetworkId};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

struct Running {
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), discovery::source::SourceError>>,
}

impl Running {
    async fn wait_for(
        &mut self,
        what: &str,
        predicate: impl FnMut(&Arc<MeshSnapshot>) -> bool,
    ) -> Arc<MeshSnapshot> {
        // Generous, so a loaded CI machine does not fail tests that are not about latency;
        // the latency claim itself is checked where it matters.
        tokio::time::timeout(Duration::from_secs(5), self.snapshots.wait_for(predicate))
            .await
            .unwrap_or_else(|_| panic!("within 5 s: {what}"))
            .expect("source running")
            .clone()
    }

    fn current(&self) -> Arc<MeshSnapshot> {
        self.snapshots.borrow().clone()
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

fn start(directory: &Path) -> Running {
    start_with(directory, FileMesh::new)
}

fn start_with(directory: &Path, make: impl FnOnce(MeshConfig) -> FileMesh) -> Running {
    let config = MeshConfig::new(vec![ClusterConfig {
        id: ClusterId::new("c1").unwrap(),
        network: NetworkId::new("net1").unwrap(),
        source: ClusterSource::Files {
            directory: directory.canonicalize().unwrap(),
        },
    }]);
    let resolver = Arc::new(UnavailableResolver::new(ResolveError::SystemConfig(
        "no DNS in tests".to_string(),
    )));
    let (out, snapshots) = watch::channel(Arc::new(MeshSnapshot::default()));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(make(config).with_resolver(resolver).run(out, async {
        let _ = stopped.await;
    }));
    Running {
        snapshots,
        stop,
        task,
    }
}

fn service_yaml(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: ns}}\nspec:\n  ports: [{{name: http, port: {port}}}]\n"
    )
}

fn has_service(snapshot: &MeshSnapshot, name: &str) -> bool {
    snapshot
        .services
        .contains_key(&format!("{name}.ns.svc.cluster.local"))
}

fn port_of(snapshot: &MeshSnapshot, name: &str) -> Option<u16> {
    snapshot
        .services
        .get(&format!("{name}.ns.svc.cluster.local"))
        .map(|record| record.service.ports[0].number)
}

#[tokio::test]
async fn index_watch_new_file_reaches_a_snapshot_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), service_yaml("a", 80)).unwrap();
    let mut running = start(dir.path());
    let first = running
        .wait_for("first snapshot", |s| s.generation >= 1)
        .await;
    assert!(has_service(&first, "a"));
    assert_eq!(first.clusters[0].sync, SyncState::Synced);

    std::fs::create_dir(dir.path().join("nested")).unwrap();
    let written = std::time::Instant::now();
    std::fs::write(dir.path().join("nested/b.yml"), service_yaml("b", 81)).unwrap();
    let second = running
        .wait_for("nested new file", |s| has_service(s, "b"))
        .await;
    assert!(
        written.elapsed() < Duration::from_secs(1),
        "took {:?}",
        written.elapsed()
    );
    assert!(second.generation > first.generation);
    assert!(has_service(&second, "a"));

    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    let third = running
        .wait_for("deleted file dropped", |s| !has_service(s, "a"))
        .await;
    assert!(has_service(&third, "b"));
    running.stop().await;
}

#[tokio::test]
async fn index_watch_a_burst_of_writes_yields_few_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    std::fs::write(&file, service_yaml("a", 1000)).unwrap();
    let mut running = start(dir.path());
    let before = running
        .wait_for("first snapshot", |s| s.generation >= 1)
        .await;

    for port in 1001..=1020 {
        std::fs::write(&file, service_yaml("a", port)).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = running
        .wait_for("last write", |s| port_of(s, "a") == Some(1020))
        .await;
    // Let any straggling rebuild happen before counting.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let settled = running.current();
    assert_eq!(port_of(&settled, "a"), Some(1020));
    let rebuilds = settled.generation - before.generation;
    assert!(
        (1..=3).contains(&rebuilds),
        "20 writes gave {rebuilds} snapshots"
    );
    assert!(after.generation <= settled.generation);
    running.stop().await;
}

#[tokio::test]
async fn index_watch_a_broken_write_keeps_the_last_good_resources() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    std::fs::write(&file, service_yaml("a", 80)).unwrap();
    std::fs::write(dir.path().join("other.yaml"), service_yaml("other", 90)).unwrap();
    let mut running = start(dir.path());
    running
        .wait_for("first snapshot", |s| has_service(s, "a"))
        .await;

    // A half-written file: the YAML ends inside a flow mapping.
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata: {name: a, namesp",
    )
    .unwrap();
    let broken = running
        .wait_for("decode error reported", |s| !s.rejections.is_empty())
        .await;
    assert_eq!(port_of(&broken, "a"), Some(80), "last good content kept");
    assert!(has_service(&broken, "other"));
    let report = &broken.rejections[0];
    assert!(report.origin.ends_with("a.yaml"), "{report}");
    assert!(report.message.contains("not valid YAML"), "{report}");
    assert!(
        report
            .message
            .contains("last good content (1 resources) stays in use"),
        "{report}"
    );
    assert!(
        broken
            .rejections
            .iter()
            .any(|r| r.message.contains("invalid YAML")),
        "{:#?}",
        broken.rejections
    );

    std::fs::write(&file, service_yaml("a", 8080)).unwrap();
    let fixed = running
        .wait_for("fixed file", |s| port_of(s, "a") == Some(8080))
        .await;
    assert!(fixed.rejections.is_empty(), "{:#?}", fixed.rejections);
    running.stop().await;
}

#[tokio::test]
async fn index_watch_invalid_resource_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), service_yaml("a", 80)).unwrap();
    let mut running = start(dir.path());
    running
        .wait_for("first snapshot", |s| has_service(s, "a"))
        .await;

    let virtual_service = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad, namespace: ns}\nspec:\n  hosts: [\"bookinfo.*\"]\n  http: [{route: [{destination: {host: a}}]}]\n";
    std::fs::write(
        dir.path().join("b.yaml"),
        format!("{virtual_service}---\n{}", service_yaml("b", 81)),
    )
    .unwrap();
    let snapshot = running.wait_for("b appears", |s| has_service(s, "b")).await;
    assert!(snapshot.virtual_services.is_empty());
    let rejected = snapshot
        .errors()
        .next()
        .expect("the VirtualService is rejected");
    assert_eq!(rejected.kind, "VirtualService");
    assert_eq!(
        rejected.message,
        r#"domain name "*" invalid (label "*" invalid)"#
    );
    assert!(has_service(&snapshot, "a"));
    running.stop().await;
}

#[tokio::test]
async fn index_watch_a_deleted_directory_keeps_its_resources_and_comes_back() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("c1");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a.yaml"), service_yaml("a", 80)).unwrap();
    let mut running = start_with(&dir, |config| {
        FileMesh::new(config).with_resync(Duration::from_millis(200))
    });
    running
        .wait_for("first snapshot", |s| has_service(s, "a"))
        .await;

    std::fs::remove_dir_all(&dir).unwrap();
    let gone = running
        .wait_for("directory failure reported", |s| {
            matches!(s.clusters[0].sync, SyncState::Failed(_))
        })
        .await;
    assert!(
        has_service(&gone, "a"),
        "last resources kept while the directory is missing"
    );

    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("b.yaml"), service_yaml("b", 81)).unwrap();
    let back = running
        .wait_for("re-created directory read at the resync", |s| {
            has_service(s, "b")
        })
        .await;
    assert_eq!(back.clusters[0].sync, SyncState::Synced);
    assert!(!has_service(&back, "a"));

    // Watched again: a change is seen without waiting for another resync.
    std::fs::write(dir.join("c.yaml"), service_yaml("c", 82)).unwrap();
    running
        .wait_for("change in the re-created directory", |s| {
            has_service(s, "c")
        })
        .await;
    running.stop().await;
}

#[tokio::test]
async fn index_watch_a_truncated_file_keeps_its_resources_until_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.yaml");
    std::fs::write(&file, service_yaml("a", 80)).unwrap();
    let mut running = start(dir.path());
    running
        .wait_for("first snapshot", |s| has_service(s, "a"))
        .await;

    // What `kubectl get ... > a.yaml` looks like before kubectl has written anything.
    std::fs::write(&file, "").unwrap();
    let truncated = running
        .wait_for("empty file reported", |s| !s.rejections.is_empty())
        .await;
    assert!(has_service(&truncated, "a"));
    let warning = &truncated.rejections[0];
    assert_eq!(warning.severity, discovery::mesh::Severity::Warning);
    assert!(
        warning.message.contains("the file is empty (delete it"),
        "{warning}"
    );

    std::fs::remove_file(&file).unwrap();
    let deleted = running.wait_for("deleted", |s| !has_service(s, "a")).await;
    assert!(deleted.rejections.is_empty(), "{:#?}", deleted.rejections);
    running.stop().await;
}

fn endpoints_yaml(pods: &[(&str, &str)]) -> String {
    let mut text = String::new();
    for (name, ip) in pods {
        text.push_str(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: ns, labels: {{app: a}}}}\n\
             spec: {{serviceAccountName: sa}}\nstatus: {{podIP: {ip}}}\n---\n"
        ));
    }
    text.push_str(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: a-1\n  namespace: ns\n  labels: {kubernetes.io/service-name: a}\n\
         addressType: IPv4\nports: [{name: http, port: 80}]\nendpoints:\n",
    );
    for (name, ip) in pods {
        text.push_str(&format!(
            "- addresses: [{ip}]\n  targetRef: {{kind: Pod, name: {name}, namespace: ns}}\n"
        ));
    }
    text
}

fn addresses(snapshot: &MeshSnapshot, name: &str) -> Vec<String> {
    snapshot.services[&format!("{name}.ns.svc.cluster.local")]
        .endpoints
        .iter()
        .map(|endpoint| endpoint.address.to_string())
        .collect()
}

/// The running source follows endpoint-only changes through its endpoint index rather than a
/// rebuild; what it publishes must be what a source started afresh on the same files builds.
#[tokio::test]
async fn index_watch_endpoint_changes_publish_what_a_fresh_start_builds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), service_yaml("a", 80)).unwrap();
    std::fs::write(dir.path().join("b.yaml"), service_yaml("b", 81)).unwrap();
    let pods = dir.path().join("a-endpoints.yaml");
    std::fs::write(&pods, endpoints_yaml(&[("a-1", "10.0.0.1")])).unwrap();
    let mut running = start(dir.path());
    let first = running
        .wait_for("first snapshot", |s| has_service(s, "a"))
        .await;
    assert_eq!(addresses(&first, "a"), ["10.0.0.1"]);

    let steps: [&[(&str, &str)]; 3] = [
        &[("a-1", "10.0.0.9"), ("a-2", "10.0.0.2")],
        &[("a-2", "10.0.0.2")],
        &[],
    ];
    for pods_now in steps {
        std::fs::write(&pods, endpoints_yaml(pods_now)).unwrap();
        let mut expected: Vec<String> = pods_now.iter().map(|(_, ip)| ip.to_string()).collect();
        expected.sort();
        let followed = running
            .wait_for("endpoint change", |s| {
                has_service(s, "a") && addresses(s, "a") == expected
            })
            .await;
        assert!(
            Arc::ptr_eq(
                &followed.services["b.ns.svc.cluster.local"],
                &first.services["b.ns.svc.cluster.local"]
            ),
            "an untouched service record is shared, so the change did not rebuild the mesh"
        );

        let mut fresh = start(dir.path());
        let rebuilt = fresh.wait_for("fresh start", |s| s.generation >= 1).await;
        fresh.stop().await;
        let mut followed = (*followed).clone();
        followed.generation = rebuilt.generation;
        assert_eq!(followed, *rebuilt, "after writing {pods_now:?}");
    }
    running.stop().await;
}

#[tokio::test]
async fn index_watch_a_full_build_keeps_the_records_that_did_not_change() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), service_yaml("a", 80)).unwrap();
    std::fs::write(dir.path().join("b.yaml"), service_yaml("b", 81)).unwrap();
    let mut running = start(dir.path());
    let first = running
        .wait_for("first snapshot", |s| has_service(s, "b"))
        .await;
    let record = |snapshot: &MeshSnapshot, name: &str| {
        Arc::clone(&snapshot.services[&format!("{name}.ns.svc.cluster.local")])
    };

    // A new Service is not an endpoint-only change: the mesh is built in full.
    std::fs::write(dir.path().join("c.yaml"), service_yaml("c", 82)).unwrap();
    let second = running
        .wait_for("service added", |s| has_service(s, "c"))
        .await;
    assert!(Arc::ptr_eq(&record(&first, "a"), &record(&second, "a")));
    assert!(Arc::ptr_eq(&record(&first, "b"), &record(&second, "b")));

    std::fs::write(dir.path().join("b.yaml"), service_yaml("b", 91)).unwrap();
    let third = running
        .wait_for("port changed", |s| port_of(s, "b") == Some(91))
        .await;
    assert!(!Arc::ptr_eq(&record(&second, "b"), &record(&third, "b")));
    assert!(Arc::ptr_eq(&record(&first, "a"), &record(&third, "a")));
    running.stop().await;
}
