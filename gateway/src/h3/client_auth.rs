//! Client-certificate rules per SNI on a QUIC port shared by several servers.
//!
//! The shared rustls configuration only knows that *some* server of the port accepts the
//! client's chain ([`certs::PortClientVerifier`]). This wrapper around quinn's rustls session
//! applies the rules of the server the SNI selected the moment the handshake completes,
//! inside quinn's handshake processing: a refusal closes the connection with the QUIC
//! CRYPTO_ERROR of the TLS alert the TCP side would send (certificate_required,
//! unknown_ca ...), before the connection is handed to HTTP/3 and before any request.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use quinn::ConnectionId;
use quinn::crypto::rustls::{HandshakeData, QuicServerConfig};
use quinn::crypto::{
    self, ExportKeyingMaterialError, KeyPair, Keys, PacketKey, UnsupportedVersion,
};
use quinn_proto::TransportError;
use quinn_proto::transport_parameters::TransportParameters;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::config::ListenerRoutes;

/// The client-certificate rules of each server on the port, picked by SNI as on TCP.
pub(super) struct PortRules {
    pub(super) routes: ListenerRoutes,
    /// Servers with an HTTP/3 twin, by name: their TCP verifiers.
    pub(super) servers: HashMap<String, Arc<dyn ClientCertVerifier>>,
}

impl PortRules {
    fn admit(
        &self,
        sni: Option<&str>,
        chain: Option<&[CertificateDer<'_>]>,
    ) -> Result<(), certs::ClientRefused> {
        let rules = self
            .routes
            .terminating_server_for(sni)
            .and_then(|server| self.servers.get(&server.name))
            .ok_or_else(|| certs::ClientRefused {
                alert: rustls::AlertDescription::UnrecognisedName,
                reason: "no server of this port serves this SNI over HTTP/3".to_owned(),
            })?;
        certs::admit_client(rules.as_ref(), chain, UnixTime::now()).map(|_| ())
    }
}

/// quinn's rustls server configuration whose sessions end in [`PortRules::admit`].
pub(super) struct PerServerClientAuth {
    pub(super) inner: Arc<QuicServerConfig>,
    pub(super) rules: Arc<PortRules>,
}

impl crypto::ServerConfig for PerServerClientAuth {
    fn initial_keys(
        &self,
        version: u32,
        dst_cid: &ConnectionId,
    ) -> Result<Keys, UnsupportedVersion> {
        self.inner.initial_keys(version, dst_cid)
    }

    fn retry_tag(&self, version: u32, orig_dst_cid: &ConnectionId, packet: &[u8]) -> [u8; 16] {
        self.inner.retry_tag(version, orig_dst_cid, packet)
    }

    fn start_session(
        self: Arc<Self>,
        version: u32,
        params: &TransportParameters,
    ) -> Box<dyn crypto::Session> {
        Box::new(CheckedSession {
            inner: Arc::clone(&self.inner).start_session(version, params),
            rules: Arc::clone(&self.rules),
            admitted: false,
        })
    }
}

struct CheckedSession {
    inner: Box<dyn crypto::Session>,
    rules: Arc<PortRules>,
    admitted: bool,
}

impl CheckedSession {
    fn admit(&self) -> Result<(), TransportError> {
        let sni = self
            .inner
            .handshake_data()
            .and_then(|data| data.downcast::<HandshakeData>().ok())
            .and_then(|data| data.server_name)
            .map(|name| name.to_ascii_lowercase());
        let chain = self
            .inner
            .peer_identity()
            .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok());
        self.rules
            .admit(sni.as_deref(), chain.as_deref().map(Vec::as_slice))
            .map_err(|refused| {
                tracing::info!(listener = %self.rules.routes.name, sni = sni.as_deref().unwrap_or(""), alert = ?refused.alert, reason = %refused.reason, transport = "quic", "client certificate refused by the SNI's server");
                TransportError {
                    code: quinn::TransportErrorCode::crypto(u8::from(refused.alert)),
                    frame: None,
                    reason: refused.reason,
                }
            })
    }
}

impl crypto::Session for CheckedSession {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: quinn::Side) -> Keys {
        self.inner.initial_keys(dst_cid, side)
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        self.inner.handshake_data()
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.inner.peer_identity()
    }

    fn early_crypto(&self) -> Option<(Box<dyn crypto::HeaderKey>, Box<dyn PacketKey>)> {
        self.inner.early_crypto()
    }

    fn early_data_accepted(&self) -> Option<bool> {
        self.inner.early_data_accepted()
    }

    fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        let ready = self.inner.read_handshake(buf)?;
        // The client's Finished completes the handshake: its certificate (if any) and the
        // SNI are final, and quinn has not yet told the application about the connection.
        if !self.admitted && !self.inner.is_handshaking() {
            self.admit()?;
            self.admitted = true;
        }
        Ok(ready)
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        self.inner.transport_parameters()
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        self.inner.write_handshake(buf)
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn PacketKey>>> {
        self.inner.next_1rtt_keys()
    }

    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        self.inner.is_valid_retry(orig_dst_cid, header, payload)
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        self.inner.export_keying_material(output, label, context)
    }
}
