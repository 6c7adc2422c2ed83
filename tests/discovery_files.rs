//! Discovery end to end from files: a mesh directory on disk, `discovery::app::Discovery` (file
//! source, translation, push server, monitor) and real gateway discovery clients over loopback
//! gRPC, with sinks that record what they applied.
//!
//! Files are changed the way `kubectl get -o yaml > f.tmp && mv` would: written aside, then
//! renamed into place, so each edit is one watch event and one snapshot.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how they report a failure

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use discovery::app::{Discovery, DiscoveryOptions};
use discovery::mesh_config::MeshConfig;
use gateway::xds::{Client, ClientOptions, ClientStatus, ConfigSink};
use multicluster::proto::server::Routing;
use multicluster::proto::{GatewayConfig, GatewayIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a push that must not come: several debounce periods.
const QUIET: Duration = Duration::from_millis(600);

const DETAILS_SNI: &str = "outbound_.9080_._.details.bookinfo.svc.cluster.local";
const REVIEWS_SNI: &str = "outbound_.9080_._.reviews.bookinfo.svc.cluster.local";
const RATINGS_SNI: &str = "outbound_.9080_._.ratings.bookinfo.svc.cluster.local";
const REVIEWS_CLUSTER: &str = "outbound|9080||reviews.bookinfo.svc.cluster.local";
const RATINGS_CLUSTER: &str = "outbound|9080||ratings.bookinfo.svc.cluster.local";
const DETAILS_CLUSTER: &str = "outbound|9080||details.bookinfo.svc.cluster.local";

// === the mesh on disk ===

struct MeshDir {
    root: tempfile::TempDir,
}

impl MeshDir {
    /// Two clusters on two networks, each with an east-west gateway exposing `*.local`;
    /// `reviews` runs in cluster1, `ratings` in cluster2.
    fn bookinfo() -> MeshDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("mesh.yaml"),
            "clusters:\n\
             - {id: cluster1, network: network1, files: ./cluster1}\n\
             - {id: cluster2, network: network2, files: ./cluster2}\n",
        )
        .unwrap();
        let mesh = MeshDir { root };
        for (cluster, network, gateway_ip) in [
            ("cluster1", "network1", "192.0.2.1"),
            ("cluster2", "network2", "192.0.2.2"),
        ] {
            std::fs::create_dir_all(mesh.root.path().join(cluster)).unwrap();
            mesh.write(cluster, "istio-system.yaml", &eastwest(network, gateway_ip));
        }
        mesh.write(
            "cluster1",
            "reviews.yaml",
            &workload("reviews", &[("reviews-v1-a", "10.10.1.1")]),
        );
        mesh.write(
            "cluster2",
            "ratings.yaml",
            &workload("ratings", &[("ratings-v1-a", "10.20.1.1")]),
        );
        mesh
    }

    fn mesh_file(&self) -> PathBuf {
        self.root.path().join("mesh.yaml")
    }

    fn config(&self) -> MeshConfig {
        MeshConfig::load(&self.mesh_file()).unwrap()
    }

    /// Replaces a file in one step: hidden files are not read, and a rename is atomic.
    fn write(&self, cluster: &str, file: &str, content: &str) {
        let directory = self.root.path().join(cluster);
        let aside = directory.join(format!(".{file}.tmp"));
        std::fs::write(&aside, content).unwrap();
        std::fs::rename(&aside, directory.join(file)).unwrap();
    }

    fn remove(&self, cluster: &str, file: &str) {
        std::fs::remove_file(self.root.path().join(cluster).join(file)).unwrap();
    }
}

