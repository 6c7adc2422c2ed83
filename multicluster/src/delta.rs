//! Applying an incremental push (`ConfigDelta`) onto the configuration a gateway holds.
//!
//! Pure, so discovery's tests can check that a delta applied onto its base equals the full
//! configuration it stands for, with the same function the gateway runs.

use std::collections::BTreeMap;

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

/// The configuration `delta` describes: `base` with the named clusters replaced, added or
/// removed, everything else as it was, under the delta's version.
///
/// Clusters come out in name order, the order discovery's translation writes them in, so a delta
/// applied equals the full configuration byte for byte.
pub fn apply_delta(
    base: Option<&GatewayConfig>,
    delta: ConfigDelta,
) -> Result<GatewayConfig, DeltaError> {
    let base = match base {
        Some(base) if base.version == delta.base_version => base,
        held => {
            return Err(DeltaError::BaseMismatch {
                version: delta.version,
                base: delta.base_version,
                held: held.map(|config| config.version.clone()),
            });
        }
    };
    let mut clusters: BTreeMap<String, Cluster> = base
        .clusters
        .iter()
        .map(|cluster| (cluster.name.clone(), cluster.clone()))
        .collect();
    for removed in &delta.removed_clusters {
        clusters.remove(removed);
    }
    for cluster in delta.clusters {
        clusters.insert(cluster.name.clone(), cluster);
    }
    Ok(GatewayConfig {
        version: delta.version,
        listeners: base.listeners.clone(),
        clusters: clusters.into_values().collect(),
        route_tables: base.route_tables.clone(),
        credentials: base.credentials.clone(),
        rejections: base.rejections.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let applied = apply_delta(Some(&base()), delta).expect("base matches");
        assert_eq!(
            applied,
            GatewayConfig {
                version: "4".into(),
                clusters: vec![cluster("a", "10.0.0.9"), cluster("c", "10.0.0.3")],
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_delta_against_another_version_is_refused() {
        let delta = ConfigDelta {
            version: "5".into(),
            base_version: "4".into(),
            ..Default::default()
        };
        let error = apply_delta(Some(&base()), delta.clone()).expect_err("wrong base");
        assert!(error.to_string().contains("holds Some(\"3\")"), "{error}");
        assert!(apply_delta(None, delta).is_err(), "nothing held");
    }
}
