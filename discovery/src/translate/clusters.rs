//! Upstream clusters: one per (service, port, subset), named `outbound|port|subset|host`, with the
//! endpoints this gateway may dial and the DestinationRule's traffic policy.

use std::borrow::Cow;
use std::sync::Arc;

use multicluster::model::{Endpoint, Health};
use multicluster::proto;
use multicluster::sni::SniKey;
use multicluster::view::{ViewKind, view_from_network};

use crate::istio::destination_rule::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, LoadBalancerSettings,
    OutlierDetection, SimpleLoadBalancer, TrafficPolicy,
};
use crate::mesh::{ServiceOrigin, ServiceRecord};

use super::{Item, Translator};

/// Which endpoints a cluster may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EndpointScope {
    /// East-west: only mTLS-capable workloads on the gateway's own network. Anything else
    /// would turn the gateway into a relay into networks it does not front.
    OwnNetworkMtls,
    /// Ingress and egress: what the split-horizon view lets this network dial directly.
    Reachable,
}

/// A destination as a route names it, already fully qualified.
pub(super) struct Target<'t> {
    pub host: &'t str,
    pub port: Option<u32>,
    pub subset: &'t str,
}

impl Translator<'_> {
    /// Returns the cluster name for `target`, creating the cluster on first use. Problems are
    /// rejected against `item`/`field`; the cluster is still created (empty) whenever its name is
    /// known, so the route answers "no healthy upstream" instead of vanishing.
    pub(super) fn cluster_for(
        &mut self,
        item: &Item<'_>,
        field: &str,
        target: &Target<'_>,
        scope: EndpointScope,
    ) -> Option<String> {
        let shared_record = self.snapshot.services.get(target.host);
        let record = shared_record.map(Arc::as_ref);
        let port = match (target.port, record) {
            (Some(port), _) => port,
            (None, Some(record)) if record.service.ports.len() == 1 => {
                u32::from(record.service.ports[0].number)
            }
            (None, Some(record)) => {
                let ports = port_list(record);
                self.reject(
                    item,
                    field,
                    format!(
                        "destination {} needs a port: the service has ports {}",
                        target.host, ports
                    ),
                );
                return None;
            }
            (None, None) => {
                self.reject(
                    item,
                    field,
                    format!("no service {} (and no port given)", target.host),
                );
                return None;
            }
        };
        let key = match u16::try_from(port)
            .map_err(|_| format!("port {port} is out of range"))
            .and_then(|port| {
                SniKey::new(port, Some(target.subset), target.host).map_err(|e| e.to_string())
            }) {
            Ok(key) => key,
            Err(reason) => {
                self.reject(
                    item,
                    field,
                    format!("destination {}: {reason}", target.host),
                );
                return None;
            }
        };
        let name = key.to_cluster_name();
        if self.clusters.contains_key(&name) || self.reused.contains_key(&name) {
            return Some(name);
        }
        if let Some(entry) = shared_record.and_then(|r| self.reusable(&name, r, scope)) {
            self.reused.insert(name.clone(), entry);
            return Some(name);
        }
        let side_effects = (self.rejections.len(), self.credentials.len());
        let cluster = self.build_cluster(item, field, &key, record, scope);
        // Only a build that changed nothing but its own output can be replayed from bytes.
        let pure = side_effects == (self.rejections.len(), self.credentials.len())
            && cluster.tls.is_none();
        if self.track_provenance
            && pure
            && let Some(record) = shared_record
        {
            self.provenance
                .insert(name.clone(), super::reuse::Provenance::new(record, scope));
        }
        self.clusters.insert(name.clone(), cluster);
        Some(name)
    }

    fn build_cluster(
        &mut self,
        item: &Item<'_>,
        field: &str,
        key: &SniKey,
        record: Option<&ServiceRecord>,
        scope: EndpointScope,
    ) -> proto::Cluster {
        let mut cluster = proto::Cluster {
            name: key.to_cluster_name(),
            service: key.host().to_owned(),
            port: u32::from(key.port()),
            subset: key.subset().unwrap_or_default().to_owned(),
            ..Default::default()
        };
        let Some(record) = record else {
            self.reject(
                item,
                field,
                format!(
                    "no service {} in any cluster: requests to it get 503 (no healthy upstream). \
                     Short names resolve in the VirtualService's own namespace",
                    key.host()
                ),
            );
            return cluster;
        };
        let Some(service_port) = record.service.port(key.port()) else {
            let ports = port_list(record);
            self.reject(
                item,
                field,
                format!(
                    "service {} has no port {} (ports: {})",
                    key.host(),
                    key.port(),
                    ports
                ),
            );
            return cluster;
        };
        cluster.protocol = super::listeners::proto_protocol(service_port.protocol) as i32;

        let rule = self.destination_rule(key.host());
        let subset = match key.subset() {
            None => None,
            Some(name) => match rule.and_then(|r| r.spec.subsets.iter().find(|s| s.name == name)) {
                Some(subset) => Some(subset),
                None => {
                    self.reject(
                        item,
                        field,
                        format!(
                            "subset {name} of {} is not defined by any DestinationRule: requests to it get 503",
                            key.host()
                        ),
                    );
                    return cluster;
                }
            },
        };
        let selector = subset.map(|s| s.labels.clone()).unwrap_or_default();
        // Most clusters have no subset: their members are the service's endpoints as they are.
        let members: Cow<'_, [Endpoint]> = if selector.is_empty() {
            Cow::Borrowed(&record.endpoints)
        } else {
            record
                .endpoints
                .iter()
                .filter(|endpoint| endpoint.matches_labels(&selector))
                .cloned()
                .collect()
        };
        cluster.endpoints = self.endpoints(item, field, key, &members, scope);
        if let ServiceOrigin::ServiceEntry(entry) = &record.origin {
            cluster.dns_targets = entry
                .dns_endpoints
                .iter()
                .filter(|endpoint| {
                    selector
                        .iter()
                        .all(|(k, v)| endpoint.labels.get(k) == Some(v))
                })
                .map(|endpoint| {
                    let port = endpoint
                        .ports
                        .get(&key.port())
                        .copied()
                        .unwrap_or(key.port());
                    proto::DnsTarget {
                        hostname: endpoint.hostname.clone(),
                        port: u32::from(port),
                        weight: endpoint.weight.max(1),
                    }
                })
                .collect();
        }

        let policy = effective_policy(
            rule.and_then(|r| r.spec.traffic_policy.as_ref()),
            subset.and_then(|s| s.traffic_policy.as_ref()),
            key.port(),
        );
        self.apply_policy(item, field, &mut cluster, &policy);
        cluster
    }

    fn endpoints(
        &mut self,
        item: &Item<'_>,
        field: &str,
        key: &SniKey,
        members: &[Endpoint],
        scope: EndpointScope,
    ) -> Vec<proto::Endpoint> {
        let Some(network) = self.network.clone() else {
            return Vec::new();
        };
        match scope {
            EndpointScope::OwnNetworkMtls => members
                .iter()
                .filter(|endpoint| endpoint.network == network && endpoint.mtls_capable)
                .filter_map(|endpoint| {
                    let port = *endpoint.ports.get(&key.port())?;
                    Some(proto_endpoint(endpoint, port))
                })
                .collect(),
            EndpointScope::Reachable => {
                let view = view_from_network(
                    &network,
                    key.port(),
                    members,
                    &self.snapshot.network_gateways,
                );
                let behind_gateways: u32 = view
                    .endpoints
                    .iter()
                    .filter_map(|e| match e.kind {
                        ViewKind::Gateway { endpoints, .. } => Some(endpoints),
                        ViewKind::Direct { .. } => None,
                    })
                    .sum();
                if behind_gateways > 0 {
                    self.reject(
                        item,
                        field,
                        format!(
                            "{behind_gateways} endpoint(s) of {} are on other networks; this gateway does not \
                             originate mesh mTLS yet, so only endpoints on network {network} are used",
                            key.host()
                        ),
                    );
                }
                members
                    .iter()
                    .filter(|endpoint| endpoint.network == network)
                    .filter_map(|endpoint| {
                        let port = *endpoint.ports.get(&key.port())?;
                        Some(proto_endpoint(endpoint, port))
                    })
                    .collect()
            }
        }
    }

    fn apply_policy(
        &mut self,
        item: &Item<'_>,
        field: &str,
        cluster: &mut proto::Cluster,
        policy: &Policy<'_>,
    ) {
        if let Some(lb) = policy.load_balancer.and_then(|lb| lb.simple) {
            cluster.load_balancer = match lb {
                SimpleLoadBalancer::LeastConn | SimpleLoadBalancer::LeastRequest => {
                    proto::LoadBalancer::LeastRequest
                }
                SimpleLoadBalancer::Random => proto::LoadBalancer::Random,
                _ => proto::LoadBalancer::RoundRobin,
            } as i32;
        }
        if let Some(outlier) = policy.outlier_detection {
            cluster.outlier_detection = Some(outlier_detection(outlier));
        }
        if let Some(pool) = policy.connection_pool {
            let (pool, connect_timeout_ms) = connection_pool(pool);
            cluster.connection_pool = Some(pool);
            cluster.connect_timeout_ms = connect_timeout_ms;
        }
        if let Some(tls) = policy.tls.filter(|tls| tls.mode != ClientTlsMode::Disable) {
            match self.upstream_credential(tls) {
                Ok(credential) => {
                    cluster.tls = Some(proto::UpstreamTls {
                        mode: match tls.mode {
                            ClientTlsMode::Mutual => proto::TlsMode::Mutual,
                            ClientTlsMode::IstioMutual => proto::TlsMode::IstioMutual,
                            _ => proto::TlsMode::Simple,
                        } as i32,
                        sni: tls.sni.clone(),
                        credential,
                        subject_alt_names: tls.subject_alt_names.clone().unwrap_or_default(),
                        insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
                    });
                }
                Err(reason) => self.reject(item, field, format!("{}: {reason}", cluster.name)),
            }
        }
    }
}

