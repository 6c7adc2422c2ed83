//! The span of one HTTP request through the gateway (ingress and egress, h1, h2 and h3).
//!
//! Attribute names are Envoy's tracing tags (`http.method`, `http.status_code`,
//! `upstream_cluster`, `response_flags`, `guid:x-request-id`…), so queries written for an
//! Istio gateway's traces keep working.

use http::{HeaderMap, Response};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry_sdk::trace::Span;

use super::Telemetry;
use super::propagation::{self, Incoming};
use crate::http::access_log::Request;
use crate::http::{ConnectionContext, HttpBody, Outcome};

/// An open request span; ended by [`finish`].
pub struct RequestSpan {
    span: Span,
}

/// Starts the request's span under the caller's context (if any) and rewrites the trace
/// headers so the upstream sees this span as its parent. `None` when tracing is off, or
/// when a B3 caller asked for no tracing (its `b3: 0` then goes upstream unchanged).
pub fn start(telemetry: Option<&Telemetry>, headers: &mut HeaderMap) -> Option<RequestSpan> {
    let telemetry = telemetry?;
    let caller = match propagation::extract(headers) {
        Incoming::Deny => return None,
        Incoming::None => None,
        Incoming::Parent(parent) => Some(parent),
    };
    let parent = match &caller {
        Some(parent) => opentelemetry::Context::new().with_remote_span_context(
            parent.span_context(telemetry.samples_new_trace(parent.trace_id)),
        ),
        None => opentelemetry::Context::new(),
    };
    let tracer = telemetry.tracer();
    let span = tracer.build_with_context(
        tracer.span_builder("ingress").with_kind(SpanKind::Server),
        &parent,
    );
    propagation::inject(
        headers,
        opentelemetry::trace::Span::span_context(&span),
        caller.as_ref(),
    );
    Some(RequestSpan { span })
}

/// Names the span after its route and records what happened. Attributes are only built for
/// a sampled span: an unsampled one costs its ids and nothing more.
pub fn finish(
    span: Option<RequestSpan>,
    conn: &ConnectionContext,
    request: &Request<'_>,
    response: &Response<HttpBody>,
    outcome: &Outcome<'_>,
    route: Option<&str>,
) {
    let Some(RequestSpan { mut span }) = span else {
        return;
    };
    if !span.is_recording() {
        return;
    }
    let status = response.status();
    span.update_name(format!(
        "{} {}",
        request.authority,
        route.unwrap_or("(no route)")
    ));
    let mut attributes = vec![
        KeyValue::new("http.method", request.method.to_string()),
        KeyValue::new(
            "http.url",
            format!("{}://{}{}", conn.scheme(), request.authority, request.path),
        ),
        KeyValue::new("http.protocol", request.protocol.as_str()),
        KeyValue::new("http.status_code", i64::from(status.as_u16())),
        KeyValue::new("response_flags", outcome.flags),
        KeyValue::new("peer.address", conn.peer.to_string()),
        KeyValue::new("listener", conn.listener_name.clone()),
        KeyValue::new("component", "proxy"),
    ];
    if let Some(route) = route {
        attributes.push(KeyValue::new("route_name", route.to_owned()));
    }
    if let Some(cluster) = outcome.cluster {
        attributes.push(KeyValue::new("upstream_cluster", cluster.name.clone()));
        attributes.push(KeyValue::new(
            "destination_service",
            cluster.service.clone(),
        ));
    }
    if let Some(address) = outcome.upstream {
        attributes.push(KeyValue::new("upstream_address", address.to_string()));
    }
    if let Some(id) = request.request_id.and_then(|id| id.to_str().ok()) {
        attributes.push(KeyValue::new("guid:x-request-id", id.to_owned()));
    }
    span.set_attributes(attributes);
    if status.is_server_error() {
        span.set_attribute(KeyValue::new("error", true));
        span.set_status(Status::error(format!(
            "{} {}",
            status.as_u16(),
            outcome.flags
        )));
    }
    span.end();
}
