//! Upstream clusters as the data plane uses them: parsed addresses, resolved defaults.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use multicluster::proto;

use super::ConfigError;

/// Envoy's and Istio's default: 5 consecutive connect failures eject an endpoint.
pub const DEFAULT_CONSECUTIVE_ERRORS: u32 = 5;
pub const DEFAULT_BASE_EJECTION: Duration = Duration::from_secs(30);
/// Istio's default. A higher share would let a gateway-wide problem (its own network broken
/// for a moment) eject every endpoint at once and leave nothing to route to once it heals;
/// as in Envoy the limit is checked before ejecting, so one endpoint can always be ejected.
pub const DEFAULT_MAX_EJECTION_PERCENT: u32 = 10;
/// Envoy's `max_ejection_time` default: repeated ejections grow up to this.
pub const MAX_EJECTION: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    LeastRequest,
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointHealth {
    Healthy,
    Unhealthy,
    Draining,
}

impl EndpointHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointHealth::Healthy => "HEALTHY",
            EndpointHealth::Unhealthy => "UNHEALTHY",
            EndpointHealth::Draining => "DRAINING",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierPolicy {
    pub consecutive_errors: u32,
    pub base_ejection: Duration,
    pub max_ejection_percent: u32,
}

impl Default for OutlierPolicy {
    fn default() -> Self {
        OutlierPolicy {
            consecutive_errors: DEFAULT_CONSECUTIVE_ERRORS,
            base_ejection: DEFAULT_BASE_EJECTION,
            max_ejection_percent: DEFAULT_MAX_EJECTION_PERCENT,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    pub address: SocketAddr,
    /// Never 0: an unset weight counts as 1.
    pub weight: u32,
    pub health: EndpointHealth,
    pub network: String,
    /// Another network's gateway standing in for its endpoints.
    pub network_gateway: bool,
    /// The Istio cluster id the endpoint belongs to (`destination_cluster` in metrics);
    /// shared so a pick hands it on without copying. Empty when discovery did not say.
    pub cluster_id: Arc<str>,
}

impl EndpointConfig {
    /// Istio's `destination_cluster` value: the endpoint's cluster id, "unknown" when unset.
    pub fn cluster_label(cluster_id: &str) -> &str {
        if cluster_id.is_empty() {
            crate::metrics::UNKNOWN
        } else {
            cluster_id
        }
    }
}

/// A hostname whose addresses are the endpoints, each with this port and weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTarget {
    pub hostname: String,
    pub port: u16,
    /// Never 0.
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub name: String,
    /// The service FQDN, for metric labels and listings.
    pub service: String,
    pub port: u16,
    pub subset: String,
    pub lb: LbPolicy,
    pub endpoints: Vec<EndpointConfig>,
    pub connect_timeout: Option<Duration>,
    pub outlier: OutlierPolicy,
    /// ServiceEntry `resolution: DNS` hosts: the upstream layer resolves them and adds
    /// their addresses to `endpoints` when picking.
    pub dns_targets: Vec<DnsTarget>,
    /// `connectionPool.http.maxRequestsPerConnection`: an upstream connection is retired
    /// after this many requests.
    pub max_requests_per_connection: Option<usize>,
    /// HTTP/2 (prior knowledge, or by ALPN over TLS) towards the endpoints: the service port
    /// is HTTP2 or GRPC.
    pub http2: bool,
    /// TLS origination (DestinationRule `tls`), as received; the HTTP layer builds the
    /// client configuration from it at apply time.
    pub tls: Option<proto::UpstreamTls>,
    /// `connectionPool.http`: idle connections kept per endpoint and for how long.
    pub max_idle_per_endpoint: Option<usize>,
    pub idle_timeout: Option<Duration>,
    /// `connectionPool` circuit breaker: requests in flight to the cluster at once
    /// (`maxConnections` plus `maxPendingRequests`); beyond it Envoy answers 503 (UO).
    pub max_requests: Option<usize>,
}

impl ClusterConfig {
    pub fn from_proto(cluster: &proto::Cluster) -> Result<Self, ConfigError> {
        let port = u16::try_from(cluster.port).unwrap_or(0);
        let endpoints = cluster
            .endpoints
            .iter()
            .map(|endpoint| endpoint_from_proto(&cluster.name, endpoint))
            .collect::<Result<Vec<_>, _>>()?;
        let lb = match proto::LoadBalancer::try_from(cluster.load_balancer) {
            Ok(proto::LoadBalancer::LeastRequest) => LbPolicy::LeastRequest,
            Ok(proto::LoadBalancer::Random) => LbPolicy::Random,
            _ => LbPolicy::RoundRobin,
        };
        Ok(ClusterConfig {
            name: cluster.name.clone(),
            service: cluster.service.clone(),
            port,
            subset: cluster.subset.clone(),
            lb,
            endpoints,
            connect_timeout: (cluster.connect_timeout_ms > 0)
                .then(|| Duration::from_millis(u64::from(cluster.connect_timeout_ms))),
            outlier: outlier_from_proto(cluster.outlier_detection.as_ref()),
            dns_targets: cluster
                .dns_targets
                .iter()
                .map(|target| dns_target_from_proto(&cluster.name, target))
                .collect::<Result<Vec<_>, _>>()?,
            max_requests_per_connection: cluster
                .connection_pool
                .as_ref()
                .and_then(|pool| usize::try_from(pool.max_requests_per_connection).ok())
                .filter(|max| *max > 0),
            http2: matches!(
                proto::Protocol::try_from(cluster.protocol),
                Ok(proto::Protocol::Http2 | proto::Protocol::Grpc)
            ),
            tls: cluster
                .tls
                .clone()
                .filter(|tls| tls.mode != proto::TlsMode::Unspecified as i32),
            max_idle_per_endpoint: cluster
                .connection_pool
                .as_ref()
                .and_then(|pool| usize::try_from(pool.max_connections).ok())
                .filter(|max| *max > 0),
            max_requests: cluster
                .connection_pool
                .as_ref()
                .filter(|pool| pool.max_connections > 0)
                .map(|pool| {
                    let limit =
                        u64::from(pool.max_connections) + u64::from(pool.max_pending_requests);
                    usize::try_from(limit).unwrap_or(usize::MAX)
                }),
            idle_timeout: cluster
                .connection_pool
                .as_ref()
                .filter(|pool| pool.idle_timeout_ms > 0)
                .map(|pool| Duration::from_millis(u64::from(pool.idle_timeout_ms))),
        })
    }
}

fn endpoint_from_proto(
    cluster: &str,
    endpoint: &proto::Endpoint,
) -> Result<EndpointConfig, ConfigError> {
    let ip: IpAddr = endpoint
        .address
        .parse()
        .map_err(|_| ConfigError::EndpointAddress {
            cluster: cluster.to_owned(),
            address: endpoint.address.clone(),
        })?;
    let port = u16::try_from(endpoint.port)
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| ConfigError::EndpointPort {
            cluster: cluster.to_owned(),
            address: endpoint.address.clone(),
            port: endpoint.port,
        })?;
    let health = match proto::Health::try_from(endpoint.health) {
        Ok(proto::Health::Healthy) => EndpointHealth::Healthy,
        Ok(proto::Health::Draining) => EndpointHealth::Draining,
        // An unknown health value from a newer discovery is not a reason to send traffic.
        Ok(proto::Health::Unhealthy) | Err(_) => EndpointHealth::Unhealthy,
    };
    Ok(EndpointConfig {
        address: SocketAddr::new(ip, port),
        weight: endpoint.weight.max(1),
        health,
        network: endpoint.network.clone(),
        network_gateway: endpoint.network_gateway,
        cluster_id: Arc::from(endpoint.cluster_id.as_str()),
    })
}

