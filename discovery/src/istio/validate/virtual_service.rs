//! VirtualService rules (Istio's ValidateVirtualService), plus Istio's unreachable-rule
//! warnings.

use crate::istio::IstioObject;
use crate::istio::virtual_service::{
    L4MatchAttributes, MESH_GATEWAY, TcpRoute, TlsMatchAttributes, TlsRoute, VirtualServiceSpec,
};

use super::http_route::{validate_gateway_names, validate_http_route, validate_route_destinations};
use super::names::{
    host_is_subset_of, hosts_overlap, is_valid_ip, validate_export_to, validate_ip_subnet,
    validate_labels, validate_port, validate_wildcard_domain,
    validate_wildcard_domain_for_gateway_binding,
};
use super::string_match::is_jwt_claim_route;
use super::{Findings, Report};

pub fn validate_virtual_service(virtual_service: &IstioObject<VirtualServiceSpec>) -> Report {
    let mut findings = Findings::new("VirtualService", virtual_service);
    let spec = &virtual_service.spec;

    if spec.hosts.is_empty() {
        findings.error(
            "spec.hosts",
            "virtual service must have at least one host: delegate virtual services (no hosts) are not supported by Isthmus",
        );
    }

    let applies_to_gateway =
        !spec.gateways.is_empty() && !spec.gateways.iter().any(|name| name == MESH_GATEWAY);
    let applies_to_mesh = !applies_to_gateway;
    validate_gateway_names(&spec.gateways, "spec.gateways", &mut findings);

    if !applies_to_gateway {
        validate_jwt_claim_routes(spec, &mut findings);
    }

    let sni_routed = spec
        .tls
        .iter()
        .any(|route| route.matches.iter().any(|m| !m.sni_hosts.is_empty()));
    let mut all_hosts_valid = true;
    for (index, host) in spec.hosts.iter().enumerate() {
        let field = format!("spec.hosts[{index}]");
        let result = if applies_to_gateway {
            validate_wildcard_domain_for_gateway_binding(sni_routed, host)
        } else {
            validate_wildcard_domain(host)
        };
        match result {
            Err(message) => {
                if !is_valid_ip(host) {
                    findings.error(&field, message);
                    all_hosts_valid = false;
                }
            }
            Ok(()) if applies_to_mesh && host == "*" => {
                findings.error(
                    &field,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_hosts_valid = false;
            }
            Ok(()) => {}
        }
    }
    if all_hosts_valid {
        for (i, first) in spec.hosts.iter().enumerate() {
            for second in &spec.hosts[i + 1..] {
                if hosts_overlap(first, second) {
                    findings.error(
                        "spec.hosts",
                        format!("duplicate hosts in virtual service: {first} & {second}"),
                    );
                }
            }
        }
    }

    if spec.http.is_empty() && spec.tcp.is_empty() && spec.tls.is_empty() {
        findings.error(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    for (index, route) in spec.http.iter().enumerate() {
        validate_http_route(route, &format!("spec.http[{index}]"), &mut findings);
    }
    for (index, route) in spec.tls.iter().enumerate() {
        validate_tls_route(
            route,
            spec,
            &format!("spec.tls[{index}]"),
            applies_to_gateway,
            &mut findings,
        );
    }
    for (index, route) in spec.tcp.iter().enumerate() {
        validate_tcp_route(route, &format!("spec.tcp[{index}]"), &mut findings);
    }
    let namespace = findings.namespace().to_string();
    findings.errors(
        "spec.exportTo",
        validate_export_to(&namespace, &spec.export_to, false, false),
    );

    warn_unreachable_rules(spec, &mut findings);
    findings.finish()
}

fn validate_jwt_claim_routes(spec: &VirtualServiceSpec, findings: &mut Findings) {
    for (route_index, route) in spec.http.iter().enumerate() {
        for (match_index, matcher) in route.matches.iter().enumerate() {
            let keys = matcher.headers.keys().chain(matcher.without_headers.keys());
            for key in keys.filter(|key| is_jwt_claim_route(key)) {
                findings.error(
                    &format!("spec.http[{route_index}].match[{match_index}]"),
                    format!(
                        "JWT claim based routing (key: {key}) is only supported for gateway, found no gateways: [{}]",
                        spec.gateways.join(" ")
                    ),
                );
            }
        }
    }
}

fn validate_tls_route(
    route: &TlsRoute,
    spec: &VirtualServiceSpec,
    field: &str,
    bound_to_gateway: bool,
    findings: &mut Findings,
) {
    if route.matches.is_empty() {
        findings.error(
            &format!("{field}.match"),
            "TLS route must have at least one match condition",
        );
    }
    for (index, matcher) in route.matches.iter().enumerate() {
        validate_tls_match(
            matcher,
            spec,
            &format!("{field}.match[{index}]"),
            bound_to_gateway,
            findings,
        );
    }
    if route.route.is_empty() {
        findings.error(&format!("{field}.route"), "TLS route is required");
    }
    validate_route_destinations(&route.route, &format!("{field}.route"), findings);
}

fn validate_tls_match(
    matcher: &TlsMatchAttributes,
    spec: &VirtualServiceSpec,
    field: &str,
    bound_to_gateway: bool,
    findings: &mut Findings,
) {
    if matcher.sni_hosts.is_empty() {
        findings.error(
            &format!("{field}.sniHosts"),
            "TLS match must have at least one SNI host",
        );
    }
    for (index, sni) in matcher.sni_hosts.iter().enumerate() {
        let place = format!("{field}.sniHosts[{index}]");
        let result = if bound_to_gateway {
            validate_wildcard_domain_for_gateway_binding(true, sni)
        } else {
            validate_wildcard_domain(sni)
        };
        if let Err(message) = result {
            if is_valid_ip(sni) {
                findings.warn(
                    &place,
                    format!(
                        "using an IP address ({sni:?}) goes against SNI spec and most clients do not support this"
                    ),
                );
            } else {
                findings.error(&place, message);
            }
            continue;
        }
        if !spec.hosts.iter().any(|host| host_is_subset_of(sni, host)) {
            findings.error(
                &place,
                format!(
                    "SNI host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]",
                    spec.hosts.join(", ")
                ),
            );
        }
    }
    validate_l4_common(
        &matcher.destination_subnets,
        matcher.port,
        &matcher.source_labels,
        &matcher.gateways,
        field,
        findings,
    );
}

fn validate_tcp_route(route: &TcpRoute, field: &str, findings: &mut Findings) {
    for (index, matcher) in route.matches.iter().enumerate() {
        let L4MatchAttributes {
            destination_subnets,
            port,
            source_labels,
            gateways,
            ..
        } = matcher;
        validate_l4_common(
            destination_subnets,
            *port,
            source_labels,
            gateways,
            &format!("{field}.match[{index}]"),
            findings,
        );
    }
    if route.route.is_empty() {
        findings.error(&format!("{field}.route"), "TCP route is required");
    }
    validate_route_destinations(&route.route, &format!("{field}.route"), findings);
}

fn validate_l4_common(
    subnets: &[String],
    port: u32,
    source_labels: &std::collections::BTreeMap<String, String>,
    gateways: &[String],
    field: &str,
    findings: &mut Findings,
) {
    for (index, subnet) in subnets.iter().enumerate() {
        findings.check(
            &format!("{field}.destinationSubnets[{index}]"),
            validate_ip_subnet(subnet),
        );
    }
    if port != 0 {
        findings.check(&format!("{field}.port"), validate_port(port));
    }
    findings.errors(
        &format!("{field}.sourceLabels"),
        validate_labels(source_labels),
    );
    validate_gateway_names(gateways, &format!("{field}.gateways"), findings);
}

/// Istio warns (does not reject) when a rule can never be reached.
fn warn_unreachable_rules(spec: &VirtualServiceSpec, findings: &mut Findings) {
    let http: Vec<(String, Vec<(String, String)>)> = spec
        .http
        .iter()
        .enumerate()
        .map(|(index, route)| {
            let name = if route.name.is_empty() {
                format!("#{index}")
            } else {
                format!("{:?}", route.name)
            };
            let matches = route
                .matches
                .iter()
                .enumerate()
                .map(|(match_index, matcher)| {
                    let match_name = if matcher.name.is_empty() {
                        format!("#{match_index}")
                    } else {
                        format!("{:?}", matcher.name)
                    };
                    let mut unnamed = matcher.clone();
                    unnamed.name.clear();
                    (match_name, canonical(&unnamed))
                })
                .collect();
            (name, matches)
        })
        .collect();
    report_unreachable(&http, "spec.http", findings);

    let tcp = numbered(
        spec.tcp
            .iter()
            .map(|route| route.matches.iter().map(canonical).collect()),
    );
    report_unreachable(&tcp, "spec.tcp", findings);
    let tls = numbered(
        spec.tls
            .iter()
            .map(|route| route.matches.iter().map(canonical).collect()),
    );
    report_unreachable(&tls, "spec.tls", findings);
}

fn canonical<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn numbered(routes: impl Iterator<Item = Vec<String>>) -> Vec<(String, Vec<(String, String)>)> {
    routes
        .enumerate()
        .map(|(index, matches)| {
            let matches = matches
                .into_iter()
                .enumerate()
                .map(|(match_index, key)| (format!("#{match_index}"), key))
                .collect();
            (format!("#{index}"), matches)
        })
        .collect()
}

fn report_unreachable(
    routes: &[(String, Vec<(String, String)>)],
    field: &str,
    findings: &mut Findings,
) {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    let mut catch_all_seen = false;
    for (index, (route_name, matches)) in routes.iter().enumerate() {
        let place = format!("{field}[{index}]");
        if matches.is_empty() {
            if catch_all_seen {
                findings.warn(
                    &place,
                    format!(
                        "virtualService rule {route_name} not used (only the last rule can have no matches)"
                    ),
                );
            }
            catch_all_seen = true;
            continue;
        }
        let mut duplicates = 0;
        for (match_name, key) in matches {
            if let Some((_, earlier)) = seen.iter().find(|(seen_key, _)| *seen_key == key.as_str())
            {
                duplicates += 1;
                findings.warn(
                    &place,
                    format!(
                        "virtualService rule {route_name} match {match_name} is not used (duplicate/overlapping match in rule {})",
                        routes[*earlier].0
                    ),
                );
            } else {
                seen.push((key, index));
            }
        }
        if duplicates == matches.len() {
            findings.warn(
                &place,
                format!(
                    "virtualService rule {route_name} not used (all matches used by prior rules)"
                ),
            );
        }
    }
}
