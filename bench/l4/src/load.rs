//! The measuring clients. Each prints `key=value` lines.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub struct Target {
    pub address: SocketAddr,
    pub sni: String,
    pub connector: TlsConnector,
}

impl Target {
    async fn connect(&self) -> anyhow::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.address)
            .await
            .with_context(|| format!("connecting to {}", self.address))?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(self.sni.clone())?;
        let tls =
            self.connector.connect(name, tcp).await.with_context(|| {
                format!("TLS handshake with {} (SNI {})", self.address, self.sni)
            })?;
        Ok(tls)
    }
}

/// One connection, a writer streaming 64 KiB chunks and a reader counting the echo.
pub async fn throughput(target: &Target, duration: Duration) -> anyhow::Result<()> {
    let stream = target.connect().await?;
    let (mut read, mut write) = tokio::io::split(stream);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let chunk = vec![0x5au8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                if write.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        })
    };
    let mut buffer = vec![0u8; 256 * 1024];
    // A short warm-up so slow start and buffer growth do not count.
    let warm_up = Instant::now() + Duration::from_millis(500);
    while Instant::now() < warm_up {
        if read.read(&mut buffer).await? == 0 {
            bail!("the echo ended during warm-up");
        }
    }
    let started = Instant::now();
    let mut bytes = 0u64;
    while started.elapsed() < duration {
        let n = read.read(&mut buffer).await?;
        if n == 0 {
            bail!("the echo ended early");
        }
        bytes += n as u64;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    writer.abort();
    println!(
        "throughput_mib_s={:.1}",
        bytes as f64 / elapsed / (1024.0 * 1024.0)
    );
    Ok(())
}

/// Sequential `size`-byte echo round trips on one connection.
pub async fn latency(target: &Target, count: usize, size: usize) -> anyhow::Result<()> {
    let mut stream = target.connect().await?;
    let message = vec![0x42u8; size];
    let mut answer = vec![0u8; size];
    let mut samples = Vec::with_capacity(count);
    for round in 0..count + 1000 {
        let started = Instant::now();
        stream.write_all(&message).await?;
        stream.flush().await?;
        stream.read_exact(&mut answer).await?;
        // The first thousand warm caches and buffers.
        if round >= 1000 {
            samples.push(started.elapsed());
        }
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!("latency_p50_us={:.1}", at(0.50).as_secs_f64() * 1e6);
    println!("latency_p99_us={:.1}", at(0.99).as_secs_f64() * 1e6);
    Ok(())
}

/// `concurrency` loops of connect + full handshake + close for `duration`.
pub async fn handshakes(
    target: &Target,
    duration: Duration,
    concurrency: usize,
) -> anyhow::Result<()> {
    let target = Arc::new(Target {
        address: target.address,
        sni: target.sni.clone(),
        connector: target.connector.clone(),
    });
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (target, done, failed) = (Arc::clone(&target), Arc::clone(&done), Arc::clone(&failed));
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match target.connect().await {
                    Ok(mut stream) => {
                        // One byte each way proves the path reaches the backend.
                        let mut byte = [0u8; 1];
                        let ok = stream.write_all(b"x").await.is_ok()
                            && stream.read_exact(&mut byte).await.is_ok();
                        let _ = stream.shutdown().await;
                        if ok { &done } else { &failed }.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "handshakes_per_s={:.0}",
        done.load(Ordering::Relaxed) as f64 / elapsed
    );
    println!("handshakes_failed={}", failed.load(Ordering::Relaxed));
    Ok(())
}

/// Opens `count` connections (200 at a time), checks each with one echoed byte, prints
/// `held=<n>` and keeps them open until stdin closes.
pub async fn hold(target: &Target, count: usize) -> anyhow::Result<()> {
    let target = Arc::new(Target {
        address: target.address,
        sni: target.sni.clone(),
        connector: target.connector.clone(),
    });
    let permits = Arc::new(tokio::sync::Semaphore::new(200));
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let (target, permits) = (Arc::clone(&target), Arc::clone(&permits));
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.ok()?;
            let mut stream = target.connect().await.ok()?;
            let mut byte = [0u8; 1];
            stream.write_all(b"x").await.ok()?;
            stream.read_exact(&mut byte).await.ok()?;
            Some(stream)
        }));
    }
    let mut held = Vec::with_capacity(count);
    for task in tasks {
        if let Some(stream) = task.await? {
            held.push(stream);
        }
    }
    println!("held={}", held.len());
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    while stdin.read(&mut sink).await.unwrap_or(0) > 0 {}
    drop(held);
    Ok(())
}
