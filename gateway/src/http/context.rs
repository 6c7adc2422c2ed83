//! What a request knows about the connection it arrived on.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;

use super::router::RouteTable;
use crate::config::{ListenerKey, RuntimeConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpProtocol {
    Http1,
    Http2,
    Http3,
}

impl HttpProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpProtocol::Http1 => "HTTP/1.1",
            HttpProtocol::Http2 => "HTTP/2",
            HttpProtocol::Http3 => "HTTP/3",
        }
    }

    pub fn of(version: http::Version) -> Self {
        match version {
            http::Version::HTTP_2 => HttpProtocol::Http2,
            http::Version::HTTP_3 => HttpProtocol::Http3,
            _ => HttpProtocol::Http1,
        }
    }
}

/// The terminated TLS session under a request.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    pub sni: Option<String>,
    /// `x-forwarded-client-cert` for a verified client certificate (MUTUAL), Envoy's format.
    pub client_cert: Option<HeaderValue>,
    pub mutual: bool,
}

/// Built once per connection (or per QUIC connection) and shared by its requests.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    /// The configuration the connection was accepted under; it finishes on it.
    pub config: Arc<RuntimeConfig>,
    pub listener: ListenerKey,
    pub listener_name: String,
    /// The server that terminated TLS, or the port's first plaintext HTTP server.
    pub server: String,
    pub peer: SocketAddr,
    /// The peer's IP as `x-forwarded-for` carries it, formatted once for all its requests.
    pub peer_ip: HeaderValue,
    pub tls: Option<TlsInfo>,
    pub route_table: Arc<RouteTable>,
    /// Plaintext ports: hosts of servers with `httpsRedirect` get a 301 instead of routing.
    pub checks_https_redirect: bool,
    /// HTTP/3 is offered on this port: responses advertise it with `alt-svc`.
    pub alt_svc: Option<HeaderValue>,
}

impl ConnectionContext {
    /// This connection's context under `current`, when `current` is newer than the one it
    /// has: same listener, same server (TLS stays as negotiated), the server's route table as
    /// `current` defines it. `None` when nothing changed, or when `current` no longer has
    /// this listener or server (the connection is draining and keeps its routes).
    pub fn under(&self, current: &Arc<RuntimeConfig>) -> Option<ConnectionContext> {
        if Arc::ptr_eq(current, &self.config) {
            return None;
        }
        let routes = current.listener(&self.listener)?;
        let table_name = if self.tls.is_some() {
            routes
                .terminating
                .iter()
                .find(|s| s.name == self.server)
                .and_then(|s| match &s.routing {
                    crate::config::TerminatedRouting::Http { route_table } => Some(route_table),
                    crate::config::TerminatedRouting::Tcp(_) => None,
                })?
        } else {
            &routes.http.first()?.route_table
        };
        let route_table = current.route_tables.get(table_name)?.clone();
        Some(ConnectionContext {
            config: Arc::clone(current),
            route_table,
            checks_https_redirect: self.tls.is_none()
                && routes.http.iter().any(|s| s.https_redirect),
            // Stop advertising an HTTP/3 twin that the newer configuration took away.
            alt_svc: self
                .alt_svc
                .as_ref()
                .and_then(|_| crate::h3::alt_svc(current, &self.listener, &self.server)),
            ..self.clone()
        })
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}
