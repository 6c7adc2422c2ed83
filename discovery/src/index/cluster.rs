//! One cluster's resources after validation and de-duplication, grouped for lookups.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use multicluster::model::{ClusterId, NetworkId};

use crate::istio::validate_resource;
use crate::mesh::Severity;
use crate::resource::{Decoded, EndpointSlice, Pod, Resource, Service};

use super::labels::{LabelInterner, NETWORK_LABEL};
use super::problems::Problems;

/// A typed object and the decoded resource it came from (for origins in messages).
pub(crate) struct Entry<'a, T> {
    pub(crate) decoded: &'a Decoded,
    pub(crate) object: &'a T,
}

// Manual impls: a derive would needlessly require `T: Clone`/`T: Copy`.
impl<T> Clone for Entry<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Entry<'_, T> {}

/// `(namespace, name)`.
pub(crate) type ObjectKey = (String, String);

pub(crate) struct ClusterView<'a> {
    pub(crate) id: &'a ClusterId,
    /// The network of endpoints that carry no network label of their own: the system
    /// namespace's label, else the cluster's configured network.
    pub(crate) network: NetworkId,
    pub(crate) services: BTreeMap<ObjectKey, Entry<'a, Service>>,
    pub(crate) slices: Vec<Entry<'a, EndpointSlice>>,
    pub(crate) pods_by_name: BTreeMap<ObjectKey, &'a Arc<Pod>>,
    pub(crate) pods_by_ip: BTreeMap<IpAddr, &'a Arc<Pod>>,
    pub(crate) secrets: Vec<Entry<'a, Secret>>,
    /// Valid Istio objects (Gateway, VirtualService, DestinationRule, ServiceEntry) in file order.
    pub(crate) istio: Vec<&'a Decoded>,
    pub(crate) labels: LabelInterner,
}

impl<'a> ClusterView<'a> {
    /// Validates every resource; invalid ones and repeated kind/namespace/name are reported
    /// and left out.
    pub(crate) fn new(
        id: &'a ClusterId,
        configured_network: &NetworkId,
        system_namespace: &str,
        resources: &'a [Decoded],
        problems: &mut Problems,
    ) -> Self {
        let mut view = ClusterView {
            id,
            network: configured_network.clone(),
            services: BTreeMap::new(),
            slices: Vec::new(),
            pods_by_name: BTreeMap::new(),
            pods_by_ip: BTreeMap::new(),
            secrets: Vec::new(),
            istio: Vec::new(),
            labels: LabelInterner::default(),
        };
        let mut first_seen: BTreeMap<(&str, &str, &str), &Decoded> = BTreeMap::new();
        for decoded in resources {
            if !passes_validation(id, decoded, problems) {
                continue;
            }
            let key = (decoded.kind(), decoded.namespace(), decoded.name());
            if let Some(first) = first_seen.get(&key) {
                problems.error(
                    id,
                    decoded,
                    "metadata.name",
                    format!(
                        "{} {} is defined twice in this cluster, first at {}: the first definition is used; remove or rename one",
                        decoded.kind(),
                        qualified(decoded),
                        first.origin
                    ),
                );
                continue;
            }
            first_seen.insert(key, decoded);
            view.add(decoded, system_namespace);
        }
        view
    }

    fn add(&mut self, decoded: &'a Decoded, system_namespace: &str) {
        let key = || (decoded.namespace().to_string(), decoded.name().to_string());
        match &decoded.resource {
            Resource::Namespace(namespace) => {
                let labelled = namespace
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|labels| labels.get(NETWORK_LABEL))
                    .and_then(|network| NetworkId::new(network.as_str()).ok());
                if decoded.name() == system_namespace
                    && let Some(network) = labelled
                {
                    self.network = network;
                }
            }
            Resource::Service(service) => {
                self.services.insert(
                    key(),
                    Entry {
                        decoded,
                        object: service,
                    },
                );
            }
            Resource::EndpointSlice(slice) => self.slices.push(Entry {
                decoded,
                object: slice,
            }),
            Resource::Pod(pod) => {
                for ip in pod_ips(pod) {
                    self.pods_by_ip.entry(ip).or_insert(pod);
                }
                self.pods_by_name.insert(key(), pod);
            }
            Resource::Secret(secret) => self.secrets.push(Entry {
                decoded,
                object: secret,
            }),
            Resource::Gateway(_)
            | Resource::VirtualService(_)
            | Resource::DestinationRule(_)
            | Resource::ServiceEntry(_) => self.istio.push(decoded),
        }
    }
}

/// Kubernetes kinds pass (the API server already checked them); Istio kinds get the
/// webhook's rules, whose warnings are kept as warnings.
fn passes_validation(id: &ClusterId, decoded: &Decoded, problems: &mut Problems) -> bool {
    if decoded.name().is_empty() {
        problems.error(
            id,
            decoded,
            "metadata.name",
            format!(
                "{} has no metadata.name: every object needs a name",
                decoded.kind()
            ),
        );
        return false;
    }
    let report = validate_resource(&decoded.resource);
    let valid = report.is_valid();
    for problem in report.errors {
        problems.validation(id, decoded, problem, Severity::Error);
    }
    for problem in report.warnings {
        problems.validation(id, decoded, problem, Severity::Warning);
    }
    valid
}

fn qualified(decoded: &Decoded) -> String {
    if decoded.namespace().is_empty() {
        decoded.name().to_string()
    } else {
        format!("{}/{}", decoded.namespace(), decoded.name())
    }
}

/// Every IP the pod's status reports, deduplicated; unparsable entries are ignored since the
/// pod is only used to enrich endpoints found through EndpointSlices.
pub(crate) fn pod_ips(pod: &Pod) -> BTreeSet<IpAddr> {
    let Some(status) = &pod.status else {
        return BTreeSet::new();
    };
    status
        .pod_ip
        .iter()
        .chain(status.pod_ips.iter().flatten().map(|pod_ip| &pod_ip.ip))
        .filter_map(|ip| ip.parse().ok())
        .collect()
}
