//! A running discovery: the file source feeding snapshots, translation per gateway, the gRPC
//! push server and the monitoring endpoint, started together and stopped together.
//!
//! The CLI and the end-to-end tests start discovery the same way, so what the tests prove is
//! what `isthmus discovery` runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::registry::Registry;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::ca::{CertificateAuthorities, CertificateService, DiscoveryTls};
use crate::mesh::MeshSnapshot;
use crate::mesh_config::MeshConfig;
use crate::monitor::{self, Monitor};
use crate::push::{ConfigSource, Debounce, PushMetrics, PushServer};
use crate::source::FileMesh;
use crate::source::kube::{ClusterMetrics, KubeOptions, KubeSource};
use crate::translations::SnapshotTranslations;

#[derive(Debug, Error)]
pub enum AppError {
    #[error(
        "cannot bind the discovery {what} address {addr}: {source}; is another discovery running there?"
    )]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("discovery cannot set up certificate signing: {0}")]
    Ca(#[from] crate::ca::CaError),
    #[error("discovery cannot start the Kubernetes source: {0}")]
    Kube(#[from] crate::source::kube::KubeError),
}

/// Quiet time after the last file event before the mesh is read again while a written file may
/// still be open: it covers multi-step writes. Once every written file was closed or renamed
/// into place (what kubectl, editors and config management end with) the burst ends after a
/// 10 ms quiet instead (`source/files.rs`), leaving most of the ~100 ms change budget for the work.
const SOURCE_DEBOUNCE: Duration = Duration::from_millis(50);

/// Where discovery listens. Port 0 picks a free port (tests).
#[derive(Debug, Clone)]
pub struct DiscoveryOptions {
    pub mesh: MeshConfig,
    /// Gateways subscribe here (Istio's 15012).
    pub grpc_address: SocketAddr,
    /// `/healthz/ready`, `/stats/prometheus`, `/debug/gateways` (istiod's monitoring port 15014).
    pub monitor_address: SocketAddr,
    /// How long the file source waits for a burst of file events to end: the one debounce
    /// between a file change and the push.
    pub source_debounce: Duration,
    /// How long the push server waits after a new snapshot. None by default: snapshots are
    /// already debounced by the source, and a second wait in series only adds latency.
    pub push_debounce: Debounce,
    /// Timings of the Kubernetes source (used when the mesh has Kubernetes clusters).
    pub kube: KubeOptions,
}

impl DiscoveryOptions {
    pub fn new(mesh: MeshConfig) -> Self {
        DiscoveryOptions {
            grpc_address: SocketAddr::from(([0, 0, 0, 0], 15012)),
            monitor_address: SocketAddr::from(([0, 0, 0, 0], 15014)),
            source_debounce: SOURCE_DEBOUNCE,
            push_debounce: Debounce::new(Duration::ZERO, Duration::ZERO),
            kube: KubeOptions::new(mesh.remote_cluster_timeout),
            mesh,
        }
    }

    /// Loopback, free ports: for tests and the demo.
    pub fn ephemeral(mesh: MeshConfig) -> Self {
        DiscoveryOptions {
            grpc_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            monitor_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..DiscoveryOptions::new(mesh)
        }
    }
}

/// A started discovery. Dropping it without [`Discovery::shutdown`] leaves its tasks running
/// until the runtime stops.
pub struct Discovery {
    grpc_address: SocketAddr,
    monitor_address: SocketAddr,
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    tls: Option<DiscoveryTls>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Discovery {
    /// Binds both ports, then starts the source, the push server and the monitor.
    pub async fn start(options: DiscoveryOptions) -> Result<Discovery, AppError> {
        // Before binding: a CA that does not load should stop discovery, not leave it plaintext.
        let authorities = CertificateAuthorities::load(&options.mesh)?;
        let tls = match &authorities {
            Some(authorities) => Some(
                authorities
                    .discovery_tls(&options.mesh.trust_domain, &options.mesh.system_namespace)?,
            ),
            None => None,
        };
        let grpc = bind("gRPC", options.grpc_address).await?;
        let monitor_listener = bind("monitoring", options.monitor_address).await?;
        let grpc_address = grpc.local_addr().unwrap_or(options.grpc_address);
        let monitor_address = monitor_listener
            .local_addr()
            .unwrap_or(options.monitor_address);

        let (stop, stopped) = watch::channel(false);
        let (snapshot_tx, snapshots) = watch::channel(Arc::new(MeshSnapshot::default()));
        let (generation_tx, generations) = watch::channel(0u64);
        let ready = Arc::new(AtomicBool::new(false));
        let mut registry = Registry::default();
        let metrics = Arc::new(PushMetrics::new(&mut registry));
        let mut tasks = Vec::new();

        let mut source = FileMesh::new(options.mesh.clone()).with_debounce(options.source_debounce);
        // Kubernetes clusters are watched by the kube source; the file source builds the
        // snapshots of both, so the same objects give the same snapshot from either.
        let kube = if options.mesh.has_kubernetes() {
            let kube = KubeSource::new(options.mesh)
                .with_options(options.kube)
                .with_metrics(ClusterMetrics::new(&mut registry))
                .start()
                .await?;
            source = source.with_external(kube.clusters());
            Some(kube)
        } else {
            None
        };
        let shutdown = until_stopped(stopped.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(error) = source.run(snapshot_tx, shutdown).await {
                warn!(%error, "the mesh source stopped; gateways keep their last configuration");
            }
            // Stops the Kubernetes watchers with the source that reads them.
            drop(kube);
        }));

        tasks.push(tokio::spawn(follow_snapshots(
            snapshots.clone(),
            generation_tx,
            Arc::clone(&ready),
            Arc::clone(&metrics),
            until_stopped(stopped.clone()),
        )));

        let config_source: Arc<dyn ConfigSource> =
            Arc::new(SnapshotTranslations::new(snapshots.clone(), generations));
        let mut server = PushServer::new(config_source, Arc::clone(&metrics))
            .with_debounce(options.push_debounce);
        // With a CA the port is mesh mTLS and also signs CSRs; without one it stays plaintext
        // and signs nothing, since no caller could prove an identity.
        if let (Some(authorities), Some(tls)) = (authorities, &tls) {
            server = server
                .with_tls(tls.server.clone())
                .with_routes(tonic::service::Routes::new(
                    CertificateService::new(authorities).into_server(),
                ));
        }
        let shutdown = until_stopped(stopped.clone());
        let mut first_snapshot = snapshots.clone();
        tasks.push(tokio::spawn(async move {
            // A gateway served before the mesh is read would be handed an empty configuration
            // and drop every listener it has. The socket is bound, so the kernel queues early
            // connections until then.
            tokio::pin!(shutdown);
            tokio::select! {
                () = &mut shutdown => return,
                read = first_snapshot.wait_for(|snapshot| snapshot.generation > 0) => {
                    if read.is_err() {
                        warn!("the file source stopped before reading the mesh; not serving gateways");
                        return;
                    }
                }
            }
            if let Err(error) = server.serve_with_listener(grpc, shutdown).await {
                warn!(%error, "discovery gRPC server stopped");
            }
        }));

        let monitor = Monitor::new(ready, Arc::new(registry), metrics.gateways().clone());
        tasks.push(tokio::spawn(monitor::serve_with_listener(
            monitor_listener,
            monitor,
            until_stopped(stopped),
        )));
        info!(%grpc_address, %monitor_address, mtls = tls.is_some(), "discovery started");
        Ok(Discovery {
            grpc_address,
            monitor_address,
            snapshots,
            tls,
            stop,
            tasks,
        })
    }

    pub fn grpc_address(&self) -> SocketAddr {
        self.grpc_address
    }

    /// `http://<grpc address>`, what a gateway's discovery client dials.
    pub fn grpc_uri(&self) -> String {
        format!("http://{}", self.grpc_address)
    }

    /// Discovery's mTLS settings and certificate, when the mesh description gives it a CA.
    pub fn tls(&self) -> Option<&DiscoveryTls> {
        self.tls.as_ref()
    }

    pub fn monitor_address(&self) -> SocketAddr {
        self.monitor_address
    }

    /// The snapshot translation currently works from.
    pub fn snapshot(&self) -> Arc<MeshSnapshot> {
        Arc::clone(&self.snapshots.borrow())
    }

    /// Waits until a snapshot of at least `generation` is published.
    pub async fn wait_for_generation(&self, generation: u64) -> Arc<MeshSnapshot> {
        let mut snapshots = self.snapshots.clone();
        // The sender lives as long as the source task; if it is gone, the latest value is final.
        let _ = snapshots.wait_for(|s| s.generation >= generation).await;
        Arc::clone(&snapshots.borrow())
    }

    /// Stops every part and waits for them: gateways see their streams end and keep serving.
    pub async fn shutdown(self) {
        // Receivers may all be gone already; then everything has stopped anyway.
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| AppError::Bind { what, addr, source })
}

async fn until_stopped(mut stopped: watch::Receiver<bool>) {
    // An error means the sender is gone, which is a stop too.
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// Turns each new snapshot into a generation tick for the push server, keeps readiness and
/// the rejected-resources gauge current, and logs what the snapshot refused.
async fn follow_snapshots(
    mut snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    generations: watch::Sender<u64>,
    ready: Arc<AtomicBool>,
    metrics: Arc<PushMetrics>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            changed = snapshots.changed() => if changed.is_err() { return },
        }
        let snapshot = Arc::clone(&snapshots.borrow_and_update());
        let errors = snapshot.errors().count();
        metrics.set_rejected_resources(errors);
        for rejection in snapshot.rejections.iter() {
            warn!(%rejection, "resource not applied as written");
        }
        info!(
            generation = snapshot.generation,
            services = snapshot.services.len(),
            gateways = snapshot.network_gateways.len(),
            rejected = errors,
            "mesh snapshot updated"
        );
        ready.store(true, Ordering::Release);
        generations.send_replace(snapshot.generation);
    }
}