fn dns_target_from_proto(
    cluster: &str,
    target: &proto::DnsTarget,
) -> Result<DnsTarget, ConfigError> {
    let port = u16::try_from(target.port)
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| ConfigError::EndpointPort {
            cluster: cluster.to_owned(),
            address: target.hostname.clone(),
            port: target.port,
        })?;
    Ok(DnsTarget {
        hostname: target.hostname.trim_end_matches('.').to_ascii_lowercase(),
        port,
        weight: target.weight.max(1),
    })
}

fn outlier_from_proto(outlier: Option<&proto::OutlierDetection>) -> OutlierPolicy {
    let defaults = OutlierPolicy::default();
    let Some(outlier) = outlier else {
        return defaults;
    };
    OutlierPolicy {
        consecutive_errors: if outlier.consecutive_errors == 0 {
            defaults.consecutive_errors
        } else {
            outlier.consecutive_errors
        },
        base_ejection: if outlier.base_ejection_time_ms == 0 {
            defaults.base_ejection
        } else {
            Duration::from_millis(u64::from(outlier.base_ejection_time_ms))
        },
        max_ejection_percent: if outlier.max_ejection_percent == 0 {
            defaults.max_ejection_percent
        } else {
            outlier.max_ejection_percent.min(100)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(address: &str, port: u32) -> proto::Endpoint {
        proto::Endpoint {
            address: address.into(),
            port,
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_unset_fields() {
        let cluster = proto::Cluster {
            name: "outbound|9080||reviews.default.svc.cluster.local".into(),
            port: 9080,
            endpoints: vec![endpoint("10.0.0.1", 9080)],
            ..Default::default()
        };
        let config = ClusterConfig::from_proto(&cluster).unwrap();
        assert_eq!(config.lb, LbPolicy::RoundRobin);
        assert_eq!(config.endpoints[0].weight, 1);
        assert_eq!(config.endpoints[0].health, EndpointHealth::Healthy);
        assert_eq!(config.outlier, OutlierPolicy::default());
        assert_eq!(config.connect_timeout, None);
    }

    #[test]
    fn bad_endpoint_addresses_name_the_cluster() {
        let cluster = proto::Cluster {
            name: "outbound|9080||reviews".into(),
            endpoints: vec![endpoint("reviews.local", 9080)],
            ..Default::default()
        };
        let error = ClusterConfig::from_proto(&cluster).unwrap_err();
        assert!(
            error.to_string().contains("outbound|9080||reviews"),
            "{error}"
        );
        let cluster = proto::Cluster {
            name: "c".into(),
            endpoints: vec![endpoint("10.0.0.1", 70000)],
            ..Default::default()
        };
        assert!(matches!(
            ClusterConfig::from_proto(&cluster),
            Err(ConfigError::EndpointPort { port: 70000, .. })
        ));
    }

    #[test]
    fn outlier_settings_are_taken_and_clamped() {
        let policy = outlier_from_proto(Some(&proto::OutlierDetection {
            consecutive_errors: 2,
            interval_ms: 0,
            base_ejection_time_ms: 500,
            max_ejection_percent: 250,
        }));
        assert_eq!(policy.consecutive_errors, 2);
        assert_eq!(policy.base_ejection, Duration::from_millis(500));
        assert_eq!(policy.max_ejection_percent, 100);
    }
}
