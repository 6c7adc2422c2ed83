//! Conformance A1–A5 at the gateway level: plaintext HTTP servers, host and route choice,
//! h2c, and the answers for unrouted requests and services without endpoints. httpbin under
//! gunicorn is the backend, curl the client.
// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod http_support;

use http_support::*;
use multicluster::proto::Protocol;

const HTTPBIN: &str = "httpbin.default.svc.cluster.local";

#[tokio::test]
async fn a1_prefix_routes_to_httpbin_and_unrouted_paths_get_an_empty_404() {
    let httpbin = Httpbin::start().await;
    let gateway = start(test_options()).await;
    let upstream = cluster_name(8000, "", HTTPBIN);
    let routes = vec![route(
        "httpbin",
        vec![
            uri_prefix("/status"),
            uri_prefix("/delay"),
            uri_prefix("/headers"),
        ],
        to(&upstream),
    )];
    gateway
        .apply(config(
            "1",
            vec![listener(
                80,
                vec![http_server(
                    "http.80",
                    Protocol::Http,
                    &["httpbin.example.com"],
                    "http.80",
                )],
            )],
            vec![cluster(8000, "", HTTPBIN, &[httpbin.address])],
            vec![table(
                "http.80",
                vec![vhost("httpbin.example.com", 80, routes)],
            )],
            vec![],
        ))
        .unwrap();
    let address = gateway.listener_address(80).unwrap();
    let host = "httpbin.example.com";
    let teapot = curl(&[
        "--resolve",
        &resolve(host, address),
        &url("http", host, address, "/status/418"),
    ])
    .await;
    assert_eq!(teapot.status, 418, "{teapot:?}");
    assert!(teapot.body.contains("teapot"), "{}", teapot.body);
    assert_eq!(teapot.header("server"), Some("isthmus"));
    assert!(
        teapot
            .header("x-envoy-upstream-service-time")
            .is_some_and(|v| v.parse::<u64>().is_ok())
    );

    let unrouted = curl(&[
        "--resolve",
        &resolve(host, address),
        &url("http", host, address, "/ip"),
    ])
    .await;
    assert_eq!(unrouted.status, 404);
    assert_eq!(unrouted.body, "");
    let other_host = curl(&[
        "-H",
        "Host: other.example.com",
        &format!("http://{address}/status/418"),
    ])
    .await;
    assert_eq!(other_host.status, 404);

    let text = stats(&gateway).await;
    assert_eq!(
        metric_sum(
            &text,
            "istio_requests_total",
            &[("response_code", "418"), ("destination_service", HTTPBIN)]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric_sum(
            &text,
            "istio_requests_total",
            &[("response_code", "404"), ("response_flags", "NR")]
        ),
        2.0
    );
    assert!(
        metric_sum(
            &text,
            "istio_request_duration_milliseconds_count",
            &[("response_code", "418")]
        ) >= 1.0
    );
}

/// A2: one server with two hosts, or two servers with one host each, on one port: both
/// forms are the same listener and route table; the wrong host/path pairing is a 404.
#[tokio::test]
async fn a2_two_hosts_on_one_port_in_either_form() {
    let a = Counting::start("service-a", 200).await;
    let b = Counting::start("service-b", 200).await;
    let gateway = start(test_options()).await;
    let (ca, cb) = (
        cluster_name(80, "", "a.default.svc.cluster.local"),
        cluster_name(80, "", "b.default.svc.cluster.local"),
    );
    let tables = vec![table(
        "http.80",
        vec![
            vhost(
                "a.example.com",
                80,
                vec![route("a", vec![uri_prefix("/status")], to(&ca))],
            ),
            vhost(
                "b.example.com",
                80,
                vec![route("b", vec![uri_prefix("/headers")], to(&cb))],
            ),
        ],
    )];
    let clusters = vec![
        cluster(80, "", "a.default.svc.cluster.local", &[a.address]),
        cluster(80, "", "b.default.svc.cluster.local", &[b.address]),
    ];
    let one_server = vec![http_server(
        "http.80",
        Protocol::Http,
        &["a.example.com", "b.example.com"],
        "http.80",
    )];
    let two_servers = vec![
        http_server("http-a", Protocol::Http, &["a.example.com"], "http.80"),
        http_server("http-b", Protocol::Http, &["b.example.com"], "http.80"),
    ];
    for (version, servers) in [("1", one_server), ("2", two_servers)] {
        gateway
            .apply(config(
                version,
                vec![listener(80, servers)],
                clusters.clone(),
                tables.clone(),
                vec![],
            ))
            .unwrap();
        let address = gateway.listener_address(80).unwrap();
        let get = |host: &'static str, path: &'static str| async move {
            curl(&[
                "--resolve",
                &resolve(host, address),
                &url("http", host, address, path),
            ])
            .await
        };
        let reply = get("a.example.com", "/status/200").await;
        assert_eq!(reply.status, 200);
        assert!(
            reply.body.starts_with("service-a GET /status/200"),
            "{}",
            reply.body
        );
        let reply = get("b.example.com", "/headers").await;
        assert!(
            reply.body.starts_with("service-b GET /headers"),
            "{}",
            reply.body
        );
        assert_eq!(get("a.example.com", "/headers").await.status, 404);
        assert_eq!(get("b.example.com", "/status/200").await.status, 404);
    }
}

/// A3: host intersection is computed by discovery into the route table's domains; the
/// gateway's part is choosing the virtual host: exact, then `*.suffix`, then `*`.
#[tokio::test]
async fn a3_virtual_host_choice_follows_the_intersected_domains() {
    let backend = Counting::start("bookinfo", 200).await;
    let gateway = start(test_options()).await;
    let upstream = cluster_name(9080, "", "productpage.default.svc.cluster.local");
    let all = || vec![route("all", vec![], to(&upstream))];
    // Gateway `*.com` ∩ VirtualService `bookinfo.com` → bookinfo.com only; Gateway
    // `bookinfo.com`,`bookinfo.demo` ∩ VirtualService `*` → both names.
    gateway
        .apply(config(
            "1",
            vec![listener(
                80,
                vec![http_server(
                    "http.80",
                    Protocol::Http,
                    &["*.com", "bookinfo.demo"],
                    "http.80",
                )],
            )],
            vec![cluster(
                9080,
                "",
                "productpage.default.svc.cluster.local",
                &[backend.address],
            )],
            vec![table(
                "http.80",
                vec![
                    vhost("bookinfo.com", 80, all()),
                    vhost("bookinfo.demo", 80, all()),
                ],
            )],
            vec![],
        ))
        .unwrap();
    let address = gateway.listener_address(80).unwrap();
    for (host, status) in [
        ("bookinfo.com", 200),
        ("BookInfo.Com", 200),
        ("bookinfo.demo", 200),
        ("mypage.com", 404),
    ] {
        let reply = curl(&[
            "-H",
            &format!("Host: {host}"),
            &format!("http://{address}/productpage"),
        ])
        .await;
        assert_eq!(reply.status, status, "{host}");
    }
    // `*` ∩ `*`: anything routes.
    gateway
        .apply(config(
            "2",
            vec![listener(
                80,
                vec![http_server("http.80", Protocol::Http, &["*"], "http.80")],
            )],
            vec![cluster(
                9080,
                "",
                "productpage.default.svc.cluster.local",
                &[backend.address],
            )],
            vec![table("http.80", vec![vhost("*", 80, all())])],
            vec![],
        ))
        .unwrap();
    let reply = curl(&[
        "-H",
        "Host: anything.example.org",
        &format!("http://{address}/"),
    ])
    .await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.contains("host=anything.example.org"),
        "{}",
        reply.body
    );
}

