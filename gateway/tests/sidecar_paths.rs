//! The sidecar's paths end to end on loopback: app → outbound proxy port → mesh mTLS (with
//! Istio's SNI) → [east-west gateway →] inbound sidecar → app.

mod sidecar_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use gateway::GatewayOptions;
use gateway::sidecar::AppProtocol;
use multicluster::proto;
use sidecar_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tunnel_reaches_a_tcp_app_behind_the_inbound_sidecar() {
    let pki = MeshPki::new();
    let app = App::tcp_echo("reviews-v1").await;
    let server = sidecar(
        pki.mesh_tls(&pki.cluster1, "bookinfo-reviews"),
        vec![inbound([127, 0, 0, 2], app.address, AppProtocol::Tcp)],
    )
    .await;
    let client = sidecar(pki.mesh_tls(&pki.cluster1, "bookinfo-productpage"), vec![]).await;
    let endpoint = server.inbound_addresses()[0];
    assert_eq!(endpoint.ip().to_string(), "127.0.0.2");
    client
        .apply(config(vec![cluster(
            9080,
            "",
            REVIEWS,
            vec![direct(endpoint, "bookinfo-reviews")],
        )]))
        .unwrap();

    let (status, body, mut tunnel) =
        connect_tunnel(client.outbound_address(), &format!("{REVIEWS}:9080"), &[]).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}: {body}");
    let echoed = exchange(
        &mut tunnel,
        b"hello over the mesh",
        "reviews-v1: hello over the mesh".len(),
    )
    .await;
    assert_eq!(echoed, "reviews-v1: hello over the mesh");
    assert_eq!(app.accepted(), 1);

    // The short form name.namespace expands to the same service.
    let (status, _, mut tunnel) =
        connect_tunnel(client.outbound_address(), "reviews.default:9080", &[]).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(
        exchange(&mut tunnel, b"again", "reviews-v1: again".len()).await,
        "reviews-v1: again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_proxy_request_reaches_the_app_with_the_callers_spiffe_identity() {
    let pki = MeshPki::new();
    let app = App::http_echo("reviews-v1").await;
    let server = sidecar(
        pki.mesh_tls(&pki.cluster1, "bookinfo-reviews"),
        vec![inbound([127, 0, 0, 2], app.address, AppProtocol::Http)],
    )
    .await;
    let client = sidecar(pki.mesh_tls(&pki.cluster1, "bookinfo-productpage"), vec![]).await;
    client
        .apply(config(vec![cluster(
            9080,
            "",
            REVIEWS,
            vec![direct(server.inbound_addresses()[0], "bookinfo-reviews")],
        )]))
        .unwrap();

    let (status, body) = proxy_get(
        client.outbound_address(),
        &format!("http://{REVIEWS}:9080/ratings?id=1"),
        &[],
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}: {body}");
    assert!(
        body.contains("GET /ratings?id=1\n"),
        "the app gets origin-form: {body}"
    );
    assert_eq!(echoed(&body, "host"), [format!("{REVIEWS}:9080")]);
    let xfcc = echoed(&body, "x-forwarded-client-cert");
    assert_eq!(xfcc.len(), 1, "{body}");
    let parts: BTreeMap<&str, &str> = xfcc[0]
        .split(';')
        .filter_map(|p| p.split_once('='))
        .collect();
    assert_eq!(
        parts.get("URI"),
        Some(&spiffe("bookinfo-productpage").as_str()),
        "{xfcc:?}"
    );
    assert_eq!(
        parts.get("By"),
        Some(&spiffe("bookinfo-reviews").as_str()),
        "{xfcc:?}"
    );
    let hash = parts.get("Hash").copied().unwrap_or_default();
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{xfcc:?}"
    );
    // Proxy plumbing stays between the app and its sidecar.
    assert!(echoed(&body, "proxy-connection").is_empty());
    // Both sides count the request under Istio's metric, each from its own point of view.
    let requests = |handle, reporter| {
        metric(
            handle,
            "istio_requests_total",
            &[
                ("reporter", reporter),
                ("response_code", "200"),
                ("response_flags", "-"),
            ],
        )
    };
    assert_eq!(requests(&client, "source"), 1.0);
    assert_eq!(requests(&server, "destination"), 1.0);
    assert_eq!(
        requests(&client, "destination") + requests(&server, "source"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_network_is_reached_through_its_auto_passthrough_gateway() {
    let pki = MeshPki::new();
    // network-2: the app, its sidecar (identity from cluster2's intermediate), the gateway.
    let app = App::http_echo("reviews-v2").await;
    let server = sidecar(
        pki.mesh_tls(&pki.cluster2, "bookinfo-reviews"),
        vec![inbound([127, 0, 0, 3], app.address, AppProtocol::Http)],
    )
    .await;
    let gateway = gateway::Gateway::start(GatewayOptions {
        network: Some("network-2".into()),
        listener_address: Some([127, 0, 0, 4].into()),
        ..GatewayOptions::ephemeral()
    })
    .await
    .unwrap();
    let backend = server.inbound_addresses()[0];
    let sni = format!("outbound_.9080_._.{REVIEWS}");
    let gateway_cluster = proto::Cluster {
        endpoints: vec![proto::Endpoint {
            address: backend.ip().to_string(),
            port: u32::from(backend.port()),
            weight: 1,
            network: "network-2".into(),
            ..Default::default()
        }],
        ..cluster(9080, "", REVIEWS, vec![])
    };
    gateway
        .apply(proto::GatewayConfig {
            listeners: vec![auto_passthrough(15443, &sni, &gateway_cluster.name)],
            ..config(vec![gateway_cluster])
        })
        .unwrap();
    let gateway_address: SocketAddr = gateway.listener_address(15443).unwrap();
    assert_eq!(gateway_address.ip().to_string(), "127.0.0.4");

    // network-1: the caller sees reviews only as network-2's gateway.
    let client = sidecar(pki.mesh_tls(&pki.cluster1, "bookinfo-productpage"), vec![]).await;
    client
        .apply(config(vec![cluster(
            9080,
            "",
            REVIEWS,
            vec![via_gateway(gateway_address, 2)],
        )]))
        .unwrap();
    let (status, body) = proxy_get(
        client.outbound_address(),
        &format!("http://{REVIEWS}:9080/"),
        &[],
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}: {body}");
    assert!(body.starts_with("app=reviews-v2\n"), "{body}");
    // The gateway never terminated: the far side sees the caller's own identity.
    let xfcc = echoed(&body, "x-forwarded-client-cert");
    assert!(
        xfcc.len() == 1 && xfcc[0].ends_with(&format!(";URI={}", spiffe("bookinfo-productpage"))),
        "{xfcc:?}"
    );

    // A CONNECT tunnel takes the same road.
    let (status, _, mut tunnel) =
        connect_tunnel(client.outbound_address(), &format!("{REVIEWS}:9080"), &[]).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let answer = exchange(
        &mut tunnel,
        b"GET /tunnelled HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n",
        17,
    )
    .await;
    assert_eq!(answer, "HTTP/1.1 200 OK\r\n");
    assert_eq!(app.accepted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subset_header_selects_only_that_subsets_endpoints_and_without_it_calls_spread() {
    let pki = MeshPki::new();
    let v1 = App::http_echo("v1").await;
    let v2 = App::http_echo("v2").await;
    let v1_sidecar = sidecar(
        pki.mesh_tls(&pki.cluster1, "bookinfo-reviews"),
        vec![inbound([127, 0, 0, 5], v1.address, AppProtocol::Http)],
    )
    .await;
    let v2_sidecar = sidecar(
        pki.mesh_tls(&pki.cluster1, "bookinfo-reviews"),
        vec![inbound([127, 0, 0, 6], v2.address, AppProtocol::Http)],
    )
    .await;
    let v1_endpoint = v1_sidecar.inbound_addresses()[0];
    let v2_endpoint = v2_sidecar.inbound_addresses()[0];
    let client = sidecar(pki.mesh_tls(&pki.cluster1, "bookinfo-productpage"), vec![]).await;
    client
        .apply(config(vec![
            cluster(
                9080,
                "",
                REVIEWS,
                vec![
                    direct(v1_endpoint, "bookinfo-reviews"),
                    direct(v2_endpoint, "bookinfo-reviews"),
                ],
            ),
            cluster(
                9080,
                "v1",
                REVIEWS,
                vec![direct(v1_endpoint, "bookinfo-reviews")],
            ),
            cluster(
                9080,
                "v2",
                REVIEWS,
                vec![direct(v2_endpoint, "bookinfo-reviews")],
            ),
        ]))
        .unwrap();
    let url = format!("http://{REVIEWS}:9080/");

    let mut landed = BTreeMap::new();
    for _ in 0..6 {
        let (status, body) =
            proxy_get(client.outbound_address(), &url, &["isthmus-subset: v1"]).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}: {body}");
        *landed
            .entry(body.lines().next().unwrap_or_default().to_owned())
            .or_insert(0) += 1;
        assert!(
            echoed(&body, "isthmus-subset").is_empty(),
            "the subset header is for the proxy only: {body}"
        );
    }
    assert_eq!(landed, BTreeMap::from([("app=v1".to_owned(), 6)]));

    let (status, _, mut tunnel) = connect_tunnel(
        client.outbound_address(),
        &format!("{REVIEWS}:9080"),
        &["isthmus-subset: v2"],
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let answer = exchange(&mut tunnel, b"GET / HTTP/1.1\r\nHost: reviews\r\n\r\n", 17).await;
    assert_eq!(answer, "HTTP/1.1 200 OK\r\n");
    assert_eq!(v2.accepted(), 1);

    // Without a subset, calls land on both endpoints, as weights say (1:1, round robin).
    let mut landed = BTreeMap::new();
    for _ in 0..4 {
        let (_, body) = proxy_get(client.outbound_address(), &url, &[]).await;
        *landed
            .entry(body.lines().next().unwrap_or_default().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(
        landed,
        BTreeMap::from([("app=v1".to_owned(), 2), ("app=v2".to_owned(), 2)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_endpoints_in_both_networks_calls_land_in_both_by_weight() {
    let pki = MeshPki::new();
    let local_app = App::http_echo("network-1").await;
    let remote_app = App::http_echo("network-2").await;
    let local = sidecar(
        pki.mesh_tls(&pki.cluster1, "bookinfo-reviews"),
        vec![inbound(
            [127, 0, 0, 10],
            local_app.address,
            AppProtocol::Http,
        )],
    )
    .await;
    let remote = sidecar(
        pki.mesh_tls(&pki.cluster2, "bookinfo-reviews"),
        vec![inbound(
            [127, 0, 0, 11],
            remote_app.address,
            AppProtocol::Http,
        )],
    )
    .await;
    let gateway = gateway::Gateway::start(GatewayOptions {
        network: Some("network-2".into()),
        listener_address: Some([127, 0, 0, 12].into()),
        ..GatewayOptions::ephemeral()
    })
    .await
    .unwrap();
    let backend = remote.inbound_addresses()[0];
    let gateway_cluster = proto::Cluster {
        endpoints: vec![proto::Endpoint {
            address: backend.ip().to_string(),
            port: u32::from(backend.port()),
            weight: 1,
            network: "network-2".into(),
            ..Default::default()
        }],
        ..cluster(9080, "", REVIEWS, vec![])
    };
    let sni = format!("outbound_.9080_._.{REVIEWS}");
    gateway
        .apply(proto::GatewayConfig {
            listeners: vec![auto_passthrough(15443, &sni, &gateway_cluster.name)],
            ..config(vec![gateway_cluster])
        })
        .unwrap();

    // The split-horizon view: one local workload, two remote ones behind the gateway (weight 2).
    let client = sidecar(pki.mesh_tls(&pki.cluster1, "bookinfo-productpage"), vec![]).await;
    client
        .apply(config(vec![cluster(
            9080,
            "",
            REVIEWS,
            vec![
                direct(local.inbound_addresses()[0], "bookinfo-reviews"),
                via_gateway(gateway.listener_address(15443).unwrap(), 2),
            ],
        )]))
        .unwrap();
    let mut landed = BTreeMap::new();
    for _ in 0..9 {
        let (status, body) = proxy_get(
            client.outbound_address(),
            &format!("http://{REVIEWS}:9080/"),
            &[],
        )
        .await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}: {body}");
        *landed
            .entry(body.lines().next().unwrap_or_default().to_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(
        landed,
        BTreeMap::from([
            ("app=network-1".to_owned(), 3),
            ("app=network-2".to_owned(), 6)
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_is_used_by_new_connections_without_a_restart() {
    let pki = MeshPki::new();
    let app = App::http_echo("reviews-v1").await;
    let server = sidecar(
        pki.mesh_tls(&pki.cluster1, "bookinfo-reviews"),
        vec![inbound([127, 0, 0, 14], app.address, AppProtocol::Http)],
    )
    .await;
    let client_tls = pki.mesh_tls(&pki.cluster1, "bookinfo-productpage");
    let client = sidecar(Arc::clone(&client_tls), vec![]).await;
    client
        .apply(config(vec![cluster(
            9080,
            "",
            REVIEWS,
            vec![direct(server.inbound_addresses()[0], "bookinfo-reviews")],
        )]))
        .unwrap();
    let url = format!("http://{REVIEWS}:9080/");
    let caller_hash = |body: &str| {
        let xfcc = echoed(body, "x-forwarded-client-cert");
        xfcc[0]
            .split(';')
            .find_map(|part| part.strip_prefix("Hash="))
            .unwrap()
            .to_owned()
    };
    let (_, before) = proxy_get(client.outbound_address(), &url, &[]).await;

    // What the CSR client will do: the same identity, re-issued (here by the other cluster's
    // intermediate, so the chain differs too).
    let identity = certs::Identity::new(TRUST_DOMAIN, "default", "bookinfo-productpage").unwrap();
    let renewed = pki
        .cluster2
        .issue_workload(&identity, std::time::Duration::from_secs(3600))
        .unwrap();
    let renewed_key = renewed.certified_key().unwrap();
    let renewed_hash = certs::cert_sha256_hex(&renewed_key.cert[0]);
    client_tls.certificate().replace(renewed_key).unwrap();

    let (status, after) = proxy_get(client.outbound_address(), &url, &[]).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}: {after}");
    assert_ne!(caller_hash(&before), caller_hash(&after));
    assert_eq!(caller_hash(&after), renewed_hash);
    assert!(
        echoed(&after, "x-forwarded-client-cert")[0]
            .ends_with(&format!("URI={}", spiffe("bookinfo-productpage")))
    );
}

fn auto_passthrough(port: u16, sni: &str, cluster: &str) -> proto::Listener {
    proto::Listener {
        name: format!("0.0.0.0_{port}"),
        bind_address: "0.0.0.0".into(),
        port: u32::from(port),
        servers: vec![proto::Server {
            name: format!("tls.{port}.cross-network-gateway.istio-system"),
            protocol: proto::Protocol::Tls as i32,
            hosts: vec!["*.local".into()],
            tls: Some(proto::ServerTls {
                mode: proto::TlsMode::AutoPassthrough as i32,
                ..Default::default()
            }),
            routing: Some(proto::server::Routing::AutoPassthrough(proto::SniTable {
                routes: vec![proto::SniRoute {
                    sni: sni.to_owned(),
                    cluster: cluster.to_owned(),
                }],
            })),
        }],
    }
}
