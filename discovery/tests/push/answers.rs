//! ACKs and NACKs: recorded, counted, and required in order.

use multicluster::proto::GatewayMessage;
use tonic::Code;

use discovery::push::{NackRecord, PushKind};

use super::support::{FakeSource, RawGateway, TestServer, eventually, hello, identity};

#[tokio::test]
async fn ack_is_recorded() {
    let source = FakeSource::new();
    source.set("eastwest", &["a"]);
    let server = TestServer::start(source).await;
    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    gateway.next_acked().await;

    let gateways = server.metrics.gateways().clone();
    eventually("the ack to be recorded", || {
        let gateways = gateways.clone();
        async move { gateways.find("eastwest")[0].last_acked_version.as_deref() == Some("1") }
    })
    .await;
    assert_eq!(server.metrics.nacks(), 0);
}

#[tokio::test]
async fn nack_is_recorded_with_its_problems_and_counted() {
    let source = FakeSource::new();
    source.set("eastwest", &["a"]);
    let server = TestServer::start(source.clone()).await;
    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    gateway.next_acked().await;
    source.set("eastwest", &["a", "b"]);
    let refused = gateway.next_config().await;
    assert_eq!(refused.version, "2");
    gateway
        .nack(
            "2",
            &["clusters[b]: has no endpoints", "listeners[x]: bad port"],
        )
        .await;

    let gateways = server.metrics.gateways().clone();
    eventually("the nack to be recorded", || {
        let gateways = gateways.clone();
        async move { gateways.find("eastwest")[0].last_nack.is_some() }
    })
    .await;
    let status = &server.metrics.gateways().find("eastwest")[0];
    assert_eq!(
        status.last_nack,
        Some(NackRecord {
            version: "2".into(),
            problems: vec![
                "clusters[b]: has no endpoints".into(),
                "listeners[x]: bad port".into()
            ],
        })
    );
    // The gateway still serves what it acked before.
    assert_eq!(status.last_acked_version.as_deref(), Some("1"));
    assert_eq!(status.nacks, 1);
    assert_eq!(server.metrics.nacks(), 1);
}

#[tokio::test]
async fn after_a_nack_the_next_change_is_pushed() {
    let source = FakeSource::new();
    source.set("eastwest", &["a"]);
    let server = TestServer::start(source.clone()).await;
    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    let first = gateway.next_config().await;
    gateway.nack(&first.version, &["bad"]).await;
    source.set("eastwest", &["fixed"]);
    let fixed = gateway.next_config().await;
    assert_eq!(fixed.version, "2");
    assert_eq!(fixed.clusters[0].name, "fixed");
    assert_eq!(server.metrics.pushes(PushKind::Update), 1);
}

#[tokio::test]
async fn ack_for_a_version_never_sent_ends_the_stream() {
    let source = FakeSource::new();
    source.set("eastwest", &["a"]);
    let server = TestServer::start(source).await;
    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    gateway.next_config().await;
    gateway.ack("7").await;
    let status = gateway.end().await.expect_err("an error status");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("out of order"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn answering_twice_ends_the_stream() {
    let source = FakeSource::new();
    source.set("eastwest", &["a"]);
    let server = TestServer::start(source).await;
    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    gateway.next_acked().await;
    gateway.ack("1").await;
    let status = gateway.end().await.expect_err("an error status");
    assert!(
        status
            .message()
            .contains("no version is awaiting an answer"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn second_hello_ends_the_stream() {
    let source = FakeSource::new();
    source.set("eastwest", &["a"]);
    let server = TestServer::start(source).await;
    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    gateway.next_config().await;
    gateway.send(hello(identity("other"))).await;
    let status = gateway.end().await.expect_err("an error status");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("second hello"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn message_without_kind_ends_the_stream() {
    let source = FakeSource::new();
    let server = TestServer::start(source).await;
    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    gateway.next_config().await;
    gateway.send(GatewayMessage { kind: None }).await;
    let status = gateway.end().await.expect_err("an error status");
    assert_eq!(status.code(), Code::InvalidArgument);
}
