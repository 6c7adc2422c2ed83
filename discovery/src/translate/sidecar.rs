//! Workload proxies (`isthmus sidecar`): every service of the mesh as the proxy's network sees it.
//!
//! A sidecar's listeners come from its own command line, so its configuration holds none. It
//! gets one cluster per (service, port) and per (service, port, DestinationRule subset), with
//! Istio's split-horizon endpoints: workloads on its network as they are, every other network's
//! workloads replaced by that network's east-west gateway(s) (`network_gateway: true`, dialled
//! with the same SNI), weighted by how many workloads stand behind each.

use std::collections::BTreeMap;

use multicluster::model::{Endpoint, NetworkId};
use multicluster::proto;
use multicluster::sni::SniKey;
use multicluster::view::{Excluded, Exclusion, ViewEndpoint, ViewKind, view_from_network};

use super::clusters::{EndpointScope, Target};
use super::{Item, Translator};

impl Translator<'_> {
    /// Fills `self.clusters` with every (service, port[, subset]) of the mesh.
    pub(super) fn sidecar_clusters(&mut self) {
        let snapshot = self.snapshot;
        let Some(network) = self.network.clone() else {
            let item = Item {
                kind: "Sidecar",
                namespace: &self.gateway.namespace,
                name: &self.gateway.name,
            };
            self.reject(
                &item,
                "network",
                format!(
                    "sidecar {}/{} has no network and cluster {:?} is not in the mesh description: \
                     pass --network so remote endpoints can be reached through their gateways",
                    self.gateway.namespace, self.gateway.name, self.gateway.cluster
                ),
            );
            return;
        };
        for (hostname, record) in &snapshot.services {
            let rule = self.destination_rule(hostname);
            let subsets: Vec<(&str, BTreeMap<String, String>)> = rule
                .map(|rule| {
                    rule.spec
                        .subsets
                        .iter()
                        .map(|s| (s.name.as_str(), s.labels.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let item = Item {
                kind: "Service",
                namespace: &record.service.name.namespace,
                name: &record.service.name.name,
            };
            for port in &record.service.ports {
                let all = std::iter::once(("", BTreeMap::new()));
                for (subset, selector) in all.chain(subsets.iter().cloned()) {
                    let target = Target {
                        host: hostname,
                        port: Some(u32::from(port.number)),
                        subset,
                    };
                    // The shared builder names the cluster and applies the DestinationRule's
                    // policy; only the endpoints differ for a sidecar, so they are replaced.
                    let field = format!("spec.ports[{}]", port.number);
                    let Some(name) =
                        self.cluster_for(&item, &field, &target, EndpointScope::OwnNetworkMtls)
                    else {
                        continue;
                    };
                    let members: Vec<&Endpoint> = record
                        .endpoints
                        .iter()
                        .filter(|endpoint| endpoint.matches_labels(&selector))
                        .collect();
                    let endpoints =
                        self.split_horizon(&item, &name, &network, port.number, &members);
                    if let Some(cluster) = self.clusters.get_mut(&name) {
                        cluster.endpoints = endpoints;
                    }
                }
            }
        }
    }

    fn split_horizon(
        &mut self,
        item: &Item<'_>,
        cluster: &str,
        network: &NetworkId,
        port: u16,
        members: &[&Endpoint],
    ) -> Vec<proto::Endpoint> {
        let owned: Vec<Endpoint> = members.iter().map(|e| (*e).clone()).collect();
        let view = view_from_network(network, port, &owned, &self.snapshot.network_gateways);
        for excluded in &view.excluded {
            // A missing port on a workload is ordinary (multi-port services); only reasons
            // that hide a reachable-looking workload are worth an operator's attention.
            if excluded.reason == Exclusion::NoSuchPort {
                continue;
            }
            self.reject(
                item,
                format!("endpoints[{}]", excluded.address),
                exclusion_reason(cluster, excluded),
            );
        }
        view.endpoints
            .iter()
            .map(|endpoint| view_endpoint(endpoint, members))
            .collect()
    }
}

fn view_endpoint(endpoint: &ViewEndpoint, members: &[&Endpoint]) -> proto::Endpoint {
    let (cluster_id, network_gateway, workload) = match &endpoint.kind {
        ViewKind::Direct { cluster } => {
            let workload = members
                .iter()
                .find(|m| m.address == endpoint.address && &m.cluster == cluster)
                .copied();
            (cluster.to_string(), false, workload)
        }
        ViewKind::Gateway { cluster, .. } => (cluster.to_string(), true, None),
    };
    proto::Endpoint {
        address: endpoint.address.to_string(),
        port: u32::from(endpoint.port),
        weight: endpoint.weight,
        locality: endpoint.locality.to_string(),
        cluster_id,
        network: endpoint.network.to_string(),
        health: match endpoint.health {
            multicluster::model::Health::Healthy => proto::Health::Healthy,
            multicluster::model::Health::Unhealthy => proto::Health::Unhealthy,
            multicluster::model::Health::Draining => proto::Health::Draining,
        } as i32,
        // Behind a gateway stand many workloads: the caller accepts any mesh identity there.
        service_account: workload
            .map(|w| w.service_account.clone())
            .unwrap_or_default(),
        network_gateway,
    }
}

/// Warning-level text: the cluster still works with the endpoints that remain.
fn exclusion_reason(cluster: &str, excluded: &Excluded) -> String {
    let sni =
        SniKey::from_cluster_name(cluster).map_or_else(|_| cluster.to_owned(), |key| key.to_sni());
    let why = match excluded.reason {
        Exclusion::NoGateway => format!(
            "network {} has no east-west gateway (a Service labelled topology.istio.io/network={} exposing 15443)",
            excluded.network, excluded.network
        ),
        Exclusion::NotMtlsCapable => {
            "it runs no workload proxy, and a gateway only forwards mesh mTLS".to_owned()
        }
        Exclusion::Unhealthy => "it is not ready".to_owned(),
        Exclusion::NoSuchPort => "it does not serve this port".to_owned(),
    };
    format!(
        "warning: endpoint {} (cluster {}, network {}) is left out of {sni}: {why}",
        excluded.address, excluded.cluster, excluded.network
    )
}
