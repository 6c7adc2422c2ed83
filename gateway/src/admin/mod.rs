//! Operator endpoints: readiness (15021), Prometheus metrics (15090), and on localhost
//! (15000) the applied configuration and listings of listeners, clusters and endpoints.
//!
//! They run on the control-plane runtime, so they stay responsive while the data plane is
//! busy.

mod http;
pub mod tables;
pub mod views;

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::runtime::Gateway;

pub use views::{ClusterView, EndpointView, ListenerView, MatchView};

#[derive(Debug, Error)]
pub enum AdminError {
    #[error(
        "cannot bind the {endpoint} endpoint on {address}: {source}; pick another address in the gateway options"
    )]
    Bind {
        endpoint: &'static str,
        address: SocketAddr,
        source: io::Error,
    },
}

/// Where the admin servers really listen (ports may have been picked by the OS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminAddresses {
    pub ready: SocketAddr,
    pub stats: SocketAddr,
    pub admin: SocketAddr,
}

/// Which endpoints one server exposes: the ready and stats ports are reachable from outside
/// the pod and must not leak configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exposure {
    Ready,
    Stats,
    Admin,
}

pub(crate) async fn start(
    gateway: &Gateway,
    shutdown: CancellationToken,
) -> Result<AdminAddresses, AdminError> {
    let options = gateway.options();
    let ready = bind("readiness", options.ready_address).await?;
    let stats = bind("stats", options.stats_address).await?;
    let admin = bind("admin", options.admin_address).await?;
    let addresses = AdminAddresses {
        ready: local_addr("readiness", &ready)?,
        stats: local_addr("stats", &stats)?,
        admin: local_addr("admin", &admin)?,
    };
    for (listener, exposure) in [
        (ready, Exposure::Ready),
        (stats, Exposure::Stats),
        (admin, Exposure::Admin),
    ] {
        let gateway = gateway.clone();
        let handler =
            move |path: &str, query: Option<&str>| respond(&gateway, exposure, path, query);
        tokio::spawn(http::serve(listener, handler, shutdown.clone()));
    }
    tracing::info!(ready = %addresses.ready, stats = %addresses.stats, admin = %addresses.admin, "admin endpoints listening");
    Ok(addresses)
}

async fn bind(endpoint: &'static str, address: SocketAddr) -> Result<TcpListener, AdminError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| AdminError::Bind {
            endpoint,
            address,
            source,
        })
}

fn local_addr(endpoint: &'static str, listener: &TcpListener) -> Result<SocketAddr, AdminError> {
    listener.local_addr().map_err(|source| AdminError::Bind {
        endpoint,
        address: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })
}

fn respond(
    gateway: &Gateway,
    exposure: Exposure,
    path: &str,
    query: Option<&str>,
) -> Response<Full<Bytes>> {
    let table = query.is_some_and(|q| q.split('&').any(|pair| pair == "format=table"));
    match (exposure, path) {
        (Exposure::Ready | Exposure::Admin, "/healthz/ready") => {
            if gateway.is_ready() {
                text(StatusCode::OK, "ready\n".into())
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: no configuration applied yet\n".into(),
                )
            }
        }
        (Exposure::Stats | Exposure::Admin, "/stats/prometheus") => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            gateway.metrics().encode(),
        ),
        (Exposure::Admin, "/config_dump") => json(&gateway.config().source),
        (Exposure::Admin, "/listeners") => {
            let listeners = views::listeners(gateway);
            if table {
                text(StatusCode::OK, tables::listeners_table(&listeners))
            } else {
                json(&listeners)
            }
        }
        (Exposure::Admin, "/clusters") => {
            let clusters = views::clusters(gateway);
            if table {
                text(StatusCode::OK, tables::clusters_table(&clusters))
            } else {
                json(&clusters)
            }
        }
        (Exposure::Admin, "/endpoints") => {
            let endpoints = views::endpoints(gateway);
            if table {
                text(StatusCode::OK, tables::endpoints_table(&endpoints))
            } else {
                json(&endpoints)
            }
        }
        (Exposure::Admin, "/") => text(
            StatusCode::OK,
            "/healthz/ready\n/stats/prometheus\n/config_dump\n/listeners\n/clusters\n/endpoints\n(listings take ?format=table)\n".into(),
        ),
        _ => text(StatusCode::NOT_FOUND, format!("no such endpoint: {path}\n")),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_string_pretty(value) {
        Ok(body) => reply(StatusCode::OK, "application/json", body),
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the response: {error}\n"),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    reply(status, "text/plain; charset=utf-8", body)
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}
