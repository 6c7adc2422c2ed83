//! One test per Gateway rule, checking the exact field and message.

mod validation_support;

use validation_support::*;

const HTTP_SERVER: &str =
    "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [a.example.com]\n";

#[test]
fn valid_http_server_passes() {
    assert_valid(&report_for(&gateway(HTTP_SERVER)));
}

#[test]
fn gateway_needs_a_server() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec:\n  selector: {istio: ingressgateway}\n";
    assert_only_errors(
        &report_for(yaml),
        &[("spec.servers", "gateway must have at least one server")],
    );
}

#[test]
fn gateway_name_must_be_a_dns_label() {
    let yaml = gateway(HTTP_SERVER).replace("name: gw,", "name: my.gateway,");
    assert_only_errors(
        &report_for(&yaml),
        &[("metadata.name", "invalid gateway name: \"my.gateway\"")],
    );
}

#[test]
fn server_needs_hosts() {
    let report = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP}\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.servers[0].hosts",
            "server config must contain at least one host",
        )],
    );
}

#[test]
fn host_namespace_must_be_a_label_star_or_dot() {
    let report = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"istio_system/a.example.com\", \"*/b.example.com\", \"./c.example.com\", \"~/d.example.com\"]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.servers[0].hosts[0]",
                "invalid namespace value \"istio_system\" in gateway",
            ),
            (
                "spec.servers[0].hosts[3]",
                "invalid namespace value \"~\" in gateway",
            ),
        ],
    );
}

#[test]
fn host_needs_both_namespace_and_name() {
    let report = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"istio-system/\"]\n",
    ));
    assert_error(
        &report,
        "spec.servers[0].hosts[0]",
        "config namespace and dnsName in host entry cannot be empty",
    );
}

#[test]
fn short_host_names_are_rejected() {
    let report = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [reviews]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.servers[0].hosts[0]",
            "short names (non FQDN) are not allowed",
        )],
    );
}

#[test]
fn wildcard_only_as_the_leftmost_label() {
    let report = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*.example.com\", \"foo.*.com\", \"bookinfo.*\", \"*foo.com\"]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.servers[0].hosts[1]",
                "domain name \"*.com\" invalid (label \"*\" invalid)",
            ),
            (
                "spec.servers[0].hosts[1]",
                "partial wildcard \"foo.*.com\" not allowed",
            ),
            (
                "spec.servers[0].hosts[2]",
                "domain name \"*\" invalid (label \"*\" invalid)",
            ),
            (
                "spec.servers[0].hosts[2]",
                "partial wildcard \"bookinfo.*\" not allowed",
            ),
            (
                "spec.servers[0].hosts[3]",
                "partial wildcard \"*foo.com\" not allowed",
            ),
        ],
    );
}

#[test]
fn hosts_may_be_ip_addresses() {
    let report = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\", \"*.local\", 127.0.0.1]\n",
    ));
    // 127.0.0.1 fails the domain rule (all-numeric top-level label), which gateways forgive for IPs.
    assert_valid(&report);
}

#[test]
fn port_number_must_be_in_range() {
    let report = report_for(&gateway(
        "  - port: {number: 70000, name: http, protocol: HTTP}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.servers[0].port.number",
            "port number 70000 must be in the range 1..65535",
        )],
    );
}

#[test]
fn port_is_required() {
    let report = report_for(&gateway("  - hosts: [a.example.com]\n"));
    assert_only_errors(&report, &[("spec.servers[0].port", "port is required")]);
}

#[test]
fn port_name_is_required() {
    let report = report_for(&gateway(
        "  - port: {number: 80, protocol: HTTP}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.servers[0].port.name",
            "port name must be set: number:80 protocol:\"HTTP\"",
        )],
    );
}

#[test]
fn port_names_must_be_unique() {
    let report = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [a.example.com]\n  - port: {number: 8080, name: http, protocol: HTTP}\n    hosts: [b.example.com]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.servers[1].port.name",
            "port names in servers must be unique: duplicate name http",
        )],
    );
}

#[test]
fn protocol_must_be_known() {
    let report = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP3}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.servers[0].port.protocol",
            "invalid protocol \"HTTP3\", supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
        )],
    );
}

