//! Certificate signing through discovery's gRPC port with the real client: renewals for the
//! caller's own identity work; CSRs for another identity, malformed CSRs, expired and foreign
//! client certificates are refused with errors that say why. Gateways reach discovery's push
//! stream over the same mTLS port.

#![allow(clippy::unwrap_used)] // tests: a panic is how they report a failure

mod ca_support;

use std::time::{Duration, SystemTime};

use ca_support::{SigningMesh, foreign_ca, identity, identity_of};
use certs::{LeafSpec, RotatingCert, Validity};
use gateway::identity::{CaClient, CertificateRenewer, SignError};

#[tokio::test]
async fn a_workload_renews_its_own_identity_over_mtls() {
    let mesh = SigningMesh::start().await;
    let reviews = identity("default", "reviews");
    let cert = mesh.bootstrap(&reviews, Duration::from_secs(3600));
    let before = cert.current();
    let mut options = mesh.client_options();
    options.lifetime = Duration::from_secs(600);
    let renewer = CertificateRenewer::new(reviews.clone(), cert.clone(), options).unwrap();

    let not_after = renewer.renew().await.unwrap();

    let after = cert.current();
    assert_ne!(
        before.cert[0], after.cert[0],
        "a new certificate is installed"
    );
    assert_eq!(identity_of(&cert), reviews);
    let left = not_after.duration_since(SystemTime::now()).unwrap();
    assert!(
        left <= Duration::from_secs(600) && left > Duration::from_secs(500),
        "{left:?}"
    );
    // The chain ends in the mesh root and was issued by cluster1's intermediate.
    let issuer = certs::inspect::inspect(&after.cert[0]).unwrap().issuer;
    let intermediate = certs::inspect::inspect(mesh.cluster_ca.cert_der())
        .unwrap()
        .subject;
    assert_eq!(issuer, intermediate);
    assert_eq!(after.cert.last().unwrap(), &mesh.cluster_ca.roots()[0]);
    mesh.discovery.shutdown().await;
}

#[tokio::test]
async fn a_csr_for_another_identity_is_permission_denied_naming_both() {
    let mesh = SigningMesh::start().await;
    let reviews = identity("default", "reviews");
    let client = CaClient::new(
        mesh.client_options(),
        mesh.bootstrap(&reviews, Duration::from_secs(3600)),
    )
    .unwrap();
    let ratings = certs::new_csr(&identity("default", "ratings")).unwrap();

    let error = client.sign(&ratings.csr_pem).await.unwrap_err();

    let SignError::Refused { code, message, .. } = &error else {
        panic!("expected a refusal, got {error:?}");
    };
    assert_eq!(*code, tonic::Code::PermissionDenied, "{error}");
    assert!(
        message.contains("spiffe://cluster.local/ns/default/sa/ratings"),
        "{message}"
    );
    assert!(
        message.contains("spiffe://cluster.local/ns/default/sa/reviews"),
        "{message}"
    );
    mesh.discovery.shutdown().await;
}

#[tokio::test]
async fn malformed_csrs_are_invalid_arguments() {
    let mesh = SigningMesh::start().await;
    let reviews = identity("default", "reviews");
    let client = CaClient::new(
        mesh.client_options(),
        mesh.bootstrap(&reviews, Duration::from_secs(3600)),
    )
    .unwrap();
    let garbage =
        "-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n-----END CERTIFICATE REQUEST-----\n";
    for csr in ["", "not a certificate request", garbage] {
        let error = client.sign(csr).await.unwrap_err();
        let SignError::Refused { code, message, .. } = &error else {
            panic!("{csr:?}: expected a refusal, got {error:?}");
        };
        assert_eq!(*code, tonic::Code::InvalidArgument, "{csr:?}: {error}");
        assert!(message.starts_with("malformed CSR: "), "{message}");
    }
    mesh.discovery.shutdown().await;
}

#[tokio::test]
async fn unknown_clusters_are_not_found() {
    let mesh = SigningMesh::start().await;
    let reviews = identity("default", "reviews");
    let mut options = mesh.client_options();
    options.cluster = "cluster9".to_owned();
    let client =
        CaClient::new(options, mesh.bootstrap(&reviews, Duration::from_secs(3600))).unwrap();
    let csr = certs::new_csr(&reviews).unwrap();
    let error = client.sign(&csr.csr_pem).await.unwrap_err();
    let SignError::Refused { code, message, .. } = &error else {
        panic!("expected a refusal, got {error:?}");
    };
    assert_eq!(*code, tonic::Code::NotFound, "{error}");
    assert!(
        message.contains("cluster9") && message.contains("cluster1"),
        "{message}"
    );
    mesh.discovery.shutdown().await;
}

