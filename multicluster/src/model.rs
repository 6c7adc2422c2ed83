//! The mesh as discovery sees it once every cluster's inputs are merged: services, their
//! endpoints in every cluster, and the gateways that stand in front of each network.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use thiserror::Error;

pub const DEFAULT_DOMAIN_SUFFIX: &str = "cluster.local";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    #[error(
        "unknown protocol {0:?}: use one of HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, MYSQL, REDIS, TCP, TLS"
    )]
    UnknownProtocol(String),
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        /// Shared, not copied: every endpoint names its cluster and network, and a mesh has
        /// a hundred thousand endpoints but a handful of clusters.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn new(id: impl Into<String>) -> Result<Self, ModelError> {
                let id = id.into();
                if id.is_empty() {
                    return Err(ModelError::Empty { what: $what });
                }
                Ok(Self(Arc::from(id)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A Kubernetes cluster, as named in the mesh description (`cluster1`).
    ClusterId,
    "cluster id"
);
id_type!(
    /// An L3 network; endpoints on different networks reach each other only through gateways.
    NetworkId,
    "network id"
);

/// A service's identity across clusters: the same namespace/name in several clusters is one
/// service (namespace sameness), so the cluster is deliberately not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName {
    pub namespace: String,
    pub name: String,
}

impl ServiceName {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// `<name>.<namespace>.svc.<domain suffix>`
    pub fn hostname(&self, domain_suffix: &str) -> String {
        format!("{}.{}.svc.{domain_suffix}", self.name, self.namespace)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Istio's protocol names for ports and Gateway servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Http,
    Https,
    Http2,
    Grpc,
    GrpcWeb,
    Tcp,
    Tls,
    Mongo,
    Mysql,
    Redis,
}

impl Protocol {
    pub const ALL: [Protocol; 10] = [
        Protocol::Http,
        Protocol::Https,
        Protocol::Http2,
        Protocol::Grpc,
        Protocol::GrpcWeb,
        Protocol::Tcp,
        Protocol::Tls,
        Protocol::Mongo,
        Protocol::Mysql,
        Protocol::Redis,
    ];

    /// The canonical upper-case name, as Istio writes it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Http2 => "HTTP2",
            Protocol::Grpc => "GRPC",
            Protocol::GrpcWeb => "GRPC-WEB",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
            Protocol::Mongo => "MONGO",
            Protocol::Mysql => "MYSQL",
            Protocol::Redis => "REDIS",
        }
    }

    /// A protocol name as Gateway servers and ServiceEntry ports write it, ignoring case;
    /// `None` for anything else (validation reports it). Stricter than [`FromStr`], which also
    /// takes Kubernetes `appProtocol` spellings.
    pub fn parse(name: &str) -> Option<Protocol> {
        Protocol::ALL
            .into_iter()
            .find(|protocol| protocol.name().eq_ignore_ascii_case(name))
    }

    /// Istio's protocol selection for a Service port: `appProtocol` first, then the port name
    /// prefix before the first `-` (`http-web`, `grpc`), else TCP.
    pub fn for_service_port(app_protocol: Option<&str>, port_name: Option<&str>) -> Protocol {
        if let Some(protocol) = app_protocol.and_then(|p| p.parse().ok()) {
            return protocol;
        }
        port_name
            .map(|name| name.split('-').next().unwrap_or(name))
            .and_then(|prefix| prefix.parse().ok())
            .unwrap_or(Protocol::Tcp)
    }

    /// Plaintext HTTP family (HTTP/1.1, HTTP/2, gRPC, gRPC-Web).
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::GrpcWeb
        )
    }

    /// Protocols carried inside TLS (HTTPS, TLS).
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    /// Protocols proxied as opaque byte streams (after any TLS handling).
    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            Protocol::Tcp
                | Protocol::Https
                | Protocol::Tls
                | Protocol::Mongo
                | Protocol::Redis
                | Protocol::Mysql
        )
    }
}

impl FromStr for Protocol {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.to_ascii_uppercase();
        Protocol::parse(&upper)
            .or(match upper.as_str() {
                // Kubernetes appProtocol spellings Istio also accepts.
                "KUBERNETES.IO/H2C" => Some(Protocol::Http2),
                "KUBERNETES.IO/WS" | "KUBERNETES.IO/WSS" => Some(Protocol::Http),
                _ => None,
            })
            .ok_or_else(|| ModelError::UnknownProtocol(s.to_owned()))
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub number: u16,
    pub protocol: Protocol,
    /// Where endpoints listen; a named target port is resolved per endpoint.
    pub target_port: TargetPort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: ServiceName,
    pub hostname: String,
    pub ports: Vec<ServicePort>,
    /// The clusters in which this service is declared.
    pub clusters: Vec<ClusterId>,
}