/// The system namespace, the east-west gateway Service and its AUTO_PASSTHROUGH Gateway.
fn eastwest(network: &str, gateway_ip: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: istio-system
  labels: {{topology.istio.io/network: {network}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: bookinfo}}
---
apiVersion: v1
kind: Service
metadata:
  name: istio-eastwestgateway
  namespace: istio-system
  labels: {{istio: eastwestgateway, topology.istio.io/network: {network}}}
spec:
  type: LoadBalancer
  selector: {{istio: eastwestgateway}}
  ports:
  - {{name: status-port, port: 15021, targetPort: 15021}}
  - {{name: tls, port: 15443, targetPort: 15443}}
status:
  loadBalancer:
    ingress:
    - ip: {gateway_ip}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: cross-network-gateway
  namespace: istio-system
spec:
  selector: {{istio: eastwestgateway}}
  servers:
  - port: {{number: 15443, name: tls, protocol: TLS}}
    tls: {{mode: AUTO_PASSTHROUGH}}
    hosts: ["*.local"]
"#
    )
}

/// A Service in `bookinfo` with one mesh pod per `(name, ip)` and the EndpointSlice of them.
fn workload(service: &str, pods: &[(&str, &str)]) -> String {
    let mut yaml = format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: {service}, namespace: bookinfo}}
spec:
  selector: {{app: {service}}}
  ports:
  - {{name: http, port: 9080, targetPort: 9080}}
"#
    );
    for (pod, ip) in pods {
        yaml.push_str(&format!(
            r#"---
apiVersion: v1
kind: Pod
metadata:
  name: {pod}
  namespace: bookinfo
  labels: {{app: {service}, version: v1, security.istio.io/tlsMode: istio}}
spec:
  serviceAccountName: bookinfo-{service}
  containers:
  - {{name: app, image: example}}
status:
  podIP: {ip}
"#
        ));
    }
    yaml.push_str(&format!(
        r#"---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {service}-abcde
  namespace: bookinfo
  labels: {{kubernetes.io/service-name: {service}}}
addressType: IPv4
ports:
- {{name: http, port: 9080, protocol: TCP}}
endpoints:
"#
    ));
    for (pod, ip) in pods {
        yaml.push_str(&format!(
            "- addresses: [\"{ip}\"]\n  conditions: {{ready: true}}\n  \
             targetRef: {{kind: Pod, name: {pod}, namespace: bookinfo}}\n"
        ));
    }
    yaml
}

/// Istio conformance A3: a host whose last label is the wildcard fails validation.
const WILDCARD_VIRTUAL_SERVICE: &str = r#"apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: bookinfo, namespace: bookinfo}
spec:
  hosts: ["bookinfo.*"]
  gateways: [bookinfo-gateway]
  http:
  - route: [{destination: {host: reviews, port: {number: 9080}}}]
"#;

async fn start_discovery(mesh: &MeshDir) -> Discovery {
    let mut options = DiscoveryOptions::ephemeral(mesh.config());
    // Short, but still debounced: the tests wait with deadlines, not fixed sleeps.
    options.source_debounce = Duration::from_millis(20);
    Discovery::start(options).await.unwrap()
}

// === the gateway side ===

/// Refuses the configs it is told to, records the ones it applies.
type Refusal = Box<dyn Fn(&GatewayConfig) -> Option<Vec<String>> + Send + Sync>;

#[derive(Default)]
struct RecordingSink {
    applied: Mutex<Vec<GatewayConfig>>,
    refuse: Option<Refusal>,
}

impl RecordingSink {
    fn current(&self) -> Option<GatewayConfig> {
        self.applied.lock().unwrap().last().cloned()
    }

    fn applied_versions(&self) -> Vec<String> {
        let applied = self.applied.lock().unwrap();
        applied
            .iter()
            .map(|config| config.version.clone())
            .collect()
    }
}

impl ConfigSink for RecordingSink {
    fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>> {
        if let Some(problems) = self.refuse.as_ref().and_then(|refuse| refuse(&config)) {
            return Err(problems);
        }
        self.applied.lock().unwrap().push(config);
        Ok(())
    }
}