#[tokio::test]
async fn an_expired_client_certificate_fails_the_handshake() {
    let mesh = SigningMesh::start().await;
    let reviews = identity("default", "reviews");
    let hour = Duration::from_secs(3600);
    let now = SystemTime::now();
    let expired = mesh
        .cluster_ca
        .issue(&LeafSpec::for_identity(
            reviews.clone(),
            Validity::new(now - 2 * hour, now - hour).unwrap(),
        ))
        .unwrap();
    let cert = std::sync::Arc::new(RotatingCert::new(expired.certified_key().unwrap()).unwrap());
    let client = CaClient::new(mesh.client_options(), cert).unwrap();
    let csr = certs::new_csr(&reviews).unwrap();

    let error = client.sign(&csr.csr_pem).await.unwrap_err();

    assert!(matches!(error, SignError::Connect { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("certificate"), "{text}");
    assert!(text.to_lowercase().contains("expired"), "{text}");
    mesh.discovery.shutdown().await;
}

#[tokio::test]
async fn a_certificate_from_another_root_fails_the_handshake() {
    let mesh = SigningMesh::start().await;
    let reviews = identity("default", "reviews");
    let foreign = foreign_ca()
        .issue_workload(&reviews, Duration::from_secs(3600))
        .unwrap();
    let cert = std::sync::Arc::new(RotatingCert::new(foreign.certified_key().unwrap()).unwrap());
    let client = CaClient::new(mesh.client_options(), cert).unwrap();
    let csr = certs::new_csr(&reviews).unwrap();

    let error = client.sign(&csr.csr_pem).await.unwrap_err();

    assert!(matches!(error, SignError::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains("mTLS"), "{error}");
    mesh.discovery.shutdown().await;
}

#[tokio::test]
async fn a_client_trusting_another_root_refuses_discovery() {
    let mesh = SigningMesh::start().await;
    let reviews = identity("default", "reviews");
    let mut options = mesh.client_options();
    options.roots = foreign_ca().roots().to_vec();
    let client =
        CaClient::new(options, mesh.bootstrap(&reviews, Duration::from_secs(3600))).unwrap();
    let csr = certs::new_csr(&reviews).unwrap();
    let error = client.sign(&csr.csr_pem).await.unwrap_err();
    assert!(matches!(error, SignError::Connect { .. }), "{error:?}");
    mesh.discovery.shutdown().await;
}

#[tokio::test]
async fn gateways_follow_discovery_over_the_same_mtls_port() {
    use gateway::xds::{Client, ClientOptions, ConfigSink};
    use multicluster::proto::{GatewayConfig, GatewayIdentity};
    use tonic::transport::{Certificate, ClientTlsConfig, Identity as TonicIdentity};

    struct Discard;
    impl ConfigSink for Discard {
        fn apply(&self, _config: GatewayConfig) -> Result<(), Vec<String>> {
            Ok(())
        }
    }

    let mesh = SigningMesh::start().await;
    let tls = mesh
        .discovery
        .tls()
        .expect("discovery serves mTLS when it holds a CA");
    let gateway_id = identity("istio-system", "istio-eastwestgateway");
    let issued = mesh
        .cluster_ca
        .issue_workload(&gateway_id, Duration::from_secs(3600))
        .unwrap();
    let hello = GatewayIdentity {
        name: "istio-eastwestgateway".into(),
        namespace: "istio-system".into(),
        cluster: "cluster1".into(),
        network: "network1".into(),
        ..GatewayIdentity::default()
    };
    let uri = format!("https://{}", mesh.discovery.grpc_address());
    let mut with_cert = ClientOptions::new(uri.clone(), hello.clone());
    with_cert.tls = Some(
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&tls.roots_pem))
            .domain_name(discovery::ca::discovery_dns_name("istio-system"))
            .identity(TonicIdentity::from_pem(&issued.chain_pem, &issued.key_pem)),
    );
    let mut without_cert = ClientOptions::new(uri, hello);
    without_cert.tls = Some(
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&tls.roots_pem))
            .domain_name(discovery::ca::discovery_dns_name("istio-system")),
    );

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut clients = Vec::new();
    let mut statuses = Vec::new();
    for options in [with_cert, without_cert] {
        let client = Client::new(options);
        statuses.push(client.status());
        let mut stopped = stopped.clone();
        clients.push(tokio::spawn(client.run(Discard, async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })));
    }
    let mut with = statuses.remove(0);
    tokio::time::timeout(
        Duration::from_secs(10),
        with.wait_for(|status| status.last_applied_version.is_some()),
    )
    .await
    .expect("a gateway with a mesh certificate gets its configuration")
    .unwrap();
    let mut without = statuses.remove(0);
    // Wait for real attempts to fail, so "not connected" is not just "not tried yet".
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        without.wait_for(|status| status.connect_attempts >= 2 && status.last_error.is_some()),
    )
    .await
    .expect("the gateway without a certificate keeps trying")
    .unwrap()
    .clone();
    assert!(
        !status.connected,
        "a gateway without a client certificate must not get in: {status:?}"
    );
    assert!(status.last_applied_version.is_none(), "{status:?}");
    stop.send(true).unwrap();
    for client in clients {
        client.await.unwrap();
    }
    mesh.discovery.shutdown().await;
}
