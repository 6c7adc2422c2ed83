//! The discovery ↔ gateway protocol end to end: discovery's push server and the gateway's real
//! discovery client, in one process over loopback gRPC.
//!
//! Sinks here record what they were given instead of running listeners, so each test asserts
//! exactly which versions and contents a gateway applied.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how they report a failure

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use discovery::push::{ConfigSource, PushMetrics, PushServer};
use gateway::xds::{Client, ClientOptions, ClientStatus, ConfigSink};
use multicluster::proto::{Cluster, Endpoint, GatewayConfig, GatewayIdentity};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a push that must not come: several debounce periods.
const QUIET: Duration = Duration::from_millis(500);

// === the discovery side ===

/// Per-gateway configs; every change notifies like a real input change.
struct Inputs {
    generation: watch::Sender<u64>,
    configs: Mutex<BTreeMap<String, GatewayConfig>>,
}

impl Inputs {
    fn new() -> Arc<Self> {
        Arc::new(Inputs {
            generation: watch::Sender::new(0),
            configs: Mutex::new(BTreeMap::new()),
        })
    }

    fn set(&self, gateway: &str, config: GatewayConfig) {
        self.configs
            .lock()
            .unwrap()
            .insert(gateway.to_owned(), config);
        self.notify();
    }

    fn notify(&self) {
        self.generation.send_modify(|generation| *generation += 1);
    }
}

