//! Pooled upstream HTTP clients, one per (cluster, HTTP version): hyper-util's pool keyed by
//! endpoint address inside it. TLS origination happens in the connector, so a cluster's
//! pooled connections all carry the same TLS settings.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::body::HttpBody;
use crate::config::ClusterConfig;
use crate::upstream::RequestCount;

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
    count_requests: bool,
}

pub struct UpstreamIo {
    stream: UpstreamStream,
    /// Set when the cluster retires connections after a number of requests.
    requests: Option<RequestCount>,
}

enum UpstreamStream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        let connected = match &self.stream {
            UpstreamStream::Plain(_) => Connected::new(),
            UpstreamStream::Tls(stream) => {
                let (_, session) = stream.inner().get_ref();
                if session.alpn_protocol() == Some(b"h2") {
                    Connected::new().negotiated_h2()
                } else {
                    Connected::new()
                }
            }
        };
        match &self.requests {
            Some(requests) => connected.extra(requests.clone()),
            None => connected,
        }
    }
}

impl hyper::rt::Read for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            UpstreamStream::Plain(io) => Pin::new(io).poll_read(cx, buf),
            UpstreamStream::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            UpstreamStream::Plain(io) => Pin::new(io).poll_write(cx, buf),
            UpstreamStream::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            UpstreamStream::Plain(io) => Pin::new(io).poll_flush(cx),
            UpstreamStream::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            UpstreamStream::Plain(io) => Pin::new(io).poll_shutdown(cx),
            UpstreamStream::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            UpstreamStream::Plain(io) => io.is_write_vectored(),
            UpstreamStream::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            UpstreamStream::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = UpstreamIo;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<UpstreamIo>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let timeout = self.connect_timeout;
        let tls = self.tls.clone();
        let requests = self.count_requests.then(RequestCount::default);
        Box::pin(async move {
            // The router always puts the chosen endpoint's IP:port in the URI.
            let address: SocketAddr = uri
                .authority()
                .and_then(|a| a.as_str().parse().ok())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("upstream URI {uri} does not name an endpoint address"),
                    )
                })?;
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
            let Some(tls) = tls else {
                return Ok(UpstreamIo {
                    stream: UpstreamStream::Plain(TokioIo::new(stream)),
                    requests,
                });
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
            Ok(UpstreamIo {
                stream: UpstreamStream::Tls(Box::new(TokioIo::new(stream))),
                requests,
            })
        })
    }
}

pub type UpstreamClient = Client<Connector, HttpBody>;

struct CachedClient {
    http2: bool,
    tls: Option<OriginationTls>,
    /// Pool settings: idle connections, idle timeout, requests per connection.
    idle: (Option<usize>, Option<Duration>, Option<usize>),
    client: UpstreamClient,
}

/// Clients outlive configuration pushes so their pools do; a client is rebuilt only when
/// its cluster's HTTP version, TLS settings or pool settings change.
#[derive(Default)]
pub struct ClientCache {
    /// By cluster name, then `[HTTP/1, HTTP/2]`: looked up by `&str` without building a key.
    clients: Mutex<HashMap<String, [Option<Arc<CachedClient>>; 2]>>,
    in_flight: Mutex<HashMap<String, Arc<AtomicUsize>>>,
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
        let idle = (
            cluster.max_idle_per_endpoint,
            cluster.idle_timeout,
            cluster.max_requests_per_connection,
        );
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
            && cached.http2 == http2
            && cached.idle == idle
            && match (&cached.tls, tls) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
        {
            return cached.client.clone();
        }
        let connector = Connector {
            connect_timeout: cluster.connect_timeout.unwrap_or(connect_timeout),
            tls: tls.cloned(),
            count_requests: cluster.max_requests_per_connection.is_some(),
        };
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(cluster.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT))
            .pool_max_idle_per_host(
                cluster
                    .max_idle_per_endpoint
                    .unwrap_or(DEFAULT_MAX_IDLE_PER_ENDPOINT),
            )
            // The router sets Host itself (the client's, or the rewritten authority); the
            // URI only carries the endpoint address.
            .set_host(false)
            .http2_only(http2);
        let client = builder.build(connector);
        clients.entry(cluster.name.clone()).or_default()[version] = Some(Arc::new(CachedClient {
            http2,
            tls: tls.cloned(),
            idle,
            client: client.clone(),
        }));
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
