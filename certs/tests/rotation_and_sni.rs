//! Rotation without dropping connections (B4), and certificate choice by SNI (B2).
// Helpers here run only inside tests, where a failed setup step should fail the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use certs::{
    ServerTlsPolicy, SniCertResolver, UpstreamTlsPolicy, gateway_server_config, istio_alpn,
    mesh_client_config, mesh_server_config, peer_identity, upstream_client_config,
};
use common::*;
use rustls::ClientConfig;
use rustls::server::ResolvesServerCert;

fn trusting_client(ca: &certs::Authority, host: &str, sans: &[&str]) -> ClientConfig {
    let policy = UpstreamTlsPolicy {
        subject_alt_names: sans.iter().map(|s| (*s).to_owned()).collect(),
        ..UpstreamTlsPolicy::default()
    };
    let upstream = upstream_client_config(&policy, host, ca.roots(), None, Vec::new()).unwrap();
    Arc::unwrap_or_clone(upstream.config)
}

#[tokio::test]
async fn new_handshakes_get_the_replacement_while_old_connections_keep_working() {
    let ca = root();
    let old = dns_leaf(&ca, &["httpbin.example.com"]);
    let new = dns_leaf(&ca, &["httpbin.example.com"]);
    let rotating_cert = rotating(&old);
    let server = Arc::new(
        gateway_server_config(
            &ServerTlsPolicy::default(),
            &[],
            rotating_cert.clone(),
            Vec::new(),
        )
        .unwrap()
        .config,
    );
    let client = Arc::new(trusting_client(&ca, "httpbin.example.com", &[]));

    let mut before = handshake_arc(server.clone(), client.clone(), "httpbin.example.com")
        .await
        .exchange()
        .await
        .unwrap();
    assert_eq!(before.server_leaf(), leaf_der(&old));

    rotating_cert.replace(new.certified_key().unwrap()).unwrap();

    // A fresh client: one that kept the session cache would resume the old session, and a
    // resumed TLS session carries no certificate at all.
    let fresh_client = Arc::new(trusting_client(&ca, "httpbin.example.com", &[]));
    let after = handshake_arc(server, fresh_client, "httpbin.example.com")
        .await
        .exchange()
        .await
        .unwrap();
    assert_eq!(after.server_leaf(), leaf_der(&new));
    // The connection made before the swap still carries traffic, on the old certificate.
    before.ping_pong().await.unwrap();
    before.ping_pong().await.unwrap();
    assert_eq!(before.server_leaf(), leaf_der(&old));
}

#[tokio::test]
async fn client_side_rotation_changes_the_presented_identity() {
    let ca = root()
        .generate_intermediate("cluster1", None, day())
        .unwrap();
    let client_cert = workload(&ca, &id("default", "productpage"));
    let server = Arc::new(
        mesh_server_config(
            workload(&ca, &id("default", "reviews")),
            ca.roots(),
            None,
            istio_alpn(),
        )
        .unwrap(),
    );
    let client =
        Arc::new(mesh_client_config(client_cert.clone(), ca.roots(), &[], istio_alpn()).unwrap());
    let first = handshake_arc(server.clone(), client.clone(), "reviews")
        .await
        .exchange()
        .await
        .unwrap();
    assert_eq!(
        peer_identity(first.server_connection()).unwrap(),
        id("default", "productpage")
    );

    let renewed = ca
        .issue_workload(
            &id("default", "productpage-v2"),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    client_cert
        .replace(renewed.certified_key().unwrap())
        .unwrap();
    // Same resolver, fresh session cache (see above: resumption would skip certificates).
    let client = Arc::new(mesh_client_config(client_cert, ca.roots(), &[], istio_alpn()).unwrap());
    let second = handshake_arc(server, client, "reviews")
        .await
        .exchange()
        .await
        .unwrap();
    assert_eq!(
        peer_identity(second.server_connection()).unwrap(),
        id("default", "productpage-v2")
    );
}

#[tokio::test]
async fn certificate_is_chosen_by_sni() {
    let ca = root();
    let exact = dns_leaf(&ca, &["a.example.com"]);
    let wildcard = dns_leaf(&ca, &["*.example.com"]);
    let deeper = dns_leaf(&ca, &["*.b.example.com"]);
    let fallback = dns_leaf(&ca, &["default.example.org"]);
    let mut resolver = SniCertResolver::new();
    resolver.add("a.example.com", rotating(&exact)).unwrap();
    resolver.add("*.example.com", rotating(&wildcard)).unwrap();
    resolver.add("*.b.example.com", rotating(&deeper)).unwrap();
    resolver.add("*", rotating(&fallback)).unwrap();
    let resolver: Arc<dyn ResolvesServerCert> = Arc::new(resolver);
    let server = Arc::new(
        gateway_server_config(&ServerTlsPolicy::default(), &[], resolver, Vec::new())
            .unwrap()
            .config,
    );
    let every_name = [
        "a.example.com",
        "*.example.com",
        "*.b.example.com",
        "default.example.org",
    ];
    for (sni, expected) in [
        ("a.example.com", &exact),
        ("A.Example.COM", &exact),
        ("z.example.com", &wildcard),
        ("x.y.example.com", &wildcard),
        ("x.b.example.com", &deeper),
        ("other.org", &fallback),
        ("example.com", &fallback),
    ] {
        let client = Arc::new(trusting_client(&ca, sni, &every_name));
        let connection = handshake_arc(server.clone(), client, sni)
            .await
            .exchange()
            .await
            .unwrap();
        assert_eq!(connection.server_leaf(), leaf_der(expected), "SNI {sni}");
    }
}

#[tokio::test]
async fn unknown_sni_without_default_fails_the_handshake() {
    let ca = root();
    let mut resolver = SniCertResolver::new();
    resolver
        .add(
            "a.example.com",
            rotating(&dns_leaf(&ca, &["a.example.com"])),
        )
        .unwrap();
    let server = gateway_server_config(
        &ServerTlsPolicy::default(),
        &[],
        Arc::new(resolver),
        Vec::new(),
    )
    .unwrap()
    .config;
    let client = trusting_client(&ca, "b.example.com", &["a.example.com"]);
    let refusal = handshake(server, client, "b.example.com")
        .await
        .refusal()
        .await;
    assert!(
        refusal.contains("no server certificate chain resolved"),
        "{refusal}"
    );
}

#[test]
fn duplicate_hosts_are_refused() {
    let ca = root();
    let cert = rotating(&dns_leaf(&ca, &["a.example.com"]));
    let mut resolver = SniCertResolver::new();
    resolver.add("a.example.com", cert.clone()).unwrap();
    resolver.add("*.example.com", cert.clone()).unwrap();
    resolver.add("*", cert.clone()).unwrap();
    for host in ["A.example.com", "*.example.com", "*"] {
        let err = resolver.add(host, cert.clone()).unwrap_err();
        assert!(
            err.to_string().contains("given a certificate twice"),
            "{host}: {err}"
        );
    }
}
