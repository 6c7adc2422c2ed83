//! Gateway rules (Istio's ValidateGateway / validateServer).

use crate::istio::gateway::{GatewaySpec, Server, ServerPort};
use crate::istio::{IstioObject, Protocol};

use super::names::{
    UNIX_ADDRESS_PREFIX, is_dns1123_label, validate_ip_address, validate_namespace_slash_host,
    validate_port, validate_unix_address,
};
use super::tls::validate_server_tls;
use super::{Findings, Report};

pub fn validate_gateway(gateway: &IstioObject<GatewaySpec>) -> Report {
    let mut findings = Findings::new("Gateway", gateway);
    if !is_dns1123_label(gateway.name()) {
        findings.error(
            "metadata.name",
            format!("invalid gateway name: {:?}", gateway.name()),
        );
    }
    let servers = &gateway.spec.servers;
    if servers.is_empty() {
        findings.error("spec.servers", "gateway must have at least one server");
    }
    for (index, server) in servers.iter().enumerate() {
        validate_server(server, &format!("spec.servers[{index}]"), &mut findings);
    }

    let mut port_names: Vec<&str> = Vec::new();
    for (index, server) in servers.iter().enumerate() {
        let Some(port) = &server.port else { continue };
        if port_names.contains(&port.name.as_str()) {
            findings.error(
                &format!("spec.servers[{index}].port.name"),
                format!(
                    "port names in servers must be unique: duplicate name {}",
                    port.name
                ),
            );
        }
        port_names.push(&port.name);
        let is_http = port.protocol().is_some_and(Protocol::is_http);
        if !is_http && server.tls.as_ref().is_some_and(|tls| tls.https_redirect) {
            findings.warn(
                &format!("spec.servers[{index}].tls.httpsRedirect"),
                "tls.httpsRedirect should only be used with http servers",
            );
        }
    }
    findings.finish()
}

fn validate_server(server: &Server, field: &str, findings: &mut Findings) {
    if server.hosts.is_empty() {
        findings.error(
            &format!("{field}.hosts"),
            "server config must contain at least one host",
        );
    }
    for (index, host) in server.hosts.iter().enumerate() {
        findings.errors(
            &format!("{field}.hosts[{index}]"),
            validate_namespace_slash_host(host, true),
        );
    }

    let port_valid = match &server.port {
        None => {
            findings.error(&format!("{field}.port"), "port is required");
            false
        }
        Some(port) => validate_server_port(port, &server.bind, &format!("{field}.port"), findings),
    };
    validate_bind(server, field, findings);
    if let Some(tls) = &server.tls {
        validate_server_tls(tls, &format!("{field}.tls"), findings);
    }

    let Some(protocol) = server.port.as_ref().and_then(ServerPort::protocol) else {
        return;
    };
    if !port_valid {
        return;
    }
    match &server.tls {
        None if protocol.is_tls() => findings.error(
            &format!("{field}.tls"),
            "server must have TLS settings for HTTPS/TLS protocols",
        ),
        Some(tls) if !protocol.is_tls() => {
            if protocol.is_http() {
                // A plain HTTP server may only carry `httpsRedirect` (its mode defaults to
                // PASSTHROUGH, which terminates nothing).
                let carries_certificates = !tls.ca_certificates.is_empty()
                    || !tls.private_key.is_empty()
                    || !tls.server_certificate.is_empty();
                if !tls.mode.is_passthrough() || carries_certificates {
                    findings.error(
                        &format!("{field}.tls"),
                        "server cannot have TLS settings for plain text HTTP ports",
                    );
                }
            } else {
                findings.error(
                    &format!("{field}.tls"),
                    "server cannot have TLS settings for non HTTPS/TLS ports",
                );
            }
        }
        _ => {}
    }
}

/// Returns whether the port has no errors (Istio checks the TLS/protocol pairing only then).
fn validate_server_port(
    port: &ServerPort,
    bind: &str,
    field: &str,
    findings: &mut Findings,
) -> bool {
    let mut valid = true;
    if port.protocol().is_none() {
        findings.error(
            &format!("{field}.protocol"),
            format!(
                "invalid protocol {:?}, supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
                port.protocol
            ),
        );
        valid = false;
    }
    if (port.number > 0 || !bind.starts_with(UNIX_ADDRESS_PREFIX))
        && let Err(message) = validate_port(port.number)
    {
        findings.error(&format!("{field}.number"), message);
        valid = false;
    }
    if port.target_port > 0 {
        findings.error(
            &format!("{field}.targetPort"),
            "targetPort has no impact on Gateways",
        );
        valid = false;
    }
    if port.name.is_empty() {
        findings.error(
            &format!("{field}.name"),
            format!(
                "port name must be set: number:{} protocol:{:?}",
                port.number, port.protocol
            ),
        );
        valid = false;
    }
    valid
}

fn validate_bind(server: &Server, field: &str, findings: &mut Findings) {
    let bind_field = format!("{field}.bind");
    if let Some(path) = server.bind.strip_prefix(UNIX_ADDRESS_PREFIX) {
        findings.check(&bind_field, validate_unix_address(path));
        if let Some(port) = server.port.as_ref().filter(|port| port.number != 0) {
            findings.error(
                &bind_field,
                format!(
                    "port number must be 0 for unix domain socket: number:{} protocol:{:?} name:{:?}",
                    port.number, port.protocol, port.name
                ),
            );
        }
    } else if !server.bind.is_empty() {
        findings.check(&bind_field, validate_ip_address(&server.bind));
    }
}
