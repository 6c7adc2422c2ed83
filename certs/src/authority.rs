//! Certificate authorities: one mesh root, one intermediate per cluster under it.

use std::fmt;
use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::X509Certificate;

use crate::identity::validate_trust_domain;
use crate::inspect::{self, InspectError};
use crate::pem::{self, PemError};
use crate::validity::{Validity, ValidityError};

const ROOT_COMMON_NAME: &str = "Isthmus Root CA";
const INTERMEDIATE_COMMON_NAME: &str = "Isthmus Intermediate CA";

#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error("cannot generate a CA key pair: {0}")]
    KeyGeneration(rcgen::Error),
    #[error("cannot draw a random serial number from the system RNG")]
    Random,
    #[error("cannot sign the {what} certificate: {source}")]
    Signing { what: String, source: rcgen::Error },
    #[error(transparent)]
    Validity(#[from] ValidityError),
    #[error("bad trust domain {trust_domain:?}: {reason}")]
    BadTrustDomain {
        trust_domain: String,
        reason: String,
    },
    #[error(
        "bad cluster name {cluster:?}: {reason} (cluster names become directory names and certificate fields)"
    )]
    BadClusterName { cluster: String, reason: String },
    #[error(
        "this CA is an intermediate (path length 0) and cannot sign another CA: sign cluster intermediates with the root"
    )]
    NotARoot,
    #[error("{file}: {source}")]
    Pem {
        file: &'static str,
        source: PemError,
    },
    #[error("{file}: {source}")]
    Certificate {
        file: &'static str,
        source: InspectError,
    },
    #[error("{file}: certificate {subject:?} is not a CA (basicConstraints CA:true is missing)")]
    NotCa { file: &'static str, subject: String },
    #[error(
        "ca-key.pem holds a {format} key; this CA signs with PKCS#8 keys only: convert it with `openssl pkcs8 -topk8 -nocrypt -in ca-key.pem -out ca-key.pem`"
    )]
    KeyNotPkcs8 { format: &'static str },
    #[error("ca-key.pem cannot be used for signing: {0}")]
    UnusableKey(rcgen::Error),
    #[error(
        "ca-key.pem does not match ca-cert.pem (the key's public half differs from the certificate's): were the files from different CAs?"
    )]
    KeyMismatch,
    #[error("broken CA chain: {0}")]
    BrokenChain(String),
}

/// A signing CA: the mesh root or a cluster's intermediate.
pub struct Authority {
    pub(crate) cert: CertificateDer<'static>,
    pub(crate) key: KeyPair,
    /// From this CA's issuer up to and including the root; empty for a root.
    pub(crate) issuers: Vec<CertificateDer<'static>>,
    /// The mesh trust anchors (`root-cert.pem`); several while a root is being rotated.
    pub(crate) roots: Vec<CertificateDer<'static>>,
    pub(crate) validity: Validity,
}