struct TestGateway {
    sink: Arc<RecordingSink>,
    status: watch::Receiver<ClientStatus>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl TestGateway {
    fn start(discovery: &str, identity: GatewayIdentity, sink: RecordingSink) -> Self {
        let client = Client::new(ClientOptions::new(discovery, identity));
        let status = client.status();
        let sink = Arc::new(sink);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(client.run(Arc::clone(&sink), async {
            let _ = stopped.await;
        }));
        TestGateway {
            sink,
            status,
            stop,
            task,
        }
    }

    /// Waits until the config the gateway serves satisfies `condition`, and returns it.
    async fn wait_config(
        &self,
        what: &str,
        condition: impl Fn(&GatewayConfig) -> bool,
    ) -> GatewayConfig {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(config) = self.sink.current().filter(|config| condition(config)) {
                return config;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; serving {:?}, status {:?}",
                self.sink.current().map(|config| sni_names(&config)),
                *self.status.borrow()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("gateway client stops in time")
            .unwrap();
    }
}

/// An east-west gateway replica of `cluster`, as its pod announces itself.
fn eastwest_identity(name: &str, cluster: &str, network: &str) -> GatewayIdentity {
    GatewayIdentity {
        name: name.to_owned(),
        namespace: "istio-system".to_owned(),
        cluster: cluster.to_owned(),
        network: network.to_owned(),
        labels: [("istio".to_owned(), "eastwestgateway".to_owned())].into(),
        ..Default::default()
    }
}

/// Every SNI name the gateway's AUTO_PASSTHROUGH servers accept.
fn sni_names(config: &GatewayConfig) -> BTreeSet<String> {
    config
        .listeners
        .iter()
        .flat_map(|listener| &listener.servers)
        .filter_map(|server| match &server.routing {
            Some(Routing::AutoPassthrough(table)) => Some(table),
            _ => None,
        })
        .flat_map(|table| table.routes.iter().map(|route| route.sni.clone()))
        .collect()
}

/// The SNI names of the bookinfo services. The gateway's own Service is under `*.local` too,
/// as in Istio, and stays in every table.
fn bookinfo_sni(config: &GatewayConfig) -> BTreeSet<String> {
    let mut names = sni_names(config);
    names.retain(|name| name.ends_with(".bookinfo.svc.cluster.local"));
    names
}

/// The endpoint addresses of the upstream cluster `name`, sorted.
fn endpoints(config: &GatewayConfig, name: &str) -> Vec<String> {
    let cluster = config
        .clusters
        .iter()
        .find(|cluster| cluster.name == name)
        .unwrap_or_else(|| panic!("no cluster {name} in version {}", config.version));
    let mut addresses: Vec<String> = cluster
        .endpoints
        .iter()
        .map(|endpoint| endpoint.address.clone())
        .collect();
    addresses.sort();
    addresses
}

// === the monitoring endpoint, over plain HTTP/1.1 ===

async fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// Samples of the OpenMetrics text, keyed by name and labels as written.
async fn metrics(address: SocketAddr) -> BTreeMap<String, f64> {
    let (status, body) = http_get(address, "/stats/prometheus").await;
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .map(|(name, value)| (name.to_owned(), value.parse().unwrap()))
        .collect()
}

fn sample(metrics: &BTreeMap<String, f64>, name: &str) -> f64 {
    *metrics
        .get(name)
        .unwrap_or_else(|| panic!("no sample {name} in {metrics:#?}"))
}

/// Polls the metrics until `name` has `expected`.
async fn wait_metric(address: SocketAddr, name: &str, expected: f64) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let now = metrics(address).await;
        if now.get(name) == Some(&expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name} == {expected}: {now:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Readiness turns 200 once the first snapshot is built, which start-up does at once.
async fn wait_ready(address: SocketAddr) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, body) = http_get(address, "/healthz/ready").await;
        match status {
            200 => return assert_eq!(body, "ready\n"),
            503 => assert!(body.starts_with("not ready"), "{body}"),
            other => panic!("readiness answered {other}: {body}"),
        }
        assert!(Instant::now() < deadline, "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn debug_gateways(address: SocketAddr) -> Vec<serde_json::Value> {
    let (status, body) = http_get(address, "/debug/gateways").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn gateway_entry<'j>(gateways: &'j [serde_json::Value], name: &str) -> &'j serde_json::Value {
    gateways
        .iter()
        .find(|gateway| gateway["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in /debug/gateways: {gateways:#?}"))
}

// === the tests ===

#[tokio::test]
async fn file_changes_reach_both_gateways_and_metrics_follow() {
    let mesh = MeshDir::bookinfo();
    let discovery = start_discovery(&mesh).await;
    let monitor = discovery.monitor_address();
    let east = TestGateway::start(
        &discovery.grpc_uri(),
        eastwest_identity("eastwest-1", "cluster1", "network1"),
        RecordingSink::default(),
    );
    let west = TestGateway::start(
        &discovery.grpc_uri(),
        eastwest_identity("eastwest-2", "cluster2", "network2"),
        RecordingSink::default(),
    );

    wait_ready(monitor).await;

    // Every gateway accepts every service's name, but only dials its own network.
    let initial = BTreeSet::from([REVIEWS_SNI.to_owned(), RATINGS_SNI.to_owned()]);
    let east_v1 = east
        .wait_config("the first config", |c| bookinfo_sni(c) == initial)
        .await;
    let west_v1 = west
        .wait_config("the first config", |c| bookinfo_sni(c) == initial)
        .await;
    assert_eq!(endpoints(&east_v1, REVIEWS_CLUSTER), ["10.10.1.1"]);
    assert!(endpoints(&east_v1, RATINGS_CLUSTER).is_empty());
    assert_eq!(endpoints(&west_v1, RATINGS_CLUSTER), ["10.20.1.1"]);
    assert!(endpoints(&west_v1, REVIEWS_CLUSTER).is_empty());
    wait_metric(
        monitor,
        "isthmus_discovery_pushes_total{type=\"initial\"}",
        2.0,
    )
    .await;
    let now = metrics(monitor).await;
    assert_eq!(sample(&now, "isthmus_discovery_connected_gateways"), 2.0);
    assert_eq!(sample(&now, "isthmus_discovery_rejected_resources"), 0.0);
    assert_eq!(sample(&now, "isthmus_discovery_nacks_total"), 0.0);

    // A new service in cluster1: both gateways learn its name, only east its endpoint.
    mesh.write(
        "cluster1",
        "details.yaml",
        &workload("details", &[("details-v1-a", "10.10.3.1")]),
    );
    let east_v2 = east
        .wait_config("details on east", |c| sni_names(c).contains(DETAILS_SNI))
        .await;
    let west_v2 = west
        .wait_config("details on west", |c| sni_names(c).contains(DETAILS_SNI))
        .await;
    assert_ne!(east_v2.version, east_v1.version);
    assert_ne!(west_v2.version, west_v1.version);
    assert_eq!(endpoints(&east_v2, DETAILS_CLUSTER), ["10.10.3.1"]);
    assert!(endpoints(&west_v2, DETAILS_CLUSTER).is_empty());
    assert_eq!(endpoints(&east_v2, REVIEWS_CLUSTER), ["10.10.1.1"]);
    wait_metric(
        monitor,
        "isthmus_discovery_pushes_total{type=\"update\"}",
        2.0,
    )
    .await;

    // A second ratings pod in cluster2 changes west's config only.
    mesh.write(
        "cluster2",
        "ratings.yaml",
        &workload(
            "ratings",
            &[("ratings-v1-a", "10.20.1.1"), ("ratings-v1-b", "10.20.1.2")],
        ),
    );
    let west_v3 = west
        .wait_config("the second ratings endpoint", |c| {
            endpoints(c, RATINGS_CLUSTER).len() == 2
        })
        .await;
    assert_eq!(
        endpoints(&west_v3, RATINGS_CLUSTER),
        ["10.20.1.1", "10.20.1.2"]
    );
    wait_metric(
        monitor,
        "isthmus_discovery_pushes_total{type=\"update\"}",
        3.0,
    )
    .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        east.sink.applied_versions(),
        [east_v1.version.clone(), east_v2.version.clone()],
        "east's config did not change, so nothing was pushed to it"
    );
    let now = metrics(monitor).await;
    assert_eq!(
        sample(&now, "isthmus_discovery_pushes_total{type=\"update\"}"),
        3.0
    );
    assert_eq!(
        sample(&now, "isthmus_discovery_push_duration_seconds_count"),
        3.0
    );
    // Measured from the new snapshot to the stream; the only debounce is the file source's,
    // before the snapshot, so this is translation and encoding alone.
    assert!(sample(&now, "isthmus_discovery_push_duration_seconds_sum") > 0.0);

