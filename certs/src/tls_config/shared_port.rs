//! One TLS handshake for several Gateway servers whose client-certificate rules differ (a
//! SIMPLE and a MUTUAL server on one port, or two MUTUAL servers with different CAs), as QUIC
//! needs: a quinn endpoint takes one rustls configuration per port, and rustls gives the
//! client-certificate verifier no SNI.
//!
//! So the decision is split in two, both made by the servers' own verifiers (the objects
//! their TCP handshakes use, so the rules exist once):
//! - during the handshake, [`PortClientVerifier`] offers client authentication without
//!   requiring it, and accepts a chain only if one of the port's servers would;
//! - once the handshake has picked the server by SNI, [`admit_client`] applies that server's
//!   verifier alone, and the caller closes the connection with its TLS alert on refusal.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ResolvesServerCert, ServerConfig, WebPkiClientVerifier};
use rustls::{AlertDescription, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::{TlsConfigError, crypto_provider, rustls_error};

/// Accepts a client chain that any of the port's client-authenticating servers accepts.
#[derive(Debug)]
pub struct PortClientVerifier {
    /// Only the verifiers that offer client authentication; never empty.
    servers: Vec<Arc<dyn ClientCertVerifier>>,
    /// Every CA the port trusts for clients, so a client can pick its certificate.
    hints: Vec<DistinguishedName>,
}

impl PortClientVerifier {
    /// The verifier for a port whose servers have these verifiers: rustls' "no client auth"
    /// when none of them asks for a certificate.
    pub fn for_servers(verifiers: &[Arc<dyn ClientCertVerifier>]) -> Arc<dyn ClientCertVerifier> {
        let servers: Vec<_> = verifiers
            .iter()
            .filter(|v| v.offer_client_auth())
            .cloned()
            .collect();
        if servers.is_empty() {
            return WebPkiClientVerifier::no_client_auth();
        }
        let mut hints: Vec<DistinguishedName> = Vec::new();
        for hint in servers.iter().flat_map(|v| v.root_hint_subjects()) {
            if !hints.iter().any(|seen| seen.as_ref() == hint.as_ref()) {
                hints.push(hint.clone());
            }
        }
        Arc::new(Self { servers, hints })
    }

    fn signatures(&self) -> &dyn ClientCertVerifier {
        // Signature checks depend on the algorithm, not the CA: every gateway verifier
        // delegates them to webpki with the same ring algorithms.
        self.servers[0].as_ref()
    }
}

impl ClientCertVerifier for PortClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// The SNI-selected server's rules decide after the handshake ([`admit_client`]).
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let mut refusal = None;
        for server in &self.servers {
            // A trial: the other servers refusing a certificate meant for one of them is
            // expected, so their verifiers' own refusal logs stay quiet here.
            let trial = tracing::subscriber::with_default(
                tracing::subscriber::NoSubscriber::default(),
                || server.verify_client_cert(end_entity, intermediates, now),
            );
            let error = match trial {
                Ok(verified) => return Ok(verified),
                Err(error) => error,
            };
            // The refusal worth reporting comes from a server whose CA knows the chain (a
            // subjectAltNames miss, an expired certificate), not from the others.
            if refusal.as_ref().is_none_or(is_unknown_issuer) {
                refusal = Some(error);
            }
        }
        let error = refusal.unwrap_or(rustls::Error::General(
            "no server of this port verifies client certificates".to_owned(),
        ));
        tracing::warn!(%error, "client certificate refused: no server of this port accepts it");
        Err(error)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures().supported_verify_schemes()
    }
}

fn is_unknown_issuer(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    )
}

/// The QUIC (TLS 1.3 only) configuration of a port shared by several servers: `certs` picks
/// the certificate by SNI, `client_verifier` is a [`PortClientVerifier`]. TLS 1.3 suites are
/// not configurable per server (`cipherSuites` covers TLS 1.2 and below, as in Envoy), so the
/// default provider serves every server of the port. 0-RTT is off; the caller may enable it.
pub fn shared_quic_server_config(
    certs: Arc<dyn ResolvesServerCert>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    alpn: Vec<Vec<u8>>,
) -> Result<ServerConfig, TlsConfigError> {
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rustls_error("shared QUIC server"))?
        .with_client_cert_verifier(client_verifier)
        .with_cert_resolver(certs);
    config.alpn_protocols = alpn;
    config.max_early_data_size = 0;
    Ok(config)
}

/// What a server's rules made of the client's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAdmission {
    /// The server does not ask for certificates (SIMPLE): whatever was sent is ignored, as
    /// its TCP side would never have received one.
    NotRequested,
    /// No certificate, and the server allows that (OPTIONAL_MUTUAL).
    Anonymous,
    /// The chain passed the server's verifier.
    Verified,
}

/// A client the selected server's rules refuse, with the alert its TCP handshake would send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ClientRefused {
    pub alert: AlertDescription,
    pub reason: String,
}

/// Applies one server's client-certificate rules to the chain of a finished handshake
/// (`chain[0]` is the leaf, as rustls and quinn give it).
pub fn admit_client(
    rules: &dyn ClientCertVerifier,
    chain: Option<&[CertificateDer<'_>]>,
    now: UnixTime,
) -> Result<ClientAdmission, ClientRefused> {
    if !rules.offer_client_auth() {
        return Ok(ClientAdmission::NotRequested);
    }
    let Some((leaf, intermediates)) = chain.and_then(<[_]>::split_first) else {
        if rules.client_auth_mandatory() {
            return Err(ClientRefused {
                alert: AlertDescription::CertificateRequired,
                reason: "this server requires a client certificate and none was presented"
                    .to_owned(),
            });
        }
        return Ok(ClientAdmission::Anonymous);
    };
    match rules.verify_client_cert(leaf, intermediates, now) {
        Ok(_) => Ok(ClientAdmission::Verified),
        Err(error) => Err(ClientRefused {
            alert: match &error {
                rustls::Error::InvalidCertificate(e) => AlertDescription::from(e.clone()),
                _ => AlertDescription::BadCertificate,
            },
            reason: format!("client certificate refused by this server's rules: {error}"),
        }),
    }
}
