//! Conformance F1 and TLS origination: an egress gateway routes by header to ServiceEntry
//! subsets and originates mutual TLS per DestinationRule; ISTIO_MUTUAL origination presents
//! the gateway's mesh identity with Istio's cluster SNI and ALPN.
// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod http_support;

use http_support::*;
use multicluster::proto::{self, Protocol, TlsMode};

const NGINX: &str = "nginx.external.svc.cluster.local";

fn origination(mode: TlsMode, credential: &str) -> Option<proto::UpstreamTls> {
    Some(proto::UpstreamTls {
        mode: mode as i32,
        credential: credential.into(),
        ..Default::default()
    })
}

#[tokio::test]
async fn f1_egress_routes_by_header_and_originates_mutual_tls() {
    let certs = Certs::new("cluster.local");
    let v1_cert = certs.dns("v1", &[NGINX]);
    let v2_cert = certs.dns("v2", &[NGINX]);
    let client = certs.dns("egress-client", &["egress.example.com"]);
    let (v1, v1_seen) = tls_http_backend("v1", mutual_server_config(&certs, &v1_cert)).await;
    let (v2, _) = tls_http_backend("v2", mutual_server_config(&certs, &v2_cert)).await;
    let credential = file_credential(&format!("file:{}", client.cert), &client, &certs.root());
    let mut c1 = cluster(443, "v1", NGINX, &[v1]);
    c1.tls = origination(TlsMode::Mutual, &credential.name);
    let mut c2 = cluster(443, "v2", NGINX, &[v2]);
    c2.tls = origination(TlsMode::Mutual, &credential.name);
    let by_header = |want: &str| proto::HttpMatch {
        headers: headers_map(&[("want", exact(want).unwrap())]),
        ..Default::default()
    };
    let routes = vec![
        route(
            "v1",
            vec![by_header("v1")],
            to(&cluster_name(443, "v1", NGINX)),
        ),
        route(
            "v2",
            vec![by_header("v2")],
            to(&cluster_name(443, "v2", NGINX)),
        ),
    ];
    let gateway = start(test_options()).await;
    gateway
        .apply(config(
            "1",
            vec![listener(
                80,
                vec![http_server("http.80", Protocol::Http, &[NGINX], "http.80")],
            )],
            vec![c1, c2],
            vec![table("http.80", vec![vhost(NGINX, 80, routes)])],
            vec![credential],
        ))
        .unwrap();
    let address = gateway.listener_address(80).unwrap();
    for want in ["v1", "v2"] {
        let reply = curl(&[
            "-H",
            &format!("want: {want}"),
            "-H",
            &format!("Host: {NGINX}"),
            &format!("http://{address}/index.html"),
        ])
        .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(
            reply.body,
            format!("{want} GET /index.html sni={NGINX} client=egress.example.com\n")
        );
    }
    let reply = curl(&[
        "-H",
        &format!("Host: {NGINX}"),
        &format!("http://{address}/index.html"),
    ])
    .await;
    assert_eq!(reply.status, 404, "no header, no route");
    // Keep-alive pooling: two more requests, no new handshake.
    for _ in 0..2 {
        curl(&[
            "-H",
            "want: v1",
            "-H",
            &format!("Host: {NGINX}"),
            &format!("http://{address}/"),
        ])
        .await;
    }
    assert!(
        v1_seen.lock().unwrap().len() <= 2,
        "{:?}",
        v1_seen.lock().unwrap()
    );
}

