//! The file source: cluster directories → mesh snapshots, again whenever a file changes or a
//! gateway hostname resolves differently.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::index::{ClusterResources, FileChange, IndexInput, build_snapshot};
use crate::mesh::{MeshSnapshot, SyncState};
use crate::mesh_config::{ClusterConfig, ClusterSource, MeshConfig};
use crate::resolve::{GatewayResolver, HostResolver, ResolvedHosts, system_resolver};

use super::directory::{ClusterDirectory, Refresh};
use super::publisher::Publisher;
use super::watch::{BurstTiming, DirectoryWatcher, Signal, collect_burst};
use super::{ExternalClusters, SourceError};

/// Quiet time after the last file event before the mesh is rebuilt, while a file written in the
/// burst may still be open.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);
/// Quiet time that ends a burst once every file written in it was closed or renamed into place:
/// enough to gather the rest of one `cp`, `git checkout` or `kubectl`-style write of many files,
/// which come microseconds apart.
const SETTLED_QUIET: Duration = Duration::from_millis(10);
/// Longest a rebuild waits for a burst of events to end.
const MAX_BURST: Duration = Duration::from_secs(1);
/// Every directory is read again this often, whatever the watcher says: inotify drops events
/// when its queue overflows and forgets a directory that was deleted and re-created.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(30);

/// Reads every cluster once and builds a snapshot, without watching or resolving: for
/// `isthmus validate`-like uses and tests. Gateway hostnames stay unresolved.
pub fn load_once(config: &MeshConfig) -> MeshSnapshot {
    let mut readers: Vec<ClusterReader> = config.clusters.iter().map(ClusterReader::new).collect();
    for reader in &mut readers {
        reader.refresh(Refresh::Full);
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
    resync: Duration,
    external: Option<watch::Receiver<Arc<ExternalClusters>>>,
}

impl FileMesh {
    pub fn new(config: MeshConfig) -> Self {
        Self {
            config,
            resolver: None,
            debounce: DEFAULT_DEBOUNCE,
            resync: DEFAULT_RESYNC,
            external: None,
        }
    }

    /// Takes the clusters another source reads (the kube source) into every snapshot, and
    /// publishes the first one only once that source is ready.
    pub fn with_external(mut self, external: watch::Receiver<Arc<ExternalClusters>>) -> Self {
        self.external = Some(external);
        self
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

    /// How often every directory is read again regardless of events.
    pub fn with_resync(mut self, resync: Duration) -> Self {
        self.resync = resync;
        self
    }

    /// Publishes a first snapshot at once, then one after every change that alters it, until
    /// `shutdown` completes. Generations continue from whatever `out` holds.
    pub async fn run(
        self,
        out: watch::Sender<Arc<MeshSnapshot>>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), SourceError> {
        // Watch before the first read, so a change during that read is not lost.
        let (mut watcher, mut signals, mut unwatched) = watch_clusters(&self.config)?;
        let mut external = self.external.clone();
        tokio::pin!(shutdown);
        if let Some(external) = &mut external {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                ready = external.wait_for(|clusters| clusters.ready) => {
                    if ready.is_err() {
                        return Err(SourceError::ExternalStopped);
                    }
                }
            }
        }
        let mut readers: Vec<ClusterReader> = self
            .config
            .clusters
            .iter()
            .map(ClusterReader::new)
            .collect();
        let all: Vec<usize> = (0..readers.len()).collect();
        (readers, _) = refresh_in_background(readers, &all, Refresh::Full).await?;

        let resolver =
            GatewayResolver::spawn(self.resolver.clone().unwrap_or_else(system_resolver));
        let mut resolved = resolver.resolved();
        let mut publisher = Publisher::new(&self.config, &out, &resolver);
        let mut others = external_now(&mut external);
        let hosts = resolved.borrow_and_update().clone();
        publisher.publish(&readers, &others, &hosts, true);

        // A zero period would make `interval_at` panic.
        let period = self.resync.max(Duration::from_millis(10));
        let mut resync = tokio::time::interval_at(Instant::now() + period, period);
        resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let timing = BurstTiming {
            quiet: self.debounce,
            settled: SETTLED_QUIET.min(self.debounce),
            max_wait: MAX_BURST,
        };
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                changed = external_changed(&mut external) => {
                    if changed.is_err() {
                        return Err(SourceError::ExternalStopped);
                    }
                    others = external_now(&mut external);
                    let hosts = resolved.borrow_and_update().clone();
                    publisher.publish(&readers, &others, &hosts, false);
                }
                signal = signals.recv() => {
                    let Some(signal) = signal else {
                        return Err(SourceError::WatcherStopped);
                    };
                    let signalled = Instant::now();
                    let burst = collect_burst(signal, &mut signals, timing).await;
                    let reading = Instant::now();
                    let dirty: Vec<usize> = if burst.all {
                        all.clone()
                    } else {
                        burst.clusters.into_iter().collect()
                    };
                    let changes;
                    (readers, changes) = refresh_in_background(readers, &dirty, Refresh::Changed).await?;
                    // Where the time of one change goes (ISTHMUS_LOG=discovery=debug shows it).
                    tracing::debug!(
                        burst_ms = millis(reading - signalled),
                        read_ms = millis(reading.elapsed()),
                        "file change read"
                    );
                    // A deleted directory loses its watch; it is watched again once it is back.
                    unwatched.extend(dirty.into_iter().filter(|index| readers[*index].has_failed()));
                    let hosts = resolved.borrow_and_update().clone();
                    publisher.publish_changes(&readers, &others, &hosts, changes);
                    if burst.closed {
                        return Err(SourceError::WatcherStopped);
                    }
                }
                changed = resolved.changed() => {
                    if changed.is_err() {
                        return Err(SourceError::ResolverStopped);
                    }
                    let hosts = resolved.borrow_and_update().clone();
                    publisher.publish(&readers, &others, &hosts, false);
                }
                _ = resync.tick() => {
                    (readers, _) = refresh_in_background(readers, &all, Refresh::Full).await?;
                    unwatched.retain(|index| {
                        readers[*index].has_failed() || watcher.watch(*index).is_err()
                    });
                    let hosts = resolved.borrow_and_update().clone();
                    publisher.publish(&readers, &others, &hosts, false);
                }
            }
        }
    }
}

