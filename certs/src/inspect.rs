//! Reading the parts of a certificate the mesh cares about: names, validity, CA flag.

use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::identity::{Identity, IdentityError};
use crate::validity::Validity;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    #[error("certificate is not valid DER X.509: {0}")]
    BadCertificate(String),
    #[error("certificate carries no SPIFFE id (URI SAN \"spiffe://...\"); its SANs are {sans:?}")]
    NoSpiffeId { sans: Vec<String> },
    #[error("certificate carries several SPIFFE ids {ids:?}; a workload certificate must have one")]
    SeveralSpiffeIds { ids: Vec<String> },
    #[error("certificate's SPIFFE id is not an Istio identity: {0}")]
    BadSpiffeId(#[from] IdentityError),
}

/// One subject alternative name. `Display` gives the bare value, as allow-lists spell it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubjectAltName {
    Dns(String),
    Uri(String),
    Ip(IpAddr),
    Email(String),
}

impl SubjectAltName {
    /// Whether this SAN equals an allow-list entry: DNS names compare case-insensitively,
    /// IP addresses by value, URIs and e-mail addresses exactly.
    pub fn matches(&self, wanted: &str) -> bool {
        match self {
            Self::Dns(name) => name.eq_ignore_ascii_case(wanted),
            Self::Ip(ip) => wanted.parse::<IpAddr>().is_ok_and(|w| w == *ip),
            Self::Uri(value) | Self::Email(value) => value == wanted,
        }
    }
}

impl fmt::Display for SubjectAltName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(v) | Self::Uri(v) | Self::Email(v) => f.write_str(v),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// What the mesh reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub subject_alt_names: Vec<SubjectAltName>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub is_ca: bool,
}

impl CertInfo {
    pub fn uri_sans(&self) -> impl Iterator<Item = &str> {
        self.subject_alt_names.iter().filter_map(|san| match san {
            SubjectAltName::Uri(uri) => Some(uri.as_str()),
            _ => None,
        })
    }
}

pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>, InspectError> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|err| InspectError::BadCertificate(err.to_string()))?;
    if !rest.is_empty() {
        return Err(InspectError::BadCertificate(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )));
    }
    Ok(cert)
}

pub fn inspect(der: &[u8]) -> Result<CertInfo, InspectError> {
    let cert = parse(der)?;
    let sans = cert
        .subject_alternative_name()
        .map_err(|err| InspectError::BadCertificate(format!("subjectAltName: {err}")))?;
    let subject_alt_names = sans
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(convert_name)
                .collect()
        })
        .unwrap_or_default();
    let is_ca = cert
        .basic_constraints()
        .map_err(|err| InspectError::BadCertificate(format!("basicConstraints: {err}")))?
        .is_some_and(|ext| ext.value.ca);
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        subject_alt_names,
        not_before: Validity::from_unix_seconds(cert.validity().not_before.timestamp()),
        not_after: Validity::from_unix_seconds(cert.validity().not_after.timestamp()),
        is_ca,
    })
}

fn convert_name(name: &GeneralName<'_>) -> Option<SubjectAltName> {
    match name {
        GeneralName::DNSName(v) => Some(SubjectAltName::Dns((*v).to_owned())),
        GeneralName::URI(v) => Some(SubjectAltName::Uri((*v).to_owned())),
        GeneralName::RFC822Name(v) => Some(SubjectAltName::Email((*v).to_owned())),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(*bytes)
                .ok()
                .map(|b| SubjectAltName::Ip(IpAddr::from(b))),
            16 => <[u8; 16]>::try_from(*bytes)
                .ok()
                .map(|b| SubjectAltName::Ip(IpAddr::from(b))),
            _ => None,
        },
        _ => None,
    }
}

/// The one SPIFFE identity in a certificate's URI SANs.
pub fn spiffe_identity(der: &[u8]) -> Result<Identity, InspectError> {
    let info = inspect(der)?;
    let ids: Vec<&str> = info
        .uri_sans()
        .filter(|uri| {
            uri.get(..9)
                .is_some_and(|s| s.eq_ignore_ascii_case("spiffe://"))
        })
        .collect();
    match ids.as_slice() {
        [one] => Ok(one.parse()?),
        [] => Err(InspectError::NoSpiffeId {
            sans: info
                .subject_alt_names
                .iter()
                .map(ToString::to_string)
                .collect(),
        }),
        many => Err(InspectError::SeveralSpiffeIds {
            ids: many.iter().map(|s| (*s).to_owned()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_matching_rules() {
        assert!(SubjectAltName::Dns("Is5.Istio.Client".into()).matches("is5.istio.client"));
        assert!(!SubjectAltName::Dns("a.example".into()).matches("b.example"));
        assert!(SubjectAltName::Ip("10.0.0.1".parse().unwrap()).matches("10.0.0.1"));
        assert!(!SubjectAltName::Ip("10.0.0.1".parse().unwrap()).matches("10.0.0.2"));
        assert!(
            SubjectAltName::Uri("spiffe://td/ns/a/sa/b".into()).matches("spiffe://td/ns/a/sa/b")
        );
        assert!(
            !SubjectAltName::Uri("spiffe://td/ns/a/sa/b".into()).matches("SPIFFE://td/ns/a/sa/b")
        );
    }

    #[test]
    fn garbage_is_reported_as_bad_certificate() {
        assert!(matches!(
            inspect(b"\x30\x03abc"),
            Err(InspectError::BadCertificate(_))
        ));
    }
}
