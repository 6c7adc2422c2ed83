//! Shared test helpers: a CA per cluster under one root, and TLS handshakes over an in-memory
//! duplex pipe.
// Each test file uses a different subset of the helpers.
#![allow(dead_code)]
// Helpers run only inside tests, where a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certs::{Authority, Identity, IssuedCert, LeafSpec, RotatingCert, Validity};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

pub const TD: &str = "cluster.local";

pub fn day() -> Validity {
    Validity::starting_now(Duration::from_secs(86_400))
}

pub fn root() -> Authority {
    Authority::generate_root(TD, day()).unwrap()
}

pub fn id(ns: &str, sa: &str) -> Identity {
    Identity::new(TD, ns, sa).unwrap()
}

pub fn rotating(issued: &IssuedCert) -> Arc<RotatingCert> {
    Arc::new(RotatingCert::new(issued.certified_key().unwrap()).unwrap())
}

pub fn workload(ca: &Authority, identity: &Identity) -> Arc<RotatingCert> {
    rotating(
        &ca.issue_workload(identity, Duration::from_secs(3600))
            .unwrap(),
    )
}

pub fn dns_leaf(ca: &Authority, names: &[&str]) -> IssuedCert {
    ca.issue(&LeafSpec::for_dns_names(names, day())).unwrap()
}

pub fn expired_workload(ca: &Authority, identity: &Identity) -> Arc<RotatingCert> {
    let now = SystemTime::now();
    let past = Validity::new(
        now - Duration::from_secs(7200),
        now - Duration::from_secs(3600),
    )
    .unwrap();
    rotating(
        &ca.issue(&LeafSpec::for_identity(identity.clone(), past))
            .unwrap(),
    )
}

pub fn leaf_der(issued: &IssuedCert) -> CertificateDer<'static> {
    certs::pem::certificates(issued.chain_pem.as_bytes())
        .unwrap()
        .remove(0)
}

/// Both ends of a handshake attempt.
pub struct Attempt {
    pub server: std::io::Result<server::TlsStream<tokio::io::DuplexStream>>,
    pub client: std::io::Result<client::TlsStream<tokio::io::DuplexStream>>,
}

pub async fn handshake(server: ServerConfig, client: ClientConfig, server_name: &str) -> Attempt {
    handshake_arc(Arc::new(server), Arc::new(client), server_name).await
}

pub async fn handshake_arc(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    server_name: &str,
) -> Attempt {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let (server, client) = tokio::join!(
        TlsAcceptor::from(server).accept(server_io),
        TlsConnector::from(client).connect(name, client_io)
    );
    Attempt { server, client }
}

impl Attempt {
    /// Completes one request/response over the connection, proving both sides accepted.
    pub async fn exchange(self) -> Result<Established, String> {
        let (mut server, mut client) = match (self.server, self.client) {
            (Ok(server), Ok(client)) => (server, client),
            (server, client) => {
                return Err(format!(
                    "server: {}; client: {}",
                    server.err().map_or("ok".to_owned(), |e| e.to_string()),
                    client.err().map_or("ok".to_owned(), |e| e.to_string())
                ));
            }
        };
        ping_pong(&mut client, &mut server).await?;
        Ok(Established { server, client })
    }

    /// The error that ended the handshake; panics if both sides accepted.
    pub async fn refusal(self) -> String {
        match self.exchange().await {
            Ok(_) => panic!("handshake and exchange succeeded, expected a refusal"),
            Err(err) => err,
        }
    }
}

pub struct Established {
    pub server: server::TlsStream<tokio::io::DuplexStream>,
    pub client: client::TlsStream<tokio::io::DuplexStream>,
}

impl Established {
    pub fn server_connection(&self) -> &rustls::ServerConnection {
        self.server.get_ref().1
    }

    pub fn client_connection(&self) -> &rustls::ClientConnection {
        self.client.get_ref().1
    }

    /// The leaf the server presented, as the client saw it.
    pub fn server_leaf(&self) -> CertificateDer<'static> {
        self.client_connection().peer_certificates().unwrap()[0].clone()
    }

    pub async fn ping_pong(&mut self) -> Result<(), String> {
        ping_pong(&mut self.client, &mut self.server).await
    }
}

async fn ping_pong(
    client: &mut client::TlsStream<tokio::io::DuplexStream>,
    server: &mut server::TlsStream<tokio::io::DuplexStream>,
) -> Result<(), String> {
    // In TLS 1.3 the client finishes before the server has judged its certificate, so the
    // verdict shows up on the first read; run both sides together so neither waits forever.
    let client_side = async {
        client
            .write_all(b"ping")
            .await
            .map_err(|e| format!("client write: {e}"))?;
        client
            .flush()
            .await
            .map_err(|e| format!("client flush: {e}"))?;
        let mut reply = [0u8; 4];
        client
            .read_exact(&mut reply)
            .await
            .map_err(|e| format!("client read: {e}"))?;
        if &reply != b"pong" {
            return Err(format!("client read {reply:?}"));
        }
        Ok(())
    };
    let server_side = async {
        let mut request = [0u8; 4];
        server
            .read_exact(&mut request)
            .await
            .map_err(|e| format!("server read: {e}"))?;
        if &request != b"ping" {
            return Err(format!("server read {request:?}"));
        }
        server
            .write_all(b"pong")
            .await
            .map_err(|e| format!("server write: {e}"))?;
        server
            .flush()
            .await
            .map_err(|e| format!("server flush: {e}"))?;
        Ok::<(), String>(())
    };
    let (client_result, server_result) = tokio::join!(client_side, server_side);
    server_result.and(client_result)
}
