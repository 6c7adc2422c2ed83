//! Client certificates and certificate choice over HTTP/3: a MUTUAL server's QUIC twin asks
//! for and verifies client certificates exactly as its TCP side, several SIMPLE servers on
//! one port each present their own certificate by SNI. Ports mixing client-certificate rules
//! are in `h3_shared_port.rs`.
// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod h3_support;
mod http_support;

use h3_support::*;
use http_support::*;
use multicluster::proto::{self, TlsMode};

fn server(host: &str, mode: TlsMode, credential: &str) -> proto::Server {
    let table = format!("https.443.{host}");
    https_server(&table, &[host], server_tls(mode, credential), &table)
}

#[tokio::test]
async fn mutual_twin_requires_and_forwards_the_client_certificate() {
    let backend = backend().await;
    let certs = Certs::new("cluster.local");
    let host = "secure.quic-corp.com";
    let server_cert = certs.dns("server", &[host]);
    let client_cert = certs.dns("client", &["client.quic-corp.com"]);
    let gateway = start(test_options()).await;
    gateway
        .apply(one_https_port(
            backend,
            vec![server(host, TlsMode::Mutual, "mutual")],
            vec![file_credential("mutual", &server_cert, &certs.root())],
        ))
        .unwrap();
    let mut h3 = H3Client {
        connect: gateway
            .quic_listener_address(443)
            .expect("MUTUAL servers get a UDP twin"),
        host: host.to_owned(),
        cacert: certs.root(),
        client_cert: Some((client_cert.cert.clone(), client_cert.key.clone())),
    };
    let with_cert = h3.run("/who", &[]).await;
    assert_eq!(with_cert.status, Some(200), "{with_cert:?}");
    let xfcc = with_cert
        .body
        .lines()
        .find_map(|l| l.strip_prefix("xfcc="))
        .unwrap_or("");
    assert!(
        xfcc.starts_with("Hash="),
        "XFCC reaches the backend over HTTP/3: {with_cert:?}"
    );
    assert!(xfcc.contains("DNS=client.quic-corp.com"), "{xfcc}");

    h3.client_cert = None;
    let without = h3.run("/who", &[]).await;
    assert_eq!(
        without.status, None,
        "no certificate, no request: {without:?}"
    );
    assert!(without.error.is_some(), "{without:?}");

    let stranger = Certs::new("cluster.local");
    let foreign = stranger.dns("foreign", &["client.quic-corp.com"]);
    h3.client_cert = Some((foreign.cert.clone(), foreign.key.clone()));
    let refused = h3.run("/who", &[]).await;
    assert_eq!(
        refused.status, None,
        "a certificate from another CA is refused: {refused:?}"
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn simple_servers_on_one_port_present_their_own_certificate_by_sni() {
    let backend = backend().await;
    let certs = Certs::new("cluster.local");
    let (a, b) = ("a.quic-corp.com", "b.quic-corp.com");
    let cert_a = certs.dns("a", &[a]);
    let cert_b = certs.dns("b", &[b]);
    let gateway = start(test_options()).await;
    gateway
        .apply(one_https_port(
            backend,
            vec![
                server(a, TlsMode::Simple, "a"),
                server(b, TlsMode::Simple, "b"),
            ],
            vec![
                file_credential("a", &cert_a, ""),
                file_credential("b", &cert_b, ""),
            ],
        ))
        .unwrap();
    let udp = gateway.quic_listener_address(443).unwrap();
    for host in [a, b] {
        // aioquic verifies the certificate against the SNI: the wrong one fails the handshake.
        let reply = H3Client {
            connect: udp,
            host: host.to_owned(),
            cacert: certs.root(),
            client_cert: None,
        }
        .run("/x", &[])
        .await;
        assert_eq!(reply.status, Some(200), "{host}: {reply:?}");
        assert!(reply.body.contains(&format!("host={host}")), "{reply:?}");
    }
    gateway.shutdown().await;
}
