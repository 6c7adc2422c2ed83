//! A TLS echo server: every byte comes back on the same connection.

use std::net::SocketAddr;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub async fn serve(listen: SocketAddr, dir: &Path) -> anyhow::Result<()> {
    let acceptor = super::tls::acceptor(dir)?;
    let listener = TcpListener::bind(listen).await?;
    eprintln!("l4-bench backend listening on {listen}");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(stream).await else {
                return;
            };
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match tls.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tls.write_all(&buffer[..n]).await.is_err() || tls.flush().await.is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
    }
}
