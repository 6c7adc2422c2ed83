//! Discovery's monitoring endpoint (istiod's port 15014): readiness, Prometheus metrics, and a
//! JSON view of the connected gateways.
//!
//! - `GET /healthz/ready`: 200 once the first configuration snapshot is built, 503 before, so a
//!   restarting discovery is not sent gateways it would hand an empty configuration.
//! - `GET /stats/prometheus`: every metric in the registry, OpenMetrics text.
//! - `GET /debug/gateways`: connected gateways with sent/acked versions and their last NACK.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::push::GatewayTable;

/// A scraper or probe that keeps its connection open must not hold up shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Slow-header clients are dropped; probes and scrapers send their request at once.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Accept errors such as EMFILE repeat at once; pausing keeps the loop from spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(
        "cannot listen for readiness and metrics on {addr}: {source}; is another process using \
         the port?"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What the endpoint reports.
#[derive(Debug, Clone)]
pub struct Monitor {
    ready: Arc<AtomicBool>,
    registry: Arc<Registry>,
    gateways: GatewayTable,
}

impl Monitor {
    /// `ready` is set by whoever builds the first snapshot; `registry` must already hold every
    /// metric (registration needs `&mut`, serving shares it).
    pub fn new(ready: Arc<AtomicBool>, registry: Arc<Registry>, gateways: GatewayTable) -> Self {
        Monitor {
            ready,
            registry,
            gateways,
        }
    }

    fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not supported here; use GET\n"),
            );
        }
        match path {
            "/healthz/ready" => self.readiness(),
            "/stats/prometheus" => self.metrics(),
            "/debug/gateways" => self.gateways(),
            _ => text(
                StatusCode::NOT_FOUND,
                format!(
                    "no such endpoint {path}; try /healthz/ready, /stats/prometheus or \
                     /debug/gateways\n"
                ),
            ),
        }
    }

    fn readiness(&self) -> Response<Full<Bytes>> {
        if self.ready.load(Ordering::Acquire) {
            text(StatusCode::OK, "ready\n".to_owned())
        } else {
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the first configuration snapshot is not built yet\n".to_owned(),
            )
        }
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        let mut body = String::new();
        match encode(&mut body, &self.registry) {
            Ok(()) => with_type(StatusCode::OK, OPENMETRICS, body),
            Err(error) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding metrics failed: {error}\n"),
            ),
        }
    }

    fn gateways(&self) -> Response<Full<Bytes>> {
        match serde_json::to_string_pretty(&self.gateways.snapshot()) {
            Ok(json) => with_type(StatusCode::OK, "application/json", json + "\n"),
            Err(error) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("encoding the gateway list failed: {error}\n"),
            ),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_type(status, "text/plain; charset=utf-8", body)
}

fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Binds `addr` and serves until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    monitor: Monitor,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MonitorError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MonitorError::Bind { addr, source })?;
    serve_with_listener(listener, monitor, shutdown).await;
    Ok(())
}

/// Serves on an already bound listener (tests bind port 0) until `shutdown` completes.
pub async fn serve_with_listener(
    listener: TcpListener,
    monitor: Monitor,
    shutdown: impl Future<Output = ()>,
) {
    let address = listener.local_addr().ok();
    info!(address = ?address, "discovery monitoring endpoint listening");
    let monitor = Arc::new(monitor);
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "monitoring endpoint could not accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let monitor = Arc::clone(&monitor);
        let service = service_fn(move |request: Request<Incoming>| {
            let response = monitor.respond(request.method(), request.uri().path());
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%peer, %error, "monitoring connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("monitoring connections still open after the drain timeout; dropping them");
    }
    info!(address = ?address, "discovery monitoring endpoint stopped");
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use multicluster::proto::GatewayIdentity;

    use super::*;
    use crate::push::PushMetrics;

    fn monitor(ready: bool) -> (Monitor, Arc<PushMetrics>) {
        let mut registry = Registry::default();
        let metrics = Arc::new(PushMetrics::new(&mut registry));
        let monitor = Monitor::new(
            Arc::new(AtomicBool::new(ready)),
            Arc::new(registry),
            metrics.gateways().clone(),
        );
        (monitor, metrics)
    }

    async fn body(response: Response<Full<Bytes>>) -> String {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("infallible body")
            .to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[tokio::test]
    async fn readiness_follows_the_flag() {
        let (monitor, _metrics) = monitor(false);
        let response = monitor.respond(&Method::GET, "/healthz/ready");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        monitor.ready.store(true, Ordering::Release);
        assert_eq!(
            monitor.respond(&Method::GET, "/healthz/ready").status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text() {
        let (monitor, metrics) = monitor(true);
        metrics.set_rejected_resources(7);
        let response = monitor.respond(&Method::GET, "/stats/prometheus");
        assert_eq!(response.headers()[CONTENT_TYPE], OPENMETRICS);
        let text = body(response).await;
        assert!(
            text.contains("isthmus_discovery_rejected_resources 7"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[tokio::test]
    async fn gateways_lists_connected_streams_as_json() {
        let (monitor, metrics) = monitor(true);
        let identity = GatewayIdentity {
            name: "eastwest".into(),
            namespace: "istio-system".into(),
            cluster: "cluster-1".into(),
            network: "network-1".into(),
            ..Default::default()
        };
        let connection = metrics.gateways().connect(&identity);
        connection.sent("1");
        let response = monitor.respond(&Method::GET, "/debug/gateways");
        let json: serde_json::Value =
            serde_json::from_str(&body(response).await).expect("valid json");
        assert_eq!(json[0]["name"], "eastwest");
        assert_eq!(json[0]["last_sent_version"], "1");
        assert_eq!(json[0]["last_acked_version"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn unknown_path_and_method_are_refused() {
        let (monitor, _metrics) = monitor(true);
        assert_eq!(
            monitor.respond(&Method::GET, "/nope").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            monitor.respond(&Method::POST, "/healthz/ready").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
