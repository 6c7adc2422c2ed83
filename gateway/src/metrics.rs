//! The gateway's Prometheus metrics, all in one registry served on `/stats/prometheus`.
//!
//! TCP metric names and labels follow Istio's standard metrics so existing dashboards keep
//! working; `isthmus_*` metrics cover what Istio exposes through Envoy stats instead.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Istio reports gateway traffic from the proxy that opens the upstream connection.
pub const REPORTER_SOURCE: &str = "source";
/// The east-west path carries mesh mTLS end to end (the gateway only sees its ClientHello).
pub const SECURITY_MUTUAL_TLS: &str = "mutual_tls";
/// Passthrough and plain TCP traffic: the gateway cannot tell what the bytes are.
pub const SECURITY_UNKNOWN: &str = "unknown";
/// Istio's value for a label the reporter cannot know (no cluster reached, no cluster id).
pub const UNKNOWN: &str = "unknown";

/// Distinct `sni` label values kept before new ones are reported as [`SNI_OVERFLOW`].
///
/// The SNI of a rejected connection is chosen by whoever connects: without a cap, one client
/// sending random names would create a new time series per connection and exhaust the memory
/// of the gateway and of the Prometheus server scraping it. 512 covers every name a real mesh
/// sends to one gateway, plus room for investigating a misconfigured caller.
pub const MAX_SNI_LABELS: usize = 512;
pub const SNI_OVERFLOW: &str = "overflow";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
///
/// `source_cluster` is the reporting gateway's own Istio cluster id, `destination_cluster` the
/// Istio cluster id of the endpoint it chose (as Istio's labels mean them); `upstream_cluster`
/// is Isthmus's own: the Envoy-style cluster name (`outbound|9080||reviews...`) it routed to.
pub struct TcpLabels {
    pub reporter: &'static str,
    pub source_cluster: String,
    pub destination_service: String,
    pub destination_cluster: String,
    pub upstream_cluster: String,
    pub request_protocol: &'static str,
    pub connection_security_policy: &'static str,
    pub listener: String,
}

/// Istio's standard request metric labels (the ones a gateway can know), with
/// `upstream_cluster` as in [`TcpLabels`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub reporter: &'static str,
    pub source_cluster: String,
    pub destination_service: String,
    pub destination_cluster: String,
    pub upstream_cluster: String,
    pub request_protocol: &'static str,
    pub response_code: u16,
    pub response_flags: &'static str,
    pub connection_security_policy: &'static str,
    pub listener: String,
}

/// Istio's buckets for `istio_request_duration_milliseconds`.
const REQUEST_DURATION_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

