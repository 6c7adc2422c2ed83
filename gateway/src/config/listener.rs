//! Per-listener routing: which servers a port carries and how a connection picks a cluster.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use multicluster::proto::{self, Protocol, TlsMode, server::Routing};

use super::ConfigError;
use super::host_match::{HostPattern, best_match, most_specific};

/// A listener as the config names it: the address and port before any test override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerKey {
    pub address: IpAddr,
    pub port: u16,
}

impl fmt::Display for ListenerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.address, self.port)
    }
}

/// Clusters a route splits traffic over, with their weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedDestinations {
    clusters: Vec<(String, u32)>,
    total: u64,
}

impl WeightedDestinations {
    pub fn from_proto(destinations: &[proto::WeightedCluster]) -> Self {
        // A lone destination gets all traffic whatever its weight; among several, weight 0
        // means none (validate rejects the case where every weight is 0).
        let single = destinations.len() == 1;
        let clusters: Vec<(String, u32)> = destinations
            .iter()
            .map(|d| (d.cluster.clone(), if single { 1 } else { d.weight }))
            .collect();
        let total = clusters.iter().map(|(_, w)| u64::from(*w)).sum();
        WeightedDestinations { clusters, total }
    }

    pub fn clusters(&self) -> impl Iterator<Item = (&str, u32)> {
        self.clusters.iter().map(|(name, w)| (name.as_str(), *w))
    }

    /// The cluster a uniformly random `roll` lands on.
    pub fn pick(&self, roll: u64) -> Option<&str> {
        if self.total == 0 {
            return self.clusters.first().map(|(name, _)| name.as_str());
        }
        let mut point = roll % self.total;
        for (name, weight) in &self.clusters {
            let weight = u64::from(*weight);
            if point < weight {
                return Some(name);
            }
            point -= weight;
        }
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassthroughRoute {
    pub sni_hosts: Vec<HostPattern>,
    pub destinations: WeightedDestinations,
}

/// A PASSTHROUGH server: its `hosts` and the VirtualService `tls` routes bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassthroughServer {
    pub name: String,
    pub hosts: Vec<HostPattern>,
    pub routes: Vec<PassthroughRoute>,
}

/// A TCP-like server: only its first route is ever used (discovery already matched ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpServer {
    pub name: String,
    pub destinations: WeightedDestinations,
}

/// What an SNI selects on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SniRoute<'a> {
    /// AUTO_PASSTHROUGH: one cluster, and the client must offer an Istio mTLS ALPN.
    Auto {
        cluster: &'a str,
    },
    Passthrough(&'a WeightedDestinations),
}

/// A plaintext HTTP-like server (HTTP, HTTP2, GRPC, GRPC-WEB): its hosts pick it for a
/// request, the port's shared route table routes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpServer {
    pub name: String,
    pub protocol: Protocol,
    pub hosts: Vec<HostPattern>,
    pub route_table: String,
    /// `tls.httpsRedirect`: answer 301 to https instead of routing.
    pub https_redirect: bool,
}

/// What a server that terminates TLS does with the decrypted stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminatedRouting {
    /// HTTPS: serve HTTP/1.1 or HTTP/2 (by ALPN) through this route table.
    Http { route_table: String },
    /// TLS with SIMPLE/MUTUAL and `tcp` routes: forward the decrypted bytes.
    Tcp(WeightedDestinations),
}

