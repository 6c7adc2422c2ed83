//! The accept loop of one listener.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::AcceptContext;
use crate::config::ListenerKey;

/// Accept errors are mostly resource exhaustion (EMFILE): retrying at once would spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

pub async fn accept_loop(
    socket: TcpListener,
    key: ListenerKey,
    name: String,
    context: AcceptContext,
    stop_accepting: CancellationToken,
    force_close: CancellationToken,
    connections: TaskTracker,
) {
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
    // Dropping the socket here frees the port while connections drain.
    drop(socket);
}
