//! The workload proxy (`isthmus sidecar`): the gateway runtime with a sidecar-shaped
//! configuration.
//!
//! Discovery pushes a sidecar no listeners and one cluster per (service, port[, subset]) with
//! split-horizon endpoints. The [`Gateway`] inside holds that configuration,
//! the balancer state, admin and metrics; this module adds the two listeners a sidecar has:
//!
//! - **outbound** ([`outbound`]): an HTTP proxy port (127.0.0.1:15001) the app points at;
//!   every call leaves as mesh mTLS with Istio's SNI, to a local workload or to a remote
//!   network's east-west gateway;
//! - **inbound** ([`inbound`]): the advertised endpoint addresses, where mesh mTLS is
//!   terminated and plaintext handed to the app, with the caller's identity in
//!   `x-forwarded-client-cert` for HTTP.

pub mod dial;
pub mod identity;
pub mod inbound;
pub mod options;
pub mod outbound;
pub mod target;
mod tunnel;
pub mod xfcc;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use multicluster::proto::GatewayConfig;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::runtime::{Gateway, GatewayHandle, StartError};

pub use identity::{MeshTls, MeshTlsError};
pub use options::{AppProtocol, InboundSpec, InboundSpecError, SidecarOptions};
pub use target::{MeshTarget, SUBSET_HEADER};

#[derive(Debug, Error)]
pub enum SidecarError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(
        "cannot listen on {what} {address}: {source}; is another proxy running, or is the address not on this host?"
    )]
    Bind {
        what: &'static str,
        address: SocketAddr,
        source: io::Error,
    },
}

pub struct Sidecar;

/// Owns a running sidecar; [`SidecarHandle::shutdown`] stops it.
pub struct SidecarHandle {
    gateway: GatewayHandle,
    outbound: SocketAddr,
    inbound: Vec<SocketAddr>,
    /// Stops the accept loops when the handle is shut down or dropped.
    stop_accepting: DropGuard,
}

impl Sidecar {
    /// Binds the outbound and inbound listeners and starts serving. Until the first
    /// [`SidecarHandle::apply`] (or push) every outbound call gets 404: no service is known.
    pub async fn start(
        options: SidecarOptions,
        tls: Arc<MeshTls>,
    ) -> Result<SidecarHandle, SidecarError> {
        let gateway = Gateway::start(options.gateway.clone()).await?;
        let bind = |what, address| async move {
            TcpListener::bind(address)
                .await
                .map_err(|source| SidecarError::Bind {
                    what,
                    address,
                    source,
                })
        };
        let outbound_listener = bind("the outbound proxy port", options.outbound).await?;
        let mut inbound_listeners = Vec::with_capacity(options.inbound.len());
        for spec in &options.inbound {
            inbound_listeners.push((spec.clone(), bind("inbound", spec.listen).await?));
        }
        let shutdown = CancellationToken::new();
        let outbound_address = local_address(&outbound_listener, options.outbound);
        let outbound = Arc::new(outbound::Outbound {
            dialer: dial::Dialer {
                gateway: gateway.gateway(),
                tls: Arc::clone(&tls),
                connect_timeout: options.gateway.connect_timeout,
                handshake_timeout: options.handshake_timeout,
            },
            domain_suffix: options.domain_suffix.clone(),
        });
        tokio::spawn(outbound::serve(
            outbound_listener,
            outbound,
            shutdown.clone(),
        ));
        let mut inbound_addresses = Vec::with_capacity(inbound_listeners.len());
        for (spec, listener) in inbound_listeners {
            let address = local_address(&listener, spec.listen);
            inbound_addresses.push(address);
            let inbound = Arc::new(inbound::Inbound {
                name: format!("inbound|{}||", address.port()),
                spec,
                tls: Arc::clone(&tls),
                metrics: gateway.gateway().metrics().clone(),
                handshake_timeout: options.handshake_timeout,
            });
            tokio::spawn(inbound::serve(listener, inbound, shutdown.clone()));
        }
        tracing::info!(
            outbound = %outbound_address,
            inbound = ?inbound_addresses,
            identity = %tls.own_identity(),
            "sidecar started"
        );
        Ok(SidecarHandle {
            gateway,
            outbound: outbound_address,
            inbound: inbound_addresses,
            stop_accepting: shutdown.drop_guard(),
        })
    }
}

/// Port 0 (tests) becomes the port the kernel chose.
fn local_address(listener: &TcpListener, configured: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(configured)
}

impl SidecarHandle {
    /// The gateway runtime inside: the discovery client applies pushes to it.
    pub fn gateway(&self) -> Gateway {
        self.gateway.gateway()
    }

    pub fn apply(&self, config: GatewayConfig) -> Result<(), Vec<String>> {
        self.gateway.apply(config)
    }

    /// Where the outbound proxy port really listens.
    pub fn outbound_address(&self) -> SocketAddr {
        self.outbound
    }

    /// Where each inbound listens, in the order of [`SidecarOptions::inbound`].
    pub fn inbound_addresses(&self) -> &[SocketAddr] {
        &self.inbound
    }

    pub fn admin_addresses(&self) -> &crate::admin::AdminAddresses {
        self.gateway.admin_addresses()
    }

    /// Stops accepting; open tunnels end with the process.
    pub async fn shutdown(self) {
        let SidecarHandle {
            gateway,
            stop_accepting,
            ..
        } = self;
        drop(stop_accepting);
        gateway.shutdown().await;
    }
}
