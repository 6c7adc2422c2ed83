//! Network gateways, found the way Istio finds them: a Service labelled with a network that
//! exposes the east-west port, reachable at its load balancer or external addresses.

use std::net::IpAddr;

use crate::resource::Service as KubeService;
use multicluster::model::{NetworkGateway, NetworkId};

use crate::mesh::GatewayHostname;
use crate::resolve::ResolvedHosts;

use super::cluster::{ClusterView, Entry};
use super::labels::{DEFAULT_GATEWAY_PORT, GATEWAY_PORT_LABEL, NETWORK_LABEL, label};
use super::problems::Problems;

#[derive(Debug, Default)]
pub(crate) struct Gateways {
    pub(crate) addresses: Vec<NetworkGateway>,
    pub(crate) hostnames: Vec<GatewayHostname>,
}

impl Gateways {
    pub(crate) fn add_cluster(
        &mut self,
        view: &ClusterView<'_>,
        resolved: &ResolvedHosts,
        problems: &mut Problems,
    ) {
        for entry in view.services.values() {
            self.add_service(view, *entry, resolved, problems);
        }
    }

    fn add_service(
        &mut self,
        view: &ClusterView<'_>,
        entry: Entry<'_, KubeService>,
        resolved: &ResolvedHosts,
        problems: &mut Problems,
    ) {
        let metadata = &entry.object.metadata;
        let Some(network) = label(metadata, NETWORK_LABEL) else {
            return;
        };
        let Ok(network) = NetworkId::new(network) else {
            return;
        };
        let Some(port) = gateway_port(view, entry, problems) else {
            return;
        };
        let spec = entry.object.spec.as_ref();
        let ingress = entry
            .object
            .status
            .as_ref()
            .and_then(|status| status.load_balancer.as_ref())
            .and_then(|balancer| balancer.ingress.as_ref())
            .into_iter()
            .flatten();
        let mut ips: Vec<(String, &str)> = Vec::new();
        let mut hostnames: Vec<&str> = Vec::new();
        for (index, ingress) in ingress.enumerate() {
            if let Some(ip) = ingress.ip.as_deref().filter(|ip| !ip.is_empty()) {
                ips.push((format!("status.loadBalancer.ingress[{index}].ip"), ip));
            } else if let Some(hostname) = ingress.hostname.as_deref().filter(|h| !h.is_empty()) {
                hostnames.push(hostname);
            }
        }
        for (index, ip) in spec
            .and_then(|spec| spec.external_ips.as_ref())
            .into_iter()
            .flatten()
            .enumerate()
        {
            ips.push((format!("spec.externalIPs[{index}]"), ip));
        }
        if ips.is_empty() && hostnames.is_empty() {
            problems.warn(
                view.id,
                entry.decoded,
                "status.loadBalancer.ingress",
                format!(
                    "gateway Service for network {network} has no address yet: set status.loadBalancer.ingress or spec.externalIPs; until then network {network} is unreachable from other networks"
                ),
            );
            return;
        }
        for (field, ip) in ips {
            match ip.parse::<IpAddr>() {
                Ok(address) => self.push(&network, view, address, port),
                Err(_) => problems.error(
                    view.id,
                    entry.decoded,
                    &field,
                    format!("{ip:?} is not an IP address: this gateway address is skipped"),
                ),
            }
        }
        for hostname in hostnames {
            let answer = resolved.get(hostname);
            let addresses = answer
                .map(|answer| answer.addresses.clone())
                .unwrap_or_default();
            if let Some(error) = answer.and_then(|answer| answer.error.as_deref()) {
                let kept = if addresses.is_empty() {
                    "the gateway has no address until it resolves".to_string()
                } else {
                    format!(
                        "the last resolved addresses stay in use ({})",
                        join(&addresses)
                    )
                };
                problems.warn(
                    view.id,
                    entry.decoded,
                    "status.loadBalancer.ingress",
                    format!("gateway hostname {hostname} did not resolve: {error}; {kept}"),
                );
            }
            for address in &addresses {
                self.push(&network, view, *address, port);
            }
            self.hostnames.push(GatewayHostname {
                hostname: hostname.to_string(),
                network: network.clone(),
                cluster: view.id.clone(),
                port,
                addresses,
            });
        }
    }

    fn push(&mut self, network: &NetworkId, view: &ClusterView<'_>, address: IpAddr, port: u16) {
        self.addresses.push(NetworkGateway {
            network: network.clone(),
            cluster: view.id.clone(),
            address,
            port,
        });
    }

    pub(crate) fn finish(mut self) -> Self {
        self.addresses.sort();
        self.addresses.dedup();
        self.hostnames.sort();
        self.hostnames.dedup();
        self
    }
}

fn join(addresses: &[IpAddr]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The port named by the gateway-port label (else 15443), if the Service exposes it.
fn gateway_port(
    view: &ClusterView<'_>,
    entry: Entry<'_, KubeService>,
    problems: &mut Problems,
) -> Option<u16> {
    let port = match label(&entry.object.metadata, GATEWAY_PORT_LABEL) {
        None => DEFAULT_GATEWAY_PORT,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port != 0 => port,
            _ => {
                problems.warn(
                    view.id,
                    entry.decoded,
                    "metadata.labels",
                    format!(
                        "label {GATEWAY_PORT_LABEL}={text:?} is not a port number: this Service is not used as a network gateway"
                    ),
                );
                return None;
            }
        },
    };
    let exposed = entry
        .object
        .spec
        .as_ref()
        .and_then(|spec| spec.ports.as_ref())
        .into_iter()
        .flatten()
        .any(|exposed| i32::from(port) == exposed.port);
    if !exposed {
        problems.warn(
            view.id,
            entry.decoded,
            "spec.ports",
            format!(
                "Service is labelled {NETWORK_LABEL} but exposes no port {port}: it is not used as a network gateway; add the port or name another one with label {GATEWAY_PORT_LABEL}"
            ),
        );
        return None;
    }
    Some(port)
}
