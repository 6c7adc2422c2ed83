//! One test per DestinationRule rule, checking the exact field and message.

mod validation_support;

use validation_support::*;

#[test]
fn valid_rule_passes() {
    let report = report_for(&destination_rule(
        "  host: reviews.default.svc.cluster.local\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n",
    ));
    assert_valid(&report);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn duplicate_subset_names() {
    let report = report_for(&destination_rule(
        "  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v1, labels: {version: v2}}\n",
    ));
    assert_only_errors(
        &report,
        &[("spec.subsets[1].name", "duplicate subset names: v1")],
    );
}

#[test]
fn subset_names_are_dns_labels() {
    let report = report_for(&destination_rule(
        "  host: reviews\n  subsets:\n  - {name: V_1}\n  - {name: \"\"}\n",
    ));
    assert_only_errors(
        &report,
        &[
            ("spec.subsets[0].name", "subset name is invalid: V_1"),
            ("spec.subsets[1].name", "subset name cannot be empty"),
        ],
    );
}

#[test]
fn subset_labels_are_kubernetes_labels() {
    let report = report_for(&destination_rule(
        "  host: reviews\n  subsets:\n  - {name: v1, labels: {\"-version\": \"v 1\"}}\n",
    ));
    assert_only_errors(
        &report,
        &[
            ("spec.subsets[0].labels", "invalid tag key: \"-version\""),
            ("spec.subsets[0].labels", "invalid tag value: \"v 1\""),
        ],
    );
}

#[test]
fn host_is_required_and_well_formed() {
    let missing = report_for(&destination_rule("  subsets: [{name: v1}]\n"));
    assert_only_errors(&missing, &[("spec.host", "empty domain name not allowed")]);
    let bad = report_for(&destination_rule("  host: reviews.*\n"));
    assert_only_errors(
        &bad,
        &[(
            "spec.host",
            "domain name \"*\" invalid (label \"*\" invalid)",
        )],
    );
}

#[test]
fn traffic_policy_must_say_something() {
    let report = report_for(&destination_rule("  host: reviews\n  trafficPolicy: {}\n"));
    assert_only_errors(
        &report,
        &[(
            "spec.trafficPolicy",
            "traffic policy must have at least one field",
        )],
    );
}

#[test]
fn client_mutual_tls_needs_certificate_and_key() {
    let report = report_for(&destination_rule(
        "  host: nginx.example.com\n  trafficPolicy:\n    tls: {mode: MUTUAL, caCertificates: /ca.crt}\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.trafficPolicy.tls.clientCertificate",
                "client certificate required for mutual tls",
            ),
            (
                "spec.trafficPolicy.tls.privateKey",
                "private key required for mutual tls",
            ),
        ],
    );
}

#[test]
fn credential_name_excludes_file_fields() {
    let report = report_for(&destination_rule(
        "  host: nginx.example.com\n  trafficPolicy:\n    tls: {mode: SIMPLE, credentialName: client-cred, caCertificates: /ca.crt}\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.trafficPolicy.tls.credentialName",
            "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
        )],
    );
}

#[test]
fn insecure_skip_verify_excludes_verification_settings() {
    let report = report_for(&destination_rule(
        "  host: nginx.example.com\n  trafficPolicy:\n    tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.crt}\n",
    ));
    assert_only_errors(
        &report,
        &[(
            "spec.trafficPolicy.tls.insecureSkipVerify",
            "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
        )],
    );
}

#[test]
fn subset_and_port_level_tls_are_checked_too() {
    let report = report_for(&destination_rule(
        "  host: nginx.example.com\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 443}\n      tls: {mode: MUTUAL, privateKey: /k}\n    - tls: {mode: SIMPLE}\n    - port: {number: 80}\n  subsets:\n  - name: v1\n    trafficPolicy:\n      tls: {mode: MUTUAL, clientCertificate: /c}\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.trafficPolicy.portLevelSettings[0].tls.clientCertificate",
                "client certificate required for mutual tls",
            ),
            (
                "spec.trafficPolicy.portLevelSettings[1]",
                "portTrafficPolicy must have valid port",
            ),
            (
                "spec.trafficPolicy.portLevelSettings[2]",
                "port traffic policy must have at least one field",
            ),
            (
                "spec.subsets[0].trafficPolicy.tls.privateKey",
                "private key required for mutual tls",
            ),
        ],
    );
}

#[test]
fn outlier_detection_rules() {
    let report = report_for(&destination_rule(
        "  host: reviews\n  trafficPolicy:\n    outlierDetection:\n      consecutiveErrors: 5\n      consecutiveLocalOriginFailures: 3\n      interval: 1x\n      baseEjectionTime: 0s\n      maxEjectionPercent: 150\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.trafficPolicy.outlierDetection.baseEjectionTime",
                "duration must be greater than 1ms",
            ),
            (
                "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
                "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
            ),
            (
                "spec.trafficPolicy.outlierDetection.interval",
                "invalid duration \"1x\": unknown unit \"x\"; use ns, us, ms, s, m or h",
            ),
            (
                "spec.trafficPolicy.outlierDetection.maxEjectionPercent",
                "percentage 150 is not in range 0..100",
            ),
        ],
    );
    assert_warning(
        &report,
        "spec.trafficPolicy.outlierDetection.consecutiveErrors",
        "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
    );
}

#[test]
fn connection_pool_rules() {
    let empty = report_for(&destination_rule(
        "  host: reviews\n  trafficPolicy:\n    connectionPool: {}\n",
    ));
    assert_only_errors(
        &empty,
        &[(
            "spec.trafficPolicy.connectionPool",
            "connection pool must have at least one field",
        )],
    );
    let negative = report_for(&destination_rule(
        "  host: reviews\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: -1}\n      http: {http2MaxRequests: -5, h2UpgradePolicy: UPGRADE, useClientProtocol: true}\n",
    ));
    assert_only_errors(
        &negative,
        &[
            (
                "spec.trafficPolicy.connectionPool.http.http2MaxRequests",
                "http2 max requests must be non-negative",
            ),
            (
                "spec.trafficPolicy.connectionPool.http.useClientProtocol",
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            ),
            (
                "spec.trafficPolicy.connectionPool.tcp.maxConnections",
                "max connections must be non-negative",
            ),
        ],
    );
}

#[test]
fn workload_selector_limits_export_to() {
    let report = report_for(&destination_rule(
        "  host: reviews\n  workloadSelector: {matchLabels: {app: \"*\"}}\n  exportTo: [other]\n",
    ));
    assert_only_errors(
        &report,
        &[
            (
                "spec.exportTo",
                "destination rule with workload selector cannot have exportTo beyond current namespace",
            ),
            (
                "spec.workloadSelector.matchLabels",
                "wildcard is not supported in selector: \"app=*\"",
            ),
        ],
    );
}

#[test]
fn unimplemented_load_balancing_warns() {
    let report = report_for(&destination_rule(
        "  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {httpHeaderName: x-user}\n",
    ));
    assert_valid(&report);
    assert_warning(
        &report,
        "spec.trafficPolicy.loadBalancer.consistentHash",
        "consistentHash is not implemented by Isthmus yet: endpoints are picked round robin",
    );
}
