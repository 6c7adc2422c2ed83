//! What the push layer reports: Prometheus metrics and the per-gateway table.

use std::fmt::{self, Write as _};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::gateways::GatewayTable;

/// Why a configuration was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushKind {
    /// The full configuration a gateway gets when its stream opens.
    Initial,
    /// A changed configuration after the inputs changed.
    Update,
}

impl PushKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PushKind::Initial => "initial",
            PushKind::Update => "update",
        }
    }
}

// Written by hand because the derive keeps the variant's capitalisation; Prometheus label
// values are conventionally lower case.
impl EncodeLabelValue for PushKind {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PushLabels {
    r#type: PushKind,
}

/// Shared by every gateway stream and read by the monitoring endpoint.
#[derive(Debug)]
pub struct PushMetrics {
    pushes: Family<PushLabels, Counter>,
    push_duration: Histogram,
    nacks: Counter,
    rejected_resources: Gauge,
    gateways: GatewayTable,
}

impl PushMetrics {
    /// Creates the metrics and registers them (names prefixed `isthmus_discovery_`).
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = PushMetrics {
            pushes: Family::default(),
            // 1 ms .. ~16 s: the debounce alone is ~100 ms, a stuck gateway can take seconds.
            push_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            nacks: Counter::default(),
            rejected_resources: Gauge::default(),
            gateways: GatewayTable::default(),
        };
        registry.register(
            "isthmus_discovery_pushes",
            "Configurations pushed to gateways, by type (initial, update)",
            metrics.pushes.clone(),
        );
        registry.register(
            "isthmus_discovery_push_duration_seconds",
            "Time from an input change notification to the configuration being written to a \
             gateway stream",
            metrics.push_duration.clone(),
        );
        registry.register(
            "isthmus_discovery_connected_gateways",
            "Gateway streams currently connected",
            metrics.gateways.connected_gauge(),
        );
        registry.register(
            "isthmus_discovery_nacks",
            "Configurations gateways refused (NACKs)",
            metrics.nacks.clone(),
        );
        registry.register(
            "isthmus_discovery_rejected_resources",
            "Input resources (or parts of them) left out of gateway configurations",
            metrics.rejected_resources.clone(),
        );
        metrics
    }

    /// Metrics that nobody scrapes, for tests and embedders without a monitoring endpoint.
    pub fn unregistered() -> Self {
        PushMetrics::new(&mut Registry::default())
    }

    /// The connected gateways and where each stands.
    pub fn gateways(&self) -> &GatewayTable {
        &self.gateways
    }

    /// Set by translation after each snapshot.
    pub fn set_rejected_resources(&self, count: usize) {
        self.rejected_resources
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn pushes(&self, kind: PushKind) -> u64 {
        self.pushes
            .get_or_create(&PushLabels { r#type: kind })
            .get()
    }

    pub fn nacks(&self) -> u64 {
        self.nacks.get()
    }

    pub(crate) fn record_push(&self, kind: PushKind, since_change: Option<Duration>) {
        self.pushes
            .get_or_create(&PushLabels { r#type: kind })
            .inc();
        if let Some(latency) = since_change {
            self.push_duration.observe(latency.as_secs_f64());
        }
    }

    pub(crate) fn record_nack(&self) {
        self.nacks.inc();
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn exposes_every_metric_by_its_istio_style_name() {
        let mut registry = Registry::default();
        let metrics = PushMetrics::new(&mut registry);
        metrics.record_push(PushKind::Initial, None);
        metrics.record_push(PushKind::Update, Some(Duration::from_millis(120)));
        metrics.record_push(PushKind::Update, Some(Duration::from_millis(80)));
        metrics.record_nack();
        metrics.set_rejected_resources(3);

        let mut text = String::new();
        encode(&mut text, &registry).expect("encodable");
        for line in [
            "isthmus_discovery_pushes_total{type=\"initial\"} 1",
            "isthmus_discovery_pushes_total{type=\"update\"} 2",
            "isthmus_discovery_push_duration_seconds_count 2",
            "isthmus_discovery_connected_gateways 0",
            "isthmus_discovery_nacks_total 1",
            "isthmus_discovery_rejected_resources 3",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert_eq!(metrics.pushes(PushKind::Update), 2);
        assert_eq!(metrics.nacks(), 1);
    }
}
