//! EndpointSlices joined with Pods → mesh endpoints.
//!
//! The slice says where a service's backends are and whether they are ready; the pod says
//! who they are: labels (for subsets), service account (identity), locality, network and
//! whether a mesh proxy terminates mTLS in front of them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::resource::kubernetes::Endpoint as SliceEndpoint;
use crate::resource::{EndpointSlice, Pod};
use multicluster::model::{
    ClusterId, Endpoint, Health, Labels, Locality, NetworkId, ServiceName, ServicePort,
};

use super::cluster::{ClusterView, Entry, ObjectKey};
use super::labels::{
    NETWORK_LABEL, REGION_LABEL, SERVICE_NAME_LABEL, SUBZONE_LABEL, TLS_MODE_ISTIO, TLS_MODE_LABEL,
    ZONE_LABEL, label,
};
use super::problems::Problems;

/// Kubernetes has no endpoint weights; every endpoint counts once.
const KUBERNETES_ENDPOINT_WEIGHT: u32 = 1;
const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// What turning a slice into endpoints needs from its cluster: the full build's
/// [`ClusterView`] and the incremental index (`incremental.rs`) both answer it, so both run
/// the same code.
pub(crate) trait SliceScope {
    fn cluster(&self) -> &ClusterId;
    /// The network of endpoints whose pod names none.
    fn default_network(&self) -> &NetworkId;
    fn pod_named(&self, key: &ObjectKey) -> Option<&Pod>;
    fn pod_at(&self, address: &IpAddr) -> Option<&Pod>;
    /// `pod`'s labels, shared with every other endpoint whose pod has the same set.
    fn labels_of(&self, pod: &Pod) -> Labels;
}

impl SliceScope for ClusterView<'_> {
    fn cluster(&self) -> &ClusterId {
        self.id
    }

    fn default_network(&self) -> &NetworkId {
        &self.network
    }

    fn pod_named(&self, key: &ObjectKey) -> Option<&Pod> {
        self.pods_by_name.get(key).map(|pod| pod.as_ref())
    }

    fn pod_at(&self, address: &IpAddr) -> Option<&Pod> {
        self.pods_by_ip.get(address).map(|pod| pod.as_ref())
    }

    fn labels_of(&self, pod: &Pod) -> Labels {
        self.labels.labels_of(&pod.metadata)
    }
}

/// The endpoints one slice contributes, with the hostname of their service; `None` (after
/// reporting why) when the slice belongs to no known Service.
pub(crate) fn slice_endpoints(
    view: &impl SliceScope,
    slice: Entry<'_, EndpointSlice>,
    service_ports: &BTreeMap<ObjectKey, Vec<ServicePort>>,
    domain_suffix: &str,
    problems: &mut Problems,
) -> Option<(String, Vec<Endpoint>)> {
    let namespace = slice.decoded.namespace();
    let Some(service_name) = label(&slice.object.metadata, SERVICE_NAME_LABEL) else {
        problems.warn(
            view.cluster(),
            slice.decoded,
            "metadata.labels",
            format!(
                "EndpointSlice has no label {SERVICE_NAME_LABEL}: it belongs to no Service and its endpoints are ignored"
            ),
        );
        return None;
    };
    let key = (namespace.to_string(), service_name.to_string());
    let Some(ports) = service_ports.get(&key) else {
        problems.warn(
            view.cluster(),
            slice.decoded,
            "metadata.labels",
            format!(
                "Service {namespace}/{service_name} is not declared in cluster {}: its endpoints here are ignored; add the Service to this cluster",
                view.cluster()
            ),
        );
        return None;
    };
    if !matches!(slice.object.address_type.as_str(), "IPv4" | "IPv6") {
        problems.warn(
            view.cluster(),
            slice.decoded,
            "addressType",
            format!(
                "addressType {:?} is not supported: only IPv4 and IPv6 slices carry endpoints",
                slice.object.address_type
            ),
        );
        return None;
    }
    let port_map = map_ports(view, slice, ports, problems);
    let mut endpoints = Vec::new();
    for (index, slice_endpoint) in slice.object.endpoints.iter().flatten().enumerate() {
        let field = format!("endpoints[{index}].addresses");
        // Kubernetes: consumers use the first address; the others are for other purposes.
        let Some(first) = slice_endpoint.addresses.first() else {
            problems.error(
                view.cluster(),
                slice.decoded,
                &field,
                "endpoint has no address: it is skipped",
            );
            continue;
        };
        let Ok(address) = first.parse::<IpAddr>() else {
            problems.error(
                view.cluster(),
                slice.decoded,
                &format!("{field}[0]"),
                format!("{first:?} is not an IP address: the endpoint is skipped"),
            );
            continue;
        };
        let pod = find_pod(view, namespace, slice_endpoint, address);
        endpoints.push(endpoint(view, address, slice_endpoint, pod, &port_map));
    }
    let hostname = ServiceName::new(namespace, service_name).hostname(domain_suffix);
    Some((hostname, endpoints))
}

