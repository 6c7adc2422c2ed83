//! One access log line and one set of Istio request metrics per request.

use std::time::Duration;

use http::{HeaderValue, Method, Response};

use super::body::HttpBody;
use super::context::{ConnectionContext, HttpProtocol};
use super::handler::Outcome;
use super::series_cache::{self, SeriesKey};
use crate::config::EndpointConfig;
use crate::metrics::{Metrics, REPORTER_SOURCE, RequestLabels, SECURITY_MUTUAL_TLS, UNKNOWN};

pub struct Request<'a> {
    pub method: &'a Method,
    pub authority: &'a str,
    pub path: &'a str,
    pub protocol: HttpProtocol,
    pub grpc: bool,
    pub request_id: Option<&'a HeaderValue>,
}

pub fn record(
    metrics: &Metrics,
    conn: &ConnectionContext,
    request: &Request<'_>,
    response: &Response<HttpBody>,
    outcome: &Outcome<'_>,
    elapsed: Duration,
) {
    let status = response.status().as_u16();
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let (service, cluster) = outcome.cluster.map_or((UNKNOWN, UNKNOWN), |c| {
        (c.service.as_str(), c.name.as_str())
    });
    let destination_cluster = outcome
        .destination_cluster
        .as_deref()
        .map_or(UNKNOWN, EndpointConfig::cluster_label);
    let mutual = conn.tls.as_ref().is_some_and(|tls| tls.mutual);
    let key = SeriesKey {
        config: &conn.config,
        cluster: outcome.cluster,
        listener: &conn.listener_name,
        destination_cluster,
        response_code: status,
        response_flags: outcome.flags,
        grpc: request.grpc,
        mutual,
    };
    let labels = || RequestLabels {
        reporter: REPORTER_SOURCE,
        source_cluster: metrics.source_cluster().to_owned(),
        destination_service: service.to_owned(),
        destination_cluster: destination_cluster.to_owned(),
        upstream_cluster: cluster.to_owned(),
        request_protocol: if request.grpc { "grpc" } else { "http" },
        response_code: status,
        response_flags: outcome.flags,
        connection_security_policy: if mutual { SECURITY_MUTUAL_TLS } else { "none" },
        listener: conn.listener_name.clone(),
    };
    series_cache::record(metrics, &key, labels, duration_ms);
    let response_bytes = hyper::body::Body::size_hint(response.body()).exact();
    tracing::info!(
        target: "isthmus::access",
        method = %request.method,
        authority = request.authority,
        path = request.path,
        protocol = request.protocol.as_str(),
        status,
        flags = outcome.flags,
        upstream_cluster = cluster,
        destination_cluster,
        upstream_host = ?outcome.upstream,
        upstream_ms = ?outcome.upstream_ms,
        duration_ms = elapsed.as_millis() as u64,
        response_bytes = ?response_bytes,
        request_id = ?request.request_id,
        peer = %conn.peer,
        listener = %conn.listener_name,
        server = %conn.server,
        sni = conn.tls.as_ref().and_then(|t| t.sni.as_deref()).unwrap_or(""),
        "request"
    );
}
