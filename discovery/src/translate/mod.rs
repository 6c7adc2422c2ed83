//! Translation: a [`MeshSnapshot`] and one gateway's identity in, that gateway's
//! [`GatewayConfig`] out, plus everything that had to be left out and why.
//!
//! Pure: no IO, no clocks. Problems are per item — a bad server, route or destination is
//! rejected on its own and the rest of the listener keeps working (Istio's duplicate-subset NACK
//! took whole gateways down: istio/istio#42050, #50353).
//!
//! Istio configuration applies to the gateways of the cluster it was read from, as in Istio's
//! multi-primary model where each cluster's control plane reads its own cluster; services and
//! endpoints are mesh-wide.

mod clusters;
mod credentials;
pub mod hosts;
mod listeners;
mod reuse;
mod routes;
mod select;
mod sidecar;
mod sni_table;

use std::collections::{BTreeMap, HashMap};

use multicluster::model::{ClusterId, NetworkId};
use multicluster::proto::{self, GatewayConfig, GatewayIdentity};

use crate::mesh::{MeshSnapshot, Severity};

pub use reuse::{ClusterMemo, ClusterPart, ReusingTranslation, translate_reusing};

/// The result of translating for one gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// `version` is left empty: the push layer versions what it sends.
    pub config: GatewayConfig,
}

impl Translation {
    pub fn rejections(&self) -> &[proto::Rejection] {
        &self.config.rejections
    }
}

/// Builds the configuration of the gateway described by `gateway`.
pub fn translate(snapshot: &MeshSnapshot, gateway: &GatewayIdentity) -> Translation {
    let mut translator = Translator::new(snapshot, gateway);
    let mut config = translator.run();
    // Without a memo nothing is reused: every cluster was built here.
    config.clusters = std::mem::take(&mut translator.clusters)
        .into_values()
        .collect();
    Translation { config }
}

/// Runs `translator` and splits its result into the configuration without clusters and the
/// clusters, built or reused, in name order.
fn run(mut translator: Translator<'_>) -> (GatewayConfig, Vec<(String, ClusterPart)>) {
    let rest = translator.run();
    let mut provenance = translator.provenance;
    let mut clusters: BTreeMap<String, ClusterPart> = translator
        .clusters
        .into_iter()
        .map(|(name, cluster)| {
            let provenance = provenance.remove(&name);
            (
                name,
                ClusterPart::Fresh {
                    cluster: Box::new(cluster),
                    provenance,
                },
            )
        })
        .collect();
    clusters.extend(
        translator
            .reused
            .into_iter()
            .map(|(name, entry)| (name, ClusterPart::Reused(entry))),
    );
    (rest, clusters.into_iter().collect())
}

/// State shared by the translation steps; each step lives in its own module as an `impl` block.
struct Translator<'a> {
    snapshot: &'a MeshSnapshot,
    gateway: &'a GatewayIdentity,
    cluster: Option<ClusterId>,
    network: Option<NetworkId>,
    clusters: BTreeMap<String, proto::Cluster>,
    route_tables: BTreeMap<String, proto::RouteTable>,
    credentials: BTreeMap<String, proto::TlsCredential>,
    rejections: Vec<proto::Rejection>,
    /// The previous translation's clusters, when its inputs still hold.
    memo: Option<&'a ClusterMemo>,
    /// Clusters taken from `memo` instead of being built; never also in `clusters`.
    reused: BTreeMap<String, reuse::MemoEntry>,
    /// Whether to note which built clusters the next translation may reuse.
    track_provenance: bool,
    provenance: HashMap<String, reuse::Provenance>,
}

impl<'a> Translator<'a> {
    fn new(snapshot: &'a MeshSnapshot, gateway: &'a GatewayIdentity) -> Self {
        let cluster = ClusterId::new(gateway.cluster.clone()).ok();
        let network = NetworkId::new(gateway.network.clone()).ok().or_else(|| {
            cluster
                .as_ref()
                .and_then(|c| snapshot.network_of(c).cloned())
        });
        Translator {
            snapshot,
            gateway,
            cluster,
            network,
            clusters: BTreeMap::new(),
            route_tables: BTreeMap::new(),
            credentials: BTreeMap::new(),
            rejections: Vec::new(),
            memo: None,
            reused: BTreeMap::new(),
            track_provenance: false,
            provenance: HashMap::new(),
        }
    }

    /// Translates; returns the configuration without its clusters, which stay in `self`
    /// (built in `clusters`, taken from the memo in `reused`).
    fn run(&mut self) -> GatewayConfig {
        self.carry_snapshot_rejections();
        let listeners = match proto::Role::try_from(self.gateway.role) {
            Ok(proto::Role::Sidecar) => {
                self.sidecar_clusters();
                Vec::new()
            }
            // An unknown role from a newer proxy is served as a gateway, the shape every
            // subscriber understood before roles existed.
            Ok(proto::Role::Gateway) | Err(_) => self.listeners(),
        };
        GatewayConfig {
            version: String::new(),
            listeners,
            clusters: Vec::new(),
            route_tables: std::mem::take(&mut self.route_tables)
                .into_values()
                .collect(),
            credentials: std::mem::take(&mut self.credentials)
                .into_values()
                .collect(),
            rejections: std::mem::take(&mut self.rejections),
        }
    }

    /// Input problems of this gateway's own cluster travel with its config, so they can be seen
    /// from the gateway's admin endpoint too.
    fn carry_snapshot_rejections(&mut self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        for rejection in &self.snapshot.rejections {
            if &rejection.cluster == cluster && rejection.severity == Severity::Error {
                self.rejections.push(proto::Rejection {
                    kind: rejection.kind.clone(),
                    namespace: rejection.namespace.clone(),
                    name: rejection.name.clone(),
                    field: rejection.field.clone(),
                    reason: format!("{}: {}", rejection.origin, rejection.message),
                    cluster: rejection.cluster.to_string(),
                });
            }
        }
    }

    fn reject(&mut self, item: &Item<'_>, field: impl Into<String>, reason: impl Into<String>) {
        self.rejections.push(proto::Rejection {
            kind: item.kind.to_owned(),
            namespace: item.namespace.to_owned(),
            name: item.name.to_owned(),
            field: field.into(),
            reason: reason.into(),
            cluster: self.gateway.cluster.clone(),
        });
    }
}

/// The resource a rejection is about.
#[derive(Debug, Clone, Copy)]
struct Item<'s> {
    kind: &'static str,
    namespace: &'s str,
    name: &'s str,
}

impl<'s> Item<'s> {
    fn of<S>(kind: &'static str, object: &'s crate::istio::IstioObject<S>) -> Self {
        Item {
            kind,
            namespace: object.namespace(),
            name: object.name(),
        }
    }
}
