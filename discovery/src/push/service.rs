//! The `MeshDiscovery` gRPC service: reads the Hello, then hands the stream to its own task.

use std::sync::Arc;
use std::time::Duration;

use multicluster::proto::{GatewayMessage, gateway_message::Kind};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::info;

use super::ConfigSource;
use super::debounce::Debounce;
use super::generated::mesh_discovery_server::MeshDiscovery;
use super::identity;
use super::metrics::PushMetrics;
use super::session::Session;
use super::wire::SharedPush;

/// A connection that never says Hello must not hold a handler forever.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// One push in the channel at a time: the session computes the next config only once the
/// gateway has taken the previous one (latest wins).
const OUTBOUND_CAPACITY: usize = 1;

pub(crate) struct PushService {
    pub(crate) source: Arc<dyn ConfigSource>,
    pub(crate) metrics: Arc<PushMetrics>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) debounce: Debounce,
}

#[tonic::async_trait]
impl MeshDiscovery for PushService {
    type StreamConfigStream = ReceiverStream<Result<SharedPush, Status>>;

    async fn stream_config(
        &self,
        request: Request<Streaming<GatewayMessage>>,
    ) -> Result<Response<Self::StreamConfigStream>, Status> {
        let peer = request.remote_addr();
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "no hello within {HELLO_TIMEOUT:?}; a gateway must name itself first"
                ))
            })??;
        let identity = match first {
            Some(GatewayMessage {
                kind: Some(Kind::Hello(identity)),
            }) => identity,
            Some(_) => {
                return Err(Status::invalid_argument(
                    "the first message on a stream must be a hello naming the gateway",
                ));
            }
            None => {
                return Err(Status::cancelled(
                    "gateway closed the stream before saying hello",
                ));
            }
        };
        identity::check(&identity).map_err(|error| Status::invalid_argument(error.to_string()))?;

        info!(
            gateway = %identity.name,
            namespace = %identity.namespace,
            cluster = %identity.cluster,
            network = %identity.network,
            peer = ?peer,
            "gateway connected"
        );
        let (outbound, receiver) = mpsc::channel(OUTBOUND_CAPACITY);
        let session = Session {
            connection: self.metrics.gateways().connect(&identity),
            identity,
            source: Arc::clone(&self.source),
            metrics: Arc::clone(&self.metrics),
            inbound,
            outbound,
            shutdown: self.shutdown.clone(),
            debounce: self.debounce.clone(),
        };
        tokio::spawn(session.run());
        Ok(Response::new(ReceiverStream::new(receiver)))
    }
}
