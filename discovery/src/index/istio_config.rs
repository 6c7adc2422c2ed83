//! Istio configuration of every cluster merged into one set.
//!
//! Config is mesh-wide: an object with the same kind/namespace/name in two clusters is one
//! object, and the cluster listed first in the mesh description decides what it says.

use std::collections::BTreeMap;

use multicluster::model::ClusterId;

use crate::istio::{
    DestinationRuleSpec, GatewaySpec, IstioObject, ServiceEntrySpec, VirtualServiceSpec,
};
use crate::mesh::{Severity, Sourced};
use crate::resource::{Decoded, Resource};

use super::cluster::ClusterView;
use super::problems::Problems;

#[derive(Debug, Default)]
pub(crate) struct IstioConfig {
    pub(crate) gateways: Vec<Sourced<IstioObject<GatewaySpec>>>,
    pub(crate) virtual_services: Vec<Sourced<IstioObject<VirtualServiceSpec>>>,
    pub(crate) destination_rules: Vec<Sourced<IstioObject<DestinationRuleSpec>>>,
    pub(crate) service_entries: Vec<Sourced<IstioObject<ServiceEntrySpec>>>,
}

pub(crate) fn merge(views: &[ClusterView<'_>], problems: &mut Problems) -> IstioConfig {
    let mut config = IstioConfig::default();
    let mut kept: BTreeMap<(&str, &str, &str), (&ClusterId, &Decoded)> = BTreeMap::new();
    for view in views {
        for decoded in &view.istio {
            let key = (decoded.kind(), decoded.namespace(), decoded.name());
            if let Some((first_cluster, first)) = kept.get(&key) {
                report_duplicate(view.id, decoded, first_cluster, first, problems);
                continue;
            }
            kept.insert(key, (view.id, decoded));
            config.push(view.id, decoded);
        }
    }
    config
}

/// A copy that says the same thing is harmless (config applied to every cluster is common);
/// a copy that differs is left out, and its author needs to know.
fn report_duplicate(
    cluster: &ClusterId,
    decoded: &Decoded,
    first_cluster: &ClusterId,
    first: &Decoded,
    problems: &mut Problems,
) {
    let (severity, what) = if same_spec(&decoded.resource, &first.resource) {
        (Severity::Warning, "an identical copy")
    } else {
        (Severity::Error, "a different definition")
    };
    problems.about(
        cluster,
        decoded,
        severity,
        "",
        format!(
            "cluster {first_cluster} has {what} of {} {}/{} at {}: the copy of the cluster listed first in the mesh description is used and this one is ignored",
            decoded.kind(),
            decoded.namespace(),
            decoded.name(),
            first.origin
        ),
    );
}

fn same_spec(a: &Resource, b: &Resource) -> bool {
    match (a, b) {
        (Resource::Gateway(a), Resource::Gateway(b)) => a.spec == b.spec,
        (Resource::VirtualService(a), Resource::VirtualService(b)) => a.spec == b.spec,
        (Resource::DestinationRule(a), Resource::DestinationRule(b)) => a.spec == b.spec,
        (Resource::ServiceEntry(a), Resource::ServiceEntry(b)) => a.spec == b.spec,
        _ => false,
    }
}

impl IstioConfig {
    fn push(&mut self, cluster: &ClusterId, decoded: &Decoded) {
        match &decoded.resource {
            Resource::Gateway(object) => {
                self.gateways
                    .push(sourced(cluster, decoded, object.as_ref()))
            }
            Resource::VirtualService(object) => {
                self.virtual_services
                    .push(sourced(cluster, decoded, object.as_ref()));
            }
            Resource::DestinationRule(object) => {
                self.destination_rules
                    .push(sourced(cluster, decoded, object.as_ref()));
            }
            Resource::ServiceEntry(object) => {
                self.service_entries
                    .push(sourced(cluster, decoded, object.as_ref()));
            }
            Resource::Namespace(_)
            | Resource::Service(_)
            | Resource::EndpointSlice(_)
            | Resource::Pod(_)
            | Resource::Secret(_) => {}
        }
    }
}

fn sourced<T: Clone>(cluster: &ClusterId, decoded: &Decoded, object: &T) -> Sourced<T> {
    Sourced {
        cluster: cluster.clone(),
        origin: decoded.origin.clone(),
        object: object.clone(),
    }
}
