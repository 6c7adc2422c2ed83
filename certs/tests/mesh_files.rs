//! `isthmus certs`: the Istio multicluster CA file layout.
// Helpers here run only inside tests, where a failed setup step should fail the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;

use certs::files::{FilesError, load_root_files};
use certs::{CaLifetimes, generate_mesh_files, load_authority_files};
use common::TD;

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn cert_count(path: &Path) -> usize {
    certs::pem::certificates(read(path).as_bytes())
        .unwrap()
        .len()
}

#[test]
fn writes_the_istio_layout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let result = generate_mesh_files(
        out,
        TD,
        &["cluster1", "cluster2"],
        CaLifetimes::default(),
        false,
    )
    .unwrap();
    assert!(!result.root_reused);
    assert_eq!(result.written.len(), 2 + 2 * 4);

    let root_cert = read(&out.join("root-cert.pem"));
    assert!(out.join("root-key.pem").exists());
    for cluster in ["cluster1", "cluster2"] {
        let dir = out.join(cluster);
        for file in [
            "ca-cert.pem",
            "ca-key.pem",
            "root-cert.pem",
            "cert-chain.pem",
        ] {
            assert!(dir.join(file).exists(), "{cluster}/{file}");
        }
        assert_eq!(read(&dir.join("root-cert.pem")), root_cert);
        // cert-chain.pem = intermediate + root, as Istio's plugged-in CA expects.
        assert_eq!(cert_count(&dir.join("cert-chain.pem")), 2);
        assert!(read(&dir.join("cert-chain.pem")).starts_with(&read(&dir.join("ca-cert.pem"))));
        assert!(read(&dir.join("cert-chain.pem")).ends_with(&root_cert));
        let ca = load_authority_files(&dir).unwrap();
        assert!(!ca.is_root());
        let info = certs::inspect::inspect(ca.cert_der()).unwrap();
        assert!(info.subject.contains(cluster), "{}", info.subject);
        assert_eq!(
            info.uri_sans().collect::<Vec<_>>(),
            [format!("spiffe://{TD}")]
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for key in [out.join("root-key.pem"), out.join("cluster1/ca-key.pem")] {
            let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", key.display());
        }
    }
}

#[test]
fn refuses_to_overwrite_and_leaves_files_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    generate_mesh_files(out, TD, &["cluster1"], CaLifetimes::default(), false).unwrap();
    let before = read(&out.join("cluster1/ca-cert.pem"));

    let err = generate_mesh_files(
        out,
        TD,
        &["cluster2", "cluster1"],
        CaLifetimes::default(),
        false,
    )
    .unwrap_err();
    assert!(matches!(err, FilesError::Exists { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("cluster1/ca-cert.pem: already exists; pass --force"),
        "{err}"
    );
    assert_eq!(read(&out.join("cluster1/ca-cert.pem")), before);
    assert!(
        !out.join("cluster2").exists(),
        "a refused run must not write anything"
    );
}

#[test]
fn adding_a_cluster_later_reuses_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    generate_mesh_files(out, TD, &["cluster1"], CaLifetimes::default(), false).unwrap();
    let root_before = read(&out.join("root-cert.pem"));
    let result =
        generate_mesh_files(out, TD, &["cluster3"], CaLifetimes::default(), false).unwrap();
    assert!(result.root_reused);
    assert_eq!(read(&out.join("root-cert.pem")), root_before);
    assert_eq!(read(&out.join("cluster3/root-cert.pem")), root_before);
    load_authority_files(&out.join("cluster3")).unwrap();
}

#[test]
fn force_makes_everything_anew() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    generate_mesh_files(out, TD, &["cluster1"], CaLifetimes::default(), false).unwrap();
    let root_before = read(&out.join("root-cert.pem"));
    let ca_before = read(&out.join("cluster1/ca-cert.pem"));
    let result = generate_mesh_files(out, TD, &["cluster1"], CaLifetimes::default(), true).unwrap();
    assert!(!result.root_reused);
    assert_ne!(read(&out.join("root-cert.pem")), root_before);
    assert_ne!(read(&out.join("cluster1/ca-cert.pem")), ca_before);
    load_authority_files(&out.join("cluster1")).unwrap();
}

#[test]
fn bad_requests_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let err = generate_mesh_files(out, TD, &[], CaLifetimes::default(), false).unwrap_err();
    assert!(err.to_string().contains("no clusters given"), "{err}");
    let err =
        generate_mesh_files(out, TD, &["c1", "c1"], CaLifetimes::default(), false).unwrap_err();
    assert!(err.to_string().contains("\"c1\" is listed twice"), "{err}");
    let err =
        generate_mesh_files(out, TD, &["../escape"], CaLifetimes::default(), false).unwrap_err();
    assert!(
        err.to_string().contains("bad cluster name \"../escape\""),
        "{err}"
    );
    let err = generate_mesh_files(out, "Not A Domain", &["c1"], CaLifetimes::default(), false)
        .unwrap_err();
    assert!(err.to_string().contains("bad trust domain"), "{err}");
    assert!(
        fs::read_dir(out).unwrap().next().is_none(),
        "nothing written"
    );

    fs::write(out.join("root-cert.pem"), "x").unwrap();
    let err = generate_mesh_files(out, TD, &["c1"], CaLifetimes::default(), false).unwrap_err();
    assert!(
        err.to_string()
            .contains("found root-cert.pem but not root-key.pem"),
        "{err}"
    );
    assert!(load_root_files(out).is_err());
}

#[test]
fn tampered_files_fail_to_load_with_the_directory_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    generate_mesh_files(
        out,
        TD,
        &["cluster1", "cluster2"],
        CaLifetimes::default(),
        false,
    )
    .unwrap();
    // cluster2's key next to cluster1's certificate.
    fs::copy(
        out.join("cluster2/ca-key.pem"),
        out.join("cluster1/ca-key.pem"),
    )
    .unwrap();
    let err = load_authority_files(&out.join("cluster1")).unwrap_err();
    assert!(err.to_string().contains("cluster1"), "{err}");
    assert!(
        err.to_string()
            .contains("ca-key.pem does not match ca-cert.pem"),
        "{err}"
    );

    fs::remove_file(out.join("cluster2/ca-cert.pem")).unwrap();
    let err = load_authority_files(&out.join("cluster2")).unwrap_err();
    assert!(
        err.to_string().contains("ca-cert.pem: cannot read"),
        "{err}"
    );
}

#[tokio::test]
async fn workload_files_load_back_as_tls_material() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    generate_mesh_files(out, TD, &["cluster1"], CaLifetimes::default(), false).unwrap();
    let ca = load_authority_files(&out.join("cluster1")).unwrap();
    let gateway = common::id("istio-system", "istio-eastwestgateway-service-account");
    let issued = ca
        .issue_workload(&gateway, std::time::Duration::from_secs(3600))
        .unwrap();
    let certs_dir = out.join("gateway-certs");
    certs::write_workload_files(&certs_dir, &issued, &ca, false).unwrap();
    let material = certs::load_pem_files(
        &certs_dir.join("cert-chain.pem"),
        &certs_dir.join("key.pem"),
        Some(&certs_dir.join("root-cert.pem")),
    )
    .unwrap();
    assert_eq!(
        certs::identity_of_chain(&material.cert_chain).unwrap(),
        gateway
    );
    assert_eq!(material.ca_certs, ca.roots());
    let err = certs::write_workload_files(&certs_dir, &issued, &ca, false).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
}