/// A4: a destination that resolved to no endpoints (short name from istio-system) answers
/// 503 "no healthy upstream"; the fully qualified one routes.
#[tokio::test]
async fn a4_service_without_endpoints_is_503_no_healthy_upstream() {
    let backend = Counting::start("productpage", 200).await;
    let gateway = start(test_options()).await;
    let empty = cluster_name(9080, "", "productpage.istio-system.svc.cluster.local");
    let real = cluster_name(9080, "", "productpage.istio.svc.cluster.local");
    gateway
        .apply(config(
            "1",
            vec![listener(
                80,
                vec![http_server("http.80", Protocol::Http, &["*"], "http.80")],
            )],
            vec![
                cluster(9080, "", "productpage.istio-system.svc.cluster.local", &[]),
                cluster(
                    9080,
                    "",
                    "productpage.istio.svc.cluster.local",
                    &[backend.address],
                ),
            ],
            vec![table(
                "http.80",
                vec![vhost(
                    "*",
                    80,
                    vec![
                        route("short", vec![uri_prefix("/short")], to(&empty)),
                        route("fqdn", vec![], to(&real)),
                    ],
                )],
            )],
            vec![],
        ))
        .unwrap();
    let address = gateway.listener_address(80).unwrap();
    let reply = curl(&[&format!("http://{address}/short")]).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.body, "no healthy upstream");
    let reply = curl(&[&format!("http://{address}/productpage")]).await;
    assert_eq!(reply.status, 200);
    let text = stats(&gateway).await;
    assert_eq!(
        metric_sum(
            &text,
            "istio_requests_total",
            &[("response_code", "503"), ("response_flags", "UH")]
        ),
        1.0
    );
}

