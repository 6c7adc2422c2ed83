//! Leaf certificates for workloads and gateways, signed by a cluster's CA.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::sign::CertifiedKey;

use crate::authority::{Authority, AuthorityError, random_serial};
use crate::identity::Identity;
use crate::load::{LoadError, certified_key_from_pem};
use crate::pem;
use crate::validity::{Validity, ValidityError};

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(
        "a leaf certificate needs at least one name: give a SPIFFE identity, a DNS name or an IP address"
    )]
    NoNames,
    #[error("{name:?} cannot be written as a certificate name: {source}")]
    BadName { name: String, source: rcgen::Error },
    #[error("cannot generate a key pair for {subject}: {source}")]
    KeyGeneration {
        subject: String,
        source: rcgen::Error,
    },
    #[error("cannot sign the certificate for {subject}: {source}")]
    Signing {
        subject: String,
        source: rcgen::Error,
    },
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    #[error(transparent)]
    Validity(#[from] ValidityError),
    #[error("issued certificate cannot be read back: {0}")]
    Inspect(#[from] crate::inspect::InspectError),
}

/// A freshly issued leaf: chain (leaf first, root last) and its private key (PKCS#8), in PEM.
#[derive(Clone)]
pub struct IssuedCert {
    pub chain_pem: String,
    pub key_pem: String,
    pub not_after: SystemTime,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl IssuedCert {
    /// The rustls form, ready for a server or client configuration.
    pub fn certified_key(&self) -> Result<CertifiedKey, LoadError> {
        certified_key_from_pem(&self.chain_pem, &self.key_pem)
    }
}

/// What to put in a leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub identity: Option<Identity>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub validity: Validity,
}

impl LeafSpec {
    pub fn for_identity(identity: Identity, validity: Validity) -> Self {
        Self {
            identity: Some(identity),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            validity,
        }
    }

    pub fn for_dns_names(names: &[&str], validity: Validity) -> Self {
        Self {
            identity: None,
            dns_names: names.iter().map(|n| (*n).to_owned()).collect(),
            ip_addresses: Vec::new(),
            validity,
        }
    }

    fn describe(&self) -> String {
        self.identity
            .as_ref()
            .map(Identity::uri)
            .or_else(|| self.dns_names.first().cloned())
            .or_else(|| self.ip_addresses.first().map(ToString::to_string))
            .unwrap_or_else(|| "an unnamed leaf".to_owned())
    }

    fn subject_alt_names(&self) -> Result<Vec<SanType>, IssueError> {
        let mut sans = Vec::new();
        if let Some(identity) = &self.identity {
            sans.push(uri_san(&identity.uri())?);
        }
        for name in &self.dns_names {
            let value = name
                .clone()
                .try_into()
                .map_err(|source| IssueError::BadName {
                    name: name.clone(),
                    source,
                })?;
            sans.push(SanType::DnsName(value));
        }
        sans.extend(self.ip_addresses.iter().copied().map(SanType::IpAddress));
        if sans.is_empty() {
            return Err(IssueError::NoNames);
        }
        Ok(sans)
    }
}

pub(crate) fn uri_san(uri: &str) -> Result<SanType, IssueError> {
    let value = uri
        .to_owned()
        .try_into()
        .map_err(|source| IssueError::BadName {
            name: uri.to_owned(),
            source,
        })?;
    Ok(SanType::URI(value))
}

impl Authority {
    /// A workload or gateway certificate for `identity`, valid from now for `lifetime`
    /// (never past this CA's own expiry).
    pub fn issue_workload(
        &self,
        identity: &Identity,
        lifetime: Duration,
    ) -> Result<IssuedCert, IssueError> {
        self.issue(&LeafSpec::for_identity(
            identity.clone(),
            Validity::starting_now(lifetime),
        ))
    }

    /// A leaf with the names and validity in `spec`, and a new P-256 key.
    pub fn issue(&self, spec: &LeafSpec) -> Result<IssuedCert, IssueError> {
        let subject = spec.describe();
        let key = KeyPair::generate().map_err(|source| IssueError::KeyGeneration {
            subject: subject.clone(),
            source,
        })?;
        let params = self.leaf_params(spec.subject_alt_names()?, spec.validity)?;
        let leaf =
            params
                .signed_by(&key, &self.issuer()?)
                .map_err(|source| IssueError::Signing {
                    subject: subject.clone(),
                    source,
                })?;
        let not_after = crate::inspect::inspect(leaf.der())?.not_after;
        tracing::debug!(subject = %subject, ?not_after, "issued leaf certificate");
        Ok(IssuedCert {
            chain_pem: self.chain_pems(leaf.der()).concat(),
            key_pem: key.serialize_pem(),
            not_after,
        })
    }

    pub(crate) fn leaf_validity(&self, validity: Validity) -> Result<Validity, ValidityError> {
        validity.capped_at(self.validity.not_after)
    }

    /// Parameters every leaf shares: no subject (the SAN carries the identity, as Istio's
    /// workload certificates do), serverAuth + clientAuth, not a CA.
    pub(crate) fn leaf_params(
        &self,
        subject_alt_names: Vec<SanType>,
        validity: Validity,
    ) -> Result<CertificateParams, IssueError> {
        let validity = self.leaf_validity(validity)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = subject_alt_names;
        params.not_before = Validity::to_offset(validity.not_before)?;
        params.not_after = Validity::to_offset(validity.not_after)?;
        params.serial_number = Some(random_serial()?);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }

    /// PEM of `leaf` followed by this CA's chain up to the root.
    pub(crate) fn chain_pems(&self, leaf: &[u8]) -> Vec<String> {
        std::iter::once(pem::encode_certificate(leaf))
            .chain(
                self.chain_from_self()
                    .map(|der| pem::encode_certificate(der)),
            )
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::{self, SubjectAltName};

    fn ca() -> Authority {
        let day = Validity::starting_now(Duration::from_secs(86_400));
        Authority::generate_root("cluster.local", day)
            .unwrap()
            .generate_intermediate("cluster1", None, day)
            .unwrap()
    }

    #[test]
    fn workload_cert_carries_the_spiffe_id_and_both_usages() {
        let ca = ca();
        let id: Identity = "spiffe://cluster.local/ns/default/sa/reviews"
            .parse()
            .unwrap();
        let issued = ca.issue_workload(&id, Duration::from_secs(3600)).unwrap();
        let chain = pem::certificates(issued.chain_pem.as_bytes()).unwrap();
        assert_eq!(chain.len(), 3, "leaf, intermediate, root");
        assert_eq!(inspect::spiffe_identity(&chain[0]).unwrap(), id);
        let info = inspect::inspect(&chain[0]).unwrap();
        assert!(!info.is_ca);
        assert_eq!(info.not_after, issued.not_after);
        let parsed = inspect::parse(&chain[0]).unwrap();
        let eku = parsed.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        issued.certified_key().unwrap();
    }

    #[test]
    fn leaf_with_dns_and_ip_names() {
        let ca = ca();
        let validity = Validity::starting_now(Duration::from_secs(60));
        let mut spec = LeafSpec::for_dns_names(&["httpbin.example.com"], validity);
        spec.ip_addresses.push("127.0.0.1".parse().unwrap());
        let issued = ca.issue(&spec).unwrap();
        let leaf = &pem::certificates(issued.chain_pem.as_bytes()).unwrap()[0];
        let sans = inspect::inspect(leaf).unwrap().subject_alt_names;
        assert_eq!(
            sans,
            vec![
                SubjectAltName::Dns("httpbin.example.com".into()),
                SubjectAltName::Ip("127.0.0.1".parse().unwrap())
            ]
        );
    }

    #[test]
    fn a_leaf_needs_a_name() {
        let spec = LeafSpec::for_dns_names(&[], Validity::starting_now(Duration::from_secs(60)));
        assert!(matches!(ca().issue(&spec), Err(IssueError::NoNames)));
    }

    #[test]
    fn leaf_never_outlives_its_ca() {
        let ca = ca();
        let id = Identity::new("cluster.local", "a", "b").unwrap();
        let issued = ca
            .issue_workload(&id, Duration::from_secs(100 * 86_400))
            .unwrap();
        assert_eq!(issued.not_after, ca.not_after());
    }
}