/// The PEM texts of Istio's plugged-in CA files, named by their file names.
#[derive(Debug, Clone, Copy)]
pub struct AuthorityPem<'a> {
    /// `ca-cert.pem`: this CA's own certificate.
    pub ca_cert: &'a str,
    /// `ca-key.pem`: this CA's private key (PKCS#8).
    pub ca_key: &'a str,
    /// `cert-chain.pem`: this CA's certificate followed by its issuers up to the root.
    pub cert_chain: Option<&'a str>,
    /// `root-cert.pem`: the mesh root(s).
    pub root_cert: &'a str,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs on purpose.
        let subject = inspect::inspect(&self.cert).map(|info| info.subject);
        f.debug_struct("Authority")
            .field("subject", &subject)
            .field("issuers", &self.issuers.len())
            .field("roots", &self.roots.len())
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// A self-signed mesh root for `trust_domain`.
    pub fn generate_root(trust_domain: &str, validity: Validity) -> Result<Self, AuthorityError> {
        validate_trust_domain(trust_domain).map_err(|reason| AuthorityError::BadTrustDomain {
            trust_domain: trust_domain.to_owned(),
            reason,
        })?;
        let key = KeyPair::generate().map_err(AuthorityError::KeyGeneration)?;
        let mut params = ca_params(validity)?;
        params.distinguished_name = name(&[
            (DnType::OrganizationName, trust_domain),
            (DnType::CommonName, ROOT_COMMON_NAME),
        ]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params
            .self_signed(&key)
            .map_err(|source| AuthorityError::Signing {
                what: "root CA".to_owned(),
                source,
            })?;
        let cert = cert.der().clone();
        let validity = validity_of(&cert, "root CA")?;
        tracing::info!(trust_domain, not_after = ?validity.not_after, "generated mesh root CA");
        Ok(Self {
            roots: vec![cert.clone()],
            cert,
            key,
            issuers: Vec::new(),
            validity,
        })
    }

    /// A cluster's intermediate CA, signed by this root, with path length 0 so it can only
    /// sign leaves. `trust_domain`, when given, is written as a `spiffe://<td>` URI SAN.
    pub fn generate_intermediate(
        &self,
        cluster: &str,
        trust_domain: Option<&str>,
        validity: Validity,
    ) -> Result<Self, AuthorityError> {
        if !self.is_root() {
            return Err(AuthorityError::NotARoot);
        }
        validate_cluster_name(cluster)?;
        let validity = validity.capped_at(self.validity.not_after)?;
        let key = KeyPair::generate().map_err(AuthorityError::KeyGeneration)?;
        let mut params = ca_params(validity)?;
        params.distinguished_name = name(&[
            (DnType::OrganizationName, "Isthmus"),
            (DnType::CommonName, INTERMEDIATE_COMMON_NAME),
            (DnType::LocalityName, cluster),
        ]);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.use_authority_key_identifier_extension = true;
        if let Some(td) = trust_domain {
            validate_trust_domain(td).map_err(|reason| AuthorityError::BadTrustDomain {
                trust_domain: td.to_owned(),
                reason,
            })?;
            let uri =
                format!("spiffe://{td}")
                    .try_into()
                    .map_err(|source| AuthorityError::Signing {
                        what: format!("intermediate CA for {cluster}"),
                        source,
                    })?;
            params.subject_alt_names.push(SanType::URI(uri));
        }
        let cert =
            params
                .signed_by(&key, &self.issuer()?)
                .map_err(|source| AuthorityError::Signing {
                    what: format!("intermediate CA for {cluster}"),
                    source,
                })?;
        let cert = cert.der().clone();
        let validity = validity_of(&cert, "intermediate CA")?;
        tracing::info!(cluster, not_after = ?validity.not_after, "generated cluster intermediate CA");
        Ok(Self {
            cert,
            key,
            issuers: std::iter::once(self.cert.clone())
                .chain(self.issuers.iter().cloned())
                .collect(),
            roots: self.roots.clone(),
            validity,
        })
    }

    /// Loads a CA from Istio's plugged-in CA files, checking that key and certificate belong
    /// together and that the chain leads to a root in `root-cert.pem`.
    pub fn from_pem(files: &AuthorityPem<'_>) -> Result<Self, AuthorityError> {
        let cert = single_cert("ca-cert.pem", files.ca_cert)?;
        let roots = pem::certificates(files.root_cert.as_bytes()).map_err(|source| {
            AuthorityError::Pem {
                file: "root-cert.pem",
                source,
            }
        })?;
        let mut issuers = match files.cert_chain {
            Some(text) => {
                pem::certificates(text.as_bytes()).map_err(|source| AuthorityError::Pem {
                    file: "cert-chain.pem",
                    source,
                })?
            }
            None => Vec::new(),
        };
        if issuers.first() == Some(&cert) {
            issuers.remove(0);
        }
        let info = inspect::inspect(&cert).map_err(|source| AuthorityError::Certificate {
            file: "ca-cert.pem",
            source,
        })?;
        if !info.is_ca {
            return Err(AuthorityError::NotCa {
                file: "ca-cert.pem",
                subject: info.subject,
            });
        }
        let key = signing_key(files.ca_key)?;
        let cert_spki = inspect::parse(&cert)
            .map_err(|source| AuthorityError::Certificate {
                file: "ca-cert.pem",
                source,
            })?
            .public_key()
            .raw
            .to_vec();
        if key.subject_public_key_info() != cert_spki {
            return Err(AuthorityError::KeyMismatch);
        }
        complete_chain(&cert, &mut issuers, &roots)?;
        Ok(Self {
            cert,
            key,
            issuers,
            roots,
            validity: Validity::new(info.not_before, info.not_after)?,
        })
    }

    pub fn is_root(&self) -> bool {
        self.issuers.is_empty()
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// `ca-cert.pem`.
    pub fn cert_pem(&self) -> String {
        pem::encode_certificate(&self.cert)
    }

    /// `ca-key.pem` (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// `cert-chain.pem`: this CA followed by its issuers up to the root, as Istio's plugged-in
    /// CA expects.
    pub fn chain_pem(&self) -> String {
        self.chain_from_self()
            .map(|der| pem::encode_certificate(der))
            .collect()
    }

    /// `root-cert.pem`.
    pub fn root_pem(&self) -> String {
        self.roots
            .iter()
            .map(|der| pem::encode_certificate(der))
            .collect()
    }

    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    pub fn not_after(&self) -> SystemTime {
        self.validity.not_after
    }

    pub(crate) fn chain_from_self(&self) -> impl Iterator<Item = &CertificateDer<'static>> {
        std::iter::once(&self.cert).chain(self.issuers.iter())
    }

    pub(crate) fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, AuthorityError> {
        Issuer::from_ca_cert_der(&self.cert, &self.key).map_err(|source| AuthorityError::Signing {
            what: "issuer (cannot read this CA's own certificate)".to_owned(),
            source,
        })
    }
}

