//! HTTP/3 beside HTTPS (conformance E1), driven by aioquic as an independent client: GET,
//! a 10 MiB upload and download streamed through, a route miss, `alt-svc` over HTTP/2 only
//! where a UDP twin exists, and the QUIC listener in the admin listing.
// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod h3_support;
mod http_support;

use std::net::SocketAddr;

use h3_support::*;
use http_support::*;
use multicluster::proto::{self, Protocol, TlsMode};

const HOST: &str = "httpbin.quic-corp.com";
const BACKEND: &str = "httpbin.httpbin.svc.cluster.local";
const TABLE: &str = "https.443.https.quic-gateway.default";
const TEN_MIB: usize = 10 * 1024 * 1024;

fn e1_config(
    backend: SocketAddr,
    mode: TlsMode,
    ca: &str,
    server_cert: &Issued,
) -> proto::GatewayConfig {
    let cluster_name = cluster_name(8000, "", BACKEND);
    let routes = vec![
        route("hello", vec![uri_prefix("/hello")], to(&cluster_name)),
        route("upload", vec![uri_prefix("/upload")], to(&cluster_name)),
        route("download", vec![uri_prefix("/download")], to(&cluster_name)),
    ];
    config(
        "1",
        vec![
            listener(
                443,
                vec![https_server(
                    TABLE,
                    &[HOST],
                    server_tls(mode, "quic-cred"),
                    TABLE,
                )],
            ),
            listener(
                80,
                vec![http_server("http.80", Protocol::Http, &[HOST], "http.80")],
            ),
        ],
        vec![cluster(8000, "", BACKEND, &[backend])],
        vec![
            table(TABLE, vec![vhost(HOST, 443, routes.clone())]),
            table("http.80", vec![vhost(HOST, 80, routes)]),
        ],
        vec![file_credential("quic-cred", server_cert, ca)],
    )
}

fn client(gateway: &gateway::GatewayHandle, certs: &Certs) -> H3Client {
    H3Client {
        connect: gateway
            .quic_listener_address(443)
            .expect("a UDP twin for port 443"),
        host: HOST.to_owned(),
        cacert: certs.root(),
        client_cert: None,
    }
}

