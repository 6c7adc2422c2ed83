//! `/stats/prometheus` after known traffic: exact counter values under Istio's metric names
//! and labels (requests, TCP connections and bytes), and Isthmus's own for what Istio lacks
//! (rejected connections by reason and SNI, the configuration version served).
#![allow(clippy::unwrap_used)]

mod http_support;
mod l4_support;

use http_support::{
    Counting, cluster, cluster_name, config, curl, echo_backend, eventually, http_server, listener,
    route, start, stats, table, test_options, to, vhost,
};
use multicluster::proto::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HOST: &str = "reviews.default.svc.cluster.local";
const CLUSTER: &str = "outbound|9080||reviews.default.svc.cluster.local";
/// The gateway's own Istio cluster id (`source_cluster`) and the backend endpoint's
/// (`destination_cluster`): different, so a label carrying the wrong one fails.
const OWN_CLUSTER: &str = "cluster1";
const ENDPOINT_CLUSTER: &str = "cluster2";

fn in_cluster(mut cluster: multicluster::proto::Cluster, id: &str) -> multicluster::proto::Cluster {
    for endpoint in &mut cluster.endpoints {
        endpoint.cluster_id = id.to_owned();
    }
    cluster
}

/// The exact sample line `name{labels} value`, labels in exposition order.
fn sample(name: &str, labels: &[(&str, &str)], value: u64) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}} {value}", labels.join(","))
}

fn assert_sample(text: &str, expected: &str) {
    assert!(
        text.lines().any(|line| line == expected),
        "missing `{expected}` in:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_are_counted_with_istio_labels() {
    let backend = Counting::start("reviews", 200).await;
    let mut options = test_options();
    options.cluster = Some(OWN_CLUSTER.into());
    let gateway = start(options).await;
    gateway
        .apply(config(
            "v3",
            vec![listener(
                80,
                vec![http_server("http.80", Protocol::Http, &["*"], "http.80")],
            )],
            vec![in_cluster(
                cluster(9080, "", HOST, &[backend.address]),
                ENDPOINT_CLUSTER,
            )],
            vec![table(
                "http.80",
                vec![vhost(
                    "reviews.example",
                    80,
                    vec![route("r", vec![], to(&cluster_name(9080, "", HOST)))],
                )],
            )],
            vec![],
        ))
        .unwrap();
    let address = gateway.listener_address(80).unwrap();
    for (host, times, status) in [("reviews.example", 3, 200), ("other.example", 2, 404)] {
        for _ in 0..times {
            let reply = curl(&[
                "-H",
                &format!("Host: {host}"),
                &format!("http://{address}/"),
            ])
            .await;
            assert_eq!(reply.status, status, "{reply:?}");
        }
    }
    let text = stats(&gateway).await;
    let labels = |service, destination, upstream, code, flags| {
        [
            ("reporter", "source"),
            ("source_cluster", OWN_CLUSTER),
            ("destination_service", service),
            ("destination_cluster", destination),
            ("upstream_cluster", upstream),
            ("request_protocol", "http"),
            ("response_code", code),
            ("response_flags", flags),
            ("connection_security_policy", "none"),
            ("listener", "0.0.0.0_80"),
        ]
    };
    let routed = labels(HOST, ENDPOINT_CLUSTER, CLUSTER, "200", "-");
    let no_route = labels("unknown", "unknown", "unknown", "404", "NR");
    for (name, labels, value) in [
        ("istio_requests_total", &routed, 3),
        ("istio_requests_total", &no_route, 2),
        ("istio_request_duration_milliseconds_count", &routed, 3),
        ("istio_request_duration_milliseconds_count", &no_route, 2),
    ] {
        assert_sample(&text, &sample(name, labels, value));
    }
    assert_sample(&text, "isthmus_config_version_info{version=\"v3\"} 1");
    assert_sample(&text, "isthmus_config_applies_total{result=\"ok\"} 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_connections_bytes_and_rejected_snis_are_counted_exactly() {
    let echo = echo_backend().await;
    let sni = l4_support::sni(9080, "", HOST);
    let mut options = l4_support::test_options();
    options.cluster = Some(OWN_CLUSTER.into());
    let gateway = l4_support::start(options).await;
    gateway
        .apply(l4_support::config(
            "v7",
            vec![l4_support::auto_passthrough_listener(
                15443,
                &[(sni.clone(), cluster_name(9080, "", HOST))],
            )],
            vec![in_cluster(
                l4_support::cluster(9080, "", HOST, &[(echo, 1)]),
                ENDPOINT_CLUSTER,
            )],
        ))
        .unwrap();
    let address = gateway.listener_address(15443).unwrap();

    // Two forwarded connections, each `hello + payload` one way and echoed back.
    let hello = l4_support::client_hello(Some(&sni));
    let payload = b"opaque mesh bytes that the gateway never decrypts";
    let per_connection = (hello.len() + payload.len()) as u64;
    for _ in 0..2 {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(&hello).await.unwrap();
        stream.write_all(payload).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut echoed = Vec::new();
        stream.read_to_end(&mut echoed).await.unwrap();
        assert_eq!(echoed.len() as u64, per_connection);
    }
    // Refused: an SNI the gateway does not route, and a hello without SNI.
    for hello in [
        l4_support::client_hello(Some("evil.example")),
        l4_support::client_hello(None),
    ] {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(&hello).await.unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "a refused connection gets no bytes");
    }

    let tcp = |name: &str, value: u64| {
        sample(
            name,
            &[
                ("reporter", "source"),
                ("source_cluster", OWN_CLUSTER),
                ("destination_service", HOST),
                ("destination_cluster", ENDPOINT_CLUSTER),
                ("upstream_cluster", CLUSTER),
                ("request_protocol", "tcp"),
                ("connection_security_policy", "mutual_tls"),
                ("listener", "0.0.0.0_15443"),
            ],
            value,
        )
    };
    let closed = tcp("istio_tcp_connections_closed_total", 2);
    assert!(
        eventually(|| async { stats(&gateway).await.lines().any(|l| l == closed) }).await,
        "both connections are counted closed: {}",
        stats(&gateway).await
    );
    let text = stats(&gateway).await;
    for expected in [
        tcp("istio_tcp_connections_opened_total", 2),
        tcp("istio_tcp_received_bytes_total", 2 * per_connection),
        tcp("istio_tcp_sent_bytes_total", 2 * per_connection),
        sample(
            "isthmus_rejected_connections_total",
            &[
                ("source_cluster", OWN_CLUSTER),
                ("listener", "0.0.0.0_15443"),
                ("reason", "unknown_sni"),
                ("sni", "evil.example"),
            ],
            1,
        ),
        sample(
            "isthmus_rejected_connections_total",
            &[
                ("source_cluster", OWN_CLUSTER),
                ("listener", "0.0.0.0_15443"),
                ("reason", "no_sni"),
                ("sni", ""),
            ],
            1,
        ),
        "isthmus_config_version_info{version=\"v7\"} 1".to_owned(),
    ] {
        assert_sample(&text, &expected);
    }
}
