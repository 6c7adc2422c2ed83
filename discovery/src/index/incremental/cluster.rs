//! One cluster's Pods and EndpointSlices as the index keeps them between builds.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use multicluster::model::{ClusterId, Endpoint, Labels, NetworkId, ServicePort};

use crate::resource::{Decoded, EndpointSlice, Pod, Resource};

use super::super::cluster::{ClusterView, Entry, ObjectKey, pod_ips};
use super::super::endpoints::{SliceScope, first_address, pod_reference, slice_endpoints};
use super::super::labels::{LabelInterner, SERVICE_NAME_LABEL, label};
use super::super::problems::Problems;
use super::super::services::merge_endpoints;
use super::{Affected, FileChange, NeedsFullBuild};

/// Where a slice stands in its cluster's resource order: files in path order (the order the
/// directory source lists them in), then documents, then `List` items.
type Position = (PathBuf, usize, Option<usize>);

/// A Service by its index in [`ClusterEndpoints::services`]: refs are kept per pod, and an
/// index per ref is far cheaper than a copy of the Service's name.
type ServiceId = usize;

#[derive(Debug)]
pub(super) struct ClusterEndpoints {
    pub(super) id: ClusterId,
    network: NetworkId,
    /// Whether the full build met the slices in position order; if not, where a new slice
    /// goes among them is unknown and every change needs the full build.
    ordered: bool,
    /// The Services of this cluster that are part of the mesh, with their ports.
    ports: BTreeMap<ObjectKey, Vec<ServicePort>>,
    services: Vec<ObjectKey>,
    service_ids: HashMap<ObjectKey, ServiceId>,
    /// By service id: its slices in resource order (the order the full build merges them in).
    slices: Vec<BTreeMap<Position, Decoded>>,
    slice_names: HashSet<ObjectKey>,
    pods_by_name: HashMap<ObjectKey, Arc<Pod>>,
    pods_by_ip: HashMap<IpAddr, Arc<Pod>>,
    /// Addresses several pods claimed at the full build: the first in file order won there,
    /// and following that order is left to the full build.
    shared_addresses: HashSet<IpAddr>,
    /// Pod and slice names defined more than once (the second is rejected, naming the first).
    duplicated: HashSet<(&'static str, ObjectKey)>,
    /// Services whose slices name a pod, or list an address. Never pruned: a stale entry only
    /// recomputes a service to what it was, and the next full build starts afresh.
    pod_refs: HashMap<ObjectKey, Vec<ServiceId>>,
    address_refs: HashMap<IpAddr, Vec<ServiceId>>,
    /// Sets met since the full build; never pruned, as the next full build starts afresh.
    labels: LabelInterner,
}

impl SliceScope for ClusterEndpoints {
    fn cluster(&self) -> &ClusterId {
        &self.id
    }

    fn default_network(&self) -> &NetworkId {
        &self.network
    }

    fn pod_named(&self, key: &ObjectKey) -> Option<&Pod> {
        self.pods_by_name.get(key).map(AsRef::as_ref)
    }

    fn pod_at(&self, address: &IpAddr) -> Option<&Pod> {
        self.pods_by_ip.get(address).map(AsRef::as_ref)
    }

    fn labels_of(&self, pod: &Pod) -> Labels {
        self.labels.labels_of(&pod.metadata)
    }
}

impl ClusterEndpoints {
    pub(super) fn new(
        view: &ClusterView<'_>,
        resources: &[Decoded],
        ports: &BTreeMap<ObjectKey, Vec<ServicePort>>,
    ) -> Self {
        let mut cluster = ClusterEndpoints {
            id: view.id.clone(),
            network: view.network.clone(),
            ordered: true,
            ports: ports.clone(),
            services: Vec::new(),
            service_ids: HashMap::new(),
            slices: Vec::new(),
            slice_names: HashSet::new(),
            pods_by_name: HashMap::with_capacity(view.pods_by_name.len()),
            pods_by_ip: HashMap::with_capacity(view.pods_by_ip.len()),
            shared_addresses: HashSet::new(),
            duplicated: HashSet::new(),
            pod_refs: HashMap::with_capacity(view.pods_by_name.len()),
            address_refs: HashMap::with_capacity(view.pods_by_ip.len()),
            labels: LabelInterner::default(),
        };
        for (key, pod) in &view.pods_by_name {
            cluster.pods_by_name.insert(key.clone(), Arc::clone(pod));
            for address in pod_ips(pod) {
                match view.pods_by_ip.get(&address) {
                    Some(first) if Arc::ptr_eq(first, pod) => {
                        cluster.pods_by_ip.insert(address, Arc::clone(pod));
                    }
                    _ => {
                        cluster.shared_addresses.insert(address);
                    }
                }
            }
        }
        let mut slice_counts: HashMap<ObjectKey, u32> = HashMap::new();
        for decoded in resources {
            let key = object_key(decoded);
            match &decoded.resource {
                Resource::Pod(pod) => {
                    let accepted = cluster.pods_by_name.get(&key);
                    if !accepted.is_some_and(|accepted| Arc::ptr_eq(accepted, pod)) {
                        cluster.duplicated.insert((decoded.kind(), key));
                    }
                }
                Resource::EndpointSlice(_) => *slice_counts.entry(key).or_default() += 1,
                _ => {}
            }
        }
        cluster.duplicated.extend(
            slice_counts
                .into_iter()
                .filter(|(_, count)| *count > 1)
                .map(|(key, _)| ("EndpointSlice", key)),
        );
        let mut last: Option<Position> = None;
        for slice in &view.slices {
            let at = position(slice.decoded);
            cluster.ordered &= last.as_ref().is_none_or(|last| *last < at);
            last = Some(at);
            cluster.slice_names.insert(object_key(slice.decoded));
            // An unlabelled slice belongs to no service; the full build warned about it.
            let _ = cluster.insert_slice(slice.decoded, slice.object);
        }
        cluster
    }

