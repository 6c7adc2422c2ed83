//! Mesh mTLS across clusters: one root, one intermediate per cluster, identities instead of
//! host names.
// Helpers here run only inside tests, where a failed setup step should fail the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use certs::{
    CaLifetimes, generate_mesh_files, identity_of_chain, istio_alpn, load_authority_files,
    mesh_client_config, mesh_server_config, peer_identity,
};
use common::*;

const ISTIO_SNI: &str = "outbound_.9080_._.reviews.default.svc.cluster.local";

#[tokio::test]
async fn leaf_from_cluster1_is_accepted_by_a_server_using_cluster2_files() {
    let dir = tempfile::tempdir().unwrap();
    generate_mesh_files(
        dir.path(),
        TD,
        &["cluster1", "cluster2"],
        CaLifetimes::default(),
        false,
    )
    .unwrap();
    let cluster1 = load_authority_files(&dir.path().join("cluster1")).unwrap();
    let cluster2 = load_authority_files(&dir.path().join("cluster2")).unwrap();
    assert_ne!(cluster1.cert_der(), cluster2.cert_der());

    let productpage = id("default", "productpage");
    let reviews = id("default", "reviews");
    // The server only knows cluster2's files: its own intermediate and root-cert.pem.
    let server = mesh_server_config(
        workload(&cluster2, &reviews),
        cluster2.roots(),
        Some(std::slice::from_ref(&productpage)),
        istio_alpn(),
    )
    .unwrap();
    let client = mesh_client_config(
        workload(&cluster1, &productpage),
        cluster1.roots(),
        std::slice::from_ref(&reviews),
        vec![b"istio".to_vec()],
    )
    .unwrap();

    let connection = handshake(server, client, ISTIO_SNI)
        .await
        .exchange()
        .await
        .unwrap();
    let server_side = connection.server_connection();
    assert_eq!(peer_identity(server_side).unwrap(), productpage);
    assert_eq!(server_side.alpn_protocol(), Some(&b"istio"[..]));
    assert_eq!(server_side.server_name(), Some(ISTIO_SNI));
    let client_side = connection.client_connection();
    assert_eq!(peer_identity(client_side).unwrap(), reviews);
    // The client saw the leaf and cluster2's intermediate (and the root).
    let chain = client_side.peer_certificates().unwrap();
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[1], *cluster2.cert_der());
    assert_eq!(identity_of_chain(chain).unwrap(), reviews);
}

#[tokio::test]
async fn leaf_from_another_root_is_refused() {
    let mesh = root()
        .generate_intermediate("cluster1", None, day())
        .unwrap();
    let foreign = root()
        .generate_intermediate("cluster1", None, day())
        .unwrap();
    // The client trusts the mesh, so only the server's check can refuse.
    let refusal = mesh_refusal(
        Side::new(workload(&mesh, &id("default", "reviews")), mesh.roots()),
        None,
        Side::new(
            workload(&foreign, &id("default", "productpage")),
            mesh.roots(),
        ),
        &[],
    )
    .await;
    // Both roots carry the same subject, so webpki tries the mesh root and the signature
    // fails; with distinct subjects it finds no issuer at all.
    assert!(
        refusal.starts_with("server: invalid peer certificate: BadSignature"),
        "{refusal}"
    );
}

#[tokio::test]
async fn leaf_from_a_root_with_another_name_has_no_issuer() {
    let mesh = root()
        .generate_intermediate("cluster1", None, day())
        .unwrap();
    let foreign = certs::Authority::generate_root("other.domain", day())
        .unwrap()
        .generate_intermediate("cluster9", None, day())
        .unwrap();
    let refusal = mesh_refusal(
        Side::new(workload(&mesh, &id("default", "reviews")), mesh.roots()),
        None,
        Side::new(
            workload(&foreign, &id("default", "productpage")),
            mesh.roots(),
        ),
        &[],
    )
    .await;
    assert!(
        refusal.starts_with("server: invalid peer certificate: UnknownIssuer"),
        "{refusal}"
    );
}

#[tokio::test]
async fn client_refuses_a_server_from_another_root() {
    let mesh = root()
        .generate_intermediate("cluster1", None, day())
        .unwrap();
    let foreign = root()
        .generate_intermediate("cluster1", None, day())
        .unwrap();
    let refusal = mesh_refusal(
        Side::new(workload(&foreign, &id("default", "reviews")), mesh.roots()),
        None,
        Side::new(workload(&mesh, &id("default", "productpage")), mesh.roots()),
        &[],
    )
    .await;
    assert!(
        refusal.contains("client: invalid peer certificate: BadSignature"),
        "{refusal}"
    );
}

