//! One test per ServiceEntry rule, checking the exact field and message.

mod validation_support;

use validation_support::*;

#[test]
fn valid_static_entry_passes() {
    let report = report_for(&service_entry(
        "  hosts: [nginx.external.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 443, name: http-tls, protocol: HTTP}]\n  endpoints:\n  - {address: 10.0.0.1, labels: {version: v1}, ports: {http-tls: 8443}}\n",
    ));
    assert_valid(&report);
}

#[test]
fn hosts_are_required_and_not_star() {
    let missing = report_for(&service_entry(
        "  ports: [{number: 80, name: http, protocol: HTTP}]\n",
    ));
    assert_only_errors(
        &missing,
        &[("spec.hosts", "service entry must have at least one host")],
    );
    let star = report_for(&service_entry(
        "  hosts: [\"*\"]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n",
    ));
    assert_only_errors(&star, &[("spec.hosts[0]", "invalid host *")]);
}

#[test]
fn partial_wildcard_host_warns() {
    let report = report_for(&service_entry(
        "  hosts: [\"*foo.example.com\"]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n",
    ));
    assert_valid(&report);
    assert_warning(
        &report,
        "spec.hosts[0]",
        "partial wildcard \"*foo.example.com\" not allowed",
    );
}

#[test]
fn ports_are_unique_by_number_and_name() {
    let report = report_for(&service_entry(
        "  hosts: [a.example.com]\n  ports:\n  - {number: 80, name: http, protocol: HTTP}\n  - {number: 80, name: http, protocol: HTTP}\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.ports[1].name",
                "service entry port name \"http\" already defined",
            ),
            (
                "spec.ports[1].number",
                "service entry port 80 already defined",
            ),
        ],
    );
}

#[test]
fn port_names_and_protocols() {
    let report = report_for(&service_entry(
        "  hosts: [a.example.com]\n  ports:\n  - {number: 80, name: Http_1, protocol: HTTP}\n  - {number: 81, name: other, protocol: QUIC}\n  - {number: 0, name: zero, protocol: HTTP}\n",
    ));
    assert_only_errors(
        &report,
        &[
            ("spec.ports[0].name", "invalid port name: Http_1"),
            ("spec.ports[1].protocol", "unsupported protocol: QUIC"),
            (
                "spec.ports[2].number",
                "port number 0 must be in the range 1..65535",
            ),
        ],
    );
}

#[test]
fn static_needs_endpoints_or_a_selector() {
    let report = report_for(&service_entry(
        "  hosts: [a.example.com]\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.endpoints",
            "endpoints must be provided if service entry resolution mode is static",
        )],
    );
    let selected = report_for(&service_entry(
        "  hosts: [a.example.com]\n  resolution: STATIC\n  workloadSelector: {labels: {app: a}}\n  ports: [{number: 80, name: http, protocol: HTTP}]\n",
    ));
    assert_valid(&selected);
}

#[test]
fn static_endpoints_are_ip_addresses_with_known_ports() {
    let report = report_for(&service_entry(
        "  hosts: [a.example.com]\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints:\n  - {address: not-an-ip}\n  - {address: 10.0.0.2, ports: {grpc: 9000}}\n  - {labels: {a: b}}\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.endpoints[0].address",
                "endpoint address \"not-an-ip\" is not a valid IP address",
            ),
            (
                "spec.endpoints[1].ports.grpc",
                "endpoint port 9000 is not defined by the service entry",
            ),
            ("spec.endpoints[2].address", "address is required"),
        ],
    );
}

#[test]
fn none_resolution_takes_no_endpoints() {
    let report = report_for(&service_entry(
        "  hosts: [a.example.com]\n  addresses: [10.1.0.0/16]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: [{address: 10.1.0.1}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.endpoints",
            "no endpoints should be provided for resolution type none",
        )],
    );
}

#[test]
fn dns_with_wildcard_host_needs_endpoints() {
    let report = report_for(&service_entry(
        "  hosts: [\"*.example.com\"]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.hosts[0]",
            "hosts must be FQDN if no endpoints are provided for resolution mode DNS",
        )],
    );
}

#[test]
fn dns_endpoints_are_names_or_addresses() {
    let report = report_for(&service_entry(
        "  hosts: [a.example.com]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n  endpoints: [{address: backend.example.com}, {address: \"bad_name!\"}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.endpoints[1].address",
            "endpoint address \"bad_name!\" is not a valid FQDN or an IP address",
        )],
    );
}

#[test]
fn dns_round_robin_takes_at_most_one_endpoint() {
    let report = report_for(&service_entry(
        "  hosts: [a.example.com]\n  resolution: DNS_ROUND_ROBIN\n  ports: [{number: 443, name: tls, protocol: TLS}]\n  endpoints: [{address: b.example.com}, {address: c.example.com}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.endpoints",
            "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN",
        )],
    );
}

#[test]
fn cidr_addresses_only_for_none_and_static() {
    let report = report_for(&service_entry(
        "  hosts: [a.example.com]\n  addresses: [10.0.0.0/24, 300.1.1.1]\n  resolution: DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n",
    ));
    assert_only_errors(
        &report,
        &[
            ("spec.addresses[1]", "300.1.1.1 is not a valid IP"),
            (
                "spec.addresses",
                "CIDR addresses are allowed only for NONE/STATIC resolution types",
            ),
        ],
    );
}

#[test]
fn selector_and_endpoints_are_exclusive() {
    let report = report_for(&service_entry(
        "  hosts: [a.example.com]\n  resolution: STATIC\n  workloadSelector: {labels: {app: a}}\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: [{address: 10.0.0.1}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.workloadSelector",
            "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
        )],
    );
}

#[test]
fn several_hosts_need_http_or_tls_ports() {
    let report = report_for(&service_entry(
        "  hosts: [a.example.com, b.example.com]\n  addresses: [10.0.0.9]\n  resolution: DNS\n  ports: [{number: 3306, name: mysql, protocol: MYSQL}]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.ports",
            "multiple hosts provided with non-HTTP, non-TLS ports",
        )],
    );
    assert_warning(
        &report,
        "spec.hosts",
        "service entry can not have more than one host specified simultaneously with address and tcp port",
    );
}

#[test]
fn tcp_port_without_address_warns() {
    let report = report_for(&service_entry(
        "  hosts: [db.example.com]\n  resolution: DNS\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n",
    ));
    assert_valid(&report);
    assert_warning(
        &report,
        "spec.ports[0]",
        "addresses are required for ports serving TCP (or unset) protocol when ISTIO_META_DNS_AUTO_ALLOCATE is not set on a proxy",
    );
}

#[test]
fn export_to_may_hide_a_service_entry() {
    let hidden = report_for(&service_entry(
        "  hosts: [a.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  exportTo: [\"~\"]\n",
    ));
    assert_valid(&hidden);
    let mixed = report_for(&service_entry(
        "  hosts: [a.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  exportTo: [\"~\", \"*\"]\n",
    ));
    assert_only_errors(
        &mixed,
        &[
            (
                "spec.exportTo",
                "cannot have both public (*) and non-public exportTo values for a resource",
            ),
            (
                "spec.exportTo",
                "cannot export service entry to no one (~) and someone",
            ),
        ],
    );
}
