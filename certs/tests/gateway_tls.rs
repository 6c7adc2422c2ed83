//! Gateway server TLS (conformance B3, B5, B6): MUTUAL allow-lists fail the handshake itself,
//! and version / cipher policies map onto rustls.
// Helpers here run only inside tests, where a failed setup step should fail the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use certs::tls_config::gateway::GatewayServerTls;
use certs::{
    Authority, IssuedCert, ServerTlsMode, ServerTlsPolicy, TlsVersion, UpstreamTlsMode,
    UpstreamTlsPolicy, cert_sha256_hex, gateway_server_config, spki_sha256_base64,
    upstream_client_config,
};
use common::*;
use rustls::crypto::ring::cipher_suite;
use rustls::{ClientConfig, ServerConfig, SupportedCipherSuite};

const HOST: &str = "httpbin.example.com";

struct Pki {
    server_ca: Authority,
    client_ca: Authority,
    server_cert: IssuedCert,
}

fn pki() -> Pki {
    let server_ca = root();
    let client_ca = Authority::generate_root("clients.example", day()).unwrap();
    let server_cert = dns_leaf(&server_ca, &[HOST]);
    Pki {
        server_ca,
        client_ca,
        server_cert,
    }
}

impl Pki {
    fn server(&self, policy: &ServerTlsPolicy) -> GatewayServerTls {
        gateway_server_config(
            policy,
            self.client_ca.roots(),
            rotating(&self.server_cert),
            vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        )
        .unwrap()
    }

    fn client(&self, client_cert: Option<&IssuedCert>) -> ClientConfig {
        let policy = UpstreamTlsPolicy {
            mode: if client_cert.is_some() {
                UpstreamTlsMode::Mutual
            } else {
                UpstreamTlsMode::Simple
            },
            ..UpstreamTlsPolicy::default()
        };
        let upstream = upstream_client_config(
            &policy,
            HOST,
            self.server_ca.roots(),
            client_cert.map(|c| rotating(c) as Arc<_>),
            vec![b"h2".to_vec()],
        )
        .unwrap();
        Arc::unwrap_or_clone(upstream.config)
    }

    fn client_cert(&self, san: &str) -> IssuedCert {
        dns_leaf(&self.client_ca, &[san])
    }
}

fn mutual(subject_alt_names: &[&str], spki: &[String], hashes: &[String]) -> ServerTlsPolicy {
    ServerTlsPolicy {
        mode: ServerTlsMode::Mutual,
        subject_alt_names: subject_alt_names.iter().map(|s| (*s).to_owned()).collect(),
        spki: spki.to_vec(),
        hashes: hashes.to_vec(),
        ..ServerTlsPolicy::default()
    }
}

async fn connect(server: ServerConfig, client: ClientConfig) -> Result<Established, String> {
    handshake(server, client, HOST).await.exchange().await
}

#[tokio::test]
async fn simple_serves_the_configured_certificate_without_asking_for_one() {
    let pki = pki();
    let server = pki.server(&ServerTlsPolicy::default());
    assert!(server.warnings.is_empty());
    let connection = connect(server.config, pki.client(None)).await.unwrap();
    assert_eq!(connection.server_leaf(), leaf_der(&pki.server_cert));
    assert!(connection.server_connection().peer_certificates().is_none());
    assert_eq!(
        connection.server_connection().alpn_protocol(),
        Some(&b"h2"[..])
    );
}

#[tokio::test]
async fn mutual_subject_alt_names() {
    let pki = pki();
    let policy = mutual(&["is5.istio.client"], &[], &[]);

    let good = pki.client_cert("is5.istio.client");
    let connection = connect(pki.server(&policy).config, pki.client(Some(&good)))
        .await
        .unwrap();
    let presented = connection.server_connection().peer_certificates().unwrap();
    assert_eq!(presented[0], leaf_der(&good));

    let other_san = pki.client_cert("other.istio.client");
    let refusal = connect(pki.server(&policy).config, pki.client(Some(&other_san)))
        .await
        .err()
        .unwrap();
    assert!(
        refusal.starts_with("server: invalid peer certificate"),
        "{refusal}"
    );
    assert!(
        refusal.contains("[\"other.istio.client\"] match none of subjectAltNames"),
        "{refusal}"
    );

    let refusal = connect(pki.server(&policy).config, pki.client(None))
        .await
        .err()
        .unwrap();
    assert!(
        refusal.contains("server: peer sent no certificates"),
        "{refusal}"
    );

    // Right SAN, wrong CA.
    let stranger = dns_leaf(&root(), &["is5.istio.client"]);
    let refusal = connect(pki.server(&policy).config, pki.client(Some(&stranger)))
        .await
        .err()
        .unwrap();
    assert!(
        refusal.starts_with("server: invalid peer certificate"),
        "{refusal}"
    );
}