#[test]
fn protocol_names_are_case_insensitive() {
    let report = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: http}\n    hosts: [a.example.com]\n  - port: {number: 81, name: web, protocol: grpc-Web}\n    hosts: [a.example.com]\n  - port: {number: 443, name: https, protocol: Https}\n    tls: {mode: PASSTHROUGH}\n    hosts: [a.example.com]\n",
    ));
    assert_valid(&report);
}

#[test]
fn target_port_has_no_impact() {
    let report = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.servers[0].port.targetPort",
            "targetPort has no impact on Gateways",
        )],
    );
}

#[test]
fn bind_must_be_an_ip() {
    let report = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP}\n    bind: localhost\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &report,
        &[("spec.servers[0].bind", "localhost is not a valid IP")],
    );
}

#[test]
fn https_and_tls_servers_need_tls_settings() {
    let report = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [a.example.com]\n  - port: {number: 15443, name: tls, protocol: TLS}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.servers[0].tls",
                "server must have TLS settings for HTTPS/TLS protocols",
            ),
            (
                "spec.servers[1].tls",
                "server must have TLS settings for HTTPS/TLS protocols",
            ),
        ],
    );
}

#[test]
fn plain_http_allows_only_https_redirect() {
    let redirect = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP}\n    tls: {httpsRedirect: true}\n    hosts: [a.example.com]\n",
    ));
    assert_valid(&redirect);
    assert!(redirect.warnings.is_empty(), "{:?}", redirect.warnings);

    let simple = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP}\n    tls: {mode: SIMPLE, credentialName: cert}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &simple,
        &[(
            "spec.servers[0].tls",
            "server cannot have TLS settings for plain text HTTP ports",
        )],
    );

    let certificate = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP}\n    tls: {httpsRedirect: true, serverCertificate: /c.crt}\n    hosts: [a.example.com]\n",
    ));
    assert_error(
        &certificate,
        "spec.servers[0].tls",
        "server cannot have TLS settings for plain text HTTP ports",
    );
}

#[test]
fn tls_settings_forbidden_on_tcp_ports() {
    let report = report_for(&gateway(
        "  - port: {number: 31400, name: tcp, protocol: TCP}\n    tls: {mode: SIMPLE, credentialName: cert}\n    hosts: [\"*\"]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.servers[0].tls",
            "server cannot have TLS settings for non HTTPS/TLS ports",
        )],
    );
}

#[test]
fn https_redirect_on_non_http_server_warns() {
    let report = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {httpsRedirect: true, mode: SIMPLE, credentialName: cert}\n    hosts: [a.example.com]\n",
    ));
    assert_valid(&report);
    assert_warning(
        &report,
        "spec.servers[0].tls.httpsRedirect",
        "tls.httpsRedirect should only be used with http servers",
    );
}

#[test]
fn simple_requires_certificate_and_key() {
    let report = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: SIMPLE}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.servers[0].tls.serverCertificate",
                "SIMPLE TLS requires a server certificate",
            ),
            (
                "spec.servers[0].tls.privateKey",
                "SIMPLE TLS requires a private key",
            ),
        ],
    );
    let key_missing = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: SIMPLE, serverCertificate: /c.crt}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &key_missing,
        &[(
            "spec.servers[0].tls.privateKey",
            "SIMPLE TLS requires a private key",
        )],
    );
}

#[test]
fn simple_with_credential_name_needs_no_files() {
    let report = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: SIMPLE, credentialName: bookinfo-credential}\n    hosts: [a.example.com]\n",
    ));
    assert_valid(&report);
}

#[test]
fn credential_name_and_files_are_exclusive() {
    let report = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: SIMPLE, credentialName: cred, serverCertificate: /c.crt, privateKey: /c.key}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.servers[0].tls.credentialName",
            "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified",
        )],
    );
}

#[test]
fn mutual_requires_a_client_ca() {
    let report = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: MUTUAL, serverCertificate: /c.crt, privateKey: /c.key}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.servers[0].tls.caCertificates",
            "MUTUAL TLS requires a client CA bundle",
        )],
    );
    let optional = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: OPTIONAL_MUTUAL}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &optional,
        &[
            (
                "spec.servers[0].tls.caCertificates",
                "MUTUAL TLS requires a client CA bundle",
            ),
            (
                "spec.servers[0].tls.serverCertificate",
                "MUTUAL TLS requires a server certificate",
            ),
            (
                "spec.servers[0].tls.privateKey",
                "MUTUAL TLS requires a private key",
            ),
        ],
    );
}

