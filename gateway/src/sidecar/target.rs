//! Which mesh cluster a proxy request names: `host:port` from `CONNECT` or an absolute URI,
//! plus the `isthmus-subset` header, mapped to Istio's `outbound|port|subset|fqdn` key.
//!
//! The host must be a mesh service name. Anything else is refused here, before any socket
//! is opened, so the proxy port can never be used to reach an arbitrary address.

use multicluster::sni::SniKey;
use thiserror::Error;

/// The proxy request header that selects a DestinationRule subset. An Isthmus extension
/// until mesh VirtualServices are supported.
pub const SUBSET_HEADER: &str = "isthmus-subset";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetError {
    #[error(
        "proxy target {target:?} must be <service host>:<port>, e.g. reviews.default.svc.cluster.local:9080"
    )]
    Shape { target: String },
    #[error(
        "proxy target {host:?} is an IP address; this proxy only reaches mesh services by name (reviews.default or reviews.default.svc.cluster.local)"
    )]
    IpAddress { host: String },
    #[error("proxy target {host:?} is not a mesh service name: {reason}")]
    Name { host: String, reason: String },
}

/// A resolved proxy target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshTarget {
    pub key: SniKey,
}

impl MeshTarget {
    /// Parses `authority` (`host:port`) with an optional subset. `name.namespace` is expanded
    /// to `name.namespace.svc.<domain_suffix>`; a lone `name` is refused, since the proxy
    /// cannot know which namespace the caller means.
    pub fn parse(
        authority: &str,
        subset: Option<&str>,
        domain_suffix: &str,
    ) -> Result<Self, TargetError> {
        let shape = || TargetError::Shape {
            target: authority.to_owned(),
        };
        let (host, port) = authority.rsplit_once(':').ok_or_else(shape)?;
        let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(shape)?;
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
            return Err(TargetError::IpAddress { host });
        }
        let labels = host.split('.').count();
        let fqdn = match labels {
            0 | 1 => {
                return Err(TargetError::Name {
                    host,
                    reason: "write name.namespace or the full service host name".to_owned(),
                });
            }
            2 => format!("{host}.svc.{domain_suffix}"),
            _ => host,
        };
        let subset = subset.map(str::trim).filter(|s| !s.is_empty());
        let key = SniKey::new(port, subset, &fqdn).map_err(|error| TargetError::Name {
            host: fqdn.clone(),
            reason: error.to_string(),
        })?;
        Ok(MeshTarget { key })
    }

    /// The name of the cluster discovery pushes for this target.
    pub fn cluster_name(&self) -> String {
        self.key.to_cluster_name()
    }

    /// The SNI the upstream TLS handshake carries (what a remote gateway routes by).
    pub fn sni(&self) -> String {
        self.key.to_sni()
    }

    /// The namespace of the service, from `name.namespace.svc...`.
    pub fn namespace(&self) -> Option<&str> {
        self.key.host().split('.').nth(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_short_names_map_to_istio_cluster_keys() {
        let full = MeshTarget::parse(
            "reviews.default.svc.cluster.local:9080",
            None,
            "cluster.local",
        )
        .unwrap();
        assert_eq!(
            full.cluster_name(),
            "outbound|9080||reviews.default.svc.cluster.local"
        );
        assert_eq!(
            full.sni(),
            "outbound_.9080_._.reviews.default.svc.cluster.local"
        );
        let short = MeshTarget::parse("Reviews.default:9080", Some("v1"), "mesh.example").unwrap();
        assert_eq!(
            short.cluster_name(),
            "outbound|9080|v1|reviews.default.svc.mesh.example"
        );
        assert_eq!(
            short.sni(),
            "outbound_.9080_.v1_.reviews.default.svc.mesh.example"
        );
        assert_eq!(short.namespace(), Some("default"));
        let blank_subset =
            MeshTarget::parse("reviews.default:9080", Some(" "), "cluster.local").unwrap();
        assert_eq!(blank_subset.key.subset(), None);
    }

    #[test]
    fn addresses_and_malformed_targets_are_refused() {
        for (target, expected) in [
            ("10.0.0.1:80", "is an IP address"),
            ("[::1]:80", "is an IP address"),
            ("reviews:9080", "write name.namespace"),
            ("reviews.default", "must be <service host>:<port>"),
            ("reviews.default:0", "must be <service host>:<port>"),
            ("reviews.default:http", "must be <service host>:<port>"),
            ("re_views.default:9080", "is not a mesh service name"),
        ] {
            let error = MeshTarget::parse(target, None, "cluster.local")
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{target}: {error}");
        }
    }
}
