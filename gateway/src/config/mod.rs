//! The applied configuration as the data plane reads it: built once per push from the
//! protobuf contract, immutable afterwards, and shared by `Arc`.
//!
//! Every accepted connection takes the current `Arc<RuntimeConfig>` once and finishes on it,
//! so a swap never changes a connection's routing halfway through.

mod cell;
mod cluster;
mod host_match;
mod listener;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use multicluster::proto::GatewayConfig;
use thiserror::Error;

use crate::http::router::RouteTable;

pub use cell::ConfigCell;
pub use cluster::{
    ClusterConfig, DnsTarget, EndpointConfig, EndpointHealth, LbPolicy, MAX_EJECTION, OutlierPolicy,
};
pub use host_match::{HostPattern, Specificity, best_match, most_specific};
pub use listener::{
    HttpServer, ListenerKey, ListenerRoutes, PassthroughRoute, PassthroughServer, SniRoute,
    TcpServer, TerminatedRouting, TerminatingServer, WeightedDestinations,
};

/// Why a configuration cannot be built. Validation upstream catches most of these; the
/// gateway checks again because it must never half-apply what it cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error(
        "listener {listener}: cannot bind {address:?} port {port}: the bind address must be an IP address and the port 1-65535"
    )]
    ListenerAddress {
        listener: String,
        address: String,
        port: u32,
    },
    #[error("listener {listener}: binds the same address and port as listener {other}")]
    DuplicateListener { listener: String, other: String },
    #[error(
        "listener {listener}: routes to cluster {cluster:?}, which is not in this configuration; add the cluster or drop the route"
    )]
    UnknownCluster { listener: String, cluster: String },
    #[error(
        "listener {listener}: SNI {sni:?} appears more than once in its AUTO_PASSTHROUGH table"
    )]
    DuplicateSni { listener: String, sni: String },
    #[error("cluster {cluster}: endpoint address {address:?} is not an IP address")]
    EndpointAddress { cluster: String, address: String },
    #[error("cluster {cluster}: endpoint {address} has port {port}, outside 1-65535")]
    EndpointPort {
        cluster: String,
        address: String,
        port: u32,
    },
    #[error("cluster {cluster:?} is defined more than once")]
    DuplicateCluster { cluster: String },
    #[error(
        "listener {listener}: uses route table {table:?}, which is not in this configuration; add the table or drop the server"
    )]
    UnknownRouteTable { listener: String, table: String },
    #[error(transparent)]
    Route(#[from] crate::http::router::RouterError),
}

#[derive(Debug)]
pub struct RuntimeConfig {
    pub version: String,
    /// The config as received, for `/config_dump`.
    pub source: GatewayConfig,
    pub listeners: BTreeMap<ListenerKey, ListenerRoutes>,
    pub clusters: HashMap<String, ClusterConfig>,
    /// HTTP route tables by name, compiled once per push (regexes, lowercase domains).
    pub route_tables: HashMap<String, Arc<RouteTable>>,
    /// TLS origination per cluster name, built at apply time from `Cluster.tls` and the
    /// credentials (file IO), so requests never load certificates.
    pub upstream_tls: HashMap<String, crate::http::OriginationTls>,
    /// Server TLS per listener with terminating servers, built at apply time.
    pub tls: HashMap<ListenerKey, Arc<crate::tls::ListenerTls>>,
    /// Servers (and clusters' TLS) left out of service at apply time, with the reason.
    pub rejected_servers: Vec<crate::tls::ServerRejection>,
    /// HTTP/3 twins of HTTPS listeners whose UDP endpoint is bound, built at apply time.
    pub http3: HashMap<ListenerKey, Arc<crate::h3::QuicListenerTls>>,
}

impl RuntimeConfig {
    /// What a gateway serves before its first push: nothing.
    pub fn empty() -> Self {
        RuntimeConfig {
            version: String::new(),
            source: GatewayConfig::default(),
            listeners: BTreeMap::new(),
            clusters: HashMap::new(),
            route_tables: HashMap::new(),
            upstream_tls: HashMap::new(),
            tls: HashMap::new(),
            rejected_servers: Vec::new(),
            http3: HashMap::new(),
        }
    }

