//! Name, host, address, label and duration rules shared by the Istio kinds.
//!
//! Messages reproduce Istio's webhook wording (pkg/config/validation/agent), so people can
//! search for them and find the Istio documentation.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

use crate::istio::duration::IstioDuration;

const DNS1123_LABEL_MAX_LENGTH: usize = 63;
const DOMAIN_NAME_MAX_LENGTH: usize = 255;
const DNS_PREFIX_MAX_LENGTH: usize = 253;
pub(crate) const UNIX_ADDRESS_PREFIX: &str = "unix://";

const LABEL_FMT: &str = "[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?";
const QUALIFIED_NAME_FMT: &str = "(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";

// The patterns are constants checked by the tests below, so compiling them cannot fail.
#[allow(clippy::expect_used)]
static TAG_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        "^({LABEL_FMT}(?:\\.{LABEL_FMT})*/)?({QUALIFIED_NAME_FMT})$"
    ))
    .expect("constant label key pattern compiles")
});
#[allow(clippy::expect_used)]
static LABEL_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("^({QUALIFIED_NAME_FMT})?$"))
        .expect("constant label value pattern compiles")
});

/// RFC 1123 label as Istio checks it (letters of either case, digits, inner dashes).
pub fn is_dns1123_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    value.len() <= DNS1123_LABEL_MAX_LENGTH
        && first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// A label that may be `*` or start with `*` / `*-` followed by a normal label.
pub fn is_wildcard_dns1123_label(value: &str) -> bool {
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        return false;
    }
    value == "*"
        || is_dns1123_label(value)
        || value.strip_prefix("*-").is_some_and(is_dns1123_label)
        || value.strip_prefix('*').is_some_and(is_dns1123_label)
}

fn check_dns1123_preconditions(name: &str) -> Result<(), String> {
    if name.len() > DOMAIN_NAME_MAX_LENGTH {
        return Err(format!("domain name {name:?} too long (max 255)"));
    }
    if name.is_empty() {
        return Err("empty domain name not allowed".to_string());
    }
    Ok(())
}

fn validate_dns1123_labels(domain: &str) -> Result<(), String> {
    let parts: Vec<&str> = domain.split('.').collect();
    let top_level = parts.last().copied().unwrap_or_default();
    if !top_level.is_empty() && top_level.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "domain name {domain:?} invalid (top level domain {top_level:?} cannot be all-numeric)"
        ));
    }
    for (index, label) in parts.iter().enumerate() {
        // A trailing dot (`istio.io.`) is an unambiguous absolute name.
        if index == parts.len() - 1 && label.is_empty() {
            return Ok(());
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "domain name {domain:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

/// A fully-qualified domain name, no wildcards.
pub fn validate_fqdn(fqdn: &str) -> Result<(), String> {
    check_dns1123_preconditions(fqdn)?;
    validate_dns1123_labels(fqdn)
}

/// A domain that may be wildcarded, but only as the whole (or the start of the) leftmost label.
pub fn validate_wildcard_domain(domain: &str) -> Result<(), String> {
    check_dns1123_preconditions(domain)?;
    let (first, rest) = match domain.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (domain, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Err(format!(
            "domain name {domain:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(rest) => validate_dns1123_labels(rest),
        None => Ok(()),
    }
}

/// Host of a VirtualService bound to a gateway: like [`validate_wildcard_domain`], but an
/// SNI-routed service may also name Istio's generated `outbound_.<port>_...` hosts.
pub fn validate_wildcard_domain_for_gateway_binding(sni: bool, domain: &str) -> Result<(), String> {
    check_dns1123_preconditions(domain)?;
    let first = domain.split('.').next().unwrap_or_default();
    if sni && first == "outbound_" {
        let port_label = domain.split('.').nth(1).unwrap_or_default();
        let starts_with_digit = port_label
            .bytes()
            .next()
            .is_some_and(|b| (b'0'..=b'8').contains(&b));
        if !starts_with_digit {
            return Err(format!(
                "domain name {domain:?} invalid (label {first:?} invalid)"
            ));
        }
        return Ok(());
    }
    validate_wildcard_domain(domain)
}

/// `*` alone or `*.` at the start are the only wildcard forms Istio accepts in host lists.
pub fn validate_partial_wildcard(host: &str) -> Result<(), String> {
    if host.contains('*') && host.len() != 1 && !host.starts_with("*.") {
        return Err(format!("partial wildcard {host:?} not allowed"));
    }
    Ok(())
}

pub fn is_valid_ip(value: &str) -> bool {
    value.parse::<IpAddr>().is_ok()
}

pub fn validate_ip_address(value: &str) -> Result<(), String> {
    if is_valid_ip(value) {
        Ok(())
    } else {
        Err(format!("{value} is not a valid IP"))
    }
}

/// An address (`10.0.0.1`, `2001:db8::1`) or a CIDR block (`10.0.0.0/8`).
pub fn validate_ip_subnet(subnet: &str) -> Result<(), String> {
    if subnet.matches('/').count() == 1 {
        let valid = subnet.split_once('/').is_some_and(|(address, bits)| {
            let max_bits = match address.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => 32,
                Ok(IpAddr::V6(_)) => 128,
                Err(_) => return false,
            };
            !bits.is_empty()
                && bits.bytes().all(|b| b.is_ascii_digit())
                && bits.parse::<u32>().is_ok_and(|bits| bits <= max_bits)
        });
        if valid {
            return Ok(());
        }
        return Err(format!("{subnet} is not a valid CIDR block"));
    }
    validate_ip_address(subnet)
}

pub fn validate_port(port: u32) -> Result<(), String> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(format!("port number {port} must be in the range 1..65535"))
    }
}

pub fn validate_port_name(name: &str) -> Result<(), String> {
    if is_dns1123_label(name) {
        Ok(())
    } else {
        Err(format!("invalid port name: {name}"))
    }
}

pub fn validate_unix_address(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("unix address must not be empty".to_string());
    }
    if address.starts_with('@') {
        return Ok(());
    }
    if !address.starts_with('/') || address.ends_with('/') {
        return Err(format!("{address} is not an absolute path to a file"));
    }
    Ok(())
}