/// A server whose TLS the gateway terminates (SIMPLE, MUTUAL, OPTIONAL_MUTUAL, ISTIO_MUTUAL).
#[derive(Debug, Clone, PartialEq)]
pub struct TerminatingServer {
    pub name: String,
    pub protocol: Protocol,
    /// As configured, for the certificate-by-SNI table.
    pub host_names: Vec<String>,
    pub hosts: Vec<HostPattern>,
    pub tls: proto::ServerTls,
    pub mode: TlsMode,
    pub routing: TerminatedRouting,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListenerRoutes {
    pub name: String,
    pub key: ListenerKey,
    /// AUTO_PASSTHROUGH SNI table, keys lowercase.
    pub sni_table: HashMap<String, String>,
    pub has_auto_passthrough: bool,
    pub passthrough: Vec<PassthroughServer>,
    pub tcp: Option<TcpServer>,
    /// Plaintext HTTP servers; they share the port's route table.
    pub http: Vec<HttpServer>,
    pub terminating: Vec<TerminatingServer>,
    /// Servers accepted in the config that this data plane cannot serve: connections that
    /// would need them are closed.
    pub unsupported: Vec<String>,
}

impl ListenerRoutes {
    pub fn from_proto(
        listener: &proto::Listener,
        clusters: &HashSet<&str>,
        route_tables: &HashSet<&str>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Self> {
        let address: Option<IpAddr> = listener.bind_address.parse().ok();
        let port = u16::try_from(listener.port).ok().filter(|p| *p != 0);
        let (Some(address), Some(port)) = (address, port) else {
            errors.push(ConfigError::ListenerAddress {
                listener: listener.name.clone(),
                address: listener.bind_address.clone(),
                port: listener.port,
            });
            return None;
        };
        let mut routes = ListenerRoutes {
            name: listener.name.clone(),
            key: ListenerKey { address, port },
            sni_table: HashMap::new(),
            has_auto_passthrough: false,
            passthrough: Vec::new(),
            tcp: None,
            http: Vec::new(),
            terminating: Vec::new(),
            unsupported: Vec::new(),
        };
        let check_table = |table: &str, errors: &mut Vec<ConfigError>| {
            if !route_tables.contains(table) {
                errors.push(ConfigError::UnknownRouteTable {
                    listener: listener.name.clone(),
                    table: table.to_owned(),
                });
            }
        };
        let check_cluster = |cluster: &str, errors: &mut Vec<ConfigError>| {
            if !clusters.contains(cluster) {
                errors.push(ConfigError::UnknownCluster {
                    listener: listener.name.clone(),
                    cluster: cluster.to_owned(),
                });
            }
        };
        for server in &listener.servers {
            let protocol = Protocol::try_from(server.protocol).unwrap_or(Protocol::Unspecified);
            let mode = server
                .tls
                .as_ref()
                .map(|tls| TlsMode::try_from(tls.mode).unwrap_or(TlsMode::Unspecified));
            match (&server.routing, mode) {
                (Some(Routing::AutoPassthrough(table)), _) => {
                    routes.has_auto_passthrough = true;
                    for route in &table.routes {
                        check_cluster(&route.cluster, errors);
                        let sni = route.sni.to_ascii_lowercase();
                        if routes
                            .sni_table
                            .insert(sni, route.cluster.clone())
                            .is_some()
                        {
                            errors.push(ConfigError::DuplicateSni {
                                listener: listener.name.clone(),
                                sni: route.sni.clone(),
                            });
                        }
                    }
                }
                (Some(Routing::TlsRoutes(tls)), _) => {
                    let mut compiled = Vec::with_capacity(tls.routes.len());
                    for route in &tls.routes {
                        for destination in &route.destinations {
                            check_cluster(&destination.cluster, errors);
                        }
                        compiled.push(PassthroughRoute {
                            sni_hosts: route
                                .sni_hosts
                                .iter()
                                .map(|h| HostPattern::parse(h))
                                .collect(),
                            destinations: WeightedDestinations::from_proto(&route.destinations),
                        });
                    }
                    routes.passthrough.push(PassthroughServer {
                        name: server.name.clone(),
                        hosts: server.hosts.iter().map(|h| HostPattern::parse(h)).collect(),
                        routes: compiled,
                    });
                }
                // TCP routes forward raw bytes only when nothing has to terminate TLS first;
                // a PASSTHROUGH server with tcp routes does not pass through in Istio either.
                (Some(Routing::TcpRoutes(tcp)), None) if is_tcp_like(protocol) => {
                    for route in &tcp.routes {
                        for destination in &route.destinations {
                            check_cluster(&destination.cluster, errors);
                        }
                    }
                    if routes.tcp.is_none()
                        && let Some(first) = tcp.routes.first()
                    {
                        routes.tcp = Some(TcpServer {
                            name: server.name.clone(),
                            destinations: WeightedDestinations::from_proto(&first.destinations),
                        });
                    }
                }
                (Some(Routing::RouteTable(table)), None | Some(TlsMode::Unspecified))
                    if is_http_like(protocol) =>
                {
                    check_table(table, errors);
                    routes.http.push(HttpServer {
                        name: server.name.clone(),
                        protocol,
                        hosts: server.hosts.iter().map(|h| HostPattern::parse(h)).collect(),
                        route_table: table.clone(),
                        https_redirect: server.tls.as_ref().is_some_and(|t| t.https_redirect),
                    });
                }
                (Some(routing @ (Routing::RouteTable(_) | Routing::TcpRoutes(_))), Some(mode))
                    if terminates(mode) =>
                {
                    let routing = match routing {
                        Routing::RouteTable(table) => {
                            check_table(table, errors);
                            TerminatedRouting::Http {
                                route_table: table.clone(),
                            }
                        }
                        Routing::TcpRoutes(tcp) => {
                            let first = tcp.routes.first().map_or(&[][..], |r| &r.destinations);
                            for destination in first {
                                check_cluster(&destination.cluster, errors);
                            }
                            TerminatedRouting::Tcp(WeightedDestinations::from_proto(first))
                        }
                        _ => continue,
                    };
                    routes.terminating.push(TerminatingServer {
                        name: server.name.clone(),
                        protocol,
                        host_names: server.hosts.clone(),
                        hosts: server.hosts.iter().map(|h| HostPattern::parse(h)).collect(),
                        tls: server.tls.clone().unwrap_or_default(),
                        mode,
                        routing,
                    });
                }
                _ => routes.unsupported.push(server.name.clone()),
            }
        }
        Some(routes)
    }

    /// Whether connections must be read up to their ClientHello before routing.
    pub fn peeks_client_hello(&self) -> bool {
        self.has_auto_passthrough || !self.passthrough.is_empty()
    }

    /// `sni` must be lowercase. The AUTO_PASSTHROUGH table is exact and wins; PASSTHROUGH
    /// routes are tried only for names it does not hold.
    pub fn route_sni(&self, sni: &str) -> Option<SniRoute<'_>> {
        if let Some(cluster) = self.sni_table.get(sni) {
            return Some(SniRoute::Auto { cluster });
        }
        let candidates: Vec<&PassthroughRoute> = self
            .passthrough
            .iter()
            .filter(|server| best_match(&server.hosts, sni).is_some())
            .flat_map(|server| server.routes.iter())
            .collect();
        let best = most_specific(candidates.iter().map(|r| best_match(&r.sni_hosts, sni)))?;
        candidates
            .get(best)
            .map(|route| SniRoute::Passthrough(&route.destinations))
    }
}

fn is_http_like(protocol: Protocol) -> bool {
    matches!(
        protocol,
        Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::GrpcWeb
    )
}

fn terminates(mode: TlsMode) -> bool {
    matches!(
        mode,
        TlsMode::Simple | TlsMode::Mutual | TlsMode::OptionalMutual | TlsMode::IstioMutual
    )
}

impl ListenerRoutes {
    /// The plaintext server whose hosts best cover `host` (lowercase, no port).
    pub fn http_server_for(&self, host: &str) -> Option<&HttpServer> {
        let best = most_specific(self.http.iter().map(|s| best_match(&s.hosts, host)))?;
        self.http.get(best)
    }

