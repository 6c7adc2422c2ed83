//! L4 access-log lines carry Envoy's response flags, so an operator greps a refused
//! connection by what Envoy would have logged: `NR` for an unknown SNI, `UH` when the routed
//! cluster has no healthy endpoint. Captured as the JSON lines `isthmus --log-format json`
//! writes.
#![allow(clippy::unwrap_used)]

mod http_support;
mod l4_support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use http_support::{cluster_name, eventually};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HOST: &str = "reviews.default.svc.cluster.local";

/// Every log line the process writes, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    fn rejection(&self, sni: &str) -> Option<Value> {
        self.lines()
            .into_iter()
            .find(|l| l["fields"]["message"] == "connection rejected" && l["fields"]["sni"] == sni)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_logged_with_envoy_response_flags() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .init();
    let routed = l4_support::sni(9080, "", HOST);
    let gateway = l4_support::start(l4_support::test_options()).await;
    // The route's cluster has no endpoint at all: "no healthy upstream".
    gateway
        .apply(l4_support::config(
            "1",
            vec![l4_support::auto_passthrough_listener(
                15443,
                &[(routed.clone(), cluster_name(9080, "", HOST))],
            )],
            vec![l4_support::cluster(9080, "", HOST, &[])],
        ))
        .unwrap();
    let address = gateway.listener_address(15443).unwrap();
    for sni in ["evil.example", routed.as_str()] {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(&l4_support::client_hello(Some(sni)))
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
        assert!(rest.is_empty(), "{sni}: a refused connection gets no bytes");
    }
    assert!(
        eventually(|| async { captured.rejection(&routed).is_some() }).await,
        "no rejection line for {routed}: {:?}",
        captured.lines()
    );
    for (sni, reason, flags) in [
        ("evil.example", "unknown_sni", "NR"),
        (routed.as_str(), "no_healthy_endpoint", "UH"),
    ] {
        let line = captured.rejection(sni).expect("a rejection line");
        let fields = &line["fields"];
        assert_eq!(fields["reason"], reason, "{line}");
        assert_eq!(fields["response_flags"], flags, "{line}");
        assert_eq!(fields["listener"], "0.0.0.0_15443", "{line}");
    }
}
