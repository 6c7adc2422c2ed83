//! The merged view of every cluster that translation consumes: pure data, shared behind an
//! `Arc`. Each service record is an `Arc` of its own, so a generation that only moved some
//! endpoints shares every other record with the one before (and translation can tell which
//! records changed by pointer).
//!
//! A snapshot is complete on its own. It names what was left out and why ([`Rejection`]), so
//! an operator reading an admin dump or a NACK can find the offending file without the logs.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use multicluster::model::{ClusterId, Endpoint, NetworkGateway, NetworkId, Service};

use crate::istio::service_entry::{Location, Resolution};
use crate::istio::{
    DestinationRuleSpec, GatewaySpec, IstioObject, ServiceEntrySpec, VirtualServiceSpec,
};
use crate::resource::Origin;

/// Everything discovery knows about the mesh at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MeshSnapshot {
    /// Increases by one with every snapshot a source publishes; never reused.
    pub generation: u64,
    pub domain_suffix: String,
    pub trust_domain: String,
    pub system_namespace: String,
    /// In the order of the mesh description, which is also the order of precedence.
    pub clusters: Vec<ClusterInfo>,
    /// Keyed by FQDN hostname (`reviews.default.svc.cluster.local`, or a ServiceEntry host).
    pub services: BTreeMap<String, Arc<ServiceRecord>>,
    /// Every address at which some network's east-west gateway can be reached, sorted.
    pub network_gateways: Vec<NetworkGateway>,
    /// Gateway Services whose address is a DNS name, with what it last resolved to.
    pub gateway_hostnames: Vec<GatewayHostname>,
    /// Valid Istio objects of every cluster, in cluster then file order. Each keeps its
    /// cluster: the same kind/namespace/name may appear once per cluster, and it is for the
    /// consumer to apply a cluster's config to that cluster's gateways.
    pub gateways: Vec<Sourced<IstioObject<GatewaySpec>>>,
    pub virtual_services: Vec<Sourced<IstioObject<VirtualServiceSpec>>>,
    pub destination_rules: Vec<Sourced<IstioObject<DestinationRuleSpec>>>,
    pub service_entries: Vec<Sourced<IstioObject<ServiceEntrySpec>>>,
    pub secrets: BTreeMap<SecretKey, Sourced<Secret>>,
    /// Decode, validation and index problems. Errors mean the resource was left out; warnings
    /// mean it is used but probably not as its author meant.
    pub rejections: Vec<Rejection>,
}

impl MeshSnapshot {
    pub fn service(&self, hostname: &str) -> Option<&ServiceRecord> {
        self.services.get(hostname).map(Arc::as_ref)
    }

    pub fn cluster(&self, id: &str) -> Option<&ClusterInfo> {
        self.clusters
            .iter()
            .find(|cluster| cluster.id.as_str() == id)
    }

    pub fn network_of(&self, cluster: &ClusterId) -> Option<&NetworkId> {
        self.clusters
            .iter()
            .find(|info| &info.id == cluster)
            .map(|info| &info.network)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Rejection> {
        self.rejections
            .iter()
            .filter(|rejection| rejection.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Rejection> {
        self.rejections
            .iter()
            .filter(|rejection| rejection.severity == Severity::Warning)
    }

    pub fn secret(&self, cluster: &ClusterId, namespace: &str, name: &str) -> Option<&Secret> {
        let key = SecretKey {
            cluster: cluster.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        self.secrets.get(&key).map(|sourced| &sourced.object)
    }
}

/// One cluster as the source saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub id: ClusterId,
    pub network: NetworkId,
    /// `files: /etc/isthmus/cluster1`, for status output.
    pub source: String,
    /// How many resources of each kind were read (including ones later rejected).
    pub resources: BTreeMap<String, usize>,
    pub sync: SyncState,
}

impl ClusterInfo {
    pub fn resource_count(&self) -> usize {
        self.resources.values().sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncState {
    /// Nothing has been read yet.
    Pending,
    /// The source was read; individual files or resources may still have been rejected.
    Synced,
    /// The source could not be read at all; the cluster contributes what it last had.
    Failed(String),
}

impl fmt::Display for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncState::Pending => f.write_str("pending"),
            SyncState::Synced => f.write_str("synced"),
            SyncState::Failed(reason) => write!(f, "failed: {reason}"),
        }
    }
}

/// An object together with the cluster and file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub cluster: ClusterId,
    pub origin: Origin,
    pub object: T,
}

/// Secrets are cluster-scoped on purpose: a `credentialName` resolves in the gateway's own
/// cluster, never in another cluster that happens to have a Secret of that name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretKey {
    pub cluster: ClusterId,
    pub namespace: String,
    pub name: String,
}

