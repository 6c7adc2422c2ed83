//! Upstream endpoints: load balancing, passive health, and connecting.
//!
//! Balancer and health state is keyed by (cluster name, endpoint address) and outlives
//! configuration swaps, so a push that only changes an unrelated listener does not reset the
//! round-robin position or forgive an ejected endpoint.

mod balancer;
mod connect;
mod dns;
mod outlier;
pub(crate) mod random;

use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::{ClusterConfig, EndpointConfig, EndpointHealth, LbPolicy, RuntimeConfig};
use crate::metrics::Metrics;

pub use connect::{ConnectError, Connected, MAX_CONNECT_ATTEMPTS, connect};
pub use dns::{Dns, DnsError, DnsSettings, Resolution};
pub use outlier::PassiveHealth;

/// Which endpoints of a cluster a connection may use.
#[derive(Debug, Clone, Copy, Default)]
pub struct EndpointFilter<'a> {
    /// Only endpoints on this network (or with no network recorded).
    pub network: Option<&'a str>,
    /// Skip other networks' gateways: the east-west gateway must deliver to a workload,
    /// never bounce a connection on to another gateway.
    pub skip_network_gateways: bool,
}

impl EndpointFilter<'_> {
    fn allows(&self, endpoint: &EndpointConfig) -> bool {
        if endpoint.health != EndpointHealth::Healthy {
            return false;
        }
        if self.skip_network_gateways && endpoint.network_gateway {
            return false;
        }
        match self.network {
            Some(network) => endpoint.network.is_empty() || endpoint.network == network,
            None => true,
        }
    }
}

/// Counts a connection as active on its endpoint until dropped (for LEAST_REQUEST).
#[derive(Debug)]
pub struct ActiveConnection(Arc<AtomicU64>);

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct Picked {
    pub address: SocketAddr,
    /// The chosen endpoint's Istio cluster id (empty if unknown).
    pub cluster_id: Arc<str>,
    pub active: ActiveConnection,
    pub health: Health,
}

/// Reports a picked endpoint's success to its cluster's state, which the pick already
/// found: looking the cluster up again cost a lock, a hash and an `Arc` per request.
#[derive(Debug)]
pub struct Health {
    balance: Arc<Mutex<ClusterBalance>>,
    address: SocketAddr,
}

impl Health {
    /// Clears the endpoint's consecutive failures (and decays its ejection count).
    pub fn record_success(&self) {
        // An endpoint without state has nothing to clear.
        if let Some(state) = lock(&self.balance).endpoints.get_mut(&self.address) {
            state.health.record_success();
        }
    }
}

/// What the admin listing shows for one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointStatus {
    pub ejected: bool,
    pub active_connections: u64,
    pub consecutive_failures: u32,
}

#[derive(Debug, Default)]
struct EndpointState {
    current_weight: i64,
    active: Arc<AtomicU64>,
    health: PassiveHealth,
}

#[derive(Debug, Default)]
struct ClusterBalance {
    endpoints: FxHashMap<SocketAddr, EndpointState>,
    rotation: usize,
}

pub struct Upstreams {
    /// Fx hashing: keys come from the configuration, not from clients, and this map is
    /// read several times per request.
    clusters: Mutex<FxHashMap<String, Arc<Mutex<ClusterBalance>>>>,
    metrics: Metrics,
    dns: Dns,
}

/// Counts a request or connection against the chosen endpoint until the `Picked` drops.
fn picked(
    shared: &Arc<Mutex<ClusterBalance>>,
    balance: &mut ClusterBalance,
    endpoint: &EndpointConfig,
) -> Picked {
    let state = balance.endpoints.entry(endpoint.address).or_default();
    state.active.fetch_add(1, Ordering::Relaxed);
    Picked {
        address: endpoint.address,
        cluster_id: Arc::clone(&endpoint.cluster_id),
        active: ActiveConnection(Arc::clone(&state.active)),
        health: Health {
            balance: Arc::clone(shared),
            address: endpoint.address,
        },
    }
}

