//! Kubernetes Services → mesh services, merged across clusters by namespace/name.

use std::collections::BTreeMap;

use crate::resource::Service as KubeService;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use multicluster::model::{
    ClusterId, Endpoint, Protocol, Service, ServiceName, ServicePort, TargetPort,
};

use crate::mesh::{ServiceOrigin, ServiceRecord};

use super::cluster::Entry;
use super::problems::Problems;

/// The ports of one cluster's Service as the mesh sees them, or `None` when the Service is not
/// part of the mesh (ExternalName).
pub(crate) fn kubernetes_ports(
    cluster: &ClusterId,
    entry: Entry<'_, KubeService>,
    problems: &mut Problems,
) -> Option<Vec<ServicePort>> {
    let spec = entry.object.spec.as_ref();
    if spec.and_then(|spec| spec.type_.as_deref()) == Some("ExternalName") {
        problems.warn(
            cluster,
            entry.decoded,
            "spec.type",
            "ExternalName Services are not part of the mesh and are skipped: describe the external host with a ServiceEntry instead",
        );
        return None;
    }
    let mut ports: Vec<ServicePort> = Vec::new();
    for (index, port) in spec
        .and_then(|spec| spec.ports.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        // Istio proxies TCP only; UDP and SCTP ports (DNS, for one) are simply not meshed.
        if port.protocol.as_deref().is_some_and(|p| p != "TCP") {
            continue;
        }
        let field = format!("spec.ports[{index}]");
        let Some(number) = valid_port(port.port) else {
            problems.error(
                cluster,
                entry.decoded,
                &format!("{field}.port"),
                format!(
                    "port {} is out of range 1-65535: the port is skipped",
                    port.port
                ),
            );
            continue;
        };
        if ports.iter().any(|known| known.number == number) {
            problems.warn(
                cluster,
                entry.decoded,
                &format!("{field}.port"),
                format!("port {number} is listed twice: the first listing is used"),
            );
            continue;
        }
        let target_port = match &port.target_port {
            Some(IntOrString::String(name)) if !name.is_empty() => TargetPort::Name(name.clone()),
            Some(IntOrString::Int(target)) => match valid_port(*target) {
                Some(target) => TargetPort::Number(target),
                None => {
                    problems.error(
                        cluster,
                        entry.decoded,
                        &format!("{field}.targetPort"),
                        format!("targetPort {target} is out of range 1-65535: the port is skipped"),
                    );
                    continue;
                }
            },
            _ => TargetPort::Number(number),
        };
        ports.push(ServicePort {
            name: port.name.clone().filter(|name| !name.is_empty()),
            number,
            protocol: Protocol::for_service_port(
                port.app_protocol.as_deref(),
                port.name.as_deref(),
            ),
            target_port,
        });
    }
    Some(ports)
}

fn valid_port(number: i32) -> Option<u16> {
    u16::try_from(number).ok().filter(|port| *port != 0)
}

/// Services keyed by hostname while the snapshot is built.
#[derive(Debug, Default)]
pub(crate) struct ServiceTable {
    pub(crate) records: BTreeMap<String, ServiceRecord>,
}

impl ServiceTable {
    /// Adds one cluster's declaration of a Kubernetes Service. The same namespace/name in
    /// another cluster is the same service: ports are merged by number, and where two
    /// clusters disagree on a port's protocol the cluster listed first wins.
    pub(crate) fn merge_kubernetes(
        &mut self,
        cluster: &ClusterId,
        entry: Entry<'_, KubeService>,
        ports: &[ServicePort],
        domain_suffix: &str,
        problems: &mut Problems,
    ) {
        let name = ServiceName::new(entry.decoded.namespace(), entry.decoded.name());
        let hostname = name.hostname(domain_suffix);
        let Some(record) = self.records.get_mut(&hostname) else {
            let mut ports = ports.to_vec();
            ports.sort_by_key(|port| port.number);
            self.records.insert(
                hostname.clone(),
                ServiceRecord {
                    service: Service {
                        name,
                        hostname,
                        ports,
                        clusters: vec![cluster.clone()],
                    },
                    endpoints: Vec::new(),
                    origin: ServiceOrigin::Kubernetes,
                },
            );
            return;
        };
        let service = &mut record.service;
        for port in ports {
            match service.ports.iter().find(|known| known.number == port.number) {
                Some(known) if known.protocol != port.protocol => problems.warn(
                    cluster,
                    entry.decoded,
                    "spec.ports",
                    format!(
                        "port {} is {} here but {} in cluster {}: the first cluster's protocol is used; give the port the same name or appProtocol everywhere",
                        port.number,
                        port.protocol,
                        known.protocol,
                        service.clusters.first().map(ClusterId::as_str).unwrap_or_default(),
                    ),
                ),
                Some(_) => {}
                None => service.ports.push(port.clone()),
            }
        }
        service.ports.sort_by_key(|port| port.number);
        if !service.clusters.contains(cluster) {
            service.clusters.push(cluster.clone());
        }
    }

    /// Adds endpoints of one cluster (see [`merge_endpoints`]).
    pub(crate) fn add_endpoints(&mut self, hostname: &str, endpoints: Vec<Endpoint>) {
        if let Some(record) = self.records.get_mut(hostname) {
            merge_endpoints(&mut record.endpoints, endpoints);
        }
    }

    /// Orders endpoints by cluster (in `cluster_order`) then address, for stable snapshots.
    pub(crate) fn sort_endpoints(&mut self, cluster_order: &[ClusterId]) {
        for record in self.records.values_mut() {
            sort_endpoints(&mut record.endpoints, cluster_order);
        }
    }
}

/// Adds endpoints of one cluster to `known`; an address already known for that cluster gains
/// the ports it did not have (EndpointSlices may split one workload's ports). Endpoints of
/// different clusters never merge, which is what lets one cluster's share be recomputed alone.
pub(crate) fn merge_endpoints(known: &mut Vec<Endpoint>, endpoints: Vec<Endpoint>) {
    for endpoint in endpoints {
        match known
            .iter_mut()
            .find(|known| known.cluster == endpoint.cluster && known.address == endpoint.address)
        {
            Some(known) => {
                for (service_port, target) in endpoint.ports {
                    known.ports.entry(service_port).or_insert(target);
                }
            }
            None => known.push(endpoint),
        }
    }
}

/// Orders endpoints by cluster (in `cluster_order`) then address, for stable snapshots.
pub(crate) fn sort_endpoints(endpoints: &mut [Endpoint], cluster_order: &[ClusterId]) {
    let position = |cluster: &ClusterId| {
        cluster_order
            .iter()
            .position(|known| known == cluster)
            .unwrap_or(usize::MAX)
    };
    endpoints.sort_by_key(|endpoint| (position(&endpoint.cluster), endpoint.address));
}
