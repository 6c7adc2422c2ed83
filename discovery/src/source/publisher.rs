//! Builds snapshots from what the sources read and publishes the ones that differ.
//!
//! A full build also leaves an [`EndpointIndex`]; a file change that only moved endpoints is
//! then applied to the last snapshot through it instead of rebuilding the mesh, as long as
//! nothing else the build read (resolved gateway hostnames, the other source's clusters) moved
//! since.

use std::sync::Arc;
use std::time::Instant;

use multicluster::model::ClusterId;
use tokio::sync::watch;

use crate::index::{
    ClusterResources, EndpointIndex, FileChange, IndexInput, NeedsFullBuild, build_indexed,
};
use crate::mesh::MeshSnapshot;
use crate::mesh_config::MeshConfig;
use crate::resolve::{GatewayResolver, ResolvedHosts};

use super::ExternalClusters;
use super::files::{ClusterReader, millis};

pub(super) struct Publisher<'a> {
    config: &'a MeshConfig,
    out: &'a watch::Sender<Arc<MeshSnapshot>>,
    resolver: &'a GatewayResolver,
    last: Option<LastBuild>,
}

/// Why a file change goes through the full build.
#[derive(Debug, thiserror::Error)]
enum Fallback {
    #[error("no index from an earlier build")]
    NoIndex,
    #[error("resolved gateway hostnames changed")]
    Resolved,
    #[error("the other source's clusters changed")]
    External,
    #[error("reader {0} is no configured cluster")]
    UnknownReader(usize),
    #[error("cluster {0} is read by the other source")]
    Hidden(ClusterId),
    #[error("cluster {0}'s sync state changed")]
    Sync(ClusterId),
    #[error(transparent)]
    Index(#[from] NeedsFullBuild),
}

/// The latest snapshot this publisher made, with what it was made from.
struct LastBuild {
    snapshot: Arc<MeshSnapshot>,
    index: EndpointIndex,
    resolved: Arc<ResolvedHosts>,
    external: Arc<ExternalClusters>,
}

impl<'a> Publisher<'a> {
    pub(super) fn new(
        config: &'a MeshConfig,
        out: &'a watch::Sender<Arc<MeshSnapshot>>,
        resolver: &'a GatewayResolver,
    ) -> Self {
        Publisher {
            config,
            out,
            resolver,
            last: None,
        }
    }

    /// Publishes after files changed: incrementally when every change is endpoint-only, else
    /// through a full build.
    pub(super) fn publish_changes(
        &mut self,
        readers: &[ClusterReader],
        external: &Arc<ExternalClusters>,
        resolved: &Arc<ResolvedHosts>,
        changes: Vec<(usize, Vec<FileChange>)>,
    ) {
        let indexing = Instant::now();
        let files: usize = changes.iter().map(|(_, files)| files.len()).sum();
        match self.follow(readers, external, resolved, &changes) {
            Ok((snapshot, services_changed)) => {
                let index_ms = millis(indexing.elapsed());
                // Where the time of one change goes (BENCH_LOG=discovery=debug shows it).
                tracing::debug!(
                    incremental = true,
                    files,
                    services_changed,
                    index_ms,
                    "mesh indexed"
                );
                self.finish(snapshot, index_ms, true, false);
            }
            Err(reason) => {
                tracing::debug!(
                    %reason,
                    files,
                    tried_ms = millis(indexing.elapsed()),
                    "endpoint index cannot follow the change, building in full"
                );
                self.publish(readers, external, resolved, false);
            }
        }
    }

