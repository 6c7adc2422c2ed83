//! Shared pieces of the sidecar tests: a mesh PKI (one root, an intermediate per cluster),
//! sidecars built from it, local apps (TCP echo, HTTP header echo), raw proxy clients and
//! configuration builders. Everything runs on loopback.
// Helpers of test code: a failed setup step should panic right there, like the tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use certs::{Authority, Identity, RotatingCert, Validity};
use gateway::sidecar::{AppProtocol, InboundSpec, MeshTls, Sidecar, SidecarHandle, SidecarOptions};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use multicluster::proto::{self, GatewayConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

pub const TRUST_DOMAIN: &str = "cluster.local";
pub const REVIEWS: &str = "reviews.default.svc.cluster.local";

pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

// === Certificates ===

/// One mesh root and one intermediate per cluster, as `isthmus certs` lays them out.
pub struct MeshPki {
    pub root: Authority,
    pub cluster1: Authority,
    pub cluster2: Authority,
}

impl MeshPki {
    pub fn new() -> MeshPki {
        let validity = Validity::starting_now(Duration::from_secs(24 * 3600));
        let root = Authority::generate_root(TRUST_DOMAIN, validity).unwrap();
        let cluster1 = root
            .generate_intermediate("cluster1", Some(TRUST_DOMAIN), validity)
            .unwrap();
        let cluster2 = root
            .generate_intermediate("cluster2", Some(TRUST_DOMAIN), validity)
            .unwrap();
        MeshPki {
            root,
            cluster1,
            cluster2,
        }
    }

    /// A sidecar identity `ns/default/sa/<service_account>` issued by `issuer`.
    pub fn mesh_tls(&self, issuer: &Authority, service_account: &str) -> Arc<MeshTls> {
        let identity = Identity::new(TRUST_DOMAIN, "default", service_account).unwrap();
        let issued = issuer
            .issue_workload(&identity, Duration::from_secs(3600))
            .unwrap();
        let rotating = RotatingCert::new(issued.certified_key().unwrap()).unwrap();
        Arc::new(MeshTls::new(Arc::new(rotating), self.root.roots().to_vec()).unwrap())
    }
}

impl MeshPki {
    /// `bookinfo-productpage` issued under a different root, trusting this mesh's root too,
    /// so a refusal it meets is the server's, not its own.
    pub fn foreign_tls(&self) -> Arc<MeshTls> {
        let foreign = MeshPki::new();
        let identity = Identity::new(TRUST_DOMAIN, "default", "bookinfo-productpage").unwrap();
        let issued = foreign
            .cluster1
            .issue_workload(&identity, Duration::from_secs(3600))
            .unwrap();
        let rotating = Arc::new(RotatingCert::new(issued.certified_key().unwrap()).unwrap());
        let mut roots = foreign.root.roots().to_vec();
        roots.extend(self.root.roots().iter().cloned());
        Arc::new(MeshTls::new(rotating, roots).unwrap())
    }
}

pub fn spiffe(service_account: &str) -> String {
    format!("spiffe://{TRUST_DOMAIN}/ns/default/sa/{service_account}")
}

// === Sidecars ===

pub async fn sidecar(tls: Arc<MeshTls>, inbound: Vec<InboundSpec>) -> SidecarHandle {
    init();
    let options = SidecarOptions {
        inbound,
        ..SidecarOptions::ephemeral()
    };
    Sidecar::start(options, tls).await.expect("sidecar starts")
}

/// An inbound on `ip`:<ephemeral> in front of `app`.
pub fn inbound(ip: [u8; 4], app: SocketAddr, protocol: AppProtocol) -> InboundSpec {
    InboundSpec {
        listen: SocketAddr::from((ip, 0)),
        app,
        protocol,
    }
}

// === Configuration ===

pub struct Ep {
    pub address: SocketAddr,
    pub weight: u32,
    pub network: &'static str,
    pub network_gateway: bool,
    pub service_account: &'static str,
}

pub fn direct(address: SocketAddr, service_account: &'static str) -> Ep {
    Ep {
        address,
        weight: 1,
        network: "network-1",
        network_gateway: false,
        service_account,
    }
}

pub fn via_gateway(address: SocketAddr, weight: u32) -> Ep {
    Ep {
        address,
        weight,
        network: "network-2",
        network_gateway: true,
        service_account: "",
    }
}

pub fn cluster(port: u16, subset: &str, host: &str, endpoints: Vec<Ep>) -> proto::Cluster {
    proto::Cluster {
        name: format!("outbound|{port}|{subset}|{host}"),
        service: host.to_owned(),
        port: u32::from(port),
        subset: subset.to_owned(),
        protocol: proto::Protocol::Http as i32,
        endpoints: endpoints
            .into_iter()
            .map(|ep| proto::Endpoint {
                address: ep.address.ip().to_string(),
                port: u32::from(ep.address.port()),
                weight: ep.weight,
                network: ep.network.into(),
                network_gateway: ep.network_gateway,
                service_account: ep.service_account.into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

pub fn config(clusters: Vec<proto::Cluster>) -> GatewayConfig {
    let config = GatewayConfig {
        version: "1".into(),
        clusters,
        ..Default::default()
    };
    let problems = multicluster::validate(&config);
    assert!(problems.is_empty(), "test config is invalid: {problems:?}");
    config
}

// === Apps ===

/// A local application; counts the connections it accepted.
pub struct App {
    pub address: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl App {
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Echoes every byte back, prefixed once with `<name>: `.
    pub async fn tcp_echo(name: &'static str) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let _ = stream.write_all(format!("{name}: ").as_bytes()).await;
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        App { address, accepted }
    }

    /// Answers every request with `app=<name>` then its request line and headers, one per line.
    pub async fn http_echo(name: &'static str) -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| async move {
                            let mut body =
                                format!("app={name}\n{} {}\n", request.method(), request.uri());
                            for (header, value) in request.headers() {
                                body.push_str(&format!(
                                    "{header}: {}\n",
                                    value.to_str().unwrap_or("<binary>")
                                ));
                            }
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from(body),
                            )))
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        App { address, accepted }
    }
}

// === Clients ===

/// Sends `CONNECT target` (plus `extra` header lines) and returns the status line and stream.
pub async fn connect_tunnel(
    proxy: SocketAddr,
    target: &str,
    extra: &[&str],
) -> (String, String, TcpStream) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, body) = read_head(&mut stream).await;
    (status, body, stream)
}

/// Reads a response head byte by byte (so nothing after it is consumed) and, for error
/// statuses, a `content-length` body.
async fn read_head(stream: &mut TcpStream) -> (String, String) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert!(
            n == 1,
            "proxy closed before the response head ended: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head.lines().next().unwrap_or_default().to_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Writes `payload` through an open tunnel and reads back `expect_len` bytes.
pub async fn exchange(stream: &mut TcpStream, payload: &[u8], expect_len: usize) -> String {
    stream.write_all(payload).await.unwrap();
    let mut buffer = vec![0u8; expect_len];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buffer))
        .await
        .expect("echo arrives in time")
        .unwrap();
    String::from_utf8(buffer).unwrap()
}

/// One absolute-form request through the proxy; returns the status line and the body.
pub async fn proxy_get(proxy: SocketAddr, url: &str, extra: &[&str]) -> (String, String) {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let host = url.trim_start_matches("http://").split('/').next().unwrap();
    let mut request = format!("GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        BufReader::new(stream).read_to_string(&mut response),
    )
    .await
    .expect("response arrives in time")
    .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// Header lines of the HTTP echo app's body named `name` (lowercase).
pub fn echoed<'b>(body: &'b str, name: &str) -> Vec<&'b str> {
    body.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
        .collect()
}

pub async fn read_line(stream: &mut TcpStream) -> String {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).await.unwrap();
    line
}

/// The sum of `name` samples whose labels include every `labels` pair.
pub fn metric(handle: &SidecarHandle, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = handle.gateway().metrics().encode();
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| {
            labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
        })
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}
