//! HTTP route rules of a VirtualService (Istio's validateHTTPRoute and helpers).

use crate::istio::common::{Destination, HeaderOperations, Headers, Percent};
use crate::istio::virtual_service::{
    CorsPolicy, HttpDirectResponse, HttpFaultInjection, HttpMatchRequest, HttpRedirect, HttpRetry,
    HttpRewrite, HttpRoute, HttpRouteDestination, RouteDestination,
};

use super::Findings;
use super::names::{
    is_dns1123_label, validate_duration, validate_fqdn, validate_labels, validate_port,
    validate_wildcard_domain,
};
use super::string_match::{
    is_authority_header, validate_cors_header_name, validate_header_edit_name,
    validate_header_name_or_jwt_claim, validate_header_value, validate_regex,
    validate_request_header_edit_name, validate_string_match, validate_string_match_regex,
};

const SUPPORTED_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
];

const RETRY_ON_POLICIES: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Status codes with a registered reason phrase (what Go's `http.StatusText` knows).
const KNOWN_STATUS_CODES: [u16; 62] = [
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
    305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
    416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 510, 511,
];

const GRPC_STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

const DIRECT_RESPONSE_WARN_BYTES: usize = 100 * 1024;
const DIRECT_RESPONSE_MAX_BYTES: usize = 1024 * 1024;

pub(super) fn validate_http_route(route: &HttpRoute, field: &str, findings: &mut Findings) {
    validate_conflicts(route, field, findings);
    for (index, matcher) in route.matches.iter().enumerate() {
        validate_match(matcher, &format!("{field}.match[{index}]"), findings);
    }
    if let Some(headers) = &route.headers {
        validate_headers(headers, &format!("{field}.headers"), findings);
    }
    if let Some(cors) = &route.cors_policy {
        validate_cors(cors, &format!("{field}.corsPolicy"), findings);
    }
    if let Some(fault) = &route.fault {
        validate_fault(fault, &format!("{field}.fault"), findings);
    }
    if let Some(percent) = route.mirror_percent {
        if percent > 100 {
            findings.error(
                &format!("{field}.mirrorPercent"),
                format!("mirror_percent must have a max value of 100 (it has {percent})"),
            );
        }
        findings.warn(
            &format!("{field}.mirrorPercent"),
            "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
        );
    }
    if let Some(Percent { value }) = &route.mirror_percentage {
        let place = format!("{field}.mirrorPercentage");
        if *value > 100.0 {
            findings.error(
                &place,
                format!("mirror_percentage must have a max value of 100 (it has {value:.6})"),
            );
        }
        if *value < 0.0 {
            findings.error(
                &place,
                format!("mirror_percentage must have a min value of 0 (it has {value:.6})"),
            );
        }
    }
    if let Some(mirror) = &route.mirror {
        validate_destination(mirror, &format!("{field}.mirror"), findings);
    }
    for (index, mirror) in route.mirrors.iter().enumerate() {
        let place = format!("{field}.mirrors[{index}]");
        match &mirror.destination {
            None => findings.error(&place, "destination is required for mirrors"),
            Some(destination) => {
                validate_destination(destination, &format!("{place}.destination"), findings);
            }
        }
        if let Some(Percent { value }) = &mirror.percentage {
            if *value > 100.0 {
                findings.error(
                    &format!("{place}.percentage"),
                    format!("mirror percentage must have a max value of 100 (it has {value:.6})"),
                );
            }
            if *value < 0.0 {
                findings.error(
                    &format!("{place}.percentage"),
                    format!("mirror percentage must have a min value of 0 (it has {value:.6})"),
                );
            }
        }
    }
    if let Some(redirect) = &route.redirect {
        findings.check(&format!("{field}.redirect"), validate_redirect(redirect));
    }
    if let Some(direct) = &route.direct_response {
        validate_direct_response(direct, &format!("{field}.directResponse"), findings);
    }
    if let Some(retries) = &route.retries {
        validate_retries(retries, &format!("{field}.retries"), findings);
    }
    if let Some(rewrite) = &route.rewrite {
        findings.check(&format!("{field}.rewrite"), validate_rewrite(rewrite));
    }
    findings.check(
        &format!("{field}.headers"),
        validate_authority_rewrite(route.rewrite.as_ref(), route.headers.as_ref()),
    );
    validate_http_destinations(&route.route, &format!("{field}.route"), findings);
    if let Some(timeout) = &route.timeout {
        findings.check(&format!("{field}.timeout"), validate_duration(timeout));
    }
}

fn validate_conflicts(route: &HttpRoute, field: &str, findings: &mut Findings) {
    if route.delegate.is_some() {
        if route.redirect.is_some() {
            findings.error(
                field,
                format!("root HTTP route {} must not specify redirect", route.name),
            );
        }
        if !route.route.is_empty() {
            findings.error(
                field,
                format!("root HTTP route {} must not specify route", route.name),
            );
        }
        findings.warn(
            &format!("{field}.delegate"),
            "delegate is not supported by Isthmus: this route matches nothing; inline the delegate's routes instead",
        );
        return;
    }
    let has_route = !route.route.is_empty();
    if route.redirect.is_some() {
        if has_route {
            findings.error(field, "HTTP route cannot contain both route and redirect");
        }
        if route.fault.is_some() {
            findings.error(field, "HTTP route cannot contain both fault and redirect");
        }
        if route.rewrite.is_some() {
            findings.error(
                field,
                "HTTP route rule cannot contain both rewrite and redirect",
            );
        }
        if route.direct_response.is_some() {
            findings.error(
                field,
                "HTTP route rule cannot contain both direct_response and redirect",
            );
        }
    } else if route.direct_response.is_some() {
        if has_route {
            findings.error(
                field,
                "HTTP route cannot contain both route and direct_response",
            );
        }
        if route.fault.is_some() {
            findings.error(
                field,
                "HTTP route cannot contain both fault and direct_response",
            );
        }
        if route.rewrite.is_some() {
            findings.error(
                field,
                "HTTP route rule cannot contain both rewrite and direct_response",
            );
        }
    } else if !has_route {
        findings.error(field, "HTTP route, redirect or direct_response is required");
    }
    if route.mirror.is_some() && !route.mirrors.is_empty() {
        findings.error(field, "HTTP route cannot contain both mirror and mirrors");
    }
}

fn validate_match(matcher: &HttpMatchRequest, field: &str, findings: &mut Findings) {
    for (name, header) in &matcher.headers {
        let place = format!("{field}.headers.{name}");
        findings.check(&place, validate_header_name_or_jwt_claim(name));
        findings.check(&place, validate_string_match(header, "headers"));
    }
    for (name, header) in &matcher.without_headers {
        let place = format!("{field}.withoutHeaders.{name}");
        findings.check(&place, validate_header_name_or_jwt_claim(name));
        // `regex: "*"` is Istio's spelling of "header present", not a regex.
        if header.regex.as_deref() != Some("*") {
            findings.check(&place, validate_string_match(header, "withoutHeaders"));
        }
    }
    if let Some(uri) = &matcher.uri {
        findings.check(
            &format!("{field}.uri"),
            validate_string_match_regex(uri, "uri"),
        );
    }
    let plain = [
        (&matcher.scheme, "scheme"),
        (&matcher.method, "method"),
        (&matcher.authority, "authority"),
    ];
    for (value, name) in plain {
        if let Some(value) = value {
            findings.check(
                &format!("{field}.{name}"),
                validate_string_match(value, name),
            );
        }
    }
    for (name, param) in &matcher.query_params {
        findings.check(
            &format!("{field}.queryParams.{name}"),
            validate_string_match(param, "queryParams"),
        );
    }
    if matcher.port != 0 {
        findings.check(&format!("{field}.port"), validate_port(matcher.port));
    }
    findings.errors(
        &format!("{field}.sourceLabels"),
        validate_labels(&matcher.source_labels),
    );
    validate_gateway_names(&matcher.gateways, &format!("{field}.gateways"), findings);
    if !matcher.source_namespace.is_empty() && !is_dns1123_label(&matcher.source_namespace) {
        findings.error(
            &format!("{field}.sourceNamespace"),
            format!(
                "sourceNamespace match {} is invalid",
                matcher.source_namespace
            ),
        );
    }
}

fn validate_header_operations(
    operations: &HeaderOperations,
    request: bool,
    field: &str,
    findings: &mut Findings,
) {
    for (name, value) in operations.add.iter().chain(&operations.set) {
        let place = format!("{field}.{name}");
        let name_check = if request {
            validate_request_header_edit_name(name)
        } else {
            validate_header_edit_name(name)
        };
        findings.check(&place, name_check);
        findings.check(&place, validate_header_value(value));
    }
    for (index, name) in operations.remove.iter().enumerate() {
        findings.check(
            &format!("{field}.remove[{index}]"),
            validate_header_edit_name(name),
        );
    }
}

fn validate_headers(headers: &Headers, field: &str, findings: &mut Findings) {
    if let Some(request) = &headers.request {
        validate_header_operations(request, true, &format!("{field}.request"), findings);
    }
    if let Some(response) = &headers.response {
        validate_header_operations(response, false, &format!("{field}.response"), findings);
    }
}

fn validate_authority_rewrite(
    rewrite: Option<&HttpRewrite>,
    headers: Option<&Headers>,
) -> Result<(), String> {
    let mut current = rewrite
        .map(|rewrite| rewrite.authority.clone())
        .unwrap_or_default();
    let Some(request) = headers.and_then(|headers| headers.request.as_ref()) else {
        return Ok(());
    };
    for (name, value) in request.set.iter().chain(&request.add) {
        if !is_authority_header(name) {
            continue;
        }
        if !current.is_empty() {
            return Err(format!(
                "authority header cannot be set multiple times: have {current:?}, attempting to set {value:?}"
            ));
        }
        current.clone_from(value);
    }
    Ok(())
}

fn validate_cors(cors: &CorsPolicy, field: &str, findings: &mut Findings) {
    for (index, origin) in cors.allow_origins.iter().enumerate() {
        let place = format!("{field}.allowOrigins[{index}]");
        let value = origin
            .exact
            .as_deref()
            .or(origin.prefix.as_deref())
            .or(origin.regex.as_deref())
            .unwrap_or_default();
        if value.is_empty() {
            findings.error(
                &place,
                format!("'{value}' is not a valid match type for CORS allow origins"),
            );
        } else {
            findings.check(
                &place,
                validate_string_match_regex(origin, "corsPolicy.allowOrigins"),
            );
        }
    }
    if !cors.allow_origin.is_empty() {
        findings.warn(
            &format!("{field}.allowOrigin"),
            "using deprecated setting \"allowOrigin\", use \"allowOrigins\" (a list of StringMatch) instead",
        );
    }
    for (index, method) in cors.allow_methods.iter().enumerate() {
        if !SUPPORTED_METHODS.contains(&method.as_str()) {
            findings.error(
                &format!("{field}.allowMethods[{index}]"),
                format!("{method:?} is not a supported HTTP method"),
            );
        }
    }
    for (index, name) in cors.allow_headers.iter().enumerate() {
        findings.check(
            &format!("{field}.allowHeaders[{index}]"),
            validate_cors_header_name(name),
        );
    }
    for (index, name) in cors.expose_headers.iter().enumerate() {
        findings.check(
            &format!("{field}.exposeHeaders[{index}]"),
            validate_cors_header_name(name),
        );
    }
    if let Some(max_age) = &cors.max_age {
        let place = format!("{field}.maxAge");
        match validate_duration(max_age) {
            Err(message) => findings.error(&place, message),
            Ok(value) if value.subsec_nanos() > 0 => findings.error(
                &place,
                "max_age duration is accurate only to seconds precision",
            ),
            Ok(_) => {}
        }
    }
}

fn validate_percentage(percentage: &Percent) -> Result<(), String> {
    let value = percentage.value;
    if !(0.0..=100.0).contains(&value) || (value > 0.0 && value < 0.0001) {
        return Err(format!(
            "percentage {value} is neither 0.0, nor in range [0.0001, 100.0]"
        ));
    }
    Ok(())
}

fn validate_http_status(status: i64) -> Result<(), String> {
    if !(200..=600).contains(&status) {
        return Err(format!("HTTP status {status} is not in range 200-599"));
    }
    Ok(())
}

fn validate_fault(fault: &HttpFaultInjection, field: &str, findings: &mut Findings) {
    if fault.abort.is_none() && fault.delay.is_none() {
        findings.error(
            field,
            "HTTP fault injection must have an abort and/or a delay",
        );
    }
    if let Some(abort) = &fault.abort {
        let place = format!("{field}.abort");
        if let Some(percentage) = &abort.percentage {
            findings.check(
                &format!("{place}.percentage"),
                validate_percentage(percentage),
            );
        }
        if let Some(status) = &abort.grpc_status {
            if !GRPC_STATUS_NAMES.contains(&status.as_str()) {
                findings.error(
                    &format!("{place}.grpcStatus"),
                    format!(
                        "gRPC status {status:?} is not supported. See https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of supported codes, for example 'NOT_FOUND'"
                    ),
                );
            }
        } else if abort.http2_error.is_some() {
            findings.error(
                &format!("{place}.http2Error"),
                "HTTP/2 abort fault injection not supported yet",
            );
        } else if let Some(status) = abort.http_status {
            findings.check(
                &format!("{place}.httpStatus"),
                validate_http_status(i64::from(status)),
            );
        } else {
            findings.warn(&place, "abort configured, but error type not set");
        }
    }
    if let Some(delay) = &fault.delay {
        let place = format!("{field}.delay");
        if let Some(percentage) = &delay.percentage {
            findings.check(
                &format!("{place}.percentage"),
                validate_percentage(percentage),
            );
        }
        if let Some(fixed) = &delay.fixed_delay {
            findings.check(&format!("{place}.fixedDelay"), validate_duration(fixed));
        } else if let Some(exponential) = &delay.exponential_delay {
            findings.check(
                &format!("{place}.exponentialDelay"),
                validate_duration(exponential),
            );
            findings.error(
                &format!("{place}.exponentialDelay"),
                "exponentialDelay not supported yet",
            );
        }
    }
}

pub(super) fn validate_destination(
    destination: &Destination,
    field: &str,
    findings: &mut Findings,
) {
    if destination.host == "*" {
        findings.error(
            &format!("{field}.host"),
            format!("invalid destination host {}", destination.host),
        );
    } else {
        findings.check(
            &format!("{field}.host"),
            validate_wildcard_domain(&destination.host),
        );
    }
    if !destination.subset.is_empty() {
        findings.check(
            &format!("{field}.subset"),
            validate_subset_name(&destination.subset),
        );
    }
    if let Some(port) = &destination.port {
        findings.check(&format!("{field}.port.number"), validate_port(port.number));
    }
}

pub(super) fn validate_subset_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("subset name cannot be empty".to_string());
    }
    if !is_dns1123_label(name) {
        return Err(format!("subset name is invalid: {name}"));
    }
    Ok(())
}

