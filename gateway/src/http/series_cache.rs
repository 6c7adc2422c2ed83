//! Request metric series resolved per worker thread. Building a label set costs three
//! Strings, and finding it in two families two SipHashes of every label; a gateway sees a
//! handful of distinct label sets, so each thread remembers the series it resolved.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use crate::config::{ClusterConfig, RuntimeConfig};
use crate::metrics::{Metrics, RequestLabels, RequestSeries};

/// Label sets kept per thread before the cache starts over.
const CAPACITY: usize = 64;

/// What a label set is made of, by identity where that is exact.
pub struct SeriesKey<'a> {
    pub config: &'a Arc<RuntimeConfig>,
    /// A cluster of `config`, if the request reached one.
    pub cluster: Option<&'a ClusterConfig>,
    pub listener: &'a str,
    /// The chosen endpoint's cluster id: endpoints of one cluster may be in several.
    pub destination_cluster: &'a str,
    pub response_code: u16,
    pub response_flags: &'static str,
    pub grpc: bool,
    pub mutual: bool,
}

struct Entry {
    metrics: u64,
    /// Holding the allocation keeps its address from being reused: equal pointers mean the
    /// same configuration, and so the same cluster behind an equal cluster pointer.
    config: Weak<RuntimeConfig>,
    cluster: usize,
    listener: String,
    destination_cluster: String,
    response_code: u16,
    response_flags: &'static str,
    grpc: bool,
    mutual: bool,
    series: RequestSeries,
}

impl Entry {
    fn is(&self, metrics: u64, key: &SeriesKey<'_>, cluster: usize) -> bool {
        self.metrics == metrics
            && self.cluster == cluster
            && self.response_code == key.response_code
            && self.response_flags == key.response_flags
            && self.grpc == key.grpc
            && self.mutual == key.mutual
            && std::ptr::eq(self.config.as_ptr(), Arc::as_ptr(key.config))
            && self.listener == key.listener
            && self.destination_cluster == key.destination_cluster
    }
}

thread_local! {
    static CACHE: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Records one request in the series for `key`, from this thread's cache or resolved (and
/// cached) by `labels`.
pub fn record(
    metrics: &Metrics,
    key: &SeriesKey<'_>,
    labels: impl FnOnce() -> RequestLabels,
    duration_ms: f64,
) {
    let instance = metrics.instance();
    let cluster = key.cluster.map_or(0, |c| std::ptr::from_ref(c) as usize);
    CACHE.with_borrow_mut(|cache| {
        if let Some(entry) = cache.iter().find(|e| e.is(instance, key, cluster)) {
            entry.series.record(duration_ms);
            return;
        }
        let series = metrics.request_series(&labels());
        series.record(duration_ms);
        // Entries of configurations that are gone can never match again.
        cache.retain(|e| e.config.strong_count() > 0);
        if cache.len() >= CAPACITY {
            cache.clear();
        }
        cache.push(Entry {
            metrics: instance,
            config: Arc::downgrade(key.config),
            cluster,
            listener: key.listener.to_owned(),
            destination_cluster: key.destination_cluster.to_owned(),
            response_code: key.response_code,
            response_flags: key.response_flags,
            grpc: key.grpc,
            mutual: key.mutual,
            series,
        });
    })
}
