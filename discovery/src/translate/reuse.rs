//! Reusing the clusters of a gateway's previous translation.
//!
//! An east-west gateway's configuration is mostly clusters (one per service port and subset,
//! with the endpoints of its network), and most changes touch a few services. A cluster is a
//! function of its service record, the DestinationRules, the gateway's network and the network
//! gateways; the endpoint index keeps every untouched record the same `Arc`. So when those other
//! inputs are equal, a cluster whose record is the same allocation as last time is the same
//! cluster, and its encoded field from the previous push is taken as it is instead of being
//! built and encoded again.
//!
//! Only clusters whose build had no side effect are kept: none that raised a rejection (the
//! rejection would have to be raised again) and none with upstream TLS (it depends on Secrets
//! and registers a credential). What is reused is byte for byte what a fresh translation
//! encodes; `tests/translate_reuse.rs` checks it against [`super::translate`].

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use multicluster::model::{NetworkGateway, NetworkId};
use multicluster::proto::{self, GatewayConfig, GatewayIdentity};

use crate::istio::{DestinationRuleSpec, IstioObject};
use crate::mesh::{MeshSnapshot, ServiceRecord, Sourced};

use super::Translator;
use super::clusters::EndpointScope;

/// What a gateway's previous translation left for the next one.
#[derive(Debug, Default)]
pub struct ClusterMemo {
    inputs: Option<MemoInputs>,
    entries: HashMap<String, MemoEntry>,
}

/// Everything besides its own record that a cluster kept here can depend on.
#[derive(Debug, PartialEq)]
struct MemoInputs {
    network: Option<NetworkId>,
    domain_suffix: String,
    destination_rules: Vec<Sourced<IstioObject<DestinationRuleSpec>>>,
    network_gateways: Vec<NetworkGateway>,
}

impl MemoInputs {
    fn of(translator: &Translator<'_>) -> Self {
        let snapshot = translator.snapshot;
        MemoInputs {
            network: translator.network.clone(),
            domain_suffix: snapshot.domain_suffix.clone(),
            destination_rules: snapshot.destination_rules.clone(),
            network_gateways: snapshot.network_gateways.clone(),
        }
    }

    fn hold_for(&self, translator: &Translator<'_>) -> bool {
        let snapshot = translator.snapshot;
        self.network == translator.network
            && self.domain_suffix == snapshot.domain_suffix
            && self.destination_rules == snapshot.destination_rules
            && self.network_gateways == snapshot.network_gateways
    }
}

/// One reusable cluster.
#[derive(Debug, Clone)]
pub struct MemoEntry {
    provenance: Provenance,
    /// The encoded `GatewayConfig.clusters` field, key included.
    field: Bytes,
}

impl MemoEntry {
    pub fn field(&self) -> &[u8] {
        &self.field
    }
}

/// Where a cluster kept here came from, so the next translation can tell it is still current.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// A `Weak` keeps the allocation, so a later record can never be mistaken for this one by
    /// having the same address.
    record: Weak<ServiceRecord>,
    scope: EndpointScope,
}

impl Provenance {
    pub(super) fn new(record: &Arc<ServiceRecord>, scope: EndpointScope) -> Self {
        Provenance {
            record: Arc::downgrade(record),
            scope,
        }
    }

    /// Whether a cluster built from `record` in `scope` would be built from this.
    fn is(&self, record: &Arc<ServiceRecord>, scope: EndpointScope) -> bool {
        self.scope == scope && std::ptr::eq(self.record.as_ptr(), Arc::as_ptr(record))
    }
}

/// One cluster of a translation that may reuse clusters.
#[derive(Debug)]
pub enum ClusterPart {
    /// Built now; `provenance` is set when it may be reused next time.
    Fresh {
        cluster: Box<proto::Cluster>,
        provenance: Option<Provenance>,
    },
    /// Taken from the previous translation.
    Reused(MemoEntry),
}

/// A translation whose clusters are partly taken from the previous one.
#[derive(Debug)]
pub struct ReusingTranslation {
    /// The configuration without its clusters.
    pub rest: GatewayConfig,
    /// Every cluster, sorted by name as [`super::translate`] orders them.
    pub clusters: Vec<(String, ClusterPart)>,
    inputs: Option<MemoInputs>,
}

impl ReusingTranslation {
    /// How many clusters were reused.
    pub fn reused(&self) -> usize {
        self.clusters
            .iter()
            .filter(|(_, part)| matches!(part, ClusterPart::Reused(_)))
            .count()
    }

    /// The memo for the next translation, or `None` when nothing in it could be reused
    /// (sidecars); `fields` are the encoded cluster fields of what was sent, in the order of
    /// [`ReusingTranslation::clusters`].
    pub fn into_memo(self, fields: impl IntoIterator<Item = Bytes>) -> Option<ClusterMemo> {
        let inputs = self.inputs?;
        let entries = self
            .clusters
            .into_iter()
            .zip(fields)
            .filter_map(|((name, part), field)| {
                let provenance = match part {
                    ClusterPart::Fresh { provenance, .. } => provenance?,
                    ClusterPart::Reused(entry) => entry.provenance,
                };
                Some((name, MemoEntry { provenance, field }))
            })
            .collect();
        Some(ClusterMemo {
            inputs: Some(inputs),
            entries,
        })
    }
}

/// [`super::translate`], taking from `previous` every cluster that is provably unchanged.
/// Sidecars get no reuse: their clusters are rewritten after they are built.
pub fn translate_reusing(
    snapshot: &MeshSnapshot,
    gateway: &GatewayIdentity,
    previous: &ClusterMemo,
) -> ReusingTranslation {
    let sidecar = gateway.role == proto::Role::Sidecar as i32;
    let mut translator = Translator::new(snapshot, gateway);
    let inputs = (!sidecar).then(|| MemoInputs::of(&translator));
    let usable = previous
        .inputs
        .as_ref()
        .is_some_and(|inputs| inputs.hold_for(&translator));
    if usable && !sidecar {
        translator.memo = Some(previous);
    }
    translator.track_provenance = !sidecar;
    let (rest, clusters) = super::run(translator);
    ReusingTranslation {
        rest,
        clusters,
        inputs,
    }
}

impl Translator<'_> {
    /// The previous translation's cluster `name`, if it was built from `record` in `scope`
    /// under the same inputs.
    pub(super) fn reusable(
        &self,
        name: &str,
        record: &Arc<ServiceRecord>,
        scope: EndpointScope,
    ) -> Option<MemoEntry> {
        let entry = self.memo?.entries.get(name)?;
        entry.provenance.is(record, scope).then(|| entry.clone())
    }
}
