//! One QUIC connection: handshake, the server its SNI picks, then HTTP/3 requests through
//! the shared router until the client leaves or the listener drains (GOAWAY first).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, Version};
use rustls_pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::body::{RequestBody, send_body};
use crate::config::{ListenerKey, RuntimeConfig, TerminatedRouting};
use crate::http::{ConnectionContext, TlsInfo, handle_request, headers};
use crate::proxy::{Proxy, RejectReason};

/// HTTP/3 `H3_NO_ERROR`, the code of a clean close.
const H3_NO_ERROR: u32 = 0x100;

pub struct QuicConnection {
    pub proxy: Arc<Proxy>,
    pub config: Arc<RuntimeConfig>,
    pub listener: ListenerKey,
    pub connecting: quinn::Connecting,
    pub peer: SocketAddr,
    /// Stop taking new requests: send GOAWAY, finish those in flight.
    pub drain: CancellationToken,
    /// Close now.
    pub force_close: CancellationToken,
    /// Request tasks join the listener's tracker so draining waits for them.
    pub requests: TaskTracker,
}

impl QuicConnection {
    pub async fn serve(self) {
        let QuicConnection {
            proxy,
            config,
            listener,
            connecting,
            peer,
            drain,
            force_close,
            requests,
        } = self;
        let Some(routes) = config.listener(&listener) else {
            return;
        };
        let reject = |reason: RejectReason, sni: Option<&str>, detail: &str| {
            tracing::info!(%peer, listener = %routes.name, transport = "quic", sni = sni.unwrap_or(""), reason = reason.as_str(), detail, "QUIC connection rejected");
            proxy.metrics.rejected(&routes.name, reason.as_str(), sni);
        };
        let handshake = tokio::select! {
            done = tokio::time::timeout(proxy.settings.client_hello_timeout, connecting) => done,
            () = force_close.cancelled() => return,
        };
        let connection = match handshake {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => {
                return reject(RejectReason::TlsHandshake, None, &error.to_string());
            }
            Err(_) => {
                return reject(
                    RejectReason::HelloTimeout,
                    None,
                    "QUIC handshake did not finish in time",
                );
            }
        };
        let sni = connection
            .handshake_data()
            .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|data| data.server_name)
            .map(|name| name.to_ascii_lowercase());
        let twin = config.http3.get(&listener);
        let server = routes
            .terminating_server_for(sni.as_deref())
            .filter(|server| twin.is_some_and(|t| t.serves(&server.name)));
        let Some(server) = server else {
            reject(
                RejectReason::UnknownSni,
                sni.as_deref(),
                "no server of this port serves this SNI over HTTP/3",
            );
            connection.close(quinn::VarInt::from_u32(H3_NO_ERROR), b"unknown server name");
            return;
        };
        let TerminatedRouting::Http { route_table } = &server.routing else {
            return;
        };
        let Some(route_table) = config.route_tables.get(route_table).cloned() else {
            return;
        };
        // On a port shared with SIMPLE servers the handshake asks every client for a
        // certificate; only servers with client-certificate rules see (and forward) it.
        let takes_client_certs = twin.is_some_and(|t| t.takes_client_certs(&server.name));
        let client_cert = takes_client_certs
            .then(|| connection.peer_identity())
            .flatten()
            .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
            .and_then(|chain| {
                chain
                    .first()
                    .and_then(|leaf| headers::client_cert_header(leaf))
            });
        let conn = Arc::new(ConnectionContext {
            listener,
            listener_name: routes.name.clone(),
            server: server.name.clone(),
            peer: connection.remote_address(),
            peer_ip: headers::ip_value(connection.remote_address().ip()),
            tls: Some(TlsInfo {
                sni,
                mutual: client_cert.is_some(),
                client_cert,
            }),
            route_table,
            checks_https_redirect: false,
            // The client is already on HTTP/3.
            alt_svc: None,
            config: Arc::clone(&config),
        });
        serve_requests(proxy, conn, connection, drain, force_close, requests).await;
    }
}

async fn serve_requests(
    proxy: Arc<Proxy>,
    conn: Arc<ConnectionContext>,
    connection: quinn::Connection,
    drain: CancellationToken,
    force_close: CancellationToken,
    requests: TaskTracker,
) {
    let max_header_bytes = u64::try_from(proxy.http.limits.max_header_bytes).unwrap_or(u64::MAX);
    let built = ::h3::server::builder()
        .max_field_section_size(max_header_bytes)
        .build::<_, Bytes>(h3_quinn::Connection::new(connection.clone()))
        .await;
    let mut h3_connection = match built {
        Ok(h3_connection) => h3_connection,
        Err(error) => {
            tracing::debug!(peer = %conn.peer, %error, "HTTP/3 connection setup failed");
            return;
        }
    };
    let mut draining = false;
    loop {
        let accepted = tokio::select! {
            accepted = h3_connection.accept() => accepted,
            () = drain.cancelled(), if !draining => {
                draining = true;
                // GOAWAY: requests already accepted finish, new ones go elsewhere.
                if let Err(error) = h3_connection.shutdown(0).await {
                    tracing::debug!(peer = %conn.peer, %error, "HTTP/3 GOAWAY failed");
                    break;
                }
                continue;
            }
            () = force_close.cancelled() => {
                connection.close(quinn::VarInt::from_u32(H3_NO_ERROR), b"gateway shutting down");
                return;
            }
        };
        match accepted {
            Ok(Some(resolver)) => {
                let proxy = Arc::clone(&proxy);
                let conn = Arc::clone(&conn);
                requests.spawn(async move {
                    match resolver.resolve_request().await {
                        Ok((request, stream)) => serve_request(proxy, conn, request, stream).await,
                        Err(error) => {
                            tracing::debug!(peer = %conn.peer, %error, "HTTP/3 request headers unreadable");
                        }
                    }
                });
            }
            Ok(None) => break,
            Err(error) => {
                tracing::debug!(peer = %conn.peer, %error, "HTTP/3 connection ended");
                break;
            }
        }
    }
}

type BidiStream = ::h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

async fn serve_request(
    proxy: Arc<Proxy>,
    conn: Arc<ConnectionContext>,
    request: http::Request<()>,
    stream: BidiStream,
) {
    let peer = conn.peer;
    let (mut send, recv) = stream.split();
    let (mut parts, ()) = request.into_parts();
    parts.version = Version::HTTP_3;
    let request = http::Request::from_parts(parts, RequestBody::new(recv));
    let response = handle_request(proxy, conn, request).await;
    let (mut parts, body) = response.into_parts();
    // Connection-specific fields are malformed in HTTP/3 (RFC 9114 §4.2).
    headers::remove_hop_by_hop(&mut parts.headers);
    let sent = async {
        send.send_response(Response::from_parts(parts, ())).await?;
        send_body(&mut send, body).await
    };
    if let Err(error) = sent.await {
        tracing::debug!(%peer, %error, "HTTP/3 response not delivered");
    }
}
