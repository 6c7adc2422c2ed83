//! DestinationRule rules (Istio's ValidateDestinationRule and traffic-policy checks).

use crate::istio::IstioObject;
use crate::istio::destination_rule::{
    ConnectionPoolSettings, DestinationRuleSpec, LoadBalancerSettings, OutlierDetection,
    TrafficPolicy,
};

use super::http_route::validate_subset_name;
use super::names::{
    validate_duration, validate_export_to, validate_labels, validate_port, validate_wildcard_domain,
};
use super::tls::validate_client_tls;
use super::{Findings, Report};

pub fn validate_destination_rule(rule: &IstioObject<DestinationRuleSpec>) -> Report {
    let mut findings = Findings::new("DestinationRule", rule);
    let spec = &rule.spec;
    findings.check("spec.host", validate_wildcard_domain(&spec.host));
    if let Some(policy) = &spec.traffic_policy {
        validate_traffic_policy(policy, "spec.trafficPolicy", &mut findings);
    }

    let mut names: Vec<&str> = Vec::new();
    for (index, subset) in spec.subsets.iter().enumerate() {
        let field = format!("spec.subsets[{index}]");
        if names.contains(&subset.name.as_str()) {
            findings.error(
                &format!("{field}.name"),
                format!("duplicate subset names: {}", subset.name),
            );
        }
        names.push(&subset.name);
        findings.check(&format!("{field}.name"), validate_subset_name(&subset.name));
        findings.errors(&format!("{field}.labels"), validate_labels(&subset.labels));
        if let Some(policy) = &subset.traffic_policy {
            validate_traffic_policy(policy, &format!("{field}.trafficPolicy"), &mut findings);
        }
    }

    let namespace = findings.namespace().to_string();
    findings.errors(
        "spec.exportTo",
        validate_export_to(
            &namespace,
            &spec.export_to,
            false,
            spec.workload_selector.is_some(),
        ),
    );
    if let Some(selector) = &spec.workload_selector {
        for (key, value) in &selector.match_labels {
            let label = format!("{key}={value}");
            if key.is_empty() {
                findings.error(
                    "spec.workloadSelector.matchLabels",
                    format!("empty key is not supported in selector: {label:?}"),
                );
            }
            if key.contains('*') || value.contains('*') {
                findings.error(
                    "spec.workloadSelector.matchLabels",
                    format!("wildcard is not supported in selector: {label:?}"),
                );
            }
        }
        if selector.match_labels.is_empty() {
            findings.warn(
                "spec.workloadSelector",
                "workload selector specified without labels",
            );
        }
    }
    findings.finish()
}

fn validate_traffic_policy(policy: &TrafficPolicy, field: &str, findings: &mut Findings) {
    if policy.is_empty() {
        findings.error(field, "traffic policy must have at least one field");
        return;
    }
    validate_policy_parts(
        policy.outlier_detection.as_ref(),
        policy.connection_pool.as_ref(),
        policy.load_balancer.as_ref(),
        field,
        findings,
    );
    if let Some(tls) = &policy.tls {
        validate_client_tls(tls, &format!("{field}.tls"), findings);
    }
    for (index, port_policy) in policy.port_level_settings.iter().enumerate() {
        let place = format!("{field}.portLevelSettings[{index}]");
        match &port_policy.port {
            None => findings.error(&place, "portTrafficPolicy must have valid port"),
            Some(port) => {
                findings.check(&format!("{place}.port.number"), validate_port(port.number))
            }
        }
        if port_policy.outlier_detection.is_none()
            && port_policy.connection_pool.is_none()
            && port_policy.load_balancer.is_none()
            && port_policy.tls.is_none()
        {
            findings.error(&place, "port traffic policy must have at least one field");
            continue;
        }
        validate_policy_parts(
            port_policy.outlier_detection.as_ref(),
            port_policy.connection_pool.as_ref(),
            port_policy.load_balancer.as_ref(),
            &place,
            findings,
        );
        if let Some(tls) = &port_policy.tls {
            validate_client_tls(tls, &format!("{place}.tls"), findings);
        }
    }
}