/// The traffic policy in force for one port of one subset: subset beats rule, port-level
/// settings beat the level they sit in (Istio's precedence).
struct Policy<'p> {
    load_balancer: Option<&'p LoadBalancerSettings>,
    connection_pool: Option<&'p ConnectionPoolSettings>,
    outlier_detection: Option<&'p OutlierDetection>,
    tls: Option<&'p ClientTlsSettings>,
}

fn effective_policy<'p>(
    rule: Option<&'p TrafficPolicy>,
    subset: Option<&'p TrafficPolicy>,
    port: u16,
) -> Policy<'p> {
    let mut policy = Policy {
        load_balancer: None,
        connection_pool: None,
        outlier_detection: None,
        tls: None,
    };
    for level in [rule, subset].into_iter().flatten() {
        policy.load_balancer = level.load_balancer.as_ref().or(policy.load_balancer);
        policy.connection_pool = level.connection_pool.as_ref().or(policy.connection_pool);
        policy.outlier_detection = level
            .outlier_detection
            .as_ref()
            .or(policy.outlier_detection);
        policy.tls = level.tls.as_ref().or(policy.tls);
        let port_level = level.port_level_settings.iter().find(|setting| {
            setting
                .port
                .as_ref()
                .is_some_and(|p| p.number == u32::from(port))
        });
        if let Some(setting) = port_level {
            policy.load_balancer = setting.load_balancer.as_ref().or(policy.load_balancer);
            policy.connection_pool = setting.connection_pool.as_ref().or(policy.connection_pool);
            policy.outlier_detection = setting
                .outlier_detection
                .as_ref()
                .or(policy.outlier_detection);
            policy.tls = setting.tls.as_ref().or(policy.tls);
        }
    }
    policy
}

