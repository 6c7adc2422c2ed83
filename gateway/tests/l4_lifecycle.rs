//! Applying, swapping and refusing configurations; readiness; draining; admin listings.

mod l4_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gateway::GatewayOptions;
use gateway::admin::{ClusterView, ListenerView};
use l4_support::*;
use multicluster::proto::{self, Protocol, server::Routing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ECHO: &str = "tcp-echo.default.svc.cluster.local";

async fn echo_line(stream: &mut TcpStream, text: &str) -> String {
    stream
        .write_all(format!("{text}\n").as_bytes())
        .await
        .expect("the proxied connection accepts writes");
    read_line(stream).await.expect("the echo comes back")
}

#[tokio::test]
async fn ready_only_after_the_first_apply() {
    let gateway = start(test_options()).await;
    let addresses = *gateway.admin_addresses();
    assert_eq!(http_get(addresses.ready, "/healthz/ready").await.0, 503);
    assert!(!gateway.ready());
    let backend = Backend::tcp("echo").await;
    let echo = cluster_name(9000, "", ECHO);
    gateway
        .apply(config(
            "1",
            vec![tcp_listener(31400, &[(&echo, 0)])],
            vec![cluster(9000, "", ECHO, &[(backend.address, 1)])],
        ))
        .unwrap();
    assert_eq!(http_get(addresses.ready, "/healthz/ready").await.0, 200);
    assert!(gateway.ready());
    // The externally reachable ports expose nothing but their own endpoint.
    assert_eq!(http_get(addresses.ready, "/config_dump").await.0, 404);
    assert_eq!(http_get(addresses.stats, "/listeners").await.0, 404);
    let text = stats(&gateway).await;
    assert_eq!(
        metric(&text, "isthmus_config_version_info", &[("version", "1")]),
        1.0
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn swaps_keep_open_connections_and_removed_listeners_drain() {
    let v1 = Backend::tcp("v1").await;
    let v2 = Backend::tcp("v2").await;
    let options = GatewayOptions {
        drain_timeout: Duration::from_millis(1200),
        ..test_options()
    };
    let gateway = start(options).await;
    let c1 = cluster_name(9000, "v1", ECHO);
    let c2 = cluster_name(9000, "v2", ECHO);
    let clusters = || {
        vec![
            cluster(9000, "v1", ECHO, &[(v1.address, 1)]),
            cluster(9000, "v2", ECHO, &[(v2.address, 1)]),
        ]
    };
    gateway
        .apply(config(
            "1",
            vec![
                tcp_listener(31400, &[(&c1, 0)]),
                tcp_listener(31401, &[(&c1, 0)]),
            ],
            clusters(),
        ))
        .unwrap();
    let kept = gateway.listener_address(31400).unwrap();
    let removed = gateway.listener_address(31401).unwrap();
    let mut on_kept = TcpStream::connect(kept).await.unwrap();
    assert_eq!(read_line(&mut on_kept).await.unwrap(), "id=v1 sni=");
    let mut on_removed = TcpStream::connect(removed).await.unwrap();
    assert_eq!(read_line(&mut on_removed).await.unwrap(), "id=v1 sni=");

    // C1 of the conformance list: move the route to v2 and drop the second listener.
    gateway
        .apply(config(
            "2",
            vec![tcp_listener(31400, &[(&c2, 0)])],
            clusters(),
        ))
        .unwrap();
    assert_eq!(
        gateway.listener_address(31400),
        Some(kept),
        "the socket is kept"
    );
    assert_eq!(echo_line(&mut on_kept, "still v1").await, "still v1");
    assert_eq!(echo_line(&mut on_removed, "draining").await, "draining");
    assert_eq!(tcp_greeting(kept).await.unwrap(), "v2");
    assert!(
        eventually(|| async { TcpStream::connect(removed).await.is_err() }).await,
        "a removed listener stops accepting"
    );

    // The drain period ends: connections of the removed listener are closed, those of the
    // kept listener are not.
    let started = Instant::now();
    assert!(closed_by_peer(&mut on_removed).await);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(echo_line(&mut on_kept, "long lived").await, "long lived");
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_port_that_cannot_be_bound_refuses_the_whole_config() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let free_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let options = GatewayOptions {
        port_map: BTreeMap::from([(31401, taken_port), (31402, free_port)]),
        ..test_options()
    };
    let v1 = Backend::tcp("v1").await;
    let v2 = Backend::tcp("v2").await;
    let gateway = start(options).await;
    let c1 = cluster_name(9000, "v1", ECHO);
    let c2 = cluster_name(9000, "v2", ECHO);
    let clusters = || {
        vec![
            cluster(9000, "v1", ECHO, &[(v1.address, 1)]),
            cluster(9000, "v2", ECHO, &[(v2.address, 1)]),
        ]
    };
    gateway
        .apply(config(
            "1",
            vec![tcp_listener(31400, &[(&c1, 0)])],
            clusters(),
        ))
        .unwrap();
    let reasons = gateway
        .apply(config(
            "2",
            vec![
                tcp_listener(31400, &[(&c2, 0)]),
                tcp_listener(31401, &[(&c2, 0)]),
                tcp_listener(31402, &[(&c2, 0)]),
            ],
            clusters(),
        ))
        .unwrap_err();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("0.0.0.0_31401") && reasons[0].contains(&taken_port.to_string()),
        "{reasons:?}"
    );

    // Nothing changed: same version, same routes, and the listener that did bind was closed.
    assert_eq!(
        tcp_greeting(gateway.listener_address(31400).unwrap())
            .await
            .unwrap(),
        "v1"
    );
    assert_eq!(gateway.listener_address(31402), None);
    std::net::TcpListener::bind(("127.0.0.1", free_port)).expect("the fresh socket was closed");
    let (_, dump) = http_get(gateway.admin_addresses().admin, "/config_dump").await;
    let dump: serde_json::Value = serde_json::from_str(&dump).unwrap();
    assert_eq!(dump["version"], "1");
    let text = stats(&gateway).await;
    assert_eq!(
        metric(
            &text,
            "isthmus_config_applies_total",
            &[("result", "rejected")]
        ),
        1.0
    );
    assert_eq!(
        metric(&text, "isthmus_config_version_info", &[("version", "1")]),
        1.0
    );
    drop(taken);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_regex_that_does_not_compile_is_refused() {
    let gateway = start(test_options()).await;
    let mut bad = config("1", vec![], vec![]);
    bad.route_tables.push(proto::RouteTable {
        name: "http.80".into(),
        virtual_hosts: vec![proto::VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes: vec![proto::HttpRoute {
                name: "r".into(),
                matches: vec![proto::HttpMatch {
                    uri: Some(proto::StringMatch {
                        kind: Some(proto::string_match::Kind::Regex("/status/(4..".into())),
                    }),
                    ..Default::default()
                }],
                action: Some(proto::http_route::Action::DirectResponse(
                    proto::DirectResponse {
                        status: 200,
                        body: String::new(),
                    },
                )),
                ..Default::default()
            }],
        }],
    });
    assert!(multicluster::validate(&bad).is_empty());
    let reasons = gateway.apply(bad).unwrap_err();
    assert!(reasons[0].contains("/status/(4.."), "{reasons:?}");
    assert!(
        !gateway.ready(),
        "a refused first config leaves the gateway not ready"
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn http_servers_are_served_by_the_http_data_plane() {
    let gateway = start(test_options()).await;
    let mut with_http = config("1", vec![], vec![]);
    with_http.route_tables.push(proto::RouteTable {
        name: "http.80".into(),
        virtual_hosts: vec![],
    });
    with_http.listeners.push(proto::Listener {
        name: "0.0.0.0_80".into(),
        bind_address: "0.0.0.0".into(),
        port: 80,
        servers: vec![proto::Server {
            name: "http.80".into(),
            protocol: Protocol::Http as i32,
            hosts: vec!["httpbin.example.com".into()],
            tls: None,
            routing: Some(Routing::RouteTable("http.80".into())),
        }],
    });
    gateway.apply(with_http).unwrap();
    let mut client = TcpStream::connect(gateway.listener_address(80).unwrap())
        .await
        .unwrap();
    client
        .write_all(b"GET /status/418 HTTP/1.1\r\nHost: httpbin.example.com\r\n\r\n")
        .await
        .unwrap();
    // The route table has no virtual host: Envoy's bare 404, not a closed connection.
    let mut reply = vec![0u8; 12];
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"HTTP/1.1 404");
    assert_eq!(rejected(&gateway, "unsupported_server").await, 0.0);
    let (_, table) = http_get(gateway.admin_addresses().admin, "/listeners?format=table").await;
    assert!(table.contains("Route: http.80"), "{table}");
    assert!(!table.contains("not served"), "{table}");
    gateway.shutdown().await;
}

#[tokio::test]
async fn admin_lists_listeners_clusters_and_endpoints() {
    let backend = Backend::tcp("echo").await;
    let gateway = start(test_options()).await;
    let reviews = "reviews.default.svc.cluster.local";
    let echo = cluster_name(9000, "v1", ECHO);
    gateway
        .apply(config(
            "42",
            vec![
                auto_passthrough_listener(
                    15443,
                    &[(sni(9080, "", reviews), cluster_name(9080, "", reviews))],
                ),
                tcp_listener(31400, &[(&echo, 0)]),
            ],
            vec![
                cluster(9080, "", reviews, &[(backend.address, 1)]),
                cluster(9000, "v1", ECHO, &[(backend.address, 1)]),
            ],
        ))
        .unwrap();
    let admin = gateway.admin_addresses().admin;

    let (status, body) = http_get(admin, "/listeners").await;
    assert_eq!(status, 200);
    let listeners: Vec<ListenerView> = serde_json::from_str(&body).unwrap();
    assert_eq!(listeners.len(), 2);
    assert_eq!(
        listeners[0].bound,
        gateway.listener_address(15443).map(|a| a.to_string())
    );

    let (_, table) = http_get(admin, "/listeners?format=table").await;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["ADDRESS", "PORT", "MATCH", "DESTINATION"]);
    let expected_sni = sni(9080, "", reviews);
    let expected_cluster = cluster_name(9080, "", reviews);
    assert!(
        rows.contains(&vec![
            "0.0.0.0",
            "15443",
            "SNI:",
            expected_sni.as_str(),
            "Cluster:",
            expected_cluster.as_str(),
        ]),
        "{table}"
    );
    assert!(
        rows.contains(&vec!["0.0.0.0", "31400", "ALL", "Cluster:", echo.as_str()]),
        "{table}"
    );

    let (_, body) = http_get(admin, "/clusters").await;
    let clusters: Vec<ClusterView> = serde_json::from_str(&body).unwrap();
    let v1 = clusters.iter().find(|c| c.name == echo).unwrap();
    assert_eq!(
        (v1.port, v1.subset.as_str(), v1.kind.as_str()),
        (9000, "v1", "EDS")
    );
    let (_, table) = http_get(admin, "/clusters?format=table").await;
    assert!(table.starts_with("SERVICE FQDN"), "{table}");
    assert!(
        table.contains(&format!("{ECHO} 9000 v1     outbound  EDS")),
        "{table}"
    );

    let (_, table) = http_get(admin, "/endpoints?format=table").await;
    assert!(
        table.contains(&format!("{} HEALTHY OK", backend.address)),
        "{table}"
    );
    assert!(table.contains("network-1"), "{table}");

    let (_, dump) = http_get(admin, "/config_dump").await;
    let dump: serde_json::Value = serde_json::from_str(&dump).unwrap();
    assert_eq!(dump["version"], "42");
    assert_eq!(dump["listeners"].as_array().unwrap().len(), 2);
    gateway.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_waits_for_open_connections() {
    let backend = Backend::tcp("echo").await;
    let options = GatewayOptions {
        drain_timeout: Duration::from_secs(10),
        ..test_options()
    };
    let gateway = start(options).await;
    let echo = cluster_name(9000, "", ECHO);
    gateway
        .apply(config(
            "1",
            vec![tcp_listener(31400, &[(&echo, 0)])],
            vec![cluster(9000, "", ECHO, &[(backend.address, 1)])],
        ))
        .unwrap();
    let address = gateway.listener_address(31400).unwrap();
    let mut open = TcpStream::connect(address).await.unwrap();
    read_line(&mut open).await.unwrap();
    let started = Instant::now();
    let shutdown = tokio::spawn(gateway.shutdown());
    assert!(eventually(|| async { TcpStream::connect(address).await.is_err() }).await);
    assert_eq!(echo_line(&mut open, "still served").await, "still served");
    assert!(!shutdown.is_finished());
    open.shutdown().await.unwrap();
    assert_eq!(read_line(&mut open).await.unwrap(), "bye");
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown ends once the last connection closes")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_removed_listener_can_come_back_on_the_same_port_at_once() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let options = GatewayOptions {
        port_map: BTreeMap::from([(31400, port)]),
        ..test_options()
    };
    let backend = Backend::tcp("echo").await;
    let gateway = start(options).await;
    let echo = cluster_name(9000, "", ECHO);
    let with_listener = |version: &str| {
        config(
            version,
            vec![tcp_listener(31400, &[(&echo, 0)])],
            vec![cluster(9000, "", ECHO, &[(backend.address, 1)])],
        )
    };
    for round in 0..5 {
        gateway
            .apply(with_listener(&format!("on-{round}")))
            .unwrap();
        let address = gateway.listener_address(31400).unwrap();
        assert_eq!(address.port(), port);
        assert_eq!(tcp_greeting(address).await.unwrap(), "echo");
        gateway
            .apply(config(&format!("off-{round}"), vec![], vec![]))
            .unwrap();
        assert_eq!(gateway.listener_address(31400), None);
    }
    gateway.shutdown().await;
}