fn validate_policy_parts(
    outlier: Option<&OutlierDetection>,
    pool: Option<&ConnectionPoolSettings>,
    load_balancer: Option<&LoadBalancerSettings>,
    field: &str,
    findings: &mut Findings,
) {
    if let Some(outlier) = outlier {
        validate_outlier_detection(outlier, &format!("{field}.outlierDetection"), findings);
    }
    if let Some(pool) = pool {
        validate_connection_pool(pool, &format!("{field}.connectionPool"), findings);
    }
    if let Some(load_balancer) = load_balancer {
        let place = format!("{field}.loadBalancer");
        if let Some(warmup) = &load_balancer.warmup_duration_secs {
            findings.check(
                &format!("{place}.warmupDurationSecs"),
                validate_duration(warmup),
            );
        }
        if load_balancer.consistent_hash.is_some() {
            findings.warn(
                &format!("{place}.consistentHash"),
                "consistentHash is not implemented by Isthmus yet: endpoints are picked round robin",
            );
        }
        if load_balancer.locality_lb_setting.is_some() {
            findings.warn(
                &format!("{place}.localityLbSetting"),
                "localityLbSetting is not implemented by Isthmus yet: it is ignored",
            );
        }
    }
}

fn validate_outlier_detection(outlier: &OutlierDetection, field: &str, findings: &mut Findings) {
    if let Some(base) = &outlier.base_ejection_time {
        findings.check(
            &format!("{field}.baseEjectionTime"),
            validate_duration(base),
        );
    }
    if outlier.consecutive_errors != 0 {
        findings.warn(
            &format!("{field}.consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    if !outlier.split_external_local_origin_errors
        && outlier.consecutive_local_origin_failures.unwrap_or(0) > 0
    {
        findings.error(
            &format!("{field}.consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
    if let Some(interval) = &outlier.interval {
        findings.check(&format!("{field}.interval"), validate_duration(interval));
    }
    let percents = [
        (outlier.max_ejection_percent, "maxEjectionPercent"),
        (outlier.min_health_percent, "minHealthPercent"),
    ];
    for (value, name) in percents {
        if !(0..=100).contains(&value) {
            findings.error(
                &format!("{field}.{name}"),
                format!("percentage {value} is not in range 0..100"),
            );
        }
    }
}

fn validate_connection_pool(pool: &ConnectionPoolSettings, field: &str, findings: &mut Findings) {
    if pool.http.is_none() && pool.tcp.is_none() {
        findings.error(field, "connection pool must have at least one field");
        return;
    }
    if let Some(http) = &pool.http {
        let place = format!("{field}.http");
        let counts = [
            (
                http.http1_max_pending_requests,
                "http1MaxPendingRequests",
                "http1 max pending requests must be non-negative",
            ),
            (
                http.http2_max_requests,
                "http2MaxRequests",
                "http2 max requests must be non-negative",
            ),
            (
                http.max_requests_per_connection,
                "maxRequestsPerConnection",
                "max requests per connection must be non-negative",
            ),
            (
                http.max_retries,
                "maxRetries",
                "max retries must be non-negative",
            ),
            (
                http.max_concurrent_streams,
                "maxConcurrentStreams",
                "max concurrent streams must be non-negative",
            ),
        ];
        for (value, name, message) in counts {
            if value < 0 {
                findings.error(&format!("{place}.{name}"), message);
            }
        }
        if let Some(idle) = &http.idle_timeout {
            findings.check(&format!("{place}.idleTimeout"), validate_duration(idle));
        }
        if http.h2_upgrade_policy == crate::istio::destination_rule::H2UpgradePolicy::Upgrade
            && http.use_client_protocol
        {
            findings.error(
                &format!("{place}.useClientProtocol"),
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
    }
    if let Some(tcp) = &pool.tcp {
        let place = format!("{field}.tcp");
        if tcp.max_connections < 0 {
            findings.error(
                &format!("{place}.maxConnections"),
                "max connections must be non-negative",
            );
        }
        let durations = [
            (&tcp.connect_timeout, "connectTimeout"),
            (&tcp.max_connection_duration, "maxConnectionDuration"),
            (&tcp.idle_timeout, "idleTimeout"),
        ];
        for (value, name) in durations {
            if let Some(value) = value {
                findings.check(&format!("{place}.{name}"), validate_duration(value));
            }
        }
        if let Some(keepalive) = &tcp.tcp_keepalive {
            for (value, name) in [(&keepalive.time, "time"), (&keepalive.interval, "interval")] {
                if let Some(value) = value {
                    findings.check(
                        &format!("{place}.tcpKeepalive.{name}"),
                        validate_duration(value),
                    );
                }
            }
        }
    }
}
