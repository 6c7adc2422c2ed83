//! ServiceEntry rules (Istio's ValidateServiceEntry).

use crate::istio::IstioObject;
use crate::istio::service_entry::{Resolution, ServiceEntrySpec, WorkloadEntry};

use super::names::{
    UNIX_ADDRESS_PREFIX, is_valid_ip, validate_export_to, validate_fqdn, validate_ip_subnet,
    validate_labels, validate_partial_wildcard, validate_port, validate_port_name,
    validate_unix_address, validate_wildcard_domain,
};
use super::{Findings, Report};
use crate::istio::Protocol;

pub fn validate_service_entry(entry: &IstioObject<ServiceEntrySpec>) -> Report {
    let mut findings = Findings::new("ServiceEntry", entry);
    let spec = &entry.spec;

    if let Some(selector) = &spec.workload_selector {
        for (key, value) in &selector.labels {
            let label = format!("{key}={value}");
            if key.is_empty() {
                findings.error(
                    "spec.workloadSelector.labels",
                    format!("empty key is not supported in selector: {label:?}"),
                );
            }
            if key.contains('*') || value.contains('*') {
                findings.error(
                    "spec.workloadSelector.labels",
                    format!("wildcard is not supported in selector: {label:?}"),
                );
            }
        }
        if selector.labels.is_empty() {
            findings.warn(
                "spec.workloadSelector",
                "service entry: workload selector specified without labels, will be applied to all services in namespace",
            );
        }
        if !spec.endpoints.is_empty() {
            findings.error(
                "spec.workloadSelector",
                "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
            );
        }
    }

    if spec.hosts.is_empty() {
        findings.error("spec.hosts", "service entry must have at least one host");
    }
    for (index, host) in spec.hosts.iter().enumerate() {
        let field = format!("spec.hosts[{index}]");
        if host == "*" {
            findings.error(&field, format!("invalid host {host}"));
            continue;
        }
        findings.check(&field, validate_wildcard_domain(host));
        if let Err(message) = validate_partial_wildcard(host) {
            findings.warn(&field, message);
        }
    }

    let mut cidr_found = false;
    for (index, address) in spec.addresses.iter().enumerate() {
        cidr_found |= address.contains('/');
        findings.check(
            &format!("spec.addresses[{index}]"),
            validate_ip_subnet(address),
        );
    }
    if cidr_found && !matches!(spec.resolution, Resolution::None | Resolution::Static) {
        findings.error(
            "spec.addresses",
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }

    let mut port_names: Vec<&str> = Vec::new();
    let mut port_numbers: Vec<u32> = Vec::new();
    for (index, port) in spec.ports.iter().enumerate() {
        let field = format!("spec.ports[{index}]");
        if port_names.contains(&port.name.as_str()) {
            findings.error(
                &format!("{field}.name"),
                format!("service entry port name {:?} already defined", port.name),
            );
        }
        port_names.push(&port.name);
        if port_numbers.contains(&port.number) {
            findings.error(
                &format!("{field}.number"),
                format!("service entry port {} already defined", port.number),
            );
        }
        port_numbers.push(port.number);
        if port.target_port != 0 {
            findings.check(
                &format!("{field}.targetPort"),
                validate_port(port.target_port),
            );
            if spec.resolution == Resolution::None {
                findings.warn(
                    &format!("{field}.targetPort"),
                    "targetPort has no effect when resolution mode is NONE",
                );
            }
        }
        if spec.addresses.is_empty() && (port.protocol.is_empty() || port.protocol == "TCP") {
            findings.warn(
                &field,
                "addresses are required for ports serving TCP (or unset) protocol when ISTIO_META_DNS_AUTO_ALLOCATE is not set on a proxy",
            );
        }
        findings.check(&format!("{field}.name"), validate_port_name(&port.name));
        if !port.protocol.is_empty() && port.protocol().is_none() {
            findings.error(
                &format!("{field}.protocol"),
                format!("unsupported protocol: {}", port.protocol),
            );
        }
        findings.check(&format!("{field}.number"), validate_port(port.number));
    }

    match spec.resolution {
        Resolution::None => {
            if !spec.endpoints.is_empty() {
                findings.error(
                    "spec.endpoints",
                    "no endpoints should be provided for resolution type none",
                );
            }
            if spec.workload_selector.is_some() {
                findings.warn(
                    "spec.workloadSelector",
                    "workloadSelector should not be set when resolution mode is NONE",
                );
            }
        }
        Resolution::Static => {
            if spec.endpoints.is_empty() && spec.workload_selector.is_none() {
                findings.error(
                    "spec.endpoints",
                    "endpoints must be provided if service entry resolution mode is static",
                );
            }
            for (index, endpoint) in spec.endpoints.iter().enumerate() {
                validate_static_endpoint(
                    endpoint,
                    &port_names,
                    &format!("spec.endpoints[{index}]"),
                    &mut findings,
                );
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            validate_dns_resolution(spec, &port_names, &mut findings);
        }
    }

    if spec.resolution != Resolution::None && spec.hosts.len() > 1 {
        let opaque_port = spec.ports.iter().any(|port| {
            !port
                .protocol()
                .is_some_and(|protocol| protocol.is_http() || protocol.is_tls())
        });
        if opaque_port {
            findings.error(
                "spec.ports",
                "multiple hosts provided with non-HTTP, non-TLS ports",
            );
        }
    }

    let namespace = findings.namespace().to_string();
    findings.errors(
        "spec.exportTo",
        validate_export_to(&namespace, &spec.export_to, true, false),
    );
    findings.finish()
}

fn validate_endpoint_ports(
    endpoint: &WorkloadEntry,
    service_port_names: &[&str],
    field: &str,
    findings: &mut Findings,
) {
    for (name, port) in &endpoint.ports {
        let place = format!("{field}.ports.{name}");
        if !service_port_names.contains(&name.as_str()) {
            findings.error(
                &place,
                format!("endpoint port {port} is not defined by the service entry"),
            );
        }
        findings.check(&place, validate_port_name(name));
        findings.check(&place, validate_port(*port));
    }
    findings.errors(
        &format!("{field}.labels"),
        validate_labels(&endpoint.labels),
    );
}

fn validate_static_endpoint(
    endpoint: &WorkloadEntry,
    service_port_names: &[&str],
    field: &str,
    findings: &mut Findings,
) {
    let address = endpoint.address.as_str();
    let address_field = format!("{field}.address");
    if address.is_empty() {
        if endpoint.network.is_empty() {
            findings.error(&address_field, "address is required");
            return;
        }
        findings.warn(
            &address_field,
            format!("address is unset with network {:?}", endpoint.network),
        );
    }
    if let Some(path) = address.strip_prefix(UNIX_ADDRESS_PREFIX) {
        findings.check(&address_field, validate_unix_address(path));
        if !endpoint.ports.is_empty() {
            findings.error(
                &format!("{field}.ports"),
                format!("unix endpoint {address} must not include ports"),
            );
        }
        if service_port_names.len() != 1 {
            findings.error(
                &address_field,
                "exactly 1 service port required for unix endpoints",
            );
        }
    } else if !address.is_empty() && !is_valid_ip(address) {
        findings.error(
            &address_field,
            format!("endpoint address {address:?} is not a valid IP address"),
        );
    }
    validate_endpoint_ports(endpoint, service_port_names, field, findings);
}

fn validate_dns_resolution(spec: &ServiceEntrySpec, port_names: &[&str], findings: &mut Findings) {
    let mode = spec.resolution.name();
    if spec.endpoints.is_empty() {
        for (index, host) in spec.hosts.iter().enumerate() {
            if validate_fqdn(host).is_err() {
                findings.error(
                    &format!("spec.hosts[{index}]"),
                    format!(
                        "hosts must be FQDN if no endpoints are provided for resolution mode {mode}"
                    ),
                );
            }
        }
    }
    if spec.resolution == Resolution::DnsRoundRobin && spec.endpoints.len() > 1 {
        findings.error(
            "spec.endpoints",
            format!("there must only be 0 or 1 endpoint for resolution mode {mode}"),
        );
    }
    for (index, endpoint) in spec.endpoints.iter().enumerate() {
        let field = format!("spec.endpoints[{index}]");
        let address = endpoint.address.as_str();
        if !is_valid_ip(address) && validate_fqdn(address).is_err() {
            findings.error(
                &format!("{field}.address"),
                format!("endpoint address {address:?} is not a valid FQDN or an IP address"),
            );
        }
        validate_endpoint_ports(endpoint, port_names, &field, findings);
    }
    if spec.workload_selector.is_some() {
        findings.warn(
            "spec.workloadSelector",
            format!("workloadSelector should not be set when resolution mode is {mode}"),
        );
    }
    if !spec.addresses.is_empty() && spec.hosts.len() > 1 {
        let has_tcp = spec
            .ports
            .iter()
            .any(|port| port.protocol().is_some_and(Protocol::is_tcp));
        if has_tcp {
            findings.warn(
                "spec.hosts",
                "service entry can not have more than one host specified simultaneously with address and tcp port",
            );
        }
    }
}
