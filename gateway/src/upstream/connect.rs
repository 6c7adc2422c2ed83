//! Opening the upstream connection: pick, connect under a deadline, and on failure try
//! another endpoint.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpStream;

use super::{ActiveConnection, EndpointFilter, Upstreams};
use crate::config::ClusterConfig;

/// Attempts per downstream connection, each on a different endpoint. More would hold a
/// client for several connect timeouts while the cluster is clearly in trouble.
pub const MAX_CONNECT_ATTEMPTS: usize = 3;

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error(
        "no healthy endpoint for {cluster}: every endpoint is unhealthy, draining or on another network; is the service selected and are its pods ready?"
    )]
    NoHealthyEndpoint { cluster: String },
    #[error(
        "could not connect to {cluster} after {attempts} attempt(s); last: {address}: {source}"
    )]
    Failed {
        cluster: String,
        attempts: usize,
        address: SocketAddr,
        source: io::Error,
    },
}

#[derive(Debug)]
pub struct Connected {
    pub stream: TcpStream,
    pub address: SocketAddr,
    /// The endpoint's Istio cluster id (empty if unknown).
    pub cluster_id: std::sync::Arc<str>,
    /// Keeps the endpoint's active-connection count up while the connection lives.
    pub active: ActiveConnection,
}

pub async fn connect(
    upstreams: &Upstreams,
    cluster: &ClusterConfig,
    filter: &EndpointFilter<'_>,
    default_timeout: Duration,
) -> Result<Connected, ConnectError> {
    let timeout = cluster.connect_timeout.unwrap_or(default_timeout);
    let mut tried: Vec<SocketAddr> = Vec::with_capacity(MAX_CONNECT_ATTEMPTS);
    let mut last_error: Option<(SocketAddr, io::Error)> = None;
    while tried.len() < MAX_CONNECT_ATTEMPTS {
        let Some(picked) = upstreams.pick(cluster, filter, &tried) else {
            break;
        };
        tried.push(picked.address);
        let attempt = tokio::time::timeout(timeout, TcpStream::connect(picked.address)).await;
        let error = match attempt {
            Ok(Ok(stream)) => {
                picked.health.record_success();
                // Latency matters more than packet count for proxied protocols; a failure
                // here only costs throughput, so it is not worth dropping the connection.
                let _ = stream.set_nodelay(true);
                return Ok(Connected {
                    stream,
                    address: picked.address,
                    cluster_id: picked.cluster_id,
                    active: picked.active,
                });
            }
            Ok(Err(error)) => error,
            Err(_) => io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {} ms", timeout.as_millis()),
            ),
        };
        tracing::debug!(cluster = %cluster.name, endpoint = %picked.address, %error, "upstream connect failed");
        upstreams.record_failure(cluster, picked.address);
        last_error = Some((picked.address, error));
    }
    match last_error {
        None => Err(ConnectError::NoHealthyEndpoint {
            cluster: cluster.name.clone(),
        }),
        Some((address, source)) => Err(ConnectError::Failed {
            cluster: cluster.name.clone(),
            attempts: tried.len(),
            address,
            source,
        }),
    }
}
