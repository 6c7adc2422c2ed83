//! Shared pieces of the L4 tests: certificates, TLS and TCP echo backends, mesh-like TLS
//! clients, configuration builders and admin/metrics readers. Everything runs on loopback.
// Helpers of test code: a failed setup step should panic right there, like the tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use gateway::{Gateway, GatewayHandle, GatewayOptions};
use multicluster::proto::{self, GatewayConfig, Protocol, TlsMode, server::Routing};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub const ISTIO_ALPN: &[u8] = b"istio";
/// A name every backend certificate also carries, for clients that accept any backend.
pub const ANY_BACKEND: &str = "backend.test";

pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

// === Certificates ===

/// A CA and the leaf certificates it issued for backends.
pub struct Pki {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        Pki {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `dns_name` (its subject CN) and for [`ANY_BACKEND`].
    pub fn leaf(&self, dns_name: &str) -> Leaf {
        let names = vec![dns_name.to_owned(), ANY_BACKEND.to_owned()];
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, dns_name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain: vec![cert.der().clone(), self.ca_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

// === Backends ===

/// An echo backend: counts TCP accepts, greets each connection with `id=<id> sni=<sni>\n`,
/// echoes everything, and after the client's EOF writes `bye\n` and closes.
pub struct Backend {
    pub id: String,
    pub address: SocketAddr,
    pub accepts: Arc<AtomicUsize>,
    pub snis: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Backend {
    pub async fn tls(id: &str, leaf: Leaf) -> Backend {
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(leaf.chain, leaf.key)
            .unwrap();
        Self::start(id, Some(TlsAcceptor::from(Arc::new(config)))).await
    }

    pub async fn tcp(id: &str) -> Backend {
        Self::start(id, None).await
    }

    async fn start(id: &str, tls: Option<TlsAcceptor>) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let snis = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (id, accepts, snis) = (id.to_owned(), accepts.clone(), snis.clone());
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    accepts.fetch_add(1, Ordering::SeqCst);
                    let (id, snis, tls) = (id.clone(), snis.clone(), tls.clone());
                    tokio::spawn(async move {
                        match tls {
                            Some(acceptor) => {
                                let Ok(stream) = acceptor.accept(stream).await else {
                                    return;
                                };
                                let sni = stream.get_ref().1.server_name().unwrap_or("").to_owned();
                                snis.lock().unwrap().push(sni.clone());
                                echo(stream, &id, &sni).await;
                            }
                            None => echo(stream, &id, "").await,
                        }
                    });
                }
            }
        });
        Backend {
            id: id.to_owned(),
            address,
            accepts,
            snis,
            task,
        }
    }

    pub fn accepted(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }

