//! HTTP/3 beside HTTPS: a quinn endpoint on the UDP side of every HTTPS port whose servers
//! terminate TLS, with the same certificates, client-certificate rules and routes as the TCP
//! side; its requests go through the one router ([`crate::http::handle_request`]).
//!
//! TCP responses of such ports advertise the twin with `alt-svc: h3=":<port>"; ma=86400`,
//! where `<port>` is the port the Gateway server names, also when a test or local run binds
//! elsewhere (`GatewayOptions::port_map`): the advertisement is what clients reaching the
//! gateway through its published port must see (conformance E1).

mod body;
mod client_auth;
mod connection;
mod endpoint;
mod tls;

use std::net::SocketAddr;

use http::HeaderValue;
use thiserror::Error;

use crate::config::{ListenerKey, RuntimeConfig};

pub use endpoint::{PreparedQuic, QuicListeners};
pub use tls::{Http3Settings, QuicListenerTls, alt_svc_value, build};

#[derive(Debug, Error)]
pub enum H3Error {
    #[error(
        "listener {listener}: server {server} gets no HTTP/3 twin: QUIC needs TLS 1.3, which its minProtocolVersion/maxProtocolVersion exclude; the port's other servers keep theirs"
    )]
    ServerNeedsTls13 { listener: String, server: String },
    #[error(
        "listener {listener}: QUIC cannot use this server's TLS: {reason}; QUIC needs TLS 1.3 (check minProtocolVersion/maxProtocolVersion and cipherSuites)"
    )]
    QuicTls { listener: String, reason: String },
    #[error(
        "listener {listener}: cannot bind UDP {address} for HTTP/3: {source}; is another process using this UDP port?"
    )]
    Bind {
        listener: String,
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// The `alt-svc` value for TCP connections to `server` on `listener`, when it has an HTTP/3 twin.
pub fn alt_svc(
    config: &RuntimeConfig,
    listener: &ListenerKey,
    server: &str,
) -> Option<HeaderValue> {
    config
        .http3
        .get(listener)
        .filter(|twin| twin.serves(server))
        .map(|twin| twin.alt_svc.clone())
}