    /// The last snapshot with `changes` applied, and how many service records changed.
    fn follow(
        &mut self,
        readers: &[ClusterReader],
        external: &Arc<ExternalClusters>,
        resolved: &Arc<ResolvedHosts>,
        changes: &[(usize, Vec<FileChange>)],
    ) -> Result<(MeshSnapshot, usize), Fallback> {
        // Taken, not borrowed: on any failure it may be half updated, and the full build that
        // follows leaves a new one.
        let mut last = self.last.take().ok_or(Fallback::NoIndex)?;
        if !Arc::ptr_eq(&last.resolved, resolved) && *last.resolved != **resolved {
            return Err(Fallback::Resolved);
        }
        if !Arc::ptr_eq(&last.external, external) {
            return Err(Fallback::External);
        }
        let mut snapshot: Option<MeshSnapshot> = None;
        let mut services_changed = 0;
        for (reader, files) in changes {
            let cluster = &self
                .config
                .clusters
                .get(*reader)
                .ok_or(Fallback::UnknownReader(*reader))?
                .id;
            // The other source's entry for an id hides this reader's (see `publish`).
            if external
                .clusters
                .iter()
                .any(|read| &read.cluster == cluster)
            {
                return Err(Fallback::Hidden(cluster.clone()));
            }
            let current = snapshot.as_ref().unwrap_or(&last.snapshot);
            let sync = readers.get(*reader).map(ClusterReader::sync);
            if current.cluster(cluster.as_str()).map(|info| &info.sync) != sync {
                return Err(Fallback::Sync(cluster.clone()));
            }
            if files.is_empty() {
                continue;
            }
            let applied = last.index.apply(current, cluster, files)?;
            services_changed += applied.changed.len();
            snapshot = Some(applied.snapshot);
        }
        let snapshot = snapshot.unwrap_or_else(|| (*last.snapshot).clone());
        self.last = Some(last);
        Ok((snapshot, services_changed))
    }

    /// Builds a snapshot in full and publishes it if it differs from the current one (or
    /// `always`).
    pub(super) fn publish(
        &mut self,
        readers: &[ClusterReader],
        external: &Arc<ExternalClusters>,
        resolved: &Arc<ResolvedHosts>,
        always: bool,
    ) {
        // A full build needs no index, and keeping the old one alive while the new one is
        // built would hold two at the peak.
        self.last = None;
        // The index takes the first entry of each id: the other source's go first, so they
        // replace the placeholders of the clusters this source does not read.
        let mut clusters: Vec<ClusterResources> = external.clusters.clone();
        clusters.extend(readers.iter().map(ClusterReader::resources));
        let with_added;
        let config = if external.added.is_empty() {
            self.config
        } else {
            let mut config = self.config.clone();
            config.clusters.extend(external.added.iter().cloned());
            with_added = config;
            &with_added
        };
        let indexing = Instant::now();
        let (snapshot, index) = build_indexed(IndexInput {
            config,
            clusters: &clusters,
            resolved,
            generation: self.out.borrow().generation,
        });
        self.resolver.set_hostnames(
            snapshot
                .gateway_hostnames
                .iter()
                .map(|gateway| gateway.hostname.clone())
                .collect(),
        );
        self.last = Some(LastBuild {
            snapshot: Arc::new(MeshSnapshot::default()),
            index,
            resolved: Arc::clone(resolved),
            external: Arc::clone(external),
        });
        let index_ms = millis(indexing.elapsed());
        tracing::debug!(incremental = false, index_ms, "mesh indexed");
        self.finish(snapshot, index_ms, false, always);
    }

    /// Publishes `snapshot` unless it equals the current one (and not `always`), and keeps it as
    /// the base of the next incremental change.
    fn finish(
        &mut self,
        mut snapshot: MeshSnapshot,
        index_ms: f64,
        incremental: bool,
        always: bool,
    ) {
        let current = self.out.borrow().generation;
        snapshot.generation = current;
        let comparing = std::time::Instant::now();
        if !incremental {
            keep_published_records(&mut snapshot, &self.out.borrow());
        }
        let unchanged = !always && **self.out.borrow() == snapshot;
        let compare_ms = millis(comparing.elapsed());
        if unchanged {
            tracing::debug!(
                generation = current,
                incremental,
                index_ms,
                compare_ms,
                "mesh unchanged, nothing published"
            );
            if let Some(last) = &mut self.last {
                last.snapshot = Arc::clone(&self.out.borrow());
            }
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
            incremental,
            index_ms,
            compare_ms,
            "mesh snapshot published"
        );
        let snapshot = Arc::new(snapshot);
        if let Some(last) = &mut self.last {
            last.snapshot = Arc::clone(&snapshot);
        }
        self.out.send_replace(snapshot);
    }
}

/// A full build makes a new record for every service. Those equal to a published record are
/// swapped for the published `Arc`: translations recognise the same `Arc` and reuse what they
/// built for it, so a change that needs a full build (a Service added) still re-translates
/// only what changed, and the old and new snapshots share their records instead of holding
/// two copies.
fn keep_published_records(snapshot: &mut MeshSnapshot, published: &MeshSnapshot) {
    for (hostname, record) in &mut snapshot.services {
        if let Some(old) = published.services.get(hostname)
            && !Arc::ptr_eq(old, record)
            && **old == **record
        {
            *record = Arc::clone(old);
        }
    }
}