    /// Closes the listening socket: new connections are refused from now on.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn echo<S>(stream: S, id: &str, sni: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut read, mut write) = tokio::io::split(stream);
    if write
        .write_all(format!("id={id} sni={sni}\n").as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let mut buffer = [0u8; 4096];
    loop {
        match read.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => {
                if write.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    let _ = write.write_all(b"bye\n").await;
    let _ = write.shutdown().await;
}

// === Clients ===

/// Verifies the chain against the backend CA for a fixed name, whatever the SNI: mesh
/// clients verify identities, not the `outbound_...` name they send.
#[derive(Debug)]
struct FixedNameVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
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

/// A TLS client that trusts `pki` and expects a certificate for `expected_name`.
pub fn tls_connector(pki: &Pki, expected_name: &str, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der().clone()).unwrap();
    let inner = rustls::client::WebPkiServerVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let verifier = FixedNameVerifier {
        inner,
        name: ServerName::try_from(expected_name.to_owned()).unwrap(),
    };
    let mut config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

pub async fn tls_connect(
    connector: &TlsConnector,
    address: SocketAddr,
    sni: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(address).await?;
    let name = ServerName::try_from(sni.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// Reads one `\n`-terminated line byte by byte (tests only).
pub async fn read_line<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no line"))??;
        if n == 0 || byte[0] == b'\n' {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        line.push(byte[0]);
    }
}

/// Waits until the gateway closes `stream`; true when it did (EOF or reset) in time.
pub async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Plain TCP: connects, reads the backend greeting and returns its id.
pub async fn tcp_greeting(address: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    let line = read_line(&mut stream).await?;
    line.strip_prefix("id=")
        .and_then(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .ok_or_else(|| std::io::Error::other(format!("unexpected greeting {line:?}")))
}

// === Configuration ===

pub fn sni(port: u16, subset: &str, host: &str) -> String {
    format!("outbound_.{port}_.{subset}_.{host}")
}

pub fn cluster_name(port: u16, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

pub fn cluster(
    port: u16,
    subset: &str,
    host: &str,
    endpoints: &[(SocketAddr, u32)],
) -> proto::Cluster {
    proto::Cluster {
        name: cluster_name(port, subset, host),
        service: host.to_owned(),
        port: u32::from(port),
        subset: subset.to_owned(),
        protocol: Protocol::Tcp as i32,
        endpoints: endpoints
            .iter()
            .map(|(address, weight)| proto::Endpoint {
                address: address.ip().to_string(),
                port: u32::from(address.port()),
                weight: *weight,
                network: "network-1".into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

pub fn auto_passthrough_listener(port: u16, routes: &[(String, String)]) -> proto::Listener {
    proto::Listener {
        name: format!("0.0.0.0_{port}"),
        bind_address: "0.0.0.0".into(),
        port: u32::from(port),
        servers: vec![proto::Server {
            name: format!("tls.{port}.cross-network-gateway"),
            protocol: Protocol::Tls as i32,
            hosts: vec!["*.local".into()],
            tls: Some(proto::ServerTls {
                mode: TlsMode::AutoPassthrough as i32,
                ..Default::default()
            }),
            routing: Some(Routing::AutoPassthrough(proto::SniTable {
                routes: routes
                    .iter()
                    .map(|(sni, cluster)| proto::SniRoute {
                        sni: sni.clone(),
                        cluster: cluster.clone(),
                    })
                    .collect(),
            })),
        }],
    }
}

pub fn passthrough_listener(
    port: u16,
    hosts: &[&str],
    routes: &[(&[&str], &str)],
) -> proto::Listener {
    proto::Listener {
        name: format!("0.0.0.0_{port}"),
        bind_address: "0.0.0.0".into(),
        port: u32::from(port),
        servers: vec![proto::Server {
            name: format!("https.{port}.passthrough"),
            protocol: Protocol::Https as i32,
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            tls: Some(proto::ServerTls {
                mode: TlsMode::Passthrough as i32,
                ..Default::default()
            }),
            routing: Some(Routing::TlsRoutes(proto::TlsRoutes {
                routes: routes
                    .iter()
                    .map(|(sni_hosts, cluster)| proto::TlsRoute {
                        sni_hosts: sni_hosts.iter().map(|h| (*h).to_owned()).collect(),
                        destinations: vec![proto::WeightedCluster {
                            cluster: (*cluster).to_owned(),
                            weight: 0,
                        }],
                    })
                    .collect(),
            })),
        }],
    }
}

pub fn tcp_listener(port: u16, destinations: &[(&str, u32)]) -> proto::Listener {
    proto::Listener {
        name: format!("0.0.0.0_{port}"),
        bind_address: "0.0.0.0".into(),
        port: u32::from(port),
        servers: vec![proto::Server {
            name: format!("tcp.{port}"),
            protocol: Protocol::Tcp as i32,
            hosts: vec!["*".into()],
            tls: None,
            routing: Some(Routing::TcpRoutes(proto::TcpRoutes {
                routes: vec![proto::TcpRoute {
                    destinations: destinations
                        .iter()
                        .map(|(cluster, weight)| proto::WeightedCluster {
                            cluster: (*cluster).to_owned(),
                            weight: *weight,
                        })
                        .collect(),
                }],
            })),
        }],
    }
}

pub fn config(
    version: &str,
    listeners: Vec<proto::Listener>,
    clusters: Vec<proto::Cluster>,
) -> GatewayConfig {
    let config = GatewayConfig {
        version: version.to_owned(),
        listeners,
        clusters,
        ..Default::default()
    };
    let problems = multicluster::validate(&config);
    assert!(problems.is_empty(), "test config is invalid: {problems:?}");
    config
}

// === Gateway ===

pub fn test_options() -> GatewayOptions {
    GatewayOptions {
        network: Some("network-1".into()),
        ..GatewayOptions::ephemeral()
    }
}

pub async fn start(options: GatewayOptions) -> GatewayHandle {
    init_tracing();
    Gateway::start(options).await.expect("gateway starts")
}

/// A minimal HTTP/1.1 GET: returns the status code and body.
pub async fn http_get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub async fn stats(handle: &GatewayHandle) -> String {
    let (status, body) = http_get(handle.admin_addresses().stats, "/stats/prometheus").await;
    assert_eq!(status, 200);
    body
}

/// The value of the sample of `name` whose labels include every `labels` pair; 0 if absent.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with('{'))
        .filter(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn rejected(handle: &GatewayHandle, reason: &str) -> f64 {
    metric(
        &stats(handle).await,
        "isthmus_rejected_connections_total",
        &[("reason", reason)],
    )
}

/// Polls `check` until it holds or a few seconds pass (metrics update after the close).
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    false
}

/// A ClientHello as a mesh client sends it (ALPN `istio`), `None` leaving out the SNI.
pub fn client_hello(sni: Option<&str>) -> Vec<u8> {
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"istio".to_vec()];
    config.enable_sni = sni.is_some();
    let name =
        rustls::pki_types::ServerName::try_from(sni.unwrap_or("unused.test").to_owned()).unwrap();
    let mut connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    while connection.wants_write() {
        connection.write_tls(&mut hello).unwrap();
    }
    hello
}
