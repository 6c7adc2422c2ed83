//! Backends the gateway forwards to: line echo servers that prefix every answer with their
//! name, and a tiny HTTP/1.1 responder, each over TLS (passthrough targets) or plain TCP.
//!
//! A backend counts the connections it really served (after its TLS handshake), so tests
//! assert on what arrived, not on what the gateway says it sent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::pki::Leaf;

/// What a backend answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Every line `x` comes back as `<name> x`.
    EchoLines,
    /// One HTTP/1.1 200 whose body is `<name>\n`, then close.
    Http,
}

pub struct Backend {
    name: String,
    address: SocketAddr,
    served: Arc<AtomicUsize>,
    certificate: Option<CertificateDer<'static>>,
    accept_loop: JoinHandle<()>,
}

impl Backend {
    /// Listens on `ip` (a free port) with `leaf` as its TLS certificate, or plain TCP.
    pub async fn start(name: &str, ip: &str, leaf: Option<&Leaf>, reply: Reply) -> Backend {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        let acceptor = leaf.map(|leaf| {
            let config = rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(leaf.chain.clone(), leaf.key())
                .unwrap();
            TlsAcceptor::from(Arc::new(config))
        });
        let served = Arc::new(AtomicUsize::new(0));
        let accept_loop = tokio::spawn(accept(
            listener,
            acceptor,
            name.to_owned(),
            reply,
            Arc::clone(&served),
        ));
        Backend {
            name: name.to_owned(),
            address,
            served,
            certificate: leaf.map(|leaf| leaf.certificate().clone()),
            accept_loop,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The end-entity certificate it presents (TLS backends).
    pub fn certificate(&self) -> Option<&CertificateDer<'static>> {
        self.certificate.as_ref()
    }

    /// Connections served so far (TLS ones counted after a completed handshake).
    pub fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// Closes the listening socket and every open connection: the backend is gone, and a
    /// connect to its address is refused.
    pub async fn stop(&mut self) {
        self.accept_loop.abort();
        // Waiting for the cancelled task means its listener and connections are dropped.
        let _ = (&mut self.accept_loop).await;
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn accept(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    name: String,
    reply: Reply,
    served: Arc<AtomicUsize>,
) {
    // Owned here so aborting the accept loop also ends every connection it started.
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let acceptor = acceptor.clone();
        let name = name.clone();
        let served = Arc::clone(&served);
        connections.spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        served.fetch_add(1, Ordering::SeqCst);
                        serve(tls, &name, reply).await;
                    }
                }
                None => {
                    served.fetch_add(1, Ordering::SeqCst);
                    serve(stream, &name, reply).await;
                }
            }
        });
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, name: &str, reply: Reply) {
    let mut stream = BufReader::new(stream);
    match reply {
        Reply::EchoLines => {
            let mut line = String::new();
            loop {
                line.clear();
                match stream.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let answer = format!("{name} {line}");
                if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let _ = stream.get_mut().flush().await;
            }
        }
        Reply::Http => {
            let mut line = String::new();
            // Read the request head up to its blank line; the body (none here) is ignored.
            loop {
                line.clear();
                match stream.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line == "\r\n" || line == "\n" => break,
                    Ok(_) => {}
                }
            }
            let body = format!("{name}\n");
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let stream = stream.get_mut();
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        }
    }
}
