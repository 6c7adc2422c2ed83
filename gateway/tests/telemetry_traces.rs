//! Traces through a real OTLP/gRPC receiver: a request enters an ingress gateway, crosses to
//! another network's east-west gateway (AUTO_PASSTHROUGH, ISTIO_MUTUAL from the ingress) and
//! reaches a mesh mTLS backend. The ingress span continues the caller's W3C or B3 context and
//! is the parent the backend sees; the east-west connection is a trace of its own.
#![allow(clippy::unwrap_used)]

mod http_support;
mod l4_support;
mod telemetry_support;

use http_support::{
    Certs, cluster, cluster_name, config, curl, eventually, http_server, listener, mesh_server,
    route, start, stats, table, test_options, to, vhost,
};
use multicluster::proto::{self, Protocol, TlsMode};
use serde_json::Value;
use telemetry_support::{OtlpReceiver, attribute, recording_backend};

const HOST: &str = "reviews.default.svc.cluster.local";

fn span_with_trace<'a>(spans: &'a [Value], service: &str, trace: &str) -> Option<&'a Value> {
    spans.iter().find(|s| {
        s["service"] == service && s["trace_id"].as_str().is_some_and(|t| t.ends_with(trace))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_link_caller_ingress_and_backend_and_the_east_west_connection_is_its_own_trace() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let receiver = OtlpReceiver::start().await;
    let certs = Certs::new("cluster.local");
    let own = certs.mesh("ingress", "istio-system", "istio-ingressgateway");
    let peer = certs.mesh("reviews", "default", "reviews");
    let (backend, seen) = recording_backend(mesh_server(&certs, &peer)).await;

    // network-2's east-west gateway fronts the backend.
    let sni = format!("outbound_.9080_._.{HOST}");
    let mut east_west_options = l4_support::test_options();
    east_west_options.network = Some("network-1".into());
    east_west_options.telemetry = Some(receiver.options("eastwest", 1.0));
    let east_west = start(east_west_options).await;
    east_west
        .apply(l4_support::config(
            "1",
            vec![l4_support::auto_passthrough_listener(
                15443,
                &[(sni.clone(), cluster_name(9080, "", HOST))],
            )],
            vec![l4_support::cluster(9080, "", HOST, &[(backend, 1)])],
        ))
        .unwrap();
    let east_west_address = east_west.listener_address(15443).unwrap();

    // The ingress reaches it with its mesh identity and Istio's SNI.
    let mut options = test_options();
    options.mesh_identity = Some(gateway::MeshIdentity {
        cert_chain: own.cert.clone().into(),
        private_key: own.key.clone().into(),
        roots: certs.root().into(),
    });
    options.telemetry = Some(receiver.options("ingress", 1.0));
    let ingress = start(options).await;
    let mut reviews = cluster(9080, "", HOST, &[east_west_address]);
    reviews.tls = Some(proto::UpstreamTls {
        mode: TlsMode::IstioMutual as i32,
        ..Default::default()
    });
    ingress
        .apply(config(
            "1",
            vec![listener(
                80,
                vec![http_server("http.80", Protocol::Http, &["*"], "http.80")],
            )],
            vec![reviews],
            vec![table(
                "http.80",
                vec![vhost(
                    "*",
                    80,
                    vec![route(
                        "reviews-route",
                        vec![],
                        to(&cluster_name(9080, "", HOST)),
                    )],
                )],
            )],
            vec![],
        ))
        .unwrap();
    let url = format!("http://{}/reviews/1", ingress.listener_address(80).unwrap());

    let w3c_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let b3_trace = "80f198ee56343ba864fe8b2a57d3eff7";
    let b3_multi_trace = "463ac35c9f6413ad"; // 64-bit, as older Zipkin clients send
    let unsampled_trace = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "00f067aa0ba902b7";
    for header in [
        vec![format!("traceparent: 00-{w3c_trace}-{caller_span}-01")],
        vec![format!("b3: {b3_trace}-{caller_span}-1")],
        vec![
            format!("X-B3-TraceId: {b3_multi_trace}"),
            format!("X-B3-SpanId: {caller_span}"),
            "X-B3-Sampled: 1".to_owned(),
        ],
        vec![format!(
            "traceparent: 00-{unsampled_trace}-{caller_span}-00"
        )],
    ] {
        let mut args: Vec<String> = header
            .iter()
            .flat_map(|h| ["-H".to_owned(), h.clone()])
            .collect();
        args.push(url.clone());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let reply = curl(&args).await;
        assert_eq!(reply.status, 200, "{header:?}: {reply:?}");
    }
    // No context at all, over HTTP/2: a new trace starts at the ingress.
    let reply = curl(&["--http2-prior-knowledge", &url]).await;
    assert_eq!(reply.status, 200, "{reply:?}");

    // The ingress's pooled upstream connection closes with the ingress; then the east-west
    // gateway records its connection.
    ingress.shutdown().await;
    assert!(
        eventually(|| async {
            l4_support::metric(
                &stats(&east_west).await,
                "istio_tcp_connections_closed_total",
                &[],
            ) >= 1.0
        })
        .await,
        "the east-west connection did not close"
    );
    let counted = stats(&east_west).await;
    let counted = |name| l4_support::metric(&counted, name, &[]) as u64;
    let (counted_received, counted_sent) = (
        counted("istio_tcp_received_bytes_total"),
        counted("istio_tcp_sent_bytes_total"),
    );
    east_west.shutdown().await;
    let spans = receiver
        .until("4 ingress spans and an east-west span", |spans| {
            spans.iter().filter(|s| s["service"] == "ingress").count() >= 4
                && spans.iter().any(|s| s["service"] == "eastwest")
        })
        .await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5, "{seen:?}");
    let header = |i: usize, name: &str| {
        seen[i]
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };

    // W3C: the ingress span is the caller's child, and the backend's parent.
    let w3c =
        span_with_trace(&spans, "ingress", w3c_trace).expect("a span continuing the traceparent");
    assert_eq!(w3c["parent_span_id"], caller_span);
    assert_eq!(w3c["kind"], "SERVER");
    let w3c_id = w3c["span_id"].as_str().unwrap();
    assert_eq!(
        header(0, "traceparent"),
        format!("00-{w3c_trace}-{w3c_id}-01")
    );
    for (key, value) in [
        ("http.method", "GET"),
        ("http.status_code", "200"),
        ("http.protocol", "HTTP/1.1"),
        ("route_name", "reviews-route"),
        ("upstream_cluster", &cluster_name(9080, "", HOST)),
        ("upstream_address", &east_west_address.to_string()),
        ("response_flags", "-"),
    ] {
        assert_eq!(attribute(w3c, key), value, "{key} in {w3c:#}");
    }

    // B3 single: continued, and passed on as b3 (and traceparent).
    let single = span_with_trace(&spans, "ingress", b3_trace).expect("a span continuing b3");
    assert_eq!(single["parent_span_id"], caller_span);
    let single_id = single["span_id"].as_str().unwrap();
    assert_eq!(header(1, "b3"), format!("{b3_trace}-{single_id}-1"));
    assert_eq!(
        header(1, "traceparent"),
        format!("00-{b3_trace}-{single_id}-01")
    );

    // B3 multi with a 64-bit trace id.
    let multi =
        span_with_trace(&spans, "ingress", b3_multi_trace).expect("a span continuing X-B3-*");
    assert_eq!(multi["trace_id"], format!("{b3_multi_trace:0>32}"));
    assert_eq!(multi["parent_span_id"], caller_span);
    let multi_id = multi["span_id"].as_str().unwrap();
    assert_eq!(header(2, "x-b3-traceid"), b3_multi_trace);
    assert_eq!(header(2, "x-b3-spanid"), multi_id);
    assert_eq!(header(2, "x-b3-parentspanid"), caller_span);
    assert_eq!(header(2, "x-b3-sampled"), "1");

    // The caller's "not sampled" is obeyed: no span, but the context still goes on.
    assert!(span_with_trace(&spans, "ingress", unsampled_trace).is_none());
    let unsampled = header(3, "traceparent");
    assert!(
        unsampled.starts_with(&format!("00-{unsampled_trace}-")) && unsampled.ends_with("-00"),
        "{unsampled}"
    );
    assert!(
        !unsampled.contains(caller_span),
        "the gateway's own span id goes upstream"
    );

    // A new root at the ingress for the request without context.
    let root = spans
        .iter()
        .find(|s| s["service"] == "ingress" && s["parent_span_id"] == "")
        .expect("a root span for the request without context");
    assert_eq!(attribute(root, "http.protocol"), "HTTP/2");
    let root_trace = root["trace_id"].as_str().unwrap();
    assert_eq!(
        header(4, "traceparent"),
        format!("00-{root_trace}-{}-01", root["span_id"].as_str().unwrap())
    );

    // The east-west gateway cannot see the headers: its connection is a trace of its own.
    let east_west_spans: Vec<&Value> = spans
        .iter()
        .filter(|s| s["service"] == "eastwest")
        .collect();
    let mut received = 0;
    let mut sent = 0;
    for connection in &east_west_spans {
        assert_eq!(connection["parent_span_id"], "");
        assert_eq!(connection["name"], "passthrough");
        for trace in [w3c_trace, b3_trace, root_trace] {
            assert!(!connection["trace_id"].as_str().unwrap().ends_with(trace));
        }
        for (key, value) in [
            ("tls.sni", sni.as_str()),
            ("upstream_cluster", &cluster_name(9080, "", HOST)),
            ("upstream_address", &backend.to_string()),
            ("connection_security_policy", "mutual_tls"),
            ("close_reason", "eof"),
        ] {
            assert_eq!(attribute(connection, key), value, "{key} in {connection:#}");
        }
        received += attribute(connection, "bytes_received")
            .parse::<u64>()
            .unwrap();
        sent += attribute(connection, "bytes_sent").parse::<u64>().unwrap();
    }
    // Five requests and responses inside mesh TLS, handshakes included.
    assert!(
        received > 1000 && sent > 1000,
        "received {received}, sent {sent}"
    );
    // The spans count exactly what the metrics count, the replayed ClientHello included.
    assert_eq!((received, sent), (counted_received, counted_sent));
}
