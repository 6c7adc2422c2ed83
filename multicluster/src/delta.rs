//! Applying an incremental push (`ConfigDelta`) onto the configuration a gateway holds.
//!
//! Pure, so discovery's tests can check that a delta applied onto its base equals the full
//! configuration it stands for, with the same function the gateway runs.
//!
//! The delta is applied in place: at mesh scale the held configuration is megabytes of
//! endpoints, and copying it to change one cluster cost more than everything else a push does.
//! What the delta displaced is kept in an [`Undo`], so a result the gateway then refuses can
//! be put back exactly as it was.

use crate::proto::{Cluster, ConfigDelta, GatewayConfig};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    #[error(
        "delta {version:?} is against version {base:?} but this gateway holds {held:?}; discovery must send the full configuration"
    )]
    BaseMismatch {
        version: String,
        base: String,
        held: Option<String>,
    },
}

impl DeltaError {
    /// The version the refused delta would have produced, for the NACK.
    pub fn version(&self) -> &str {
        match self {
            DeltaError::BaseMismatch { version, .. } => version,
        }
    }
}

/// What one applied delta displaced, to restore the configuration it was applied onto.
#[derive(Debug)]
#[must_use = "dropping the undo makes the applied delta permanent"]
pub struct Undo {
    version: String,
    /// Each touched cluster name with what it held before (`None`: the delta added it), in the
    /// order the delta touched them.
    displaced: Vec<(String, Option<Cluster>)>,
}

impl Undo {
    /// The names of the clusters the delta replaced, added or removed.
    pub fn touched(&self) -> impl Iterator<Item = &str> {
        self.displaced.iter().map(|(name, _)| name.as_str())
    }

    /// Puts `config` back to what it was before the delta (up to the order of clusters, which
    /// the delta sorted by name).
    pub fn restore(self, config: &mut GatewayConfig) {
        config.version = self.version;
        for (name, previous) in self.displaced.into_iter().rev() {
            match (position(&config.clusters, &name), previous) {
                (Ok(index), Some(cluster)) => config.clusters[index] = cluster,
                (Err(index), Some(cluster)) => config.clusters.insert(index, cluster),
                (Ok(index), None) => {
                    config.clusters.remove(index);
                }
                (Err(_), None) => {}
            }
        }
    }
}