/// A service and every endpoint of it in every cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    pub service: Service,
    /// Sorted by cluster (mesh description order), then address.
    pub endpoints: Vec<Endpoint>,
    pub origin: ServiceOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceOrigin {
    /// One or more Kubernetes Services of the same namespace/name.
    Kubernetes,
    ServiceEntry(ServiceEntryOrigin),
}

/// What translation needs to know about a ServiceEntry-backed service beyond the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntryOrigin {
    /// `namespace/name` of the ServiceEntry.
    pub entry: String,
    pub location: Location,
    pub resolution: Resolution,
    /// Every host of the entry (this service is one of them).
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDRs the entry declares.
    pub addresses: Vec<String>,
    pub subject_alt_names: Vec<String>,
    /// For `resolution: DNS`/`DNS_ROUND_ROBIN`: names the gateway resolves itself, since their
    /// addresses belong to the data plane's DNS view, not discovery's.
    pub dns_endpoints: Vec<DnsEndpoint>,
}

/// An endpoint known by DNS name only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEndpoint {
    pub hostname: String,
    /// Service port number → the port this endpoint listens on.
    pub ports: BTreeMap<u16, u16>,
    pub labels: BTreeMap<String, String>,
    pub network: NetworkId,
    pub locality: multicluster::model::Locality,
    pub weight: u32,
}

/// A network gateway whose address is a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GatewayHostname {
    pub hostname: String,
    pub network: NetworkId,
    pub cluster: ClusterId,
    pub port: u16,
    /// Last resolved addresses; empty until the first answer arrives.
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A problem with one resource (or one file) of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub cluster: ClusterId,
    /// `path (document N, line L)`, or the path alone for file-level problems.
    pub origin: String,
    /// `Service`, `Gateway`, ...; empty when the problem is about a file, not a resource.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Path of the offending field (`spec.ports[0]`), empty when not about one field.
    pub field: String,
    pub message: String,
    pub severity: Severity,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: cluster {}: {}",
            self.severity, self.cluster, self.origin
        )?;
        if !self.kind.is_empty() {
            write!(f, ": {} ", self.kind)?;
            if !self.namespace.is_empty() {
                write!(f, "{}/", self.namespace)?;
            }
            f.write_str(&self.name)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(kind: &str, field: &str) -> Rejection {
        Rejection {
            cluster: ClusterId::new("cluster1").unwrap(),
            origin: "a.yaml (document 2, line 9)".to_string(),
            kind: kind.to_string(),
            namespace: "default".to_string(),
            name: "reviews".to_string(),
            field: field.to_string(),
            message: "bad".to_string(),
            severity: Severity::Error,
        }
    }

    #[test]
    fn rejection_names_cluster_file_resource_and_field() {
        assert_eq!(
            rejection("Service", "spec.ports[0]").to_string(),
            "error: cluster cluster1: a.yaml (document 2, line 9): Service default/reviews: spec.ports[0]: bad"
        );
        assert_eq!(
            rejection("", "").to_string(),
            "error: cluster cluster1: a.yaml (document 2, line 9): bad"
        );
    }

    #[test]
    fn errors_and_warnings_are_separated() {
        let mut warning = rejection("Pod", "");
        warning.severity = Severity::Warning;
        let snapshot = MeshSnapshot {
            rejections: vec![rejection("Service", ""), warning],
            ..MeshSnapshot::default()
        };
        assert_eq!(snapshot.errors().count(), 1);
        assert_eq!(
            snapshot.warnings().next().map(|w| w.kind.as_str()),
            Some("Pod")
        );
    }
}