#[tokio::test]
async fn mutual_spki_pins() {
    let pki = pki();
    let pinned = pki.client_cert("a.client");
    let unpinned = pki.client_cert("a.client");
    let policy = mutual(&[], &[spki_sha256_base64(&leaf_der(&pinned)).unwrap()], &[]);

    connect(pki.server(&policy).config, pki.client(Some(&pinned)))
        .await
        .unwrap();
    let refusal = connect(pki.server(&policy).config, pki.client(Some(&unpinned)))
        .await
        .err()
        .unwrap();
    assert!(
        refusal.contains("matches none of verifyCertificateSpki/verifyCertificateHash"),
        "{refusal}"
    );
    assert!(
        refusal.contains(&spki_sha256_base64(&leaf_der(&unpinned)).unwrap()),
        "{refusal}"
    );
}

#[tokio::test]
async fn mutual_hash_pins_with_colons_and_uppercase() {
    let pki = pki();
    let pinned = pki.client_cert("a.client");
    let unpinned = pki.client_cert("a.client");
    let hex = cert_sha256_hex(&leaf_der(&pinned)).to_uppercase();
    let with_colons = hex
        .as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let policy = mutual(&[], &[], &[with_colons]);

    connect(pki.server(&policy).config, pki.client(Some(&pinned)))
        .await
        .unwrap();
    let refusal = connect(pki.server(&policy).config, pki.client(Some(&unpinned)))
        .await
        .err()
        .unwrap();
    assert!(
        refusal.contains(&cert_sha256_hex(&leaf_der(&unpinned))),
        "{refusal}"
    );
}

#[tokio::test]
async fn spki_or_hash_either_admits_and_san_still_applies() {
    let pki = pki();
    let by_hash = pki.client_cert("a.client");
    let by_spki = pki.client_cert("a.client");
    let neither = pki.client_cert("a.client");
    let pinned_wrong_san = pki.client_cert("b.client");
    let policy = mutual(
        &["a.client"],
        &[
            spki_sha256_base64(&leaf_der(&by_spki)).unwrap(),
            spki_sha256_base64(&leaf_der(&pinned_wrong_san)).unwrap(),
        ],
        &[cert_sha256_hex(&leaf_der(&by_hash))],
    );
    connect(pki.server(&policy).config, pki.client(Some(&by_hash)))
        .await
        .unwrap();
    connect(pki.server(&policy).config, pki.client(Some(&by_spki)))
        .await
        .unwrap();
    assert!(
        connect(pki.server(&policy).config, pki.client(Some(&neither)))
            .await
            .is_err()
    );
    let refusal = connect(
        pki.server(&policy).config,
        pki.client(Some(&pinned_wrong_san)),
    )
    .await
    .err()
    .unwrap();
    assert!(
        refusal.contains("match none of subjectAltNames"),
        "{refusal}"
    );
}

#[tokio::test]
async fn optional_mutual_accepts_no_certificate_but_checks_a_presented_one() {
    let pki = pki();
    let policy = ServerTlsPolicy {
        mode: ServerTlsMode::OptionalMutual,
        subject_alt_names: vec!["a.client".to_owned()],
        ..ServerTlsPolicy::default()
    };
    connect(pki.server(&policy).config, pki.client(None))
        .await
        .unwrap();
    let good = pki.client_cert("a.client");
    connect(pki.server(&policy).config, pki.client(Some(&good)))
        .await
        .unwrap();
    let bad = pki.client_cert("b.client");
    assert!(
        connect(pki.server(&policy).config, pki.client(Some(&bad)))
            .await
            .is_err()
    );
}

