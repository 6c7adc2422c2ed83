//! Bound ports and their accept loops, changed by diff on every apply.
//!
//! Applying a configuration is two steps so it can be refused whole: [`ListenerSet::prepare`]
//! binds every listener the new configuration adds (and closes them all again if any bind
//! fails), then [`ListenerSet::commit`] starts them and drains the ones it removes. Listeners
//! present before and after keep their socket; the next connection they accept simply sees
//! the new configuration.

mod accept;
mod placement;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ConfigCell, ListenerKey, RuntimeConfig};
use crate::proxy::Proxy;

pub use placement::Placement;

/// How long an apply waits for a removed listener's accept loop to close its socket.
const SOCKET_CLOSE_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Error)]
pub enum ListenerError {
    #[error(
        "listener {listener}: cannot bind {address}: {source}; is another process (or another listener) using this port?"
    )]
    Bind {
        listener: String,
        address: SocketAddr,
        source: io::Error,
    },
}

/// A listener that is accepting connections.
struct RunningListener {
    name: String,
    local_addr: SocketAddr,
    stop_accepting: CancellationToken,
    force_close: CancellationToken,
    /// The accept loop and every connection it started.
    tasks: TaskTracker,
    /// Disconnects when the accept loop has closed the socket.
    socket_closed: std::sync::mpsc::Receiver<()>,
}

/// Sockets bound for a configuration that is not applied yet; dropping it closes them.
pub struct Prepared {
    fresh: Vec<(ListenerKey, String, TcpListener)>,
}

impl Prepared {
    /// Where the freshly bound listeners listen, so their UDP twins take the same port.
    pub fn local_addrs(&self) -> Vec<(ListenerKey, SocketAddr)> {
        self.fresh
            .iter()
            .filter_map(|(key, _, socket)| socket.local_addr().ok().map(|a| (*key, a)))
            .collect()
    }
}

/// What the data plane runs connections with.
#[derive(Clone)]
pub struct AcceptContext {
    pub proxy: Arc<Proxy>,
    pub configs: Arc<ConfigCell>,
    pub data_plane: Handle,
}

/// One bound listener, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundListener {
    pub key: ListenerKey,
    pub name: String,
    pub local_addr: SocketAddr,
}

#[derive(Default)]
pub struct ListenerSet {
    running: BTreeMap<ListenerKey, RunningListener>,
}

impl ListenerSet {
    /// Binds every listener of `config` that is not running yet. All or nothing: on any
    /// failure the sockets bound so far are closed and every failure is returned.
    pub fn prepare(
        &self,
        config: &RuntimeConfig,
        placement: &Placement,
        data_plane: &Handle,
    ) -> Result<Prepared, Vec<ListenerError>> {
        let mut fresh = Vec::new();
        let mut errors = Vec::new();
        // Registering sockets with a reactor needs that runtime's context.
        let _entered = data_plane.enter();
        for (key, routes) in &config.listeners {
            if self.running.contains_key(key) {
                continue;
            }
            let address = placement.socket_address(key);
            match bind(address) {
                Ok(listener) => fresh.push((*key, routes.name.clone(), listener)),
                Err(source) => errors.push(ListenerError::Bind {
                    listener: routes.name.clone(),
                    address,
                    source,
                }),
            }
        }
        if errors.is_empty() {
            Ok(Prepared { fresh })
        } else {
            Err(errors)
        }
    }

    /// Starts the prepared listeners and drains those `config` no longer has. Draining stops
    /// accepting at once (the port is free again) and gives open connections `drain_timeout`
    /// to finish before they are closed.
    pub fn commit(
        &mut self,
        prepared: Prepared,
        config: &RuntimeConfig,
        context: &AcceptContext,
        drain_timeout: Duration,
    ) {
        let removed: Vec<ListenerKey> = self
            .running
            .keys()
            .filter(|key| !config.listeners.contains_key(key))
            .copied()
            .collect();
        for key in removed {
            if let Some(listener) = self.running.remove(&key) {
                tracing::info!(listener = %listener.name, address = %listener.local_addr, "listener removed; draining its connections");
                // Wait (briefly: the loop only has to notice) until the port is free, so a
                // later apply that brings the listener back can bind it again.
                listener.stop_accepting.cancel();
                let _ = listener.socket_closed.recv_timeout(SOCKET_CLOSE_WAIT);
                context.data_plane.spawn(drain(listener, drain_timeout));
            }
        }
        for (key, name, socket) in prepared.fresh {
            let local_addr = match socket.local_addr() {
                Ok(address) => address,
                Err(error) => {
                    tracing::warn!(listener = %name, %error, "bound listener has no local address; not starting it");
                    continue;
                }
            };
            let (socket_closed_tx, socket_closed) = std::sync::mpsc::channel();
            let listener = RunningListener {
                name: name.clone(),
                local_addr,
                stop_accepting: CancellationToken::new(),
                force_close: CancellationToken::new(),
                tasks: TaskTracker::new(),
                socket_closed,
            };
            let accept = accept::AcceptLoop {
                socket,
                key,
                name: name.clone(),
                context: context.clone(),
                stop_accepting: listener.stop_accepting.clone(),
                force_close: listener.force_close.clone(),
                connections: listener.tasks.clone(),
                socket_closed: socket_closed_tx,
            };
            listener.tasks.spawn_on(accept.run(), &context.data_plane);
            tracing::info!(listener = %name, address = %local_addr, "listener started");
            self.running.insert(key, listener);
        }
    }

    pub fn bound(&self) -> Vec<BoundListener> {
        self.running
            .iter()
            .map(|(key, listener)| BoundListener {
                key: *key,
                name: listener.name.clone(),
                local_addr: listener.local_addr,
            })
            .collect()
    }

    /// Stops every listener and waits for their connections, at most `drain_timeout` before
    /// closing the rest.
    pub fn shutdown(&mut self, drain_timeout: Duration) -> impl Future<Output = ()> + use<> {
        let listeners: Vec<RunningListener> =
            std::mem::take(&mut self.running).into_values().collect();
        async move {
            futures::future::join_all(
                listeners
                    .into_iter()
                    .map(|listener| drain(listener, drain_timeout)),
            )
            .await;
        }
    }
}

fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    // std sets SO_REUSEADDR on Unix, so a port left in TIME_WAIT by a previous listener can
    // be bound again at once.
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

async fn drain(listener: RunningListener, timeout: Duration) {
    listener.stop_accepting.cancel();
    listener.tasks.close();
    if tokio::time::timeout(timeout, listener.tasks.wait())
        .await
        .is_err()
    {
        tracing::info!(
            listener = %listener.name,
            open = listener.tasks.len(),
            "drain timeout reached; closing the remaining connections"
        );
        listener.force_close.cancel();
        listener.tasks.wait().await;
    }
    tracing::debug!(listener = %listener.name, "listener drained");
}