#[tokio::test]
async fn e1_get_upload_download_and_route_miss_over_http3() {
    let backend = backend().await;
    let certs = Certs::new("cluster.local");
    let server_cert = certs.dns("quic", &[HOST]);
    let gateway = start(test_options()).await;
    gateway
        .apply(e1_config(backend, TlsMode::Simple, "", &server_cert))
        .unwrap();
    let tcp = gateway.listener_address(443).unwrap();
    let udp = gateway.quic_listener_address(443).unwrap();
    assert_eq!(
        tcp.port(),
        udp.port(),
        "HTTP/3 shares the HTTPS port number"
    );
    let h3 = client(&gateway, &certs);

    let got = h3.run("/hello/world", &[]).await;
    assert_eq!(got.status, Some(200), "{got:?}");
    assert!(got.body.contains("path=/hello/world"), "{got:?}");
    assert!(got.body.contains(&format!("host={HOST}")), "{got:?}");
    assert_eq!(
        got.header("alt-svc"),
        None,
        "no alt-svc on HTTP/3 itself: {got:?}"
    );

    let miss = h3.run("/nowhere", &[]).await;
    assert_eq!(miss.status, Some(404), "{miss:?}");

    let upload = h3
        .run(
            "/upload",
            &["--method", "POST", "--data-size", &TEN_MIB.to_string()],
        )
        .await;
    assert_eq!(upload.status, Some(200), "{upload:?}");
    assert_eq!(
        upload.body,
        format!("bytes={TEN_MIB} sha256={}", sha256_hex(&pattern(TEN_MIB))),
        "the 10 MiB body arrives whole and in order"
    );

    let download = h3.run(&format!("/download/{TEN_MIB}"), &[]).await;
    assert_eq!(download.status, Some(200), "{download:?}");
    assert_eq!(download.body_len, TEN_MIB as u64);
    assert_eq!(download.body_sha256, sha256_hex(&pattern(TEN_MIB)));

    let stats = stats(&gateway).await;
    let served = metric_sum(
        &stats,
        "istio_requests_total",
        &[("response_code", "200"), ("listener", "0.0.0.0_443")],
    );
    assert!(
        served >= 3.0,
        "HTTP/3 requests are in the request metrics: {served}"
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn e1_alt_svc_over_h2_names_the_configured_port_and_only_where_a_twin_exists() {
    let backend = backend().await;
    let certs = Certs::new("cluster.local");
    let server_cert = certs.dns("quic", &[HOST]);
    let gateway = start(test_options()).await;
    gateway
        .apply(e1_config(backend, TlsMode::Simple, "", &server_cert))
        .unwrap();
    let tcp = gateway.listener_address(443).unwrap();
    assert_ne!(
        tcp.port(),
        443,
        "the test binds elsewhere; alt-svc still names 443"
    );
    let over_h2 = curl(&[
        "--http2",
        "--cacert",
        &certs.root(),
        "--resolve",
        &resolve(HOST, tcp),
        &url("https", HOST, tcp, "/hello"),
    ])
    .await;
    assert_eq!(over_h2.status, 200, "{over_h2:?}");
    assert_eq!(
        over_h2.header("alt-svc"),
        Some("h3=\":443\"; ma=86400"),
        "{over_h2:?}"
    );

    let plain = gateway.listener_address(80).unwrap();
    let over_http = curl(&[
        "--resolve",
        &resolve(HOST, plain),
        &url("http", HOST, plain, "/hello"),
    ])
    .await;
    assert_eq!(over_http.status, 200, "{over_http:?}");
    assert_eq!(over_http.header("alt-svc"), None, "port 80 has no UDP twin");
    assert_eq!(gateway.quic_listener_address(80), None);

    let listing = curl(&[&format!(
        "http://{}/listeners?format=table",
        gateway.admin_addresses().admin
    )])
    .await;
    let rows: Vec<&str> = listing.body.lines().collect();
    assert!(
        rows.iter().any(|r| r.starts_with("0.0.0.0 ")
            && r.contains(" 443 ")
            && r.contains(&format!("SNI: {HOST}"))),
        "TCP listener row: {}",
        listing.body
    );
    assert!(
        rows.iter().any(|r| r.starts_with("0.0.0.0/UDP ")
            && r.contains(" 443 ")
            && r.contains(&format!("SNI: {HOST}"))),
        "UDP listener row beside it: {}",
        listing.body
    );
    assert!(
        !rows
            .iter()
            .any(|r| r.starts_with("0.0.0.0/UDP ") && r.contains(" 80 ")),
        "no UDP row for plaintext port 80: {}",
        listing.body
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn http3_off_per_gateway_means_no_udp_listener_and_no_alt_svc() {
    let backend = backend().await;
    let certs = Certs::new("cluster.local");
    let server_cert = certs.dns("quic", &[HOST]);
    let gateway = start(gateway::GatewayOptions {
        http3: false,
        ..test_options()
    })
    .await;
    gateway
        .apply(e1_config(backend, TlsMode::Simple, "", &server_cert))
        .unwrap();
    assert_eq!(gateway.quic_listener_address(443), None);
    let tcp = gateway.listener_address(443).unwrap();
    let over_h2 = curl(&[
        "--http2",
        "--cacert",
        &certs.root(),
        "--resolve",
        &resolve(HOST, tcp),
        &url("https", HOST, tcp, "/hello"),
    ])
    .await;
    assert_eq!(over_h2.status, 200, "{over_h2:?}");
    assert_eq!(over_h2.header("alt-svc"), None, "{over_h2:?}");
    gateway.shutdown().await;
}
