//! Checks a `GatewayConfig` before a gateway swaps it in.
//!
//! Every problem is collected, not just the first: a NACK that names one problem at a time turns
//! one bad push into a long debugging loop. Each problem carries a path into the config so the
//! message points at the item, e.g. `listeners[0.0.0.0_15443].servers[0].auto_passthrough`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use crate::proto::{
    self, GatewayConfig, Protocol, TlsMode, TlsVersion, WeightedCluster, server::Routing,
};
use crate::sni::SniKey;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Returns every problem in `config`; an empty list means it is safe to apply.
pub fn validate(config: &GatewayConfig) -> Vec<ConfigProblem> {
    let mut check = Checker::new(config);
    check.version();
    check.credentials();
    check.clusters();
    check.route_tables();
    check.listeners();
    check.problems
}

/// Every problem of `config` after a delta touched the clusters named `touched` (see
/// [`crate::delta::Undo::touched`]), given that it passed [`validate`] before: the same list
/// [`validate`] would give. Only the touched clusters and the version can be new problems,
/// so tens of thousands of unchanged endpoints are not checked again on every endpoint move.
/// A touched name that is gone was removed, and a removal can leave references dangling
/// anywhere: then the whole configuration is checked.
pub fn validate_after_delta<'n>(
    config: &GatewayConfig,
    touched: impl IntoIterator<Item = &'n str>,
) -> Vec<ConfigProblem> {
    // A name removed and added again in one delta is touched twice but is one cluster.
    let touched: BTreeSet<&str> = touched.into_iter().collect();
    let mut clusters = Vec::with_capacity(touched.len());
    for name in touched {
        // The delta sorted the clusters by name.
        match config
            .clusters
            .binary_search_by(|cluster| cluster.name.as_str().cmp(name))
        {
            Ok(index) => clusters.push(&config.clusters[index]),
            Err(_) => return validate(config),
        }
    }
    let mut check = Checker::new(config);
    check.version();
    for cluster in clusters {
        if cluster.name.is_empty() {
            check.problem("clusters", "has an entry with an empty name");
        }
        check.cluster(cluster);
    }
    check.problems
}

struct Checker<'a> {
    config: &'a GatewayConfig,
    clusters: BTreeSet<&'a str>,
    credentials: BTreeSet<&'a str>,
    route_tables: BTreeSet<&'a str>,
    problems: Vec<ConfigProblem>,
}

