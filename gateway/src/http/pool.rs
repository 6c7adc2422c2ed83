//! Upstream HTTP connections of one cluster, kept per endpoint address.
//!
//! HTTP/1.1: idle connections wait in a per-endpoint stack; a request takes the most recently
//! used one that is ready, and its connection comes back when the response body has been read
//! to the end (or at once when the response has no body). A connection the upstream closed
//! is skipped, and a request a pooled connection refused before sending any of it goes on to
//! the next connection, so a keep-alive race with the upstream never reaches the client.
//!
//! HTTP/2: one connection per endpoint carries every request.
//!
//! Written for the gateway rather than using hyper-util's general pool: that pool re-inserts
//! an HTTP/1 connection through a task spawned per request and hashes a scheme and
//! authority per request; here the endpoint address is the key and the body hands the
//! connection back itself.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustc_hash::FxHashMap;

use super::body::{HttpBody, boxed, empty};
use super::client::Connector;

/// How a cluster's connections are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    pub http2: bool,
    /// Idle HTTP/1 connections kept per endpoint.
    pub max_idle_per_endpoint: usize,
    /// An idle connection unused this long is closed.
    pub idle_timeout: Duration,
    /// DestinationRule `maxRequestsPerConnection`: a connection is retired after this many.
    pub max_requests_per_connection: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connecting to {address}: {source}")]
    Connect {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("{version} handshake with {address}: {source}")]
    Handshake {
        address: SocketAddr,
        version: &'static str,
        source: hyper::Error,
    },
    #[error("request to {address}: {source}")]
    Request {
        address: SocketAddr,
        source: hyper::Error,
    },
    /// The failure of a connection attempt several requests waited for.
    #[error("{0}")]
    Shared(Arc<UpstreamError>),
}

impl UpstreamError {
    /// The connection could not be established (Envoy's `UF`), as opposed to a failure of
    /// a request on an established connection (`UR`).
    pub fn is_connect(&self) -> bool {
        match self {
            UpstreamError::Request { .. } => false,
            UpstreamError::Shared(error) => error.is_connect(),
            UpstreamError::Connect { .. } | UpstreamError::Handshake { .. } => true,
        }
    }
}

/// A cluster's connections; cheap to clone, and every clone shares them.
#[derive(Clone)]
pub struct UpstreamClient(Arc<Pool>);

struct Pool {
    connector: Connector,
    settings: PoolSettings,
    /// Fx hashing: endpoint addresses come from the configuration, not from clients.
    endpoints: Mutex<FxHashMap<SocketAddr, Endpoint>>,
}

#[derive(Default)]
struct Endpoint {
    /// HTTP/1 connections waiting for a request, the most recently used at the back.
    idle: VecDeque<Idle>,
    /// The HTTP/2 connection every request to this endpoint shares.
    shared: Option<Shared>,
    /// The HTTP/2 connection attempt requests are waiting for.
    connecting: Option<Connecting>,
}

/// A connection attempt any number of requests can await; it stores the connection as the
/// endpoint's shared one.
type Connecting = futures::future::Shared<BoxFuture<'static, Result<(), Arc<UpstreamError>>>>;

struct Idle {
    lent: Lent,
    since: Instant,
}

struct Shared {
    sender: http2::SendRequest<HttpBody>,
    last_used: Instant,
    served: usize,
}

/// A connection lent to one HTTP/1 request.
struct Lent {
    sender: http1::SendRequest<HttpBody>,
    served: usize,
}

impl UpstreamClient {
    pub fn new(connector: Connector, settings: PoolSettings) -> Self {
        let pool = Arc::new(Pool {
            connector,
            settings,
            endpoints: Mutex::new(FxHashMap::default()),
        });
        spawn_sweeper(Arc::downgrade(&pool), settings.idle_timeout);
        UpstreamClient(pool)
    }

    pub fn settings(&self) -> PoolSettings {
        self.0.settings
    }

    pub fn connector(&self) -> &Connector {
        &self.0.connector
    }

    /// Sends `request` to the endpoint at `address`. The request's URI is sent as it is:
    /// origin-form for HTTP/1, scheme and authority included for HTTP/2.
    pub async fn request(
        &self,
        address: SocketAddr,
        request: Request<HttpBody>,
    ) -> Result<Response<HttpBody>, UpstreamError> {
        if self.0.settings.http2 {
            self.send_h2(address, request).await
        } else {
            self.send_h1(address, request).await
        }
    }