/// Service port number → endpoint port, matching slice ports to Service ports by name (the
/// EndpointSlice controller names slice ports after the Service's ports).
fn map_ports(
    view: &impl SliceScope,
    slice: Entry<'_, EndpointSlice>,
    service_ports: &[ServicePort],
    problems: &mut Problems,
) -> BTreeMap<u16, u16> {
    let mut mapped = BTreeMap::new();
    for (index, slice_port) in slice.object.ports.iter().flatten().enumerate() {
        if slice_port.protocol.as_deref().is_some_and(|p| p != "TCP") {
            continue;
        }
        let name = slice_port.name.as_deref().unwrap_or_default();
        let Some(number) = slice_port
            .port
            .and_then(|port| u16::try_from(port).ok())
            .filter(|port| *port != 0)
        else {
            problems.error(
                view.cluster(),
                slice.decoded,
                &format!("ports[{index}].port"),
                format!("port {name:?} has no valid number (1-65535): it is skipped"),
            );
            continue;
        };
        let service_port = service_ports
            .iter()
            .find(|port| port.name.as_deref().unwrap_or_default() == name);
        match service_port {
            Some(service_port) => {
                mapped.insert(service_port.number, number);
            }
            None => {
                let known: Vec<&str> = service_ports
                    .iter()
                    .map(|port| port.name.as_deref().unwrap_or("<unnamed>"))
                    .collect();
                problems.warn(
                    view.cluster(),
                    slice.decoded,
                    &format!("ports[{index}].name"),
                    format!(
                        "port name {name:?} matches no port of the Service (ports: {}): name slice ports after the Service's ports",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    mapped
}

fn find_pod<'v>(
    view: &'v impl SliceScope,
    slice_namespace: &str,
    slice_endpoint: &SliceEndpoint,
    address: IpAddr,
) -> Option<&'v Pod> {
    pod_reference(slice_namespace, slice_endpoint)
        .and_then(|key| view.pod_named(&key))
        .or_else(|| view.pod_at(&address))
}

/// The pod an endpoint's `targetRef` names, if any. The incremental index asks the same
/// question to learn which services a pod's change reaches, so the answer lives in one place.
pub(crate) fn pod_reference(
    slice_namespace: &str,
    slice_endpoint: &SliceEndpoint,
) -> Option<ObjectKey> {
    let reference = slice_endpoint
        .target_ref
        .as_ref()
        .filter(|reference| reference.kind.as_deref().is_none_or(|kind| kind == "Pod"))?;
    let name = reference.name.clone()?;
    let namespace = reference
        .namespace
        .clone()
        .filter(|namespace| !namespace.is_empty())
        .unwrap_or_else(|| slice_namespace.to_string());
    Some((namespace, name))
}

/// The address consumers use (Kubernetes: the first; the others are for other purposes).
pub(crate) fn first_address(slice_endpoint: &SliceEndpoint) -> Option<IpAddr> {
    slice_endpoint.addresses.first()?.parse().ok()
}

fn endpoint(
    view: &impl SliceScope,
    address: IpAddr,
    slice_endpoint: &SliceEndpoint,
    pod: Option<&Pod>,
    ports: &BTreeMap<u16, u16>,
) -> Endpoint {
    let pod_label = |key| pod.and_then(|pod| label(&pod.metadata, key));
    let network = pod_label(NETWORK_LABEL)
        .and_then(|network| NetworkId::new(network).ok())
        .unwrap_or_else(|| view.default_network().clone());
    let locality = Locality {
        region: pod_label(REGION_LABEL).unwrap_or_default().to_string(),
        zone: pod_label(ZONE_LABEL)
            .or(slice_endpoint.zone.as_deref())
            .unwrap_or_default()
            .to_string(),
        subzone: pod_label(SUBZONE_LABEL).unwrap_or_default().to_string(),
    };
    // Without a pod the workload is unknown: no identity, and no proxy to trust with mTLS.
    let service_account = pod
        .map(|pod| {
            pod.spec
                .as_ref()
                .and_then(|spec| spec.service_account_name.clone())
                .filter(|account| !account.is_empty())
                .unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.to_string())
        })
        .unwrap_or_default();
    Endpoint {
        address,
        ports: ports.clone(),
        labels: pod.map(|pod| view.labels_of(pod)).unwrap_or_default(),
        cluster: view.cluster().clone(),
        network,
        locality,
        service_account,
        mtls_capable: pod_label(TLS_MODE_LABEL) == Some(TLS_MODE_ISTIO),
        health: health(slice_endpoint),
        weight: KUBERNETES_ENDPOINT_WEIGHT,
    }
}

/// Kubernetes: an unset `ready` means ready, an unset `terminating` means not terminating.
fn health(slice_endpoint: &SliceEndpoint) -> Health {
    let conditions = slice_endpoint.conditions.as_ref();
    if conditions.and_then(|c| c.terminating).unwrap_or(false) {
        Health::Draining
    } else if conditions.and_then(|c| c.ready).unwrap_or(true) {
        Health::Healthy
    } else {
        Health::Unhealthy
    }
}
