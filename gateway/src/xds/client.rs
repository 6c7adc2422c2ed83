//! The reconnecting stream to discovery.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::stream;
use multicluster::proto::{GatewayMessage, gateway_message::Kind};
use tokio::sync::{mpsc, watch};
use tonic::Status;
use tonic::transport::Endpoint;
use tracing::{info, warn};

use super::answer::{Outcome, answer};
use super::backoff::Backoff;
use super::generated::mesh_discovery_client::MeshDiscoveryClient;
use super::status::ClientStatus;
use super::{ClientOptions, ConfigSink};

/// Detects a discovery that vanished without closing the connection (node lost, partition).
/// A whole-mesh east-west config is large (every service port and subset, every local
/// endpoint): tonic's 4 MiB default refuses a mesh of ~100,000 endpoints. Discovery is
/// trusted; the cap only bounds a runaway push.
const MAX_CONFIG_BYTES: usize = 256 * 1024 * 1024;

const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Answers are one per push; a few slots let an answer wait while HTTP/2 flow control catches up.
const ANSWER_CAPACITY: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    #[error(
        "discovery address {uri:?} is not a valid URI: {source}; expected e.g. http://discovery:15012"
    )]
    InvalidUri {
        uri: String,
        source: tonic::transport::Error,
    },
    #[error("TLS settings for discovery at {uri} were refused: {source}")]
    Tls {
        uri: String,
        source: tonic::transport::Error,
    },
    #[error("cannot connect to discovery at {uri}: {source}; is discovery running and reachable?")]
    Connect {
        uri: String,
        source: tonic::transport::Error,
    },
    #[error("discovery at {uri} refused the stream: {status}")]
    Refused { uri: String, status: Status },
    #[error("the stream from discovery at {uri} broke: {status}")]
    Broken { uri: String, status: Status },
    #[error("discovery at {uri} ended the stream (restarting or shutting down?)")]
    Ended { uri: String },
    #[error("discovery at {uri} stopped reading the gateway's answers")]
    AnswersClosed { uri: String },
}

/// A discovery client whose state can be watched while it runs.
#[derive(Debug)]
pub struct Client {
    options: ClientOptions,
    status: watch::Sender<ClientStatus>,
}

impl Client {
    pub fn new(options: ClientOptions) -> Self {
        Client {
            options,
            status: watch::Sender::new(ClientStatus::default()),
        }
    }

    /// The client's state, updated as it connects, applies and refuses.
    pub fn status(&self) -> watch::Receiver<ClientStatus> {
        self.status.subscribe()
    }

    /// Follows discovery until `shutdown` completes. Never gives up and never clears the sink:
    /// while discovery is away the gateway serves the last configuration it applied.
    pub async fn run(self, sink: impl ConfigSink, shutdown: impl Future<Output = ()>) {
        let sink = Arc::new(sink);
        let mut backoff = Backoff::new(self.options.backoff_min, self.options.backoff_max);
        let uri = self.options.discovery.as_str();
        let gateway = self.options.identity.name.as_str();
        tokio::pin!(shutdown);
        loop {
            let mut delivered_config = false;
            let ended = tokio::select! {
                () = &mut shutdown => break,
                ended = self.follow(&sink, &mut delivered_config) => ended,
            };
            self.status.send_modify(|status| {
                status.connected = false;
                status.last_error = Some(ended.to_string());
            });
            if delivered_config {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            warn!(
                discovery = uri,
                gateway,
                error = %ended,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "lost discovery; serving the last applied configuration and reconnecting"
            );
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.status.send_modify(|status| status.connected = false);
        info!(discovery = uri, gateway, "discovery client stopped");
    }

    /// One connection and stream, until it ends. Returns why it ended; sets `delivered_config`
    /// once a configuration arrived, which makes the stream count as a success for backoff.
    async fn follow<S: ConfigSink>(&self, sink: &Arc<S>, delivered_config: &mut bool) -> XdsError {
        let uri = &self.options.discovery;
        self.status
            .send_modify(|status| status.connect_attempts += 1);
        let channel = match self.endpoint() {
            Ok(endpoint) => match endpoint.connect().await {
                Ok(channel) => channel,
                Err(source) => {
                    return XdsError::Connect {
                        uri: uri.clone(),
                        source,
                    };
                }
            },
            Err(error) => return error,
        };

        let (answers, outgoing) = mpsc::channel(ANSWER_CAPACITY);
        let hello = GatewayMessage {
            kind: Some(Kind::Hello(self.options.identity.clone())),
        };
        // The channel is empty and its receiver is alive right here, so this cannot fail.
        let _ = answers.try_send(hello);
        let outgoing = stream::unfold(outgoing, |mut outgoing| async move {
            outgoing.recv().await.map(|message| (message, outgoing))
        });
        let mut pushes = match MeshDiscoveryClient::new(channel)
            .max_decoding_message_size(MAX_CONFIG_BYTES)
            .stream_config(outgoing)
            .await
        {
            Ok(response) => response.into_inner(),
            Err(status) => {
                return XdsError::Refused {
                    uri: uri.clone(),
                    status,
                };
            }
        };
        info!(
            discovery = %uri,
            gateway = %self.options.identity.name,
            "connected to discovery"
        );
        self.status.send_modify(|status| {
            status.connected = true;
            status.last_error = None;
        });

        // A new stream holds nothing yet: discovery starts it with a full configuration.
        let mut held = None;
        loop {
            let push = match pushes.message().await {
                Ok(Some(push)) => push,
                Ok(None) => return XdsError::Ended { uri: uri.clone() },
                Err(status) => {
                    return XdsError::Broken {
                        uri: uri.clone(),
                        status,
                    };
                }
            };
            *delivered_config = true;
            let outcome = answer(push, sink, &mut held).await;
            self.status.send_modify(|status| match &outcome {
                Outcome::Applied { version } => {
                    status.last_applied_version = Some(version.clone());
                }
                Outcome::Refused(refused) => status.last_nack = Some(refused.clone()),
            });
            if answers.send(outcome.to_message()).await.is_err() {
                return XdsError::AnswersClosed { uri: uri.clone() };
            }
        }
    }

    fn endpoint(&self) -> Result<Endpoint, XdsError> {
        let uri = &self.options.discovery;
        let endpoint = Endpoint::from_shared(uri.clone())
            .map_err(|source| XdsError::InvalidUri {
                uri: uri.clone(),
                source,
            })?
            .connect_timeout(self.options.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        match &self.options.tls {
            None => Ok(endpoint),
            Some(tls) => endpoint
                .tls_config(tls.clone())
                .map_err(|source| XdsError::Tls {
                    uri: uri.clone(),
                    source,
                }),
        }
    }
}
