//! Connections coming and going, and the server shutting down.

use super::support::{FakeSource, RawGateway, TestServer, eventually};

#[tokio::test]
async fn disconnected_gateway_leaves_the_table() {
    let source = FakeSource::new();
    let server = TestServer::start(source).await;
    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    gateway.next_config().await;
    assert_eq!(server.metrics.gateways().connected_count(), 1);
    drop(gateway);

    let gateways = server.metrics.gateways().clone();
    eventually("the gateway to leave the table", || {
        let gateways = gateways.clone();
        async move { gateways.connected_count() == 0 }
    })
    .await;
    assert_eq!(server.metrics.gateways().connected_gauge().get(), 0);
}

#[tokio::test]
async fn reconnecting_gateway_keeps_getting_higher_versions() {
    let source = FakeSource::new();
    source.set("eastwest", &["a"]);
    let server = TestServer::start(source.clone()).await;
    let mut first = RawGateway::connect(server.addr, "eastwest").await;
    assert_eq!(first.next_acked().await.version, "1");
    drop(first);
    let mut second = RawGateway::connect(server.addr, "eastwest").await;
    assert_eq!(second.next_acked().await.version, "2");
}

#[tokio::test]
async fn shutdown_ends_every_stream_cleanly() {
    let source = FakeSource::new();
    source.set("east", &["a"]);
    let server = TestServer::start(source).await;
    let mut east = RawGateway::connect(server.addr, "east").await;
    let mut west = RawGateway::connect(server.addr, "west").await;
    east.next_acked().await;
    west.next_config().await; // unanswered: shutdown must not wait for it

    let addr = server.addr;
    server.stop().await;
    assert!(east.end().await.is_ok(), "clean end for east");
    assert!(west.end().await.is_ok(), "clean end for west");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}
