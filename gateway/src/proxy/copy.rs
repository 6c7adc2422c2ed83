//! Copying bytes both ways between the client and the upstream, with half-close.
//!
//! Each direction runs until its reader reaches EOF, then shuts down the write side of the
//! other socket (sending FIN) and stops; the other direction goes on. A client that shuts
//! down its write side therefore still receives everything the upstream sends back. An error
//! in either direction ends both, as a reset must.
//!
//! Plain TCP on both sides ([`copy_tcp_both_ways`], SNI passthrough and TCP routes) waits for
//! readiness without a buffer and leases one from a [`BufferPool`] only until the socket is
//! drained, so an idle connection holds none. Other streams (TLS, tunnels) go through
//! [`copy_both_ways`], which must own a buffer across its pending read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::buffers::{BufferPool, Lease};

/// 16 KiB: one TLS record, so a record is usually moved in one read and one write.
const STREAM_BUFFER: usize = 16 * 1024;

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
    let mut buffer = vec![0u8; STREAM_BUFFER];
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

/// [`copy_both_ways`] for two TCP sockets, holding a copy buffer only while bytes are
/// waiting to be moved.
///
/// Written as one poll function over two small direction states rather than two `async`
/// pumps: every open passthrough connection keeps this future for its whole life, and the
/// readiness futures an `async` pump parks on (a waiter node each) tripled its size. Polling
/// readiness uses the sockets' own reader and writer waker slots instead, which is possible
/// because each socket is read by one direction and written by the other.
pub async fn copy_tcp_both_ways(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    buffers: &BufferPool,
    received: &Counter,
    sent: &Counter,
) -> io::Result<Transferred> {
    let mut to_upstream = Direction::default();
    let mut to_client = Direction::default();
    std::future::poll_fn(|cx| {
        // An error in either direction ends both, as `try_join!` would.
        let up = to_upstream.poll(cx, client, upstream, buffers, received)?;
        let down = to_client.poll(cx, upstream, client, buffers, sent)?;
        if up.is_ready() && down.is_ready() {
            Poll::Ready(Ok(Transferred {
                received: to_upstream.total,
                sent: to_client.total,
            }))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// One direction of [`copy_tcp_both_ways`].
#[derive(Default)]
struct Direction<'p> {
    state: State<'p>,
    total: u64,
}

#[derive(Default)]
enum State<'p> {
    /// Waiting for the reader to become readable, holding no buffer.
    #[default]
    Idle,
    /// `buffer[start..end]` is still to be written.
    Writing {
        buffer: Lease<'p>,
        start: usize,
        end: usize,
    },
    /// The reader reached EOF; the writer's write side is being shut down.
    ShuttingDown,
    Done,
}

/// What one non-blocking read gave.
enum Filled<'p> {
    Bytes(Lease<'p>, usize),
    Eof,
    /// Drained: the lease was given back and readiness is being awaited again.
    Blocked,
}

fn fill<'p>(reader: &TcpStream, mut buffer: Lease<'p>) -> io::Result<Filled<'p>> {
    loop {
        match reader.try_read(&mut buffer) {
            Ok(0) => return Ok(Filled::Eof),
            Ok(n) => return Ok(Filled::Bytes(buffer, n)),
            // Readiness can be spurious, and a drained socket reports WouldBlock.
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(Filled::Blocked),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

impl<'p> Direction<'p> {
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        reader: &TcpStream,
        writer: &mut TcpStream,
        buffers: &'p BufferPool,
        counter: &Counter,
    ) -> Poll<io::Result<()>> {
        loop {
            let filled = match &mut self.state {
                State::Done => return Poll::Ready(Ok(())),
                State::ShuttingDown => {
                    ready!(Pin::new(&mut *writer).poll_shutdown(cx))?;
                    self.state = State::Done;
                    continue;
                }
                State::Idle => {
                    ready!(reader.poll_read_ready(cx))?;
                    // Held until a read would block: a bulk transfer keeps it across chunks,
                    // an idle connection gives it back and waits with none.
                    fill(reader, buffers.lease())?
                }
                State::Writing { buffer, start, end } => {
                    while *start < *end {
                        let n =
                            ready!(Pin::new(&mut *writer).poll_write(cx, &buffer[*start..*end]))?;
                        if n == 0 {
                            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        *start += n;
                        self.total += n as u64;
                        counter.inc_by(n as u64);
                    }
                    let State::Writing { buffer, .. } = std::mem::take(&mut self.state) else {
                        unreachable!("matched Writing above");
                    };
                    fill(reader, buffer)?
                }
            };
            self.state = match filled {
                Filled::Bytes(buffer, end) => State::Writing {
                    buffer,
                    start: 0,
                    end,
                },
                Filled::Eof => State::ShuttingDown,
                Filled::Blocked => State::Idle,
            };
        }
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

    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (connected, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        (connected.unwrap(), accepted.unwrap().0)
    }

    type CopyTask = tokio::task::JoinHandle<io::Result<Transferred>>;

    /// Runs [`copy_tcp_both_ways`] between the two proxy-side sockets with a pool of its own.
    fn spawn_tcp_copy(
        mut client_proxy_side: TcpStream,
        mut upstream_proxy_side: TcpStream,
    ) -> (std::sync::Arc<BufferPool>, CopyTask) {
        let buffers = std::sync::Arc::new(BufferPool::new());
        let proxy = tokio::spawn({
            let buffers = buffers.clone();
            async move {
                let counters = (Counter::default(), Counter::default());
                copy_tcp_both_ways(
                    &mut client_proxy_side,
                    &mut upstream_proxy_side,
                    &buffers,
                    &counters.0,
                    &counters.1,
                )
                .await
            }
        });
        (buffers, proxy)
    }

    /// A client, an echo upstream, and the copy between them, on real loopback sockets.
    struct Relay {
        client: TcpStream,
        buffers: std::sync::Arc<BufferPool>,
        proxy: CopyTask,
    }

    async fn relay_to_echo() -> Relay {
        let (client, client_proxy_side) = tcp_pair().await;
        let (upstream_proxy_side, mut upstream) = tcp_pair().await;
        tokio::spawn(async move {
            let (mut read, mut write) = upstream.split();
            tokio::io::copy(&mut read, &mut write).await.unwrap();
            write.shutdown().await.unwrap();
        });
        let (buffers, proxy) = spawn_tcp_copy(client_proxy_side, upstream_proxy_side);
        Relay {
            client,
            buffers,
            proxy,
        }
    }

    async fn echo_round_trip(client: &mut TcpStream, message: &[u8]) {
        client.write_all(message).await.unwrap();
        let mut answer = vec![0u8; message.len()];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(answer, message);
    }

    #[tokio::test]
    async fn an_idle_tcp_connection_holds_no_buffer_and_reuses_one_when_busy() {
        let mut relay = relay_to_echo().await;
        // Open and idle: nothing to read on either side, so nothing leased.
        tokio::task::yield_now().await;
        assert_eq!(relay.buffers.leased(), 0);

        let bulk = vec![0x5a; 3 * super::super::buffers::COPY_BUFFER + 17];
        let mut moved = 0u64;
        for round in 0..10 {
            // Small and larger than a buffer: a busy direction keeps its lease across chunks.
            let message: &[u8] = if round % 2 == 0 {
                b"small burst"
            } else {
                &bulk
            };
            echo_round_trip(&mut relay.client, message).await;
            moved += message.len() as u64;
            // The reply arrived, so both directions drained while the connection stays open.
            settle(&relay.buffers).await;
            assert_eq!(
                relay.buffers.leased(),
                0,
                "round {round}: a drained connection holds no buffer"
            );
        }
        // Each direction holds at most one lease at a time and a returned buffer is reused on
        // this (the only) thread, so ten bursts each way allocate at most one per direction.
        assert!(relay.buffers.allocated() >= 1);
        assert!(
            relay.buffers.allocated() <= 2,
            "{} buffers allocated for ten bursts; returned ones are not reused",
            relay.buffers.allocated()
        );

        relay.client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        relay.client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        let transferred = relay.proxy.await.unwrap().unwrap();
        assert_eq!(
            transferred,
            Transferred {
                received: moved,
                sent: moved
            }
        );
        assert_eq!(relay.buffers.leased(), 0);
    }

    #[tokio::test]
    async fn tcp_half_close_still_delivers_the_reply() {
        let (mut client, client_proxy_side) = tcp_pair().await;
        let (upstream_proxy_side, mut upstream) = tcp_pair().await;
        let (buffers, proxy) = spawn_tcp_copy(client_proxy_side, upstream_proxy_side);
        let echo = tokio::spawn(async move {
            let mut request = Vec::new();
            upstream.read_to_end(&mut request).await.unwrap();
            upstream.write_all(b"reply:").await.unwrap();
            upstream.write_all(&request).await.unwrap();
            upstream.shutdown().await.unwrap();
        });
        client.write_all(b"hello").await.unwrap();
        client.shutdown().await.unwrap();
        let mut reply = Vec::new();
        client.read_to_end(&mut reply).await.unwrap();
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
        assert_eq!(buffers.leased(), 0);
    }

    /// Every open passthrough connection keeps this future; its two async pumps with their
    /// readiness futures made it 688 bytes (unoptimised), the poll function 216.
    #[tokio::test]
    async fn the_tcp_copy_future_keeps_no_readiness_futures() {
        let (mut client, mut upstream) = tcp_pair().await;
        let buffers = BufferPool::new();
        let counter = Counter::default();
        let copy = copy_tcp_both_ways(&mut client, &mut upstream, &buffers, &counter, &counter);
        let size = std::mem::size_of_val(&copy);
        assert!(size <= 256, "the TCP copy future is {size} bytes");
    }

    /// Lets the relay task run until it is parked on readiness again. Bounded, so a lease
    /// that is never given back fails the assertion after it rather than hanging.
    async fn settle(buffers: &BufferPool) {
        for _ in 0..100 {
            if buffers.leased() == 0 {
                return;
            }
            tokio::task::yield_now().await;
        }
    }
}