/// State stays consistent under a panic elsewhere (each update is a few field writes), so a
/// poisoned lock is used as is rather than taking the data plane down.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Upstreams {
    /// Call inside the runtime DNS lookups should run on.
    pub fn new(metrics: Metrics, dns: DnsSettings) -> Self {
        Upstreams {
            clusters: Mutex::new(FxHashMap::default()),
            metrics,
            dns: Dns::new(dns),
        }
    }

    /// The cluster's endpoints: the configured ones, then the current addresses of its DNS
    /// targets. Borrowed (no copy) for clusters without DNS targets.
    pub fn endpoints<'c>(&self, cluster: &'c ClusterConfig) -> Cow<'c, [EndpointConfig]> {
        if cluster.dns_targets.is_empty() {
            return Cow::Borrowed(&cluster.endpoints);
        }
        let mut endpoints = cluster.endpoints.clone();
        for target in &cluster.dns_targets {
            let Some(resolution) = self.dns.resolution(&target.hostname) else {
                continue;
            };
            endpoints.extend(resolution.addresses.iter().map(|ip| EndpointConfig {
                address: SocketAddr::new(*ip, target.port),
                weight: target.weight,
                health: EndpointHealth::Healthy,
                network: String::new(),
                network_gateway: false,
                // A ServiceEntry host belongs to no cluster of the mesh.
                cluster_id: Arc::from(""),
            }));
        }
        Cow::Owned(endpoints)
    }

    /// Waits (at most `limit`) for the first lookup of each of the cluster's DNS targets, so
    /// a request arriving just after a push does not fail for an answer already on its way.
    /// An error when the cluster has no endpoint at all because no target ever resolved.
    pub async fn resolve_dns(
        &self,
        cluster: &ClusterConfig,
        limit: Duration,
    ) -> Result<(), DnsError> {
        if cluster.dns_targets.is_empty() {
            return Ok(());
        }
        let answers = futures::future::join_all(
            cluster
                .dns_targets
                .iter()
                .map(|target| self.dns.first_answer(&target.hostname, limit)),
        )
        .await;
        if !cluster.endpoints.is_empty() || answers.iter().any(|a| !a.addresses.is_empty()) {
            return Ok(());
        }
        let (target, answer) =
            cluster
                .dns_targets
                .iter()
                .zip(answers)
                .next()
                .ok_or(DnsError::NoAddresses {
                    hostname: cluster.service.clone(),
                })?;
        Err(answer.error.unwrap_or(DnsError::NoAnswerYet {
            hostname: target.hostname.clone(),
            waited: limit,
        }))
    }

    fn balance(&self, cluster: &str) -> Arc<Mutex<ClusterBalance>> {
        let mut clusters = lock(&self.clusters);
        if let Some(balance) = clusters.get(cluster) {
            return Arc::clone(balance);
        }
        let balance = Arc::new(Mutex::new(ClusterBalance::default()));
        clusters.insert(cluster.to_owned(), Arc::clone(&balance));
        balance
    }

    /// Chooses an endpoint by the cluster's policy among those `filter` allows, minus
    /// `exclude` (endpoints this connection already failed on). Ejected endpoints are used
    /// only when every candidate is ejected: passive health guesses, and refusing all
    /// traffic on a guess is worse than trying.
    pub fn pick(
        &self,
        cluster: &ClusterConfig,
        filter: &EndpointFilter<'_>,
        exclude: &[SocketAddr],
    ) -> Option<Picked> {
        let endpoints = self.endpoints(cluster);
        let shared = self.balance(&cluster.name);
        let mut balance = lock(&shared);
        if let [only] = &endpoints[..] {
            // One candidate: every policy picks it (ejected or not, as below), and the
            // candidate lists and weights need not be built.
            if !filter.allows(only) || exclude.contains(&only.address) {
                return None;
            }
            return Some(picked(&shared, &mut balance, only));
        }
        let now = Instant::now();
        let eligible: Vec<&EndpointConfig> = endpoints
            .iter()
            .filter(|e| filter.allows(e) && !exclude.contains(&e.address))
            .collect();
        if eligible.is_empty() {
            return None;
        }
        let healthy: Vec<&EndpointConfig> = eligible
            .iter()
            .copied()
            .filter(|e| {
                balance
                    .endpoints
                    .get(&e.address)
                    .is_none_or(|state| !state.health.is_ejected(now))
            })
            .collect();
        let pool = if healthy.is_empty() {
            eligible
        } else {
            healthy
        };
        let weights: Vec<u32> = pool.iter().map(|e| e.weight).collect();
        let chosen = match cluster.lb {
            LbPolicy::RoundRobin => {
                let mut current: Vec<i64> = pool
                    .iter()
                    .map(|e| {
                        balance
                            .endpoints
                            .get(&e.address)
                            .map_or(0, |s| s.current_weight)
                    })
                    .collect();
                let chosen = balancer::smooth_weighted_round_robin(&mut current, &weights)?;
                for (endpoint, current) in pool.iter().zip(current) {
                    balance
                        .endpoints
                        .entry(endpoint.address)
                        .or_default()
                        .current_weight = current;
                }
                chosen
            }
            LbPolicy::LeastRequest => {
                let loads: Vec<(u32, u64)> = pool
                    .iter()
                    .map(|e| {
                        let active = balance
                            .endpoints
                            .get(&e.address)
                            .map_or(0, |s| s.active.load(Ordering::Relaxed));
                        (e.weight, active)
                    })
                    .collect();
                balance.rotation = balance.rotation.wrapping_add(1);
                balancer::least_request(&loads, balance.rotation)?
            }
            LbPolicy::Random => balancer::weighted_random(&weights, random::random_u64())?,
        };
        let endpoint = pool.get(chosen)?;
        Some(picked(&shared, &mut balance, endpoint))
    }

    /// Counts a connect failure and ejects the endpoint when the cluster's outlier policy
    /// says so.
    pub fn record_failure(&self, cluster: &ClusterConfig, address: SocketAddr) {
        let now = Instant::now();
        let endpoints = self.endpoints(cluster);
        let balance = self.balance(&cluster.name);
        let mut balance = lock(&balance);
        let ejected = endpoints
            .iter()
            .filter(|e| {
                balance
                    .endpoints
                    .get(&e.address)
                    .is_some_and(|s| s.health.is_ejected(now))
            })
            .count();
        let allowed = outlier::may_eject(
            ejected,
            endpoints.len(),
            cluster.outlier.max_ejection_percent,
        );
        let state = balance.endpoints.entry(address).or_default();
        if let Some(duration) = state.health.record_failure(now, &cluster.outlier, allowed) {
            tracing::warn!(
                cluster = %cluster.name,
                endpoint = %address,
                ejection_ms = duration.as_millis() as u64,
                "endpoint ejected after consecutive connect failures"
            );
            self.metrics.endpoint_ejected(&cluster.name);
        }
    }

    pub fn status(&self, cluster: &str, address: SocketAddr) -> EndpointStatus {
        let now = Instant::now();
        let clusters = lock(&self.clusters);
        let Some(balance) = clusters.get(cluster) else {
            return EndpointStatus::default();
        };
        let balance = lock(balance);
        balance
            .endpoints
            .get(&address)
            .map_or_else(EndpointStatus::default, |state| EndpointStatus {
                ejected: state.health.is_ejected(now),
                active_connections: state.active.load(Ordering::Relaxed),
                consecutive_failures: state.health.consecutive_failures(),
            })
    }

    /// Forgets clusters and endpoints `config` no longer has, so state cannot grow without
    /// bound across pushes. Open connections keep their own counters alive.
    /// Also starts resolving the DNS targets `config` names and stops the others.
    pub fn retain(&self, config: &RuntimeConfig) {
        self.dns.retain(
            config
                .clusters
                .values()
                .flat_map(|cluster| &cluster.dns_targets)
                .map(|target| target.hostname.as_str()),
        );
        let mut clusters = lock(&self.clusters);
        clusters.retain(|name, balance| {
            let Some(cluster) = config.cluster(name) else {
                return false;
            };
            let addresses: HashSet<SocketAddr> =
                self.endpoints(cluster).iter().map(|e| e.address).collect();
            lock(balance)
                .endpoints
                .retain(|address, _| addresses.contains(address));
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::OutlierPolicy;

    fn endpoint(port: u16, weight: u32) -> EndpointConfig {
        EndpointConfig {
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            weight,
            health: EndpointHealth::Healthy,
            network: String::new(),
            network_gateway: false,
            cluster_id: Arc::from("cluster-1"),
        }
    }

    fn cluster(lb: LbPolicy, endpoints: Vec<EndpointConfig>) -> ClusterConfig {
        ClusterConfig {
            name: "outbound|9080||reviews.default.svc.cluster.local".into(),
            service: "reviews.default.svc.cluster.local".into(),
            port: 9080,
            subset: String::new(),
            lb,
            endpoints,
            connect_timeout: None,
            outlier: OutlierPolicy {
                consecutive_errors: 2,
                base_ejection: Duration::from_secs(60),
                max_ejection_percent: 50,
            },
            dns_targets: Vec::new(),
            max_requests_per_connection: None,
            http2: false,
            tls: None,
            max_idle_per_endpoint: None,
            idle_timeout: None,
            max_requests: None,
        }
    }

    fn ports(upstreams: &Upstreams, cluster: &ClusterConfig, n: usize) -> Vec<u16> {
        (0..n)
            .map(|_| {
                upstreams
                    .pick(cluster, &EndpointFilter::default(), &[])
                    .unwrap()
                    .address
                    .port()
            })
            .collect()
    }

    #[test]
    fn round_robin_honours_weights() {
        let upstreams = Upstreams::new(Metrics::new(), DnsSettings::default());
        let cluster = cluster(LbPolicy::RoundRobin, vec![endpoint(1, 1), endpoint(2, 3)]);
        let picks = ports(&upstreams, &cluster, 400);
        assert_eq!(picks.iter().filter(|p| **p == 1).count(), 100);
    }

    #[test]
    fn unhealthy_draining_other_network_and_gateways_are_skipped() {
        let upstreams = Upstreams::new(Metrics::new(), DnsSettings::default());
        let mut unhealthy = endpoint(1, 1);
        unhealthy.health = EndpointHealth::Unhealthy;
        let mut draining = endpoint(2, 1);
        draining.health = EndpointHealth::Draining;
        let mut remote = endpoint(3, 1);
        remote.network = "network-2".into();
        let mut gateway = endpoint(4, 1);
        gateway.network_gateway = true;
        let mut local = endpoint(5, 1);
        local.network = "network-1".into();
        let cluster = cluster(
            LbPolicy::RoundRobin,
            vec![unhealthy, draining, remote, gateway, local],
        );
        let filter = EndpointFilter {
            network: Some("network-1"),
            skip_network_gateways: true,
        };
        for _ in 0..5 {
            assert_eq!(
                upstreams
                    .pick(&cluster, &filter, &[])
                    .unwrap()
                    .address
                    .port(),
                5
            );
        }
        let local = SocketAddr::from(([127, 0, 0, 1], 5));
        assert!(upstreams.pick(&cluster, &filter, &[local]).is_none());
    }

    #[test]
    fn least_request_prefers_idle_endpoints() {
        let upstreams = Upstreams::new(Metrics::new(), DnsSettings::default());
        let cluster = cluster(LbPolicy::LeastRequest, vec![endpoint(1, 1), endpoint(2, 1)]);
        let first = upstreams
            .pick(&cluster, &EndpointFilter::default(), &[])
            .unwrap();
        let second = upstreams
            .pick(&cluster, &EndpointFilter::default(), &[])
            .unwrap();
        assert_ne!(first.address, second.address);
        let first_address = first.address;
        drop(first);
        let third = upstreams
            .pick(&cluster, &EndpointFilter::default(), &[])
            .unwrap();
        assert_eq!(third.address, first_address);
        assert_eq!(
            upstreams
                .status(&cluster.name, second.address)
                .active_connections,
            1
        );
    }

    #[test]
    fn failures_eject_and_ejected_endpoints_are_avoided() {
        let metrics = Metrics::new();
        let upstreams = Upstreams::new(metrics.clone(), DnsSettings::default());
        let cluster = cluster(LbPolicy::RoundRobin, vec![endpoint(1, 1), endpoint(2, 1)]);
        let dead = SocketAddr::from(([127, 0, 0, 1], 1));
        upstreams.record_failure(&cluster, dead);
        assert!(!upstreams.status(&cluster.name, dead).ejected);
        upstreams.record_failure(&cluster, dead);
        assert!(upstreams.status(&cluster.name, dead).ejected);
        assert!(ports(&upstreams, &cluster, 10).iter().all(|p| *p == 2));
        assert!(metrics.encode().contains("isthmus_upstream_ejections_total{cluster=\"outbound|9080||reviews.default.svc.cluster.local\"} 1"));

        // At 50%, the second endpoint may not be ejected too; when only ejected endpoints
        // remain, they are still tried.
        let live = SocketAddr::from(([127, 0, 0, 1], 2));
        upstreams.record_failure(&cluster, live);
        upstreams.record_failure(&cluster, live);
        assert!(!upstreams.status(&cluster.name, live).ejected);
        let only_dead = upstreams.pick(&cluster, &EndpointFilter::default(), &[live]);
        assert_eq!(only_dead.unwrap().address, dead);
    }

    #[test]
    fn a_picked_endpoints_success_clears_its_failures() {
        let upstreams = Upstreams::new(Metrics::new(), DnsSettings::default());
        let cluster = cluster(LbPolicy::RoundRobin, vec![endpoint(1, 1)]);
        let address = SocketAddr::from(([127, 0, 0, 1], 1));
        upstreams.record_failure(&cluster, address);
        assert_eq!(
            upstreams
                .status(&cluster.name, address)
                .consecutive_failures,
            1
        );
        let picked = upstreams
            .pick(&cluster, &EndpointFilter::default(), &[])
            .unwrap();
        picked.health.record_success();
        assert_eq!(
            upstreams
                .status(&cluster.name, address)
                .consecutive_failures,
            0
        );
    }

    #[test]
    fn state_survives_swaps_but_forgets_removed_endpoints() {
        let upstreams = Upstreams::new(Metrics::new(), DnsSettings::default());
        let cluster = cluster(LbPolicy::RoundRobin, vec![endpoint(1, 1), endpoint(2, 1)]);
        let dead = SocketAddr::from(([127, 0, 0, 1], 1));
        upstreams.record_failure(&cluster, dead);
        upstreams.record_failure(&cluster, dead);
        let mut config = RuntimeConfig::empty();
        config
            .clusters
            .insert(cluster.name.clone(), cluster.clone());
        upstreams.retain(&config);
        assert!(upstreams.status(&cluster.name, dead).ejected);
        let mut smaller = cluster.clone();
        smaller.endpoints.remove(0);
        config.clusters.insert(cluster.name.clone(), smaller);
        upstreams.retain(&config);
        assert!(!upstreams.status(&cluster.name, dead).ejected);
    }
}
