//! What the admin listings show, as serializable rows: the CLI fetches them as JSON and
//! renders them with [`super::tables`].

use serde::{Deserialize, Serialize};

use crate::config::{HostPattern, ListenerRoutes, TerminatedRouting, WeightedDestinations};
use crate::runtime::Gateway;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerView {
    pub name: String,
    /// The configured bind address, as Istio lists it.
    pub address: String,
    pub port: u16,
    /// Empty for TCP listeners; [`QUIC_TRANSPORT`] for the UDP twin of an HTTPS port.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub transport: String,
    /// Where the listener really listens, after overrides; absent if it is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,
    pub matches: Vec<MatchView>,
}

/// How HTTP/3 listeners are marked in listings.
pub const QUIC_TRANSPORT: &str = "UDP";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchView {
    /// `SNI: <name>` or `ALL`.
    #[serde(rename = "match")]
    pub matcher: String,
    /// `Cluster: <name>` or `Route: <name>`.
    pub destination: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    pub name: String,
    pub service: String,
    pub port: u16,
    pub subset: String,
    pub direction: String,
    /// `EDS` for endpoints from discovery, `STRICT_DNS` for names the gateway resolves.
    #[serde(rename = "type")]
    pub kind: String,
    /// The DestinationRule behind the cluster, when discovery says (it does not yet).
    pub destination_rule: String,
    pub load_balancer: String,
    pub endpoints: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointView {
    /// `address:port`.
    pub endpoint: String,
    /// `HEALTHY`, `UNHEALTHY` or `DRAINING`, as discovery reports it.
    pub status: String,
    /// `OK`, or `FAILED` while passive health has the endpoint ejected.
    pub outlier_check: String,
    pub cluster: String,
    pub network: String,
    pub weight: u32,
    pub active_connections: u64,
    pub network_gateway: bool,
}

pub fn listeners(gateway: &Gateway) -> Vec<ListenerView> {
    let config = gateway.config();
    let bound = gateway.bound_listeners();
    let mut views: Vec<ListenerView> = config
        .listeners
        .values()
        .map(|routes| ListenerView {
            name: routes.name.clone(),
            address: routes.key.address.to_string(),
            port: routes.key.port,
            transport: String::new(),
            bound: bound
                .iter()
                .find(|b| b.key == routes.key)
                .map(|b| b.local_addr.to_string()),
            matches: {
                let mut matches = listener_matches(routes);
                matches.extend(
                    config
                        .rejected_servers
                        .iter()
                        .filter(|r| r.listener == routes.name)
                        .map(|r| MatchView {
                            matcher: format!("SERVER: {}", r.server),
                            destination: format!("REJECTED: {}", r.reason),
                        }),
                );
                matches
            },
        })
        .collect();
    views.extend(quic_listeners(gateway, &config));
    views
}

/// One row per thing a listener can match, in the order a connection is tried against them.
pub fn listener_matches(routes: &ListenerRoutes) -> Vec<MatchView> {
    let mut matches = Vec::new();
    let mut table: Vec<(&String, &String)> = routes.sni_table.iter().collect();
    table.sort();
    for (sni, cluster) in table {
        matches.push(MatchView {
            matcher: format!("SNI: {sni}"),
            destination: format!("Cluster: {cluster}"),
        });
    }
    for server in &routes.passthrough {
        for route in &server.routes {
            let hosts: Vec<String> = if route.sni_hosts.is_empty() {
                server.hosts.iter().map(pattern_text).collect()
            } else {
                route.sni_hosts.iter().map(pattern_text).collect()
            };
            let matcher = if hosts.is_empty() {
                "ALL".to_owned()
            } else {
                format!("SNI: {}", hosts.join(","))
            };
            matches.push(MatchView {
                matcher,
                destination: destination_text(&route.destinations),
            });
        }
    }
    if let Some(tcp) = &routes.tcp {
        matches.push(MatchView {
            matcher: "ALL".to_owned(),
            destination: destination_text(&tcp.destinations),
        });
    }
    for server in &routes.terminating {
        matches.push(terminating_match(server));
    }
    // Plaintext HTTP servers of a port share one route table: one row.
    if let Some(first) = routes.http.first() {
        matches.push(MatchView {
            matcher: "ALL".to_owned(),
            destination: format!("Route: {}", first.route_table),
        });
    }
    for server in &routes.unsupported {
        matches.push(MatchView {
            matcher: "ALL".to_owned(),
            destination: format!("Route: {server} (not served)"),
        });
    }
    matches
}

fn terminating_match(server: &crate::config::TerminatingServer) -> MatchView {
    let matcher = if server.hosts.is_empty() || server.hosts.contains(&HostPattern::Any) {
        "ALL".to_owned()
    } else {
        format!(
            "SNI: {}",
            server
                .hosts
                .iter()
                .map(pattern_text)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let destination = match &server.routing {
        TerminatedRouting::Http { route_table } => format!("Route: {route_table}"),
        TerminatedRouting::Tcp(destinations) => destination_text(destinations),
    };
    MatchView {
        matcher,
        destination,
    }
}

/// The UDP (HTTP/3) twins, one row set each, listed after the TCP listeners.
fn quic_listeners(gateway: &Gateway, config: &crate::config::RuntimeConfig) -> Vec<ListenerView> {
    let bound = gateway.bound_quic_listeners();
    config
        .listeners
        .values()
        .filter_map(|routes| {
            let twin = config.http3.get(&routes.key)?;
            Some(ListenerView {
                name: routes.name.clone(),
                address: routes.key.address.to_string(),
                port: routes.key.port,
                transport: QUIC_TRANSPORT.to_owned(),
                bound: bound
                    .iter()
                    .find(|b| b.key == routes.key)
                    .map(|b| b.local_addr.to_string()),
                matches: routes
                    .terminating
                    .iter()
                    .filter(|server| twin.serves(&server.name))
                    .map(terminating_match)
                    .collect(),
            })
        })
        .collect()
}

fn pattern_text(pattern: &crate::config::HostPattern) -> String {
    match pattern {
        crate::config::HostPattern::Any => "*".to_owned(),
        crate::config::HostPattern::Suffix(suffix) => format!("*{suffix}"),
        crate::config::HostPattern::Exact(name) => name.clone(),
    }
}

fn destination_text(destinations: &WeightedDestinations) -> String {
    let clusters: Vec<(&str, u32)> = destinations.clusters().collect();
    match clusters.as_slice() {
        [(cluster, _)] => format!("Cluster: {cluster}"),
        many => {
            let parts: Vec<String> = many
                .iter()
                .map(|(cluster, weight)| format!("{cluster} ({weight})"))
                .collect();
            format!("WeightedCluster: {}", parts.join(", "))
        }
    }
}

pub fn clusters(gateway: &Gateway) -> Vec<ClusterView> {
    let config = gateway.config();
    let mut clusters: Vec<ClusterView> = config
        .clusters
        .values()
        .map(|cluster| ClusterView {
            name: cluster.name.clone(),
            service: cluster.service.clone(),
            port: cluster.port,
            subset: cluster.subset.clone(),
            direction: "outbound".to_owned(),
            kind: if !cluster.dns_targets.is_empty() {
                "STRICT_DNS".to_owned()
            } else {
                "EDS".to_owned()
            },
            destination_rule: String::new(),
            load_balancer: format!("{:?}", cluster.lb),
            endpoints: cluster.endpoints.len(),
        })
        .collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    clusters
}

pub fn endpoints(gateway: &Gateway) -> Vec<EndpointView> {
    let config = gateway.config();
    let upstreams = gateway.upstreams();
    let mut endpoints: Vec<EndpointView> = config
        .clusters
        .values()
        .flat_map(|cluster| {
            // DNS targets are listed with the addresses they currently resolve to.
            let listed = upstreams.endpoints(cluster).into_owned();
            listed.into_iter().map(move |endpoint| {
                let status = upstreams.status(&cluster.name, endpoint.address);
                EndpointView {
                    endpoint: endpoint.address.to_string(),
                    status: endpoint.health.as_str().to_owned(),
                    outlier_check: if status.ejected { "FAILED" } else { "OK" }.to_owned(),
                    cluster: cluster.name.clone(),
                    network: endpoint.network.clone(),
                    weight: endpoint.weight,
                    active_connections: status.active_connections,
                    network_gateway: endpoint.network_gateway,
                }
            })
        })
        .collect();
    endpoints.sort_by(|a, b| (&a.cluster, &a.endpoint).cmp(&(&b.cluster, &b.endpoint)));
    endpoints
}