    async fn send_h1(
        &self,
        address: SocketAddr,
        mut request: Request<HttpBody>,
    ) -> Result<Response<HttpBody>, UpstreamError> {
        // A request is sent again at most once: an upstream that resets the connection on
        // this very request must not take down every idle connection in turn.
        let mut resent = false;
        while let Some(mut lent) = self.0.checkout_h1(address) {
            let copy = if resent {
                None
            } else {
                resendable_copy(&request)
            };
            match lent.sender.try_send_request(request).await {
                Ok(response) => return Ok(self.0.lend_body(address, lent, response)),
                Err(failed) => (request, resent) = next_attempt(address, failed, copy, resent)?,
            }
        }
        // Connecting is rare next to reusing: boxed, its futures do not sit in (and get
        // copied with) every request's future.
        let mut sender = Box::pin(connect_h1(&self.0.connector, address)).await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|source| UpstreamError::Request { address, source })?;
        Ok(self
            .0
            .lend_body(address, Lent { sender, served: 0 }, response))
    }

    async fn send_h2(
        &self,
        address: SocketAddr,
        mut request: Request<HttpBody>,
    ) -> Result<Response<HttpBody>, UpstreamError> {
        if let Some(mut sender) = self.0.shared_h2(address) {
            let copy = resendable_copy(&request);
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(response.map(boxed)),
                Err(failed) => (request, _) = next_attempt(address, failed, copy, false)?,
            }
        }
        let shared = if self.0.settings.max_requests_per_connection == Some(1) {
            None
        } else {
            // One request connects; those arriving meanwhile wait for it and share its
            // connection instead of each opening one.
            self.0
                .connecting_h2(address)
                .await
                .map_err(UpstreamError::Shared)?;
            self.0.shared_h2(address)
        };
        // Without a shared connection (one request per connection, or the new one was
        // retired or closed already) this request gets a connection of its own.
        let mut sender = match shared {
            Some(sender) => sender,
            None => Box::pin(connect_h2(&self.0.connector, address)).await?,
        };
        sender
            .send_request(request)
            .await
            .map(|response| response.map(boxed))
            .map_err(|source| UpstreamError::Request { address, source })
    }
}

impl Pool {
    fn endpoints(&self) -> MutexGuard<'_, FxHashMap<SocketAddr, Endpoint>> {
        // Every change under the lock is a single push, pop or replace: a panic elsewhere
        // cannot leave the map half-written.
        self.endpoints
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The most recently used idle connection that can take a request now. Closed ones are
    /// dropped; busy ones (still finishing a response) stay for later.
    fn checkout_h1(&self, address: SocketAddr) -> Option<Lent> {
        let mut endpoints = self.endpoints();
        let endpoint = endpoints.get_mut(&address)?;
        let mut index = endpoint.idle.len();
        while index > 0 {
            index -= 1;
            let sender = &endpoint.idle[index].lent.sender;
            if sender.is_closed() {
                // Dropping a sender only wakes its connection's task, which never takes this
                // lock (give_back and the HTTP/2 paths drop senders under it too).
                endpoint.idle.remove(index);
            } else if sender.is_ready() {
                return endpoint.idle.remove(index).map(|idle| idle.lent);
            }
        }
        None
    }

    /// Counts the request, then gives the connection back when `response`'s body has been
    /// read to the end, or retires it when it has served its limit.
    fn lend_body(
        self: &Arc<Self>,
        address: SocketAddr,
        lent: Lent,
        response: Response<Incoming>,
    ) -> Response<HttpBody> {
        let served = lent.served + 1;
        let (head, body) = response.into_parts();
        let retired = self
            .settings
            .max_requests_per_connection
            .is_some_and(|limit| served >= limit);
        if retired {
            // With its only sender gone the connection closes once this response is done.
            tracing::debug!(%address, served, "upstream connection retired (maxRequestsPerConnection)");
            return Response::from_parts(head, boxed(body));
        }
        let mut giveback = GiveBack {
            pool: Arc::downgrade(self),
            address,
            lent: Some(Lent { served, ..lent }),
        };
        if body.is_end_stream() {
            giveback.give();
            return Response::from_parts(head, boxed(body));
        }
        Response::from_parts(head, boxed(PooledBody { body, giveback }))
    }

