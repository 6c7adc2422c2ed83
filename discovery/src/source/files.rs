//! The file source: cluster directories → mesh snapshots, again whenever a file changes or a
//! gateway hostname resolves differently.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::index::{ClusterResources, IndexInput, build_snapshot};
use crate::mesh::{MeshSnapshot, SyncState};
use crate::mesh_config::{ClusterConfig, ClusterSource, MeshConfig};
use crate::resolve::{GatewayResolver, HostResolver, ResolvedHosts, system_resolver};

use super::SourceError;
use super::directory::ClusterDirectory;
use super::watch::{collect_burst, watch_directories};

/// Quiet time after the last file event before the mesh is rebuilt.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);
/// Longest a rebuild waits for a burst of events to end.
const MAX_BURST: Duration = Duration::from_secs(1);

/// Reads every cluster once and builds a snapshot, without watching or resolving: for
/// `isthmus validate`-like uses and tests. Gateway hostnames stay unresolved.
pub fn load_once(config: &MeshConfig) -> MeshSnapshot {
    let mut readers: Vec<ClusterReader> = config.clusters.iter().map(ClusterReader::new).collect();
    for reader in &mut readers {
        reader.refresh();
    }
    let clusters: Vec<ClusterResources> = readers.iter().map(ClusterReader::resources).collect();
    build_snapshot(IndexInput {
        config,
        clusters: &clusters,
        resolved: &ResolvedHosts::new(),
        generation: 1,
    })
}

/// Runs the file source with the system DNS resolver until `shutdown` completes.
pub async fn run_file_mesh(
    config: MeshConfig,
    out: watch::Sender<Arc<MeshSnapshot>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SourceError> {
    FileMesh::new(config).run(out, shutdown).await
}

/// The file source, with its knobs.
pub struct FileMesh {
    config: MeshConfig,
    resolver: Option<Arc<dyn HostResolver>>,
    debounce: Duration,
}

impl FileMesh {
    pub fn new(config: MeshConfig) -> Self {
        Self {
            config,
            resolver: None,
            debounce: DEFAULT_DEBOUNCE,
        }
    }

    /// Resolves gateway hostnames with `resolver` instead of the system's DNS.
    pub fn with_resolver(mut self, resolver: Arc<dyn HostResolver>) -> Self {
        self.resolver = Some(resolver);
        self
    }

    pub fn with_debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// Publishes a first snapshot at once, then one after every change that alters it, until
    /// `shutdown` completes. Generations continue from whatever `out` holds.
    pub async fn run(
        self,
        out: watch::Sender<Arc<MeshSnapshot>>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), SourceError> {
        let watched: Vec<_> = self
            .config
            .clusters
            .iter()
            .enumerate()
            .filter_map(|(index, cluster)| match &cluster.source {
                ClusterSource::Files { directory } => {
                    Some((index, cluster.id.to_string(), directory.clone()))
                }
                ClusterSource::Kubernetes { .. } => None,
            })
            .collect();
        // Watch before the first read, so a change during that read is not lost.
        let (_watcher, mut signals) = watch_directories(&watched)?;
        let mut readers: Vec<ClusterReader> = self
            .config
            .clusters
            .iter()
            .map(ClusterReader::new)
            .collect();
        let all: Vec<usize> = (0..readers.len()).collect();
        readers = refresh_in_background(readers, &all).await?;

        let resolver =
            GatewayResolver::spawn(self.resolver.clone().unwrap_or_else(system_resolver));
        let mut resolved = resolver.resolved();
        let publisher = Publisher {
            config: &self.config,
            out: &out,
            resolver: &resolver,
        };
        let hosts = resolved.borrow_and_update().clone();
        publisher.publish(&readers, &hosts, true);

        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                signal = signals.recv() => {
                    let Some(signal) = signal else {
                        return Err(SourceError::WatcherStopped);
                    };
                    let burst = collect_burst(signal, &mut signals, self.debounce, MAX_BURST).await;
                    let dirty: Vec<usize> = if burst.all {
                        all.clone()
                    } else {
                        burst.clusters.into_iter().collect()
                    };
                    readers = refresh_in_background(readers, &dirty).await?;
                    let hosts = resolved.borrow_and_update().clone();
                    publisher.publish(&readers, &hosts, false);
                    if burst.closed {
                        return Err(SourceError::WatcherStopped);
                    }
                }
                changed = resolved.changed() => {
                    if changed.is_err() {
                        return Err(SourceError::ResolverStopped);
                    }
                    let hosts = resolved.borrow_and_update().clone();
                    publisher.publish(&readers, &hosts, false);
                }
            }
        }
    }
}

/// Directory reads block, so they run on the blocking pool.
async fn refresh_in_background(
    mut readers: Vec<ClusterReader>,
    dirty: &[usize],
) -> Result<Vec<ClusterReader>, SourceError> {
    let dirty = dirty.to_vec();
    tokio::task::spawn_blocking(move || {
        for index in dirty {
            if let Some(reader) = readers.get_mut(index) {
                reader.refresh();
            }
        }
        readers
    })
    .await
    .map_err(|error| SourceError::ReadTask {
        message: error.to_string(),
    })
}

struct Publisher<'a> {
    config: &'a MeshConfig,
    out: &'a watch::Sender<Arc<MeshSnapshot>>,
    resolver: &'a GatewayResolver,
}

impl Publisher<'_> {
    /// Builds a snapshot and publishes it if it differs from the current one (or `always`).
    fn publish(&self, readers: &[ClusterReader], resolved: &ResolvedHosts, always: bool) {
        let clusters: Vec<ClusterResources> =
            readers.iter().map(ClusterReader::resources).collect();
        let current = self.out.borrow().generation;
        let mut snapshot = build_snapshot(IndexInput {
            config: self.config,
            clusters: &clusters,
            resolved,
            generation: current,
        });
        self.resolver.set_hostnames(
            snapshot
                .gateway_hostnames
                .iter()
                .map(|gateway| gateway.hostname.clone())
                .collect(),
        );
        if !always && **self.out.borrow() == snapshot {
            tracing::debug!(generation = current, "mesh unchanged, nothing published");
            return;
        }
        snapshot.generation = current + 1;
        tracing::info!(
            generation = snapshot.generation,
            clusters = snapshot.clusters.len(),
            services = snapshot.services.len(),
            network_gateways = snapshot.network_gateways.len(),
            errors = snapshot.errors().count(),
            warnings = snapshot.warnings().count(),
            "mesh snapshot published"
        );
        self.out.send_replace(Arc::new(snapshot));
    }
}

/// How one configured cluster is read.
enum ClusterReader {
    Files(ClusterDirectory),
    Unsupported(ClusterResources),
}

impl ClusterReader {
    fn new(cluster: &ClusterConfig) -> Self {
        match &cluster.source {
            ClusterSource::Files { directory } => {
                ClusterReader::Files(ClusterDirectory::new(cluster.id.clone(), directory.clone()))
            }
            ClusterSource::Kubernetes { .. } => ClusterReader::Unsupported(ClusterResources {
                cluster: cluster.id.clone(),
                resources: Vec::new(),
                problems: Vec::new(),
                sync: SyncState::Failed(
                    "the kubernetes source is not supported yet: use a files directory".to_string(),
                ),
            }),
        }
    }

    fn refresh(&mut self) {
        if let ClusterReader::Files(directory) = self {
            directory.refresh();
        }
    }

    fn resources(&self) -> ClusterResources {
        match self {
            ClusterReader::Files(directory) => directory.resources(),
            ClusterReader::Unsupported(resources) => resources.clone(),
        }
    }
}
