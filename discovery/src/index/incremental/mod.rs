//! Endpoint-only file changes without rebuilding the mesh.
//!
//! Most changes in a running mesh are pods coming and going: a file's EndpointSlices and Pods
//! change while its Services and everything else stay as they were. Rebuilding the whole
//! snapshot for that costs time in proportion to the mesh, so a full build can also leave an
//! [`EndpointIndex`]: per cluster, the Service ports, slices by service, and pods by name and
//! address. [`EndpointIndex::apply`] then recomputes only the affected services' share of one
//! cluster's endpoints; every other record stays the same `Arc`.
//!
//! The result must equal what the full build gives, rejections included. So a change is only
//! taken here when nothing but endpoints can differ: the Pods and EndpointSlices it touches
//! have no problem before or after (no missing name, no second definition, no address claimed
//! by two pods, no slice warning), and every other resource of the file is equal, origin and
//! all. Anything else is a [`NeedsFullBuild`], after which the caller rebuilds in full and
//! takes the new index (this one may be half updated). `tests/index_incremental.rs` checks
//! both paths give equal snapshots.

mod cluster;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use multicluster::model::{ClusterId, ServiceName, ServicePort};

use crate::mesh::{MeshSnapshot, ServiceOrigin, ServiceRecord};
use crate::resource::{Decoded, Resource};

use super::cluster::{ClusterView, ObjectKey};
use super::services::sort_endpoints;
use cluster::ClusterEndpoints;

/// One file whose content changed between two reads of a cluster directory.
#[derive(Debug, Clone, PartialEq)]
pub struct FileChange {
    pub path: PathBuf,
    /// Its resources before and after, in file order; empty for a new or a deleted file.
    pub before: Vec<Decoded>,
    pub after: Vec<Decoded>,
    /// Whether the file's own problems (unreadable, not YAML, undecodable documents) changed.
    pub problems_changed: bool,
}

/// Why a change needs the full build: the first thing found that the index cannot follow
/// exactly. Not an error for the operator; it is logged at debug level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NeedsFullBuild {
    #[error("cluster {0} is not in the index")]
    UnknownCluster(ClusterId),
    #[error("cluster {0}'s slices were not in file order")]
    Unordered(ClusterId),
    #[error("the problems of file {0} changed")]
    FileProblems(PathBuf),
    #[error("a resource other than a Pod or EndpointSlice changed in file {0}")]
    OtherKinds(PathBuf),
    #[error("{kind} at {origin} has no name, or its name is defined twice")]
    Definition { kind: &'static str, origin: String },
    #[error("address {0} is claimed by more than one pod")]
    SharedAddress(IpAddr),
    #[error("EndpointSlice at {0} has a problem only the full build reports")]
    SliceProblem(String),
    #[error("{0} gets endpoints but has no Kubernetes service record")]
    NoRecord(String),
}

/// What an endpoint-only change made.
#[derive(Debug)]
pub struct Applied {
    pub snapshot: MeshSnapshot,
    /// Hostnames whose record was replaced; every other record is the previous `Arc`.
    pub changed: Vec<String>,
}

/// What the full build knew about every cluster's endpoints, kept to answer the next change.
#[derive(Debug, Default)]
pub struct EndpointIndex {
    clusters: Vec<ClusterEndpoints>,
    /// Every configured cluster, in the order endpoints are sorted by.
    cluster_order: Vec<ClusterId>,
    domain_suffix: String,
}

impl EndpointIndex {
    pub(crate) fn new(cluster_order: Vec<ClusterId>, domain_suffix: String) -> Self {
        EndpointIndex {
            clusters: Vec::new(),
            cluster_order,
            domain_suffix,
        }
    }

    /// Records one cluster as the full build saw it.
    pub(crate) fn add_cluster(
        &mut self,
        view: &ClusterView<'_>,
        resources: &[Decoded],
        ports: &BTreeMap<ObjectKey, Vec<ServicePort>>,
    ) {
        self.clusters
            .push(ClusterEndpoints::new(view, resources, ports));
    }

    /// `previous` (the snapshot this index was built or last updated with) after `changes` to
    /// cluster `id`.
    pub fn apply(
        &mut self,
        previous: &MeshSnapshot,
        id: &ClusterId,
        changes: &[FileChange],
    ) -> Result<Applied, NeedsFullBuild> {
        let cluster = self
            .clusters
            .iter_mut()
            .find(|cluster| &cluster.id == id)
            .ok_or_else(|| NeedsFullBuild::UnknownCluster(id.clone()))?;
        for change in changes {
            if change.problems_changed {
                return Err(NeedsFullBuild::FileProblems(change.path.clone()));
            }
            if !same_other_resources(change) {
                return Err(NeedsFullBuild::OtherKinds(change.path.clone()));
            }
        }
        let affected = cluster.update(changes, &self.domain_suffix)?;

        let mut snapshot = previous.clone();
        let mut changed = Vec::new();
        for service in affected {
            let hostname = ServiceName::new(&service.0, &service.1).hostname(&self.domain_suffix);
            let share = cluster.endpoints_of(&service, &self.domain_suffix);
            let Some(record) = snapshot.services.get_mut(&hostname) else {
                // A slice of a Service this cluster does not declare: the full build warned
                // about it (and so would have failed the problem check) unless it has none.
                if share.is_empty() {
                    continue;
                }
                return Err(NeedsFullBuild::NoRecord(hostname));
            };
            if record.origin != ServiceOrigin::Kubernetes {
                return Err(NeedsFullBuild::NoRecord(hostname));
            }
            // Endpoints of different clusters never merge, so the record is the other
            // clusters' endpoints as they were plus this cluster's share, sorted as the full
            // build sorts them.
            let mut endpoints: Vec<_> = record
                .endpoints
                .iter()
                .filter(|endpoint| &endpoint.cluster != id)
                .cloned()
                .chain(share)
                .collect();
            sort_endpoints(&mut endpoints, &self.cluster_order);
            if endpoints != record.endpoints {
                *record = Arc::new(ServiceRecord {
                    service: record.service.clone(),
                    endpoints,
                    origin: record.origin.clone(),
                });
                changed.push(hostname);
            }
        }
        if let Some(info) = snapshot.clusters.iter_mut().find(|info| &info.id == id) {
            count_kinds(&mut info.resources, changes);
        }
        Ok(Applied { snapshot, changed })
    }
}

/// Follows the full build's per-kind resource counts through `changes`.
fn count_kinds(counts: &mut BTreeMap<String, usize>, changes: &[FileChange]) {
    for change in changes {
        for decoded in &change.before {
            if let Some(count) = counts.get_mut(decoded.kind()) {
                *count = count.saturating_sub(1);
            }
        }
        for decoded in &change.after {
            *counts.entry(decoded.kind().to_string()).or_default() += 1;
        }
    }
    // The full build only counts kinds it saw.
    counts.retain(|_, count| *count > 0);
}

/// Whether everything but Pods and EndpointSlices is as it was, origins included: a moved
/// Service would move the origin its problems are reported at.
fn same_other_resources(change: &FileChange) -> bool {
    fn others(resources: &[Decoded]) -> impl Iterator<Item = &Decoded> {
        resources
            .iter()
            .filter(|decoded| !is_endpoint_kind(decoded))
    }
    others(&change.before).eq(others(&change.after))
}

fn is_endpoint_kind(decoded: &Decoded) -> bool {
    matches!(
        decoded.resource,
        Resource::Pod(_) | Resource::EndpointSlice(_)
    )
}

/// Services in the order they are recomputed; sorted so a failure is found deterministically.
type Affected = BTreeSet<ObjectKey>;
