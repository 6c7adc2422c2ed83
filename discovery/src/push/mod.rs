//! The push side of the discovery ↔ gateway protocol (`isthmus.v1.MeshDiscovery`).
//!
//! Each gateway holds one bidirectional stream: it says `Hello` with its identity, discovery
//! answers with that gateway's full configuration, then pushes a new one whenever the inputs
//! change *and* that gateway's configuration actually differs. The gateway ACKs or NACKs every
//! version, in order.
//!
//! Every stream runs as its own task fed by a `watch` channel (latest generation wins) and writes
//! into a bounded channel of one: a gateway that reads slowly only ever delays itself, and when it
//! catches up it receives the configuration of *now*, not a backlog of stale ones.
//!
//! The rest of discovery plugs in through [`ConfigSource`].

mod debounce;
mod gateways;
mod generated;
mod identity;
mod metrics;
mod server;
mod service;
mod session;
pub(crate) mod wire;

use std::sync::Arc;

use multicluster::proto::{GatewayConfig, GatewayIdentity};
use tokio::sync::watch;

pub use debounce::Debounce;
pub use gateways::{GatewayStatus, GatewayTable, NackRecord};
pub use metrics::{PushKind, PushMetrics};
pub use server::{PushError, PushServer, serve, serve_with_listener};
pub use wire::PreparedConfig;

/// What the push layer needs from the rest of discovery: a change signal and a way to compute
/// one gateway's configuration.
///
/// `prepared_for` runs on tokio's blocking pool, once per connected gateway per debounced change,
/// so it may do real work; it should be deterministic, since an unchanged result is how the push
/// layer knows not to push. A source that serves many gateways the same configuration overrides
/// it to translate and encode once for all of them.
pub trait ConfigSource: Send + Sync + 'static {
    /// Changes whenever inputs change; the value is an opaque generation.
    fn changes(&self) -> watch::Receiver<u64>;
    /// The full configuration for one gateway at the current generation (version left empty;
    /// the push layer assigns versions).
    fn config_for(&self, gateway: &GatewayIdentity) -> GatewayConfig;
    /// [`ConfigSource::config_for`], encoded for sending.
    fn prepared_for(&self, gateway: &GatewayIdentity) -> Arc<PreparedConfig> {
        Arc::new(PreparedConfig::new(self.config_for(gateway)))
    }
}