    // Both acknowledged what they hold.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let gateways = debug_gateways(monitor).await;
        let acked = |name: &str| gateway_entry(&gateways, name)["last_acked_version"].clone();
        if acked("eastwest-1") == east_v2.version.as_str()
            && acked("eastwest-2") == west_v3.version.as_str()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acks not recorded: {gateways:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    east.stop().await;
    west.stop().await;
    wait_metric(monitor, "isthmus_discovery_connected_gateways", 0.0).await;
    discovery.shutdown().await;
}

#[tokio::test]
async fn refusing_gateway_keeps_its_version_and_the_nack_is_visible() {
    let mesh = MeshDir::bookinfo();
    let discovery = start_discovery(&mesh).await;
    let monitor = discovery.monitor_address();
    let east = TestGateway::start(
        &discovery.grpc_uri(),
        eastwest_identity("eastwest-1", "cluster1", "network1"),
        RecordingSink::default(),
    );
    let problem = format!("clusters[{DETAILS_CLUSTER}]: upstream pool exhausted (test refusal)");
    let refused_problem = problem.clone();
    let picky = TestGateway::start(
        &discovery.grpc_uri(),
        eastwest_identity("eastwest-picky", "cluster1", "network1"),
        RecordingSink {
            refuse: Some(Box::new(move |config: &GatewayConfig| {
                sni_names(config)
                    .contains(DETAILS_SNI)
                    .then(|| vec![refused_problem.clone()])
            })),
            ..Default::default()
        },
    );
    let picky_v1 = picky
        .wait_config("the first config", |c| sni_names(c).contains(REVIEWS_SNI))
        .await;
    east.wait_config("the first config", |c| sni_names(c).contains(REVIEWS_SNI))
        .await;

    mesh.write(
        "cluster1",
        "details.yaml",
        &workload("details", &[("details-v1-a", "10.10.3.1")]),
    );
    east.wait_config("details on east", |c| sni_names(c).contains(DETAILS_SNI))
        .await;
    let deadline = Instant::now() + TIMEOUT;
    let nack = loop {
        if let Some(nack) = picky.status.borrow().last_nack.clone() {
            break nack;
        }
        assert!(Instant::now() < deadline, "picky never refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(nack.problems, std::slice::from_ref(&problem));
    assert_ne!(nack.version, picky_v1.version);

    // Still serving what it had: nothing of the refused version reached it.
    assert_eq!(
        picky.sink.applied_versions(),
        std::slice::from_ref(&picky_v1.version)
    );
    assert_eq!(picky.sink.current().unwrap(), picky_v1);
    assert_eq!(
        picky.status.borrow().last_applied_version.as_deref(),
        Some(picky_v1.version.as_str())
    );

    // Discovery shows the refusal, per gateway and in the counter.
    wait_metric(monitor, "isthmus_discovery_nacks_total", 1.0).await;
    let gateways = debug_gateways(monitor).await;
    let seen = gateway_entry(&gateways, "eastwest-picky");
    assert_eq!(seen["cluster"], "cluster1");
    assert_eq!(seen["last_nack"]["version"], nack.version.as_str());
    assert_eq!(seen["last_nack"]["problems"], serde_json::json!([problem]));
    assert_eq!(seen["last_acked_version"], picky_v1.version.as_str());
    assert_eq!(seen["nacks"], 1);
    let fine = gateway_entry(&gateways, "eastwest-1");
    assert_eq!(fine["last_nack"], serde_json::Value::Null);
    assert_eq!(fine["nacks"], 0);

    // Once the offending service is gone, the gateway takes the next version.
    mesh.remove("cluster1", "details.yaml");
    let picky_v3 = picky
        .wait_config("a version after the refused one", |c| {
            c.version != picky_v1.version
        })
        .await;
    assert!(!sni_names(&picky_v3).contains(DETAILS_SNI));
    assert_eq!(
        picky.sink.applied_versions(),
        [picky_v1.version.clone(), picky_v3.version.clone()]
    );

    east.stop().await;
    picky.stop().await;
    discovery.shutdown().await;
}

#[tokio::test]
async fn invalid_resource_is_skipped_and_reported_while_the_mesh_keeps_working() {
    let mesh = MeshDir::bookinfo();
    let discovery = start_discovery(&mesh).await;
    let monitor = discovery.monitor_address();
    let east = TestGateway::start(
        &discovery.grpc_uri(),
        eastwest_identity("eastwest-1", "cluster1", "network1"),
        RecordingSink::default(),
    );
    let west = TestGateway::start(
        &discovery.grpc_uri(),
        eastwest_identity("eastwest-2", "cluster2", "network2"),
        RecordingSink::default(),
    );
    let east_v1 = east
        .wait_config("the first config", |c| sni_names(c).contains(REVIEWS_SNI))
        .await;
    let west_v1 = west
        .wait_config("the first config", |c| sni_names(c).contains(REVIEWS_SNI))
        .await;
    assert!(east_v1.rejections.is_empty(), "{:?}", east_v1.rejections);

    // The bad VirtualService arrives together with a good service.
    let before = discovery.snapshot().generation;
    mesh.write("cluster1", "bookinfo-vs.yaml", WILDCARD_VIRTUAL_SERVICE);
    mesh.write(
        "cluster1",
        "details.yaml",
        &workload("details", &[("details-v1-a", "10.10.3.1")]),
    );
    let east_now = east
        .wait_config("details and the rejection on east", |c| {
            sni_names(c).contains(DETAILS_SNI) && !c.rejections.is_empty()
        })
        .await;

    // The snapshot names it, and leaves it out.
    let snapshot = discovery.snapshot();
    assert!(snapshot.generation > before);
    let errors: Vec<_> = snapshot.errors().collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let error = errors[0];
    assert_eq!(
        (error.kind.as_str(), error.name.as_str()),
        ("VirtualService", "bookinfo")
    );
    assert_eq!(error.cluster.as_str(), "cluster1");
    assert!(
        error.origin.contains("/cluster1/bookinfo-vs.yaml"),
        "{error}"
    );
    assert!(
        error
            .message
            .contains(r#"domain name "*" invalid (label "*" invalid)"#),
        "{error}"
    );
    assert!(snapshot.virtual_services.is_empty());

    // The gateway of that cluster carries the rejection in its config.
    assert_eq!(east_now.rejections.len(), 1, "{:?}", east_now.rejections);
    let rejection = &east_now.rejections[0];
    assert_eq!(
        (
            rejection.kind.as_str(),
            rejection.name.as_str(),
            rejection.cluster.as_str()
        ),
        ("VirtualService", "bookinfo", "cluster1")
    );
    assert!(
        rejection
            .reason
            .contains(r#"domain name "*" invalid (label "*" invalid)"#),
        "{rejection:?}"
    );

    // Everything else keeps being served.
    let all = BTreeSet::from([
        REVIEWS_SNI.to_owned(),
        RATINGS_SNI.to_owned(),
        DETAILS_SNI.to_owned(),
    ]);
    assert_eq!(bookinfo_sni(&east_now), all);
    assert_eq!(endpoints(&east_now, REVIEWS_CLUSTER), ["10.10.1.1"]);
    assert_eq!(endpoints(&east_now, DETAILS_CLUSTER), ["10.10.3.1"]);
    let west_now = west
        .wait_config("details on west", |c| sni_names(c).contains(DETAILS_SNI))
        .await;
    assert_eq!(bookinfo_sni(&west_now), all);
    assert!(
        west_now.rejections.is_empty(),
        "cluster1's input problem is not west's: {:?}",
        west_now.rejections
    );
    assert_eq!(endpoints(&west_now, RATINGS_CLUSTER), ["10.20.1.1"]);
    assert_ne!(west_now.version, west_v1.version);

    wait_metric(monitor, "isthmus_discovery_rejected_resources", 1.0).await;
    assert_eq!(
        sample(&metrics(monitor).await, "isthmus_discovery_nacks_total"),
        0.0,
        "a rejected input is not a refused config"
    );

    // Fixing the file clears the report.
    mesh.remove("cluster1", "bookinfo-vs.yaml");
    east.wait_config("the rejection cleared", |c| c.rejections.is_empty())
        .await;
    wait_metric(monitor, "isthmus_discovery_rejected_resources", 0.0).await;

    east.stop().await;
    west.stop().await;
    discovery.shutdown().await;
}

// === the real binary ===

/// A port nobody listens on right now (the OS picks; the binary binds it moments later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child on every exit path, so a failed assertion leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_discovery(mesh: &Path, grpc: SocketAddr, monitor: SocketAddr) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_isthmus"))
        .arg("discovery")
        .arg("--mesh")
        .arg(mesh)
        .arg("--grpc")
        .arg(grpc.to_string())
        .arg("--monitor")
        .arg(monitor.to_string())
        .env("ISTHMUS_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    KillOnDrop(child)
}

#[tokio::test]
async fn isthmus_discovery_binary_is_ready_and_exposes_its_metrics() {
    let mesh = MeshDir::bookinfo();
    let grpc = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let monitor = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut process = spawn_discovery(&mesh.mesh_file(), grpc, monitor);

    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(exit) = process.0.try_wait().unwrap() {
            panic!("isthmus discovery exited early: {exit}");
        }
        if let Ok(mut stream) = TcpStream::connect(monitor).await {
            drop(stream.shutdown().await);
            let (status, _) = http_get(monitor, "/healthz/ready").await;
            if status == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the binary never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let gateway = TestGateway::start(
        &format!("http://{grpc}"),
        eastwest_identity("eastwest-1", "cluster1", "network1"),
        RecordingSink::default(),
    );
    gateway
        .wait_config("a config from the binary", |c| {
            sni_names(c).contains(REVIEWS_SNI)
        })
        .await;
    wait_metric(monitor, "isthmus_discovery_connected_gateways", 1.0).await;
    let (_, text) = http_get(monitor, "/stats/prometheus").await;
    for family in [
        "# TYPE isthmus_discovery_pushes counter",
        "# TYPE isthmus_discovery_push_duration_seconds histogram",
        "# TYPE isthmus_discovery_connected_gateways gauge",
        "# TYPE isthmus_discovery_nacks counter",
        "# TYPE isthmus_discovery_rejected_resources gauge",
    ] {
        assert!(text.contains(family), "missing {family:?} in\n{text}");
    }
    let now = metrics(monitor).await;
    assert_eq!(
        sample(&now, "isthmus_discovery_pushes_total{type=\"initial\"}"),
        1.0
    );
    assert_eq!(sample(&now, "isthmus_discovery_rejected_resources"), 0.0);

    gateway.stop().await;
    process.0.kill().unwrap();
    let exit = process.0.wait().unwrap();
    assert!(!exit.success(), "killed, not exited on its own: {exit}");
}
