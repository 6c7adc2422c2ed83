//! The gateway's discovery client: one long-lived stream to discovery
//! (`isthmus.v1.MeshDiscovery/StreamConfig`).
//!
//! The gateway says `Hello` with its identity, then answers every pushed configuration with an
//! ACK (validated and applied) or a NACK (with every problem found, the previous configuration
//! keeps serving). When the stream breaks the gateway keeps serving what it has and reconnects
//! with jittered exponential backoff: losing discovery must never take traffic down.

mod answer;
mod backoff;
mod client;
mod generated;
mod sink;
mod status;

use std::future::Future;
use std::time::Duration;

use multicluster::proto::{GatewayConfig, GatewayIdentity};
use tonic::transport::ClientTlsConfig;

pub use answer::Outcome;
pub use backoff::Backoff;
pub use client::{Client, XdsError};
pub use status::{ClientStatus, RefusedVersion};

/// Where validated configurations go: the gateway's runtime builds and swaps them in.
pub trait ConfigSink: Send + Sync + 'static {
    /// Applies `config` atomically, or refuses it (nothing applied) with one line per problem,
    /// each naming the offending item. Called from a blocking thread, one config at a time.
    fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>>;
}

/// How to reach discovery and who to say we are.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Discovery's gRPC URI, e.g. `http://istiod.istio-system.svc:15012`.
    pub discovery: String,
    pub identity: GatewayIdentity,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub connect_timeout: Duration,
    /// TLS towards discovery (the mTLS port 15012); `None` speaks plaintext HTTP/2.
    pub tls: Option<ClientTlsConfig>,
}

impl ClientOptions {
    pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
    pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    pub fn new(discovery: impl Into<String>, identity: GatewayIdentity) -> Self {
        ClientOptions {
            discovery: discovery.into(),
            identity,
            backoff_min: Self::DEFAULT_BACKOFF_MIN,
            backoff_max: Self::DEFAULT_BACKOFF_MAX,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            tls: None,
        }
    }
}

/// Follows discovery until `shutdown` completes, applying each good configuration to `sink`.
///
/// Use [`Client`] instead to observe the client's [`ClientStatus`] while it runs.
pub async fn run(
    options: ClientOptions,
    sink: impl ConfigSink,
    shutdown: impl Future<Output = ()>,
) {
    Client::new(options).run(sink, shutdown).await;
}
