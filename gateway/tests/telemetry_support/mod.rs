//! The telemetry tests' own pieces: a real OTLP/gRPC receiver (Python `grpcio` +
//! `opentelemetry-proto`, started per test) and a mesh mTLS backend that records the trace
//! headers each request brought.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway::telemetry::TelemetryOptions;
use http::HeaderMap;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

/// The receiver process, killed when dropped; spans land in a JSON-lines file.
pub struct OtlpReceiver {
    pub endpoint: String,
    spans: PathBuf,
    _dir: tempfile::TempDir,
    _child: Child,
}

impl OtlpReceiver {
    pub async fn start() -> OtlpReceiver {
        crate::http_support::require_python_modules(
            &["grpc", "opentelemetry.proto"],
            "grpcio opentelemetry-proto",
        );
        let dir = tempfile::tempdir().unwrap();
        let spans = dir.path().join("spans.jsonl");
        let port_file = dir.path().join("port");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/telemetry_support/otlp_receiver.py"
        );
        let child = Command::new("python3")
            .arg(script)
            .arg("--out")
            .arg(&spans)
            .arg("--port-file")
            .arg(&port_file)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the OTLP receiver starts");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                break port.trim().to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the OTLP receiver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        OtlpReceiver {
            endpoint: format!("http://127.0.0.1:{port}"),
            spans,
            _dir: dir,
            _child: child,
        }
    }

    /// Tracing towards this receiver as `service`, sampling new traces at `sampling`.
    pub fn options(&self, service: &str, sampling: f64) -> TelemetryOptions {
        TelemetryOptions {
            sampling,
            export_interval: Duration::from_millis(200),
            ..TelemetryOptions::new(self.endpoint.clone(), service)
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.spans)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Waits until `check` holds for the spans received.
    pub async fn until(&self, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let spans = self.spans();
            if check(&spans) {
                return spans;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; received {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// An attribute of a received span, as a string ("" when absent).
pub fn attribute(span: &Value, key: &str) -> String {
    match &span["attributes"][key] {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A mesh mTLS HTTP/1.1 backend answering 200 `ok` and recording every request's headers.
pub async fn recording_backend(
    config: rustls::ServerConfig,
) -> (SocketAddr, Arc<Mutex<Vec<HeaderMap>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
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
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        record.lock().unwrap().push(request.headers().clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from_static(b"ok\n")),
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
