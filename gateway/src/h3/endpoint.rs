//! The UDP endpoints beside HTTPS ports, changed by diff on every apply like their TCP
//! twins: [`QuicListeners::prepare`] binds what the new configuration adds (a failed bind
//! drops that twin, and with it the port's `alt-svc`, rather than the push), then
//! [`QuicListeners::commit`] starts them, hands running ones the new TLS, and drains the
//! ones the configuration no longer has.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::H3Error;
use super::connection::QuicConnection;
use crate::config::{ListenerKey, RuntimeConfig};
use crate::listener::{AcceptContext, BoundListener};

/// Beyond this many connections, clients whose address is not validated yet must echo a
/// stateless Retry token first: a flood of spoofed Initials then costs one packet each.
const RETRY_ABOVE_CONNECTIONS: usize = 256;
/// Beyond this many connections per port, new ones are refused outright.
const MAX_CONNECTIONS: usize = 10_000;
/// How long shutting an endpoint down waits for the peers to acknowledge the close.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

struct RunningEndpoint {
    name: String,
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    drain: CancellationToken,
    force_close: CancellationToken,
    /// The accept loop, every connection and every request.
    tasks: TaskTracker,
}

/// Endpoints bound for a configuration that is not applied yet; dropping them closes them.
pub struct PreparedQuic {
    fresh: Vec<(ListenerKey, String, quinn::Endpoint, SocketAddr)>,
}

#[derive(Default)]
pub struct QuicListeners {
    running: BTreeMap<ListenerKey, RunningEndpoint>,
}

impl QuicListeners {
    /// Binds UDP on the address and port each new twin's TCP listener got (`tcp_addresses`),
    /// so HTTP/3 shares the port number. Twins that cannot bind are removed from `runtime`.
    pub fn prepare(
        &self,
        runtime: &mut RuntimeConfig,
        tcp_addresses: &HashMap<ListenerKey, SocketAddr>,
        data_plane: &Handle,
    ) -> PreparedQuic {
        let mut fresh = Vec::new();
        let mut failed = Vec::new();
        // quinn registers its socket with the reactor of the current runtime.
        let _entered = data_plane.enter();
        for (key, twin) in &runtime.http3 {
            let name = runtime
                .listener(key)
                .map_or_else(|| key.to_string(), |l| l.name.clone());
            if let Some(running) = self.running.get(key) {
                running
                    .endpoint
                    .set_server_config(Some(twin.server_config.clone()));
                continue;
            }
            let Some(address) = tcp_addresses.get(key).copied() else {
                failed.push(*key);
                continue;
            };
            match bind(address, twin.server_config.clone()) {
                Ok(endpoint) => fresh.push((*key, name, endpoint, address)),
                Err(source) => {
                    let error = H3Error::Bind {
                        listener: name,
                        address,
                        source,
                    };
                    tracing::warn!(%error, "HTTP/3 twin not started; the port serves HTTP/1 and HTTP/2 only and advertises no alt-svc");
                    failed.push(*key);
                }
            }
        }
        for key in failed {
            runtime.http3.remove(&key);
        }
        PreparedQuic { fresh }
    }

    pub fn commit(
        &mut self,
        prepared: PreparedQuic,
        runtime: &RuntimeConfig,
        context: &AcceptContext,
        drain_timeout: Duration,
    ) {
        let removed: Vec<ListenerKey> = self
            .running
            .keys()
            .filter(|key| !runtime.http3.contains_key(key))
            .copied()
            .collect();
        for key in removed {
            if let Some(running) = self.running.remove(&key) {
                tracing::info!(listener = %running.name, address = %running.local_addr, "HTTP/3 listener removed; draining its connections");
                context.data_plane.spawn(drain(running, drain_timeout));
            }
        }
        for (key, name, endpoint, local_addr) in prepared.fresh {
            let running = RunningEndpoint {
                name: name.clone(),
                endpoint: endpoint.clone(),
                local_addr,
                drain: CancellationToken::new(),
                force_close: CancellationToken::new(),
                tasks: TaskTracker::new(),
            };
            let accept = AcceptLoop {
                endpoint,
                key,
                name: name.clone(),
                context: context.clone(),
                drain: running.drain.clone(),
                force_close: running.force_close.clone(),
                tasks: running.tasks.clone(),
            };
            running.tasks.spawn_on(accept.run(), &context.data_plane);
            tracing::info!(listener = %name, address = %local_addr, transport = "udp", "HTTP/3 listener started");
            self.running.insert(key, running);
        }
    }

