//! A tonic connector that speaks mesh mTLS with a [`certs::RotatingCert`], so every new
//! connection presents the certificate current at that moment (tonic's own TLS settings take
//! a fixed identity).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use certs::{Identity, RotatingCert, TlsConfigError};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Dials the URI's host and port and runs the TLS handshake with `config`. The server is
/// checked by identity (the config's verifier), so the TLS name only fills in SNI.
#[derive(Clone)]
pub struct MeshTlsConnector {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for MeshTlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshTlsConnector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl MeshTlsConnector {
    pub fn new(config: Arc<ClientConfig>, server_name: ServerName<'static>) -> Self {
        MeshTlsConnector {
            config,
            server_name,
        }
    }

    /// Mesh mTLS towards discovery's gRPC port (HTTP/2): presents whatever `cert` holds at
    /// each connection, and accepts only a server chaining to `roots` with SPIFFE id
    /// `discovery` (any mesh identity when `None`). Use it with
    /// `Endpoint::connect_with_connector` on an `http://` URI, so a reconnect after a renewal
    /// proves the identity with the renewed certificate.
    pub fn to_discovery(
        cert: Arc<RotatingCert>,
        roots: &[CertificateDer<'static>],
        discovery: Option<&Identity>,
    ) -> Result<Self, TlsConfigError> {
        let expected: Vec<Identity> = discovery.into_iter().cloned().collect();
        let config = certs::mesh_client_config(cert, roots, &expected, vec![b"h2".to_vec()])?;
        // Checked by SPIFFE id, not by name: this only fills in SNI.
        let server_name =
            ServerName::try_from(DISCOVERY_SNI).map_err(|error| TlsConfigError::BadServerName {
                name: DISCOVERY_SNI.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(MeshTlsConnector::new(Arc::new(config), server_name))
    }
}

/// The SNI discovery connections carry; the server certificate is checked by identity.
const DISCOVERY_SNI: &str = "isthmus-discovery";

type Connecting =
    Pin<Box<dyn Future<Output = Result<TokioIo<TlsStream<TcpStream>>, std::io::Error>> + Send>>;

// tonic re-exports tower's Service trait, which is what its connectors implement.
impl tonic::codegen::Service<http::Uri> for MeshTlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connector = TlsConnector::from(Arc::clone(&self.config));
        let server_name = self.server_name.clone();
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("discovery URI {uri} has no host"),
                )
            })?;
            // IPv6 literals come bracketed in URIs; sockets want them bare.
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().unwrap_or(15012);
            let tcp = TcpStream::connect((host, port)).await?;
            // Nagle would hold back small gRPC frames; an error here only costs latency.
            let _ = tcp.set_nodelay(true);
            let tls = connector.connect(server_name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}
