//! Binds and runs the discovery gRPC server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Server, ServerTlsConfig};
use tracing::info;

use super::ConfigSource;
use super::debounce::Debounce;
use super::generated::mesh_discovery_server::MeshDiscoveryServer;
use super::metrics::PushMetrics;
use super::service::PushService;

/// Detects gateways that vanished without closing their connection (node lost, partition).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot listen for gateways on {addr}: {source}; is another process using the port?")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("discovery gRPC TLS settings were refused: {0}; check the server certificate and key")]
    Tls(#[source] tonic::transport::Error),
    #[error("discovery gRPC server failed: {0}")]
    Serve(#[source] tonic::transport::Error),
}

/// The discovery gRPC server, with its optional settings.
pub struct PushServer {
    source: Arc<dyn ConfigSource>,
    metrics: Arc<PushMetrics>,
    tls: Option<ServerTlsConfig>,
    debounce: Debounce,
    /// Other gRPC services sharing the port (certificate signing, as istiod does on 15012).
    extra_routes: Option<Routes>,
}

impl PushServer {
    pub fn new(source: Arc<dyn ConfigSource>, metrics: Arc<PushMetrics>) -> Self {
        PushServer {
            source,
            metrics,
            tls: None,
            debounce: Debounce::default(),
            extra_routes: None,
        }
    }

    /// Serves gRPC over TLS; the mTLS listener on 15012 passes a config that requires client
    /// certificates. Without it the server speaks plaintext HTTP/2.
    pub fn with_tls(mut self, tls: ServerTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Serves `routes` on the same port and with the same TLS as the push service.
    pub fn with_routes(mut self, routes: Routes) -> Self {
        self.extra_routes = Some(routes);
        self
    }

    pub fn with_debounce(mut self, debounce: Debounce) -> Self {
        self.debounce = debounce;
        self
    }

    /// Binds `addr` and serves until `shutdown` completes.
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), PushError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| PushError::Bind { addr, source })?;
        self.serve_with_listener(listener, shutdown).await
    }

    /// Serves on an already bound listener (tests bind port 0) until `shutdown` completes.
    ///
    /// On shutdown every gateway stream ends cleanly, so gateways reconnect (to this discovery
    /// once it is back, or to another replica) and keep serving their last configuration.
    pub async fn serve_with_listener(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), PushError> {
        let (stop, stopped) = watch::channel(false);
        let service = PushService {
            source: self.source,
            metrics: self.metrics,
            shutdown: stopped,
            debounce: self.debounce,
        };
        let mut builder = Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
        let tls = self.tls.is_some();
        if let Some(config) = self.tls {
            builder = builder.tls_config(config).map_err(PushError::Tls)?;
        }
        let address = listener.local_addr().ok();
        info!(address = ?address, tls, "discovery gRPC listening for gateways");
        // Streams never end on their own; they must be told, or the graceful drain would wait
        // for them forever.
        let signal = async move {
            shutdown.await;
            // Sessions also stop when the sender is dropped, so a send error changes nothing.
            let _ = stop.send(true);
        };
        let push = MeshDiscoveryServer::new(service);
        let routes = match self.extra_routes {
            Some(routes) => routes.add_service(push),
            None => Routes::new(push),
        };
        builder
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                signal,
            )
            .await
            .map_err(PushError::Serve)?;
        info!(address = ?address, "discovery gRPC stopped");
        Ok(())
    }
}

/// Binds `addr` and serves gateways until `shutdown` completes, with default settings.
pub async fn serve(
    addr: SocketAddr,
    source: Arc<dyn ConfigSource>,
    metrics: Arc<PushMetrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PushError> {
    PushServer::new(source, metrics).serve(addr, shutdown).await
}

/// Serves gateways on a bound listener until `shutdown` completes, with default settings.
pub async fn serve_with_listener(
    listener: TcpListener,
    source: Arc<dyn ConfigSource>,
    metrics: Arc<PushMetrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PushError> {
    PushServer::new(source, metrics)
        .serve_with_listener(listener, shutdown)
        .await
}
