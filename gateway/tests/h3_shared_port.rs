//! One UDP port for servers with different client-certificate rules: QUIC gives the port a
//! single TLS handshake, so the gateway verifies a client chain against the port's CAs during
//! it and then applies the SNI-selected server's own rules before HTTP/3 starts. Each host
//! must behave as its TCP twin: SIMPLE hosts ignore certificates, MUTUAL hosts demand one
//! from their own CA that meets their subjectAltNames, and a server QUIC cannot serve (no
//! TLS 1.3) stays off the twin without taking the others with it.
// Helpers outside #[test] functions unwrap too: a failed step is a failed test.
#![allow(clippy::unwrap_used)]

mod h3_support;
mod http_support;

use h3_support::*;
use http_support::*;
use multicluster::proto::{self, TlsMode};

/// QUIC CRYPTO_ERROR (0x100) + TLS alert certificate_required (116).
const CERTIFICATE_REQUIRED: &str = "error_code=0x174";
/// QUIC CRYPTO_ERROR (0x100) + TLS alert unknown_ca (48).
const UNKNOWN_CA: &str = "error_code=0x130";
/// QUIC CRYPTO_ERROR (0x100) + TLS alert certificate_unknown (46): a subjectAltNames miss.
const CERTIFICATE_UNKNOWN: &str = "error_code=0x12e";

fn server(host: &str, tls: proto::ServerTls) -> proto::Server {
    let table = format!("https.443.{host}");
    https_server(&table, &[host], tls, &table)
}

fn xfcc(reply: &H3Reply) -> &str {
    reply
        .body
        .lines()
        .find_map(|l| l.strip_prefix("xfcc="))
        .unwrap_or("")
}

fn with_cert(client: &H3Client, issued: Option<&Issued>) -> H3Client {
    H3Client {
        connect: client.connect,
        host: client.host.clone(),
        cacert: client.cacert.clone(),
        client_cert: issued.map(|i| (i.cert.clone(), i.key.clone())),
    }
}

fn refused(reply: &H3Reply, code: &str, what: &str) {
    assert_eq!(
        reply.status, None,
        "{what}: no request is served: {reply:?}"
    );
    let error = reply.error.as_deref().unwrap_or("");
    assert!(
        error.contains(code),
        "{what}: closed with {code}: {reply:?}"
    );
}

