//! Host names as Istio compares them: Gateway server hosts (`namespace/dnsName`), VirtualService
//! hosts, SNI hosts and service hostnames.
//!
//! A wildcard is only ever the whole leftmost label (`*.example.com`) or `*` alone; validation
//! has already refused anything else, so matching never has to guess.

/// One Gateway server host, split into the namespaces it admits and the DNS part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHost {
    pub namespace: NamespaceFilter,
    pub host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceFilter {
    /// `*/host` or no prefix: any namespace.
    Any,
    /// `ns/host`, or `./host` resolved to the Gateway's own namespace.
    Only(String),
    /// `~/host`: no namespace (the host is reserved, nothing binds to it).
    None,
}

impl ServerHost {
    /// Parses `host`, `ns/host`, `./host`, `*/host`, `~/host`; `.` means the Gateway's namespace.
    pub fn parse(text: &str, gateway_namespace: &str) -> ServerHost {
        let (namespace, host) = match text.split_once('/') {
            None => (NamespaceFilter::Any, text),
            Some(("*", host)) => (NamespaceFilter::Any, host),
            Some((".", host)) => (NamespaceFilter::Only(gateway_namespace.to_owned()), host),
            Some(("~", host)) => (NamespaceFilter::None, host),
            Some((namespace, host)) => (NamespaceFilter::Only(namespace.to_owned()), host),
        };
        ServerHost {
            namespace,
            host: host.to_ascii_lowercase(),
        }
    }

    /// Whether a resource in `namespace` may attach to this host.
    pub fn admits_namespace(&self, namespace: &str) -> bool {
        match &self.namespace {
            NamespaceFilter::Any => true,
            NamespaceFilter::Only(only) => only == namespace,
            NamespaceFilter::None => false,
        }
    }
}

/// True when `name` (exact or wildcard) falls within `pattern` (exact or wildcard).
/// `*.com` covers `bookinfo.com` and `*.bookinfo.com`; `*` covers everything.
pub fn covers(pattern: &str, name: &str) -> bool {
    if pattern == "*" || pattern.eq_ignore_ascii_case(name) {
        return true;
    }
    let Some(suffix) = pattern.strip_prefix('*') else {
        return false;
    };
    // `suffix` starts with '.', so `*.com` never covers `com` itself, matching Envoy.
    if name == "*" {
        return false;
    }
    // A wildcard name is covered when its own suffix is longer: `*.com` covers `*.a.com`.
    let name_body = name.strip_prefix('*').unwrap_or(name);
    name_body.len() > suffix.len()
        && name_body.is_char_boundary(name_body.len() - suffix.len())
        && name_body[name_body.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// The names that both a Gateway host and a VirtualService host accept, as the more specific of
/// the two (Istio's gateway/VirtualService host intersection, conformance A3).
pub fn intersect(gateway_host: &str, virtual_service_host: &str) -> Option<String> {
    if covers(gateway_host, virtual_service_host) {
        Some(virtual_service_host.to_ascii_lowercase())
    } else if covers(virtual_service_host, gateway_host) {
        Some(gateway_host.to_ascii_lowercase())
    } else {
        None
    }
}

/// Expands a short host (`reviews`, `reviews.default`) the way Istio does for a resource in
/// `namespace`: a name without dots is a service in that namespace; anything with a dot is
/// taken as written.
pub fn fully_qualify(host: &str, namespace: &str, domain_suffix: &str) -> String {
    if host.contains('.') || host == "*" {
        host.to_ascii_lowercase()
    } else {
        format!(
            "{}.{namespace}.svc.{domain_suffix}",
            host.to_ascii_lowercase()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_a3_intersections() {
        let cases = [
            ("*", "*", Some("*")),
            ("bookinfo.com", "bookinfo.com", Some("bookinfo.com")),
            ("bookinfo.com", "bookinfo.demo", None),
            ("bookinfo.com", "*.com", Some("bookinfo.com")),
            ("*.com", "bookinfo.com", Some("bookinfo.com")),
            ("bookinfo.demo", "*", Some("bookinfo.demo")),
            (
                "*",
                "reviews.default.svc.cluster.local",
                Some("reviews.default.svc.cluster.local"),
            ),
            (
                "*.local",
                "reviews.default.svc.cluster.local",
                Some("reviews.default.svc.cluster.local"),
            ),
            ("*.com", "*.bookinfo.com", Some("*.bookinfo.com")),
            ("*.bookinfo.com", "*.com", Some("*.bookinfo.com")),
            ("*.com", "com", None),
            ("*.com", "*.demo", None),
            ("Bookinfo.COM", "bookinfo.com", Some("bookinfo.com")),
        ];
        for (gateway, virtual_service, expected) in cases {
            assert_eq!(
                intersect(gateway, virtual_service).as_deref(),
                expected,
                "{gateway} ∩ {virtual_service}"
            );
        }
    }

    #[test]
    fn mypage_is_outside_a_bookinfo_binding() {
        // Gateway `*.com`, VirtualService `bookinfo.com`: only bookinfo.com is routed.
        let routed = intersect("*.com", "bookinfo.com").unwrap();
        assert!(covers(&routed, "bookinfo.com"));
        assert!(!covers(&routed, "mypage.com"));
    }

    #[test]
    fn server_hosts_parse_namespaces() {
        let parse = |text| ServerHost::parse(text, "istio-system");
        assert_eq!(parse("*.local").namespace, NamespaceFilter::Any);
        assert_eq!(parse("*/foo.com").namespace, NamespaceFilter::Any);
        assert_eq!(
            parse("./foo.com").namespace,
            NamespaceFilter::Only("istio-system".into())
        );
        assert_eq!(
            parse("prod/foo.com").namespace,
            NamespaceFilter::Only("prod".into())
        );
        assert_eq!(parse("prod/Foo.com").host, "foo.com");
        assert!(!parse("~/foo.com").admits_namespace("default"));
        assert!(parse("prod/foo.com").admits_namespace("prod"));
        assert!(!parse("prod/foo.com").admits_namespace("dev"));
    }

    #[test]
    fn short_names_resolve_in_the_resource_namespace() {
        assert_eq!(
            fully_qualify("productpage", "istio-system", "cluster.local"),
            "productpage.istio-system.svc.cluster.local"
        );
        assert_eq!(
            fully_qualify(
                "productpage.istio.svc.cluster.local",
                "istio-system",
                "cluster.local"
            ),
            "productpage.istio.svc.cluster.local"
        );
    }
}