/// Negative: a backend that does not trust the gateway's client certificate refuses it, and
/// a cluster whose TLS cannot be built answers 503 instead of sending plaintext.
#[tokio::test]
async fn origination_failures_never_fall_back_to_plaintext() {
    let certs = Certs::new("cluster.local");
    let other = Certs::new("cluster.local");
    let server = certs.dns("server", &[NGINX]);
    let (backend, seen) = tls_http_backend("nginx", mutual_server_config(&certs, &server)).await;
    let stranger = other.dns("stranger", &["stranger.example.com"]);
    // Trusts the backend's CA but presents a certificate from another CA.
    let wrong_client = file_credential("wrong-client", &stranger, &certs.root());
    let mut refused = cluster(443, "refused", NGINX, &[backend]);
    refused.tls = origination(TlsMode::Mutual, "wrong-client");
    let mut no_ca = cluster(443, "no-ca", NGINX, &[backend]);
    no_ca.tls = origination(TlsMode::Simple, "");
    let mut wrong_ca = cluster(443, "wrong-ca", NGINX, &[backend]);
    wrong_ca.tls = origination(TlsMode::Simple, "other-ca");
    let other_ca = proto::TlsCredential {
        name: "other-ca".into(),
        source: Some(proto::tls_credential::Source::Files(
            proto::CredentialFiles {
                ca_certificates: other.root(),
                ..Default::default()
            },
        )),
    };
    let routes = vec![
        route(
            "refused",
            vec![uri_prefix("/refused")],
            to(&cluster_name(443, "refused", NGINX)),
        ),
        route(
            "no-ca",
            vec![uri_prefix("/no-ca")],
            to(&cluster_name(443, "no-ca", NGINX)),
        ),
        route(
            "wrong-ca",
            vec![uri_prefix("/wrong-ca")],
            to(&cluster_name(443, "wrong-ca", NGINX)),
        ),
    ];
    let gateway = start(test_options()).await;
    gateway
        .apply(config(
            "1",
            vec![listener(
                80,
                vec![http_server("http.80", Protocol::Http, &["*"], "http.80")],
            )],
            vec![refused, no_ca, wrong_ca],
            vec![table("http.80", vec![vhost("*", 80, routes)])],
            vec![wrong_client, other_ca],
        ))
        .unwrap();
    let address = gateway.listener_address(80).unwrap();
    for path in ["/refused", "/no-ca", "/wrong-ca"] {
        let reply = curl(&[&format!("http://{address}{path}")]).await;
        assert_eq!(reply.status, 503, "{path}: {reply:?}");
    }
    assert!(
        seen.lock().unwrap().iter().all(|s| s.client.is_none()),
        "no request was served"
    );
    let text = stats(&gateway).await;
    assert_eq!(
        metric_sum(
            &text,
            "isthmus_rejected_servers",
            &[("server", &cluster_name(443, "no-ca", NGINX))]
        ),
        1.0,
        "{text}"
    );
}

/// ISTIO_MUTUAL origination: the ingress reaches a mesh peer (as it would reach another
/// network's east-west gateway) with its own mesh certificate, Istio's SNI and ALPN `istio`.
#[tokio::test]
async fn istio_mutual_origination_uses_the_cluster_sni_and_mesh_identity() {
    let certs = Certs::new("cluster.local");
    let own = certs.mesh("gateway", "istio-system", "istio-ingressgateway");
    let peer = certs.mesh("reviews", "default", "reviews");
    let (backend, seen) = tls_http_backend("reviews", mesh_server(&certs, &peer)).await;
    let host = "reviews.default.svc.cluster.local";
    let mut reviews = cluster(9080, "v1", host, &[backend]);
    reviews.tls = origination(TlsMode::IstioMutual, "");
    let mut options = test_options();
    options.mesh_identity = Some(gateway::MeshIdentity {
        cert_chain: own.cert.clone().into(),
        private_key: own.key.clone().into(),
        roots: certs.root().into(),
    });
    let gateway = start(options).await;
    gateway
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
                    vec![route("r", vec![], to(&cluster_name(9080, "v1", host)))],
                )],
            )],
            vec![],
        ))
        .unwrap();
    let address = gateway.listener_address(80).unwrap();
    let reply = curl(&[&format!("http://{address}/reviews/1")]).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let sni = format!("outbound_.9080_.v1_.{host}");
    assert_eq!(
        reply.body,
        format!(
            "reviews GET /reviews/1 sni={sni} client=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway\n"
        )
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].alpn.as_deref(), Some("istio"));

    // Without a mesh identity the cluster is rejected and answers 503.
    let plain = start(test_options()).await;
    let mut reviews = cluster(9080, "v1", host, &[backend]);
    reviews.tls = origination(TlsMode::IstioMutual, "");
    plain
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
                    vec![route("r", vec![], to(&cluster_name(9080, "v1", host)))],
                )],
            )],
            vec![],
        ))
        .unwrap();
    let reply = curl(&[&format!(
        "http://{}/reviews/1",
        plain.listener_address(80).unwrap()
    )])
    .await;
    assert_eq!(reply.status, 503);
}
