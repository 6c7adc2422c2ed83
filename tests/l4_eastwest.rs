//! Layer-4 east-west end to end: discovery reads a two-network mesh from YAML files, two
//! east-west gateways subscribe with their identities, and mesh-like TLS clients go through
//! them to TLS echo backends on loopback.
//!
//! Assertions are on what the backends served, on the certificate the client verified, and
//! on the gateways' `/stats/prometheus` counters.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod support;

use std::time::Duration;

use discovery::app::Discovery;
use support::backend::{Backend, Reply};
use support::client::{self, ISTIO_ALPN, sni};
use support::gateways::{GatewaySpec, TestGateway};
use support::mesh::{MeshFiles, workload_yaml};
use support::pki::Pki;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const REVIEWS: &str = "reviews.default.svc.cluster.local";
const PORT: u16 = 9080;

/// Two networks: reviews v1 on network1; reviews v1 and two v2 on network2.
struct EastWest {
    pki: Pki,
    /// network1
    v1_a: Backend,
    /// network2
    v1_b: Backend,
    v2_a: Backend,
    v2_b: Backend,
    gateway1: TestGateway,
    gateway2: TestGateway,
    discovery: Option<Discovery>,
    _files: MeshFiles,
}

impl EastWest {
    async fn start() -> EastWest {
        support::init();
        let pki = Pki::new("l4-eastwest-ca");
        let backend = |name: &'static str, ip: &'static str| {
            let leaf = pki.leaf(&format!("{name}.backend.test"));
            async move { Backend::start(name, ip, Some(&leaf), Reply::EchoLines).await }
        };
        let v1_a = backend("reviews-v1-a", "127.0.0.21").await;
        let v2_a = backend("reviews-v2-a", "127.0.0.22").await;
        let v2_b = backend("reviews-v2-b", "127.0.0.23").await;
        let v1_b = backend("reviews-v1-b", "127.0.0.24").await;

        let files = MeshFiles::from_scenario("l4/eastwest");
        for (cluster, backend, version) in [
            ("cluster1", &v1_a, "v1"),
            ("cluster2", &v1_b, "v1"),
            ("cluster2", &v2_a, "v2"),
            ("cluster2", &v2_b, "v2"),
        ] {
            let yaml = workload_yaml(
                "default",
                "reviews",
                backend.name(),
                &[("version", version)],
                "tcp-echo",
                backend.address(),
            );
            files.write(
                &format!("{cluster}/workload-{}.yaml", backend.name()),
                &yaml,
            );
        }
        let discovery = files.start_discovery().await;
        let uri = discovery.grpc_uri();
        let gateway1 = TestGateway::start(
            &GatewaySpec::east_west("cluster1", "network1", "127.0.0.11"),
            &uri,
        )
        .await;
        let gateway2 = TestGateway::start(
            &GatewaySpec::east_west("cluster2", "network2", "127.0.0.12"),
            &uri,
        )
        .await;
        gateway1
            .wait_for_admin("/endpoints", &[&v1_a.address().to_string()])
            .await;
        gateway2
            .wait_for_admin(
                "/endpoints",
                &[
                    &v1_b.address().to_string(),
                    &v2_a.address().to_string(),
                    &v2_b.address().to_string(),
                ],
            )
            .await;
        EastWest {
            pki,
            v1_a,
            v1_b,
            v2_a,
            v2_b,
            gateway1,
            gateway2,
            discovery: Some(discovery),
            _files: files,
        }
    }

    fn backends(&self) -> [&Backend; 4] {
        [&self.v1_a, &self.v1_b, &self.v2_a, &self.v2_b]
    }

    fn served(&self) -> [usize; 4] {
        self.backends().map(Backend::served)
    }

    /// One mesh connection through `gateway` for `subset`: returns the backend whose
    /// certificate the client verified, after checking the echo came from that backend.
    async fn mesh_round_trip(&self, gateway: &TestGateway, subset: &str) -> &Backend {
        let connector = client::connector(&self.pki, &[ISTIO_ALPN]);
        let mut stream = client::tls_connect(
            &connector,
            gateway.listener(15443),
            &sni(PORT, subset, REVIEWS),
        )
        .await
        .unwrap();
        let certificate = client::peer_certificate(&stream);
        let answer = client::round_trip(&mut stream, "ping").await;
        let backend = self
            .backends()
            .into_iter()
            .find(|backend| answer == format!("{} ping", backend.name()))
            .unwrap_or_else(|| panic!("answer {answer:?} is from no known backend"));
        assert_eq!(
            Some(&certificate),
            backend.certificate(),
            "the client must verify the certificate of the backend that answered ({})",
            backend.name()
        );
        backend
    }

