//! Clients as a mesh sidecar or a misbehaving peer would connect to a gateway.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::pki::{ANY_BACKEND, Pki};

pub const ISTIO_ALPN: &[u8] = b"istio";

/// Istio's SNI for a service port and subset (empty subset: the whole service).
pub fn sni(port: u16, subset: &str, fqdn: &str) -> String {
    format!("outbound_.{port}_.{subset}_.{fqdn}")
}

/// Verifies the backend chain against the test CA for [`ANY_BACKEND`] whatever SNI was sent,
/// as a mesh client checks the peer's identity rather than the routing name.
#[derive(Debug)]
struct BackendVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for BackendVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _sni: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
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

/// A TLS client that trusts `pki` and offers `alpn`.
pub fn connector(pki: &Pki, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der().clone()).unwrap();
    let inner = WebPkiServerVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let verifier = BackendVerifier {
        inner,
        name: ServerName::try_from(ANY_BACKEND).unwrap(),
    };
    let mut config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// Connects to `address` and completes a verified handshake sending `sni`.
pub async fn tls_connect(
    connector: &TlsConnector,
    address: SocketAddr,
    sni: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(sni.to_owned())
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    let tcp = TcpStream::connect(address).await?;
    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// The end-entity certificate the server presented.
pub fn peer_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// Sends `line` and returns the answer line, without its newline.
pub async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, line: &str) -> String {
    stream
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    stream.flush().await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut answer))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    answer.trim_end().to_owned()
}

/// True when the peer closes (EOF or reset) within `within`, without sending anything.
pub async fn closed_by_peer(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 64];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buffer)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// The bytes of a real ClientHello for `sni` (with ALPN `istio` when `sni` is given), as a
/// mesh client would send them; `None` leaves server_name out.
pub fn client_hello(sni: Option<&str>) -> Vec<u8> {
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![ISTIO_ALPN.to_vec()];
    config.enable_sni = sni.is_some();
    // Without SNI rustls still needs a name to verify against later; it is not sent.
    let name = ServerName::try_from(sni.unwrap_or("no-sni.test").to_owned()).unwrap();
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    while connection.wants_write() {
        connection.write_tls(&mut hello).unwrap();
    }
    hello
}
