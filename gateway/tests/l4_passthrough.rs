//! AUTO_PASSTHROUGH and PASSTHROUGH end to end on loopback: mesh-like TLS clients through an
//! in-process gateway to TLS echo backends that the gateway never decrypts.

mod l4_support;

use std::time::{Duration, Instant};

use gateway::GatewayOptions;
use l4_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REVIEWS: &str = "reviews.default.svc.cluster.local";

#[tokio::test]
async fn mesh_client_reaches_the_backend_and_sees_its_certificate() {
    let pki = Pki::new("backend-ca");
    let leaf = pki.leaf("reviews-v1.backend.test");
    let backend_cert = leaf.chain[0].clone();
    let backend = Backend::tls("reviews-v1", leaf).await;
    let gateway = start(test_options()).await;
    let route = (sni(9080, "", REVIEWS), cluster_name(9080, "", REVIEWS));
    gateway
        .apply(config(
            "1",
            vec![auto_passthrough_listener(
                15443,
                std::slice::from_ref(&route),
            )],
            vec![cluster(9080, "", REVIEWS, &[(backend.address, 1)])],
        ))
        .unwrap();
    let address = gateway.listener_address(15443).unwrap();

    let connector = tls_connector(&pki, "reviews-v1.backend.test", &[ISTIO_ALPN]);
    let mut tls = tls_connect(&connector, address, &route.0).await.unwrap();
    let peer = tls.get_ref().1.peer_certificates().unwrap().to_vec();
    assert_eq!(
        peer[0], backend_cert,
        "the client must see the backend's own certificate"
    );
    assert_eq!(
        read_line(&mut tls).await.unwrap(),
        format!("id=reviews-v1 sni={}", route.0)
    );
    tls.write_all(b"ping\n").await.unwrap();
    assert_eq!(read_line(&mut tls).await.unwrap(), "ping");

    // Half-close: after the client shuts its write side, the reply tail still arrives.
    tls.write_all(b"last words\n").await.unwrap();
    tls.shutdown().await.unwrap();
    let mut tail = String::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut tail))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tail, "last words\nbye\n");

    let labels = [
        ("upstream_cluster", route.1.as_str()),
        ("destination_service", REVIEWS),
        ("connection_security_policy", "mutual_tls"),
        ("reporter", "source"),
        ("listener", "0.0.0.0_15443"),
    ];
    assert!(
        eventually(|| async {
            let text = stats(&gateway).await;
            metric(&text, "istio_tcp_connections_closed_total", &labels) == 1.0
        })
        .await
    );
    let text = stats(&gateway).await;
    assert_eq!(
        metric(&text, "istio_tcp_connections_opened_total", &labels),
        1.0
    );
    // The hello, two lines and the TLS close: more than the 16 plaintext bytes.
    assert!(metric(&text, "istio_tcp_received_bytes_total", &labels) > 100.0);
    assert!(metric(&text, "istio_tcp_sent_bytes_total", &labels) > 100.0);
    gateway.shutdown().await;
}

#[tokio::test]
async fn subset_sni_reaches_only_that_subset() {
    let pki = Pki::new("backend-ca");
    let v1 = Backend::tls("v1", pki.leaf("v1.backend.test")).await;
    let v2 = Backend::tls("v2", pki.leaf("v2.backend.test")).await;
    let gateway = start(test_options()).await;
    let routes = [
        (sni(9080, "", REVIEWS), cluster_name(9080, "", REVIEWS)),
        (sni(9080, "v1", REVIEWS), cluster_name(9080, "v1", REVIEWS)),
        (sni(9080, "v2", REVIEWS), cluster_name(9080, "v2", REVIEWS)),
    ];
    gateway
        .apply(config(
            "1",
            vec![auto_passthrough_listener(15443, &routes)],
            vec![
                cluster(9080, "", REVIEWS, &[(v1.address, 1), (v2.address, 1)]),
                cluster(9080, "v1", REVIEWS, &[(v1.address, 1)]),
                cluster(9080, "v2", REVIEWS, &[(v2.address, 1)]),
            ],
        ))
        .unwrap();
    let address = gateway.listener_address(15443).unwrap();
    let any_backend = tls_connector(&pki, ANY_BACKEND, &[b"istio-peer-exchange", ISTIO_ALPN]);
    for _ in 0..5 {
        let mut tls = tls_connect(&any_backend, address, &routes[1].0)
            .await
            .unwrap();
        assert!(read_line(&mut tls).await.unwrap().starts_with("id=v1 "));
    }
    assert_eq!(v1.accepted(), 5);
    assert_eq!(v2.accepted(), 0, "the v1 subset must never reach v2");

    // The whole service spreads over both subsets' endpoints.
    let mut seen = Vec::new();
    for _ in 0..4 {
        let mut tls = tls_connect(&any_backend, address, &routes[0].0)
            .await
            .unwrap();
        let line = read_line(&mut tls).await.unwrap();
        seen.push(line[3..5].to_owned());
    }
    assert!(
        seen.contains(&"v1".to_owned()) && seen.contains(&"v2".to_owned()),
        "{seen:?}"
    );
    gateway.shutdown().await;
}

