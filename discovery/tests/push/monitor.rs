//! The monitoring endpoint over real HTTP, reporting a live push server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use discovery::monitor::{self, Monitor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::support::{FakeSource, RawGateway, TestServer, eventually};

/// A bare HTTP/1.1 GET, so the test depends on no client library's behaviour.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: monitor\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn monitor_reports_readiness_metrics_and_gateways() {
    let source = FakeSource::new();
    source.set("eastwest", &["a"]);
    let server = TestServer::start(source.clone()).await;
    let ready = Arc::new(AtomicBool::new(false));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let monitor_addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let monitor_task = tokio::spawn(monitor::serve_with_listener(
        listener,
        Monitor::new(
            Arc::clone(&ready),
            Arc::clone(&server.registry),
            server.metrics.gateways().clone(),
        ),
        async {
            let _ = stopped.await;
        },
    ));

    let (status, body) = get(monitor_addr, "/healthz/ready").await;
    assert_eq!(status, 503, "{body}");
    ready.store(true, Ordering::Release);
    assert_eq!(get(monitor_addr, "/healthz/ready").await.0, 200);

    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    gateway.next_acked().await;
    source.set("eastwest", &["b"]);
    let update = gateway.next_config().await;
    gateway
        .nack(&update.version, &["clusters[b]: no endpoints"])
        .await;
    server.metrics.set_rejected_resources(2);

    let gateways = server.metrics.gateways().clone();
    eventually("the nack to be recorded", || {
        let gateways = gateways.clone();
        async move { gateways.find("eastwest")[0].nacks == 1 }
    })
    .await;

    let (status, metrics) = get(monitor_addr, "/stats/prometheus").await;
    assert_eq!(status, 200);
    for line in [
        "isthmus_discovery_pushes_total{type=\"initial\"} 1",
        "isthmus_discovery_pushes_total{type=\"update\"} 1",
        "isthmus_discovery_push_duration_seconds_count 1",
        "isthmus_discovery_connected_gateways 1",
        "isthmus_discovery_nacks_total 1",
        "isthmus_discovery_rejected_resources 2",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }

    let (status, json) = get(monitor_addr, "/debug/gateways").await;
    assert_eq!(status, 200);
    let listing: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(listing[0]["name"], "eastwest");
    assert_eq!(listing[0]["last_sent_version"], "2");
    assert_eq!(listing[0]["last_acked_version"], "1");
    assert_eq!(listing[0]["last_nack"]["version"], "2");
    assert_eq!(
        listing[0]["last_nack"]["problems"][0],
        "clusters[b]: no endpoints"
    );

    assert_eq!(get(monitor_addr, "/nope").await.0, 404);
    stop.send(()).unwrap();
    monitor_task.await.unwrap();
}