/// Kubernetes label keys and values.
pub fn validate_labels(labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut errors = Vec::new();
    for (key, value) in labels {
        match TAG_KEY.captures(key) {
            None => errors.push(format!("invalid tag key: {key:?}")),
            Some(captures) => {
                let prefix_len = captures.get(1).map_or(0, |prefix| prefix.as_str().len());
                let name_len = captures.get(2).map_or(0, |name| name.as_str().len());
                if prefix_len > 0 && prefix_len - 1 > DNS_PREFIX_MAX_LENGTH {
                    errors.push(format!("invalid tag key: {key:?} (DNS prefix is too long)"));
                } else if name_len > DNS1123_LABEL_MAX_LENGTH {
                    errors.push(format!("invalid tag key: {key:?} (name is too long)"));
                }
            }
        }
        if !LABEL_VALUE.is_match(value) {
            errors.push(format!("invalid tag value: {value:?}"));
        }
    }
    errors
}

/// A `namespace/dnsName` host (Gateway servers and Sidecar egress). Gateways also accept the
/// old form without a namespace; the namespace may be `*` or `.` (and `~` outside gateways).
pub fn validate_namespace_slash_host(host: &str, is_gateway: bool) -> Vec<String> {
    let Some((namespace, dns_name)) = host.split_once('/') else {
        if is_gateway {
            return validate_gateway_host_part(host, true);
        }
        return vec!["host must be of form namespace/dnsName".to_string()];
    };
    let mut errors = Vec::new();
    if namespace.is_empty() || dns_name.is_empty() {
        errors.push("config namespace and dnsName in host entry cannot be empty".to_string());
    }
    let special = if is_gateway {
        matches!(namespace, "*" | ".")
    } else {
        matches!(namespace, "*" | "." | "~")
    };
    if !special && !is_dns1123_label(namespace) {
        let scope = if is_gateway { "gateway" } else { "sidecar" };
        errors.push(format!("invalid namespace value {namespace:?} in {scope}"));
    }
    errors.extend(validate_gateway_host_part(dns_name, is_gateway));
    errors
}

fn validate_gateway_host_part(hostname: &str, is_gateway: bool) -> Vec<String> {
    let mut errors = Vec::new();
    if hostname != "*" && !hostname.contains('.') {
        errors.push("short names (non FQDN) are not allowed".to_string());
    }
    if let Err(error) = validate_wildcard_domain(hostname) {
        // Gateways may name an IP address instead of a host.
        if !is_gateway || !is_valid_ip(hostname) {
            errors.push(error);
        }
    }
    if let Err(error) = validate_partial_wildcard(hostname) {
        errors.push(error);
    }
    errors
}

/// Whether two hosts can match a common name (`*.foo.com` and `*.com` do).
pub fn hosts_overlap(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(suffix_a), Some(suffix_b)) => {
            suffix_a.ends_with(suffix_b) || suffix_b.ends_with(suffix_a)
        }
        (Some(suffix_a), None) => b.ends_with(suffix_a),
        (None, Some(suffix_b)) => a.ends_with(suffix_b),
        (None, None) => a == b,
    }
}

/// Whether every name `host` matches is also matched by `of`.
pub fn host_is_subset_of(host: &str, of: &str) -> bool {
    match (host.strip_prefix('*'), of.strip_prefix('*')) {
        (Some(suffix_host), Some(suffix_of)) => suffix_host.ends_with(suffix_of),
        (Some(_), None) => false,
        (None, Some(suffix_of)) => host.ends_with(suffix_of),
        (None, None) => host == of,
    }
}

