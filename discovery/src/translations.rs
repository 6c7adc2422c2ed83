//! Translations of the latest snapshot, made once per distinct gateway and shared by its replicas.
//!
//! A gateway's configuration depends on the snapshot and on its identity less its name (the
//! replicas of one Deployment share namespace, labels, cluster and network), except for sidecars,
//! whose rejections name them. So each snapshot generation translates and encodes once per such
//! key, however many replicas subscribe, and the first replica to ask does the work while the
//! others wait for it instead of repeating it.
//!
//! Each such key also keeps what its last translation left ([`ClusterMemo`]): the next
//! generation takes the clusters of unchanged services from it as encoded bytes, so a change to
//! one service's endpoints costs about one service's work, not the mesh's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use multicluster::proto::{self, GatewayConfig, GatewayIdentity};
use prost::Message as _;
use tokio::sync::watch;

use crate::mesh::MeshSnapshot;
use crate::push::{ConfigSource, PreparedConfig};
use crate::translate::{ClusterMemo, translate, translate_reusing};

type Slot = Arc<OnceLock<Arc<PreparedConfig>>>;

/// Generations a memo survives without being used: a gateway that skipped a few (it was slow
/// to ACK) still finds it, one that left does not pin its clusters for long.
const MEMO_GENERATIONS: u64 = 8;

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
    /// Same keys: the last translation's memo and the generation it was made for.
    memos: HashMap<Vec<u8>, (u64, Arc<ClusterMemo>)>,
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

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // Only map bookkeeping happens under the lock; a panic cannot leave it inconsistent.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&self, generation: u64, key: &[u8]) -> Slot {
        let mut cache = self.cache();
        if cache.generation != generation {
            // A session still working on an older snapshot keeps its own slot alive.
            cache.generation = generation;
            cache.slots.clear();
        }
        Arc::clone(cache.slots.entry(key.to_vec()).or_default())
    }

    fn memo(&self, key: &[u8]) -> Arc<ClusterMemo> {
        self.cache()
            .memos
            .get(key)
            .map(|(_, memo)| Arc::clone(memo))
            .unwrap_or_default()
    }

    fn keep_memo(&self, generation: u64, key: Vec<u8>, memo: ClusterMemo) {
        let mut cache = self.cache();
        cache
            .memos
            .retain(|_, (made_for, _)| made_for.saturating_add(MEMO_GENERATIONS) >= generation);
        let newer = cache
            .memos
            .get(&key)
            .is_some_and(|(made_for, _)| *made_for > generation);
        if !newer {
            cache.memos.insert(key, (generation, Arc::new(memo)));
        }
    }

    fn prepare(
        &self,
        snapshot: &MeshSnapshot,
        gateway: &GatewayIdentity,
        key: &[u8],
    ) -> Arc<PreparedConfig> {
        let started = std::time::Instant::now();
        let previous = self.memo(key);
        let mut translation = translate_reusing(snapshot, gateway, &previous);
        drop(previous);
        let translated = std::time::Instant::now();
        let reused = translation.reused();
        let prepared = Arc::new(PreparedConfig::from_translation(&mut translation));
        let clusters = translation.clusters.len();
        if let Some(memo) = translation.into_memo(prepared.cluster_fields()) {
            self.keep_memo(snapshot.generation, key.to_vec(), memo);
        }
        tracing::debug!(
            generation = snapshot.generation,
            gateway = %gateway.name,
            bytes = prepared.encoded().len(),
            clusters,
            reused,
            translate_ms = (translated - started).as_secs_f64() * 1000.0,
            encode_ms = translated.elapsed().as_secs_f64() * 1000.0,
            "translated and encoded a gateway configuration"
        );
        prepared
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
        let key = dependency_key(gateway);
        let slot = self.slot(snapshot.generation, &key);
        Arc::clone(slot.get_or_init(|| self.prepare(&snapshot, gateway, &key)))
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
