//! Remote clusters from remote-cluster Secrets, end to end: discovery reads cluster1 from an
//! in-test Kubernetes API server, cluster1's Secret names cluster2 (another in-test API
//! server), and a real gateway discovery client of cluster2's east-west gateway shows the
//! effect of adding, rotating and deleting that Secret, and of cluster2 becoming unreachable.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how they report a failure

#[path = "../discovery/tests/kube_api/mod.rs"]
mod kube_api;
mod support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use discovery::app::{Discovery, DiscoveryOptions};
use discovery::mesh_config::MeshConfig;
use discovery::source::kube::KubeOptions;
use gateway::xds::{Client, ClientOptions, ConfigSink};
use kube_api::ApiServer;
use multicluster::proto::{GatewayConfig, GatewayIdentity};
use serde_json::json;
use support::admin::{http_get, metric_sum};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(10);
const RATINGS_CLUSTER: &str = "outbound|9080||ratings.bookinfo.svc.cluster.local";
const SECRET: &str = "istio-remote-secret-cluster2";

/// A cluster's system namespace on `network`, its east-west gateway Service and Gateway.
fn eastwest(network: &str, gateway_ip: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: istio-system
  labels: {{topology.istio.io/network: {network}}}
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
  - {{name: tls, port: 15443, targetPort: 15443}}
status:
  loadBalancer:
    ingress:
    - ip: {gateway_ip}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: cross-network-gateway, namespace: istio-system}}
spec:
  selector: {{istio: eastwestgateway}}
  servers:
  - port: {{number: 15443, name: tls, protocol: TLS}}
    tls: {{mode: AUTO_PASSTHROUGH}}
    hosts: ["*.local"]
"#
    )
}

/// `ratings` in `bookinfo` with one mesh pod at `ip`.
fn ratings(ip: &str) -> String {
    let service = "apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: bookinfo}
spec:
  selector: {app: ratings}
  ports:
  - {name: http, port: 9080, targetPort: 9080}
---
";
    let address = std::net::SocketAddr::new(ip.parse().unwrap(), 9080);
    service.to_string()
        + &support::mesh::workload_yaml("bookinfo", "ratings", "ratings-v1-a", &[], "http", address)
}

/// cluster1's API server: only its east-west gateway, until a test adds Secrets.
async fn cluster1() -> ApiServer {
    let server = ApiServer::start().await;
    server.apply_yaml(&eastwest("network1", "192.0.2.1"));
    server
}

/// cluster2's API server with `ratings` at `ip`.
async fn cluster2(ip: &str) -> ApiServer {
    let server = ApiServer::start().await;
    server.apply_yaml(&eastwest("network2", "192.0.2.2"));
    server.apply_yaml(&ratings(ip));
    server
}

/// A remote-cluster Secret as `istioctl create-remote-secret` writes it.
fn remote_secret(name: &str, keys: &[(&str, String)]) -> serde_json::Value {
    let data: serde_json::Map<String, serde_json::Value> = keys
        .iter()
        .map(|(key, kubeconfig)| (key.to_string(), json!(kubeconfig)))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "istio-system",
                     "labels": {"istio/multiCluster": "true"},
                     "annotations": {"networking.istio.io/cluster": keys[0].0}},
        "stringData": data,
    })
}

async fn start_discovery(dir: &Path, cluster1: &ApiServer) -> Discovery {
    support::init();
    std::fs::write(dir.join("cluster1.kubeconfig"), cluster1.kubeconfig()).unwrap();
    let mesh = MeshConfig::parse(
        "remoteClusterTimeout: 1s\nclusters:\n- {id: cluster1, network: network1, kubeconfig: cluster1.kubeconfig}\n",
        dir,
        "mesh.yaml",
    )
    .unwrap();
    let mut options = DiscoveryOptions::ephemeral(mesh);
    options.source_debounce = Duration::from_millis(20);
    options.kube = KubeOptions {
        probe_interval: Duration::from_millis(200),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        debounce: Duration::from_millis(20),
        ..options.kube
    };
    Discovery::start(options).await.unwrap()
}