/// Turns `held` into the configuration `delta` describes: the named clusters replaced, added or
/// removed, everything else as it was, under the delta's version.
///
/// Clusters come out in name order, the order discovery's translation writes them in, so a delta
/// applied equals the full configuration byte for byte. `held` is untouched when the delta is
/// against another version.
pub fn apply_delta(
    held: Option<&mut GatewayConfig>,
    delta: ConfigDelta,
) -> Result<(&mut GatewayConfig, Undo), DeltaError> {
    let held = match held {
        Some(held) if held.version == delta.base_version => held,
        held => {
            return Err(DeltaError::BaseMismatch {
                version: delta.version,
                base: delta.base_version,
                held: held.map(|config| config.version.clone()),
            });
        }
    };
    // Discovery sends clusters sorted; another control plane might not, and the binary
    // searches below need them sorted.
    if !held.clusters.is_sorted_by(|a, b| a.name <= b.name) {
        held.clusters.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let mut displaced = Vec::with_capacity(delta.clusters.len() + delta.removed_clusters.len());
    for name in delta.removed_clusters {
        if let Ok(index) = position(&held.clusters, &name) {
            let cluster = held.clusters.remove(index);
            displaced.push((name, Some(cluster)));
        }
    }
    for cluster in delta.clusters {
        let name = cluster.name.clone();
        match position(&held.clusters, &name) {
            Ok(index) => {
                let previous = std::mem::replace(&mut held.clusters[index], cluster);
                displaced.push((name, Some(previous)));
            }
            Err(index) => {
                held.clusters.insert(index, cluster);
                displaced.push((name, None));
            }
        }
    }
    let version = std::mem::replace(&mut held.version, delta.version);
    Ok((held, Undo { version, displaced }))
}

fn position(clusters: &[Cluster], name: &str) -> Result<usize, usize> {
    clusters.binary_search_by(|cluster| cluster.name.as_str().cmp(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cluster(name: &str, address: &str) -> Cluster {
        Cluster {
            name: name.into(),
            endpoints: vec![crate::proto::Endpoint {
                address: address.into(),
                port: 80,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn base() -> GatewayConfig {
        GatewayConfig {
            version: "3".into(),
            clusters: vec![cluster("a", "10.0.0.1"), cluster("b", "10.0.0.2")],
            ..Default::default()
        }
    }

    #[test]
    fn replaces_adds_and_removes_in_name_order() {
        let delta = ConfigDelta {
            version: "4".into(),
            base_version: "3".into(),
            clusters: vec![cluster("c", "10.0.0.3"), cluster("a", "10.0.0.9")],
            removed_clusters: vec!["b".into()],
        };
        let mut held = base();
        let (applied, _undo) = apply_delta(Some(&mut held), delta).expect("base matches");
        assert_eq!(
            *applied,
            GatewayConfig {
                version: "4".into(),
                clusters: vec![cluster("a", "10.0.0.9"), cluster("c", "10.0.0.3")],
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_delta_against_another_version_is_refused_and_changes_nothing() {
        let delta = ConfigDelta {
            version: "5".into(),
            base_version: "4".into(),
            clusters: vec![cluster("a", "10.0.0.9")],
            ..Default::default()
        };
        let mut held = base();
        let error = apply_delta(Some(&mut held), delta.clone()).expect_err("wrong base");
        assert!(error.to_string().contains("holds Some(\"3\")"), "{error}");
        assert_eq!(error.version(), "5");
        assert_eq!(held, base());
        assert!(apply_delta(None, delta).is_err(), "nothing held");
    }

    #[test]
    fn an_unsorted_base_is_sorted_first() {
        let mut held = GatewayConfig {
            version: "1".into(),
            clusters: vec![cluster("b", "10.0.0.2"), cluster("a", "10.0.0.1")],
            ..Default::default()
        };
        let delta = ConfigDelta {
            version: "2".into(),
            base_version: "1".into(),
            clusters: vec![cluster("a", "10.0.0.7")],
            ..Default::default()
        };
        let (applied, _undo) = apply_delta(Some(&mut held), delta).expect("base matches");
        let names: Vec<&str> = applied.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(applied.clusters[0].endpoints[0].address, "10.0.0.7");
    }

    fn names() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "c", "d", "e", "f"]).prop_map(str::to_owned)
    }

    proptest! {
        /// Any delta (even one naming a cluster twice, or removing one it also sends) restores
        /// to exactly the sorted base.
        #[test]
        fn undo_restores_the_base(
            held_names in prop::collection::btree_set(names(), 0..6),
            sent in prop::collection::vec((names(), 0u8..4), 0..8),
            removed in prop::collection::vec(names(), 0..4),
        ) {
            let base = GatewayConfig {
                version: "1".into(),
                clusters: held_names.iter().map(|n| cluster(n, "10.0.0.1")).collect(),
                ..Default::default()
            };
            let delta = ConfigDelta {
                version: "2".into(),
                base_version: "1".into(),
                clusters: sent
                    .iter()
                    .map(|(n, last)| cluster(n, &format!("10.0.1.{last}")))
                    .collect(),
                removed_clusters: removed,
            };
            let mut held = base.clone();
            let (applied, undo) = apply_delta(Some(&mut held), delta).expect("base matches");
            prop_assert_eq!(&applied.version, "2");
            prop_assert!(applied.clusters.is_sorted_by(|a, b| a.name < b.name));
            undo.restore(&mut held);
            prop_assert_eq!(held, base);
        }
    }
}
