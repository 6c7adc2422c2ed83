//! The gateway process in one handle: a data-plane runtime for listeners and connections,
//! admin servers on the caller's (control-plane) runtime, and atomic configuration applies.
//!
//! As in ztunnel, proxied traffic runs on its own runtime ([`data_plane`]), so a burst of
//! connections cannot starve the discovery client or the admin endpoints, and the reverse.

mod data_plane;
mod options;

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use multicluster::proto::GatewayConfig;
use thiserror::Error;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminAddresses};
use crate::config::{ConfigCell, RuntimeConfig};
use crate::listener::{AcceptContext, BoundListener, ListenerSet, Placement};
use crate::metrics::Metrics;
use crate::proxy::{Proxy, ProxySettings};
use crate::upstream::{DnsSettings, Upstreams};
use data_plane::DataPlane;

pub use options::{GatewayOptions, MeshIdentity};

#[derive(Debug, Error)]
pub enum StartError {
    #[error("cannot start the data-plane runtime: {0}")]
    Runtime(#[source] io::Error),
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
}

/// A running gateway; cheap to clone (the discovery client keeps one to apply pushes).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    options: GatewayOptions,
    configs: Arc<ConfigCell>,
    proxy: Arc<Proxy>,
    metrics: Metrics,
    /// Also serialises applies: two pushes never interleave their binds and swaps.
    listeners: Mutex<ListenerSet>,
    /// HTTP/3 twins; changed only under the `listeners` lock.
    quic: Mutex<crate::h3::QuicListeners>,
    ready: AtomicBool,
    data_plane: Handle,
    credentials: crate::tls::CredentialCache,
    origination_cache:
        Mutex<std::collections::HashMap<String, (String, crate::http::OriginationTls)>>,
}

/// Owns what [`Gateway::start`] started; [`GatewayHandle::shutdown`] stops it gracefully.
pub struct GatewayHandle {
    gateway: Gateway,
    admin: AdminAddresses,
    admin_shutdown: CancellationToken,
    data_runtime: Option<DataPlane>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Applies change the set only through whole inserts and removes; after a panic elsewhere
    // it is still a consistent set of running listeners.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Gateway {
    /// Starts the data-plane runtime and the admin servers (on the current runtime). Nothing
    /// is proxied and `/healthz/ready` answers 503 until the first [`Gateway::apply`].
    pub async fn start(options: GatewayOptions) -> Result<GatewayHandle, StartError> {
        let data_runtime =
            DataPlane::start(options.data_plane_threads.max(1)).map_err(StartError::Runtime)?;
        let metrics = Metrics::for_cluster(options.cluster.as_deref().unwrap_or(""));
        let telemetry = options
            .telemetry
            .as_ref()
            .map(crate::telemetry::Telemetry::start)
            .transpose()?;
        let configs = Arc::new(ConfigCell::new(RuntimeConfig::empty()));
        let proxy = Arc::new(Proxy {
            settings: ProxySettings {
                client_hello_timeout: options.client_hello_timeout,
                connect_timeout: options.connect_timeout,
                network: options.network.clone(),
                telemetry,
            },
            upstreams: Upstreams::new(
                metrics.clone(),
                DnsSettings {
                    servers: options.dns_servers.clone(),
                },
            ),
            metrics: metrics.clone(),
            http: crate::http::HttpState {
                configs: Arc::clone(&configs),
                clients: crate::http::ClientCache::default(),
                limits: crate::http::HttpLimits {
                    max_header_bytes: options.max_request_header_bytes,
                    header_read_timeout: options.http_header_read_timeout,
                },
            },
            buffers: crate::proxy::BufferPool::new(),
        });
        let gateway = Gateway {
            inner: Arc::new(Inner {
                configs,
                proxy,
                metrics,
                listeners: Mutex::new(ListenerSet::default()),
                quic: Mutex::new(crate::h3::QuicListeners::default()),
                ready: AtomicBool::new(false),
                data_plane: data_runtime.handle().clone(),
                credentials: crate::tls::CredentialCache::default(),
                origination_cache: Mutex::new(std::collections::HashMap::new()),
                options,
            }),
        };
        let admin_shutdown = CancellationToken::new();
        let admin = match admin::start(&gateway, admin_shutdown.clone()).await {
            Ok(admin) => admin,
            // Dropping the data plane stops it.
            Err(error) => return Err(error.into()),
        };
        Ok(GatewayHandle {
            gateway,
            admin,
            admin_shutdown,
            data_runtime: Some(data_runtime),
        })
    }

