//! HTTP/3 stream semantics through the gateway: gRPC trailers from an HTTP/2 upstream reach
//! an HTTP/3 client, and removing the listener drains its QUIC connections gracefully:
//! GOAWAY, the request in flight finishes, new requests are refused.
// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod h3_support;
mod http_support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes};
use h3_support::*;
use http_support::*;
use multicluster::proto::{self, Protocol, TlsMode};

const HOST: &str = "grpc.quic-corp.com";
const BACKEND: &str = "grpc.default.svc.cluster.local";
const TABLE: &str = "https.443.grpc";

fn https_config(backend: SocketAddr, credential: proto::TlsCredential) -> proto::GatewayConfig {
    let cluster_key = cluster_name(8000, "", BACKEND);
    let mut upstream = cluster(8000, "", BACKEND, &[backend]);
    upstream.protocol = Protocol::Grpc as i32;
    config(
        "1",
        vec![listener(
            443,
            vec![https_server(
                TABLE,
                &[HOST],
                server_tls(TlsMode::Simple, "grpc"),
                TABLE,
            )],
        )],
        vec![upstream],
        vec![table(
            TABLE,
            vec![vhost(
                HOST,
                443,
                vec![route("all", vec![], to(&cluster_key))],
            )],
        )],
        vec![credential],
    )
}

type Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

async fn h3_connect(udp: SocketAddr, root: &str) -> (quinn::Endpoint, Sender) {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(quic_client_config(root));
    let connection = endpoint.connect(udp, HOST).unwrap().await.unwrap();
    let (mut driver, send_request) = h3::client::new(h3_quinn::Connection::new(connection))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    (endpoint, send_request)
}

fn get(path: &str) -> http::Request<()> {
    http::Request::get(format!("https://{HOST}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

#[tokio::test]
async fn grpc_trailers_from_an_h2_upstream_reach_the_http3_client() {
    let backend = backend().await;
    let certs = Certs::new("cluster.local");
    let server_cert = certs.dns("grpc", &[HOST]);
    let gateway = start(test_options()).await;
    gateway
        .apply(https_config(
            backend,
            file_credential("grpc", &server_cert, ""),
        ))
        .unwrap();
    let udp = gateway.quic_listener_address(443).unwrap();
    let (endpoint, mut send_request) = h3_connect(udp, &certs.root()).await;
    let mut stream = send_request.send_request(get("/grpc")).await.unwrap();
    stream.finish().await.unwrap();
    let response = stream.recv_response().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = Vec::new();
    while let Some(mut chunk) = stream.recv_data().await.unwrap() {
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    assert_eq!(body, b"\0\0\0\0\x05hello");
    let trailers = stream.recv_trailers().await.unwrap().expect("trailers");
    assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    assert_eq!(trailers.get("grpc-message").unwrap(), "all-good");
    endpoint.close(0u32.into(), b"");
    gateway.shutdown().await;
}

#[tokio::test]
async fn removing_the_listener_sends_goaway_and_lets_the_request_in_flight_finish() {
    let backend = backend().await;
    let certs = Certs::new("cluster.local");
    let server_cert = certs.dns("grpc", &[HOST]);
    let gateway = start(test_options()).await;
    gateway
        .apply(https_config(
            backend,
            file_credential("grpc", &server_cert, ""),
        ))
        .unwrap();
    let udp = gateway.quic_listener_address(443).unwrap();
    let (endpoint, mut send_request) = h3_connect(udp, &certs.root()).await;

    let mut in_flight = send_request.send_request(get("/delay/800")).await.unwrap();
    in_flight.finish().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    gateway
        .apply(config("2", vec![], vec![], vec![], vec![]))
        .unwrap();
    assert_eq!(gateway.quic_listener_address(443), None);

    let response = in_flight.recv_response().await.unwrap();
    assert_eq!(response.status(), 200, "the request in flight finishes");
    let mut body = Vec::new();
    while let Some(mut chunk) = in_flight.recv_data().await.unwrap() {
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    assert_eq!(body, b"delayed 800 ms");

    // After GOAWAY the client may not start new requests on this connection.
    let refused = async {
        let mut stream = send_request.send_request(get("/after")).await?;
        stream.finish().await?;
        stream.recv_response().await
    };
    let refused = tokio::time::timeout(Duration::from_secs(5), refused).await;
    assert!(
        matches!(refused, Ok(Err(_))),
        "new requests after GOAWAY fail: {refused:?}"
    );
    endpoint.close(0u32.into(), b"");
    gateway.shutdown().await;
}
