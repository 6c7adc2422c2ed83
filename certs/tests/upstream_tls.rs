//! TLS origination towards upstreams (DestinationRule `tls`): CA required, host name or
//! `subjectAltNames` check, SNI override, client certificate for MUTUAL.
// Helpers here run only inside tests, where a failed setup step should fail the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use certs::{
    ServerTlsMode, ServerTlsPolicy, UpstreamTlsMode, UpstreamTlsPolicy, gateway_server_config,
    upstream_client_config,
};
use common::*;
use rustls::ServerConfig;

fn nginx_server(
    ca: &certs::Authority,
    policy: &ServerTlsPolicy,
    client_ca: &certs::Authority,
) -> ServerConfig {
    let cert = dns_leaf(ca, &["nginx.example.com"]);
    gateway_server_config(policy, client_ca.roots(), rotating(&cert), Vec::new())
        .unwrap()
        .config
}

async fn originate(
    server: ServerConfig,
    upstream: certs::UpstreamTls,
) -> Result<Established, String> {
    let name = upstream.server_name.to_str().into_owned();
    handshake(server, Arc::unwrap_or_clone(upstream.config), &name)
        .await
        .exchange()
        .await
}

#[tokio::test]
async fn simple_checks_the_host_name() {
    let ca = root();
    let policy = UpstreamTlsPolicy::default();
    let good =
        upstream_client_config(&policy, "nginx.example.com", ca.roots(), None, Vec::new()).unwrap();
    originate(nginx_server(&ca, &ServerTlsPolicy::default(), &ca), good)
        .await
        .unwrap();

    let wrong_host =
        upstream_client_config(&policy, "other.example.com", ca.roots(), None, Vec::new()).unwrap();
    let refusal = originate(
        nginx_server(&ca, &ServerTlsPolicy::default(), &ca),
        wrong_host,
    )
    .await
    .err()
    .unwrap();
    assert!(
        refusal.contains("client: invalid peer certificate: certificate not valid for name"),
        "{refusal}"
    );
}

#[tokio::test]
async fn sni_override_is_sent_and_checked() {
    let ca = root();
    let policy = UpstreamTlsPolicy {
        sni: Some("nginx.example.com".to_owned()),
        ..UpstreamTlsPolicy::default()
    };
    let upstream = upstream_client_config(
        &policy,
        "my-nginx.default.svc.cluster.local",
        ca.roots(),
        None,
        Vec::new(),
    )
    .unwrap();
    assert_eq!(upstream.server_name.to_str(), "nginx.example.com");
    let connection = originate(
        nginx_server(&ca, &ServerTlsPolicy::default(), &ca),
        upstream,
    )
    .await
    .unwrap();
    assert_eq!(
        connection.server_connection().server_name(),
        Some("nginx.example.com")
    );
}

#[tokio::test]
async fn subject_alt_names_replace_the_host_check() {
    let ca = root();
    let listed = UpstreamTlsPolicy {
        subject_alt_names: vec!["nginx.example.com".to_owned()],
        ..UpstreamTlsPolicy::default()
    };
    let upstream =
        upstream_client_config(&listed, "10-0-0-7.internal", ca.roots(), None, Vec::new()).unwrap();
    originate(
        nginx_server(&ca, &ServerTlsPolicy::default(), &ca),
        upstream,
    )
    .await
    .unwrap();

    let unlisted = UpstreamTlsPolicy {
        subject_alt_names: vec!["api.example.com".to_owned()],
        ..UpstreamTlsPolicy::default()
    };
    let upstream =
        upstream_client_config(&unlisted, "nginx.example.com", ca.roots(), None, Vec::new())
            .unwrap();
    let refusal = originate(
        nginx_server(&ca, &ServerTlsPolicy::default(), &ca),
        upstream,
    )
    .await
    .err()
    .unwrap();
    assert!(
        refusal.contains("match none of subjectAltNames [\"api.example.com\"]"),
        "{refusal}"
    );

    // The SAN list never bypasses the chain check.
    let stranger = root();
    let upstream =
        upstream_client_config(&listed, "nginx.example.com", ca.roots(), None, Vec::new()).unwrap();
    let refusal = originate(
        nginx_server(&stranger, &ServerTlsPolicy::default(), &ca),
        upstream,
    )
    .await
    .err()
    .unwrap();
    assert!(
        refusal.contains("client: invalid peer certificate"),
        "{refusal}"
    );
}

#[tokio::test]
async fn mutual_presents_the_client_certificate() {
    let ca = root();
    let client_ca = certs::Authority::generate_root("clients.example", day()).unwrap();
    let client_cert = dns_leaf(&client_ca, &["egress.client"]);
    let server_policy = ServerTlsPolicy {
        mode: ServerTlsMode::Mutual,
        subject_alt_names: vec!["egress.client".to_owned()],
        ..ServerTlsPolicy::default()
    };
    let policy = UpstreamTlsPolicy {
        mode: UpstreamTlsMode::Mutual,
        ..UpstreamTlsPolicy::default()
    };
    let upstream = upstream_client_config(
        &policy,
        "nginx.example.com",
        ca.roots(),
        Some(rotating(&client_cert)),
        Vec::new(),
    )
    .unwrap();
    let connection = originate(nginx_server(&ca, &server_policy, &client_ca), upstream)
        .await
        .unwrap();
    assert_eq!(
        connection.server_connection().peer_certificates().unwrap()[0],
        leaf_der(&client_cert)
    );
}

#[test]
fn misconfigurations_are_errors() {
    let ca = root();
    let mutual = UpstreamTlsPolicy {
        mode: UpstreamTlsMode::Mutual,
        ..UpstreamTlsPolicy::default()
    };
    let err =
        upstream_client_config(&mutual, "a.example", ca.roots(), None, Vec::new()).unwrap_err();
    assert!(
        err.to_string()
            .contains("MUTUAL needs clientCertificate and privateKey"),
        "{err}"
    );

    let err = upstream_client_config(
        &UpstreamTlsPolicy::default(),
        "a.example",
        &[],
        None,
        Vec::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("needs at least one trusted CA"),
        "{err}"
    );

    let err = upstream_client_config(
        &UpstreamTlsPolicy::default(),
        "bad host!",
        ca.roots(),
        None,
        Vec::new(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"bad host!\" is not a valid TLS server name"),
        "{err}"
    );
}