#[test]
fn mutual_with_credential_name_is_complete() {
    let report = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: MUTUAL, credentialName: mutual-credential}\n    hosts: [a.example.com]\n",
    ));
    assert_valid(&report);
}

#[test]
fn istio_mutual_forbids_every_certificate_field() {
    let report = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: ISTIO_MUTUAL, serverCertificate: /c.crt, privateKey: /c.key, caCertificates: /ca.crt, credentialName: cred}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.servers[0].tls.serverCertificate",
                "ISTIO_MUTUAL TLS cannot have associated server certificate",
            ),
            (
                "spec.servers[0].tls.privateKey",
                "ISTIO_MUTUAL TLS cannot have associated private key",
            ),
            (
                "spec.servers[0].tls.caCertificates",
                "ISTIO_MUTUAL TLS cannot have associated CA bundle",
            ),
            (
                "spec.servers[0].tls.credentialName",
                "ISTIO_MUTUAL TLS cannot have associated credentialName",
            ),
        ],
    );
    let only_key = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: ISTIO_MUTUAL, privateKey: /c.key}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &only_key,
        &[(
            "spec.servers[0].tls.privateKey",
            "ISTIO_MUTUAL TLS cannot have associated private key",
        )],
    );
}

#[test]
fn passthrough_with_certificates_warns() {
    let report = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: PASSTHROUGH, serverCertificate: /c.crt}\n    hosts: [a.example.com]\n",
    ));
    assert_valid(&report);
    assert_warning(
        &report,
        "spec.servers[0].tls.mode",
        "PASSTHROUGH mode does not use certificates, they will be ignored",
    );
}

#[test]
fn crl_rules() {
    let report = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    tls: {mode: SIMPLE, serverCertificate: /c.crt, privateKey: /c.key, caCrl: /crl.pem}\n    hosts: [a.example.com]\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.servers[0].tls.caCrl",
            "CRL is not supported with SIMPLE TLS",
        )],
    );
}

const TLS_SERVER_HEAD: &str = "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [a.example.com]\n    tls:\n      mode: SIMPLE\n      credentialName: cred\n";

#[test]
fn min_version_above_max_is_an_error() {
    let report = report_for(&gateway(&format!(
        "{TLS_SERVER_HEAD}      minProtocolVersion: TLSV1_3\n      maxProtocolVersion: TLSV1_2\n"
    )));
    assert_only_errors(
        &report,
        &[(
            "spec.servers[0].tls.minProtocolVersion",
            "minProtocolVersion TLSV1_3 is greater than maxProtocolVersion TLSV1_2: no TLS version is allowed; lower minProtocolVersion or raise maxProtocolVersion",
        )],
    );
}

#[test]
fn tls_1_0_and_1_1_only_ranges_are_refused() {
    let report = report_for(&gateway(&format!(
        "{TLS_SERVER_HEAD}      minProtocolVersion: TLSV1_0\n      maxProtocolVersion: TLSV1_1\n"
    )));
    assert_only_errors(
        &report,
        &[(
            "spec.servers[0].tls.maxProtocolVersion",
            "maxProtocolVersion TLSV1_1 allows only TLS 1.0/1.1, which Isthmus cannot serve (rustls implements TLS 1.2 and 1.3 only): set maxProtocolVersion to TLSV1_2 or TLSV1_3",
        )],
    );
}

#[test]
fn legacy_minimum_is_narrowed_with_a_warning() {
    let report = report_for(&gateway(&format!(
        "{TLS_SERVER_HEAD}      minProtocolVersion: TLSV1_0\n      maxProtocolVersion: TLSV1_3\n"
    )));
    assert_valid(&report);
    assert_warning(
        &report,
        "spec.servers[0].tls.minProtocolVersion",
        "minProtocolVersion TLSV1_0 is below TLS 1.2: Isthmus serves TLS 1.2 and 1.3 only (rustls has no TLS 1.0/1.1), so clients need TLS 1.2 or later",
    );
}