fn validate_retries(retries: &HttpRetry, field: &str, findings: &mut Findings) {
    if retries.attempts < 0 {
        findings.error(&format!("{field}.attempts"), "attempts cannot be negative");
    }
    let configured = retries.per_try_timeout.is_some()
        || !retries.retry_on.is_empty()
        || retries.retry_remote_localities.is_some();
    if retries.attempts == 0 && configured {
        findings.error(
            field,
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
    }
    if let Some(timeout) = &retries.per_try_timeout {
        findings.check(
            &format!("{field}.perTryTimeout"),
            validate_duration(timeout),
        );
    }
    if !retries.retry_on.is_empty() {
        for policy in retries.retry_on.split(',') {
            let known_status = policy
                .parse::<u16>()
                .is_ok_and(|code| KNOWN_STATUS_CODES.contains(&code));
            if !known_status && !RETRY_ON_POLICIES.contains(&policy) {
                findings.error(
                    &format!("{field}.retryOn"),
                    format!("{policy:?} is not a valid retryOn policy"),
                );
            }
        }
    }
}

fn validate_redirect(redirect: &HttpRedirect) -> Result<(), String> {
    if redirect.uri.is_empty()
        && redirect.authority.is_empty()
        && redirect.port.is_none()
        && redirect.derive_port.is_none()
        && redirect.scheme.is_empty()
    {
        return Err("redirect must specify URI, authority, scheme, or port".to_string());
    }
    if redirect.redirect_code != 0 && !(300..=399).contains(&redirect.redirect_code) {
        return Err(format!(
            "{} is not a valid redirect code, must be 3xx",
            redirect.redirect_code
        ));
    }
    if !redirect.scheme.is_empty() && redirect.scheme != "http" && redirect.scheme != "https" {
        return Err("invalid redirect scheme, must be \"http\" or \"https\"".to_string());
    }
    if let Some(port) = redirect.port.filter(|port| *port > 0) {
        validate_port(port)?;
    }
    Ok(())
}

fn validate_direct_response(direct: &HttpDirectResponse, field: &str, findings: &mut Findings) {
    if let Some(body) = &direct.body {
        let size = body
            .string
            .as_ref()
            .or(body.bytes.as_ref())
            .map_or(0, String::len);
        if size > DIRECT_RESPONSE_MAX_BYTES {
            findings.error(
                &format!("{field}.body"),
                "large direct_responses may impact control plane performance, must be less than 1MB",
            );
        } else if size > DIRECT_RESPONSE_WARN_BYTES {
            findings.warn(
                &format!("{field}.body"),
                "large direct_responses may impact control plane performance",
            );
        }
    }
    findings.check(
        &format!("{field}.status"),
        validate_http_status(i64::from(direct.status)),
    );
}

fn validate_rewrite(rewrite: &HttpRewrite) -> Result<(), String> {
    if !rewrite.uri.is_empty() && rewrite.uri_regex_rewrite.is_some() {
        return Err("rewrite may only contain one of URI or UriRegexRewrite".to_string());
    }
    if rewrite.uri.is_empty() && rewrite.uri_regex_rewrite.is_none() && rewrite.authority.is_empty()
    {
        return Err("rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified".to_string());
    }
    if let Some(regex_rewrite) = &rewrite.uri_regex_rewrite {
        if regex_rewrite.pattern.is_empty() || regex_rewrite.rewrite.is_empty() {
            return Err("UriRegexRewrite has errors: UriRegexRewrite requires both Rewrite and Match fields to be specified".to_string());
        }
        validate_regex(&regex_rewrite.pattern, "HTTPRewrite.UriRegexRewrite.Match")
            .map_err(|error| format!("UriRegexRewrite has errors: {error}"))?;
    }
    Ok(())
}

fn validate_weights<'a>(
    weights: impl Iterator<Item = (i32, Option<&'a Destination>)>,
    field: &str,
    findings: &mut Findings,
) {
    let mut total: i64 = 0;
    let mut count = 0;
    for (index, (weight, destination)) in weights.enumerate() {
        count += 1;
        let place = format!("{field}[{index}]");
        match destination {
            None => findings.error(&place, "destination is required"),
            Some(destination) => {
                validate_destination(destination, &format!("{place}.destination"), findings);
            }
        }
        if weight < 0 {
            findings.error(&format!("{place}.weight"), format!("weight {weight} < 0"));
        }
        total += i64::from(weight);
    }
    if count > 1 && total == 0 {
        findings.error(field, "total destination weight = 0");
    }
}

fn validate_http_destinations(
    routes: &[HttpRouteDestination],
    field: &str,
    findings: &mut Findings,
) {
    for (index, route) in routes.iter().enumerate() {
        if let Some(headers) = &route.headers {
            validate_headers(headers, &format!("{field}[{index}].headers"), findings);
        }
    }
    validate_weights(
        routes
            .iter()
            .map(|route| (route.weight, route.destination.as_ref())),
        field,
        findings,
    );
}

pub(super) fn validate_route_destinations(
    routes: &[RouteDestination],
    field: &str,
    findings: &mut Findings,
) {
    validate_weights(
        routes
            .iter()
            .map(|route| (route.weight, route.destination.as_ref())),
        field,
        findings,
    );
}

/// `gateways` references: `name`, `namespace/name` or `mesh`.
pub(super) fn validate_gateway_names(names: &[String], field: &str, findings: &mut Findings) {
    for (index, name) in names.iter().enumerate() {
        let place = format!("{field}[{index}]");
        let Some((namespace, gateway)) = name.split_once('/') else {
            if let Some((first, rest)) = name.split_once('.') {
                let namespace = rest.split('.').next().unwrap_or_default();
                findings.warn(
                    &place,
                    format!(
                        "using legacy gatewayName format {name:?}; prefer the <namespace>/<name> format: \"{namespace}/{first}\""
                    ),
                );
            }
            findings.check(&place, validate_fqdn(name));
            continue;
        };
        if namespace.is_empty() || gateway.is_empty() {
            findings.error(&place, "config namespace and gateway name cannot be empty");
        }
        if !is_dns1123_label(namespace) {
            findings.error(
                &place,
                format!("invalid value for namespace: {namespace:?}"),
            );
        }
        if !is_dns1123_label(gateway) {
            findings.error(
                &place,
                format!("invalid value for gateway name: {gateway:?}"),
            );
        }
    }
}
