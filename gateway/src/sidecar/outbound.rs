//! The outbound proxy port (15001): one HTTP/1.1 proxy the application points at.
//!
//! - `CONNECT host:port` opens a tunnel for any TCP protocol, carried over mesh mTLS with
//!   ALPN `istio`;
//! - absolute-form requests (`GET http://reviews.default:9080/ HTTP/1.1`) are forwarded one
//!   upstream connection per request with ALPN `istio-http/1.1`; the client connection may
//!   stay open for more requests, to any target.
//!
//! The host must name a mesh service and the port one of its ports; `isthmus-subset` picks a
//! DestinationRule subset. Anything else gets an error response and no connection is opened:
//! this port must not become an open proxy.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::dial::{DialError, Dialer};
use super::identity::{ALPN_HTTP1, ALPN_TCP};
use super::target::{MeshTarget, SUBSET_HEADER, TargetError};
use super::tunnel::{Reporter, TunnelLabels, count_request, tunnel};
use crate::config::EndpointConfig;
use crate::http::headers::remove_hop_by_hop;
use crate::metrics::UNKNOWN;

pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

const LISTENER: &str = "outbound";

#[derive(Debug, Error)]
enum OutboundError {
    #[error(
        "this is the mesh proxy port: send CONNECT host:port or an absolute-form request (curl -x http://<this address> http://reviews.default:9080/)"
    )]
    NotAProxyRequest,
    #[error(
        "{scheme}:// requests cannot be proxied as plain HTTP; use CONNECT (curl -p) for TLS inside the mesh tunnel"
    )]
    Scheme { scheme: String },
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("upstream {cluster} ({address}) failed the HTTP exchange: {source}")]
    Upstream {
        cluster: String,
        address: SocketAddr,
        source: hyper::Error,
    },
}

impl OutboundError {
    fn status(&self) -> StatusCode {
        match self {
            OutboundError::NotAProxyRequest | OutboundError::Scheme { .. } => {
                StatusCode::BAD_REQUEST
            }
            OutboundError::Target(TargetError::Shape { .. }) => StatusCode::BAD_REQUEST,
            OutboundError::Target(_) => StatusCode::NOT_FOUND,
            OutboundError::Dial(error) => error.status(),
            OutboundError::Upstream { .. } => StatusCode::BAD_GATEWAY,
        }
    }
}

/// Shared by every connection of the outbound port.
pub struct Outbound {
    pub dialer: Dialer,
    pub domain_suffix: String,
}

/// Accepts until `shutdown`; each connection is served on its own task.
pub async fn serve(listener: TcpListener, outbound: Arc<Outbound>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(serve_connection(stream, peer, Arc::clone(&outbound)));
            }
            Err(error) => {
                // Usually EMFILE: back off instead of spinning on the same error.
                tracing::warn!(listener = LISTENER, %error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, outbound: Arc<Outbound>) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let outbound = Arc::clone(&outbound);
        async move { Ok::<_, Infallible>(handle(&outbound, request, peer).await) }
    });
    if let Err(error) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await
    {
        tracing::debug!(listener = LISTENER, %peer, %error, "proxy connection ended with an error");
    }
}

async fn handle(
    outbound: &Outbound,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let is_connect = method == Method::CONNECT;
    // CONNECT has no default port; an absolute http:// URI defaults to 80.
    let parsed = target_of(outbound, &request, if is_connect { 0 } else { 80 });
    let target = parsed.as_ref().ok().cloned();
    let result = match parsed {
        Err(error) => Err(error),
        Ok(target) if is_connect => connect(outbound, request, target).await,
        Ok(target) => forward(outbound, request, target).await,
    };
    let (response, local) = match result {
        Ok(response) => {
            tracing::info!(listener = LISTENER, %peer, %method, %uri, status = response.status().as_u16(), "proxied");
            (response, false)
        }
        Err(error) => {
            let status = error.status();
            tracing::info!(listener = LISTENER, %peer, %method, %uri, status = status.as_u16(), %error, "refused");
            (error_response(status, &error.to_string()), true)
        }
    };
    // A tunnel's bytes are counted by the TCP metrics; its CONNECT is not an HTTP request.
    if !is_connect || local {
        let cluster = target.as_ref().map(MeshTarget::cluster_name);
        let labels = TunnelLabels {
            reporter: Reporter::Source,
            service: target.as_ref().map_or("unknown", |t| t.key.host()),
            cluster: cluster.as_deref().unwrap_or(UNKNOWN),
            // The forwarded request's endpoint is chosen inside the dial and not handed back.
            destination_cluster: UNKNOWN,
            listener: LISTENER,
        };
        count_request(
            outbound.dialer.gateway.metrics(),
            &labels,
            response.status(),
            local,
            started,
        );
    }
    response
}