    /// Takes `changes` into the index and returns the services whose share of this cluster's
    /// endpoints may have changed.
    pub(super) fn update(
        &mut self,
        changes: &[FileChange],
        domain_suffix: &str,
    ) -> Result<Affected, NeedsFullBuild> {
        if !self.ordered {
            return Err(NeedsFullBuild::Unordered(self.id.clone()));
        }
        let mut services: HashSet<ServiceId> = HashSet::new();
        let mut touched_pods: Vec<ObjectKey> = Vec::new();
        let mut touched_addresses: Vec<IpAddr> = Vec::new();
        // Every removal first, so an object that moved between two changed files is not
        // taken for a second definition.
        for decoded in changes.iter().flat_map(|change| &change.before) {
            match &decoded.resource {
                Resource::Pod(pod) => {
                    let key = self.undefine(decoded)?;
                    self.pods_by_name.remove(&key);
                    for address in pod_ips(pod) {
                        if self.shared_addresses.contains(&address) {
                            return Err(NeedsFullBuild::SharedAddress(address));
                        }
                        self.pods_by_ip.remove(&address);
                        touched_addresses.push(address);
                    }
                    touched_pods.push(key);
                }
                Resource::EndpointSlice(slice) => {
                    self.check_slice(decoded, slice, domain_suffix)?;
                    self.undefine(decoded)?;
                    services.insert(self.remove_slice(decoded, slice)?);
                }
                _ => {}
            }
        }
        for decoded in changes.iter().flat_map(|change| &change.after) {
            match &decoded.resource {
                Resource::Pod(pod) => {
                    let key = self.define(decoded)?;
                    for address in pod_ips(pod) {
                        if self.pods_by_ip.contains_key(&address) {
                            return Err(NeedsFullBuild::SharedAddress(address));
                        }
                        self.pods_by_ip.insert(address, Arc::clone(pod));
                        touched_addresses.push(address);
                    }
                    self.pods_by_name.insert(key.clone(), Arc::clone(pod));
                    touched_pods.push(key);
                }
                Resource::EndpointSlice(slice) => {
                    self.check_slice(decoded, slice, domain_suffix)?;
                    self.define(decoded)?;
                    services.insert(self.insert_slice(decoded, slice)?);
                }
                _ => {}
            }
        }
        for key in &touched_pods {
            services.extend(self.pod_refs.get(key).into_iter().flatten());
        }
        for address in &touched_addresses {
            services.extend(self.address_refs.get(address).into_iter().flatten());
        }
        Ok(services
            .into_iter()
            .filter_map(|id| self.services.get(id).cloned())
            .collect())
    }

    /// This cluster's endpoints of `service`, merged as the full build merges them.
    pub(super) fn endpoints_of(&self, service: &ObjectKey, domain_suffix: &str) -> Vec<Endpoint> {
        let mut share = Vec::new();
        let Some(slices) = self
            .service_ids
            .get(service)
            .and_then(|id| self.slices.get(*id))
        else {
            return share;
        };
        for decoded in slices.values() {
            let Resource::EndpointSlice(object) = &decoded.resource else {
                continue;
            };
            // The problems of unchanged slices are in the snapshot already (they depend on
            // the slice and the Service ports only), and changed slices have none.
            let mut problems = Problems::default();
            let entry = Entry {
                decoded,
                object: object.as_ref(),
            };
            if let Some((_, endpoints)) =
                slice_endpoints(self, entry, &self.ports, domain_suffix, &mut problems)
            {
                merge_endpoints(&mut share, endpoints);
            }
        }
        share
    }