#[derive(Default)]
struct Recorder {
    applied: Mutex<Vec<GatewayConfig>>,
}

impl ConfigSink for Recorder {
    fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>> {
        self.applied.lock().unwrap().push(config);
        Ok(())
    }
}

/// cluster2's east-west gateway, subscribed through the real discovery client.
struct Gateway {
    recorder: Arc<Recorder>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Gateway {
    fn start(discovery: &Discovery) -> Gateway {
        let identity = GatewayIdentity {
            name: "istio-eastwestgateway-a".to_owned(),
            namespace: "istio-system".to_owned(),
            cluster: "cluster2".to_owned(),
            network: "network2".to_owned(),
            labels: [("istio".to_owned(), "eastwestgateway".to_owned())].into(),
            ..Default::default()
        };
        let client = Client::new(ClientOptions::new(discovery.grpc_uri(), identity));
        let recorder = Arc::new(Recorder::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(client.run(Arc::clone(&recorder), async {
            let _ = stopped.await;
        }));
        Gateway {
            recorder,
            stop: Some(stop),
            task,
        }
    }

    fn applied(&self) -> Vec<GatewayConfig> {
        self.recorder.applied.lock().unwrap().clone()
    }

    /// Waits until the config the gateway serves has `expected` as ratings' endpoints
    /// (`None`: no ratings cluster at all), and returns how many configs it had applied.
    async fn wait_ratings(&self, expected: Option<&[&str]>) -> usize {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let applied = self.applied();
            if let Some(current) = applied.last()
                && ratings_endpoints(current).as_deref()
                    == expected
                        .map(|ips| ips.iter().map(|ip| ip.to_string()).collect::<Vec<_>>())
                        .as_deref()
            {
                return applied.len();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for ratings endpoints {expected:?}; serving {:?}",
                applied.last().map(ratings_endpoints)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn ratings_endpoints(config: &GatewayConfig) -> Option<Vec<String>> {
    let cluster = config.clusters.iter().find(|c| c.name == RATINGS_CLUSTER)?;
    let mut addresses: Vec<String> = cluster
        .endpoints
        .iter()
        .map(|endpoint| endpoint.address.clone())
        .collect();
    addresses.sort();
    Some(addresses)
}

async fn metric(discovery: &Discovery, name: &str, cluster: &str) -> Option<f64> {
    let (status, body) = http_get(discovery.monitor_address(), "/stats/prometheus").await;
    assert_eq!(status, 200, "{body}");
    let series = format!("{name}{{cluster=\"{cluster}\"}}");
    body.lines()
        .any(|line| line.starts_with(&series))
        .then(|| metric_sum(&body, name, &[("cluster", cluster)]))
}

async fn wait_metric(discovery: &Discovery, name: &str, cluster: &str, expected: Option<f64>) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let value = metric(discovery, name, cluster).await;
        if value == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name}{{cluster={cluster}}} == {expected:?}, is {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn remote_secrets_add_rotate_and_remove_clusters_and_an_unreachable_one_keeps_its_endpoints()
{
    let dir = tempfile::tempdir().unwrap();
    let cluster1 = cluster1().await;
    let discovery = start_discovery(dir.path(), &cluster1).await;
    let gateway = Gateway::start(&discovery);
    gateway.wait_ratings(None).await;

    // Added: cluster2's Gateway now configures its gateway, with cluster2's endpoints.
    let first = cluster2("10.20.1.1").await;
    cluster1.apply(remote_secret(SECRET, &[("cluster2", first.kubeconfig())]));
    let added_at = gateway.wait_ratings(Some(&["10.20.1.1"])).await;
    wait_metric(
        &discovery,
        "isthmus_discovery_cluster_synced",
        "cluster2",
        Some(1.0),
    )
    .await;

    // Rotated to a new API server: the new client syncs before the old one stops, so no
    // config in between loses ratings' endpoints.
    let second = cluster2("10.20.1.2").await;
    cluster1.apply(remote_secret(SECRET, &[("cluster2", second.kubeconfig())]));
    gateway.wait_ratings(Some(&["10.20.1.2"])).await;
    for config in &gateway.applied()[added_at - 1..] {
        assert!(
            ratings_endpoints(config).is_some_and(|endpoints| !endpoints.is_empty()),
            "version {} lost ratings' endpoints during the rotation",
            config.version
        );
    }
    // The old client has stopped: the first server hears nothing more (not even probes).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let heard = first.requests().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(first.requests().len(), heard, "the old client still polls");

    // Unreachable: stale in the metrics, sync age growing, the last endpoints kept.
    let served = gateway.applied().len();
    second.stop();
    wait_metric(
        &discovery,
        "isthmus_discovery_cluster_stale",
        "cluster2",
        Some(1.0),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let age = metric(
        &discovery,
        "isthmus_discovery_cluster_sync_age_seconds",
        "cluster2",
    )
    .await
    .unwrap();
    assert!(age >= 0.5, "sync age {age}");
    let applied = gateway.applied();
    assert!(applied.len() >= served);
    assert_eq!(
        ratings_endpoints(applied.last().unwrap()).unwrap(),
        ["10.20.1.2"],
        "an unreachable cluster keeps its last known endpoints"
    );
    let snapshot = discovery.snapshot();
    let info = snapshot.cluster("cluster2").unwrap();
    assert!(
        info.sync.to_string().contains("unreachable"),
        "{}",
        info.sync
    );

    // Removed: the Secret goes, and with it cluster2's config and its metrics.
    cluster1.delete("Secret", "istio-system", SECRET);
    gateway.wait_ratings(None).await;
    wait_metric(
        &discovery,
        "isthmus_discovery_cluster_synced",
        "cluster2",
        None,
    )
    .await;
    assert!(discovery.snapshot().cluster("cluster2").is_none());

    gateway.stop().await;
    discovery.shutdown().await;
}

#[tokio::test]
async fn the_local_id_and_duplicate_ids_are_refused_naming_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cluster1 = cluster1().await;
    let remote = cluster2("10.20.1.1").await;
    cluster1.apply(remote_secret(
        "a-remote",
        &[("cluster2", remote.kubeconfig())],
    ));
    cluster1.apply(remote_secret(
        "b-copy",
        &[
            ("cluster1", remote.kubeconfig()),
            ("cluster2", remote.kubeconfig()),
        ],
    ));
    let discovery = start_discovery(dir.path(), &cluster1).await;
    let gateway = Gateway::start(&discovery);
    gateway.wait_ratings(Some(&["10.20.1.1"])).await;
    let errors: Vec<String> = discovery
        .snapshot()
        .errors()
        .map(ToString::to_string)
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("Secret istio-system/b-copy: data.cluster1: cluster id cluster1 is a cluster of the mesh description")),
        "{errors:#?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("Secret istio-system/b-copy: data.cluster2: cluster id cluster2 is already read from Secret istio-system/a-remote")),
        "{errors:#?}"
    );
    gateway.stop().await;
    discovery.shutdown().await;
}

#[tokio::test]
async fn discovery_is_ready_without_an_unreachable_remote_cluster_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cluster1 = cluster1().await;
    let gone = ApiServer::start().await;
    let kubeconfig = gone.kubeconfig();
    gone.stop();
    drop(gone);
    cluster1.apply(remote_secret(SECRET, &[("cluster2", kubeconfig)]));
    let started = Instant::now();
    let discovery = start_discovery(dir.path(), &cluster1).await;
    let deadline = started + TIMEOUT;
    loop {
        let (status, body) = http_get(discovery.monitor_address(), "/healthz/ready").await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {status} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ready although cluster2 never answered: it is reported, not waited for.
    assert_eq!(
        metric(&discovery, "isthmus_discovery_cluster_synced", "cluster2").await,
        Some(0.0)
    );
    wait_metric(
        &discovery,
        "isthmus_discovery_cluster_stale",
        "cluster2",
        Some(1.0),
    )
    .await;
    discovery.shutdown().await;
}
