//! The accept loop of one listener.

use std::sync::mpsc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::AcceptContext;
use crate::config::ListenerKey;

/// Accept errors are mostly resource exhaustion (EMFILE): retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

pub struct AcceptLoop {
    pub socket: TcpListener,
    pub key: ListenerKey,
    pub name: String,
    pub context: AcceptContext,
    pub stop_accepting: CancellationToken,
    pub force_close: CancellationToken,
    pub connections: TaskTracker,
    /// Dropped once the socket is closed, to tell a waiting apply the port is free.
    pub socket_closed: mpsc::Sender<()>,
}

impl AcceptLoop {
    pub async fn run(self) {
        let AcceptLoop {
            socket,
            key,
            name,
            context,
            stop_accepting,
            force_close,
            connections,
            socket_closed,
        } = self;
        loop {
            let accepted = tokio::select! {
                () = stop_accepting.cancelled() => break,
                accepted = socket.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    // Taken once: the connection finishes on this configuration.
                    let config = context.configs.load();
                    let proxy = context.proxy.clone();
                    connections.spawn(proxy.handle(stream, peer, key, config, force_close.clone()));
                }
                Err(error) => {
                    tracing::warn!(listener = %name, %error, "accept failed");
                    tokio::select! {
                        () = stop_accepting.cancelled() => break,
                        () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                    }
                }
            }
        }
        // Closing the socket frees the port while the connections drain.
        drop(socket);
        drop(socket_closed);
    }
}