impl Service {
    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }
}

/// Region/zone/subzone, written `region/zone/subzone` as Istio does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locality {
    pub region: String,
    pub zone: String,
    pub subzone: String,
}

impl Locality {
    pub fn parse(text: &str) -> Self {
        let mut parts = text.splitn(3, '/');
        let mut next = || parts.next().unwrap_or_default().to_owned();
        Locality {
            region: next(),
            zone: next(),
            subzone: next(),
        }
    }
}

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.subzone.is_empty() && self.zone.is_empty() {
            f.write_str(&self.region)
        } else if self.subzone.is_empty() {
            write!(f, "{}/{}", self.region, self.zone)
        } else {
            write!(f, "{}/{}/{}", self.region, self.zone, self.subzone)
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Health {
    #[default]
    Healthy,
    Unhealthy,
    Draining,
}

/// A workload's labels, shared: the replicas of one deployment carry the same set, so a
/// mesh-wide index keeps one copy per set instead of one per endpoint.
pub type Labels = Arc<BTreeMap<String, String>>;

/// One backend instance of a service in one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: IpAddr,
    /// Service port number → the port this endpoint listens on.
    pub ports: BTreeMap<u16, u16>,
    pub labels: Labels,
    pub cluster: ClusterId,
    pub network: NetworkId,
    pub locality: Locality,
    pub service_account: String,
    /// Runs a workload proxy that terminates mesh mTLS: the only kind of endpoint another
    /// network may reach, since the gateway forwards encrypted bytes it cannot upgrade.
    pub mtls_capable: bool,
    pub health: Health,
    pub weight: u32,
}

impl Endpoint {
    /// True when every `key: value` of `selector` is among this endpoint's labels (subset match).
    pub fn matches_labels(&self, selector: &BTreeMap<String, String>) -> bool {
        selector
            .iter()
            .all(|(key, value)| self.labels.get(key) == Some(value))
    }
}

/// An address at which a network's east-west gateway accepts AUTO_PASSTHROUGH traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkGateway {
    pub network: NetworkId,
    pub cluster: ClusterId,
    pub address: IpAddr,
    pub port: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_hostname_uses_domain_suffix() {
        let name = ServiceName::new("default", "reviews");
        assert_eq!(
            name.hostname(DEFAULT_DOMAIN_SUFFIX),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(
            name.hostname("corp.example"),
            "reviews.default.svc.corp.example"
        );
        assert_eq!(name.to_string(), "default/reviews");
    }

    #[test]
    fn protocol_selection_follows_istio() {
        use Protocol::*;
        let cases = [
            (None, Some("http-web"), Http),
            (None, Some("http"), Http),
            (None, Some("grpc-web"), Grpc),
            (None, Some("tls-passthrough"), Tls),
            (None, Some("web"), Tcp),
            (None, None, Tcp),
            (Some("HTTP2"), Some("tcp"), Http2),
            (Some("kubernetes.io/h2c"), None, Http2),
            (Some("unknown"), Some("redis"), Redis),
        ];
        for (app, name, expected) in cases {
            assert_eq!(
                Protocol::for_service_port(app, name),
                expected,
                "{app:?} {name:?}"
            );
        }
    }

    #[test]
    fn protocol_names_parse_case_insensitively() {
        for protocol in Protocol::ALL {
            assert_eq!(protocol.name().parse::<Protocol>(), Ok(protocol));
            assert_eq!(
                protocol.name().to_lowercase().parse::<Protocol>(),
                Ok(protocol)
            );
        }
        assert_eq!(Protocol::parse("grpc-Web"), Some(Protocol::GrpcWeb));
        assert_eq!(Protocol::parse("HTTP3"), None);
        assert_eq!(
            Protocol::parse("kubernetes.io/h2c"),
            None,
            "appProtocol spellings are for ports only"
        );
        let error = "SCTP".parse::<Protocol>().unwrap_err();
        assert!(error.to_string().contains("\"SCTP\""));
    }

    #[test]
    fn classifies_like_istio() {
        assert!(Protocol::Grpc.is_http());
        assert!(!Protocol::Https.is_http());
        assert!(Protocol::Https.is_tls() && Protocol::Tls.is_tls());
        assert!(!Protocol::Tcp.is_tls());
        assert!(Protocol::Mongo.is_tcp());
        assert!(!Protocol::Http.is_tcp());
    }

    #[test]
    fn ids_refuse_empty() {
        assert!(ClusterId::new("").is_err());
        assert_eq!(NetworkId::new("network1").unwrap().as_str(), "network1");
    }

    #[test]
    fn locality_round_trips() {
        for text in ["us-east1", "us-east1/b", "us-east1/b/rack2", ""] {
            assert_eq!(Locality::parse(text).to_string(), text);
        }
    }
}
