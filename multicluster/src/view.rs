//! Split-horizon endpoints: what one service port looks like from one network.
//!
//! A caller on network N can dial endpoints on N directly. Endpoints on any other network M are
//! out of reach, so each of M's east-west gateways stands in for them, weighted by how many
//! endpoints it represents. Weights are scaled so that several gateways for one network split
//! the load evenly in integers with nothing lost (Istio scales by the gateways' common multiple
//! for the same reason).

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::model::{ClusterId, Endpoint, Health, Locality, NetworkGateway, NetworkId};

/// An address the viewer may dial for a service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewEndpoint {
    pub address: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub locality: Locality,
    pub network: NetworkId,
    pub health: Health,
    pub kind: ViewKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewKind {
    /// The workload itself, on the viewer's network.
    Direct { cluster: ClusterId },
    /// A remote network's east-west gateway standing in for `endpoints` workloads.
    Gateway { cluster: ClusterId, endpoints: u32 },
}

/// Why an endpoint is not in the view. Reported, never silently dropped: an operator must be
/// able to see that a network is unreachable rather than guess from a traffic graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusion {
    /// Its network has no east-west gateway, so nothing can carry traffic there.
    NoGateway,
    /// It has no workload proxy to terminate mTLS, and the gateway only forwards mTLS.
    NotMtlsCapable,
    /// Remote endpoints that are not healthy do not add weight to their gateway.
    Unhealthy,
    /// The endpoint does not serve the requested service port.
    NoSuchPort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded {
    pub address: IpAddr,
    pub cluster: ClusterId,
    pub network: NetworkId,
    pub reason: Exclusion,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointView {
    pub endpoints: Vec<ViewEndpoint>,
    pub excluded: Vec<Excluded>,
}

impl EndpointView {
    pub fn total_weight(&self) -> u64 {
        self.endpoints.iter().map(|e| u64::from(e.weight)).sum()
    }
}

/// The endpoints of one service port as seen from `viewer`.
pub fn view_from_network(
    viewer: &NetworkId,
    service_port: u16,
    endpoints: &[Endpoint],
    gateways: &[NetworkGateway],
) -> EndpointView {
    let gateways_by_network = group_gateways(gateways);
    let mut view = EndpointView::default();
    let mut direct = Vec::new();
    // (network, locality) → summed weight of the remote endpoints behind it.
    let mut remote: BTreeMap<(&NetworkId, &Locality), u64> = BTreeMap::new();

    for endpoint in endpoints {
        let exclude = |reason| Excluded {
            address: endpoint.address,
            cluster: endpoint.cluster.clone(),
            network: endpoint.network.clone(),
            reason,
        };
        let Some(&port) = endpoint.ports.get(&service_port) else {
            view.excluded.push(exclude(Exclusion::NoSuchPort));
            continue;
        };
        if &endpoint.network == viewer {
            direct.push((endpoint, port));
            continue;
        }
        let reason = if !gateways_by_network.contains_key(&endpoint.network) {
            Some(Exclusion::NoGateway)
        } else if !endpoint.mtls_capable {
            Some(Exclusion::NotMtlsCapable)
        } else if endpoint.health != Health::Healthy {
            Some(Exclusion::Unhealthy)
        } else {
            None
        };
        match reason {
            Some(reason) => view.excluded.push(exclude(reason)),
            None => {
                *remote
                    .entry((&endpoint.network, &endpoint.locality))
                    .or_default() += u64::from(effective_weight(endpoint.weight));
            }
        }
    }

    let scale = remote
        .keys()
        .map(|(network, _)| gateways_by_network[*network].len() as u64)
        .fold(1, lcm);

    view.endpoints
        .extend(direct.into_iter().map(|(endpoint, port)| ViewEndpoint {
            address: endpoint.address,
            port,
            weight: clamp(u64::from(effective_weight(endpoint.weight)) * scale),
            locality: endpoint.locality.clone(),
            network: endpoint.network.clone(),
            health: endpoint.health,
            kind: ViewKind::Direct {
                cluster: endpoint.cluster.clone(),
            },
        }));

    for ((network, locality), weight) in remote {
        let behind = &gateways_by_network[network];
        // `scale` is a multiple of every gateway count, so this division is exact.
        let share = weight * scale / behind.len() as u64;
        for gateway in behind {
            view.endpoints.push(ViewEndpoint {
                address: gateway.address,
                port: gateway.port,
                weight: clamp(share),
                locality: locality.clone(),
                network: network.clone(),
                health: Health::Healthy,
                kind: ViewKind::Gateway {
                    cluster: gateway.cluster.clone(),
                    endpoints: clamp(weight),
                },
            });
        }
    }
    view
}

/// Gateways per network, deduplicated and ordered so views are deterministic.
fn group_gateways(gateways: &[NetworkGateway]) -> BTreeMap<&NetworkId, Vec<&NetworkGateway>> {
    let mut grouped: BTreeMap<&NetworkId, Vec<&NetworkGateway>> = BTreeMap::new();
    for gateway in gateways {
        grouped.entry(&gateway.network).or_default().push(gateway);
    }
    for list in grouped.values_mut() {
        list.sort();
        list.dedup_by(|a, b| a.address == b.address && a.port == b.port);
    }
    grouped
}

/// Kubernetes endpoints carry no weight; zero means "unset", and an unset endpoint counts once.
fn effective_weight(weight: u32) -> u32 {
    weight.max(1)
}

fn clamp(weight: u64) -> u32 {
    u32::try_from(weight).unwrap_or(u32::MAX)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}