impl ConfigSource for Inputs {
    fn changes(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn config_for(&self, gateway: &GatewayIdentity) -> GatewayConfig {
        self.configs
            .lock()
            .unwrap()
            .get(&gateway.name)
            .cloned()
            .unwrap_or_default()
    }
}

/// A config with one cluster per service, each with one endpoint at `address`.
fn config(services: &[(&str, &str)]) -> GatewayConfig {
    GatewayConfig {
        clusters: services
            .iter()
            .map(|(service, address)| Cluster {
                name: format!("outbound|9080||{service}.default.svc.cluster.local"),
                service: format!("{service}.default.svc.cluster.local"),
                port: 9080,
                endpoints: vec![Endpoint {
                    address: (*address).to_owned(),
                    port: 9080,
                    weight: 1,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn services(config: &GatewayConfig) -> Vec<String> {
    config
        .clusters
        .iter()
        .map(|cluster| cluster.service.split('.').next().unwrap().to_owned())
        .collect()
}

struct Discovery {
    addr: SocketAddr,
    metrics: Arc<PushMetrics>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), discovery::push::PushError>>,
}

impl Discovery {
    async fn start(inputs: Arc<Inputs>) -> Discovery {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Discovery::serve(listener, inputs)
    }

    /// Starts on a port a previous discovery used, as a restarted process would.
    async fn restart_on(addr: SocketAddr, inputs: Arc<Inputs>) -> Discovery {
        let listener = TcpListener::bind(addr).await.unwrap();
        Discovery::serve(listener, inputs)
    }

    fn serve(listener: TcpListener, inputs: Arc<Inputs>) -> Discovery {
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(PushMetrics::unregistered());
        let (stop, stopped) = oneshot::channel::<()>();
        let server = PushServer::new(inputs, Arc::clone(&metrics));
        let task = tokio::spawn(server.serve_with_listener(listener, async {
            let _ = stopped.await;
        }));
        Discovery {
            addr,
            metrics,
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("discovery stops in time")
            .unwrap()
            .unwrap();
    }
}

// === the gateway side ===

/// Records every config it applies; refuses those that contain a chosen service, and can be
/// made slow.
#[derive(Default)]
struct RecordingSink {
    applied: Mutex<Vec<GatewayConfig>>,
    refuse_service: Option<&'static str>,
    slow_after_first: Option<Duration>,
}

impl RecordingSink {
    fn applied_versions(&self) -> Vec<String> {
        self.applied
            .lock()
            .unwrap()
            .iter()
            .map(|config| config.version.clone())
            .collect()
    }

    /// The config the gateway serves now: the last one applied.
    fn current(&self) -> Option<GatewayConfig> {
        self.applied.lock().unwrap().last().cloned()
    }
}

impl ConfigSink for RecordingSink {
    fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>> {
        if let Some(service) = self.refuse_service
            && services(&config).iter().any(|s| s == service)
        {
            return Err(vec![format!(
                "listeners[0.0.0.0_15443]: port 15443 is in use, cannot serve {service}"
            )]);
        }
        if let Some(delay) = self.slow_after_first
            && !self.applied.lock().unwrap().is_empty()
        {
            std::thread::sleep(delay);
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
    fn start(discovery: SocketAddr, identity: GatewayIdentity, sink: RecordingSink) -> Self {
        let mut options = ClientOptions::new(format!("http://{discovery}"), identity);
        // Fast retries keep the restart test short; the schedule itself is unit-tested.
        options.backoff_min = Duration::from_millis(50);
        options.backoff_max = Duration::from_millis(400);
        let client = Client::new(options);
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

    fn named(discovery: SocketAddr, name: &str) -> Self {
        TestGateway::start(discovery, identity(name), RecordingSink::default())
    }

    /// Waits until the client's status satisfies `condition`.
    async fn wait_status(&mut self, what: &str, condition: impl Fn(&ClientStatus) -> bool) {
        let reached =
            tokio::time::timeout(TIMEOUT, self.status.wait_for(|status| condition(status)))
                .await
                .map(|result| result.is_ok());
        if reached != Ok(true) {
            panic!("timed out waiting for {what}: {:?}", *self.status.borrow());
        }
    }

    async fn wait_applied(&mut self, version: &str) {
        self.wait_status(&format!("version {version} applied"), |status| {
            status.last_applied_version.as_deref() == Some(version)
        })
        .await;
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("gateway client stops in time")
            .unwrap();
    }
}

fn identity(name: &str) -> GatewayIdentity {
    GatewayIdentity {
        name: name.to_owned(),
        namespace: "istio-system".to_owned(),
        cluster: format!("cluster-{name}"),
        network: format!("network-{name}"),
        labels: [("istio".to_owned(), "eastwestgateway".to_owned())].into(),
        ..Default::default()
    }
}

async fn eventually<Fut: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> Fut) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// === the tests ===

#[tokio::test]
async fn both_gateways_apply_each_update() {
    let inputs = Inputs::new();
    inputs.set("east", config(&[("reviews", "10.1.0.1")]));
    inputs.set("west", config(&[("ratings", "10.2.0.1")]));
    let discovery = Discovery::start(Arc::clone(&inputs)).await;
    let mut east = TestGateway::named(discovery.addr, "east");
    let mut west = TestGateway::named(discovery.addr, "west");
    east.wait_applied("1").await;
    west.wait_applied("1").await;
    assert_eq!(services(&east.sink.current().unwrap()), ["reviews"]);
    assert_eq!(services(&west.sink.current().unwrap()), ["ratings"]);

    inputs.set(
        "east",
        config(&[("reviews", "10.1.0.1"), ("details", "10.1.0.2")]),
    );
    inputs.set("west", config(&[("ratings", "10.2.0.9")]));
    east.wait_applied("2").await;
    west.wait_applied("2").await;

    assert_eq!(east.sink.applied_versions(), ["1", "2"]);
    assert_eq!(west.sink.applied_versions(), ["1", "2"]);
    assert_eq!(
        services(&east.sink.current().unwrap()),
        ["reviews", "details"]
    );
    let west_now = west.sink.current().unwrap();
    assert_eq!(west_now.clusters[0].endpoints[0].address, "10.2.0.9");
    assert!(east.status.borrow().connected);
    assert_eq!(east.status.borrow().last_nack, None);

    // Discovery sees both acknowledgements.
    let gateways = discovery.metrics.gateways().clone();
    eventually("both acks recorded", || {
        let gateways = gateways.clone();
        async move {
            ["east", "west"]
                .iter()
                .all(|name| gateways.find(name)[0].last_acked_version.as_deref() == Some("2"))
        }
    })
    .await;

    east.stop().await;
    west.stop().await;
    discovery.stop().await;
}

#[tokio::test]
async fn refused_and_invalid_configs_are_nacked_and_the_previous_one_kept() {
    let inputs = Inputs::new();
    inputs.set("east", config(&[("reviews", "10.1.0.1")]));
    let discovery = Discovery::start(Arc::clone(&inputs)).await;
    let sink = RecordingSink {
        refuse_service: Some("ratings"),
        ..Default::default()
    };
    let mut east = TestGateway::start(discovery.addr, identity("east"), sink);
    east.wait_applied("1").await;

    // The sink refuses version 2.
    inputs.set(
        "east",
        config(&[("reviews", "10.1.0.1"), ("ratings", "10.1.0.3")]),
    );
    east.wait_status("version 2 refused", |status| {
        status.last_nack.as_ref().map(|nack| nack.version.as_str()) == Some("2")
    })
    .await;
    let refusal = east.status.borrow().last_nack.clone().unwrap();
    assert_eq!(
        refusal.problems,
        ["listeners[0.0.0.0_15443]: port 15443 is in use, cannot serve ratings"]
    );
    assert_eq!(east.sink.applied_versions(), ["1"]);
    assert_eq!(
        east.status.borrow().last_applied_version.as_deref(),
        Some("1")
    );

    let gateways = discovery.metrics.gateways().clone();
    eventually("discovery records the nack of version 2", || {
        let gateways = gateways.clone();
        async move {
            gateways.find("east")[0]
                .last_nack
                .as_ref()
                .is_some_and(|nack| nack.version == "2")
        }
    })
    .await;
    let seen = &discovery.metrics.gateways().find("east")[0];
    assert_eq!(seen.last_nack.as_ref().unwrap().problems, refusal.problems);
    assert_eq!(seen.last_acked_version.as_deref(), Some("1"));

    // Version 3 fails validation: it never reaches the sink.
    inputs.set("east", config(&[("reviews", "not-an-ip")]));
    east.wait_status("version 3 refused", |status| {
        status.last_nack.as_ref().map(|nack| nack.version.as_str()) == Some("3")
    })
    .await;
    let invalid = east.status.borrow().last_nack.clone().unwrap();
    assert!(
        invalid
            .problems
            .iter()
            .any(|p| p.contains("\"not-an-ip\" is not an IP address")),
        "{invalid:?}"
    );
    assert_eq!(east.sink.applied_versions(), ["1"]);
    assert_eq!(
        east.sink.current().unwrap().clusters[0].endpoints[0].address,
        "10.1.0.1"
    );
    eventually("discovery counts both nacks", || {
        let metrics = Arc::clone(&discovery.metrics);
        async move { metrics.nacks() == 2 }
    })
    .await;

    // A good config is applied again.
    inputs.set("east", config(&[("reviews", "10.1.0.7")]));
    east.wait_applied("4").await;
    assert_eq!(east.sink.applied_versions(), ["1", "4"]);

    east.stop().await;
    discovery.stop().await;
}

#[tokio::test]
async fn burst_of_changes_reaches_the_gateway_as_a_few_pushes() {
    let inputs = Inputs::new();
    inputs.set("east", config(&[("reviews", "10.1.0.1")]));
    let discovery = Discovery::start(Arc::clone(&inputs)).await;
    let mut east = TestGateway::named(discovery.addr, "east");
    east.wait_applied("1").await;

    for n in 0..50 {
        inputs.set("east", config(&[("reviews", &format!("10.1.1.{n}"))]));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let final_address = "10.1.1.49";
    eventually("the last change applied", || {
        let sink = Arc::clone(&east.sink);
        async move {
            sink.current()
                .is_some_and(|c| c.clusters[0].endpoints[0].address == final_address)
        }
    })
    .await;
    tokio::time::sleep(QUIET).await;
    let pushes_after_first = east.sink.applied_versions().len() - 1;
    assert!(
        (1..=3).contains(&pushes_after_first),
        "{pushes_after_first} pushes for one burst"
    );

    east.stop().await;
    discovery.stop().await;
}

#[tokio::test]
async fn unchanged_config_is_not_pushed_again() {
    let inputs = Inputs::new();
    inputs.set("east", config(&[("reviews", "10.1.0.1")]));
    let discovery = Discovery::start(Arc::clone(&inputs)).await;
    let mut east = TestGateway::named(discovery.addr, "east");
    east.wait_applied("1").await;

    inputs.notify();
    inputs.set("west", config(&[("ratings", "10.2.0.1")]));
    tokio::time::sleep(QUIET).await;
    assert_eq!(east.sink.applied_versions(), ["1"]);

    east.stop().await;
    discovery.stop().await;
}

#[tokio::test]
async fn gateway_keeps_its_config_while_discovery_is_away_and_catches_up() {
    let inputs = Inputs::new();
    inputs.set("east", config(&[("reviews", "10.1.0.1")]));
    let discovery = Discovery::start(Arc::clone(&inputs)).await;
    let addr = discovery.addr;
    let mut east = TestGateway::named(addr, "east");
    east.wait_applied("1").await;

    discovery.stop().await;
    east.wait_status("disconnected", |status| !status.connected)
        .await;
    // Let a few reconnect attempts fail.
    east.wait_status("a few failed reconnects", |status| {
        status.connect_attempts >= 3
    })
    .await;
    assert!(east.status.borrow().last_error.is_some());
    assert_eq!(east.sink.applied_versions(), ["1"], "nothing cleared");
    assert_eq!(services(&east.sink.current().unwrap()), ["reviews"]);

    // Inputs change while discovery is down; the restarted discovery serves the new state.
    inputs.set(
        "east",
        config(&[("reviews", "10.1.0.1"), ("details", "10.1.0.2")]),
    );
    let restarted = Discovery::restart_on(addr, Arc::clone(&inputs)).await;
    east.wait_status("reconnected", |status| status.connected)
        .await;
    eventually("the new state applied", || {
        let sink = Arc::clone(&east.sink);
        async move { sink.current().is_some_and(|c| c.clusters.len() == 2) }
    })
    .await;
    assert_eq!(
        services(&east.sink.current().unwrap()),
        ["reviews", "details"]
    );
    assert_eq!(east.status.borrow().last_error, None);

    east.stop().await;
    restarted.stop().await;
}

#[tokio::test]
async fn slow_gateway_does_not_delay_the_other() {
    let inputs = Inputs::new();
    inputs.set("slow", config(&[("reviews", "10.1.0.1")]));
    inputs.set("fast", config(&[("reviews", "10.2.0.1")]));
    let discovery = Discovery::start(Arc::clone(&inputs)).await;
    let slow_sink = RecordingSink {
        slow_after_first: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let mut slow = TestGateway::start(discovery.addr, identity("slow"), slow_sink);
    let mut fast = TestGateway::named(discovery.addr, "fast");
    slow.wait_applied("1").await;
    fast.wait_applied("1").await;

    let changed = Instant::now();
    inputs.set("slow", config(&[("reviews", "10.1.0.2")]));
    inputs.set("fast", config(&[("reviews", "10.2.0.2")]));
    fast.wait_applied("2").await;
    let fast_latency = changed.elapsed();
    assert!(
        fast_latency < Duration::from_secs(1),
        "fast gateway waited {fast_latency:?}"
    );
    assert_eq!(
        slow.sink.applied_versions(),
        ["1"],
        "the slow gateway is still applying version 2"
    );

    // The slow one gets there in the end.
    slow.wait_applied("2").await;
    assert!(changed.elapsed() >= Duration::from_secs(2));

    slow.stop().await;
    fast.stop().await;
    discovery.stop().await;
}

#[tokio::test]
async fn hello_without_cluster_is_refused_with_a_clear_error() {
    let inputs = Inputs::new();
    let discovery = Discovery::start(Arc::clone(&inputs)).await;
    let anonymous = GatewayIdentity {
        cluster: String::new(),
        ..identity("east")
    };
    let mut east = TestGateway::start(discovery.addr, anonymous, RecordingSink::default());
    east.wait_status("the refusal", |status| {
        status
            .last_error
            .as_deref()
            .is_some_and(|error| error.contains("empty `cluster`"))
    })
    .await;
    let error = east.status.borrow().last_error.clone().unwrap();
    assert!(error.contains("refused the stream"), "{error}");
    // It keeps trying (the operator may fix discovery's side), and never applied anything.
    east.wait_status("a retry", |status| status.connect_attempts >= 2)
        .await;
    assert!(!east.status.borrow().connected);
    assert!(east.sink.applied_versions().is_empty());
    assert_eq!(discovery.metrics.gateways().connected_count(), 0);

    east.stop().await;
    discovery.stop().await;
}
