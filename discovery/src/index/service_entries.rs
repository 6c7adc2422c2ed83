//! ServiceEntries → mesh services: one per host, with the entry's ports, and for STATIC
//! resolution the entry's endpoints.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use multicluster::model::{
    ClusterId, Endpoint, Health, Locality, NetworkId, Protocol, Service, ServiceName, ServicePort,
    TargetPort,
};

use crate::istio::service_entry::{Location, Resolution, WorkloadEntry};
use crate::istio::{IstioObject, ServiceEntrySpec};
use crate::mesh::{
    DnsEndpoint, ServiceEntryOrigin, ServiceOrigin, ServiceRecord, Severity, Sourced,
};

use super::problems::Problems;
use super::services::ServiceTable;

const KIND: &str = "ServiceEntry";

/// Adds the services of every ServiceEntry, in cluster order. Services are mesh-wide: an
/// entry of the same namespace/name in a later cluster declares the same services again when
/// its spec is identical (common: config applied to every cluster), and is reported and
/// ignored when it differs.
pub(crate) fn add_service_entries(
    table: &mut ServiceTable,
    entries: &[Sourced<IstioObject<ServiceEntrySpec>>],
    default_network: impl Fn(&ClusterId) -> Option<NetworkId>,
    problems: &mut Problems,
) {
    let mut first_by_name: BTreeMap<(&str, &str), &Sourced<IstioObject<ServiceEntrySpec>>> =
        BTreeMap::new();
    for entry in entries {
        let key = (entry.object.namespace(), entry.object.name());
        if let Some(first) = first_by_name.get(&key) {
            also_declared_in(table, first, entry, problems);
            continue;
        }
        first_by_name.insert(key, entry);
        let Some(network) = default_network(&entry.cluster) else {
            continue;
        };
        add_service_entry(table, entry, &network, problems);
    }
}

fn also_declared_in(
    table: &mut ServiceTable,
    first: &Sourced<IstioObject<ServiceEntrySpec>>,
    entry: &Sourced<IstioObject<ServiceEntrySpec>>,
    problems: &mut Problems,
) {
    if first.object.spec != entry.object.spec {
        problems.about_istio(
            entry,
            KIND,
            Severity::Warning,
            "spec",
            format!(
                "cluster {} defines this ServiceEntry differently at {}: services are mesh-wide, so the definition of the cluster listed first is used and this one is ignored",
                first.cluster, first.origin
            ),
        );
        return;
    }
    let entry_name = format!("{}/{}", entry.object.namespace(), entry.object.name());
    for host in &entry.object.spec.hosts {
        let Some(record) = table.records.get_mut(host) else {
            continue;
        };
        let same_entry = matches!(&record.origin, ServiceOrigin::ServiceEntry(origin) if origin.entry == entry_name);
        if same_entry && !record.service.clusters.contains(&entry.cluster) {
            record.service.clusters.push(entry.cluster.clone());
        }
    }
}

/// Adds every host of `entry` not already taken by a Kubernetes Service or an earlier entry.
/// `default_network` is the network of the entry's cluster, used for endpoints naming none.
fn add_service_entry(
    table: &mut ServiceTable,
    entry: &Sourced<IstioObject<ServiceEntrySpec>>,
    default_network: &NetworkId,
    problems: &mut Problems,
) {
    let spec = &entry.object.spec;
    if spec.workload_selector.is_some() {
        problems.about_istio(
            entry,
            KIND,
            Severity::Warning,
            "spec.workloadSelector",
            "workloadSelector is not supported yet: the entry has no endpoints; list them under spec.endpoints",
        );
    }
    let ports = service_ports(spec);
    let endpoints = static_endpoints(entry, &ports, default_network, problems);
    let dns_endpoints = dns_endpoints(spec, &ports, default_network);
    for (index, host) in spec.hosts.iter().enumerate() {
        if let Some(existing) = table.records.get(host) {
            problems.about_istio(
                entry,
                KIND,
                Severity::Warning,
                &format!("spec.hosts[{index}]"),
                format!(
                    "host {host} is already defined by {}: this entry's definition of it is ignored",
                    describe(existing)
                ),
            );
            continue;
        }
        table.records.insert(
            host.clone(),
            ServiceRecord {
                service: Service {
                    name: ServiceName::new(entry.object.namespace(), host.as_str()),
                    hostname: host.clone(),
                    ports: ports.clone(),
                    clusters: vec![entry.cluster.clone()],
                },
                endpoints: endpoints.clone(),
                origin: ServiceOrigin::ServiceEntry(ServiceEntryOrigin {
                    entry: format!("{}/{}", entry.object.namespace(), entry.object.name()),
                    location: spec.location,
                    resolution: spec.resolution,
                    hosts: spec.hosts.clone(),
                    addresses: spec.addresses.clone(),
                    subject_alt_names: spec.subject_alt_names.clone(),
                    dns_endpoints: with_host(spec, &dns_endpoints, host, &ports, default_network),
                }),
            },
        );
    }
}