#[tokio::test]
async fn simple_and_mutual_servers_on_one_port_each_keep_their_rules_over_http3() {
    let backend = backend().await;
    let certs = Certs::new("cluster.local");
    let (secure, open) = ("secure.quic-corp.com", "open.quic-corp.com");
    let secure_cert = certs.dns("secure", &[secure]);
    let open_cert = certs.dns("open", &[open]);
    let client = certs.dns("client", &["client.quic-corp.com"]);
    let stranger = Certs::new("cluster.local").dns("stranger", &["client.quic-corp.com"]);
    let gateway = start(test_options()).await;
    gateway
        .apply(one_https_port(
            backend,
            vec![
                server(secure, server_tls(TlsMode::Mutual, "secure")),
                server(open, server_tls(TlsMode::Simple, "open")),
            ],
            vec![
                file_credential("secure", &secure_cert, &certs.root()),
                file_credential("open", &open_cert, ""),
            ],
        ))
        .unwrap();
    let udp = gateway
        .quic_listener_address(443)
        .expect("a port mixing SIMPLE and MUTUAL gets a UDP twin");
    let to = |host: &str| H3Client {
        connect: udp,
        host: host.to_owned(),
        cacert: certs.root(),
        client_cert: None,
    };

    let anonymous = to(open).run("/x", &[]).await;
    assert_eq!(
        anonymous.status,
        Some(200),
        "SIMPLE needs no certificate: {anonymous:?}"
    );
    assert!(
        anonymous.body.contains(&format!("host={open}")),
        "{anonymous:?}"
    );
    let unasked = with_cert(&to(open), Some(&client)).run("/x", &[]).await;
    assert_eq!(unasked.status, Some(200), "{unasked:?}");
    assert_eq!(
        xfcc(&unasked),
        "",
        "SIMPLE ignores a certificate, as its TCP side never asks for one: {unasked:?}"
    );

    refused(
        &to(secure).run("/x", &[]).await,
        CERTIFICATE_REQUIRED,
        "MUTUAL without a certificate",
    );
    let admitted = with_cert(&to(secure), Some(&client)).run("/who", &[]).await;
    assert_eq!(admitted.status, Some(200), "{admitted:?}");
    assert!(
        admitted.body.contains(&format!("host={secure}")),
        "{admitted:?}"
    );
    assert!(
        xfcc(&admitted).contains("DNS=client.quic-corp.com"),
        "the verified certificate reaches the backend: {admitted:?}"
    );
    let foreign = with_cert(&to(secure), Some(&stranger)).run("/x", &[]).await;
    assert_eq!(
        foreign.status, None,
        "a certificate from no CA of the port: {foreign:?}"
    );

    let tcp = gateway.listener_address(443).unwrap();
    for (host, cert) in [(open, None), (secure, Some(&client))] {
        let mut args = vec![
            "--http2".to_owned(),
            "--cacert".to_owned(),
            certs.root(),
            "--resolve".to_owned(),
            resolve(host, tcp),
        ];
        if let Some(cert) = cert {
            args.extend(["--cert".to_owned(), cert.cert.clone()]);
            args.extend(["--key".to_owned(), cert.key.clone()]);
        }
        args.push(url("https", host, tcp, "/x"));
        let over_h2 = curl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        assert_eq!(over_h2.status, 200, "{host} over h2: {over_h2:?}");
        assert_eq!(
            over_h2.header("alt-svc"),
            Some("h3=\":443\"; ma=86400"),
            "{host} advertises its twin over TCP: {over_h2:?}"
        );
    }

    let listing = curl(&[&format!(
        "http://{}/listeners?format=table",
        gateway.admin_addresses().admin
    )])
    .await;
    let udp_rows: Vec<&str> = listing
        .body
        .lines()
        .filter(|r| r.starts_with("0.0.0.0/UDP ") && r.contains(" 443 "))
        .collect();
    for host in [secure, open] {
        assert!(
            udp_rows.iter().any(|r| r.contains(&format!("SNI: {host}"))),
            "the UDP twin lists {host}: {}",
            listing.body
        );
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn mutual_servers_with_different_cas_on_one_port_accept_only_their_own_clients() {
    let backend = backend().await;
    let certs = Certs::new("cluster.local");
    // Another organisation, so its CA has its own name (as real CAs do).
    let other_ca = Certs::new("partner.example");
    let (a, b) = ("a.quic-corp.com", "b.quic-corp.com");
    let cert_a = certs.dns("a", &[a]);
    let cert_b = certs.dns("b", &[b]);
    let client_a = certs.dns("client-a", &["client-a.quic-corp.com"]);
    let client_b = other_ca.dns("client-b", &["client-b.quic-corp.com"]);
    let unnamed_b = other_ca.dns("unnamed-b", &["someone.quic-corp.com"]);
    let mut tls_b = server_tls(TlsMode::Mutual, "b");
    tls_b.subject_alt_names = vec!["client-b.quic-corp.com".to_owned()];
    let gateway = start(test_options()).await;
    gateway
        .apply(one_https_port(
            backend,
            vec![
                server(a, server_tls(TlsMode::Mutual, "a")),
                server(b, tls_b),
            ],
            vec![
                file_credential("a", &cert_a, &certs.root()),
                file_credential("b", &cert_b, &other_ca.root()),
            ],
        ))
        .unwrap();
    let udp = gateway
        .quic_listener_address(443)
        .expect("two MUTUAL servers with their own CAs share a UDP twin");
    let to = |host: &str, cert: &Issued| H3Client {
        connect: udp,
        host: host.to_owned(),
        cacert: certs.root(),
        client_cert: Some((cert.cert.clone(), cert.key.clone())),
    };

    for (host, cert, client_san) in [
        (a, &client_a, "client-a.quic-corp.com"),
        (b, &client_b, "client-b.quic-corp.com"),
    ] {
        let reply = to(host, cert).run("/who", &[]).await;
        assert_eq!(
            reply.status,
            Some(200),
            "{host} with its own CA's client: {reply:?}"
        );
        assert!(
            xfcc(&reply).contains(&format!("DNS={client_san}")),
            "{reply:?}"
        );
    }
    refused(
        &to(a, &client_b).run("/x", &[]).await,
        UNKNOWN_CA,
        "a's host with a certificate only b's CA signed",
    );
    refused(
        &to(b, &client_a).run("/x", &[]).await,
        UNKNOWN_CA,
        "b's host with a certificate only a's CA signed",
    );
    refused(
        &to(b, &unnamed_b).run("/x", &[]).await,
        CERTIFICATE_UNKNOWN,
        "b's CA, but not one of b's subjectAltNames",
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_server_limited_to_tls12_stays_off_the_shared_twin_and_advertises_nothing() {
    let backend = backend().await;
    let certs = Certs::new("cluster.local");
    let (modern, legacy) = ("modern.quic-corp.com", "legacy.quic-corp.com");
    let modern_cert = certs.dns("modern", &[modern]);
    let legacy_cert = certs.dns("legacy", &[legacy]);
    let client = certs.dns("client", &["client.quic-corp.com"]);
    let mut only_12 = server_tls(TlsMode::Simple, "legacy");
    only_12.max_version = proto::TlsVersion::Tlsv12 as i32;
    let gateway = start(test_options()).await;
    gateway
        .apply(one_https_port(
            backend,
            vec![
                server(modern, server_tls(TlsMode::Mutual, "modern")),
                server(legacy, only_12),
            ],
            vec![
                file_credential("modern", &modern_cert, &certs.root()),
                file_credential("legacy", &legacy_cert, ""),
            ],
        ))
        .unwrap();
    let udp = gateway.quic_listener_address(443).unwrap();
    let over_h3 = |host: &str| H3Client {
        connect: udp,
        host: host.to_owned(),
        cacert: certs.root(),
        client_cert: Some((client.cert.clone(), client.key.clone())),
    };
    let served = over_h3(modern).run("/x", &[]).await;
    assert_eq!(served.status, Some(200), "{served:?}");
    let left_out = over_h3(legacy).run("/x", &[]).await;
    assert_eq!(
        left_out.status, None,
        "QUIC is TLS 1.3: no twin for a TLS 1.2 server: {left_out:?}"
    );

    let tcp = gateway.listener_address(443).unwrap();
    let over_tls12 = curl(&[
        "--http2",
        "--cacert",
        &certs.root(),
        "--resolve",
        &resolve(legacy, tcp),
        &url("https", legacy, tcp, "/x"),
    ])
    .await;
    assert_eq!(over_tls12.status, 200, "{over_tls12:?}");
    assert_eq!(
        over_tls12.header("alt-svc"),
        None,
        "no twin, no advertisement: {over_tls12:?}"
    );
    gateway.shutdown().await;
}
