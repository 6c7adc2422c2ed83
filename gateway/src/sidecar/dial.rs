//! The upstream leg: choose an endpoint of the target's cluster (weighted, as the gateway
//! does), connect, and open mesh mTLS with the Istio SNI.
//!
//! A direct endpoint is the workload's own sidecar; an endpoint with `network_gateway` is a
//! remote network's east-west gateway, dialled exactly the same way: it routes by the SNI
//! and passes the handshake through, so the far sidecar still sees this sidecar's identity.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use certs::Identity;
use multicluster::proto;
use rustls_pki_types::ServerName;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::identity::{MeshTls, MeshTlsError};
use super::target::MeshTarget;
use crate::config::{ClusterConfig, RuntimeConfig};
use crate::upstream::{self, ActiveConnection, ConnectError, EndpointFilter};

#[derive(Debug, Error)]
pub enum DialError {
    #[error(
        "no service {host} port {port}{subset} in the mesh configuration (cluster {cluster}); check the name, the port, and that discovery knows the service"
    )]
    UnknownCluster {
        host: String,
        port: u16,
        subset: String,
        cluster: String,
    },
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Tls(#[from] MeshTlsError),
    #[error("SNI {sni:?} is not a valid TLS server name")]
    ServerName { sni: String },
    #[error(
        "mTLS handshake with {address} for {sni} failed (is it a mesh sidecar or east-west gateway under the same root?): {source}"
    )]
    Handshake {
        address: SocketAddr,
        sni: String,
        source: std::io::Error,
    },
    #[error("mTLS handshake with {address} for {sni} timed out after {} ms", timeout.as_millis())]
    HandshakeTimeout {
        address: SocketAddr,
        sni: String,
        timeout: Duration,
    },
}

impl DialError {
    /// The status the proxy answers with: the caller named nothing the mesh has (404), or the
    /// mesh could not carry the call (502/503).
    pub fn status(&self) -> http::StatusCode {
        match self {
            DialError::UnknownCluster { .. } => http::StatusCode::NOT_FOUND,
            DialError::Connect(ConnectError::NoHealthyEndpoint { .. }) => {
                http::StatusCode::SERVICE_UNAVAILABLE
            }
            _ => http::StatusCode::BAD_GATEWAY,
        }
    }
}

/// An open mesh mTLS connection to one endpoint of a cluster.
pub struct Dialled {
    pub stream: TlsStream<TcpStream>,
    pub address: SocketAddr,
    pub network_gateway: bool,
    pub cluster: String,
    /// The endpoint's Istio cluster id (empty if unknown).
    pub cluster_id: std::sync::Arc<str>,
    /// Keeps the endpoint's active-connection count for least-request balancing.
    pub active: ActiveConnection,
}

/// Everything a dial needs, shared by all connections of the outbound port.
pub struct Dialer {
    /// Holds the applied configuration and the balancer state shared with admin listings.
    pub gateway: crate::Gateway,
    pub tls: Arc<MeshTls>,
    pub connect_timeout: Duration,
    pub handshake_timeout: Duration,
}

impl Dialer {
    /// Checks that the mesh has `target` without opening anything.
    pub fn cluster(
        &self,
        config: &RuntimeConfig,
        target: &MeshTarget,
    ) -> Result<ClusterConfig, DialError> {
        let name = target.cluster_name();
        config
            .cluster(&name)
            .cloned()
            .ok_or_else(|| DialError::UnknownCluster {
                host: target.key.host().to_owned(),
                port: target.key.port(),
                subset: target
                    .key
                    .subset()
                    .map_or_else(String::new, |s| format!(" subset {s}")),
                cluster: name,
            })
    }

    pub async fn dial(
        &self,
        target: &MeshTarget,
        alpn: &'static [u8],
    ) -> Result<Dialled, DialError> {
        let config = self.gateway.config();
        let cluster = self.cluster(&config, target)?;
        // Every endpoint of a sidecar's cluster is one it may dial: discovery already turned
        // other networks into their gateways.
        let connected = upstream::connect(
            self.gateway.upstreams(),
            &cluster,
            &EndpointFilter::default(),
            self.connect_timeout,
        )
        .await?;
        let network_gateway = cluster
            .endpoints
            .iter()
            .any(|e| e.address == connected.address && e.network_gateway);
        let expected = if network_gateway {
            None
        } else {
            expected_identity(
                &config.source,
                &cluster.name,
                connected.address,
                target,
                &self.tls,
            )
        };
        let client = self.tls.client_config(expected.as_ref(), alpn)?;
        let sni = target.sni();
        let server_name = ServerName::try_from(sni.clone())
            .map_err(|_| DialError::ServerName { sni: sni.clone() })?;
        let handshake = TlsConnector::from(client).connect(server_name, connected.stream);
        let stream = match tokio::time::timeout(self.handshake_timeout, handshake).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(DialError::Handshake {
                    address: connected.address,
                    sni,
                    source,
                });
            }
            Err(_) => {
                return Err(DialError::HandshakeTimeout {
                    address: connected.address,
                    sni,
                    timeout: self.handshake_timeout,
                });
            }
        };
        tracing::debug!(
            cluster = %cluster.name,
            endpoint = %connected.address,
            network_gateway,
            expected = ?expected.as_ref().map(Identity::uri),
            "mesh mTLS upstream open"
        );
        Ok(Dialled {
            stream,
            address: connected.address,
            network_gateway,
            cluster: cluster.name,
            cluster_id: connected.cluster_id,
            active: connected.active,
        })
    }
}

/// The identity a direct endpoint must present: its pod's service account in the service's
/// namespace, under this sidecar's trust domain. Unknown service account: any mesh identity.
fn expected_identity(
    source: &proto::GatewayConfig,
    cluster: &str,
    address: SocketAddr,
    target: &MeshTarget,
    tls: &MeshTls,
) -> Option<Identity> {
    let endpoint = source
        .clusters
        .iter()
        .find(|c| c.name == cluster)?
        .endpoints
        .iter()
        .find(|e| e.port == u32::from(address.port()) && e.address.parse() == Ok(address.ip()))?;
    if endpoint.service_account.is_empty() {
        return None;
    }
    let namespace = target.namespace()?;
    let trust_domain = tls.own_identity().trust_domain();
    match Identity::new(trust_domain, namespace, &endpoint.service_account) {
        Ok(identity) => Some(identity),
        Err(error) => {
            tracing::warn!(
                cluster,
                endpoint = %address,
                service_account = %endpoint.service_account,
                %error,
                "endpoint service account is not a valid identity part; accepting any mesh identity"
            );
            None
        }
    }
}