    /// Applies `config` whole or not at all. On error nothing changed: the previous
    /// configuration keeps serving, and each string names one reason.
    pub fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>> {
        let inner = &self.inner;
        let mut listeners = lock(&inner.listeners);
        let version = config.version.clone();
        let refuse = |reasons: Vec<String>| {
            tracing::warn!(version = %version, reasons = ?reasons, "configuration refused; still serving the previous one");
            inner.metrics.config_rejected();
            Err(reasons)
        };
        let mut runtime = match RuntimeConfig::build(config) {
            Ok(runtime) => runtime,
            Err(errors) => return refuse(errors.iter().map(ToString::to_string).collect()),
        };
        self.prepare_tls(&mut runtime);
        let prepared = match listeners.prepare(&runtime, &self.placement(), &inner.data_plane) {
            Ok(prepared) => prepared,
            Err(errors) => return refuse(errors.iter().map(ToString::to_string).collect()),
        };
        let prepared_quic = self.prepare_http3(&mut runtime, &listeners, &prepared);
        let previous = inner.configs.load();
        let runtime = Arc::new(runtime);
        inner.configs.store(Arc::clone(&runtime));
        inner.proxy.upstreams.retain(&runtime);
        let context = AcceptContext {
            proxy: Arc::clone(&inner.proxy),
            configs: Arc::clone(&inner.configs),
            data_plane: inner.data_plane.clone(),
        };
        listeners.commit(prepared, &runtime, &context, inner.options.drain_timeout);
        lock(&inner.quic).commit(
            prepared_quic,
            &runtime,
            &context,
            inner.options.drain_timeout,
        );
        warn_about_unserved(&previous, &runtime);
        inner.ready.store(true, Ordering::Release);
        inner.metrics.config_applied(&runtime.version);
        tracing::info!(
            version = %runtime.version,
            listeners = runtime.listeners.len(),
            clusters = runtime.clusters.len(),
            "configuration applied"
        );
        Ok(())
    }