#[test]
fn unknown_cipher_suites_are_errors() {
    let report = report_for(&gateway(&format!(
        "{TLS_SERVER_HEAD}      cipherSuites: [ECDHE-RSA-AES256-GCM-SHA384, NOT-A-CIPHER, AES128-SHA]\n"
    )));
    assert_only_errors(
        &report,
        &[
            (
                "spec.servers[0].tls.cipherSuites[1]",
                "invalid cipher suite \"NOT-A-CIPHER\": use OpenSSL names, one of ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-RSA-AES256-GCM-SHA384, ECDHE-ECDSA-CHACHA20-POLY1305, ECDHE-RSA-CHACHA20-POLY1305",
            ),
            (
                "spec.servers[0].tls.cipherSuites[2]",
                "cipher suite \"AES128-SHA\" is not supported by Isthmus (rustls offers only ECDHE with AES-GCM or CHACHA20-POLY1305 for TLS 1.2): use one of ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-RSA-AES256-GCM-SHA384, ECDHE-ECDSA-CHACHA20-POLY1305, ECDHE-RSA-CHACHA20-POLY1305",
            ),
        ],
    );
}

#[test]
fn duplicate_cipher_suites_warn() {
    let report = report_for(&gateway(&format!(
        "{TLS_SERVER_HEAD}      cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256]\n"
    )));
    assert_valid(&report);
    assert_warning(
        &report,
        "spec.servers[0].tls.cipherSuites",
        "ignoring duplicate cipher suites: [ECDHE-RSA-AES128-GCM-SHA256]",
    );
}

#[test]
fn certificate_pins_must_be_sha256_digests() {
    let report = report_for(&gateway(
        "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [a.example.com]\n    tls:\n      mode: MUTUAL\n      credentialName: cred\n      verifyCertificateSpki: [not-base64]\n      verifyCertificateHash: [\"12:34\"]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.servers[0].tls.verifyCertificateSpki[0]",
                "invalid verifyCertificateSpki \"not-base64\": expected the base64 encoding of a SHA-256 digest of the SubjectPublicKeyInfo (44 characters)",
            ),
            (
                "spec.servers[0].tls.verifyCertificateHash[0]",
                "invalid verifyCertificateHash \"12:34\": expected a SHA-256 digest of the certificate in hex (64 digits, colons between byte pairs allowed)",
            ),
        ],
    );
}

#[test]
fn unknown_fields_are_reported_as_warnings() {
    let report = report_for(&gateway(
        "  - port: {number: 80, name: http, protocol: HTTP, nmae: typo}\n    hosts: [a.example.com]\n    tlss: {}\n",
    ));
    assert_valid(&report);
    let message = "unknown field, ignored: check its spelling and the Istio API version";
    assert_warning(&report, "spec.servers[0].port.nmae", message);
    assert_warning(&report, "spec.servers[0].tlss", message);
}

#[test]
fn problems_name_the_resource() {
    let report = report_for(&gateway(
        "  - port: {number: 0, name: http, protocol: HTTP}\n    hosts: [a.example.com]\n",
    ));
    let problem = &report.errors[0];
    assert_eq!(problem.kind, "Gateway");
    assert_eq!(problem.namespace, "istio-system");
    assert_eq!(problem.name, "gw");
    assert_eq!(
        problem.to_string(),
        "Gateway istio-system/gw: spec.servers[0].port.number: port number 0 must be in the range 1..65535"
    );
}

#[test]
fn namespace_slash_host_rules_outside_gateways() {
    use discovery::istio::validate::validate_namespace_slash_host;
    // Sidecar-style hosts: the namespace may also be `~`, and the namespace is mandatory.
    assert!(validate_namespace_slash_host("~/*.example.com", false).is_empty());
    assert!(validate_namespace_slash_host("./reviews.default.svc.cluster.local", false).is_empty());
    assert!(validate_namespace_slash_host("*/*", false).is_empty());
    assert_eq!(
        validate_namespace_slash_host("reviews.default.svc.cluster.local", false),
        vec!["host must be of form namespace/dnsName".to_string()]
    );
    assert_eq!(
        validate_namespace_slash_host("Bad_Ns/a.example.com", false),
        vec!["invalid namespace value \"Bad_Ns\" in sidecar".to_string()]
    );
}