    fn give_back(&self, address: SocketAddr, lent: Lent) {
        if lent.sender.is_closed() || self.settings.max_idle_per_endpoint == 0 {
            return;
        }
        let now = Instant::now();
        let mut endpoints = self.endpoints();
        let endpoint = endpoints.entry(address).or_default();
        if endpoint.idle.len() >= self.settings.max_idle_per_endpoint {
            // The oldest gives way: the newest is the one likeliest to stay open.
            endpoint.idle.pop_front();
        }
        endpoint.idle.push_back(Idle { lent, since: now });
    }

    /// A sender on the endpoint's HTTP/2 connection, if it has a usable one.
    fn shared_h2(&self, address: SocketAddr) -> Option<http2::SendRequest<HttpBody>> {
        let limit = self.settings.max_requests_per_connection;
        let mut endpoints = self.endpoints();
        let endpoint = endpoints.get_mut(&address)?;
        let shared = endpoint.shared.as_mut()?;
        if shared.sender.is_closed() || !shared.sender.is_ready() {
            endpoint.shared = None;
            return None;
        }
        shared.served += 1;
        shared.last_used = Instant::now();
        let sender = shared.sender.clone();
        if limit.is_some_and(|limit| shared.served >= limit) {
            // Streams in flight finish on their own senders; new requests open a new one.
            tracing::debug!(%address, served = shared.served, "upstream connection retired (maxRequestsPerConnection)");
            endpoint.shared = None;
        }
        Some(sender)
    }

    /// The endpoint's HTTP/2 connection attempt in progress, or a new one.
    ///
    /// The attempt runs as its own task, so it finishes (and leaves the endpoint's slot) even
    /// when every request waiting for it gave up; a later request never joins an attempt whose
    /// connect deadline passed while nobody polled it.
    fn connecting_h2(self: &Arc<Self>, address: SocketAddr) -> Connecting {
        let mut endpoints = self.endpoints();
        let endpoint = endpoints.entry(address).or_default();
        if let Some(connecting) = &endpoint.connecting {
            return connecting.clone();
        }
        // The attempt holds the pool weakly: the pool holds the attempt.
        let pool = Arc::downgrade(self);
        let connector = self.connector.clone();
        let connecting = async move {
            let connected = connect_h2(&connector, address).await.map_err(Arc::new);
            if let Some(pool) = pool.upgrade() {
                pool.connected_h2(address, connected.as_ref().ok().cloned());
            }
            connected.map(drop)
        }
        .boxed()
        .shared();
        endpoint.connecting = Some(connecting.clone());
        tokio::spawn(connecting.clone());
        connecting
    }

    /// Ends the endpoint's attempt (only one is in its slot at a time, and it is this one):
    /// a new connection becomes the shared one, unless one is there already.
    fn connected_h2(&self, address: SocketAddr, sender: Option<http2::SendRequest<HttpBody>>) {
        let mut endpoints = self.endpoints();
        let endpoint = endpoints.entry(address).or_default();
        endpoint.connecting = None;
        let Some(sender) = sender else {
            return;
        };
        if endpoint
            .shared
            .as_ref()
            .is_none_or(|shared| shared.sender.is_closed())
        {
            endpoint.shared = Some(Shared {
                sender,
                last_used: Instant::now(),
                served: 0,
            });
        }
    }

    /// Closes connections idle for longer than the idle timeout and forgets endpoints with
    /// nothing left.
    fn sweep(&self) {
        let timeout = self.settings.idle_timeout;
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut endpoints = self.endpoints();
        endpoints.retain(|_, endpoint| {
            while endpoint.idle.front().is_some_and(|idle| {
                idle.lent.sender.is_closed() || now.duration_since(idle.since) >= timeout
            }) {
                expired.extend(endpoint.idle.pop_front());
            }
            if endpoint.shared.as_ref().is_some_and(|shared| {
                shared.sender.is_closed() || now.duration_since(shared.last_used) >= timeout
            }) {
                endpoint.shared = None;
            }
            !endpoint.idle.is_empty() || endpoint.shared.is_some() || endpoint.connecting.is_some()
        });
        drop(endpoints);
        if !expired.is_empty() {
            tracing::debug!(closed = expired.len(), "idle upstream connections closed");
        }
    }
}

