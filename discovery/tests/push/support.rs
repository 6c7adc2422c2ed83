//! A fake config source, a server on an ephemeral port, and a raw gateway stream.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use discovery::push::{ConfigSource, PushMetrics, PushServer};
use multicluster::proto::{
    Ack, Cluster, ConfigPush, GatewayConfig, GatewayIdentity, GatewayMessage, Nack,
    gateway_message::Kind,
};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

mod generated {
    #![allow(clippy::all, missing_docs, rust_2018_idioms)]
    include!(concat!(env!("OUT_DIR"), "/test_client/isthmus.v1.rs"));
}

use generated::mesh_discovery_client::MeshDiscoveryClient;

/// Long enough for a debounced push on a loaded 2-core CI machine, short enough to keep the
/// suite quick.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to listen for a push that must *not* come: several debounce periods.
pub const QUIET: Duration = Duration::from_millis(500);

/// Configs keyed by gateway name; every `set` bumps the generation like a real input change.
pub struct FakeSource {
    generation: watch::Sender<u64>,
    configs: Mutex<BTreeMap<String, GatewayConfig>>,
    computed: AtomicUsize,
}

impl FakeSource {
    pub fn new() -> Arc<Self> {
        Arc::new(FakeSource {
            generation: watch::Sender::new(0),
            configs: Mutex::new(BTreeMap::new()),
            computed: AtomicUsize::new(0),
        })
    }

    /// Sets `gateway`'s config to one cluster per name, then notifies.
    pub fn set(&self, gateway: &str, clusters: &[&str]) {
        self.configs
            .lock()
            .unwrap()
            .insert(gateway.to_owned(), config_with(clusters));
        self.bump();
    }

    /// Notifies a change without changing anything.
    pub fn bump(&self) {
        self.generation.send_modify(|generation| *generation += 1);
    }

    /// How many times the server asked for a config.
    pub fn computed(&self) -> usize {
        self.computed.load(Ordering::SeqCst)
    }
}

impl ConfigSource for FakeSource {
    fn changes(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn config_for(&self, gateway: &GatewayIdentity) -> GatewayConfig {
        self.computed.fetch_add(1, Ordering::SeqCst);
        self.configs
            .lock()
            .unwrap()
            .get(&gateway.name)
            .cloned()
            .unwrap_or_default()
    }
}

pub fn config_with(clusters: &[&str]) -> GatewayConfig {
    GatewayConfig {
        clusters: clusters
            .iter()
            .map(|name| Cluster {
                name: (*name).to_owned(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

pub fn cluster_names(config: &GatewayConfig) -> Vec<&str> {
    config.clusters.iter().map(|c| c.name.as_str()).collect()
}

pub fn identity(name: &str) -> GatewayIdentity {
    GatewayIdentity {
        name: name.to_owned(),
        namespace: "istio-system".to_owned(),
        cluster: "cluster-1".to_owned(),
        network: "network-1".to_owned(),
        labels: [("istio".to_owned(), "eastwestgateway".to_owned())].into(),
        ..Default::default()
    }
}

/// A discovery push server on 127.0.0.1:<ephemeral>.
pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: Arc<PushMetrics>,
    pub registry: Arc<Registry>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), discovery::push::PushError>>,
}

impl TestServer {
    pub async fn start(source: Arc<FakeSource>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut registry = Registry::default();
        let metrics = Arc::new(PushMetrics::new(&mut registry));
        let (stop, stopped) = oneshot::channel::<()>();
        let server = PushServer::new(source, Arc::clone(&metrics));
        let task = tokio::spawn(server.serve_with_listener(listener, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            metrics,
            registry: Arc::new(registry),
            stop: Some(stop),
            task,
        }
    }

    /// Signals shutdown and waits for the server to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
        let task = &mut self.task;
        tokio::time::timeout(PUSH_TIMEOUT, task)
            .await
            .expect("server stops within the timeout")
            .expect("server task did not panic")
            .expect("server returned without error");
    }
}

/// One raw gateway stream.
pub struct RawGateway {
    answers: mpsc::Sender<GatewayMessage>,
    pushes: Streaming<ConfigPush>,
}

impl RawGateway {
    /// Opens a stream and sends `first` as its first message.
    pub async fn open(addr: SocketAddr, first: GatewayMessage) -> Result<RawGateway, Status> {
        let mut client = MeshDiscoveryClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let (answers, outgoing) = mpsc::channel(8);
        answers.send(first).await.unwrap();
        let pushes = client
            .stream_config(ReceiverStream::new(outgoing))
            .await?
            .into_inner();
        Ok(RawGateway { answers, pushes })
    }

    pub async fn connect(addr: SocketAddr, name: &str) -> RawGateway {
        RawGateway::open(addr, hello(identity(name))).await.unwrap()
    }

    /// The next push; panics if none comes in time.
    pub async fn next_config(&mut self) -> GatewayConfig {
        self.next_push()
            .await
            .expect("a push before the timeout")
            .config
            .expect("a push carries a config")
    }

    /// The next push, or `None` if the stream ends or nothing comes within the timeout.
    pub async fn next_push(&mut self) -> Option<ConfigPush> {
        self.next_push_within(PUSH_TIMEOUT).await
    }

    pub async fn next_push_within(&mut self, wait: Duration) -> Option<ConfigPush> {
        match tokio::time::timeout(wait, self.pushes.message()).await {
            Ok(Ok(push)) => push,
            Ok(Err(status)) => panic!("stream failed: {status}"),
            Err(_) => None,
        }
    }

    /// Reads until the stream ends; returns its final status (`Ok` for a clean end).
    pub async fn end(&mut self) -> Result<(), Status> {
        loop {
            match tokio::time::timeout(PUSH_TIMEOUT, self.pushes.message())
                .await
                .expect("stream ends within the timeout")
            {
                Ok(Some(_)) => continue,
                Ok(None) => return Ok(()),
                Err(status) => return Err(status),
            }
        }
    }

    pub async fn send(&self, message: GatewayMessage) {
        self.answers.send(message).await.unwrap();
    }

    pub async fn ack(&self, version: &str) {
        self.send(ack(version)).await;
    }

    pub async fn nack(&self, version: &str, problems: &[&str]) {
        self.send(GatewayMessage {
            kind: Some(Kind::Nack(Nack {
                version: version.to_owned(),
                problems: problems.iter().map(|p| (*p).to_owned()).collect(),
            })),
        })
        .await;
    }

    /// Receives the next config and ACKs it at once.
    pub async fn next_acked(&mut self) -> GatewayConfig {
        let config = self.next_config().await;
        self.ack(&config.version).await;
        config
    }
}

pub fn hello(identity: GatewayIdentity) -> GatewayMessage {
    GatewayMessage {
        kind: Some(Kind::Hello(identity)),
    }
}

pub fn ack(version: &str) -> GatewayMessage {
    GatewayMessage {
        kind: Some(Kind::Ack(Ack {
            version: version.to_owned(),
        })),
    }
}

/// Polls `condition` until it holds; panics after the timeout naming `what`.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PUSH_TIMEOUT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