impl<'a> Checker<'a> {
    fn new(config: &'a GatewayConfig) -> Self {
        Checker {
            config,
            clusters: config.clusters.iter().map(|c| c.name.as_str()).collect(),
            credentials: config.credentials.iter().map(|c| c.name.as_str()).collect(),
            route_tables: config
                .route_tables
                .iter()
                .map(|r| r.name.as_str())
                .collect(),
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn version(&mut self) {
        if self.config.version.is_empty() {
            self.problem("version", "is empty; discovery must version every push");
        }
    }

    fn duplicates<'n>(&mut self, what: &str, names: impl Iterator<Item = &'n str>) {
        let mut seen = BTreeSet::new();
        for name in names {
            if name.is_empty() {
                self.problem(what, "has an entry with an empty name");
            } else if !seen.insert(name) {
                self.problem(format!("{what}[{name}]"), "is defined more than once");
            }
        }
    }

    fn credentials(&mut self) {
        let config = self.config;
        self.duplicates(
            "credentials",
            config.credentials.iter().map(|c| c.name.as_str()),
        );
        for credential in &config.credentials {
            let path = format!("credentials[{}]", credential.name);
            let (chain, key) = match &credential.source {
                None => {
                    self.problem(path, "has neither files nor inline PEM");
                    continue;
                }
                Some(proto::tls_credential::Source::Files(files)) => {
                    (&files.certificate_chain, &files.private_key)
                }
                Some(proto::tls_credential::Source::Pem(pem)) => {
                    (&pem.certificate_chain, &pem.private_key)
                }
            };
            // A CA-only credential (for MUTUAL's client CA or upstream verification) is valid;
            // a certificate without its key, or the reverse, can never be served.
            if chain.is_empty() != key.is_empty() {
                self.problem(
                    path,
                    "has a certificate chain or a private key but not both",
                );
            }
        }
    }

    fn clusters(&mut self) {
        let config = self.config;
        self.duplicates("clusters", config.clusters.iter().map(|c| c.name.as_str()));
        for cluster in &config.clusters {
            self.cluster(cluster);
        }
    }

    fn cluster(&mut self, cluster: &proto::Cluster) {
        let path = format!("clusters[{}]", cluster.name);
        if let Err(error) = SniKey::from_cluster_name(&cluster.name) {
            self.problem(&path, format!("name is not a valid cluster name: {error}"));
        }
        // Tens of thousands of endpoints per push: name the path only for a problem.
        let endpoint_path = |index: usize| format!("{path}.endpoints[{index}]");
        for (index, endpoint) in cluster.endpoints.iter().enumerate() {
            if endpoint.address.parse::<IpAddr>().is_err() {
                self.problem(
                    endpoint_path(index),
                    format!("address {:?} is not an IP address", endpoint.address),
                );
            }
            if !is_port(endpoint.port) {
                self.problem(
                    endpoint_path(index),
                    format!("port {} is out of range", endpoint.port),
                );
            }
        }
        for (index, target) in cluster.dns_targets.iter().enumerate() {
            if target.hostname.is_empty() || !is_port(target.port) {
                self.problem(
                    format!("{path}.dns_targets[{index}]"),
                    "needs a hostname and a port from 1 to 65535",
                );
            }
        }
        if let Some(tls) = &cluster.tls {
            self.credential_ref(&format!("{path}.tls"), &tls.credential);
        }
    }

    fn route_tables(&mut self) {
        let config = self.config;
        self.duplicates(
            "route_tables",
            config.route_tables.iter().map(|r| r.name.as_str()),
        );
        for table in &config.route_tables {
            let mut domains = BTreeSet::new();
            for host in &table.virtual_hosts {
                let host_path =
                    format!("route_tables[{}].virtual_hosts[{}]", table.name, host.name);
                for domain in &host.domains {
                    if !domains.insert(domain.to_ascii_lowercase()) {
                        self.problem(
                            &host_path,
                            format!("domain {domain:?} is already claimed by another virtual host"),
                        );
                    }
                }
                for route in &host.routes {
                    let route_path = format!("{host_path}.routes[{}]", route.name);
                    match &route.action {
                        None => {
                            self.problem(route_path, "has no route, redirect or direct response")
                        }
                        Some(proto::http_route::Action::Route(action)) => {
                            self.destinations(&route_path, &action.destinations);
                            if let Some(mirror) = &action.mirror {
                                self.cluster_ref(&format!("{route_path}.mirror"), &mirror.cluster);
                            }
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }

    fn listeners(&mut self) {
        let config = self.config;
        self.duplicates(
            "listeners",
            config.listeners.iter().map(|l| l.name.as_str()),
        );
        let mut bound: BTreeMap<(&str, u32), &str> = BTreeMap::new();
        for listener in &config.listeners {
            let path = format!("listeners[{}]", listener.name);
            if listener.bind_address.parse::<IpAddr>().is_err() {
                self.problem(
                    &path,
                    format!(
                        "bind_address {:?} is not an IP address",
                        listener.bind_address
                    ),
                );
            }
            if !is_port(listener.port) {
                self.problem(&path, format!("port {} is out of range", listener.port));
            }
            if let Some(other) =
                bound.insert((&listener.bind_address, listener.port), &listener.name)
            {
                self.problem(
                    &path,
                    format!("binds the same address and port as listener {other}"),
                );
            }
            if listener.servers.is_empty() {
                self.problem(&path, "has no servers");
            }
            let mut snis = BTreeSet::new();
            for (index, server) in listener.servers.iter().enumerate() {
                self.server(&format!("{path}.servers[{index}]"), server, &mut snis);
            }
        }
    }

    fn server<'s>(&mut self, path: &str, server: &'s proto::Server, snis: &mut BTreeSet<&'s str>) {
        let protocol = Protocol::try_from(server.protocol).unwrap_or(Protocol::Unspecified);
        if protocol == Protocol::Unspecified {
            self.problem(path, "has no protocol");
        }
        let mode = server
            .tls
            .as_ref()
            .map(|tls| TlsMode::try_from(tls.mode).unwrap_or(TlsMode::Unspecified));
        if let Some(tls) = &server.tls {
            self.server_tls(path, tls, mode);
        } else if matches!(protocol, Protocol::Https | Protocol::Tls) {
            self.problem(
                path,
                format!("protocol {} needs TLS settings", protocol.as_str_name()),
            );
        }
        match (&server.routing, mode) {
            (None, Some(TlsMode::Unspecified) | None) if server_redirects(server) => {}
            (None, _) => self.problem(path, "has no routing"),
            (Some(Routing::AutoPassthrough(table)), mode) => {
                if mode != Some(TlsMode::AutoPassthrough) {
                    self.problem(
                        path,
                        "has an SNI table but its TLS mode is not AUTO_PASSTHROUGH",
                    );
                }
                for route in &table.routes {
                    let route_path = format!("{path}.auto_passthrough[{}]", route.sni);
                    if let Err(error) = SniKey::from_sni(&route.sni) {
                        self.problem(&route_path, error.to_string());
                    }
                    if !snis.insert(&route.sni) {
                        self.problem(&route_path, "SNI appears more than once on this listener");
                    }
                    self.cluster_ref(&route_path, &route.cluster);
                }
            }
            (Some(Routing::TlsRoutes(routes)), mode) => {
                if mode != Some(TlsMode::Passthrough) {
                    self.problem(path, "has tls routes but its TLS mode is not PASSTHROUGH");
                }
                for (index, route) in routes.routes.iter().enumerate() {
                    self.destinations(&format!("{path}.tls_routes[{index}]"), &route.destinations);
                }
            }
            (Some(Routing::TcpRoutes(routes)), _) => {
                for (index, route) in routes.routes.iter().enumerate() {
                    self.destinations(&format!("{path}.tcp_routes[{index}]"), &route.destinations);
                }
            }
            (Some(Routing::RouteTable(name)), _) => {
                if !protocol_is_http(protocol) {
                    self.problem(
                        path,
                        format!("protocol {} cannot use HTTP routes", protocol.as_str_name()),
                    );
                }
                if !self.route_tables.contains(name.as_str()) {
                    self.problem(
                        path,
                        format!("refers to route table {name:?}, which is not defined"),
                    );
                }
            }
        }
    }

    fn server_tls(&mut self, path: &str, tls: &proto::ServerTls, mode: Option<TlsMode>) {
        let tls_path = format!("{path}.tls");
        let min = TlsVersion::try_from(tls.min_version).unwrap_or(TlsVersion::TlsAuto);
        let max = TlsVersion::try_from(tls.max_version).unwrap_or(TlsVersion::TlsAuto);
        if min != TlsVersion::TlsAuto && max != TlsVersion::TlsAuto && min > max {
            self.problem(
                &tls_path,
                format!(
                    "min_version {} is above max_version {}",
                    min.as_str_name(),
                    max.as_str_name()
                ),
            );
        }
        match mode {
            Some(TlsMode::Simple | TlsMode::Mutual | TlsMode::OptionalMutual) => {
                if tls.credential.is_empty() {
                    self.problem(&tls_path, "terminates TLS but names no credential");
                } else {
                    self.credential_ref(&tls_path, &tls.credential);
                }
            }
            Some(TlsMode::IstioMutual | TlsMode::Passthrough | TlsMode::AutoPassthrough) => {
                if !tls.credential.is_empty() {
                    self.problem(&tls_path, "this mode takes no credential");
                }
            }
            Some(TlsMode::Unspecified) | None => {
                if !tls.https_redirect {
                    self.problem(&tls_path, "has no mode");
                }
            }
        }
    }

    fn destinations(&mut self, path: &str, destinations: &[WeightedCluster]) {
        if destinations.is_empty() {
            self.problem(path, "has no destinations");
            return;
        }
        if destinations.len() > 1 && destinations.iter().all(|d| d.weight == 0) {
            self.problem(path, "has several destinations and every weight is 0");
        }
        for destination in destinations {
            self.cluster_ref(path, &destination.cluster);
        }
    }

    fn cluster_ref(&mut self, path: &str, cluster: &str) {
        if !self.clusters.contains(cluster) {
            self.problem(
                path,
                format!("refers to cluster {cluster:?}, which is not defined"),
            );
        }
    }

    fn credential_ref(&mut self, path: &str, credential: &str) {
        if !credential.is_empty() && !self.credentials.contains(credential) {
            self.problem(
                path,
                format!("refers to credential {credential:?}, which is not defined"),
            );
        }
    }
}

fn server_redirects(server: &proto::Server) -> bool {
    server.tls.as_ref().is_some_and(|tls| tls.https_redirect)
}

fn protocol_is_http(protocol: Protocol) -> bool {
    matches!(
        protocol,
        Protocol::Http | Protocol::Https | Protocol::Http2 | Protocol::Grpc | Protocol::GrpcWeb
    )
}

fn is_port(port: u32) -> bool {
    (1..=u32::from(u16::MAX)).contains(&port)
}
