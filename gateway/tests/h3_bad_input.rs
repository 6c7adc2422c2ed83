//! Bad input on the HTTP/3 side: garbage datagrams, a flood of Initials (undecryptable ones
//! and real handshakes abandoned halfway), and a client that opens many streams and never
//! reads. Each time an ordinary client (aioquic) is still served.
// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod h3_support;
mod http_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h3_support::*;
use http_support::*;
use multicluster::proto::TlsMode;

const HOST: &str = "edge.quic-corp.com";
const BACKEND: &str = "edge.default.svc.cluster.local";
const TABLE: &str = "https.443.edge";

struct Setup {
    gateway: gateway::GatewayHandle,
    certs: Certs,
    udp: SocketAddr,
}

async fn setup() -> Setup {
    let backend = backend().await;
    let certs = Certs::new("cluster.local");
    let server_cert = certs.dns("edge", &[HOST]);
    let gateway = start(test_options()).await;
    let cluster_key = cluster_name(8000, "", BACKEND);
    gateway
        .apply(config(
            "1",
            vec![listener(
                443,
                vec![https_server(
                    TABLE,
                    &[HOST],
                    server_tls(TlsMode::Simple, "edge"),
                    TABLE,
                )],
            )],
            vec![cluster(8000, "", BACKEND, &[backend])],
            vec![table(
                TABLE,
                vec![vhost(
                    HOST,
                    443,
                    vec![route("all", vec![], to(&cluster_key))],
                )],
            )],
            vec![file_credential("edge", &server_cert, "")],
        ))
        .unwrap();
    let udp = gateway.quic_listener_address(443).unwrap();
    Setup {
        gateway,
        certs,
        udp,
    }
}

async fn still_served(setup: &Setup, what: &str) {
    let started = Instant::now();
    let reply = H3Client {
        connect: setup.udp,
        host: HOST.to_owned(),
        cacert: setup.certs.root(),
        client_cert: None,
    }
    .run("/ok", &["--timeout", "10"])
    .await;
    assert_eq!(reply.status, Some(200), "after {what}: {reply:?}");
    assert!(reply.body.contains("path=/ok"), "{reply:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "after {what}: a normal client waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn garbage_datagrams_are_dropped_and_others_are_served() {
    let setup = setup().await;
    let socket = udp_sender();
    for seed in 0..3000u64 {
        let len = 1 + (seed as usize * 37) % 1500;
        let mut datagram = noise(seed, len);
        // Every other one claims a long header, so it reaches header parsing.
        if seed % 2 == 0 {
            datagram[0] |= 0xc0;
        }
        socket.send_to(&datagram, setup.udp).unwrap();
    }
    still_served(&setup, "3000 garbage datagrams").await;
    setup.gateway.shutdown().await;
}

#[tokio::test]
async fn initial_flood_leaves_room_for_real_clients() {
    let setup = setup().await;
    let socket = udp_sender();
    for seed in 0..5000u64 {
        socket.send_to(&fake_initial(seed), setup.udp).unwrap();
    }
    // Real Initials from clients that vanish mid-handshake: the server holds state for each
    // until its handshake timeout, beyond a threshold it asks for Retry tokens instead.
    let config = quic_client_config(&setup.certs.root());
    let mut abandoned = Vec::new();
    for _ in 0..400 {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let connecting = endpoint
            .connect_with(config.clone(), setup.udp, HOST)
            .unwrap();
        abandoned.push((endpoint, connecting));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for (endpoint, connecting) in abandoned {
        drop(connecting);
        endpoint.close(0u32.into(), b"");
    }
    still_served(&setup, "5000 fake and 400 abandoned Initials").await;
    setup.gateway.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_stall_others() {
    let setup = setup().await;
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quic_client_config(&setup.certs.root()));
    let connection = endpoint.connect(setup.udp, HOST).unwrap().await.unwrap();
    let (mut driver, mut send_request) = h3::client::new(h3_quinn::Connection::new(connection))
        .await
        .unwrap();
    let driving = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    // Each asks for 4 MiB and is never read: flow control stalls the gateway's sends.
    let mut unread = Vec::new();
    for _ in 0..80 {
        let request = http::Request::get(format!("https://{HOST}/download/4194304"))
            .body(())
            .unwrap();
        let mut stream: h3::client::RequestStream<_, Bytes> =
            match send_request.send_request(request).await {
                Ok(stream) => stream,
                Err(_) => break,
            };
        let _ = stream.finish().await;
        unread.push(stream);
    }
    assert!(unread.len() >= 50, "opened {} streams", unread.len());
    tokio::time::sleep(Duration::from_millis(300)).await;
    still_served(&setup, "80 unread 4 MiB downloads on another connection").await;
    drop(unread);
    drop(send_request);
    driving.abort();
    endpoint.close(0u32.into(), b"");
    setup.gateway.shutdown().await;
}
