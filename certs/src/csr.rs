//! Certificate signing requests: a workload sends a CSR, the cluster CA returns a chain, and
//! only for the identity the caller proved with its own certificate.

use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, CertificateSigningRequestParams, IsCa, KeyPair, SanType};

use crate::authority::Authority;
use crate::identity::Identity;
use crate::issue::{IssueError, uri_san};
use crate::validity::Validity;

/// Istio's default `max-workload-cert-ttl`: longer requests are shortened to this.
pub const MAX_WORKLOAD_CERT_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("malformed CSR: {reason}")]
    Malformed { reason: String },
    #[error(
        "CSR asks for identity {requested} but the caller is {caller}: a workload may only request a certificate for its own identity"
    )]
    IdentityMismatch { requested: String, caller: String },
    #[error("CSR asks for a CA certificate; workloads and gateways only get leaf certificates")]
    AsksForCa,
    #[error("cannot create a CSR: {0}")]
    Create(rcgen::Error),
    #[error(
        "the caller has no usable identity ({0}): CSRs are signed only for callers that present a mesh certificate"
    )]
    NoCallerIdentity(crate::inspect::InspectError),
    #[error("the caller presented no certificate: CSRs are signed only over mesh mTLS")]
    NoCallerCertificate,
    #[error(transparent)]
    Issue(#[from] IssueError),
}

/// What the CA hands back: PEM certificates, leaf first and root last (Istio's `cert_chain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedChain {
    pub certs_pem: Vec<String>,
    pub not_after: SystemTime,
}

impl SignedChain {
    pub fn chain_pem(&self) -> String {
        self.certs_pem.concat()
    }
}

/// A CSR and the private key it was made with (PKCS#8 PEM); the key never leaves the caller.
#[derive(Clone)]
pub struct CsrAndKey {
    pub csr_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CsrAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsrAndKey")
            .field("csr_pem", &self.csr_pem)
            .finish_non_exhaustive()
    }
}

/// A new P-256 key and a CSR for `identity`, as a workload or gateway sends to discovery.
pub fn new_csr(identity: &Identity) -> Result<CsrAndKey, CsrError> {
    let key = KeyPair::generate().map_err(CsrError::Create)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = vec![uri_san(&identity.uri())?];
    let csr = params.serialize_request(&key).map_err(CsrError::Create)?;
    Ok(CsrAndKey {
        csr_pem: csr.pem().map_err(CsrError::Create)?,
        key_pem: key.serialize_pem(),
    })
}

impl Authority {
    /// Signs `csr_pem` for `caller`, whose identity the transport already proved. The CSR may
    /// name no SAN (the caller's identity is used) or exactly the caller's SPIFFE id; anything
    /// else is refused. Only the CSR's public key is used: usages, lifetime and names come from
    /// this CA.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        caller: &Identity,
        lifetime: Duration,
    ) -> Result<SignedChain, CsrError> {
        let lifetime = lifetime.min(MAX_WORKLOAD_CERT_LIFETIME);
        self.sign_csr_with_validity(csr_pem, caller, Validity::starting_now(lifetime))
    }

    /// [`Authority::sign_csr`] for the peer of a mesh mTLS connection: `peer_chain` is the
    /// chain the handshake already verified (e.g. `ServerConnection::peer_certificates()`,
    /// tonic's `peer_certs()`), and its SPIFFE id is the only name the caller can get.
    pub fn sign_csr_for_peer(
        &self,
        csr_pem: &str,
        peer_chain: &[rustls_pki_types::CertificateDer<'_>],
        lifetime: Duration,
    ) -> Result<SignedChain, CsrError> {
        let leaf = peer_chain.first().ok_or(CsrError::NoCallerCertificate)?;
        let caller = crate::inspect::spiffe_identity(leaf).map_err(CsrError::NoCallerIdentity)?;
        self.sign_csr(csr_pem, &caller, lifetime)
    }

    /// [`Authority::sign_csr`] with an explicit validity window.
    pub fn sign_csr_with_validity(
        &self,
        csr_pem: &str,
        caller: &Identity,
        validity: Validity,
    ) -> Result<SignedChain, CsrError> {
        let request = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|err| {
            CsrError::Malformed {
                reason: describe_parse_error(&err),
            }
        })?;
        let result = check_request(&request.params, caller);
        if let Err(err) = &result {
            tracing::warn!(caller = %caller, error = %err, "refused certificate signing request");
        }
        result?;
        let params = self.leaf_params(vec![uri_san(&caller.uri())?], validity)?;
        let leaf = params
            .signed_by(
                &request.public_key,
                &self.issuer().map_err(IssueError::from)?,
            )
            .map_err(|source| IssueError::Signing {
                subject: caller.uri(),
                source,
            })?;
        let not_after = crate::inspect::inspect(leaf.der())
            .map_err(IssueError::from)?
            .not_after;
        tracing::info!(identity = %caller, ?not_after, "signed workload certificate");
        Ok(SignedChain {
            certs_pem: self.chain_pems(leaf.der()),
            not_after,
        })
    }
}

