//! Translations of the latest snapshot, made once per distinct gateway and shared by its replicas.
//!
//! A gateway's configuration depends on the snapshot and on its identity less its name (the
//! replicas of one Deployment share namespace, labels, cluster and network), except for sidecars,
//! whose rejections name them. So each snapshot generation translates and encodes once per such
//! key, however many replicas subscribe, and the first replica to ask does the work while the
//! others wait for it instead of repeating it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use multicluster::proto::{self, GatewayConfig, GatewayIdentity};
use prost::Message as _;
use tokio::sync::watch;

use crate::mesh::MeshSnapshot;
use crate::push::{ConfigSource, PreparedConfig};
use crate::translate::translate;

type Slot = Arc<OnceLock<Arc<PreparedConfig>>>;

/// The [`ConfigSource`] of a running discovery.
pub(crate) struct SnapshotTranslations {
    snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    generations: watch::Receiver<u64>,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    generation: u64,
    /// Keyed by the encoded identity that the configuration depends on.
    slots: HashMap<Vec<u8>, Slot>,
}

impl SnapshotTranslations {
    pub(crate) fn new(
        snapshots: watch::Receiver<Arc<MeshSnapshot>>,
        generations: watch::Receiver<u64>,
    ) -> Self {
        SnapshotTranslations {
            snapshots,
            generations,
            cache: Mutex::new(Cache::default()),
        }
    }

    fn slot(&self, generation: u64, key: Vec<u8>) -> Slot {
        // Only map bookkeeping happens under the lock; a panic cannot leave it inconsistent.
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.generation != generation {
            // A session still working on an older snapshot keeps its own slot alive.
            cache.generation = generation;
            cache.slots.clear();
        }
        Arc::clone(cache.slots.entry(key).or_default())
    }
}

/// What the configuration of `gateway` depends on besides the snapshot, as bytes (prost encodes
/// the BTreeMap labels in order, so equal identities give equal keys).
fn dependency_key(gateway: &GatewayIdentity) -> Vec<u8> {
    let mut key = gateway.clone();
    if key.role != proto::Role::Sidecar as i32 {
        key.name.clear();
    }
    key.encode_to_vec()
}

impl ConfigSource for SnapshotTranslations {
    fn changes(&self) -> watch::Receiver<u64> {
        self.generations.clone()
    }

    fn config_for(&self, gateway: &GatewayIdentity) -> GatewayConfig {
        let snapshot = Arc::clone(&self.snapshots.borrow());
        translate(&snapshot, gateway).config
    }

    fn prepared_for(&self, gateway: &GatewayIdentity) -> Arc<PreparedConfig> {
        let snapshot = Arc::clone(&self.snapshots.borrow());
        let slot = self.slot(snapshot.generation, dependency_key(gateway));
        let prepared = slot.get_or_init(|| {
            let started = std::time::Instant::now();
            let config = translate(&snapshot, gateway).config;
            let translated = std::time::Instant::now();
            let prepared = Arc::new(PreparedConfig::new(config));
            tracing::debug!(
                generation = snapshot.generation,
                gateway = %gateway.name,
                bytes = prepared.encoded().len(),
                translate_ms = (translated - started).as_secs_f64() * 1000.0,
                encode_ms = translated.elapsed().as_secs_f64() * 1000.0,
                "translated and encoded a gateway configuration"
            );
            prepared
        });
        Arc::clone(prepared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str, role: proto::Role) -> GatewayIdentity {
        GatewayIdentity {
            name: name.into(),
            namespace: "istio-system".into(),
            cluster: "cluster1".into(),
            network: "network1".into(),
            labels: [("istio".to_owned(), "eastwestgateway".to_owned())].into(),
            role: role as i32,
        }
    }

    #[test]
    fn replicas_share_a_key_and_sidecars_do_not() {
        let gateway = |name| dependency_key(&identity(name, proto::Role::Gateway));
        let sidecar = |name| dependency_key(&identity(name, proto::Role::Sidecar));
        assert_eq!(gateway("eastwest-a"), gateway("eastwest-b"));
        assert_ne!(sidecar("reviews-a"), sidecar("reviews-b"));
        let mut other_cluster = identity("eastwest-a", proto::Role::Gateway);
        other_cluster.cluster = "cluster2".into();
        assert_ne!(dependency_key(&other_cluster), gateway("eastwest-a"));
    }

    #[test]
    fn replicas_get_one_translation_per_generation() {
        let (snapshot_tx, snapshots) = watch::channel(Arc::new(MeshSnapshot {
            generation: 1,
            ..MeshSnapshot::default()
        }));
        let (_generation_tx, generations) = watch::channel(1);
        let source = SnapshotTranslations::new(snapshots, generations);
        let first = source.prepared_for(&identity("eastwest-a", proto::Role::Gateway));
        let second = source.prepared_for(&identity("eastwest-b", proto::Role::Gateway));
        assert!(
            Arc::ptr_eq(&first, &second),
            "one translation for both replicas"
        );

        snapshot_tx.send_replace(Arc::new(MeshSnapshot {
            generation: 2,
            ..MeshSnapshot::default()
        }));
        let third = source.prepared_for(&identity("eastwest-a", proto::Role::Gateway));
        assert!(
            !Arc::ptr_eq(&first, &third),
            "a new snapshot is translated again"
        );
        assert_eq!(first.encoded(), third.encoded(), "to the same content");
    }
}