    /// Builds the runtime view of `config`, collecting every problem rather than the first.
    pub fn build(config: GatewayConfig) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut clusters = HashMap::with_capacity(config.clusters.len());
        for cluster in &config.clusters {
            match ClusterConfig::from_proto(cluster) {
                Ok(built) => {
                    if clusters.insert(cluster.name.clone(), built).is_some() {
                        errors.push(ConfigError::DuplicateCluster {
                            cluster: cluster.name.clone(),
                        });
                    }
                }
                Err(error) => errors.push(error),
            }
        }
        let names: HashSet<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
        let table_names: HashSet<&str> = config
            .route_tables
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let mut listeners = BTreeMap::new();
        for listener in &config.listeners {
            let Some(routes) =
                ListenerRoutes::from_proto(listener, &names, &table_names, &mut errors)
            else {
                continue;
            };
            if let Some(other) = listeners.get(&routes.key) {
                let other: &ListenerRoutes = other;
                errors.push(ConfigError::DuplicateListener {
                    listener: routes.name.clone(),
                    other: other.name.clone(),
                });
                continue;
            }
            listeners.insert(routes.key, routes);
        }
        let mut route_tables = HashMap::with_capacity(config.route_tables.len());
        for table in &config.route_tables {
            match RouteTable::compile(table) {
                Ok(compiled) => {
                    route_tables.insert(table.name.clone(), Arc::new(compiled));
                }
                Err(table_errors) => errors.extend(table_errors.into_iter().map(ConfigError::from)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RuntimeConfig {
            version: config.version.clone(),
            source: config,
            listeners,
            clusters,
            route_tables,
            upstream_tls: HashMap::new(),
            tls: HashMap::new(),
            rejected_servers: Vec::new(),
            http3: HashMap::new(),
        })
    }

    pub fn listener(&self, key: &ListenerKey) -> Option<&ListenerRoutes> {
        self.listeners.get(key)
    }

    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use multicluster::proto::{self, Protocol, server::Routing};

    fn tcp_listener(name: &str, port: u32, cluster: &str) -> proto::Listener {
        proto::Listener {
            name: name.into(),
            bind_address: "0.0.0.0".into(),
            port,
            servers: vec![proto::Server {
                name: format!("tcp.{port}"),
                protocol: Protocol::Tcp as i32,
                routing: Some(Routing::TcpRoutes(proto::TcpRoutes {
                    routes: vec![proto::TcpRoute {
                        destinations: vec![proto::WeightedCluster {
                            cluster: cluster.into(),
                            weight: 0,
                        }],
                    }],
                })),
                ..Default::default()
            }],
        }
    }

    fn cluster(name: &str) -> proto::Cluster {
        proto::Cluster {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn builds_listeners_keyed_by_address_and_port() {
        let config = GatewayConfig {
            version: "7".into(),
            listeners: vec![tcp_listener("0.0.0.0_31400", 31400, "echo")],
            clusters: vec![cluster("echo")],
            ..Default::default()
        };
        let runtime = RuntimeConfig::build(config).unwrap();
        assert_eq!(runtime.version, "7");
        let key = ListenerKey {
            address: "0.0.0.0".parse().unwrap(),
            port: 31400,
        };
        let routes = runtime.listener(&key).unwrap();
        assert_eq!(
            routes.tcp.as_ref().unwrap().destinations.pick(3),
            Some("echo")
        );
        assert!(runtime.cluster("echo").is_some());
    }

    #[test]
    fn collects_every_problem() {
        let mut table = proto::RouteTable {
            name: "http.80".into(),
            ..Default::default()
        };
        table.virtual_hosts.push(proto::VirtualHost {
            name: "h".into(),
            domains: vec!["*".into()],
            routes: vec![proto::HttpRoute {
                matches: vec![proto::HttpMatch {
                    uri: Some(proto::StringMatch {
                        kind: Some(proto::string_match::Kind::Regex("/(unclosed".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        });
        let config = GatewayConfig {
            version: "8".into(),
            listeners: vec![
                tcp_listener("a", 31400, "missing"),
                tcp_listener("b", 31400, "echo"),
            ],
            clusters: vec![cluster("echo"), cluster("echo")],
            route_tables: vec![table],
            ..Default::default()
        };
        let errors = RuntimeConfig::build(config).unwrap_err();
        assert!(
            errors.iter().any(
                |e| matches!(e, ConfigError::UnknownCluster { cluster, .. } if cluster == "missing")
            ),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| matches!(e, ConfigError::DuplicateListener { .. })),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| matches!(e, ConfigError::DuplicateCluster { .. })),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| matches!(e, ConfigError::Route(crate::http::router::RouterError::Regex { regex, .. }) if regex == "/(unclosed")),
            "{errors:?}"
        );
    }
}
