//! Copying a proxied byte stream to and from its mesh mTLS upstream, counted under Istio's
//! TCP metrics.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::metrics::{Metrics, SECURITY_MUTUAL_TLS, TcpLabels};
use crate::proxy::copy_both_ways;

/// Which side of the mesh call this proxy is, as Istio's `reporter` label says it.
#[derive(Debug, Clone, Copy)]
pub enum Reporter {
    Source,
    Destination,
}

impl Reporter {
    pub fn label(self) -> &'static str {
        match self {
            Reporter::Source => crate::metrics::REPORTER_SOURCE,
            Reporter::Destination => "destination",
        }
    }
}

/// Who the bytes are for, for the metric labels and the log line.
pub struct TunnelLabels<'a> {
    pub reporter: Reporter,
    pub service: &'a str,
    /// The Envoy-style cluster name (`upstream_cluster`).
    pub cluster: &'a str,
    /// Istio's `destination_cluster`: the destination's cluster id ("unknown" if not known).
    pub destination_cluster: &'a str,
    pub listener: &'a str,
}

/// Copies both ways until both sides are done; errors end the tunnel and are logged.
pub async fn tunnel<D, U>(downstream: D, upstream: U, metrics: &Metrics, labels: &TunnelLabels<'_>)
where
    D: AsyncRead + AsyncWrite,
    U: AsyncRead + AsyncWrite,
{
    let counters = metrics.connection_opened(&TcpLabels {
        reporter: labels.reporter.label(),
        source_cluster: metrics.source_cluster().to_owned(),
        destination_service: labels.service.to_owned(),
        destination_cluster: labels.destination_cluster.to_owned(),
        upstream_cluster: labels.cluster.to_owned(),
        request_protocol: "tcp",
        connection_security_policy: SECURITY_MUTUAL_TLS,
        listener: labels.listener.to_owned(),
    });
    let outcome = copy_both_ways(
        tokio::io::split(downstream),
        tokio::io::split(upstream),
        &counters.received_bytes,
        &counters.sent_bytes,
    )
    .await;
    counters.closed.inc();
    match outcome {
        Ok(moved) => tracing::debug!(
            listener = labels.listener,
            cluster = labels.cluster,
            received = moved.received,
            sent = moved.sent,
            "tunnel closed"
        ),
        Err(error) => tracing::debug!(
            listener = labels.listener,
            cluster = labels.cluster,
            %error,
            "tunnel ended with an error"
        ),
    }
}

/// Envoy's response flag for a status the sidecar itself produced or relayed, so refusals are
/// told apart from application errors on dashboards.
pub fn response_flags(status: http::StatusCode, local: bool) -> &'static str {
    if !local {
        return "-";
    }
    match status.as_u16() {
        404 => "NR",
        503 => "UH",
        502 => "UF",
        400 => "DPE",
        _ => "-",
    }
}

/// Counts one HTTP request in `istio_requests_total` and its duration histogram.
pub fn count_request(
    metrics: &Metrics,
    labels: &TunnelLabels<'_>,
    status: http::StatusCode,
    local: bool,
    started: std::time::Instant,
) {
    metrics.request_served(
        &crate::metrics::RequestLabels {
            reporter: labels.reporter.label(),
            source_cluster: metrics.source_cluster().to_owned(),
            destination_service: labels.service.to_owned(),
            destination_cluster: labels.destination_cluster.to_owned(),
            upstream_cluster: labels.cluster.to_owned(),
            request_protocol: "http",
            response_code: status.as_u16(),
            response_flags: response_flags(status, local),
            connection_security_policy: SECURITY_MUTUAL_TLS,
            listener: labels.listener.to_owned(),
        },
        started.elapsed().as_secs_f64() * 1000.0,
    );
}
