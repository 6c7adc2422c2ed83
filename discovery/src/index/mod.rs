//! Resources → mesh model: a pure function from every cluster's decoded resources (plus what
//! gateway hostnames resolved to) to one [`MeshSnapshot`].
//!
//! Nothing here fails as a whole. A resource that is invalid, duplicated or dangling is left
//! out and named in [`MeshSnapshot::rejections`]; everything else keeps working.

mod cluster;
mod endpoints;
mod gateways;
mod incremental;
mod istio_config;
pub mod labels;
mod problems;
mod service_entries;
mod services;

use std::collections::BTreeMap;
use std::sync::Arc;

use multicluster::model::{ClusterId, ServicePort};

use crate::mesh::{ClusterInfo, MeshSnapshot, Rejection, SecretKey, Sourced, SyncState};
use crate::mesh_config::MeshConfig;
use crate::resolve::ResolvedHosts;
use crate::resource::Decoded;

use cluster::{ClusterView, ObjectKey};
use gateways::Gateways;
use problems::Problems;

pub use incremental::{Applied, EndpointIndex, FileChange, NeedsFullBuild};
use services::ServiceTable;

/// What a source read from one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterResources {
    pub cluster: ClusterId,
    pub resources: Vec<Decoded>,
    /// Problems the source found before the index ran: unreadable files, YAML errors.
    pub problems: Vec<Rejection>,
    pub sync: SyncState,
}

impl ClusterResources {
    pub fn new(cluster: ClusterId, resources: Vec<Decoded>) -> Self {
        Self {
            cluster,
            resources,
            problems: Vec::new(),
            sync: SyncState::Synced,
        }
    }
}

/// Everything the index needs.
#[derive(Debug, Clone, Copy)]
pub struct IndexInput<'a> {
    pub config: &'a MeshConfig,
    /// Matched to the configured clusters by id; a configured cluster without an entry is
    /// [`SyncState::Pending`], an entry for an unknown cluster is ignored.
    pub clusters: &'a [ClusterResources],
    pub resolved: &'a ResolvedHosts,
    pub generation: u64,
}

/// Builds the mesh model.
pub fn build_snapshot(input: IndexInput<'_>) -> MeshSnapshot {
    build(input, None)
}

/// Builds the mesh model and the index that later endpoint-only changes update
/// ([`EndpointIndex::apply`]).
pub fn build_indexed(input: IndexInput<'_>) -> (MeshSnapshot, EndpointIndex) {
    let mut index = EndpointIndex::new(
        input.config.clusters.iter().map(|c| c.id.clone()).collect(),
        input.config.domain_suffix.clone(),
    );
    let snapshot = build(input, Some(&mut index));
    (snapshot, index)
}

fn build(input: IndexInput<'_>, index: Option<&mut EndpointIndex>) -> MeshSnapshot {
    let config = input.config;
    let mut problems = Problems::default();
    let mut infos = Vec::with_capacity(config.clusters.len());
    let mut views = Vec::with_capacity(config.clusters.len());
    let mut reads = Vec::with_capacity(config.clusters.len());
    for cluster in &config.clusters {
        let read = input
            .clusters
            .iter()
            .find(|read| read.cluster == cluster.id);
        infos.push(ClusterInfo {
            id: cluster.id.clone(),
            network: cluster.network.clone(),
            source: cluster.source.to_string(),
            resources: count_kinds(
                read.map(|read| read.resources.as_slice())
                    .unwrap_or_default(),
            ),
            sync: read.map_or(SyncState::Pending, |read| read.sync.clone()),
        });
        let Some(read) = read else {
            continue;
        };
        for problem in &read.problems {
            problems.push(problem.clone());
        }
        reads.push(read);
        views.push(ClusterView::new(
            &cluster.id,
            &cluster.network,
            &config.system_namespace,
            &read.resources,
            &mut problems,
        ));
    }

    let mut table = ServiceTable::default();
    let mut ports_by_cluster: Vec<BTreeMap<ObjectKey, Vec<ServicePort>>> = Vec::new();
    for view in &views {
        let mut ports_by_service = BTreeMap::new();
        for (key, entry) in &view.services {
            let Some(ports) = services::kubernetes_ports(view.id, *entry, &mut problems) else {
                continue;
            };
            table.merge_kubernetes(
                view.id,
                *entry,
                &ports,
                &config.domain_suffix,
                &mut problems,
            );
            ports_by_service.insert(key.clone(), ports);
        }
        ports_by_cluster.push(ports_by_service);
    }
    if let Some(index) = index {
        for ((view, ports), read) in views.iter().zip(&ports_by_cluster).zip(&reads) {
            index.add_cluster(view, &read.resources, ports);
        }
    }
    for (view, ports) in views.iter().zip(&ports_by_cluster) {
        for slice in &view.slices {
            if let Some((hostname, endpoints)) = endpoints::slice_endpoints(
                view,
                *slice,
                ports,
                &config.domain_suffix,
                &mut problems,
            ) {
                table.add_endpoints(&hostname, endpoints);
            }
        }
    }

    let mut gateways = Gateways::default();
    for view in &views {
        gateways.add_cluster(view, input.resolved, &mut problems);
    }
    let gateways = gateways.finish();

    let istio = istio_config::collect(&views);
    service_entries::add_service_entries(
        &mut table,
        &istio.service_entries,
        |cluster| {
            views
                .iter()
                .find(|view| view.id == cluster)
                .map(|view| view.network.clone())
        },
        &mut problems,
    );
    let cluster_order: Vec<ClusterId> = config.clusters.iter().map(|c| c.id.clone()).collect();
    table.sort_endpoints(&cluster_order);

    let mut secrets = BTreeMap::new();
    for view in &views {
        for secret in &view.secrets {
            let key = SecretKey {
                cluster: view.id.clone(),
                namespace: secret.decoded.namespace().to_string(),
                name: secret.decoded.name().to_string(),
            };
            secrets.insert(
                key,
                Sourced {
                    cluster: view.id.clone(),
                    origin: secret.decoded.origin.clone(),
                    object: secret.object.clone(),
                },
            );
        }
    }

    MeshSnapshot {
        generation: input.generation,
        domain_suffix: config.domain_suffix.clone(),
        trust_domain: config.trust_domain.clone(),
        system_namespace: config.system_namespace.clone(),
        clusters: infos,
        services: table
            .records
            .into_iter()
            .map(|(hostname, record)| (hostname, Arc::new(record)))
            .collect(),
        network_gateways: gateways.addresses,
        gateway_hostnames: gateways.hostnames,
        gateways: istio.gateways,
        virtual_services: istio.virtual_services,
        destination_rules: istio.destination_rules,
        service_entries: istio.service_entries,
        secrets,
        rejections: problems.into_vec(),
    }
}

fn count_kinds(resources: &[Decoded]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for decoded in resources {
        *counts.entry(decoded.kind().to_string()).or_default() += 1;
    }
    counts
}
