//! The OpenTelemetry flags `isthmus gateway` and `isthmus sidecar` share.

use gateway::telemetry::{DEFAULT_SAMPLING, TelemetryOptions};

#[derive(Debug, clap::Args)]
pub struct TracingArgs {
    /// Export a span per HTTP request and per passthrough connection to this OTLP/gRPC
    /// collector (e.g. http://otel-collector:4317). Without it, nothing is traced.
    #[arg(long, env = "ISTHMUS_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Fraction of new traces recorded (0.0 to 1.0; Istio's default 1%). A caller's sampled
    /// flag is always followed.
    #[arg(long, env = "ISTHMUS_TRACE_SAMPLING", default_value_t = DEFAULT_SAMPLING)]
    trace_sampling: f64,
    /// `service.name` of the spans; default `<name>.<namespace>`, as Istio names a proxy.
    #[arg(long, env = "ISTHMUS_TRACE_SERVICE_NAME")]
    trace_service_name: Option<String>,
}

impl TracingArgs {
    pub fn options(&self, name: &str, namespace: &str) -> Option<TelemetryOptions> {
        let endpoint = self.otlp_endpoint.clone()?;
        let service = self
            .trace_service_name
            .clone()
            .unwrap_or_else(|| format!("{name}.{namespace}"));
        Some(TelemetryOptions {
            sampling: self.trace_sampling,
            ..TelemetryOptions::new(endpoint, service)
        })
    }
}
