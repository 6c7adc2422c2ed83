//! Per-cluster sync metrics, on discovery's monitoring port.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use multicluster::model::ClusterId;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClusterLabels {
    cluster: String,
}

/// `isthmus_discovery_cluster_{synced,stale,sync_age_seconds}{cluster}` for every cluster the
/// kube source reads; a removed cluster's series disappear.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetrics {
    synced: Family<ClusterLabels, Gauge>,
    stale: Family<ClusterLabels, Gauge>,
    sync_age: Family<ClusterLabels, Gauge<f64, AtomicU64>>,
}

impl ClusterMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = ClusterMetrics::default();
        registry.register(
            "isthmus_discovery_cluster_synced",
            "1 once every kind of the cluster was listed",
            metrics.synced.clone(),
        );
        registry.register(
            "isthmus_discovery_cluster_stale",
            "1 while the cluster's API server cannot be reached (its last known objects stay in use)",
            metrics.stale.clone(),
        );
        registry.register(
            "isthmus_discovery_cluster_sync_age_seconds",
            "Seconds since the cluster's API server last answered",
            metrics.sync_age.clone(),
        );
        metrics
    }

    pub(super) fn record(&self, cluster: &ClusterId, synced: bool, stale: bool, age: Duration) {
        let labels = ClusterLabels {
            cluster: cluster.to_string(),
        };
        self.synced.get_or_create(&labels).set(i64::from(synced));
        self.stale.get_or_create(&labels).set(i64::from(stale));
        self.sync_age.get_or_create(&labels).set(age.as_secs_f64());
    }

    pub(super) fn forget(&self, cluster: &ClusterId) {
        let labels = ClusterLabels {
            cluster: cluster.to_string(),
        };
        self.synced.remove(&labels);
        self.stale.remove(&labels);
        self.sync_age.remove(&labels);
    }
}