fn outlier_detection(outlier: &OutlierDetection) -> proto::OutlierDetection {
    let millis = |d: &Option<crate::istio::IstioDuration>| {
        d.as_ref()
            .and_then(|d| d.duration())
            .map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX))
    };
    let consecutive = outlier
        .consecutive_gateway_errors
        .or(outlier.consecutive_5xx_errors)
        .or_else(|| {
            u32::try_from(outlier.consecutive_errors)
                .ok()
                .filter(|n| *n > 0)
        })
        .unwrap_or(0);
    proto::OutlierDetection {
        consecutive_errors: consecutive,
        interval_ms: millis(&outlier.interval),
        base_ejection_time_ms: millis(&outlier.base_ejection_time),
        max_ejection_percent: u32::try_from(outlier.max_ejection_percent).unwrap_or(0),
    }
}

fn connection_pool(pool: &ConnectionPoolSettings) -> (proto::ConnectionPool, u32) {
    let positive = |n: i32| u32::try_from(n).unwrap_or(0);
    let tcp = pool.tcp.as_ref();
    let http = pool.http.as_ref();
    let connect_timeout = tcp
        .and_then(|tcp| tcp.connect_timeout.as_ref())
        .and_then(|d| d.duration())
        .map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
    let idle = http
        .and_then(|http| http.idle_timeout.as_ref())
        .or_else(|| tcp.and_then(|tcp| tcp.idle_timeout.as_ref()))
        .and_then(|d| d.duration())
        .map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
    (
        proto::ConnectionPool {
            max_connections: tcp.map_or(0, |tcp| positive(tcp.max_connections)),
            max_pending_requests: http.map_or(0, |http| positive(http.http1_max_pending_requests)),
            max_requests_per_connection: http
                .map_or(0, |http| positive(http.max_requests_per_connection)),
            idle_timeout_ms: idle,
        },
        connect_timeout,
    )
}

fn proto_endpoint(endpoint: &Endpoint, port: u16) -> proto::Endpoint {
    proto::Endpoint {
        address: endpoint.address.to_string(),
        port: u32::from(port),
        weight: endpoint.weight.max(1),
        locality: endpoint.locality.to_string(),
        cluster_id: endpoint.cluster.to_string(),
        network: endpoint.network.to_string(),
        health: match endpoint.health {
            Health::Healthy => proto::Health::Healthy,
            Health::Unhealthy => proto::Health::Unhealthy,
            Health::Draining => proto::Health::Draining,
        } as i32,
        service_account: endpoint.service_account.clone(),
        network_gateway: false,
    }
}

/// `8000, 9080`: a service's port numbers, for messages that suggest a valid one.
fn port_list(record: &ServiceRecord) -> String {
    let ports: Vec<String> = record
        .service
        .ports
        .iter()
        .map(|p| p.number.to_string())
        .collect();
    ports.join(", ")
}