    /// The terminating server for an SNI (lowercase); without SNI, only a server whose
    /// hosts include `*` (as Istio's filter chains match `server_names`: a client without
    /// SNI reaches no host-specific server).
    pub fn terminating_server_for(&self, sni: Option<&str>) -> Option<&TerminatingServer> {
        match sni {
            Some(sni) => {
                let best =
                    most_specific(self.terminating.iter().map(|s| best_match(&s.hosts, sni)))?;
                self.terminating.get(best)
            }
            None => self
                .terminating
                .iter()
                .find(|s| s.hosts.is_empty() || s.hosts.contains(&HostPattern::Any)),
        }
    }
}

fn is_tcp_like(protocol: Protocol) -> bool {
    matches!(
        protocol,
        Protocol::Tcp | Protocol::Mongo | Protocol::Mysql | Protocol::Redis | Protocol::Tls
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weighted(list: &[(&str, u32)]) -> Vec<proto::WeightedCluster> {
        list.iter()
            .map(|(cluster, weight)| proto::WeightedCluster {
                cluster: (*cluster).into(),
                weight: *weight,
            })
            .collect()
    }

    #[test]
    fn weighted_pick_follows_the_weights() {
        let destinations = WeightedDestinations::from_proto(&weighted(&[("a", 1), ("b", 3)]));
        let picks: Vec<&str> = (0..8).filter_map(|roll| destinations.pick(roll)).collect();
        assert_eq!(picks, ["a", "b", "b", "b", "a", "b", "b", "b"]);
        let lone = WeightedDestinations::from_proto(&weighted(&[("only", 0)]));
        assert_eq!(lone.pick(12345), Some("only"));
    }

    fn listener(servers: Vec<proto::Server>) -> proto::Listener {
        proto::Listener {
            name: "0.0.0.0_443".into(),
            bind_address: "0.0.0.0".into(),
            port: 443,
            servers,
        }
    }

    fn tls(mode: TlsMode) -> Option<proto::ServerTls> {
        Some(proto::ServerTls {
            mode: mode as i32,
            ..Default::default()
        })
    }

    #[test]
    fn auto_passthrough_table_wins_over_tls_routes() {
        let servers = vec![
            proto::Server {
                name: "auto".into(),
                protocol: Protocol::Tls as i32,
                tls: tls(TlsMode::AutoPassthrough),
                routing: Some(Routing::AutoPassthrough(proto::SniTable {
                    routes: vec![proto::SniRoute {
                        sni: "outbound_.443_._.a.default.svc.cluster.local".into(),
                        cluster: "auto-cluster".into(),
                    }],
                })),
                ..Default::default()
            },
            proto::Server {
                name: "pass".into(),
                protocol: Protocol::Https as i32,
                hosts: vec!["*".into()],
                tls: tls(TlsMode::Passthrough),
                routing: Some(Routing::TlsRoutes(proto::TlsRoutes {
                    routes: vec![proto::TlsRoute {
                        sni_hosts: vec![],
                        destinations: weighted(&[("pass-cluster", 0)]),
                    }],
                })),
            },
        ];
        let clusters: HashSet<&str> = ["auto-cluster", "pass-cluster"].into();
        let mut errors = Vec::new();
        let routes =
            ListenerRoutes::from_proto(&listener(servers), &clusters, &HashSet::new(), &mut errors)
                .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert!(routes.peeks_client_hello());
        assert_eq!(
            routes.route_sni("outbound_.443_._.a.default.svc.cluster.local"),
            Some(SniRoute::Auto {
                cluster: "auto-cluster"
            })
        );
        match routes.route_sni("anything.example.com") {
            Some(SniRoute::Passthrough(d)) => assert_eq!(d.pick(0), Some("pass-cluster")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn server_hosts_filter_passthrough_routes() {
        let servers = vec![proto::Server {
            name: "nginx".into(),
            protocol: Protocol::Https as i32,
            hosts: vec!["nginx.example.com".into()],
            tls: tls(TlsMode::Passthrough),
            routing: Some(Routing::TlsRoutes(proto::TlsRoutes {
                routes: vec![proto::TlsRoute {
                    sni_hosts: vec!["nginx.example.com".into()],
                    destinations: weighted(&[("nginx", 0)]),
                }],
            })),
        }];
        let clusters: HashSet<&str> = ["nginx"].into();
        let mut errors = Vec::new();
        let routes =
            ListenerRoutes::from_proto(&listener(servers), &clusters, &HashSet::new(), &mut errors)
                .unwrap();
        assert!(routes.route_sni("nginx.example.com").is_some());
        assert_eq!(routes.route_sni("other.example.com"), None);
    }

    #[test]
    fn http_and_terminating_servers_are_sorted_out() {
        let servers = vec![
            proto::Server {
                name: "http.80".into(),
                protocol: Protocol::Http as i32,
                routing: Some(Routing::RouteTable("http.80".into())),
                ..Default::default()
            },
            proto::Server {
                name: "tls-simple".into(),
                protocol: Protocol::Tls as i32,
                tls: tls(TlsMode::Simple),
                routing: Some(Routing::TcpRoutes(proto::TcpRoutes {
                    routes: vec![proto::TcpRoute {
                        destinations: weighted(&[("echo", 0)]),
                    }],
                })),
                ..Default::default()
            },
        ];
        let clusters: HashSet<&str> = ["echo"].into();
        let tables: HashSet<&str> = ["http.80"].into();
        let mut errors = Vec::new();
        let routes =
            ListenerRoutes::from_proto(&listener(servers), &clusters, &tables, &mut errors)
                .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert!(routes.unsupported.is_empty());
        assert_eq!(routes.http[0].route_table, "http.80");
        assert_eq!(routes.terminating[0].name, "tls-simple");
        assert!(
            matches!(&routes.terminating[0].routing, TerminatedRouting::Tcp(d) if d.pick(0) == Some("echo"))
        );
        assert!(routes.tcp.is_none());
        assert!(!routes.peeks_client_hello());
    }

    #[test]
    fn unknown_clusters_and_bad_addresses_are_errors() {
        let servers = vec![proto::Server {
            name: "tcp".into(),
            protocol: Protocol::Tcp as i32,
            routing: Some(Routing::TcpRoutes(proto::TcpRoutes {
                routes: vec![proto::TcpRoute {
                    destinations: weighted(&[("missing", 0)]),
                }],
            })),
            ..Default::default()
        }];
        let mut errors = Vec::new();
        let routes = ListenerRoutes::from_proto(
            &listener(servers),
            &HashSet::new(),
            &HashSet::new(),
            &mut errors,
        );
        assert!(routes.is_some());
        assert!(
            matches!(&errors[..], [ConfigError::UnknownCluster { cluster, .. }] if cluster == "missing")
        );

        let mut bad = listener(vec![]);
        bad.bind_address = "localhost".into();
        let mut errors = Vec::new();
        assert!(
            ListenerRoutes::from_proto(&bad, &HashSet::new(), &HashSet::new(), &mut errors)
                .is_none()
        );
        assert!(matches!(&errors[..], [ConfigError::ListenerAddress { .. }]));
    }
}
