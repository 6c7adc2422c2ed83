//! DestinationRule `connectionPool.http.maxRequestsPerConnection`: an upstream connection
//! is retired after serving that many requests, as Envoy's `max_requests_per_connection`
//! does (used to spread long-lived clients over new endpoints, or to work around backends
//! that leak per connection).
//!
//! The connector tags each connection of such a cluster with a [`RequestCount`]; the pool
//! hands it back on every response. Once the count reaches the limit the connection is
//! poisoned: the pool never lends it again, and it closes when its last response is done.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper_util::client::legacy::connect::CaptureConnection;

/// Requests one upstream connection has served.
#[derive(Debug, Clone, Default)]
pub struct RequestCount(Arc<AtomicUsize>);

/// Counts the request `response` answers on its connection, retiring the connection once it
/// has served `limit`.
pub fn count_request<B>(capture: &CaptureConnection, response: &http::Response<B>, limit: usize) {
    let Some(count) = response.extensions().get::<RequestCount>() else {
        return;
    };
    let served = count.0.fetch_add(1, Ordering::AcqRel) + 1;
    if served < limit {
        return;
    }
    if let Some(connection) = capture.connection_metadata().as_ref() {
        tracing::debug!(
            served,
            limit,
            "upstream connection retired (maxRequestsPerConnection)"
        );
        connection.poison();
    }
}