    pub fn bound(&self) -> Vec<BoundListener> {
        self.running
            .iter()
            .map(|(key, running)| BoundListener {
                key: *key,
                name: running.name.clone(),
                local_addr: running.local_addr,
            })
            .collect()
    }

    /// Sends GOAWAY on every connection and waits for them, at most `drain_timeout`.
    pub fn shutdown(&mut self, drain_timeout: Duration) -> impl Future<Output = ()> + use<> {
        let endpoints: Vec<RunningEndpoint> =
            std::mem::take(&mut self.running).into_values().collect();
        async move {
            futures::future::join_all(endpoints.into_iter().map(|e| drain(e, drain_timeout))).await;
        }
    }
}

fn bind(address: SocketAddr, config: quinn::ServerConfig) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(address)?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

async fn drain(running: RunningEndpoint, timeout: Duration) {
    // No new connections; the open ones get GOAWAY and finish what they accepted.
    running.endpoint.set_server_config(None);
    running.drain.cancel();
    running.tasks.close();
    if tokio::time::timeout(timeout, running.tasks.wait())
        .await
        .is_err()
    {
        tracing::info!(listener = %running.name, open = running.tasks.len(), transport = "udp", "drain timeout reached; closing the remaining HTTP/3 connections");
        running.force_close.cancel();
        running.tasks.wait().await;
    }
    running
        .endpoint
        .close(quinn::VarInt::from_u32(0x100), b"listener removed");
    let _ = tokio::time::timeout(CLOSE_WAIT, running.endpoint.wait_idle()).await;
    tracing::debug!(listener = %running.name, transport = "udp", "HTTP/3 listener drained");
}

struct AcceptLoop {
    endpoint: quinn::Endpoint,
    key: ListenerKey,
    name: String,
    context: AcceptContext,
    drain: CancellationToken,
    force_close: CancellationToken,
    tasks: TaskTracker,
}

impl AcceptLoop {
    async fn run(self) {
        loop {
            let incoming = tokio::select! {
                () = self.drain.cancelled() => break,
                incoming = self.endpoint.accept() => incoming,
            };
            let Some(incoming) = incoming else { break };
            let open = self.endpoint.open_connections();
            if open >= MAX_CONNECTIONS {
                tracing::debug!(listener = %self.name, open, "HTTP/3 connection refused: too many open");
                incoming.refuse();
                continue;
            }
            if open >= RETRY_ABOVE_CONNECTIONS
                && !incoming.remote_address_validated()
                && incoming.may_retry()
            {
                if let Err(error) = incoming.retry() {
                    tracing::debug!(listener = %self.name, %error, "QUIC retry failed");
                }
                continue;
            }
            let peer = incoming.remote_address();
            let connecting = match incoming.accept() {
                Ok(connecting) => connecting,
                Err(error) => {
                    tracing::debug!(listener = %self.name, %peer, %error, "QUIC connection not accepted");
                    continue;
                }
            };
            let connection = QuicConnection {
                proxy: Arc::clone(&self.context.proxy),
                // Taken once: the connection finishes on this configuration.
                config: self.context.configs.load(),
                listener: self.key,
                connecting,
                peer,
                drain: self.drain.clone(),
                force_close: self.force_close.clone(),
                requests: self.tasks.clone(),
            };
            self.tasks.spawn(connection.serve());
        }
    }
}