fn ca_params(validity: Validity) -> Result<CertificateParams, AuthorityError> {
    let mut params = CertificateParams::default();
    params.not_before = Validity::to_offset(validity.not_before)?;
    params.not_after = Validity::to_offset(validity.not_after)?;
    params.serial_number = Some(random_serial()?);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// The window as written in the certificate (whole seconds), so later comparisons are exact.
fn validity_of(der: &[u8], what: &'static str) -> Result<Validity, AuthorityError> {
    let info = inspect::inspect(der)
        .map_err(|source| AuthorityError::Certificate { file: what, source })?;
    Ok(Validity::new(info.not_before, info.not_after)?)
}

fn name(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (kind, value) in parts {
        dn.push(kind.clone(), *value);
    }
    dn
}

/// 128 random bits with the top bit clear, so the DER integer stays positive and short.
pub(crate) fn random_serial() -> Result<SerialNumber, AuthorityError> {
    let mut bytes = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| AuthorityError::Random)?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

pub(crate) fn validate_cluster_name(cluster: &str) -> Result<(), AuthorityError> {
    let bad = |reason: &str| AuthorityError::BadClusterName {
        cluster: cluster.to_owned(),
        reason: reason.to_owned(),
    };
    if cluster.is_empty() {
        return Err(bad("it is empty"));
    }
    if cluster.len() > 63 {
        return Err(bad("it is longer than 63 characters"));
    }
    if cluster.starts_with(['.', '-']) {
        return Err(bad("it must start with a letter, digit or '_'"));
    }
    if !cluster
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(bad("only letters, digits, '-', '_' and '.' are allowed"));
    }
    Ok(())
}

fn single_cert(file: &'static str, text: &str) -> Result<CertificateDer<'static>, AuthorityError> {
    let mut certs = pem::certificates(text.as_bytes())
        .map_err(|source| AuthorityError::Pem { file, source })?;
    // A ca-cert.pem with extra certificates is common (people paste the chain); the first is
    // the CA itself by convention.
    Ok(certs.remove(0))
}

fn signing_key(text: &str) -> Result<KeyPair, AuthorityError> {
    let key = pem::private_key(text.as_bytes()).map_err(|source| AuthorityError::Pem {
        file: "ca-key.pem",
        source,
    })?;
    match &key {
        PrivateKeyDer::Pkcs8(_) => KeyPair::try_from(&key).map_err(AuthorityError::UnusableKey),
        PrivateKeyDer::Pkcs1(_) => Err(AuthorityError::KeyNotPkcs8 {
            format: "PKCS#1 RSA",
        }),
        PrivateKeyDer::Sec1(_) => Err(AuthorityError::KeyNotPkcs8 { format: "SEC1 EC" }),
        _ => Err(AuthorityError::KeyNotPkcs8 { format: "unknown" }),
    }
}

/// Checks every link of `cert` + `issuers`, and appends the root from `roots` when the chain
/// stops just below it, so issued chains always end with the root as Istio's do.
fn complete_chain(
    cert: &CertificateDer<'static>,
    issuers: &mut Vec<CertificateDer<'static>>,
    roots: &[CertificateDer<'static>],
) -> Result<(), AuthorityError> {
    let mut child = parse(cert, "ca-cert.pem")?;
    for parent_der in issuers.iter() {
        let parent = parse(parent_der, "cert-chain.pem")?;
        verify_link(&child, &parent)?;
        child = parent;
    }
    let top = issuers.last().unwrap_or(cert);
    if roots.contains(top) {
        return Ok(());
    }
    for root_der in roots {
        let root = parse(root_der, "root-cert.pem")?;
        if verify_link(&child, &root).is_ok() {
            issuers.push(root_der.clone());
            return Ok(());
        }
    }
    Err(AuthorityError::BrokenChain(format!(
        "the chain from ca-cert.pem ends at {:?}, which is neither in nor signed by root-cert.pem: \
         cert-chain.pem must lead to the mesh root",
        child.subject().to_string()
    )))
}

fn parse<'a>(
    der: &'a CertificateDer<'static>,
    file: &'static str,
) -> Result<X509Certificate<'a>, AuthorityError> {
    inspect::parse(der).map_err(|source| AuthorityError::Certificate { file, source })
}

