//! OpenTelemetry traces of the data plane, exported over OTLP/gRPC.
//!
//! Off by default. Then [`crate::proxy::ProxySettings::telemetry`] is `None` and every hook
//! in the request and connection paths is one branch on it: no span, no id, no header read.
//! On, each gateway owns its tracer provider (several gateways in one test process export
//! under their own service names) and spans are built with explicit parents taken from the
//! request headers, not from a thread-local context, because a request's future moves
//! between worker threads.
//!
//! - [`http`]: one SERVER span per HTTP request (h1, h2, h3), a child of the caller's
//!   `traceparent` or B3 context, passed upstream as the parent of the next hop.
//! - [`l4`]: one span per passthrough or TCP connection. The east-west gateway cannot read
//!   the encrypted headers, so these start new traces.

pub mod http;
pub mod l4;
pub mod propagation;

use std::time::Duration;

use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider, ShouldSample as _};
use thiserror::Error;

/// Istio's default `sampling` (1%).
pub const DEFAULT_SAMPLING: f64 = 0.01;

#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryOptions {
    /// The OTLP/gRPC collector, e.g. `http://otel-collector.observability:4317`.
    pub endpoint: String,
    /// Fraction of new traces recorded, 0.0 to 1.0. A caller's decision (the sampled flag)
    /// is always followed, so a trace is never cut in the middle.
    pub sampling: f64,
    /// `service.name` of every span this gateway exports.
    pub service_name: String,
    /// How often finished spans are sent; shutdown sends the rest.
    pub export_interval: Duration,
}

impl TelemetryOptions {
    pub fn new(endpoint: impl Into<String>, service_name: impl Into<String>) -> Self {
        TelemetryOptions {
            endpoint: endpoint.into(),
            sampling: DEFAULT_SAMPLING,
            service_name: service_name.into(),
            export_interval: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Error)]
pub enum TelemetryError {
    #[error(
        "trace sampling {0} is not a fraction between 0.0 and 1.0 (0.01 samples 1% of new traces)"
    )]
    Sampling(f64),
    #[error(
        "OTLP endpoint {endpoint:?} cannot be used: {source}; give the collector's gRPC URL, e.g. http://otel-collector:4317"
    )]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// A gateway's tracer; cheap to clone.
#[derive(Debug, Clone)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    sampling: f64,
}

impl Telemetry {
    /// Builds the exporter and its batch thread. Must run inside a tokio runtime: the gRPC
    /// channel's connection task is spawned on it (the gateway's control runtime).
    pub fn start(options: &TelemetryOptions) -> Result<Self, TelemetryError> {
        if !(0.0..=1.0).contains(&options.sampling) {
            return Err(TelemetryError::Sampling(options.sampling));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(options.endpoint.clone())
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| TelemetryError::Exporter {
                endpoint: options.endpoint.clone(),
                source,
            })?;
        let batch = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                opentelemetry_sdk::trace::BatchConfigBuilder::default()
                    .with_scheduled_delay(options.export_interval)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batch)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                options.sampling,
            ))))
            .with_resource(
                Resource::builder_empty()
                    .with_service_name(options.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("isthmus");
        tracing::info!(endpoint = %options.endpoint, sampling = options.sampling, service = %options.service_name, "exporting traces over OTLP/gRPC");
        Ok(Telemetry {
            provider,
            tracer,
            sampling: options.sampling,
        })
    }

    pub(crate) fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// A B3 caller may leave sampling to us: decide as for a new trace, on its trace id, so
    /// every hop that defers decides the same.
    pub(crate) fn samples_new_trace(&self, trace_id: opentelemetry::trace::TraceId) -> bool {
        let decision = Sampler::TraceIdRatioBased(self.sampling).should_sample(
            None,
            trace_id,
            "",
            &SpanKind::Server,
            &[],
            &[],
        );
        decision.decision == opentelemetry_sdk::trace::SamplingDecision::RecordAndSample
    }

    /// Sends the spans still buffered and stops the export thread. The SDK call blocks until
    /// the export is done, and the export needs this runtime, so it runs on a blocking thread.
    pub async fn shutdown(&self) {
        let provider = self.provider.clone();
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "flushing traces at shutdown failed"),
            Err(error) => tracing::warn!(%error, "flushing traces at shutdown panicked"),
        }
    }
}