    /// Fails when the full build reports something about this slice: its report would have
    /// to appear, vanish or move.
    fn check_slice(
        &self,
        decoded: &Decoded,
        slice: &EndpointSlice,
        domain_suffix: &str,
    ) -> Result<(), NeedsFullBuild> {
        let mut problems = Problems::default();
        let entry = Entry {
            decoded,
            object: slice,
        };
        let _ = slice_endpoints(self, entry, &self.ports, domain_suffix, &mut problems);
        if problems.into_vec().is_empty() {
            Ok(())
        } else {
            Err(NeedsFullBuild::SliceProblem(decoded.origin.to_string()))
        }
    }

    /// Takes a new Pod or slice's name; fails where the full build would reject it.
    fn define(&mut self, decoded: &Decoded) -> Result<ObjectKey, NeedsFullBuild> {
        let key = self.defined_key(decoded)?;
        let taken = match decoded.resource {
            Resource::Pod(_) => self.pods_by_name.contains_key(&key),
            _ => !self.slice_names.insert(key.clone()),
        };
        if taken {
            return Err(definition(decoded));
        }
        Ok(key)
    }

    /// Gives up a Pod or slice's name; fails where another definition would take its place.
    fn undefine(&mut self, decoded: &Decoded) -> Result<ObjectKey, NeedsFullBuild> {
        let key = self.defined_key(decoded)?;
        if let Resource::EndpointSlice(_) = decoded.resource {
            self.slice_names.remove(&key);
        }
        Ok(key)
    }

    fn defined_key(&self, decoded: &Decoded) -> Result<ObjectKey, NeedsFullBuild> {
        let key = object_key(decoded);
        if decoded.name().is_empty() || self.duplicated.contains(&(decoded.kind(), key.clone())) {
            return Err(definition(decoded));
        }
        Ok(key)
    }

    fn remove_slice(
        &mut self,
        decoded: &Decoded,
        slice: &EndpointSlice,
    ) -> Result<ServiceId, NeedsFullBuild> {
        let problem = || NeedsFullBuild::SliceProblem(decoded.origin.to_string());
        let service = slice_service(decoded, slice).ok_or_else(problem)?;
        let id = *self.service_ids.get(&service).ok_or_else(problem)?;
        self.slices
            .get_mut(id)
            .and_then(|slices| slices.remove(&position(decoded)))
            .ok_or_else(problem)?;
        Ok(id)
    }

    /// Files the slice under its service and notes which pods and addresses it names.
    fn insert_slice(
        &mut self,
        decoded: &Decoded,
        slice: &EndpointSlice,
    ) -> Result<ServiceId, NeedsFullBuild> {
        let service = slice_service(decoded, slice)
            .ok_or_else(|| NeedsFullBuild::SliceProblem(decoded.origin.to_string()))?;
        let id = self.service_id(service);
        for endpoint in slice.endpoints.iter().flatten() {
            if let Some(pod) = pod_reference(decoded.namespace(), endpoint) {
                add_ref(self.pod_refs.entry(pod).or_default(), id);
            }
            if let Some(address) = first_address(endpoint) {
                add_ref(self.address_refs.entry(address).or_default(), id);
            }
        }
        if let Some(slices) = self.slices.get_mut(id) {
            slices.insert(position(decoded), decoded.clone());
        }
        Ok(id)
    }

    fn service_id(&mut self, service: ObjectKey) -> ServiceId {
        if let Some(id) = self.service_ids.get(&service) {
            return *id;
        }
        let id = self.services.len();
        self.services.push(service.clone());
        self.service_ids.insert(service, id);
        self.slices.push(BTreeMap::new());
        id
    }
}

fn add_ref(refs: &mut Vec<ServiceId>, id: ServiceId) {
    if !refs.contains(&id) {
        refs.push(id);
    }
}

fn definition(decoded: &Decoded) -> NeedsFullBuild {
    NeedsFullBuild::Definition {
        kind: decoded.kind(),
        origin: decoded.origin.to_string(),
    }
}

fn object_key(decoded: &Decoded) -> ObjectKey {
    (decoded.namespace().to_string(), decoded.name().to_string())
}

fn slice_service(decoded: &Decoded, slice: &EndpointSlice) -> Option<ObjectKey> {
    let name = label(&slice.metadata, SERVICE_NAME_LABEL)?;
    Some((decoded.namespace().to_string(), name.to_string()))
}

fn position(decoded: &Decoded) -> Position {
    (
        PathBuf::from(&decoded.origin.path),
        decoded.origin.document,
        decoded.origin.item,
    )
}