#[test]
fn configuration_errors_are_reported_before_serving() {
    let pki = pki();
    let certs = rotating(&pki.server_cert);
    let build = |policy: &ServerTlsPolicy, ca: &[rustls_pki_types::CertificateDer<'static>]| {
        gateway_server_config(policy, ca, certs.clone(), Vec::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };

    let err = build(&mutual(&[], &[], &[]), &[]);
    assert!(
        err.contains("tls mode MUTUAL needs caCertificates"),
        "{err}"
    );

    let err = build(
        &mutual(&[], &["not-a-pin".to_owned()], &[]),
        pki.client_ca.roots(),
    );
    assert!(
        err.contains("verifyCertificateSpki entry \"not-a-pin\""),
        "{err}"
    );

    let err = build(
        &mutual(&[], &[], &["abcd".to_owned()]),
        pki.client_ca.roots(),
    );
    assert!(
        err.contains("verifyCertificateHash entry \"abcd\""),
        "{err}"
    );

    let legacy = ServerTlsPolicy {
        min: TlsVersion::V1_0,
        max: TlsVersion::V1_1,
        ..ServerTlsPolicy::default()
    };
    let err = build(&legacy, &[]);
    assert!(
        err.contains("TLSV1_0..TLSV1_1 allows only TLS 1.0/1.1"),
        "{err}"
    );

    let unknown_suite = ServerTlsPolicy {
        cipher_suites: vec![
            "ECDHE-RSA-AES256-GCM-SHA384".to_owned(),
            "NOT-A-SUITE".to_owned(),
        ],
        ..ServerTlsPolicy::default()
    };
    let err = build(&unknown_suite, &[]);
    assert!(
        err.contains("unknown cipher suite \"NOT-A-SUITE\""),
        "{err}"
    );
}

fn client_with(
    pki: &Pki,
    versions: &[&'static rustls::SupportedProtocolVersion],
    suites: Option<Vec<SupportedCipherSuite>>,
) -> ClientConfig {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(suites) = suites {
        provider.cipher_suites = suites;
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.server_ca.roots()[0].clone()).unwrap();
    ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn negotiated_version(connection: &Established) -> rustls::ProtocolVersion {
    connection.server_connection().protocol_version().unwrap()
}

#[tokio::test]
async fn version_ranges_are_honoured_in_the_handshake() {
    let pki = pki();
    let tls13_only = ServerTlsPolicy {
        min: TlsVersion::V1_3,
        ..ServerTlsPolicy::default()
    };
    let tls12_client = client_with(&pki, &[&rustls::version::TLS12], None);
    let refusal = connect(pki.server(&tls13_only).config, tls12_client)
        .await
        .err()
        .unwrap();
    assert!(
        refusal.contains("server: peer is incompatible"),
        "{refusal}"
    );

    let tls12_only = ServerTlsPolicy {
        max: TlsVersion::V1_2,
        ..ServerTlsPolicy::default()
    };
    let connection = connect(pki.server(&tls12_only).config, pki.client(None))
        .await
        .unwrap();
    assert_eq!(
        negotiated_version(&connection),
        rustls::ProtocolVersion::TLSv1_2
    );

    let widened = ServerTlsPolicy {
        min: TlsVersion::V1_0,
        max: TlsVersion::V1_3,
        ..ServerTlsPolicy::default()
    };
    let server = pki.server(&widened);
    assert_eq!(server.warnings.len(), 1, "{:?}", server.warnings);
    let connection = connect(server.config, pki.client(None)).await.unwrap();
    assert_eq!(
        negotiated_version(&connection),
        rustls::ProtocolVersion::TLSv1_3
    );
    let tls12_client = client_with(&pki, &[&rustls::version::TLS12], None);
    let connection = connect(pki.server(&widened).config, tls12_client)
        .await
        .unwrap();
    assert_eq!(
        negotiated_version(&connection),
        rustls::ProtocolVersion::TLSv1_2
    );
}

#[tokio::test]
async fn tls12_client_offering_only_other_suites_fails() {
    let pki = pki();
    // The test certificates are ECDSA, so the ECDSA names are the ones a handshake can use.
    let policy = ServerTlsPolicy {
        cipher_suites: vec![
            "ECDHE-ECDSA-AES256-GCM-SHA384".to_owned(),
            "ECDHE-RSA-AES256-GCM-SHA384".to_owned(),
        ],
        ..ServerTlsPolicy::default()
    };
    let other_suites = client_with(
        &pki,
        &[&rustls::version::TLS12],
        Some(vec![
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ]),
    );
    let refusal = connect(pki.server(&policy).config, other_suites)
        .await
        .err()
        .unwrap();
    assert!(
        refusal.contains("server: peer is incompatible"),
        "{refusal}"
    );

    let listed_suite = client_with(
        &pki,
        &[&rustls::version::TLS12],
        Some(vec![cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]),
    );
    let connection = connect(pki.server(&policy).config, listed_suite)
        .await
        .unwrap();
    assert_eq!(
        connection
            .server_connection()
            .negotiated_cipher_suite()
            .unwrap()
            .suite(),
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    );

    // TLS 1.3 stays available whatever the list says, as in Envoy.
    let tls13_client = client_with(&pki, &[&rustls::version::TLS13], None);
    connect(pki.server(&policy).config, tls13_client)
        .await
        .unwrap();
}

#[test]
fn quic_config_needs_tls13() {
    let tls12_only = ServerTlsPolicy {
        max: TlsVersion::V1_2,
        ..ServerTlsPolicy::default()
    };
    assert!(
        !certs::resolve_server_tls(&tls12_only, &[])
            .unwrap()
            .allows_tls13()
    );
    assert!(
        certs::resolve_server_tls(&ServerTlsPolicy::default(), &[])
            .unwrap()
            .allows_tls13()
    );
}
