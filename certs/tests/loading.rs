//! Loading TLS material from PEM files and Kubernetes Secrets (B1, B4), with errors that name
//! the file or Secret key and what is wrong.
// Helpers here run only inside tests, where a failed setup step should fail the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use certs::{
    LoadError, SecretError, ca_from_secret, ca_secret_name, load_pem_files, material_from_secret,
};
use common::*;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn secret(name: &str, type_: &str, data: &[(&str, &str)], string_data: &[(&str, &str)]) -> Secret {
    let bytes: BTreeMap<String, ByteString> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect();
    let strings: BTreeMap<String, String> = string_data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("istio-system".to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some(type_.to_owned()),
        data: (!bytes.is_empty()).then_some(bytes),
        string_data: (!strings.is_empty()).then_some(strings),
        ..Secret::default()
    }
}

struct Fixture {
    chain: String,
    key: String,
    other_key: String,
    ca: String,
    leaf: rustls_pki_types::CertificateDer<'static>,
}

fn fixture() -> Fixture {
    let ca = root();
    let issued = dns_leaf(&ca, &["bookinfo.example.com"]);
    let other = dns_leaf(&ca, &["bookinfo.example.com"]);
    Fixture {
        leaf: leaf_der(&issued),
        chain: issued.chain_pem,
        key: issued.key_pem,
        other_key: other.key_pem,
        ca: ca.root_pem(),
    }
}

#[test]
fn kubernetes_tls_secret() {
    let f = fixture();
    let s = secret(
        "bookinfo-credential",
        "kubernetes.io/tls",
        &[("tls.crt", &f.chain), ("tls.key", &f.key)],
        &[],
    );
    let material = material_from_secret(&s, None).unwrap();
    assert_eq!(material.cert_chain[0], f.leaf);
    assert!(material.ca_certs.is_empty());
    material.certified_key().unwrap();
}

#[test]
fn generic_secret_with_ca() {
    let f = fixture();
    let s = secret(
        "bookinfo-credential",
        "Opaque",
        &[
            ("tls.crt", &f.chain),
            ("tls.key", &f.key),
            ("ca.crt", &f.ca),
        ],
        &[],
    );
    let material = material_from_secret(&s, None).unwrap();
    assert_eq!(material.ca_certs.len(), 1);
}

#[test]
fn ca_in_a_separate_cacert_secret() {
    let f = fixture();
    assert_eq!(
        ca_secret_name("bookinfo-credential"),
        "bookinfo-credential-cacert"
    );
    let main = secret(
        "bookinfo-credential",
        "kubernetes.io/tls",
        &[("tls.crt", &f.chain), ("tls.key", &f.key)],
        &[],
    );
    let ca = secret(
        "bookinfo-credential-cacert",
        "Opaque",
        &[("ca.crt", &f.ca)],
        &[],
    );
    let material = material_from_secret(&main, Some(&ca)).unwrap();
    assert_eq!(material.ca_certs, ca_from_secret(&ca).unwrap());
    assert_eq!(material.ca_certs.len(), 1);
}

#[test]
fn istio_alternative_keys() {
    let f = fixture();
    let s = secret(
        "bookinfo-credential",
        "Opaque",
        &[("cert", &f.chain), ("key", &f.key), ("cacert", &f.ca)],
        &[],
    );
    let material = material_from_secret(&s, None).unwrap();
    assert_eq!(material.cert_chain[0], f.leaf);
    assert_eq!(material.ca_certs.len(), 1);
}

#[test]
fn string_data_works_and_wins_over_data() {
    let f = fixture();
    let s = secret(
        "bookinfo-credential",
        "kubernetes.io/tls",
        &[],
        &[("tls.crt", &f.chain), ("tls.key", &f.key)],
    );
    assert_eq!(
        material_from_secret(&s, None).unwrap().cert_chain[0],
        f.leaf
    );

    let stale = dns_leaf(&root(), &["stale.example.com"]);
    let s = secret(
        "bookinfo-credential",
        "kubernetes.io/tls",
        &[("tls.crt", &stale.chain_pem), ("tls.key", &stale.key_pem)],
        &[("tls.crt", &f.chain), ("tls.key", &f.key)],
    );
    assert_eq!(
        material_from_secret(&s, None).unwrap().cert_chain[0],
        f.leaf
    );
}