#[tokio::test]
async fn expired_client_certificate_is_refused() {
    let ca = root()
        .generate_intermediate("cluster1", None, day())
        .unwrap();
    let refusal = mesh_refusal(
        Side::new(workload(&ca, &id("default", "reviews")), ca.roots()),
        None,
        Side::new(
            expired_workload(&ca, &id("default", "productpage")),
            ca.roots(),
        ),
        &[],
    )
    .await;
    assert!(
        refusal.starts_with("server: invalid peer certificate: certificate expired"),
        "{refusal}"
    );
}

#[tokio::test]
async fn client_identity_outside_the_allowed_set_is_refused() {
    let ca = root()
        .generate_intermediate("cluster1", None, day())
        .unwrap();
    let allowed = [id("default", "productpage")];
    let refusal = mesh_refusal(
        Side::new(workload(&ca, &id("default", "reviews")), ca.roots()),
        Some(&allowed),
        Side::new(workload(&ca, &id("default", "ratings")), ca.roots()),
        &[],
    )
    .await;
    assert!(
        refusal.contains("spiffe://cluster.local/ns/default/sa/ratings"),
        "{refusal}"
    );
    assert!(refusal.contains("not among the allowed"), "{refusal}");
}

#[tokio::test]
async fn client_refuses_an_unexpected_server_identity() {
    let ca = root()
        .generate_intermediate("cluster1", None, day())
        .unwrap();
    let refusal = mesh_refusal(
        Side::new(workload(&ca, &id("default", "impostor")), ca.roots()),
        None,
        Side::new(workload(&ca, &id("default", "productpage")), ca.roots()),
        &[id("default", "reviews")],
    )
    .await;
    assert!(
        refusal.contains("client: invalid peer certificate"),
        "{refusal}"
    );
    assert!(
        refusal.contains("server identity spiffe://cluster.local/ns/default/sa/impostor"),
        "{refusal}"
    );
    assert!(
        refusal.contains("spiffe://cluster.local/ns/default/sa/reviews"),
        "{refusal}"
    );
}

#[tokio::test]
async fn certificate_without_spiffe_id_is_refused_by_the_mesh() {
    let ca = root()
        .generate_intermediate("cluster1", None, day())
        .unwrap();
    let refusal = mesh_refusal(
        Side::new(workload(&ca, &id("default", "reviews")), ca.roots()),
        None,
        Side::new(
            rotating(&dns_leaf(&ca, &["client.example.com"])),
            ca.roots(),
        ),
        &[],
    )
    .await;
    assert!(refusal.contains("no SPIFFE id"), "{refusal}");
}

#[test]
fn configs_need_roots() {
    let ca = root();
    let certs = workload(&ca, &id("a", "b"));
    let err = mesh_server_config(certs.clone(), &[], None, istio_alpn()).unwrap_err();
    assert!(
        err.to_string().contains("needs at least one trusted CA"),
        "{err}"
    );
    let err = mesh_client_config(certs as Arc<_>, &[], &[], istio_alpn()).unwrap_err();
    assert!(
        err.to_string().contains("needs at least one trusted CA"),
        "{err}"
    );
}

/// One end of a mesh handshake: the certificate it presents and the roots it trusts.
struct Side<'a> {
    certs: Arc<certs::RotatingCert>,
    roots: &'a [rustls::pki_types::CertificateDer<'static>],
}

impl<'a> Side<'a> {
    fn new(
        certs: Arc<certs::RotatingCert>,
        roots: &'a [rustls::pki_types::CertificateDer<'static>],
    ) -> Self {
        Self { certs, roots }
    }
}

/// A mesh mTLS handshake the test expects to fail, with the server admitting only `allowed`
/// clients and the client expecting one of `expected` servers; the refusal as both sides saw it.
async fn mesh_refusal(
    server: Side<'_>,
    allowed: Option<&[certs::Identity]>,
    client: Side<'_>,
    expected: &[certs::Identity],
) -> String {
    let server = mesh_server_config(server.certs, server.roots, allowed, istio_alpn()).unwrap();
    let client = mesh_client_config(client.certs, client.roots, expected, istio_alpn()).unwrap();
    handshake(server, client, ISTIO_SNI).await.refusal().await
}
