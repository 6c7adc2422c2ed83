//! Shared pieces of the HTTP end-to-end tests: an httpbin backend under gunicorn, small
//! in-test backends, curl as the client, and configurations shaped as discovery builds them.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod dns;

use gateway::{GatewayHandle, GatewayOptions};
use multicluster::proto::{
    self, Protocol, TlsMode, http_route::Action, server::Routing, string_match::Kind,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Fails the test with the pip command to run when a Python peer's modules are missing.
pub fn require_python_modules(modules: &[&str], pip_packages: &str) {
    let check = std::process::Command::new("python3")
        .args(["-c", &format!("import {}", modules.join(", "))])
        .stderr(Stdio::null())
        .status()
        .expect("python3 must be installed");
    assert!(
        check.success(),
        "{pip_packages} missing: python3 -m pip install {pip_packages}"
    );
}

/// httpbin (PyPI) under gunicorn on a free loopback port; killed when dropped.
pub struct Httpbin {
    pub address: SocketAddr,
    _child: Child,
}

impl Httpbin {
    pub async fn start() -> Httpbin {
        require_python_modules(&["httpbin", "gunicorn"], "httpbin gunicorn");
        let port = free_port();
        let address: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new("python3")
            .args([
                "-m",
                "gunicorn",
                "-b",
                &address.to_string(),
                "-w",
                "2",
                "--log-level",
                "warning",
                "httpbin:app",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("gunicorn starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut stream) = TcpStream::connect(address).await {
                let _ = stream
                    .write_all(b"GET /status/200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await;
                let mut reply = Vec::new();
                let _ = stream.read_to_end(&mut reply).await;
                if reply.starts_with(b"HTTP/1.1 200") {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "httpbin did not start on {address}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Httpbin {
            address,
            _child: child,
        }
    }
}

/// A tiny HTTP/1.1 backend that answers every request with `status` and a body naming
/// itself and the request line, and counts requests.
pub struct Counting {
    pub address: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// Connections the gateway closed (read to end of stream).
    pub closed: Arc<AtomicUsize>,
    /// Request lines seen, in order.
    pub lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Counting {
    pub async fn start(name: &'static str, status: u16) -> Counting {
        Counting::start_on(name, status, "127.0.0.1:0".parse().unwrap()).await
    }

    /// Listens on `address` (port 0: a free one).
    pub async fn start_on(name: &'static str, status: u16, address: SocketAddr) -> Counting {
        Counting::serve(name, status, address, false).await
    }

    /// Closes every connection right after its first reply, without saying so in the
    /// reply: what a backend whose keep-alive timeout is shorter than the gateway's does.
    pub async fn start_closing(name: &'static str, status: u16) -> Counting {
        Counting::serve(name, status, "127.0.0.1:0".parse().unwrap(), true).await
    }

    async fn serve(
        name: &'static str,
        status: u16,
        address: SocketAddr,
        close_after_reply: bool,
    ) -> Counting {
        let listener = TcpListener::bind(address).await.unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::clone(&connections);
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&lines);
        let closed = Arc::new(AtomicUsize::new(0));
        let ended = Arc::clone(&closed);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                accepted.fetch_add(1, Ordering::SeqCst);
                let counter = Arc::clone(&counter);
                let seen = Arc::clone(&seen);
                let ended = Arc::clone(&ended);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            ended.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        while let Some(end) = find(&buffer, b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                            let length: usize = head
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length")
                                        .then(|| v.trim().parse().ok())?
                                })
                                .unwrap_or(0);
                            let chunked = head
                                .to_ascii_lowercase()
                                .contains("transfer-encoding: chunked");
                            let total = if chunked {
                                // Only the empty chunked body the tests send: "0\r\n\r\n".
                                match find(&buffer[end + 4..], b"0\r\n\r\n") {
                                    Some(at) => end + 4 + at + 5,
                                    None => break,
                                }
                            } else {
                                end + 4 + length
                            };
                            if buffer.len() < total {
                                break;
                            }
                            buffer.drain(..total);
                            counter.fetch_add(1, Ordering::SeqCst);
                            let line = head.lines().next().unwrap_or("").to_owned();
                            seen.lock().unwrap().push(line.clone());
                            let host = head
                                .lines()
                                .find_map(|l| {
                                    l.strip_prefix("host: ")
                                        .or_else(|| l.strip_prefix("Host: "))
                                })
                                .unwrap_or("")
                                .to_owned();
                            let body = format!("{name} {line} host={host}\n");
                            let reply = format!(
                                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{body}",
                                body.len()
                            );
                            if stream.write_all(reply.as_bytes()).await.is_err()
                                || close_after_reply
                            {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Counting {
            address,
            requests,
            connections,
            closed,
            lines,
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What curl saw.
#[derive(Debug, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub stderr: String,
    pub exit: i32,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Runs curl with `args`; `-sS -i` are added and the last response block is parsed.
pub async fn curl(args: &[&str]) -> Reply {
    let output = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "15"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let mut reply = Reply {
        stderr,
        exit: output.status.code().unwrap_or(-1),
        ..Reply::default()
    };
    let mut rest = stdout.as_str();
    // Skip interim responses (100 Continue) and take the final block.
    loop {
        let Some((head, body)) = rest.split_once("\r\n\r\n") else {
            return reply;
        };
        let mut lines = head.lines();
        let status_line = lines.next().unwrap_or("");
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if (100..200).contains(&status) {
            rest = body;
            continue;
        }
        reply.status = status;
        reply.headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        reply.body = body.to_owned();
        return reply;
    }
}

/// `--resolve host:port:127.0.0.1` so curl sends the real Host and SNI to the gateway.
pub fn resolve(host: &str, address: SocketAddr) -> String {
    format!("{host}:{}:127.0.0.1", address.port())
}

pub fn url(scheme: &str, host: &str, address: SocketAddr, path: &str) -> String {
    format!("{scheme}://{host}:{}{path}", address.port())
}

pub fn test_options() -> GatewayOptions {
    GatewayOptions::ephemeral()
}

pub async fn start(options: GatewayOptions) -> GatewayHandle {
    gateway::Gateway::start(options)
        .await
        .expect("gateway starts")
}

pub async fn stats(handle: &GatewayHandle) -> String {
    let address = handle.admin_addresses().stats;
    curl(&[&format!("http://{address}/stats/prometheus")])
        .await
        .body
}

pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

// === configuration builders, shaped as discovery's translation builds them ===

pub fn exact(value: &str) -> Option<proto::StringMatch> {
    Some(proto::StringMatch {
        kind: Some(Kind::Exact(value.into())),
    })
}

pub fn prefix(value: &str) -> Option<proto::StringMatch> {
    Some(proto::StringMatch {
        kind: Some(Kind::Prefix(value.into())),
    })
}

pub fn regex(value: &str) -> Option<proto::StringMatch> {
    Some(proto::StringMatch {
        kind: Some(Kind::Regex(value.into())),
    })
}

pub fn cluster_name(port: u16, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

pub fn cluster(port: u16, subset: &str, host: &str, endpoints: &[SocketAddr]) -> proto::Cluster {
    proto::Cluster {
        name: cluster_name(port, subset, host),
        service: host.into(),
        port: u32::from(port),
        subset: subset.into(),
        protocol: Protocol::Http as i32,
        endpoints: endpoints
            .iter()
            .map(|a| proto::Endpoint {
                address: a.ip().to_string(),
                port: u32::from(a.port()),
                weight: 1,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

pub fn to(cluster: &str) -> Option<Action> {
    to_weighted(&[(cluster, 100)])
}

pub fn to_weighted(clusters: &[(&str, u32)]) -> Option<Action> {
    Some(Action::Route(proto::RouteAction {
        destinations: clusters
            .iter()
            .map(|(c, w)| proto::WeightedCluster {
                cluster: (*c).into(),
                weight: *w,
            })
            .collect(),
        ..Default::default()
    }))
}

pub fn uri_prefix(p: &str) -> proto::HttpMatch {
    proto::HttpMatch {
        uri: prefix(p),
        ..Default::default()
    }
}

pub fn route(
    name: &str,
    matches: Vec<proto::HttpMatch>,
    action: Option<Action>,
) -> proto::HttpRoute {
    proto::HttpRoute {
        name: name.into(),
        matches,
        action,
        ..Default::default()
    }
}

pub fn vhost(domain: &str, port: u16, routes: Vec<proto::HttpRoute>) -> proto::VirtualHost {
    proto::VirtualHost {
        name: format!("{domain}:{port}"),
        domains: vec![domain.into()],
        routes,
    }
}

pub fn table(name: &str, hosts: Vec<proto::VirtualHost>) -> proto::RouteTable {
    proto::RouteTable {
        name: name.into(),
        virtual_hosts: hosts,
    }
}

pub fn http_server(name: &str, protocol: Protocol, hosts: &[&str], table: &str) -> proto::Server {
    proto::Server {
        name: name.into(),
        protocol: protocol as i32,
        hosts: hosts.iter().map(|h| (*h).into()).collect(),
        tls: None,
        routing: Some(Routing::RouteTable(table.into())),
    }
}

pub fn redirecting(mut server: proto::Server) -> proto::Server {
    server.tls = Some(proto::ServerTls {
        https_redirect: true,
        ..Default::default()
    });
    server
}

pub fn https_server(
    name: &str,
    hosts: &[&str],
    tls: proto::ServerTls,
    table: &str,
) -> proto::Server {
    proto::Server {
        name: name.into(),
        protocol: Protocol::Https as i32,
        hosts: hosts.iter().map(|h| (*h).into()).collect(),
        tls: Some(tls),
        routing: Some(Routing::RouteTable(table.into())),
    }
}

pub fn server_tls(mode: TlsMode, credential: &str) -> proto::ServerTls {
    proto::ServerTls {
        mode: mode as i32,
        credential: credential.into(),
        ..Default::default()
    }
}

pub fn listener(port: u16, servers: Vec<proto::Server>) -> proto::Listener {
    proto::Listener {
        name: format!("0.0.0.0_{port}"),
        bind_address: "0.0.0.0".into(),
        port: u32::from(port),
        servers,
    }
}

pub fn config(
    version: &str,
    listeners: Vec<proto::Listener>,
    clusters: Vec<proto::Cluster>,
    tables: Vec<proto::RouteTable>,
    credentials: Vec<proto::TlsCredential>,
) -> proto::GatewayConfig {
    proto::GatewayConfig {
        version: version.into(),
        listeners,
        clusters,
        route_tables: tables,
        credentials,
        rejections: Vec::new(),
    }
}

pub fn headers_map(pairs: &[(&str, proto::StringMatch)]) -> BTreeMap<String, proto::StringMatch> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).into(), v.clone()))
        .collect()
}

// === certificates ===

/// A CA and the PEM files of certificates it issued, in a temporary directory.
pub struct Certs {
    pub dir: tempfile::TempDir,
    pub authority: certs::Authority,
}

/// PEM file paths of one issued certificate.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: String,
    pub key: String,
    pub chain_pem: String,
    pub key_pem: String,
}

impl Certs {
    pub fn new(trust_domain: &str) -> Certs {
        let validity = certs::Validity::starting_now(Duration::from_secs(24 * 3600));
        let authority = certs::Authority::generate_root(trust_domain, validity).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("root.pem"), authority.root_pem()).unwrap();
        Certs { dir, authority }
    }

    pub fn root(&self) -> String {
        self.path("root.pem")
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn write(&self, file: &str, issued: certs::IssuedCert) -> Issued {
        let cert = self.path(&format!("{file}.crt"));
        let key = self.path(&format!("{file}.key"));
        std::fs::write(&cert, &issued.chain_pem).unwrap();
        std::fs::write(&key, &issued.key_pem).unwrap();
        Issued {
            cert,
            key,
            chain_pem: issued.chain_pem,
            key_pem: issued.key_pem,
        }
    }

    /// A certificate with DNS SANs `names`, written to `<file>.crt` / `<file>.key`.
    pub fn dns(&self, file: &str, names: &[&str]) -> Issued {
        let validity = certs::Validity::starting_now(Duration::from_secs(24 * 3600));
        let issued = self
            .authority
            .issue(&certs::LeafSpec::for_dns_names(names, validity))
            .unwrap();
        self.write(file, issued)
    }

    /// A mesh certificate for `spiffe://<td>/ns/<ns>/sa/<sa>`.
    pub fn mesh(&self, file: &str, namespace: &str, service_account: &str) -> Issued {
        let identity = certs::Identity::new("cluster.local", namespace, service_account).unwrap();
        let issued = self
            .authority
            .issue_workload(&identity, Duration::from_secs(3600))
            .unwrap();
        self.write(file, issued)
    }
}

pub fn file_credential(name: &str, issued: &Issued, ca: &str) -> proto::TlsCredential {
    proto::TlsCredential {
        name: name.into(),
        source: Some(proto::tls_credential::Source::Files(
            proto::CredentialFiles {
                certificate_chain: issued.cert.clone(),
                private_key: issued.key.clone(),
                ca_certificates: ca.into(),
            },
        )),
    }
}

pub fn pem_credential(name: &str, issued: &Issued, ca_pem: &str) -> proto::TlsCredential {
    proto::TlsCredential {
        name: name.into(),
        source: Some(proto::tls_credential::Source::Pem(proto::CredentialPem {
            certificate_chain: issued.chain_pem.clone(),
            private_key: issued.key_pem.clone(),
            ca_certificates: ca_pem.into(),
        })),
    }
}

/// `openssl s_client` against `address` with `servername`; returns its stdout and stderr.
pub async fn s_client(
    address: SocketAddr,
    servername: &str,
    extra: &[&str],
    stdin: &[u8],
) -> String {
    let sni: Vec<&str> = if servername.is_empty() {
        vec!["-noservername"]
    } else {
        vec!["-servername", servername]
    };
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &address.to_string()])
        .args(sni)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    // Give the server time to answer before EOF closes the session.
    tokio::time::sleep(Duration::from_millis(700)).await;
    drop(input);
    let output = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("openssl s_client finishes")
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A TCP echo backend.
pub async fn echo_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    address
}

pub fn tls_listener(port: u16, servers: Vec<proto::Server>) -> proto::Listener {
    listener(port, servers)
}

pub fn tls_tcp_server(
    name: &str,
    hosts: &[&str],
    tls: proto::ServerTls,
    cluster: &str,
) -> proto::Server {
    proto::Server {
        name: name.into(),
        protocol: Protocol::Tls as i32,
        hosts: hosts.iter().map(|h| (*h).into()).collect(),
        tls: Some(tls),
        routing: Some(Routing::TcpRoutes(proto::TcpRoutes {
            routes: vec![proto::TcpRoute {
                destinations: vec![proto::WeightedCluster {
                    cluster: cluster.into(),
                    weight: 100,
                }],
            }],
        })),
    }
}

/// What a TLS backend saw of one connection.
#[derive(Debug, Clone)]
pub struct TlsSeen {
    pub sni: Option<String>,
    pub alpn: Option<String>,
    pub client: Option<String>,
}

/// An HTTPS (HTTP/1.1) backend with `config`; answers `<name> sni=.. client=..` and records
/// what each connection's handshake carried.
pub async fn tls_http_backend(
    name: &'static str,
    config: rustls::ServerConfig,
) -> (SocketAddr, Arc<std::sync::Mutex<Vec<TlsSeen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let session = tls.get_ref().1;
                let client = session
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|leaf| {
                        let info = certs::inspect::inspect(leaf).unwrap();
                        info.subject_alt_names
                            .iter()
                            .map(|san| match san {
                                certs::inspect::SubjectAltName::Uri(u) => u.clone(),
                                certs::inspect::SubjectAltName::Dns(d) => d.clone(),
                                other => format!("{other:?}"),
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    });
                let info = TlsSeen {
                    sni: session.server_name().map(str::to_owned),
                    alpn: session
                        .alpn_protocol()
                        .map(|a| String::from_utf8_lossy(a).to_string()),
                    client: client.clone(),
                };
                record.lock().unwrap().push(info.clone());
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let body = format!(
                            "{name} {} {} sni={} client={}\n",
                            request.method(),
                            request.uri(),
                            info.sni.clone().unwrap_or_default(),
                            info.client.clone().unwrap_or_default()
                        );
                        async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from(body)),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (address, seen)
}

/// A rustls server requiring a client certificate from `certs`' CA.
pub fn mutual_server_config(certs: &Certs, issued: &Issued) -> rustls::ServerConfig {
    let key = certs::certified_key_from_pem(&issued.chain_pem, &issued.key_pem).unwrap();
    let ca = certs::pem::certificates(certs.authority.root_pem().as_bytes()).unwrap();
    let policy = certs::ServerTlsPolicy {
        mode: certs::ServerTlsMode::Mutual,
        ..Default::default()
    };
    certs::gateway_server_config(
        &policy,
        &ca,
        Arc::new(certs::RotatingCert::new(key).unwrap()),
        vec![b"http/1.1".to_vec()],
    )
    .unwrap()
    .config
}

/// A mesh mTLS server (ISTIO_MUTUAL peer) offering ALPN `istio`.
pub fn mesh_server(certs: &Certs, issued: &Issued) -> rustls::ServerConfig {
    let key = certs::certified_key_from_pem(&issued.chain_pem, &issued.key_pem).unwrap();
    let roots = certs::pem::certificates(certs.authority.root_pem().as_bytes()).unwrap();
    certs::mesh_server_config(
        Arc::new(certs::RotatingCert::new(key).unwrap()),
        &roots,
        None,
        vec![b"istio".to_vec()],
    )
    .unwrap()
}
