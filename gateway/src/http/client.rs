//! Upstream HTTP clients, one per (cluster, HTTP version), each with its own connection pool
//! ([`super::pool`]). TLS origination happens in the connector, so a cluster's pooled
//! connections all carry the same TLS settings.

use rustc_hash::FxHashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::pool::PoolSettings;
pub use super::pool::{UpstreamClient, UpstreamError};
use crate::config::ClusterConfig;

/// Idle connections per endpoint when the DestinationRule sets no limit.
const DEFAULT_MAX_IDLE_PER_ENDPOINT: usize = 64;
/// Envoy's default idle timeout for upstream HTTP connections is one hour; idle sockets to
/// a pod that went away cost more than a reconnect, so a shorter default.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// TLS origination for one cluster: the rustls client and the name to present.
pub type OriginationTls = Arc<certs::UpstreamTls>;

#[derive(Clone)]
pub struct Connector {
    connect_timeout: Duration,
    tls: Option<OriginationTls>,
}

/// A connection to an upstream. Hand-written rather than tokio-util's `Either` under one
/// `TokioIo`: that cost ~9k more instructions per proxied request (`bench/https.sh
/// --instructions`: HTTP/1.1 59.1k against 50.0k).
pub enum UpstreamIo {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl hyper::rt::Read for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_read(cx, buf),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_write(cx, buf),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_flush(cx),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_shutdown(cx),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(io) => io.is_write_vectored(),
            UpstreamIo::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}

impl Connector {
    /// Whether this connector has these settings (the same TLS configuration, not an equal
    /// one: a reloaded credential makes a new one).
    fn dials_like(&self, tls: Option<&OriginationTls>, connect_timeout: Duration) -> bool {
        self.connect_timeout == connect_timeout
            && match (&self.tls, tls) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }

    /// A TCP connection to `address`, with TLS on it when the cluster originates TLS.
    pub async fn connect(&self, address: SocketAddr) -> Result<UpstreamIo, UpstreamError> {
        self.connect_io(address)
            .await
            .map_err(|source| UpstreamError::Connect { address, source })
    }

    async fn connect_io(&self, address: SocketAddr) -> io::Result<UpstreamIo> {
        let timeout = self.connect_timeout;
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "connect to {address} timed out after {} ms",
                        timeout.as_millis()
                    ),
                )
            })??;
        // Small requests must not wait for Nagle; failing to set it costs latency only.
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(UpstreamIo::Plain(TokioIo::new(stream)));
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
        let handshake = connector.connect(tls.server_name.clone(), stream);
        let stream = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("TLS handshake with {address} timed out"),
                )
            })??;
        Ok(UpstreamIo::Tls(Box::new(TokioIo::new(stream))))
    }
}

/// Clients outlive configuration pushes so their pools do; a client is rebuilt only when
/// its cluster's HTTP version, TLS settings, connect timeout or pool settings change.
#[derive(Default)]
pub struct ClientCache {
    /// By cluster name, then `[HTTP/1, HTTP/2]`: looked up by `&str` without building a key.
    /// Fx hashing: cluster names come from the configuration, not from clients.
    clients: Mutex<FxHashMap<String, [Option<UpstreamClient>; 2]>>,
    in_flight: Mutex<FxHashMap<String, Arc<AtomicUsize>>>,
}

/// One request counted against its cluster's `connectionPool` limit until dropped.
#[derive(Debug)]
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ClientCache {
    pub fn client(
        &self,
        cluster: &ClusterConfig,
        http2: bool,
        tls: Option<&OriginationTls>,
        connect_timeout: Duration,
    ) -> UpstreamClient {
        let settings = PoolSettings {
            http2,
            max_idle_per_endpoint: cluster
                .max_idle_per_endpoint
                .unwrap_or(DEFAULT_MAX_IDLE_PER_ENDPOINT),
            idle_timeout: cluster.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            max_requests_per_connection: cluster.max_requests_per_connection,
        };
        let connect_timeout = cluster.connect_timeout.unwrap_or(connect_timeout);
        let version = usize::from(http2);
        // The map is only read and replaced under the lock; a panic elsewhere cannot leave
        // it half-written.
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(cached) = clients
            .get(cluster.name.as_str())
            .and_then(|v| v[version].as_ref())
            && cached.settings() == settings
            && cached.connector().dials_like(tls, connect_timeout)
        {
            return cached.clone();
        }
        let connector = Connector {
            connect_timeout,
            tls: tls.cloned(),
        };
        let client = UpstreamClient::new(connector, settings);
        clients.entry(cluster.name.clone()).or_default()[version] = Some(client.clone());
        client
    }

    /// Counts a request against `cluster`'s limit; `None` when the cluster is full (the
    /// circuit breaker is open) and the request must be answered 503 without being sent.
    pub fn admit(&self, cluster: &ClusterConfig) -> Option<Option<InFlight>> {
        let Some(limit) = cluster.max_requests else {
            return Some(None);
        };
        let counter = {
            let mut counters = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(counters.entry(cluster.name.clone()).or_default())
        };
        let before = counter.fetch_add(1, Ordering::AcqRel);
        let admitted = InFlight(counter);
        (before < limit).then_some(Some(admitted))
    }

    /// Drops clients of clusters the configuration no longer has.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.clients
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .retain(|name, _| keep(name));
    }
}
