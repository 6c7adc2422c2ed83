//! Copying bytes both ways between the client and the upstream, with half-close.
//!
//! Each direction runs until its reader reaches EOF, then shuts down the write side of the
//! other socket (sending FIN) and stops; the other direction goes on. A client that shuts
//! down its write side therefore still receives everything the upstream sends back. An error
//! in either direction ends both, as a reset must.

use std::io;

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// 16 KiB: one TLS record, so a record is usually moved in one read and one write.
const COPY_BUFFER: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transferred {
    /// Client to upstream.
    pub received: u64,
    /// Upstream to client.
    pub sent: u64,
}

/// Copies until both directions are done. Counters are updated as bytes move, so a long
/// connection shows up in metrics before it ends.
pub async fn copy_both_ways<CR, CW, UR, UW>(
    (mut client_read, mut client_write): (CR, CW),
    (mut upstream_read, mut upstream_write): (UR, UW),
    received: &Counter,
    sent: &Counter,
) -> io::Result<Transferred>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    UR: AsyncRead + Unpin,
    UW: AsyncWrite + Unpin,
{
    let (received, sent) = tokio::try_join!(
        pump(&mut client_read, &mut upstream_write, received),
        pump(&mut upstream_read, &mut client_write, sent),
    )?;
    Ok(Transferred { received, sent })
}

async fn pump<R, W>(reader: &mut R, writer: &mut W, counter: &Counter) -> io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; COPY_BUFFER];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buffer).await?;
        if n == 0 {
            writer.shutdown().await?;
            return Ok(total);
        }
        writer.write_all(&buffer[..n]).await?;
        total += n as u64;
        counter.inc_by(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn half_close_still_delivers_the_reply() {
        let (client, client_proxy_side) = tokio::io::duplex(1024);
        let (upstream_proxy_side, upstream) = tokio::io::duplex(1024);
        let received = Counter::default();
        let sent = Counter::default();
        let proxy = tokio::spawn({
            let (received, sent) = (received.clone(), sent.clone());
            async move {
                copy_both_ways(
                    tokio::io::split(client_proxy_side),
                    tokio::io::split(upstream_proxy_side),
                    &received,
                    &sent,
                )
                .await
            }
        });
        let echo = tokio::spawn(async move {
            let (mut read, mut write) = tokio::io::split(upstream);
            let mut request = Vec::new();
            read.read_to_end(&mut request).await.unwrap();
            write.write_all(b"reply:").await.unwrap();
            write.write_all(&request).await.unwrap();
            write.shutdown().await.unwrap();
        });
        let (mut read, mut write) = tokio::io::split(client);
        write.write_all(b"hello").await.unwrap();
        write.shutdown().await.unwrap();
        let mut reply = Vec::new();
        read.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"reply:hello");
        echo.await.unwrap();
        let transferred = proxy.await.unwrap().unwrap();
        assert_eq!(
            transferred,
            Transferred {
                received: 5,
                sent: 11
            }
        );
        assert_eq!(received.get(), 5);
        assert_eq!(sent.get(), 11);
    }
}
