//! Hostile or broken clients: oversized headers, request smuggling, slowloris. Each gets a
//! clear answer or a closed connection, and other clients are served meanwhile.
// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod http_support;

use std::time::{Duration, Instant};

use http_support::*;
use multicluster::proto::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn gateway_to(backend: &Counting) -> (gateway::GatewayHandle, std::net::SocketAddr) {
    let gateway = start(test_options()).await;
    let upstream = cluster_name(80, "", "backend.default.svc.cluster.local");
    gateway
        .apply(config(
            "1",
            vec![listener(
                80,
                vec![http_server("http.80", Protocol::Http, &["*"], "http.80")],
            )],
            vec![cluster(
                80,
                "",
                "backend.default.svc.cluster.local",
                &[backend.address],
            )],
            vec![table(
                "http.80",
                vec![vhost("*", 80, vec![route("all", vec![], to(&upstream))])],
            )],
            vec![],
        ))
        .unwrap();
    let address = gateway.listener_address(80).unwrap();
    (gateway, address)
}

async fn exchange(address: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).to_string()
}

#[tokio::test]
async fn oversized_headers_get_431_and_others_are_served() {
    let backend = Counting::start("backend", 200).await;
    let (_gateway, address) = gateway_to(&backend).await;
    let big = "a".repeat(70 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: x\r\nx-big: {big}\r\n\r\n");
    let reply = exchange(address, request.as_bytes()).await;
    assert!(
        reply.starts_with("HTTP/1.1 431"),
        "{}",
        &reply[..reply.len().min(200)]
    );
    assert_eq!(backend.count(), 0);
    // Just under the cap is fine.
    let fits = "a".repeat(40 * 1024);
    let reply = curl(&[
        "-H",
        &format!("x-big: {fits}"),
        &format!("http://{address}/"),
    ])
    .await;
    assert_eq!(reply.status, 200);
    // HTTP/2: an oversized header list is refused too, and the connection's next request works.
    let reply = curl(&[
        "--http2-prior-knowledge",
        "-H",
        &format!("x-big: {big}"),
        &format!("http://{address}/"),
    ])
    .await;
    assert_ne!(reply.status, 200, "{reply:?}");
    assert_eq!(
        curl(&["--http2-prior-knowledge", &format!("http://{address}/")])
            .await
            .status,
        200
    );
    assert_eq!(backend.count(), 2);
}

#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle_a_request() {
    let backend = Counting::start("backend", 200).await;
    let (_gateway, address) = gateway_to(&backend).await;
    let attack = b"POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let reply = exchange(address, attack).await;
    // hyper frames the message by Transfer-Encoding alone (RFC 9112 §6.3) and closes the
    // connection after answering, so the bytes after the chunked body are never read as a
    // second request.
    let statuses = reply.lines().filter(|l| l.starts_with("HTTP/1.1 ")).count();
    assert_eq!(statuses, 1, "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    assert!(
        eventually(|| async { backend.count() == 1 }).await,
        "{:?}",
        backend.lines()
    );
    assert_eq!(backend.lines(), ["POST /first HTTP/1.1"]);
    // Conflicting Content-Length values are always refused.
    let reply = exchange(
        address,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
}

#[tokio::test]
async fn a_slow_client_is_cut_off_without_slowing_others() {
    let backend = Counting::start("backend", 200).await;
    let (_gateway, address) = gateway_to(&backend).await;
    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let mut stream = TcpStream::connect(address).await.unwrap();
        let request = b"GET / HTTP/1.1\r\nHost: x\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        for byte in request {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if started.elapsed() > Duration::from_secs(6) {
                break;
            }
        }
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut reply)).await;
        (
            started.elapsed(),
            String::from_utf8_lossy(&reply).to_string(),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(curl(&[&format!("http://{address}/")]).await.status, 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "others were slowed down"
    );
    let (elapsed, reply) = slow.await.unwrap();
    // The header read timeout (2 s in these options) closes it long before the 8 s the
    // dribbled request would need; hyper answers 408 or just closes.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
        "{reply}"
    );
    assert_eq!(backend.count(), 5);
}
