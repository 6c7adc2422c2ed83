//! The HTTP data plane: one router for HTTP/1, HTTP/2 and HTTP/3 requests, the upstream
//! client pool, standard headers, CORS, gRPC-web and the access log.
//!
//! A front end (the h1/h2 server here, an h3 server elsewhere) builds one
//! [`ConnectionContext`] per connection and calls [`handle_request`] for every request.

pub(crate) mod access_log;
pub mod body;
pub mod client;
mod context;
mod cors;
pub mod grpc_web;
mod handler;
pub mod headers;
pub mod local;
mod pool;
pub mod router;
mod series_cache;
mod server;
mod until_cancelled;

pub use body::{BoxError, HttpBody};
pub use client::{ClientCache, OriginationTls};
pub use context::{ConnectionContext, HttpProtocol, TlsInfo};
pub use handler::{Outcome, handle_request};
pub use server::{HttpLimits, serve_connection};

/// HTTP state of a gateway that outlives configuration pushes.
pub struct HttpState {
    pub clients: ClientCache,
    pub limits: HttpLimits,
    /// The current configuration: every request is routed by the newest route tables, as
    /// Envoy applies RDS updates to requests on connections that are already open.
    pub configs: std::sync::Arc<crate::config::ConfigCell>,
}
