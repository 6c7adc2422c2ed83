//! The span of one passthrough or TCP connection, recorded when it closes.
//!
//! The bytes are opaque (mesh mTLS end to end), so there is no caller context to continue:
//! each connection is the root of its own trace.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _};

use super::Telemetry;
use crate::config::ClusterConfig;
use crate::proxy::Transferred;

/// How a forwarded connection ended.
#[derive(Debug)]
pub enum Close<'a> {
    /// Both sides finished (FIN both ways).
    Done,
    Error(&'a std::io::Error),
    /// Still open when its listener's drain period ended.
    Drained,
}

impl<'a> Close<'a> {
    /// How the copy loop's result ended the connection, and the bytes it moved (the
    /// `prefix` already read from the client included).
    pub fn of(
        copied: Option<&'a std::io::Result<Transferred>>,
        prefix: u64,
    ) -> (Self, Option<Transferred>) {
        match copied {
            Some(Ok(bytes)) => (
                Close::Done,
                Some(Transferred {
                    received: bytes.received + prefix,
                    sent: bytes.sent,
                }),
            ),
            Some(Err(error)) => (Close::Error(error), None),
            None => (Close::Drained, None),
        }
    }

    fn reason(&self) -> String {
        match self {
            Close::Done => "eof".to_owned(),
            Close::Error(error) => format!("error: {error}"),
            Close::Drained => "drained".to_owned(),
        }
    }
}

/// One forwarded connection, as its close is logged.
pub struct Connection<'a> {
    pub peer: SocketAddr,
    pub listener: &'a str,
    pub sni: Option<&'a str>,
    pub cluster: &'a ClusterConfig,
    pub upstream: SocketAddr,
    pub security: &'static str,
    /// Bytes each way, including the replayed ClientHello; unknown when the copy failed.
    pub transferred: Option<Transferred>,
    pub started: Instant,
    pub close: Close<'a>,
}

/// Records the connection's span, from accept to close.
pub fn record(telemetry: &Telemetry, connection: &Connection<'_>) {
    let tracer = telemetry.tracer();
    let now = SystemTime::now();
    let start = now.checked_sub(connection.started.elapsed()).unwrap_or(now);
    let name = match connection.sni {
        Some(_) => "passthrough",
        None => "tcp",
    };
    let mut span = tracer.build_with_context(
        tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_start_time(start),
        &opentelemetry::Context::new(),
    );
    if !span.is_recording() {
        return;
    }
    let mut attributes = vec![
        KeyValue::new("upstream_cluster", connection.cluster.name.clone()),
        KeyValue::new("destination_service", connection.cluster.service.clone()),
        KeyValue::new("upstream_address", connection.upstream.to_string()),
        KeyValue::new("peer.address", connection.peer.to_string()),
        KeyValue::new("listener", connection.listener.to_owned()),
        KeyValue::new("connection_security_policy", connection.security),
        KeyValue::new("close_reason", connection.close.reason()),
        KeyValue::new("component", "proxy"),
    ];
    if let Some(bytes) = connection.transferred {
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        attributes.push(KeyValue::new("bytes_received", count(bytes.received)));
        attributes.push(KeyValue::new("bytes_sent", count(bytes.sent)));
    }
    if let Some(sni) = connection.sni {
        attributes.push(KeyValue::new("tls.sni", sni.to_owned()));
    }
    span.set_attributes(attributes);
    if let Close::Error(error) = connection.close {
        span.set_status(Status::error(error.to_string()));
    }
    span.end_with_timestamp(SystemTime::now());
}
