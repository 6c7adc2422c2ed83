//! The Hello: who may open a stream, and what the first push looks like.

use multicluster::proto::{GatewayIdentity, GatewayMessage};
use tonic::Code;

use super::support::{FakeSource, RawGateway, TestServer, ack, cluster_names, hello, identity};

#[tokio::test]
async fn hello_without_cluster_is_refused_naming_the_field() {
    let server = TestServer::start(FakeSource::new()).await;
    let anonymous = GatewayIdentity {
        cluster: String::new(),
        ..identity("eastwest")
    };
    let status = RawGateway::open(server.addr, hello(anonymous))
        .await
        .err()
        .expect("the stream is refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("empty `cluster`"),
        "{}",
        status.message()
    );
    assert_eq!(server.metrics.gateways().connected_count(), 0);
}

#[tokio::test]
async fn each_required_identity_field_is_checked() {
    let server = TestServer::start(FakeSource::new()).await;
    for field in ["name", "namespace", "network"] {
        let mut id = identity("eastwest");
        match field {
            "name" => id.name.clear(),
            "namespace" => id.namespace.clear(),
            _ => id.network.clear(),
        }
        let status = RawGateway::open(server.addr, hello(id))
            .await
            .err()
            .expect("the stream is refused");
        assert!(
            status.message().contains(&format!("empty `{field}`")),
            "{field}: {}",
            status.message()
        );
    }
}

#[tokio::test]
async fn first_message_must_be_a_hello() {
    let server = TestServer::start(FakeSource::new()).await;
    let status = RawGateway::open(server.addr, ack("1"))
        .await
        .err()
        .expect("the stream is refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("hello"), "{}", status.message());
}

#[tokio::test]
async fn empty_first_message_is_refused() {
    let server = TestServer::start(FakeSource::new()).await;
    let status = RawGateway::open(server.addr, GatewayMessage { kind: None })
        .await
        .err()
        .expect("the stream is refused");
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn hello_gets_the_full_config_with_version_one() {
    let source = FakeSource::new();
    source.set(
        "eastwest",
        &["outbound|9080||reviews.default.svc.cluster.local"],
    );
    source.set(
        "ingress",
        &["outbound|80||httpbin.default.svc.cluster.local"],
    );
    let server = TestServer::start(source).await;

    let mut gateway = RawGateway::connect(server.addr, "eastwest").await;
    let config = gateway.next_config().await;
    assert_eq!(config.version, "1");
    assert_eq!(
        cluster_names(&config),
        ["outbound|9080||reviews.default.svc.cluster.local"]
    );

    let status = &server.metrics.gateways().find("eastwest")[0];
    assert_eq!(status.cluster, "cluster-1");
    assert_eq!(status.network, "network-1");
    assert_eq!(status.last_sent_version.as_deref(), Some("1"));
    assert_eq!(status.last_acked_version, None);
}
