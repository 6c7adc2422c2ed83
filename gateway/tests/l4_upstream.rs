//! Upstream behaviour end to end: weighted round robin, failover to live endpoints, passive
//! health ejection, and TCP routes.

mod l4_support;

use std::collections::HashMap;

use l4_support::*;
use multicluster::proto;

const ECHO: &str = "tcp-echo.default.svc.cluster.local";

#[tokio::test]
async fn smooth_weighted_round_robin_splits_400_connections_exactly() {
    let light = Backend::tcp("light").await;
    let heavy = Backend::tcp("heavy").await;
    let gateway = start(test_options()).await;
    let echo = cluster_name(9000, "", ECHO);
    gateway
        .apply(config(
            "1",
            vec![tcp_listener(31400, &[(&echo, 0)])],
            vec![cluster(
                9000,
                "",
                ECHO,
                &[(light.address, 1), (heavy.address, 3)],
            )],
        ))
        .unwrap();
    let address = gateway.listener_address(31400).unwrap();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..400 {
        *counts
            .entry(tcp_greeting(address).await.unwrap())
            .or_default() += 1;
    }
    assert_eq!(counts.get("light"), Some(&100), "{counts:?}");
    assert_eq!(counts.get("heavy"), Some(&300), "{counts:?}");
    assert_eq!((light.accepted(), heavy.accepted()), (100, 300));

    let labels = [
        ("upstream_cluster", echo.as_str()),
        ("connection_security_policy", "unknown"),
        ("request_protocol", "tcp"),
    ];
    let text = stats(&gateway).await;
    assert_eq!(
        metric(&text, "istio_tcp_connections_opened_total", &labels),
        400.0
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_stopped_backend_is_skipped_and_then_ejected() {
    let live = Backend::tcp("live").await;
    let doomed = Backend::tcp("doomed").await;
    let doomed_address = doomed.address;
    let gateway = start(test_options()).await;
    let echo = cluster_name(9000, "", ECHO);
    let mut echo_cluster = cluster(9000, "", ECHO, &[(live.address, 1), (doomed.address, 1)]);
    echo_cluster.outlier_detection = Some(proto::OutlierDetection {
        consecutive_errors: 2,
        interval_ms: 0,
        base_ejection_time_ms: 60_000,
        max_ejection_percent: 50,
    });
    gateway
        .apply(config(
            "1",
            vec![tcp_listener(31400, &[(&echo, 0)])],
            vec![echo_cluster],
        ))
        .unwrap();
    let address = gateway.listener_address(31400).unwrap();
    let mut before = Vec::new();
    for _ in 0..4 {
        before.push(tcp_greeting(address).await.unwrap());
    }
    assert!(before.contains(&"doomed".to_owned()), "{before:?}");

    doomed.stop().await;
    // Every new connection still succeeds: a refused connect moves on to the live endpoint.
    for _ in 0..10 {
        assert_eq!(tcp_greeting(address).await.unwrap(), "live");
    }
    let text = stats(&gateway).await;
    assert_eq!(
        metric(
            &text,
            "isthmus_upstream_ejections_total",
            &[("cluster", &echo)]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "isthmus_rejected_connections_total", &[]),
        0.0,
        "no client may see the dead endpoint"
    );
    let (status, body) = http_get(gateway.admin_addresses().admin, "/endpoints").await;
    assert_eq!(status, 200);
    let endpoints: Vec<gateway::admin::EndpointView> = serde_json::from_str(&body).unwrap();
    let doomed_view = endpoints
        .iter()
        .find(|e| e.endpoint == doomed_address.to_string())
        .unwrap();
    assert_eq!(doomed_view.outlier_check, "FAILED");
    let live_view = endpoints
        .iter()
        .find(|e| e.endpoint == live.address.to_string())
        .unwrap();
    assert_eq!(live_view.outlier_check, "OK");
    gateway.shutdown().await;
}

#[tokio::test]
async fn all_endpoints_down_is_connect_failed_and_none_is_no_healthy_endpoint() {
    let gone = Backend::tcp("gone").await;
    let gone_address = gone.address;
    gone.stop().await;
    let gateway = start(test_options()).await;
    let dead = cluster_name(9000, "", ECHO);
    let empty = cluster_name(9001, "", ECHO);
    let mut unhealthy = cluster(9001, "", ECHO, &[(gone_address, 1)]);
    unhealthy.endpoints[0].health = proto::Health::Unhealthy as i32;
    gateway
        .apply(config(
            "1",
            vec![
                tcp_listener(31400, &[(&dead, 0)]),
                tcp_listener(31401, &[(&empty, 0)]),
            ],
            vec![cluster(9000, "", ECHO, &[(gone_address, 1)]), unhealthy],
        ))
        .unwrap();
    let mut to_dead = tokio::net::TcpStream::connect(gateway.listener_address(31400).unwrap())
        .await
        .unwrap();
    assert!(closed_by_peer(&mut to_dead).await);
    let mut to_empty = tokio::net::TcpStream::connect(gateway.listener_address(31401).unwrap())
        .await
        .unwrap();
    assert!(closed_by_peer(&mut to_empty).await);
    assert!(eventually(|| async { rejected(&gateway, "connect_failed").await == 1.0 }).await);
    assert!(eventually(|| async { rejected(&gateway, "no_healthy_endpoint").await == 1.0 }).await);
    gateway.shutdown().await;
}

#[tokio::test]
async fn tcp_routes_split_by_weight_across_clusters() {
    let v1 = Backend::tcp("v1").await;
    let v2 = Backend::tcp("v2").await;
    let gateway = start(test_options()).await;
    let c1 = cluster_name(9000, "v1", ECHO);
    let c2 = cluster_name(9000, "v2", ECHO);
    gateway
        .apply(config(
            "1",
            vec![tcp_listener(31400, &[(&c1, 80), (&c2, 20)])],
            vec![
                cluster(9000, "v1", ECHO, &[(v1.address, 1)]),
                cluster(9000, "v2", ECHO, &[(v2.address, 1)]),
            ],
        ))
        .unwrap();
    let address = gateway.listener_address(31400).unwrap();
    let mut v1_count = 0;
    for _ in 0..200 {
        if tcp_greeting(address).await.unwrap() == "v1" {
            v1_count += 1;
        }
    }
    // Weighted random: 160 expected; the bounds are over 5 standard deviations wide.
    assert!((130..=190).contains(&v1_count), "{v1_count}");
    gateway.shutdown().await;
}
