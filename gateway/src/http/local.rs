//! Responses the gateway makes itself, with Envoy's bodies and response flags.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::{HttpBody, empty, full};

/// Envoy's short response flags, for the access log and the `response_flags` label.
pub mod flags {
    pub const NONE: &str = "-";
    /// No route: no virtual host or no route matched.
    pub const NO_ROUTE: &str = "NR";
    /// No healthy upstream endpoint.
    pub const NO_HEALTHY_UPSTREAM: &str = "UH";
    /// The route names a cluster the configuration does not have.
    pub const NO_CLUSTER: &str = "NC";
    /// Connecting to the upstream failed.
    pub const UPSTREAM_CONNECT_FAILURE: &str = "UF";
    /// The upstream reset or closed before answering.
    pub const UPSTREAM_RESET: &str = "UR";
    /// The route timeout (or last per-try timeout) expired.
    pub const UPSTREAM_TIMEOUT: &str = "UT";
    /// Retries were exhausted; the last upstream answer is returned.
    pub const RETRY_LIMIT: &str = "URX";
    /// Fault injection aborted the request.
    pub const FAULT_ABORT: &str = "FI";
    /// Fault injection delayed the request.
    pub const FAULT_DELAY: &str = "DI";
    /// The cluster's connection pool limit was reached (circuit breaker overflow).
    pub const UPSTREAM_OVERFLOW: &str = "UO";
    /// The request could not be read (body too large, client gone, bad gRPC-web text).
    pub const DOWNSTREAM_PROTOCOL_ERROR: &str = "DPE";
    /// The upstream's DNS hostnames have never resolved (Envoy's DNS resolution failure).
    pub const DNS_RESOLUTION_FAILED: &str = "DF";
}

pub fn status_only(status: StatusCode) -> Response<HttpBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    response
}

pub fn text(status: StatusCode, body: &'static str) -> Response<HttpBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    response
}

/// Istio and Envoy answer an unrouted request with a bare 404.
pub fn no_route() -> Response<HttpBody> {
    status_only(StatusCode::NOT_FOUND)
}

pub fn no_healthy_upstream() -> Response<HttpBody> {
    text(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream")
}

/// 503 naming the hostname that does not resolve and why, so the sender can fix it.
pub fn dns_unresolved(reason: &impl std::fmt::Display) -> Response<HttpBody> {
    let body = format!("no healthy upstream: {reason}");
    let length = HeaderValue::from(body.len());
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(header::CONTENT_LENGTH, length);
    response
}

pub fn upstream_timeout() -> Response<HttpBody> {
    text(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout")
}

pub fn connect_failure() -> Response<HttpBody> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
    )
}

pub fn upstream_reset() -> Response<HttpBody> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
    )
}

pub fn overflow() -> Response<HttpBody> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "upstream connect error or disconnect/reset before headers. reset reason: overflow",
    )
}

pub fn redirect(status: StatusCode, location: &str) -> Response<HttpBody> {
    let mut response = status_only(status);
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
