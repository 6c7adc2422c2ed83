//! Certificate verifiers that add mesh and gateway rules on top of webpki's chain checks.
//! Chain building, expiry and signatures always stay with webpki.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::identity::Identity;
use crate::inspect::{self, InspectError};
use crate::policy::client_cert::{ClientCertAllowList, ClientCertError};

/// Why a chain-valid peer certificate is still refused.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerCertError {
    #[error("peer certificate has no usable SPIFFE identity: {0}")]
    NoIdentity(#[from] InspectError),
    #[error("peer identity {presented} is not among the allowed identities {allowed:?}")]
    IdentityNotAllowed {
        presented: String,
        allowed: Vec<String>,
    },
    #[error("server identity {presented} is not the expected {expected:?}")]
    UnexpectedServerIdentity {
        presented: String,
        expected: Vec<String>,
    },
    #[error(transparent)]
    ClientCert(#[from] ClientCertError),
    #[error("server certificate SANs {presented:?} match none of subjectAltNames {allowed:?}")]
    ServerSanNotAllowed {
        presented: Vec<String>,
        allowed: Vec<String>,
    },
}

/// rustls prints `CertificateError::Other` with `Debug`, so `Debug` gives the readable
/// message: it is what ends up in handshake errors and logs.
impl fmt::Debug for PeerCertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<PeerCertError> for rustls::Error {
    fn from(err: PeerCertError) -> Self {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(err))))
    }
}

/// A rule applied to a peer's end-entity certificate after its chain verified.
pub(crate) trait EndEntityCheck: fmt::Debug + Send + Sync {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), PeerCertError>;
}

/// Mesh peers whose SPIFFE id is in a fixed set.
#[derive(Debug)]
pub(crate) struct AllowedIdentities(pub(crate) Vec<Identity>);

impl EndEntityCheck for AllowedIdentities {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), PeerCertError> {
        let presented = inspect::spiffe_identity(end_entity)?;
        if self.0.contains(&presented) {
            return Ok(());
        }
        Err(PeerCertError::IdentityNotAllowed {
            presented: presented.uri(),
            allowed: self.0.iter().map(Identity::uri).collect(),
        })
    }
}

/// Any mesh peer, as long as it has exactly one SPIFFE id.
#[derive(Debug)]
pub(crate) struct AnyIdentity;

impl EndEntityCheck for AnyIdentity {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), PeerCertError> {
        inspect::spiffe_identity(end_entity)?;
        Ok(())
    }
}

impl EndEntityCheck for ClientCertAllowList {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), PeerCertError> {
        Ok(ClientCertAllowList::check(self, end_entity)?)
    }
}

/// webpki's client verifier plus an [`EndEntityCheck`], so a refused certificate fails the
/// handshake itself rather than the first request.
#[derive(Debug)]
pub(crate) struct CheckedClientVerifier {
    pub(crate) inner: Arc<dyn ClientCertVerifier>,
    pub(crate) check: Box<dyn EndEntityCheck>,
}

impl ClientCertVerifier for CheckedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
            .inspect_err(|err| tracing::warn!(error = %err, "client certificate refused"))?;
        self.check
            .check(end_entity)
            .inspect_err(|err| tracing::warn!(error = %err, "client certificate refused"))?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Verifies a server chain against `roots` and then applies `check` to the leaf instead of
/// matching the TLS server name: mesh servers are named by SPIFFE id, and DestinationRule
/// `subjectAltNames` replace the host name check.
pub(crate) struct NameFreeServerVerifier {
    pub(crate) roots: Arc<RootCertStore>,
    pub(crate) algorithms: WebPkiSupportedAlgorithms,
    pub(crate) check: Box<dyn EndEntityCheck>,
}

impl fmt::Debug for NameFreeServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NameFreeServerVerifier")
            .field("roots", &self.roots.len())
            .field("check", &self.check)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for NameFreeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )
        .inspect_err(|err| tracing::warn!(error = %err, "server certificate refused"))?;
        self.check
            .check(end_entity)
            .inspect_err(|err| tracing::warn!(error = %err, "server certificate refused"))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server's identity must be one of `expected` (any mesh identity when empty).
#[derive(Debug)]
pub(crate) struct ExpectedServerIdentity(pub(crate) Vec<Identity>);

impl EndEntityCheck for ExpectedServerIdentity {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), PeerCertError> {
        let presented = inspect::spiffe_identity(end_entity)?;
        if self.0.is_empty() || self.0.contains(&presented) {
            return Ok(());
        }
        Err(PeerCertError::UnexpectedServerIdentity {
            presented: presented.uri(),
            expected: self.0.iter().map(Identity::uri).collect(),
        })
    }
}

/// The server certificate must carry one of these SANs (DestinationRule `subjectAltNames`).
#[derive(Debug)]
pub(crate) struct ServerSanAllowList(pub(crate) Vec<String>);

impl EndEntityCheck for ServerSanAllowList {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), PeerCertError> {
        let info = inspect::inspect(end_entity)?;
        let allowed = info
            .subject_alt_names
            .iter()
            .any(|san| self.0.iter().any(|wanted| san.matches(wanted)));
        if allowed {
            return Ok(());
        }
        Err(PeerCertError::ServerSanNotAllowed {
            presented: info
                .subject_alt_names
                .iter()
                .map(ToString::to_string)
                .collect(),
            allowed: self.0.clone(),
        })
    }
}
