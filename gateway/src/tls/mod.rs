//! TLS termination: per listener, the server (and certificate) is chosen by SNI before the
//! handshake completes, then the stream is served as HTTP or forwarded as TCP.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::config::{ListenerKey, RuntimeConfig};
use crate::proxy::Proxy;

pub async fn serve_terminated(
    _proxy: Arc<Proxy>,
    _downstream: TcpStream,
    _peer: SocketAddr,
    _listener: ListenerKey,
    _config: Arc<RuntimeConfig>,
    _force_close: CancellationToken,
) {
}
