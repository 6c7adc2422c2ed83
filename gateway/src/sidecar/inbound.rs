//! Inbound (15006 in Istio; here, wherever the endpoint is advertised): terminate mesh mTLS,
//! require a client certificate chaining to the shared root, and hand plaintext to the local
//! application — bytes as they are, or HTTP/1.1 with the caller's identity in
//! `x-forwarded-client-cert`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certs::Identity;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::identity::MeshTls;
use super::options::{AppProtocol, InboundSpec};
use super::outbound::{ProxyBody, error_response};
use super::tunnel::{Reporter, TunnelLabels, count_request, tunnel};
use super::xfcc::client_cert_value;
use crate::http::headers::{X_FORWARDED_CLIENT_CERT, remove_hop_by_hop};
use crate::metrics::Metrics;

#[derive(Debug, Error)]
enum InboundError {
    #[error("local application {app} refused the connection (is it listening?): {source}")]
    AppConnect {
        app: SocketAddr,
        source: std::io::Error,
    },
    #[error("local application {app} failed the HTTP exchange: {source}")]
    AppHttp {
        app: SocketAddr,
        source: hyper::Error,
    },
}

/// One inbound port and what it needs.
pub struct Inbound {
    pub spec: InboundSpec,
    /// `inbound|<port>||` as Istio names the listener's cluster.
    pub name: String,
    pub tls: Arc<MeshTls>,
    pub metrics: Metrics,
    pub handshake_timeout: Duration,
}

/// The caller as the handshake proved it.
struct Caller {
    identity: Identity,
    leaf: Vec<u8>,
}

pub async fn serve(listener: TcpListener, inbound: Arc<Inbound>, shutdown: CancellationToken) {
    let acceptor = TlsAcceptor::from(inbound.tls.server_config());
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                tokio::spawn(serve_connection(
                    stream,
                    peer,
                    acceptor.clone(),
                    Arc::clone(&inbound),
                ));
            }
            Err(error) => {
                tracing::warn!(listener = %inbound.name, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    inbound: Arc<Inbound>,
) {
    let _ = stream.set_nodelay(true);
    let stream =
        match tokio::time::timeout(inbound.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                // Foreign roots, missing client certificates and plain-text callers end here.
                tracing::info!(listener = %inbound.name, %peer, %error, "mTLS handshake refused");
                inbound
                    .metrics
                    .rejected(&inbound.name, "tls_handshake", None);
                return;
            }
            Err(_) => {
                tracing::info!(listener = %inbound.name, %peer, "mTLS handshake timed out");
                inbound
                    .metrics
                    .rejected(&inbound.name, "tls_handshake_timeout", None);
                return;
            }
        };
    let (_, connection) = stream.get_ref();
    let chain = connection.peer_certificates().unwrap_or_default();
    let caller = match certs::identity_of_chain(chain) {
        Ok(identity) => Caller {
            identity,
            // An identity was read from the leaf, so the chain has one.
            leaf: chain.first().map(|leaf| leaf.to_vec()).unwrap_or_default(),
        },
        Err(error) => {
            tracing::info!(listener = %inbound.name, %peer, %error, "caller presented no SPIFFE identity");
            inbound
                .metrics
                .rejected(&inbound.name, "no_peer_identity", None);
            return;
        }
    };
    tracing::debug!(listener = %inbound.name, %peer, caller = %caller.identity, "mTLS accepted");
    match inbound.spec.protocol {
        AppProtocol::Tcp => {
            let app = match TcpStream::connect(inbound.spec.app).await {
                Ok(app) => app,
                Err(source) => {
                    let error = InboundError::AppConnect {
                        app: inbound.spec.app,
                        source,
                    };
                    tracing::warn!(listener = %inbound.name, %peer, %error, "closing the caller's connection");
                    return;
                }
            };
            let _ = app.set_nodelay(true);
            let app_name = inbound.spec.app.to_string();
            let labels = TunnelLabels {
                reporter: Reporter::Destination,
                service: &app_name,
                cluster: &inbound.name,
                destination_cluster: inbound.metrics.source_cluster(),
                listener: &inbound.name,
            };
            tunnel(stream, app, &inbound.metrics, &labels).await;
        }
        AppProtocol::Http => {
            let caller = Arc::new(caller);
            let service = service_fn(move |request| {
                let inbound = Arc::clone(&inbound);
                let caller = Arc::clone(&caller);
                async move { Ok::<_, Infallible>(forward(&inbound, &caller, request).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "inbound HTTP connection ended with an error");
            }
        }
    }
}

/// One request to the app, on its own connection: the app sees a fresh client per request,
/// which costs a loopback connect and keeps a misbehaving app from confusing two callers.
async fn forward(
    inbound: &Inbound,
    caller: &Caller,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let app = inbound.spec.app;
    let (mut parts, body) = request.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    // Never trust a client-supplied value: only the handshake says who the caller is.
    parts.headers.remove(&X_FORWARDED_CLIENT_CERT);
    match client_cert_value(inbound.tls.own_identity(), &caller.identity, &caller.leaf) {
        Ok(value) => {
            parts.headers.insert(X_FORWARDED_CLIENT_CERT.clone(), value);
        }
        Err(error) => {
            tracing::warn!(caller = %caller.identity, %error, "cannot write x-forwarded-client-cert");
        }
    }
    let result = async {
        let stream = TcpStream::connect(app)
            .await
            .map_err(|source| InboundError::AppConnect { app, source })?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| InboundError::AppHttp { app, source })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%app, %error, "app HTTP connection ended with an error");
            }
        });
        sender
            .send_request(Request::from_parts(parts, body))
            .await
            .map_err(|source| InboundError::AppHttp { app, source })
    }
    .await;
    let (response, local) = match result {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            tracing::info!(listener = %inbound.name, caller = %caller.identity, status = parts.status.as_u16(), "inbound request");
            (Response::from_parts(parts, body.boxed()), false)
        }
        Err(error) => {
            tracing::warn!(listener = %inbound.name, caller = %caller.identity, %error, "inbound request failed");
            (
                error_response(StatusCode::BAD_GATEWAY, &error.to_string()),
                true,
            )
        }
    };
    let app_name = app.to_string();
    let labels = TunnelLabels {
        reporter: Reporter::Destination,
        service: &app_name,
        cluster: &inbound.name,
        destination_cluster: inbound.metrics.source_cluster(),
        listener: &inbound.name,
    };
    count_request(&inbound.metrics, &labels, response.status(), local, started);
    response
}