fn request_duration_histogram() -> Histogram {
    Histogram::new(REQUEST_DURATION_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerRejectionLabels {
    pub listener: String,
    pub server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabels {
    /// The rejecting gateway's cluster id, as on the Istio metrics, so rejections of every
    /// cluster's gateways can be told apart on one dashboard.
    pub source_cluster: String,
    pub listener: String,
    pub reason: &'static str,
    pub sni: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApplyLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub cluster: String,
}

/// Counters of one proxied connection, resolved once when the upstream is connected so the
/// copy loop only does atomic adds.
#[derive(Clone, Debug)]
pub struct ConnectionCounters {
    pub sent_bytes: Counter,
    pub received_bytes: Counter,
    pub closed: Counter,
}

/// The two request series of one label set, resolved once so a request only does an atomic
/// add and a histogram observation.
#[derive(Clone, Debug)]
pub struct RequestSeries {
    count: Counter,
    duration: Histogram,
}

impl RequestSeries {
    pub fn record(&self, duration_ms: f64) {
        self.count.inc();
        self.duration.observe(duration_ms);
    }
}

/// Every metric family of one gateway. Cheap to clone: families share their storage.
#[derive(Clone)]
pub struct Metrics {
    /// Unique per `Metrics::new` in the process (clones share it), so caches of series can
    /// tell two gateways apart.
    instance: u64,
    /// This gateway's own Istio cluster id, Istio's `source_cluster`.
    source_cluster: Arc<str>,
    registry: Arc<Registry>,
    tcp_opened: Family<TcpLabels, Counter>,
    tcp_closed: Family<TcpLabels, Counter>,
    tcp_sent_bytes: Family<TcpLabels, Counter>,
    tcp_received_bytes: Family<TcpLabels, Counter>,
    rejected: Family<RejectionLabels, Counter>,
    config_version: Family<VersionLabels, Gauge>,
    config_applies: Family<ApplyLabels, Counter>,
    ejections: Family<ClusterLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RequestLabels, Histogram, fn() -> Histogram>,
    rejected_servers: Family<ServerRejectionLabels, Gauge>,
    sni_labels: Arc<SniLabelCap>,
}

impl Metrics {
    /// Metrics of a gateway whose cluster id is not known (`source_cluster="unknown"`).
    pub fn new() -> Self {
        Self::for_cluster(UNKNOWN)
    }

    /// Metrics of a gateway in Istio cluster `cluster_id` (empty: "unknown").
    pub fn for_cluster(cluster_id: &str) -> Self {
        let mut registry = Registry::default();
        let tcp_opened = Family::<TcpLabels, Counter>::default();
        let tcp_closed = Family::<TcpLabels, Counter>::default();
        let tcp_sent_bytes = Family::<TcpLabels, Counter>::default();
        let tcp_received_bytes = Family::<TcpLabels, Counter>::default();
        let rejected = Family::<RejectionLabels, Counter>::default();
        let config_version = Family::<VersionLabels, Gauge>::default();
        let config_applies = Family::<ApplyLabels, Counter>::default();
        let ejections = Family::<ClusterLabels, Counter>::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration =
            Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                request_duration_histogram,
            );
        let rejected_servers = Family::<ServerRejectionLabels, Gauge>::default();
        registry.register(
            "istio_requests",
            "HTTP requests served, by response code",
            requests.clone(),
        );
        registry.register(
            "istio_request_duration_milliseconds",
            "Time from request start to response headers",
            request_duration.clone(),
        );
        registry.register(
            "isthmus_rejected_servers",
            "Servers of the applied configuration that are not served (value 1), e.g. a TLS credential that does not load",
            rejected_servers.clone(),
        );
        // Counter names get their `_total` suffix from the encoder.
        registry.register(
            "istio_tcp_connections_opened",
            "TCP connections opened to an upstream",
            tcp_opened.clone(),
        );
        registry.register(
            "istio_tcp_connections_closed",
            "TCP connections to an upstream that ended",
            tcp_closed.clone(),
        );
        registry.register(
            "istio_tcp_sent_bytes",
            "Bytes sent back to the downstream client (response direction)",
            tcp_sent_bytes.clone(),
        );
        registry.register(
            "istio_tcp_received_bytes",
            "Bytes received from the downstream client (request direction)",
            tcp_received_bytes.clone(),
        );
        registry.register(
            "isthmus_rejected_connections",
            "Connections closed without being forwarded, by reason",
            rejected.clone(),
        );
        registry.register(
            "isthmus_config_version_info",
            "The configuration version being served (value 1)",
            config_version.clone(),
        );
        registry.register(
            "isthmus_config_applies",
            "Configuration applies, by result (ok or rejected)",
            config_applies.clone(),
        );
        registry.register(
            "isthmus_upstream_ejections",
            "Endpoints ejected by passive health checking",
            ejections.clone(),
        );
        static INSTANCES: AtomicU64 = AtomicU64::new(0);
        Metrics {
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            source_cluster: Arc::from(if cluster_id.is_empty() {
                UNKNOWN
            } else {
                cluster_id
            }),
            registry: Arc::new(registry),
            tcp_opened,
            tcp_closed,
            tcp_sent_bytes,
            tcp_received_bytes,
            rejected,
            config_version,
            config_applies,
            ejections,
            requests,
            request_duration,
            rejected_servers,
            sni_labels: Arc::new(SniLabelCap::new(MAX_SNI_LABELS)),
        }
    }

    /// The OpenMetrics text exposition of every family.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; the encoder only propagates fmt::Write errors.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts an opened upstream connection and returns the counters its copy loop updates.
    pub fn connection_opened(&self, labels: &TcpLabels) -> ConnectionCounters {
        self.tcp_opened.get_or_create(labels).inc();
        ConnectionCounters {
            sent_bytes: self.tcp_sent_bytes.get_or_create_owned(labels),
            received_bytes: self.tcp_received_bytes.get_or_create_owned(labels),
            closed: self.tcp_closed.get_or_create_owned(labels),
        }
    }

    pub fn rejected(&self, listener: &str, reason: &'static str, sni: Option<&str>) {
        let labels = RejectionLabels {
            source_cluster: self.source_cluster.to_string(),
            listener: listener.to_owned(),
            reason,
            sni: sni.map_or_else(String::new, |sni| self.sni_labels.label(sni)),
        };
        self.rejected.get_or_create(&labels).inc();
    }

    pub fn request_served(&self, labels: &RequestLabels, duration_ms: f64) {
        self.request_series(labels).record(duration_ms);
    }

    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// The `source_cluster` label value: this gateway's Istio cluster id, or "unknown".
    pub fn source_cluster(&self) -> &str {
        &self.source_cluster
    }

    /// The request series of `labels`, created on first use; callers keep it to skip the
    /// label hashing next time.
    pub fn request_series(&self, labels: &RequestLabels) -> RequestSeries {
        RequestSeries {
            count: self.requests.get_or_create_owned(labels),
            duration: self.request_duration.get_or_create_owned(labels),
        }
    }

    /// Replaces the set of rejected servers with the current one.
    pub fn set_rejected_servers<'a>(&self, servers: impl Iterator<Item = (&'a str, &'a str)>) {
        self.rejected_servers.clear();
        for (listener, server) in servers {
            self.rejected_servers
                .get_or_create(&ServerRejectionLabels {
                    listener: listener.to_owned(),
                    server: server.to_owned(),
                })
                .set(1);
        }
    }

    pub fn config_applied(&self, version: &str) {
        self.config_version.clear();
        self.config_version
            .get_or_create(&VersionLabels {
                version: version.to_owned(),
            })
            .set(1);
        self.config_applies
            .get_or_create(&ApplyLabels { result: "ok" })
            .inc();
    }

    pub fn config_rejected(&self) {
        self.config_applies
            .get_or_create(&ApplyLabels { result: "rejected" })
            .inc();
    }

    pub fn endpoint_ejected(&self, cluster: &str) {
        self.ejections
            .get_or_create(&ClusterLabels {
                cluster: cluster.to_owned(),
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Admits the first `cap` distinct SNI values as labels; later ones become [`SNI_OVERFLOW`].
struct SniLabelCap {
    seen: Mutex<HashSet<String>>,
    cap: usize,
}

impl SniLabelCap {
    fn new(cap: usize) -> Self {
        SniLabelCap {
            seen: Mutex::new(HashSet::new()),
            cap,
        }
    }

    fn label(&self, sni: &str) -> String {
        // A poisoned set only means another thread panicked mid-insert; the set is still usable.
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if seen.contains(sni) {
            return sni.to_owned();
        }
        if seen.len() >= self.cap {
            return SNI_OVERFLOW.to_owned();
        }
        seen.insert(sni.to_owned());
        sni.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_labels_overflow_after_the_cap_but_keep_known_names() {
        let cap = SniLabelCap::new(2);
        assert_eq!(cap.label("a.example"), "a.example");
        assert_eq!(cap.label("b.example"), "b.example");
        assert_eq!(cap.label("c.example"), SNI_OVERFLOW);
        assert_eq!(cap.label("a.example"), "a.example");
    }

    #[test]
    fn exposition_uses_istio_names_and_labels() {
        let metrics = Metrics::for_cluster("cluster1");
        let counters = metrics.connection_opened(&TcpLabels {
            reporter: REPORTER_SOURCE,
            source_cluster: metrics.source_cluster().to_owned(),
            destination_service: "reviews.default.svc.cluster.local".into(),
            destination_cluster: "cluster2".into(),
            upstream_cluster: "outbound|9080||reviews.default.svc.cluster.local".into(),
            request_protocol: "tcp",
            connection_security_policy: SECURITY_MUTUAL_TLS,
            listener: "0.0.0.0_15443".into(),
        });
        counters.received_bytes.inc_by(7);
        metrics.rejected("0.0.0.0_15443", "unknown_sni", Some("evil.example"));
        metrics.config_applied("v1");
        metrics.config_applied("v2");
        let text = metrics.encode();
        assert!(text.contains("istio_tcp_connections_opened_total{reporter=\"source\",source_cluster=\"cluster1\",destination_service=\"reviews.default.svc.cluster.local\",destination_cluster=\"cluster2\",upstream_cluster=\"outbound|9080||reviews.default.svc.cluster.local\",request_protocol=\"tcp\",connection_security_policy=\"mutual_tls\",listener=\"0.0.0.0_15443\"} 1"), "{text}");
        assert!(text.contains("istio_tcp_received_bytes_total{"), "{text}");
        assert!(text.contains("} 7\n"), "{text}");
        assert!(
            text.contains("isthmus_rejected_connections_total{source_cluster=\"cluster1\",listener=\"0.0.0.0_15443\",reason=\"unknown_sni\",sni=\"evil.example\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("isthmus_config_version_info{version=\"v2\"} 1"),
            "{text}"
        );
        assert!(!text.contains("version=\"v1\""), "{text}");
        assert!(
            text.contains("isthmus_config_applies_total{result=\"ok\"} 2"),
            "{text}"
        );
    }
    /// The Grafana dashboard in deploy/ queries only series and labels this registry exports
    /// (Prometheus adds `pod` at scrape time; `le` is the histogram bucket label), so renaming a
    /// metric or a label cannot silently blank a panel.
    #[test]
    fn dashboard_queries_only_exported_metrics_and_labels() {
        let dashboard = include_str!("../../deploy/dashboards/eastwest.json");
        let metrics = Metrics::for_cluster("cluster1");
        let tcp = TcpLabels {
            reporter: REPORTER_SOURCE,
            source_cluster: metrics.source_cluster().to_owned(),
            destination_service: "reviews.default.svc.cluster.local".into(),
            destination_cluster: "cluster2".into(),
            upstream_cluster: "outbound|9080||reviews.default.svc.cluster.local".into(),
            request_protocol: "tcp",
            connection_security_policy: SECURITY_MUTUAL_TLS,
            listener: "0.0.0.0_15443".into(),
        };
        let counters = metrics.connection_opened(&tcp);
        counters.sent_bytes.inc_by(1);
        counters.received_bytes.inc_by(1);
        counters.closed.inc();
        metrics.rejected("0.0.0.0_15443", "unknown_sni", Some("evil.example"));
        metrics.config_applied("v1");
        metrics.endpoint_ejected("outbound|9080||reviews.default.svc.cluster.local");
        metrics.set_rejected_servers([("0.0.0.0_443", "bad-server")].into_iter());
        let request = RequestLabels {
            reporter: REPORTER_SOURCE,
            source_cluster: metrics.source_cluster().to_owned(),
            destination_service: "reviews.default.svc.cluster.local".into(),
            destination_cluster: "cluster2".into(),
            upstream_cluster: "outbound|9080||reviews.default.svc.cluster.local".into(),
            request_protocol: "http",
            response_code: 200,
            response_flags: "-",
            connection_security_policy: SECURITY_MUTUAL_TLS,
            listener: "0.0.0.0_443".into(),
        };
        metrics.request_served(&request, 3.0);
        let exposition = metrics.encode();

        let metric_names = regex::Regex::new(r"\b(?:istio|isthmus)_[a-z_]+").expect("valid regex");
        let queried: Vec<&str> = metric_names
            .find_iter(dashboard)
            .map(|found| found.as_str())
            .collect();
        assert!(queried.len() >= 10, "the dashboard queries {queried:?}");
        for name in &queried {
            assert!(
                exposition.contains(&format!("\n{name}{{")),
                "dashboard queries {name}, which the gateway does not export:\n{exposition}"
            );
        }
        // Istio's meaning: a cluster id, never the Envoy-style cluster name.
        assert!(
            exposition.contains("destination_cluster=\"cluster2\",upstream_cluster=\"outbound|"),
            "{exposition}"
        );
        assert!(
            dashboard.contains("destination_cluster)"),
            "the dashboard splits connections by destination cluster"
        );
        let grouping = regex::Regex::new(r"by \(([a-z_, ]+)\)").expect("valid regex");
        for group in grouping.captures_iter(dashboard) {
            for label in group[1].split(',').map(str::trim) {
                if label == "pod" || label == "le" {
                    continue;
                }
                assert!(
                    exposition.contains(&format!("{label}=\"")),
                    "dashboard groups by {label}, which no exported series carries"
                );
            }
        }
    }
}