/// A5: h2c with prior knowledge on an HTTP2 server and on a GRPC server, routed by the same
/// rules; h1 on the same port still works.
#[tokio::test]
async fn a5_h2c_prior_knowledge_on_http2_and_grpc_servers() {
    let httpbin = Httpbin::start().await;
    let gateway = start(test_options()).await;
    let upstream = cluster_name(8000, "", HTTPBIN);
    let routes = || vec![route("status", vec![uri_prefix("/status")], to(&upstream))];
    gateway
        .apply(config(
            "1",
            vec![
                listener(
                    8080,
                    vec![http_server(
                        "http2.8080",
                        Protocol::Http2,
                        &["*"],
                        "http.8080",
                    )],
                ),
                listener(
                    9090,
                    vec![http_server(
                        "grpc.9090",
                        Protocol::Grpc,
                        &["*"],
                        "http.9090",
                    )],
                ),
            ],
            vec![cluster(8000, "", HTTPBIN, &[httpbin.address])],
            vec![
                table("http.8080", vec![vhost("*", 8080, routes())]),
                table("http.9090", vec![vhost("*", 9090, routes())]),
            ],
            vec![],
        ))
        .unwrap();
    for port in [8080, 9090] {
        let address = gateway.listener_address(port).unwrap();
        let reply = curl(&[
            "--http2-prior-knowledge",
            "-H",
            "Host: h.example.com",
            &format!("http://{address}/status/418"),
        ])
        .await;
        assert_eq!(reply.status, 418, "{reply:?}");
        assert!(reply.headers.is_empty() || reply.header("server") == Some("isthmus"));
        let reply = curl(&["--http2-prior-knowledge", &format!("http://{address}/ip")]).await;
        assert_eq!(reply.status, 404);
        let reply = curl(&["--http1.1", &format!("http://{address}/status/418")]).await;
        assert_eq!(reply.status, 418);
    }
    let text = stats(&gateway).await;
    assert_eq!(
        metric_sum(&text, "istio_requests_total", &[("response_code", "418")]),
        4.0
    );
}

/// A route change reaches requests on connections that were already open (as Envoy applies
/// RDS updates), while the connection itself stays up.
#[tokio::test]
async fn route_updates_apply_to_open_keep_alive_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = Counting::start("service-a", 200).await;
    let b = Counting::start("service-b", 200).await;
    let gateway = start(test_options()).await;
    let apply = |version: &str, backend: &str| {
        config(
            version,
            vec![listener(
                80,
                vec![http_server("http.80", Protocol::Http, &["*"], "http.80")],
            )],
            vec![
                cluster(80, "", "a.default.svc.cluster.local", &[a.address]),
                cluster(80, "", "b.default.svc.cluster.local", &[b.address]),
            ],
            vec![table(
                "http.80",
                vec![vhost(
                    "*",
                    80,
                    vec![route("all", vec![], to(&cluster_name(80, "", backend)))],
                )],
            )],
            vec![],
        )
    };
    gateway
        .apply(apply("1", "a.default.svc.cluster.local"))
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(gateway.listener_address(80).unwrap())
        .await
        .unwrap();
    let ask = async move |stream: &mut tokio::net::TcpStream| {
        stream
            .write_all(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let mut chunk = [0u8; 1024];
        while !String::from_utf8_lossy(&reply).contains("host=h\n") {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed");
            reply.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&reply).to_string()
    };
    assert!(ask(&mut stream).await.contains("service-a GET /x"));
    gateway
        .apply(apply("2", "b.default.svc.cluster.local"))
        .unwrap();
    assert!(ask(&mut stream).await.contains("service-b GET /x"));
    assert_eq!((a.count(), b.count()), (1, 1));
}