fn check_request(requested: &CertificateParams, caller: &Identity) -> Result<(), CsrError> {
    if matches!(requested.is_ca, IsCa::Ca(_)) {
        return Err(CsrError::AsksForCa);
    }
    let own = caller.uri();
    for san in &requested.subject_alt_names {
        let asked = match san {
            SanType::URI(uri) if uri.as_str() == own => continue,
            SanType::URI(uri) => uri.as_str().to_owned(),
            SanType::DnsName(name) => format!("DNS:{}", name.as_str()),
            SanType::IpAddress(ip) => format!("IP:{ip}"),
            SanType::Rfc822Name(mail) => format!("email:{}", mail.as_str()),
            other => format!("{other:?}"),
        };
        return Err(CsrError::IdentityMismatch {
            requested: asked,
            caller: own,
        });
    }
    Ok(())
}

fn describe_parse_error(err: &rcgen::Error) -> String {
    match err {
        rcgen::Error::CouldNotParseCertificationRequest => {
            "not a PKCS#10 request (expected PEM \"-----BEGIN CERTIFICATE REQUEST-----\")".to_owned()
        }
        rcgen::Error::InvalidCertificationRequestSignature => {
            "its signature does not verify: the request was not signed with the key it carries"
                .to_owned()
        }
        rcgen::Error::UnsupportedExtension => {
            "it carries an extension this CA does not accept (only subjectAltName, keyUsage, extendedKeyUsage and basicConstraints)".to_owned()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect;
    use crate::pem;

    fn ca() -> Authority {
        let day = Validity::starting_now(Duration::from_secs(86_400));
        Authority::generate_root("cluster.local", day)
            .unwrap()
            .generate_intermediate("cluster1", None, day)
            .unwrap()
    }

    fn id(sa: &str) -> Identity {
        Identity::new("cluster.local", "default", sa).unwrap()
    }

    #[test]
    fn signs_a_csr_for_the_callers_own_identity() {
        let ca = ca();
        let request = new_csr(&id("reviews")).unwrap();
        let chain = ca
            .sign_csr(&request.csr_pem, &id("reviews"), Duration::from_secs(3600))
            .unwrap();
        assert_eq!(chain.certs_pem.len(), 3);
        let leaf = &pem::certificates(chain.certs_pem[0].as_bytes()).unwrap()[0];
        assert_eq!(inspect::spiffe_identity(leaf).unwrap(), id("reviews"));
        // The chain and the caller's key form a usable pair.
        crate::load::certified_key_from_pem(&chain.chain_pem(), &request.key_pem).unwrap();
    }

    #[test]
    fn a_csr_without_names_gets_the_callers_identity() {
        let key = KeyPair::generate().unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap();
        let chain = ca()
            .sign_csr(&csr.pem().unwrap(), &id("reviews"), Duration::from_secs(60))
            .unwrap();
        let leaf = &pem::certificates(chain.certs_pem[0].as_bytes()).unwrap()[0];
        assert_eq!(inspect::spiffe_identity(leaf).unwrap(), id("reviews"));
    }

    #[test]
    fn csr_for_another_identity_names_both() {
        let request = new_csr(&id("ratings")).unwrap();
        let err = ca()
            .sign_csr(&request.csr_pem, &id("reviews"), Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(err, CsrError::IdentityMismatch { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("spiffe://cluster.local/ns/default/sa/ratings"),
            "{message}"
        );
        assert!(
            message.contains("spiffe://cluster.local/ns/default/sa/reviews"),
            "{message}"
        );
    }

    #[test]
    fn csr_adding_a_dns_name_is_refused() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["evil.example.com".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(uri_san(&id("reviews").uri()).unwrap());
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let err = ca()
            .sign_csr(&csr, &id("reviews"), Duration::from_secs(60))
            .unwrap_err();
        assert!(err.to_string().contains("DNS:evil.example.com"), "{err}");
    }

    #[test]
    fn csr_asking_for_a_ca_is_refused() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let err = ca()
            .sign_csr(&csr, &id("reviews"), Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(err, CsrError::AsksForCa), "{err:?}");
    }

    #[test]
    fn malformed_csrs_are_refused_clearly() {
        let ca = ca();
        let garbage =
            "-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n-----END CERTIFICATE REQUEST-----\n";
        for input in ["", "hello", garbage] {
            let err = ca
                .sign_csr(input, &id("reviews"), Duration::from_secs(60))
                .unwrap_err();
            assert!(
                matches!(err, CsrError::Malformed { .. }),
                "{input:?}: {err:?}"
            );
            assert!(err.to_string().starts_with("malformed CSR: "), "{err}");
        }
    }

    #[test]
    fn tampered_csr_fails_signature_check() {
        let request = new_csr(&id("reviews")).unwrap();
        let mut der = pem::sections(request.csr_pem.as_bytes())
            .unwrap()
            .remove(0)
            .1;
        // Flip a bit inside the signature at the end of the request.
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let tampered = crate::pem::encode("CERTIFICATE REQUEST", &der);
        let err = ca()
            .sign_csr(&tampered, &id("reviews"), Duration::from_secs(60))
            .unwrap_err();
        assert!(
            err.to_string().contains("signature does not verify"),
            "{err}"
        );
    }

    #[test]
    fn peer_chain_decides_the_identity() {
        let ca = ca();
        let caller = ca
            .issue_workload(&id("reviews"), Duration::from_secs(60))
            .unwrap();
        let peer_chain = pem::certificates(caller.chain_pem.as_bytes()).unwrap();
        let own = new_csr(&id("reviews")).unwrap();
        ca.sign_csr_for_peer(&own.csr_pem, &peer_chain, Duration::from_secs(60))
            .unwrap();
        let other = new_csr(&id("ratings")).unwrap();
        let err = ca
            .sign_csr_for_peer(&other.csr_pem, &peer_chain, Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(err, CsrError::IdentityMismatch { .. }), "{err}");
        let err = ca
            .sign_csr_for_peer(&own.csr_pem, &[], Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(err, CsrError::NoCallerCertificate), "{err}");
        let dns_only = ca
            .issue(&crate::issue::LeafSpec::for_dns_names(
                &["a.example"],
                Validity::starting_now(Duration::from_secs(60)),
            ))
            .unwrap();
        let dns_chain = pem::certificates(dns_only.chain_pem.as_bytes()).unwrap();
        let err = ca
            .sign_csr_for_peer(&own.csr_pem, &dns_chain, Duration::from_secs(60))
            .unwrap_err();
        assert!(err.to_string().contains("no usable identity"), "{err}");
    }

    #[test]
    fn requested_lifetime_is_capped() {
        let request = new_csr(&id("reviews")).unwrap();
        let chain = ca()
            .sign_csr(
                &request.csr_pem,
                &id("reviews"),
                Duration::from_secs(365 * 86_400),
            )
            .unwrap();
        // The CA itself lives one day here, which is the tighter cap.
        let left = chain.not_after.duration_since(SystemTime::now()).unwrap();
        assert!(left <= Duration::from_secs(86_400), "{left:?}");
    }
}