    async fn shutdown(mut self) {
        self.gateway1.shutdown().await;
        self.gateway2.shutdown().await;
        if let Some(discovery) = self.discovery.take() {
            discovery.shutdown().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_client_reaches_the_backend_of_each_network_and_verifies_its_certificate() {
    let mesh = EastWest::start().await;

    // network1's gateway fronts only reviews-v1-a.
    for _ in 0..3 {
        let backend = mesh.mesh_round_trip(&mesh.gateway1, "").await;
        assert_eq!(backend.name(), "reviews-v1-a");
    }
    assert_eq!(mesh.v1_a.served(), 3);

    // network2's gateway fronts its three endpoints and never network1's.
    let mut names = std::collections::BTreeSet::new();
    for _ in 0..12 {
        names.insert(
            mesh.mesh_round_trip(&mesh.gateway2, "")
                .await
                .name()
                .to_owned(),
        );
    }
    assert!(!names.contains("reviews-v1-a"), "{names:?}");
    assert!(
        names.len() >= 2,
        "round robin over network2's endpoints: {names:?}"
    );
    assert_eq!(
        mesh.v1_b.served() + mesh.v2_a.served() + mesh.v2_b.served(),
        12
    );
    assert_eq!(mesh.v1_a.served(), 3);

    let (_, stats) = support::admin::http_get(
        mesh.gateway2.handle().admin_addresses().stats,
        "/stats/prometheus",
    )
    .await;
    let opened = support::admin::metric_sum(&stats, "istio_tcp_connections_opened_total", &[]);
    assert_eq!(opened, 12.0, "{stats}");
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subset_sni_reaches_only_that_subset() {
    let mesh = EastWest::start().await;
    for _ in 0..10 {
        let backend = mesh.mesh_round_trip(&mesh.gateway2, "v2").await;
        assert!(
            backend.name().starts_with("reviews-v2-"),
            "{}",
            backend.name()
        );
    }
    assert_eq!(mesh.v1_b.served(), 0);
    assert_eq!(mesh.v2_a.served() + mesh.v2_b.served(), 10);
    assert!(
        mesh.v2_a.served() > 0 && mesh.v2_b.served() > 0,
        "both v2 endpoints take turns"
    );

    for _ in 0..4 {
        let backend = mesh.mesh_round_trip(&mesh.gateway2, "v1").await;
        assert_eq!(backend.name(), "reviews-v1-b");
    }
    assert_eq!(mesh.v1_b.served(), 4);
    assert_eq!(
        mesh.v1_a.served(),
        0,
        "network1's v1 is not behind network2's gateway"
    );
    mesh.shutdown().await;
}

/// Sends `bytes`, expects the gateway to close, and the reason to be counted once.
async fn assert_rejected(mesh: &EastWest, bytes: &[u8], reason: &str) {
    let before = mesh.served();
    let mut stream = TcpStream::connect(mesh.gateway2.listener(15443))
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    assert!(
        client::closed_by_peer(&mut stream, Duration::from_secs(10)).await,
        "the gateway must close a client with {reason}"
    );
    mesh.gateway2.wait_rejected(reason, 1.0).await;
    assert_eq!(
        mesh.served(),
        before,
        "no backend may see a {reason} client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sni_is_closed_and_counted() {
    let mesh = EastWest::start().await;
    let hello = client::client_hello(Some(&sni(PORT, "", "ratings.default.svc.cluster.local")));
    assert_rejected(&mesh, &hello, "unknown_sni").await;
    // A real TLS client fails its handshake the same way.
    let connector = client::connector(&mesh.pki, &[ISTIO_ALPN]);
    let sni = sni(PORT, "v3", REVIEWS);
    assert!(
        client::tls_connect(&connector, mesh.gateway2.listener(15443), &sni)
            .await
            .is_err()
    );
    mesh.gateway2.wait_rejected("unknown_sni", 2.0).await;
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_without_sni_is_closed_and_counted() {
    let mesh = EastWest::start().await;
    assert_rejected(&mesh, &client::client_hello(None), "no_sni").await;
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_closed_and_counted() {
    let mesh = EastWest::start().await;
    let request = format!("GET / HTTP/1.1\r\nhost: {REVIEWS}:{PORT}\r\n\r\n");
    assert_rejected(&mesh, request.as_bytes(), "not_tls").await;
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_dribbled_one_byte_a_second_is_closed_and_counted() {
    let mesh = EastWest::start().await;
    let hello = client::client_hello(Some(&sni(PORT, "", REVIEWS)));
    let stream = TcpStream::connect(mesh.gateway2.listener(15443))
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = std::time::Instant::now();
    let dribble = tokio::spawn(async move {
        for byte in hello {
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut buffer = [0u8; 16];
    let closed = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut read, &mut buffer),
    )
    .await;
    dribble.abort();
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the slow client must be closed: {closed:?}"
    );
    // The ephemeral gateway allows 2 s for a whole ClientHello; the dribble needs minutes.
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "closed before the deadline: {:?}",
        started.elapsed()
    );
    mesh.gateway2.wait_rejected("hello_timeout", 1.0).await;
    assert_eq!(mesh.served(), [0; 4]);
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_gone_mid_test_is_skipped_for_new_connections() {
    let mut mesh = EastWest::start().await;
    for _ in 0..4 {
        mesh.mesh_round_trip(&mesh.gateway2, "v2").await;
    }
    assert!(mesh.v2_a.served() > 0 && mesh.v2_b.served() > 0);

    // v2-b goes away: its port refuses connections from now on.
    mesh.v2_b.stop().await;
    let served_by_a = mesh.v2_a.served();
    for _ in 0..8 {
        let backend = mesh.mesh_round_trip(&mesh.gateway2, "v2").await;
        assert_eq!(
            backend.name(),
            "reviews-v2-a",
            "new connections must skip the stopped backend"
        );
    }
    assert_eq!(mesh.v2_a.served(), served_by_a + 8);
    assert_eq!(
        mesh.v1_b.served(),
        0,
        "the subset stays v2 even with one endpoint left"
    );
    mesh.shutdown().await;
}