#[test]
fn secret_errors_name_the_secret_and_keys() {
    let f = fixture();
    let no_cert = secret("cred", "Opaque", &[("tls.key", &f.key)], &[]);
    let err = material_from_secret(&no_cert, None).unwrap_err();
    assert!(matches!(err, SecretError::MissingCertificate { .. }));
    assert!(
        err.to_string()
            .contains("secret istio-system/cred: no certificate"),
        "{err}"
    );
    assert!(err.to_string().contains("[\"tls.key\"]"), "{err}");

    let no_key = secret("cred", "Opaque", &[("tls.crt", &f.chain)], &[]);
    let err = material_from_secret(&no_key, None).unwrap_err();
    assert!(err.to_string().contains("no private key"), "{err}");

    let mismatched = secret(
        "cred",
        "Opaque",
        &[("tls.crt", &f.chain), ("tls.key", &f.other_key)],
        &[],
    );
    let err = material_from_secret(&mismatched, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the private key in secret istio-system/cred key tls.key does not match the certificate in secret istio-system/cred key tls.crt: they are not a pair"
    );

    let garbage_ca = secret(
        "cred",
        "Opaque",
        &[
            ("tls.crt", &f.chain),
            ("tls.key", &f.key),
            ("ca.crt", "junk"),
        ],
        &[],
    );
    let err = material_from_secret(&garbage_ca, None).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("secret istio-system/cred key ca.crt: not PEM"),
        "{err}"
    );

    let empty_ca = secret("cred-cacert", "Opaque", &[("tls.crt", &f.chain)], &[]);
    let err = ca_from_secret(&empty_ca).unwrap_err();
    assert!(
        err.to_string()
            .contains("secret istio-system/cred-cacert: no CA certificate"),
        "{err}"
    );
}

fn write(dir: &Path, name: &str, contents: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn pem_files_load_with_an_optional_ca() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "tls.crt", &f.chain);
    let key = write(dir.path(), "tls.key", &f.key);
    let ca = write(dir.path(), "ca.crt", &f.ca);
    let material = load_pem_files(&cert, &key, Some(&ca)).unwrap();
    assert_eq!(material.cert_chain[0], f.leaf);
    assert_eq!(material.ca_certs.len(), 1);
    assert!(
        load_pem_files(&cert, &key, None)
            .unwrap()
            .ca_certs
            .is_empty()
    );
}

#[test]
fn pem_file_errors_name_the_file_and_the_problem() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "tls.crt", &f.chain);
    let key = write(dir.path(), "tls.key", &f.key);
    let other_key = write(dir.path(), "other.key", &f.other_key);
    let not_pem = write(dir.path(), "notes.txt", "hello");
    let missing = dir.path().join("missing.crt");

    let message = |err: LoadError| err.to_string();
    let show = |p: &Path| p.display().to_string();

    let err = message(load_pem_files(&missing, &key, None).unwrap_err());
    assert_eq!(
        err,
        format!(
            "{}: file not found (check the path in the TLS settings)",
            show(&missing)
        )
    );

    let err = message(load_pem_files(&not_pem, &key, None).unwrap_err());
    assert!(
        err.starts_with(&format!("{}: not PEM", show(&not_pem))),
        "{err}"
    );

    // A key where the certificate should be.
    let err = message(load_pem_files(&key, &key, None).unwrap_err());
    assert!(
        err.starts_with(&format!("{}: no certificate", show(&key))),
        "{err}"
    );

    // A certificate where the key should be.
    let err = message(load_pem_files(&cert, &cert, None).unwrap_err());
    assert!(
        err.starts_with(&format!("{}: no private key", show(&cert))),
        "{err}"
    );

    let err = message(load_pem_files(&cert, &other_key, None).unwrap_err());
    assert!(
        err.contains(&format!(
            "private key in {} does not match the certificate in {}",
            show(&other_key),
            show(&cert)
        )),
        "{err}"
    );

    let err = message(load_pem_files(&cert, &key, Some(&missing)).unwrap_err());
    assert!(err.contains("missing.crt: file not found"), "{err}");
}
