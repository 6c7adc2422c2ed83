//! What the sidecar refuses: callers from another root, targets that are not mesh services
//! (the proxy port is not an open proxy), and identities a client tries to claim in headers.

mod sidecar_support;

use std::time::Duration;

use gateway::sidecar::AppProtocol;
use rustls_pki_types::ServerName;
use sidecar_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_a_foreign_root_is_refused_at_the_inbound_handshake() {
    let pki = MeshPki::new();
    let app = App::http_echo("reviews-v1").await;
    let server = sidecar(
        pki.mesh_tls(&pki.cluster1, "bookinfo-reviews"),
        vec![inbound([127, 0, 0, 7], app.address, AppProtocol::Http)],
    )
    .await;
    let endpoint = server.inbound_addresses()[0];

    // Straight at the inbound port with Istio's ALPN and SNI, as a real peer would come.
    let foreign = pki.foreign_tls();
    let connector = TlsConnector::from(foreign.client_config(None, b"istio-http/1.1").unwrap());
    let name = ServerName::try_from(format!("outbound_.9080_._.{REVIEWS}")).unwrap();
    let tcp = TcpStream::connect(endpoint).await.unwrap();
    let outcome = async {
        // TLS 1.3 finishes the client's side before the server has checked its certificate:
        // the refusal shows on the first read.
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"GET / HTTP/1.1\r\nHost: reviews\r\n\r\n")
            .await?;
        let mut buffer = [0u8; 64];
        tls.read(&mut buffer).await
    }
    .await;
    assert!(
        matches!(outcome, Err(_) | Ok(0)),
        "the inbound answered a foreign caller: {outcome:?}"
    );

    // Through a sidecar that carries the foreign certificate: the call fails with 502.
    let client = sidecar(foreign, vec![]).await;
    client
        .apply(config(vec![cluster(
            9080,
            "",
            REVIEWS,
            vec![direct(endpoint, "bookinfo-reviews")],
        )]))
        .unwrap();
    let (status, body) = proxy_get(
        client.outbound_address(),
        &format!("http://{REVIEWS}:9080/"),
        &[],
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 502"), "{status}: {body}");
    assert_eq!(app.accepted(), 0, "no byte may reach the app");
    let metrics = server.gateway().metrics().encode();
    let refused = format!(
        "isthmus_rejected_connections_total{{source_cluster=\"unknown\",listener=\"inbound|{}||\",reason=\"tls_handshake\",sni=\"\"}} 2",
        endpoint.port()
    );
    assert!(metrics.contains(&refused), "{refused} not in\n{metrics}");

    // The same inbound still serves callers under the shared root.
    let friend = sidecar(pki.mesh_tls(&pki.cluster2, "bookinfo-productpage"), vec![]).await;
    friend
        .apply(config(vec![cluster(
            9080,
            "",
            REVIEWS,
            vec![direct(endpoint, "bookinfo-reviews")],
        )]))
        .unwrap();
    let (status, _) = proxy_get(
        friend.outbound_address(),
        &format!("http://{REVIEWS}:9080/"),
        &[],
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_outside_the_mesh_get_an_error_and_no_connection_is_made() {
    let pki = MeshPki::new();
    let app = App::tcp_echo("reviews-v1").await;
    let server = sidecar(
        pki.mesh_tls(&pki.cluster1, "bookinfo-reviews"),
        vec![inbound([127, 0, 0, 8], app.address, AppProtocol::Tcp)],
    )
    .await;
    let client = sidecar(pki.mesh_tls(&pki.cluster1, "bookinfo-productpage"), vec![]).await;
    let endpoint = server.inbound_addresses()[0];
    client
        .apply(config(vec![cluster(
            9080,
            "",
            REVIEWS,
            vec![direct(endpoint, "bookinfo-reviews")],
        )]))
        .unwrap();
    let proxy = client.outbound_address();

    for (target, subset, expected) in [
        (
            "ratings.default:9080",
            None,
            "no service ratings.default.svc.cluster.local port 9080",
        ),
        (
            "reviews.default:9999",
            None,
            "no service reviews.default.svc.cluster.local port 9999",
        ),
        (
            "reviews.default:9080",
            Some("isthmus-subset: v9"),
            "port 9080 subset v9",
        ),
        (&format!("{}", app.address), None, "is an IP address"),
        ("localhost:22", None, "write name.namespace"),
    ] {
        let extra: Vec<&str> = subset.into_iter().collect();
        let (status, body, _) = connect_tunnel(proxy, target, &extra).await;
        assert!(
            status.starts_with("HTTP/1.1 404"),
            "CONNECT {target}: {status}: {body}"
        );
        assert!(body.contains(expected), "CONNECT {target}: {body}");
        let (status, body) = proxy_get(proxy, &format!("http://{target}/"), &extra).await;
        assert!(
            status.starts_with("HTTP/1.1 404"),
            "GET {target}: {status}: {body}"
        );
        assert!(body.contains(expected), "GET {target}: {body}");
    }

    // An origin-form request is not a proxy request at all.
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: reviews.default:9080\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.contains("this is the mesh proxy port"),
        "{response}"
    );

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        app.accepted(),
        0,
        "a refused target must not open any connection"
    );
    // Five refused absolute-form requests, counted as no-route; refused CONNECTs too.
    let no_route = metric(
        &client,
        "istio_requests_total",
        &[("response_code", "404"), ("response_flags", "NR")],
    );
    assert_eq!(no_route, 10.0);
    let metrics = server.gateway().metrics().encode();
    assert!(
        !metrics.contains("destination"),
        "the inbound saw traffic:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_spoof_x_forwarded_client_cert() {
    let pki = MeshPki::new();
    let app = App::http_echo("reviews-v1").await;
    let server = sidecar(
        pki.mesh_tls(&pki.cluster1, "bookinfo-reviews"),
        vec![inbound([127, 0, 0, 9], app.address, AppProtocol::Http)],
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
    let spoofed = "x-forwarded-client-cert: By=spiffe://cluster.local/ns/default/sa/reviews;URI=spiffe://cluster.local/ns/istio-system/sa/admin";
    let (status, body) = proxy_get(
        client.outbound_address(),
        &format!("http://{REVIEWS}:9080/"),
        &[spoofed, spoofed],
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}: {body}");
    let xfcc = echoed(&body, "x-forwarded-client-cert");
    assert_eq!(xfcc.len(), 1, "{body}");
    assert!(!xfcc[0].contains("admin"), "{xfcc:?}");
    assert!(
        xfcc[0].ends_with(&format!(";URI={}", spiffe("bookinfo-productpage"))),
        "{xfcc:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_endpoint_must_present_its_service_accounts_identity() {
    let pki = MeshPki::new();
    let app = App::http_echo("reviews-v1").await;
    // The workload behind the endpoint is reviews, but discovery says the pod runs as details.
    let server = sidecar(
        pki.mesh_tls(&pki.cluster1, "bookinfo-reviews"),
        vec![inbound([127, 0, 0, 13], app.address, AppProtocol::Http)],
    )
    .await;
    let client = sidecar(pki.mesh_tls(&pki.cluster1, "bookinfo-productpage"), vec![]).await;
    let endpoint = server.inbound_addresses()[0];
    let url = format!("http://{REVIEWS}:9080/");
    client
        .apply(config(vec![cluster(
            9080,
            "",
            REVIEWS,
            vec![direct(endpoint, "bookinfo-details")],
        )]))
        .unwrap();
    let (status, body) = proxy_get(client.outbound_address(), &url, &[]).await;
    assert!(status.starts_with("HTTP/1.1 502"), "{status}: {body}");
    assert!(body.contains("mTLS handshake with"), "{body}");
    assert_eq!(app.accepted(), 0);

    // The right service account, or none known: the same endpoint is accepted.
    for service_account in ["bookinfo-reviews", ""] {
        client
            .apply(config(vec![cluster(
                9080,
                "",
                REVIEWS,
                vec![direct(endpoint, service_account)],
            )]))
            .unwrap();
        let (status, body) = proxy_get(client.outbound_address(), &url, &[]).await;
        assert!(
            status.starts_with("HTTP/1.1 200"),
            "{service_account:?}: {status}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_text_caller_is_refused_by_the_inbound() {
    let pki = MeshPki::new();
    let app = App::tcp_echo("reviews-v1").await;
    let server = sidecar(
        pki.mesh_tls(&pki.cluster1, "bookinfo-reviews"),
        vec![inbound([127, 0, 0, 15], app.address, AppProtocol::Tcp)],
    )
    .await;
    let mut stream = TcpStream::connect(server.inbound_addresses()[0])
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: reviews\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("the inbound closes the connection");
    // A TLS alert at most, never the app's greeting.
    assert!(
        read.is_err() || !answer.starts_with(b"reviews-v1"),
        "{answer:?}"
    );
    assert_eq!(app.accepted(), 0);
    assert_eq!(
        metric(
            &server,
            "isthmus_rejected_connections_total",
            &[("reason", "tls_handshake")]
        ),
        1.0
    );
}
