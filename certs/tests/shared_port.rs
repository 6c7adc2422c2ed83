//! One handshake for servers with different client-certificate rules (HTTP/3 on a shared
//! port): the port verifier accepts what any server accepts, then the selected server's own
//! verifier decides, with the alert its own handshake would send.
// Helpers here run only inside tests, where a failed setup step should fail the test.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use certs::{
    Authority, ClientAdmission, IssuedCert, PortClientVerifier, ServerTlsMode, ServerTlsPolicy,
    admit_client, resolve_server_tls,
};
use common::*;
use rustls::AlertDescription;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};

fn rules(
    mode: ServerTlsMode,
    ca: Option<&Authority>,
    sans: &[&str],
) -> Arc<dyn ClientCertVerifier> {
    let policy = ServerTlsPolicy {
        mode,
        subject_alt_names: sans.iter().map(|s| (*s).to_owned()).collect(),
        ..ServerTlsPolicy::default()
    };
    resolve_server_tls(&policy, ca.map_or(&[], |ca| ca.roots()))
        .unwrap()
        .client_verifier
}

fn chain(issued: &IssuedCert) -> Vec<CertificateDer<'static>> {
    certs::pem::certificates(issued.chain_pem.as_bytes()).unwrap()
}

fn accepts(verifier: &dyn ClientCertVerifier, issued: &IssuedCert) -> bool {
    let chain = chain(issued);
    verifier
        .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
        .is_ok()
}

struct Port {
    ca_a: Authority,
    ca_b: Authority,
    simple: Arc<dyn ClientCertVerifier>,
    mutual_a: Arc<dyn ClientCertVerifier>,
    /// MUTUAL with CA b and `subjectAltNames: [client-b.example]`.
    mutual_b: Arc<dyn ClientCertVerifier>,
}

fn port() -> Port {
    let ca_a = Authority::generate_root("clients-a.example", day()).unwrap();
    let ca_b = Authority::generate_root("clients-b.example", day()).unwrap();
    Port {
        simple: rules(ServerTlsMode::Simple, None, &[]),
        mutual_a: rules(ServerTlsMode::Mutual, Some(&ca_a), &[]),
        mutual_b: rules(ServerTlsMode::Mutual, Some(&ca_b), &["client-b.example"]),
        ca_a,
        ca_b,
    }
}

#[test]
fn a_port_of_simple_servers_asks_for_no_certificate() {
    let port = port();
    let verifier = PortClientVerifier::for_servers(&[port.simple.clone(), port.simple]);
    assert!(!verifier.offer_client_auth());
}

#[test]
fn the_port_verifier_accepts_what_any_server_accepts_and_requires_nothing() {
    let port = port();
    let verifier = PortClientVerifier::for_servers(&[
        port.simple.clone(),
        port.mutual_a.clone(),
        port.mutual_b.clone(),
    ]);
    assert!(verifier.offer_client_auth());
    assert!(
        !verifier.client_auth_mandatory(),
        "the SNI's server decides after the handshake"
    );
    assert_eq!(
        verifier.root_hint_subjects().len(),
        2,
        "both client CAs are hinted"
    );
    let from_a = dns_leaf(&port.ca_a, &["client-a.example"]);
    let from_b = dns_leaf(&port.ca_b, &["client-b.example"]);
    let stranger = dns_leaf(&root(), &["client-a.example"]);
    assert!(accepts(verifier.as_ref(), &from_a));
    assert!(accepts(verifier.as_ref(), &from_b));
    assert!(!accepts(verifier.as_ref(), &stranger));
    let unnamed_b = dns_leaf(&port.ca_b, &["someone.example"]);
    let refusal = {
        let chain = chain(&unnamed_b);
        verifier
            .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
            .unwrap_err()
    };
    assert!(
        refusal.to_string().contains("subjectAltNames"),
        "the refusal reported is b's, whose CA knows the chain, not a's unknown issuer: {refusal}"
    );
}

#[test]
fn the_selected_server_alone_admits_the_client() {
    let port = port();
    let from_a = chain(&dns_leaf(&port.ca_a, &["client-a.example"]));
    let from_b = chain(&dns_leaf(&port.ca_b, &["client-b.example"]));
    let unnamed_b = chain(&dns_leaf(&port.ca_b, &["someone.example"]));
    let now = UnixTime::now;
    let admit = |rules: &Arc<dyn ClientCertVerifier>,
                 chain: Option<&Vec<CertificateDer<'static>>>| {
        admit_client(rules.as_ref(), chain.map(Vec::as_slice), now())
    };

    assert_eq!(
        admit(&port.simple, Some(&from_a)),
        Ok(ClientAdmission::NotRequested),
        "SIMPLE ignores a certificate"
    );
    assert_eq!(
        admit(&port.mutual_a, Some(&from_a)),
        Ok(ClientAdmission::Verified)
    );
    assert_eq!(
        admit(&port.mutual_a, None).unwrap_err().alert,
        AlertDescription::CertificateRequired
    );
    assert_eq!(
        admit(&port.mutual_a, Some(&Vec::new())).unwrap_err().alert,
        AlertDescription::CertificateRequired,
        "an empty Certificate message is no certificate"
    );
    assert_eq!(
        admit(&port.mutual_a, Some(&from_b)).unwrap_err().alert,
        AlertDescription::UnknownCA,
        "valid for the port, not for this server"
    );
    assert_eq!(
        admit(&port.mutual_b, Some(&from_b)),
        Ok(ClientAdmission::Verified)
    );
    let miss = admit(&port.mutual_b, Some(&unnamed_b)).unwrap_err();
    assert_eq!(miss.alert, AlertDescription::CertificateUnknown);
    assert!(miss.reason.contains("subjectAltNames"), "{miss}");

    let optional = rules(ServerTlsMode::OptionalMutual, Some(&port.ca_a), &[]);
    assert_eq!(admit(&optional, None), Ok(ClientAdmission::Anonymous));
    assert_eq!(
        admit(&optional, Some(&from_b)).unwrap_err().alert,
        AlertDescription::UnknownCA,
        "OPTIONAL_MUTUAL still refuses a certificate it cannot verify"
    );
}
