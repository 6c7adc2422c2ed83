//! Shared pieces of the HTTP/3 end-to-end tests: aioquic (PyPI) as the independent HTTP/3
//! client, a backend that checks uploads and serves sized downloads, and an HTTPS gateway
//! whose port has an HTTP/3 twin.
#![allow(dead_code, clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::process::Command;

/// What the aioquic client saw.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct H3Reply {
    pub status: Option<u16>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub body_len: u64,
    #[serde(default)]
    pub body_sha256: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub requests: Option<u64>,
    #[serde(default)]
    pub failures: Option<u64>,
}

impl H3Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One aioquic client invocation against a gateway's UDP port.
pub struct H3Client {
    pub connect: SocketAddr,
    pub host: String,
    pub cacert: String,
    pub client_cert: Option<(String, String)>,
}

impl H3Client {
    pub async fn run(&self, path: &str, extra: &[&str]) -> H3Reply {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/h3_support/h3_client.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg("--connect")
            .arg(self.connect.to_string())
            .arg("--host")
            .arg(&self.host)
            .arg("--cacert")
            .arg(&self.cacert);
        if let Some((cert, key)) = &self.client_cert {
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        command.args(extra).arg(path);
        let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
            .await
            .expect("the HTTP/3 client finishes within 60 s")
            .expect("python3 runs (is aioquic installed? .ci/run installs it)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "h3_client.py printed no JSON ({e}): stdout={stdout} stderr={}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }
}

/// The backend service of [`one_https_port`].
pub const ECHO_SERVICE: &str = "echo.default.svc.cluster.local";

/// One HTTPS port (443) whose servers each route every path of their first host to the test
/// backend.
pub fn one_https_port(
    backend: SocketAddr,
    servers: Vec<multicluster::proto::Server>,
    credentials: Vec<multicluster::proto::TlsCredential>,
) -> multicluster::proto::GatewayConfig {
    use crate::http_support::{cluster, cluster_name, config, listener, route, table, to, vhost};
    let cluster_name = cluster_name(8000, "", ECHO_SERVICE);
    let tables = servers
        .iter()
        .map(|s| {
            let host = s.hosts[0].as_str();
            table(
                &s.name,
                vec![vhost(
                    host,
                    443,
                    vec![route("all", vec![], to(&cluster_name))],
                )],
            )
        })
        .collect();
    config(
        "1",
        vec![listener(443, servers)],
        vec![cluster(8000, "", ECHO_SERVICE, &[backend])],
        tables,
        credentials,
    )
}

/// Largest body `pattern` serves.
const PATTERN_MAX: usize = 16 * 1024 * 1024;

/// The body the client sends with `--data-size n` (and the backend serves for a download).
/// Built once and sliced: the backend shares the test's runtime, and rebuilding megabytes
/// per request would starve it.
pub fn pattern(len: usize) -> Bytes {
    static PATTERN: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let all = PATTERN.get_or_init(|| (0..PATTERN_MAX).map(|i| (i % 256) as u8).collect());
    all.slice(..len.min(PATTERN_MAX))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    certs::cert_sha256_hex(bytes)
}

type BackendBody = UnsyncBoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> BackendBody {
    Full::new(bytes.into()).boxed_unsync()
}

/// An HTTP/1.1 and h2c backend: `POST /upload` answers `bytes=<n> sha256=<hex>` of what it
/// got, `GET /download/<n>` sends `pattern(n)`, `/delay/<ms>` answers after that long,
/// `/grpc` answers gRPC-style with `grpc-status`/`grpc-message` trailers, anything else
/// answers with the request's path, host and `x-forwarded-client-cert`.
pub async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
                    Ok::<_, Infallible>(answer(request).await)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(TokioIo::new(stream), service)
                .await;
            });
        }
    });
    address
}

async fn answer(request: Request<hyper::body::Incoming>) -> Response<BackendBody> {
    let path = request.uri().path().to_owned();
    if let Some(size) = path.strip_prefix("/download/") {
        let size: usize = size.parse().unwrap_or(0);
        return Response::new(full(pattern(size)));
    }
    if let Some(ms) = path.strip_prefix("/delay/") {
        let ms: u64 = ms.parse().unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        return Response::new(full(format!("delayed {ms} ms")));
    }
    if path == "/grpc" {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        trailers.insert("grpc-message", http::HeaderValue::from_static("all-good"));
        let frames = futures::stream::iter([
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"\0\0\0\0\x05hello"))),
            Ok(Frame::trailers(trailers)),
        ]);
        let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        return response;
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let text = format!(
        "path={path}\nhost={}\nxfcc={}\n",
        header("host"),
        header("x-forwarded-client-cert")
    );
    if path == "/upload" {
        let body = request.into_body().collect().await.unwrap().to_bytes();
        return Response::new(full(format!(
            "bytes={} sha256={}",
            body.len(),
            sha256_hex(&body)
        )));
    }
    Response::new(full(text))
}

/// A quinn client configuration (ALPN h3, TLS 1.3) trusting the PEM roots in `root_file`,
/// for tests that need to misbehave at the QUIC or HTTP/3 level.
pub fn quic_client_config(root_file: &str) -> quinn::ClientConfig {
    let pem = std::fs::read(root_file).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for root in certs::pem::certificates(&pem).unwrap() {
        roots.add(root).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(std::sync::Arc::new(tls)).unwrap();
    quinn::ClientConfig::new(std::sync::Arc::new(crypto))
}

/// A UDP socket on loopback for sending crafted datagrams.
pub fn udp_sender() -> std::net::UdpSocket {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// Pseudo-random bytes (xorshift): enough to look like noise, reproducible by `seed`.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A datagram shaped like a QUIC v1 Initial (long header, random connection IDs, padded to
/// 1200 bytes) whose payload cannot decrypt: the server must drop it cheaply.
pub fn fake_initial(seed: u64) -> Vec<u8> {
    let mut packet = vec![0xc3, 0x00, 0x00, 0x00, 0x01, 8];
    packet.extend(noise(seed, 8));
    packet.push(8);
    packet.extend(noise(seed.wrapping_add(1), 8));
    packet.push(0); // no token
    let remaining = 1200 - packet.len() - 2;
    let length = u16::try_from(remaining).unwrap() | 0x4000;
    packet.extend(length.to_be_bytes());
    packet.extend(noise(seed.wrapping_add(2), remaining));
    packet
}
