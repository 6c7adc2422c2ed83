//! HTTP/3 keep-alive load: `--connections` QUIC connections, `--streams` requests in flight
//! on each, GET `--path` for `--duration` seconds. Prints `rps p50_ms p99_ms errors`.
//!
//! Certificates are not verified: the tool measures throughput against servers on loopback
//! with throwaway certificates (the gateway's tests verify certificates properly).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Buf;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

struct Args {
    connect: SocketAddr,
    host: String,
    path: String,
    connections: usize,
    streams: usize,
    duration: Duration,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        connect: "127.0.0.1:443".parse()?,
        host: "localhost".into(),
        path: "/".into(),
        connections: 8,
        streams: 10,
        duration: Duration::from_secs(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--connect" => args.connect = value.parse()?,
            "--host" => args.host = value,
            "--path" => args.path = value,
            "--connections" => args.connections = value.parse()?,
            "--streams" => args.streams = value.parse()?,
            "--duration" => args.duration = Duration::from_secs_f64(value.parse()?),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config() -> anyhow::Result<quinn::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls))?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
}

async fn run_connection(args: Arc<Args>, config: quinn::ClientConfig, until: Instant) -> anyhow::Result<Tally> {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(config);
    let connection = endpoint.connect(args.connect, &args.host)?.await?;
    let (mut driver, send_request) = h3::client::new(h3_quinn::Connection::new(connection)).await?;
    let driving = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    let mut workers = Vec::new();
    for _ in 0..args.streams {
        let mut send_request = send_request.clone();
        let args = Arc::clone(&args);
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let uri = format!("https://{}{}", args.host, args.path);
            while Instant::now() < until {
                let started = Instant::now();
                let one = async {
                    let request = http::Request::get(&uri).body(())?;
                    let mut stream = send_request.send_request(request).await?;
                    stream.finish().await?;
                    let response = stream.recv_response().await?;
                    while let Some(mut chunk) = stream.recv_data().await? {
                        chunk.advance(chunk.remaining());
                    }
                    anyhow::ensure!(response.status().is_success(), "status {}", response.status());
                    Ok::<_, anyhow::Error>(())
                };
                match one.await {
                    Ok(()) => tally.latencies.push(started.elapsed()),
                    Err(_) => tally.errors += 1,
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for worker in workers {
        let done = worker.await?;
        tally.latencies.extend(done.latencies);
        tally.errors += done.errors;
    }
    drop(send_request);
    driving.abort();
    endpoint.close(0u32.into(), b"done");
    Ok(tally)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(parse_args()?);
    let config = client_config()?;
    let started = Instant::now();
    let until = started + args.duration;
    let mut connections = Vec::new();
    for _ in 0..args.connections {
        connections.push(tokio::spawn(run_connection(Arc::clone(&args), config.clone(), until)));
    }
    let mut tally = Tally::default();
    for connection in connections {
        match connection.await? {
            Ok(done) => {
                tally.latencies.extend(done.latencies);
                tally.errors += done.errors;
            }
            Err(error) => {
                eprintln!("connection failed: {error:#}");
                tally.errors += 1;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    tally.latencies.sort();
    let at = |q: f64| {
        tally
            .latencies
            .get(((tally.latencies.len() as f64 * q) as usize).min(tally.latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{:.0} {:.3} {:.3} {}",
        tally.latencies.len() as f64 / elapsed,
        at(0.5),
        at(0.99),
        tally.errors
    );
    Ok(())
}