/// Istio's rules for the `exportTo` list.
pub fn validate_export_to(
    namespace: &str,
    export_to: &[String],
    is_service_entry: bool,
    destination_rule_with_selector: bool,
) -> Vec<String> {
    let mut errors = Vec::new();
    if export_to.is_empty() {
        return errors;
    }
    let mut seen: Vec<String> = Vec::new();
    for entry in export_to {
        let key = if entry == "." {
            namespace.to_string()
        } else {
            entry.clone()
        };
        if seen.contains(&key) {
            if key != *entry {
                errors.push(format!(
                    "duplicate entries in exportTo: . and current namespace {namespace}"
                ));
            } else {
                errors.push(format!("duplicate entries in exportTo for entry {entry}"));
            }
            continue;
        }
        if is_service_entry && entry == "~" {
            seen.push(key);
            continue;
        }
        match key.as_str() {
            "*" => seen.push(key),
            "~" => errors.push(
                "exportTo ~ (none) is not allowed for Istio configuration objects".to_string(),
            ),
            other if is_dns1123_label(other) => seen.push(key),
            _ => errors.push(
                "only .,*, or a valid DNS 1123 label is allowed as exportTo entry".to_string(),
            ),
        }
    }
    if destination_rule_with_selector && !seen.is_empty() {
        if seen.iter().any(|entry| entry == namespace) {
            if seen.len() > 1 {
                errors.push(
                    "destination rule with workload selector cannot have multiple entries in exportTo"
                        .to_string(),
                );
            }
        } else {
            errors.push(
                "destination rule with workload selector cannot have exportTo beyond current namespace"
                    .to_string(),
            );
        }
    }
    if seen.iter().any(|entry| entry == "*") && export_to.len() > 1 {
        errors.push(
            "cannot have both public (*) and non-public exportTo values for a resource".to_string(),
        );
    }
    if seen.iter().any(|entry| entry == "~") && export_to.len() > 1 {
        errors.push("cannot export service entry to no one (~) and someone".to_string());
    }
    errors
}

/// A duration field: must parse, be at least 1ms and have millisecond precision.
pub fn validate_duration(duration: &IstioDuration) -> Result<Duration, String> {
    let value = duration.get().map_err(ToString::to_string)?;
    if value < Duration::from_millis(1) {
        return Err("duration must be greater than 1ms".to_string());
    }
    if value.subsec_nanos() % 1_000_000 != 0 {
        return Err("only durations to ms precision are supported".to_string());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_patterns_compile_and_match() {
        let labels = BTreeMap::from([
            (
                "app.kubernetes.io/name".to_string(),
                "reviews_v1".to_string(),
            ),
            ("version".to_string(), String::new()),
        ]);
        assert!(validate_labels(&labels).is_empty());
        let bad = BTreeMap::from([("-bad".to_string(), "ok".to_string())]);
        assert_eq!(
            validate_labels(&bad),
            vec!["invalid tag key: \"-bad\"".to_string()]
        );
        let bad_value = BTreeMap::from([("ok".to_string(), "a b".to_string())]);
        assert_eq!(
            validate_labels(&bad_value),
            vec!["invalid tag value: \"a b\"".to_string()]
        );
    }

    #[test]
    fn wildcard_labels() {
        assert!(is_wildcard_dns1123_label("*"));
        assert!(is_wildcard_dns1123_label("*foo"));
        assert!(is_wildcard_dns1123_label("*-foo"));
        assert!(!is_wildcard_dns1123_label("foo*"));
        assert!(!is_wildcard_dns1123_label("**"));
    }

    #[test]
    fn overlap_and_subset() {
        assert!(hosts_overlap("*.foo.com", "*.com"));
        assert!(hosts_overlap("bar.foo.com", "*.foo.com"));
        assert!(hosts_overlap("*", "anything.com"));
        assert!(!hosts_overlap("a.com", "b.com"));
        assert!(host_is_subset_of("a.foo.com", "*.foo.com"));
        assert!(host_is_subset_of("*.a.foo.com", "*.foo.com"));
        assert!(!host_is_subset_of("*.com", "*.foo.com"));
        assert!(host_is_subset_of("x.com", "*"));
    }

    #[test]
    fn subnets() {
        assert!(validate_ip_subnet("10.0.0.0/8").is_ok());
        assert!(validate_ip_subnet("2001:db8::/32").is_ok());
        assert!(validate_ip_subnet("10.0.0.1").is_ok());
        assert_eq!(
            validate_ip_subnet("10.0.0.0/33"),
            Err("10.0.0.0/33 is not a valid CIDR block".to_string())
        );
        assert_eq!(
            validate_ip_subnet("example.com"),
            Err("example.com is not a valid IP".to_string())
        );
    }
}