fn verify_link(
    child: &X509Certificate<'_>,
    parent: &X509Certificate<'_>,
) -> Result<(), AuthorityError> {
    child
        .verify_signature(Some(parent.public_key()))
        .map_err(|err| {
            AuthorityError::BrokenChain(format!(
                "{:?} is not signed by {:?} ({err}): check the order of cert-chain.pem (this CA first, root last)",
                child.subject().to_string(),
                parent.subject().to_string()
            ))
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn day() -> Validity {
        Validity::starting_now(Duration::from_secs(86_400))
    }

    #[test]
    fn root_and_intermediate_have_the_expected_shape() {
        let root = Authority::generate_root("cluster.local", day()).unwrap();
        let inter = root
            .generate_intermediate("cluster1", Some("cluster.local"), day())
            .unwrap();
        let root_info = inspect::inspect(root.cert_der()).unwrap();
        let info = inspect::inspect(inter.cert_der()).unwrap();
        assert!(root_info.is_ca && info.is_ca);
        assert!(info.subject.contains("cluster1"), "{}", info.subject);
        assert_eq!(info.issuer, root_info.subject);
        assert_eq!(
            info.uri_sans().collect::<Vec<_>>(),
            ["spiffe://cluster.local"]
        );
        let parsed = inspect::parse(inter.cert_der()).unwrap();
        let constraints = parsed.basic_constraints().unwrap().unwrap();
        assert_eq!(constraints.value.path_len_constraint, Some(0));
        assert_eq!(
            pem::certificates(inter.chain_pem().as_bytes())
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn intermediate_cannot_sign_a_ca() {
        let root = Authority::generate_root("td", day()).unwrap();
        let inter = root.generate_intermediate("c1", None, day()).unwrap();
        assert!(matches!(
            inter.generate_intermediate("c2", None, day()),
            Err(AuthorityError::NotARoot)
        ));
    }

    #[test]
    fn intermediate_never_outlives_its_root() {
        let root = Authority::generate_root("td", day()).unwrap();
        let long = Validity::starting_now(Duration::from_secs(10 * 86_400));
        let inter = root.generate_intermediate("c1", None, long).unwrap();
        assert!(inter.not_after() <= root.not_after());
    }

    #[test]
    fn round_trips_through_pem() {
        let root = Authority::generate_root("td", day()).unwrap();
        let inter = root.generate_intermediate("c1", None, day()).unwrap();
        let (cert, key, chain, roots) = (
            inter.cert_pem(),
            inter.key_pem(),
            inter.chain_pem(),
            inter.root_pem(),
        );
        let loaded = Authority::from_pem(&AuthorityPem {
            ca_cert: &cert,
            ca_key: &key,
            cert_chain: Some(&chain),
            root_cert: &roots,
        })
        .unwrap();
        assert_eq!(loaded.cert_der(), inter.cert_der());
        assert_eq!(loaded.chain_pem(), chain);
        // Without cert-chain.pem the root is found from root-cert.pem.
        let without_chain = Authority::from_pem(&AuthorityPem {
            ca_cert: &cert,
            ca_key: &key,
            cert_chain: None,
            root_cert: &roots,
        })
        .unwrap();
        assert_eq!(without_chain.chain_pem(), chain);
    }

    #[test]
    fn loading_refuses_mismatched_key_foreign_root_and_leaves() {
        let root = Authority::generate_root("td", day()).unwrap();
        let inter = root.generate_intermediate("c1", None, day()).unwrap();
        let other_root = Authority::generate_root("td", day()).unwrap();
        let (cert, chain, roots) = (inter.cert_pem(), inter.chain_pem(), inter.root_pem());

        let wrong_key = other_root.key_pem();
        let err = Authority::from_pem(&AuthorityPem {
            ca_cert: &cert,
            ca_key: &wrong_key,
            cert_chain: Some(&chain),
            root_cert: &roots,
        })
        .unwrap_err();
        assert!(matches!(err, AuthorityError::KeyMismatch), "{err}");

        let key = inter.key_pem();
        let foreign_roots = other_root.root_pem();
        let err = Authority::from_pem(&AuthorityPem {
            ca_cert: &cert,
            ca_key: &key,
            cert_chain: None,
            root_cert: &foreign_roots,
        })
        .unwrap_err();
        assert!(matches!(err, AuthorityError::BrokenChain(_)), "{err}");
        assert!(err.to_string().contains("root-cert.pem"), "{err}");

        let err = Authority::from_pem(&AuthorityPem {
            ca_cert: "not pem",
            ca_key: &key,
            cert_chain: None,
            root_cert: &roots,
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("ca-cert.pem: not PEM"), "{err}");
    }

    #[test]
    fn cluster_names_must_be_safe_directory_names() {
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(validate_cluster_name(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["cluster1", "east_1", "us-west.2"] {
            assert!(validate_cluster_name(good).is_ok(), "{good:?} refused");
        }
    }
}
