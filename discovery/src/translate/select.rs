//! Which Istio objects concern this gateway: the Gateways whose selector matches its labels,
//! the VirtualServices bound to those Gateways, the DestinationRule for a host.

use crate::istio::virtual_service::MESH_GATEWAY;
use crate::istio::{DestinationRuleSpec, GatewaySpec, IstioObject, VirtualServiceSpec};

use super::Translator;
use super::hosts::{covers, fully_qualify};

impl<'a> Translator<'a> {
    fn in_own_cluster(&self, cluster: &multicluster::model::ClusterId) -> bool {
        self.cluster.as_ref() == Some(cluster)
    }

    /// Gateways of this cluster whose selector is a subset of the gateway's labels (an empty
    /// selector selects every gateway, as in Istio), in namespace/name order.
    pub(super) fn selected_gateways(&self) -> Vec<&'a IstioObject<GatewaySpec>> {
        let mut selected: Vec<_> = self
            .snapshot
            .gateways
            .iter()
            .filter(|sourced| self.in_own_cluster(&sourced.cluster))
            .map(|sourced| &sourced.object)
            .filter(|gateway| {
                gateway
                    .spec
                    .selector
                    .iter()
                    .all(|(key, value)| self.gateway.labels.get(key) == Some(value))
            })
            .collect();
        selected.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
        selected
    }

    /// VirtualServices of this cluster that name `gateway` in `gateways`, in namespace/name order.
    pub(super) fn bound_virtual_services(
        &self,
        gateway: &IstioObject<GatewaySpec>,
    ) -> Vec<&'a IstioObject<VirtualServiceSpec>> {
        let mut bound: Vec<_> = self
            .snapshot
            .virtual_services
            .iter()
            .filter(|sourced| self.in_own_cluster(&sourced.cluster))
            .map(|sourced| &sourced.object)
            .filter(|vs| {
                vs.spec
                    .gateways
                    .iter()
                    .any(|reference| refers_to(reference, vs.namespace(), gateway))
            })
            .collect();
        bound.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
        bound
    }

    /// The DestinationRule that applies to `hostname`: an exact host beats a wildcard, a longer
    /// wildcard beats a shorter one, then namespace/name order breaks ties.
    pub(super) fn destination_rule(
        &self,
        hostname: &str,
    ) -> Option<&'a IstioObject<DestinationRuleSpec>> {
        let suffix = &self.snapshot.domain_suffix;
        self.snapshot
            .destination_rules
            .iter()
            .filter(|sourced| self.in_own_cluster(&sourced.cluster))
            .map(|sourced| &sourced.object)
            .filter_map(|rule| {
                let host = fully_qualify(&rule.spec.host, rule.namespace(), suffix);
                covers(&host, hostname).then(|| {
                    let exact = !host.starts_with('*');
                    ((exact, host.len()), rule)
                })
            })
            .max_by(|(rank_a, a), (rank_b, b)| {
                rank_a
                    .cmp(rank_b)
                    .then_with(|| (b.namespace(), b.name()).cmp(&(a.namespace(), a.name())))
            })
            .map(|(_, rule)| rule)
    }
}

/// Whether a `gateways:` entry written in a resource of `namespace` names `gateway`:
/// `name` means the resource's own namespace, `ns/name` is explicit, `mesh` means sidecars.
pub(super) fn refers_to(
    reference: &str,
    namespace: &str,
    gateway: &IstioObject<GatewaySpec>,
) -> bool {
    if reference == MESH_GATEWAY {
        return false;
    }
    let (ref_namespace, ref_name) = reference.split_once('/').unwrap_or((namespace, reference));
    ref_namespace == gateway.namespace() && ref_name == gateway.name()
}

/// The route-level `gateways` filter of a match: empty means every gateway the
/// VirtualService is bound to.
pub(super) fn match_applies_to(
    gateways: &[String],
    namespace: &str,
    gateway: &IstioObject<GatewaySpec>,
) -> bool {
    gateways.is_empty() || gateways.iter().any(|g| refers_to(g, namespace, gateway))
}
