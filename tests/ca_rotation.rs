//! Rotation under steady traffic: a workload whose certificates live 4 s renews them through
//! discovery while it keeps calling an mTLS echo server. No request may fail; every new
//! handshake presents the certificate current at that moment, and a connection opened with the
//! first certificate keeps working after that certificate has expired.

#![allow(clippy::unwrap_used)] // tests: a panic is how they report a failure

mod ca_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ca_support::{SigningMesh, identity, identity_of};
use certs::{Identity, RotatingCert};
use gateway::identity::CertificateRenewer;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const LIFETIME: Duration = Duration::from_secs(4);
/// Long enough for the bootstrap certificate to expire and several renewals to happen.
const TRAFFIC_FOR: Duration = Duration::from_secs(9);

/// Echoes every read back; remembers each client leaf certificate it was shown.
async fn echo_server(
    cert: Arc<RotatingCert>,
    roots: Vec<CertificateDer<'static>>,
    seen: Arc<Mutex<HashSet<Vec<u8>>>>,
) -> SocketAddr {
    let config = certs::mesh_server_config(cert, &roots, None, Vec::new()).unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    seen.lock().unwrap().insert(leaf.to_vec());
                }
                let mut buffer = [0u8; 256];
                loop {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if tls.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    address
}

async fn connect(
    connector: &TlsConnector,
    address: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(address).await?;
    connector
        .connect(ServerName::try_from("echo").unwrap(), tcp)
        .await
}

async fn round_trip(
    stream: &mut tokio_rustls::client::TlsStream<TcpStream>,
    message: &str,
) -> std::io::Result<()> {
    stream.write_all(message.as_bytes()).await?;
    let mut answer = vec![0u8; message.len()];
    stream.read_exact(&mut answer).await?;
    if answer != message.as_bytes() {
        return Err(std::io::Error::other(format!(
            "echo answered {:?} to {message:?}",
            String::from_utf8_lossy(&answer)
        )));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_certificates_rotate_under_traffic_without_failures() {
    let mesh = SigningMesh::start().await;
    let roots = mesh.cluster_ca.roots().to_vec();
    let echo_id = identity("default", "echo");
    let echo_cert = mesh.bootstrap(&echo_id, Duration::from_secs(3600));
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let echo = echo_server(echo_cert, roots.clone(), Arc::clone(&seen)).await;

    let client_id: Identity = identity("default", "client");
    let client_cert = mesh.bootstrap(&client_id, LIFETIME);
    let bootstrap_expiry = client_cert.not_after();
    let mut options = mesh.client_options();
    options.lifetime = LIFETIME;
    let renewer =
        CertificateRenewer::new(client_id.clone(), Arc::clone(&client_cert), options).unwrap();
    let status = renewer.status();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut stopped_renewer = stopped.clone();
    let renewing = tokio::spawn(renewer.run(async move {
        let _ = stopped_renewer.wait_for(|stop| *stop).await;
    }));

    let mut client_config = certs::mesh_client_config(
        Arc::clone(&client_cert) as Arc<dyn rustls::client::ResolvesClientCert>,
        &roots,
        std::slice::from_ref(&echo_id),
        Vec::new(),
    )
    .unwrap();
    // A resumed session shows the server no certificate; full handshakes make every
    // connection prove which certificate it was made with.
    client_config.resumption = rustls::client::Resumption::disabled();
    let connector = TlsConnector::from(Arc::new(client_config));

    let mut long_lived = connect(&connector, echo).await.unwrap();
    round_trip(&mut long_lived, "hello from the first certificate")
        .await
        .unwrap();

    let started = Instant::now();
    let mut requests = 0u64;
    let mut failures = Vec::new();
    while started.elapsed() < TRAFFIC_FOR {
        requests += 1;
        let message = format!("request {requests}");
        let outcome = async {
            let mut stream = connect(&connector, echo).await?;
            round_trip(&mut stream, &message).await
        }
        .await;
        if let Err(error) = outcome {
            failures.push(format!("{message} at {:?}: {error}", started.elapsed()));
        }
        if requests.is_multiple_of(10)
            && let Err(error) = round_trip(&mut long_lived, &message).await
        {
            failures.push(format!("long-lived {message}: {error}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    stop.send(true).unwrap();
    renewing.await.unwrap();
    let status = status.borrow().clone();
    assert!(
        failures.is_empty(),
        "{} of {requests} requests failed: {failures:#?}",
        failures.len()
    );
    assert!(
        requests > 50,
        "steady traffic means many requests, got {requests}"
    );
    assert!(
        SystemTime::now() > bootstrap_expiry,
        "the test must outlive the bootstrap certificate"
    );
    // A 4 s certificate renewed halfway: about every 2 s over 9 s.
    assert!(status.renewals >= 3, "{status:?}");
    assert_eq!(status.failures, 0, "{status:?}");
    let distinct = seen.lock().unwrap().len();
    assert!(
        distinct as u64 >= status.renewals,
        "the server saw {distinct} client certificates for {} renewals",
        status.renewals
    );
    assert_eq!(identity_of(&client_cert), client_id);
    // Opened with the bootstrap certificate, still answering after that certificate expired.
    round_trip(&mut long_lived, "still here").await.unwrap();
    mesh.discovery.shutdown().await;
}
