//! HTTP/1.1 and HTTP/2 (h2c prior knowledge, or h2 by ALPN after TLS) on one accepted
//! connection, every request going through [`super::handle_request`].

use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use hyper::Response;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::body::HttpBody;
use super::context::ConnectionContext;
use super::handle_request;
use super::until_cancelled::UntilCancelled;
use crate::proxy::Proxy;

/// Limits that protect the gateway from one client.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Request line and headers; beyond it HTTP/1 answers 431 and HTTP/2 resets the stream.
    pub max_header_bytes: usize,
    /// A client must finish sending a request's headers within this (slowloris).
    pub header_read_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_header_bytes: 60 * 1024,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `io` until the client closes it or `force_close` fires.
pub async fn serve_connection<I>(
    proxy: Arc<Proxy>,
    conn: Arc<ConnectionContext>,
    io: I,
    force_close: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = proxy.http.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Over TLS rustls copies every plaintext byte into its records anyway: hyper
        // flattening head and body into one buffer first gave more h1 requests per second
        // and a lower p99 than vectored writes into rustls (a one-off A/B with a temporary
        // switch on bench/https.sh's setup; 4 of 6 rounds). Plaintext keeps vectored
        // writes, which send large bodies without a copy.
        .writev(conn.tls.is_none())
        // hyper refuses buffers under 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let proxy = Arc::clone(&proxy);
        let conn = Arc::clone(&conn);
        let handled: Pin<Box<dyn Future<Output = Response<HttpBody>> + Send>> =
            Box::pin(handle_request(proxy, conn, request));
        async move { Ok::<_, Infallible>(handled.await) }
    });
    let connection = pin!(builder.serve_connection(TokioIo::new(io), service));
    if let Some(Err(error)) = UntilCancelled::new(connection, force_close).await {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}