/// After a pooled connection failed a request: the request for the next connection (and
/// whether it is a re-sent copy), or the error for the client.
fn next_attempt(
    address: SocketAddr,
    mut failed: TrySendError<Request<HttpBody>>,
    copy: Option<Request<HttpBody>>,
    resent: bool,
) -> Result<(Request<HttpBody>, bool), UpstreamError> {
    // Refused before any of it was written: the next connection takes it as if nothing
    // happened.
    if let Some(unsent) = failed.take_message() {
        return Ok((unsent, resent));
    }
    match copy {
        // The upstream closed the connection as the request went out.
        Some(copy) if closed_under_request(failed.error()) => {
            tracing::debug!(%address, error = %failed.error(), "pooled upstream connection was closed; sending again");
            Ok((copy, true))
        }
        _ => Err(UpstreamError::Request {
            address,
            source: failed.into_error(),
        }),
    }
}

async fn connect_h1(
    connector: &Connector,
    address: SocketAddr,
) -> Result<http1::SendRequest<HttpBody>, UpstreamError> {
    let io = connector.connect(address).await?;
    let handshake = http1::Builder::new().handshake(io).await;
    let (sender, connection) = handshaken(handshake, address, "HTTP/1.1")?;
    drive(connection, address, "HTTP/1.1");
    Ok(sender)
}

async fn connect_h2(
    connector: &Connector,
    address: SocketAddr,
) -> Result<http2::SendRequest<HttpBody>, UpstreamError> {
    let io = connector.connect(address).await?;
    let handshake = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(io)
        .await;
    let (sender, connection) = handshaken(handshake, address, "HTTP/2")?;
    drive(connection, address, "HTTP/2");
    Ok(sender)
}

fn handshaken<T>(
    handshake: hyper::Result<T>,
    address: SocketAddr,
    version: &'static str,
) -> Result<T, UpstreamError> {
    handshake.map_err(|source| UpstreamError::Handshake {
        address,
        version,
        source,
    })
}

/// Runs a connection's I/O on its own task until the upstream or the pool closes it.
fn drive<C>(connection: C, address: SocketAddr, version: &'static str)
where
    C: std::future::Future<Output = hyper::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, %address, version, "upstream connection ended");
        }
    });
}

/// A copy of a bodiless request with an idempotent method, which RFC 9110 §9.2.2 lets a
/// client send again when its connection closes before the response: the price of telling
/// a keep-alive race with the upstream apart from a real failure.
fn resendable_copy(request: &Request<HttpBody>) -> Option<Request<HttpBody>> {
    if !request.method().is_idempotent() || !request.body().is_end_stream() {
        return None;
    }
    let mut copy = Request::new(empty());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

/// The connection ended under the request: closed or reset by the upstream.
fn closed_under_request(error: &hyper::Error) -> bool {
    if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
        return true;
    }
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        })
}

/// Sweeps `pool` a few times per idle timeout until the pool is dropped.
fn spawn_sweeper(pool: Weak<Pool>, idle_timeout: Duration) {
    let every = (idle_timeout / 4).max(Duration::from_millis(250));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(pool) = pool.upgrade() else {
                return;
            };
            pool.sweep();
        }
    });
}

/// Hands a lent connection back to its pool once.
struct GiveBack {
    pool: Weak<Pool>,
    address: SocketAddr,
    lent: Option<Lent>,
}

impl GiveBack {
    fn give(&mut self) {
        if let (Some(lent), Some(pool)) = (self.lent.take(), self.pool.upgrade()) {
            pool.give_back(self.address, lent);
        }
    }
}

/// A response body that returns its connection to the pool when read to the end. Dropped
/// before the end, it drops the connection instead: HTTP/1 cannot reuse a connection with
/// an unread response on it.
struct PooledBody {
    body: Incoming,
    giveback: GiveBack,
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.giveback.give(),
            // Trailers end an HTTP/1 body; hyper's server does not poll again after them.
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() || this.body.is_end_stream() => {
                this.giveback.give()
            }
            Poll::Ready(Some(Err(_))) => this.giveback.lent = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