/// One AUTO_PASSTHROUGH route to a TLS backend that must never be reached.
async fn guarded_gateway(options: GatewayOptions) -> (gateway::GatewayHandle, Backend, Pki) {
    let pki = Pki::new("backend-ca");
    let backend = Backend::tls("guarded", pki.leaf("guarded.backend.test")).await;
    let gateway = start(options).await;
    gateway
        .apply(config(
            "1",
            vec![auto_passthrough_listener(
                15443,
                &[(sni(9080, "", REVIEWS), cluster_name(9080, "", REVIEWS))],
            )],
            vec![cluster(9080, "", REVIEWS, &[(backend.address, 1)])],
        ))
        .expect("the guarded config applies");
    (gateway, backend, pki)
}

#[tokio::test]
async fn unknown_sni_no_sni_and_wrong_alpn_are_closed_and_counted() {
    let (gateway, backend, pki) = guarded_gateway(test_options()).await;
    let address = gateway.listener_address(15443).unwrap();
    let istio = tls_connector(&pki, "guarded.backend.test", &[ISTIO_ALPN]);

    let unknown = sni(9080, "", "ratings.default.svc.cluster.local");
    assert!(tls_connect(&istio, address, &unknown).await.is_err());
    // rustls sends no SNI when connecting to an IP address.
    assert!(tls_connect(&istio, address, "127.0.0.1").await.is_err());
    let h2 = tls_connector(&pki, "guarded.backend.test", &[b"h2", b"http/1.1"]);
    assert!(
        tls_connect(&h2, address, &sni(9080, "", REVIEWS))
            .await
            .is_err()
    );
    let no_alpn = tls_connector(&pki, "guarded.backend.test", &[]);
    assert!(
        tls_connect(&no_alpn, address, &sni(9080, "", REVIEWS))
            .await
            .is_err()
    );

    assert!(eventually(|| async { rejected(&gateway, "no_istio_alpn").await == 2.0 }).await);
    let text = stats(&gateway).await;
    assert_eq!(
        metric(
            &text,
            "isthmus_rejected_connections_total",
            &[
                ("reason", "unknown_sni"),
                ("sni", &unknown),
                ("listener", "0.0.0.0_15443")
            ]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "isthmus_rejected_connections_total",
            &[("reason", "no_sni")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "isthmus_rejected_connections_total",
            &[
                ("reason", "no_istio_alpn"),
                ("sni", &sni(9080, "", REVIEWS))
            ]
        ),
        2.0
    );
    assert_eq!(backend.accepted(), 0, "nothing may reach a backend");
    assert_eq!(
        metric(&text, "istio_tcp_connections_opened_total", &[]),
        0.0
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn plain_http_and_malformed_hellos_are_closed_and_counted() {
    let (gateway, backend, _pki) = guarded_gateway(test_options()).await;
    let address = gateway.listener_address(15443).unwrap();

    let mut http = TcpStream::connect(address).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: reviews\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_by_peer(&mut http).await);

    // A TLS handshake record that carries a ServerHello (type 2) instead of a ClientHello.
    let mut malformed = TcpStream::connect(address).await.unwrap();
    malformed
        .write_all(&[22, 3, 1, 0, 6, 2, 0, 0, 2, 3, 3])
        .await
        .unwrap();
    assert!(closed_by_peer(&mut malformed).await);

    // A record header announcing more than one TLS record may carry.
    let mut huge = TcpStream::connect(address).await.unwrap();
    huge.write_all(&[22, 3, 1, 0xff, 0xff, 1, 0, 0xff, 0xfb])
        .await
        .unwrap();
    assert!(closed_by_peer(&mut huge).await);

    assert!(eventually(|| async { rejected(&gateway, "hello_too_large").await == 1.0 }).await);
    assert_eq!(rejected(&gateway, "not_tls").await, 1.0);
    assert_eq!(rejected(&gateway, "malformed_hello").await, 1.0);

    // A TCP probe that connects and leaves is not an attack and is not counted.
    drop(TcpStream::connect(address).await.unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rejected(&gateway, "malformed_hello").await, 1.0);
    assert_eq!(backend.accepted(), 0);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_hello_dribbled_one_byte_a_second_times_out() {
    let options = GatewayOptions {
        client_hello_timeout: Duration::from_millis(1500),
        ..test_options()
    };
    let (gateway, backend, _pki) = guarded_gateway(options).await;
    let address = gateway.listener_address(15443).unwrap();
    let hello = include_bytes!("../testdata/client_hello/openssl.bin");

    let stream = TcpStream::connect(address).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    let dribble = tokio::spawn(async move {
        for byte in hello {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut buffer = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), read.read(&mut buffer)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the gateway must close the slow client"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1400),
        "closed too early: {elapsed:?}"
    );
    dribble.abort();
    assert!(eventually(|| async { rejected(&gateway, "hello_timeout").await == 1.0 }).await);
    assert_eq!(backend.accepted(), 0);
    gateway.shutdown().await;
}

#[tokio::test]
async fn passthrough_routes_by_sni_hosts_most_specific_first() {
    let pki = Pki::new("backend-ca");
    let nginx = Backend::tls("nginx", pki.leaf("nginx.example.com")).await;
    let wild = Backend::tls("wild", pki.leaf("any.wild.example.com")).await;
    let gateway = start(test_options()).await;
    let nginx_cluster = cluster_name(443, "", "my-nginx.default.svc.cluster.local");
    let wild_cluster = cluster_name(443, "", "wild.default.svc.cluster.local");
    gateway
        .apply(config(
            "1",
            vec![passthrough_listener(
                443,
                &["nginx.example.com", "*.example.com"],
                &[
                    (&["*.example.com"], &wild_cluster),
                    (&["nginx.example.com"], &nginx_cluster),
                ],
            )],
            vec![
                cluster(
                    443,
                    "",
                    "my-nginx.default.svc.cluster.local",
                    &[(nginx.address, 1)],
                ),
                cluster(
                    443,
                    "",
                    "wild.default.svc.cluster.local",
                    &[(wild.address, 1)],
                ),
            ],
        ))
        .unwrap();
    let address = gateway.listener_address(443).unwrap();

    // No Istio ALPN needed: PASSTHROUGH serves ordinary TLS clients.
    let to_nginx = tls_connector(&pki, "nginx.example.com", &[b"h2"]);
    let mut tls = tls_connect(&to_nginx, address, "nginx.example.com")
        .await
        .unwrap();
    assert_eq!(
        read_line(&mut tls).await.unwrap(),
        "id=nginx sni=nginx.example.com"
    );
    let to_wild = tls_connector(&pki, "any.wild.example.com", &[]);
    let mut tls = tls_connect(&to_wild, address, "shop.example.com")
        .await
        .unwrap();
    assert_eq!(
        read_line(&mut tls).await.unwrap(),
        "id=wild sni=shop.example.com"
    );

    assert!(
        tls_connect(&to_wild, address, "shop.example.org")
            .await
            .is_err()
    );
    assert!(eventually(|| async { rejected(&gateway, "unknown_sni").await == 1.0 }).await);
    assert_eq!((nginx.accepted(), wild.accepted()), (1, 1));
    gateway.shutdown().await;
}

#[tokio::test]
async fn openssl_s_client_sees_the_backend_subject() {
    let pki = Pki::new("backend-ca");
    let backend = Backend::tls("x", pki.leaf("x-backend.test")).await;
    let host = "x.default.svc.cluster.local";
    let gateway = start(test_options()).await;
    gateway
        .apply(config(
            "1",
            vec![auto_passthrough_listener(
                15443,
                &[(sni(9080, "", host), cluster_name(9080, "", host))],
            )],
            vec![cluster(9080, "", host, &[(backend.address, 1)])],
        ))
        .unwrap();
    let address = gateway.listener_address(15443).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pki.ca_pem()).unwrap();

    let output = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(address.to_string())
        .args([
            "-servername",
            &sni(9080, "", host),
            "-alpn",
            "istio",
            "-CAfile",
        ])
        .arg(&ca)
        .stdin(std::process::Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(10), output)
        .await
        .expect("openssl s_client finishes")
        .expect("openssl is installed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("subject=CN = x-backend.test"), "{stdout}");
    assert!(stdout.contains("Verify return code: 0 (ok)"), "{stdout}");
    assert_eq!(
        backend.snis.lock().unwrap().as_slice(),
        [sni(9080, "", host)]
    );
    gateway.shutdown().await;
}