fn target_of(
    outbound: &Outbound,
    request: &Request<Incoming>,
    default_port: u16,
) -> Result<MeshTarget, OutboundError> {
    let authority = request
        .uri()
        .authority()
        .ok_or(OutboundError::NotAProxyRequest)?;
    let subset = request
        .headers()
        .get(SUBSET_HEADER)
        .and_then(|value| value.to_str().ok());
    let port = authority.port_u16().unwrap_or(default_port);
    let target = format!("{}:{port}", authority.host());
    Ok(MeshTarget::parse(&target, subset, &outbound.domain_suffix)?)
}

async fn connect(
    outbound: &Outbound,
    request: Request<Incoming>,
    target: MeshTarget,
) -> Result<Response<ProxyBody>, OutboundError> {
    let dialled = outbound.dialer.dial(&target, ALPN_TCP).await?;
    let metrics = outbound.dialer.gateway.metrics().clone();
    let service = target.key.host().to_owned();
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => {
                let labels = TunnelLabels {
                    reporter: Reporter::Source,
                    service: &service,
                    cluster: &dialled.cluster,
                    destination_cluster: EndpointConfig::cluster_label(&dialled.cluster_id),
                    listener: LISTENER,
                };
                tunnel(TokioIo::new(upgraded), dialled.stream, &metrics, &labels).await;
                drop(dialled.active);
            }
            Err(error) => {
                tracing::debug!(listener = LISTENER, cluster = %dialled.cluster, %error, "CONNECT upgrade failed")
            }
        }
    });
    Ok(Response::new(empty()))
}

async fn forward(
    outbound: &Outbound,
    request: Request<Incoming>,
    target: MeshTarget,
) -> Result<Response<ProxyBody>, OutboundError> {
    match request.uri().scheme_str() {
        // `GET host:port` (authority form) is only meaningful for CONNECT.
        None => return Err(OutboundError::NotAProxyRequest),
        Some("http") => {}
        Some(other) => {
            return Err(OutboundError::Scheme {
                scheme: other.to_owned(),
            });
        }
    }
    let dialled = outbound.dialer.dial(&target, ALPN_HTTP1).await?;
    let (cluster, address) = (dialled.cluster, dialled.address);
    let upstream_error = |source| OutboundError::Upstream {
        cluster: cluster.clone(),
        address,
        source,
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(dialled.stream))
            .await
            .map_err(upstream_error)?;
    let active = dialled.active;
    let connection_cluster = cluster.clone();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(listener = LISTENER, cluster = %connection_cluster, %error, "upstream HTTP connection ended with an error");
        }
        drop(active);
    });
    let (mut parts, body) = request.into_parts();
    let authority = parts.uri.authority().map(|a| a.as_str().to_owned());
    parts.uri = origin_form(&parts.uri);
    remove_hop_by_hop(&mut parts.headers);
    parts.headers.remove(SUBSET_HEADER);
    if let Some(authority) = authority.filter(|_| !parts.headers.contains_key(header::HOST))
        && let Ok(host) = HeaderValue::from_str(&authority)
    {
        parts.headers.insert(header::HOST, host);
    }
    let response = sender
        .send_request(Request::from_parts(parts, body))
        .await
        .map_err(upstream_error)?;
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, body.boxed()))
}

/// `http://host:port/path?q` → `/path?q`, as an origin server expects it.
fn origin_form(uri: &Uri) -> Uri {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    path.parse().unwrap_or_else(|_| Uri::from_static("/"))
}

fn empty() -> ProxyBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

pub fn error_response(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from(format!("{message}\n")))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