pub(super) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn external_now(
    external: &mut Option<watch::Receiver<Arc<ExternalClusters>>>,
) -> Arc<ExternalClusters> {
    external
        .as_mut()
        .map(|external| Arc::clone(&external.borrow_and_update()))
        .unwrap_or_default()
}

/// Never completes without another source.
async fn external_changed(
    external: &mut Option<watch::Receiver<Arc<ExternalClusters>>>,
) -> Result<(), watch::error::RecvError> {
    match external {
        Some(external) => external.changed().await,
        None => std::future::pending().await,
    }
}

/// Starts watching every file cluster. A directory that cannot be watched yet is returned
/// in the last set, to be retried at the next resync rather than failing the source.
fn watch_clusters(
    config: &MeshConfig,
) -> Result<
    (
        DirectoryWatcher,
        mpsc::UnboundedReceiver<Signal>,
        BTreeSet<usize>,
    ),
    SourceError,
> {
    let watched = config
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
    let (mut watcher, signals) = DirectoryWatcher::start(watched)?;
    let mut unwatched = BTreeSet::new();
    for index in watcher.indices().collect::<Vec<_>>() {
        if let Err(error) = watcher.watch(index) {
            tracing::warn!(%error, "cluster directory not watched yet, retrying at the next resync");
            unwatched.insert(index);
        }
    }
    Ok((watcher, signals, unwatched))
}

/// Directory reads block, so they run on the blocking pool. Returns the readers and, by
/// reader index, the files whose content changed.
async fn refresh_in_background(
    mut readers: Vec<ClusterReader>,
    dirty: &[usize],
    mode: Refresh,
) -> Result<(Vec<ClusterReader>, Vec<(usize, Vec<FileChange>)>), SourceError> {
    let dirty = dirty.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut changes = Vec::new();
        for index in dirty {
            if let Some(reader) = readers.get_mut(index) {
                changes.push((index, reader.refresh(mode)));
            }
        }
        (readers, changes)
    })
    .await
    .map_err(|error| SourceError::ReadTask {
        message: error.to_string(),
    })
}

/// How one configured cluster is read.
pub(super) enum ClusterReader {
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
                    "read by the kubernetes source, which is not running here".to_string(),
                ),
            }),
        }
    }

    pub(super) fn sync(&self) -> &SyncState {
        match self {
            ClusterReader::Files(directory) => directory.sync(),
            ClusterReader::Unsupported(resources) => &resources.sync,
        }
    }

    fn has_failed(&self) -> bool {
        match self {
            ClusterReader::Files(directory) => matches!(directory.sync(), SyncState::Failed(_)),
            ClusterReader::Unsupported(_) => false,
        }
    }

    fn refresh(&mut self, mode: Refresh) -> Vec<FileChange> {
        match self {
            ClusterReader::Files(directory) => directory.refresh(mode),
            ClusterReader::Unsupported(_) => Vec::new(),
        }
    }

    pub(super) fn resources(&self) -> ClusterResources {
        match self {
            ClusterReader::Files(directory) => directory.resources(),
            ClusterReader::Unsupported(resources) => resources.clone(),
        }
    }
}