    /// True once a configuration has been applied.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// The configuration new connections are routed by.
    pub fn config(&self) -> Arc<RuntimeConfig> {
        self.inner.configs.load()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn options(&self) -> &GatewayOptions {
        &self.inner.options
    }

    pub fn bound_listeners(&self) -> Vec<BoundListener> {
        lock(&self.inner.listeners).bound()
    }

    /// Where the listener configured on `port` really listens (after address and port
    /// overrides), if it is running.
    pub fn listener_address(&self, port: u16) -> Option<SocketAddr> {
        self.bound_listeners()
            .into_iter()
            .find(|listener| listener.key.port == port)
            .map(|listener| listener.local_addr)
    }

    /// Loads credentials and builds server TLS and TLS origination for `runtime`. Problems
    /// reject single servers or clusters (recorded in `rejected_servers`), never the push:
    /// the rest of the configuration is served.
    fn prepare_tls(&self, runtime: &mut RuntimeConfig) {
        let inner = &self.inner;
        let mesh = inner
            .options
            .mesh_identity
            .as_ref()
            .map(crate::tls::load_mesh);
        let mesh_error = mesh.as_ref().and_then(|m| m.as_ref().err().cloned());
        let mesh = mesh.and_then(Result::ok);
        if let Some(error) = &mesh_error {
            tracing::warn!(%error, "mesh identity unavailable; ISTIO_MUTUAL servers and origination are rejected");
        }
        let (tables, mut rejected) = crate::tls::build(runtime, &inner.credentials, mesh.as_ref());
        let (origination, cluster_rejections) = crate::tls::build_origination(
            runtime,
            &inner.credentials,
            mesh.as_ref(),
            &inner.origination_cache,
        );
        rejected.extend(cluster_rejections);
        if let Some(error) = mesh_error {
            for rejection in &mut rejected {
                if rejection.reason.contains("mesh identity") {
                    rejection.reason = format!("{}; {error}", rejection.reason);
                }
            }
        }
        let names: std::collections::HashSet<&str> = runtime
            .source
            .credentials
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        inner.credentials.retain(&names);
        inner.metrics.set_rejected_servers(
            rejected
                .iter()
                .map(|r| (r.listener.as_str(), r.server.as_str())),
        );
        runtime.tls = tables;
        runtime.upstream_tls = origination;
        runtime.rejected_servers = rejected;
    }

    /// Builds the HTTP/3 twins of `runtime`'s HTTPS listeners and binds the new ones' UDP
    /// sockets on the same addresses as their TCP listeners.
    fn prepare_http3(
        &self,
        runtime: &mut RuntimeConfig,
        listeners: &ListenerSet,
        prepared: &crate::listener::Prepared,
    ) -> crate::h3::PreparedQuic {
        let inner = &self.inner;
        let settings = crate::h3::Http3Settings {
            enabled: inner.options.http3,
            zero_rtt: inner.options.http3_zero_rtt,
        };
        let (twins, skipped) = crate::h3::build(runtime, settings);
        for reason in skipped {
            tracing::warn!(%reason, "HTTP/3 not offered on a port");
        }
        runtime.http3 = twins;
        let addresses: std::collections::HashMap<_, _> = listeners
            .bound()
            .into_iter()
            .map(|b| (b.key, b.local_addr))
            .chain(prepared.local_addrs())
            .collect();
        lock(&inner.quic).prepare(runtime, &addresses, &inner.data_plane)
    }

    /// The running HTTP/3 (UDP) listeners.
    pub fn bound_quic_listeners(&self) -> Vec<BoundListener> {
        lock(&self.inner.quic).bound()
    }

    /// Where the HTTP/3 twin of the listener configured on `port` listens (UDP), if any.
    pub fn quic_listener_address(&self, port: u16) -> Option<SocketAddr> {
        self.bound_quic_listeners()
            .into_iter()
            .find(|listener| listener.key.port == port)
            .map(|listener| listener.local_addr)
    }

    pub(crate) fn upstreams(&self) -> &Upstreams {
        &self.inner.proxy.upstreams
    }

    fn placement(&self) -> Placement {
        Placement {
            address: self.inner.options.listener_address,
            ports: self.inner.options.port_map.clone(),
            free_ports: self.inner.options.free_ports,
        }
    }
}

/// Servers this data plane accepts but cannot serve yet are logged when they appear, not on
/// every push.
fn warn_about_unserved(previous: &RuntimeConfig, current: &RuntimeConfig) {
    let known: BTreeSet<(&str, &str)> = previous
        .listeners
        .values()
        .flat_map(|l| l.unsupported.iter().map(|s| (l.name.as_str(), s.as_str())))
        .collect();
    for listener in current.listeners.values() {
        for server in &listener.unsupported {
            if !known.contains(&(listener.name.as_str(), server.as_str())) {
                tracing::warn!(
                    listener = %listener.name,
                    server = %server,
                    "HTTP serving and TLS termination are not built yet; connections that need this server are closed"
                );
            }
        }
    }
}

impl GatewayHandle {
    pub fn gateway(&self) -> Gateway {
        self.gateway.clone()
    }

    pub fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>> {
        self.gateway.apply(config)
    }

    pub fn ready(&self) -> bool {
        self.gateway.is_ready()
    }

    /// Where `/healthz/ready`, `/stats/prometheus` and the admin endpoints really listen.
    pub fn admin_addresses(&self) -> &AdminAddresses {
        &self.admin
    }

    pub fn listener_address(&self, port: u16) -> Option<SocketAddr> {
        self.gateway.listener_address(port)
    }

    pub fn quic_listener_address(&self, port: u16) -> Option<SocketAddr> {
        self.gateway.quic_listener_address(port)
    }

    /// Stops accepting on every listener, lets open connections finish within the drain
    /// timeout, then stops the admin servers and the data-plane runtime.
    pub async fn shutdown(mut self) {
        let drain_timeout = self.gateway.inner.options.drain_timeout;
        let drained = lock(&self.gateway.inner.listeners).shutdown(drain_timeout);
        let quic_drained = lock(&self.gateway.inner.quic).shutdown(drain_timeout);
        futures::future::join(drained, quic_drained).await;
        self.admin_shutdown.cancel();
        // Stopped first: its requests make the spans, and the flush below should see them all.
        drop(self.data_runtime.take());
        if let Some(telemetry) = &self.gateway.inner.proxy.settings.telemetry {
            telemetry.shutdown().await;
        }
        tracing::info!("gateway stopped");
    }
}

impl Drop for GatewayHandle {
    fn drop(&mut self) {
        self.admin_shutdown.cancel();
    }
}
