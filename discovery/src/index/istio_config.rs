//! Istio configuration of every cluster, kept per cluster.
//!
//! Each object stays tagged with the cluster it was read from: translation applies a
//! cluster's Gateways, VirtualServices and DestinationRules to that cluster's gateways, as in
//! Istio's multi-primary model where each control plane reads its own cluster. The same
//! kind/namespace/name in two clusters is therefore two objects, not a conflict (within one
//! cluster it is, and [`super::cluster::ClusterView`] rejects the second definition).

use multicluster::model::ClusterId;

use crate::istio::{
    DestinationRuleSpec, GatewaySpec, IstioObject, ServiceEntrySpec, VirtualServiceSpec,
};
use crate::mesh::Sourced;
use crate::resource::{Decoded, Resource};

use super::cluster::ClusterView;

#[derive(Debug, Default)]
pub(crate) struct IstioConfig {
    pub(crate) gateways: Vec<Sourced<IstioObject<GatewaySpec>>>,
    pub(crate) virtual_services: Vec<Sourced<IstioObject<VirtualServiceSpec>>>,
    pub(crate) destination_rules: Vec<Sourced<IstioObject<DestinationRuleSpec>>>,
    pub(crate) service_entries: Vec<Sourced<IstioObject<ServiceEntrySpec>>>,
}

pub(crate) fn collect(views: &[ClusterView<'_>]) -> IstioConfig {
    let mut config = IstioConfig::default();
    for view in views {
        for decoded in &view.istio {
            config.push(view.id, decoded);
        }
    }
    config
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