fn describe(record: &ServiceRecord) -> String {
    match &record.origin {
        ServiceOrigin::Kubernetes => format!(
            "Kubernetes Service {} in cluster(s) {}",
            record.service.name,
            record
                .service
                .clusters
                .iter()
                .map(ClusterId::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ServiceOrigin::ServiceEntry(origin) => format!("ServiceEntry {}", origin.entry),
    }
}

fn service_ports(spec: &ServiceEntrySpec) -> Vec<ServicePort> {
    let mut ports: Vec<ServicePort> = spec
        .ports
        .iter()
        .filter_map(|port| {
            let number = u16::try_from(port.number).ok()?;
            let target = u16::try_from(port.target_port)
                .ok()
                .filter(|target| *target != 0)
                .unwrap_or(number);
            Some(ServicePort {
                name: Some(port.name.clone()).filter(|name| !name.is_empty()),
                number,
                protocol: Protocol::for_service_port(Some(&port.protocol), Some(&port.name)),
                target_port: TargetPort::Number(target),
            })
        })
        .collect();
    ports.sort_by_key(|port| port.number);
    ports
}

/// Service port number → endpoint port: the endpoint's own port for that port name, else the
/// service port's target port.
fn endpoint_ports(workload: &WorkloadEntry, ports: &[ServicePort]) -> BTreeMap<u16, u16> {
    ports
        .iter()
        .map(|port| {
            let own = port
                .name
                .as_ref()
                .and_then(|name| workload.ports.get(name))
                .and_then(|number| u16::try_from(*number).ok())
                .filter(|number| *number != 0);
            let target = match port.target_port {
                TargetPort::Number(target) => target,
                TargetPort::Name(_) => port.number,
            };
            (port.number, own.unwrap_or(target))
        })
        .collect()
}

fn network_of(workload: &WorkloadEntry, default_network: &NetworkId) -> NetworkId {
    NetworkId::new(workload.network.as_str()).unwrap_or_else(|_| default_network.clone())
}

fn static_endpoints(
    entry: &Sourced<IstioObject<ServiceEntrySpec>>,
    ports: &[ServicePort],
    default_network: &NetworkId,
    problems: &mut Problems,
) -> Vec<Endpoint> {
    let spec = &entry.object.spec;
    if spec.resolution != Resolution::Static {
        return Vec::new();
    }
    let mut endpoints = Vec::new();
    for (index, workload) in spec.endpoints.iter().enumerate() {
        let Ok(address) = workload.address.parse::<IpAddr>() else {
            problems.about_istio(
                entry,
                KIND,
                Severity::Warning,
                &format!("spec.endpoints[{index}].address"),
                format!(
                    "address {:?} is not an IP address: only IP endpoints are served, this one is skipped",
                    workload.address
                ),
            );
            continue;
        };
        endpoints.push(Endpoint {
            address,
            ports: endpoint_ports(workload, ports),
            labels: Arc::new(workload.labels.clone()),
            cluster: entry.cluster.clone(),
            network: network_of(workload, default_network),
            locality: Locality::parse(&workload.locality),
            service_account: workload.service_account.clone(),
            // MESH_INTERNAL declares a mesh workload behind the address, which terminates mTLS.
            mtls_capable: spec.location == Location::MeshInternal,
            health: Health::Healthy,
            weight: workload.weight,
        });
    }
    endpoints.sort_by_key(|endpoint| endpoint.address);
    endpoints
}

fn dns_endpoints(
    spec: &ServiceEntrySpec,
    ports: &[ServicePort],
    default_network: &NetworkId,
) -> Vec<DnsEndpoint> {
    if !is_dns(spec.resolution) {
        return Vec::new();
    }
    spec.endpoints
        .iter()
        .map(|workload| DnsEndpoint {
            hostname: workload.address.clone(),
            ports: endpoint_ports(workload, ports),
            labels: workload.labels.clone(),
            network: network_of(workload, default_network),
            locality: Locality::parse(&workload.locality),
            weight: workload.weight,
        })
        .collect()
}

/// Istio: a DNS entry without endpoints resolves each host itself.
fn with_host(
    spec: &ServiceEntrySpec,
    listed: &[DnsEndpoint],
    host: &str,
    ports: &[ServicePort],
    default_network: &NetworkId,
) -> Vec<DnsEndpoint> {
    if !is_dns(spec.resolution) || !listed.is_empty() || host.starts_with('*') {
        return listed.to_vec();
    }
    vec![DnsEndpoint {
        hostname: host.to_string(),
        ports: endpoint_ports(&WorkloadEntry::default(), ports),
        labels: BTreeMap::new(),
        network: default_network.clone(),
        locality: Locality::default(),
        weight: 0,
    }]
}

fn is_dns(resolution: Resolution) -> bool {
    matches!(resolution, Resolution::Dns | Resolution::DnsRoundRobin)
}
