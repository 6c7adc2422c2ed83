//! TLS termination: per listener, the server (and so the certificate and client policy) is
//! chosen from the ClientHello's SNI before the handshake completes, then the decrypted
//! stream is served as HTTP (ALPN h2 or http/1.1) or forwarded as TCP.

mod credentials;
mod origination;
mod termination;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::{
    EndpointConfig, ListenerKey, RuntimeConfig, TerminatedRouting, TerminatingServer,
};
use crate::http::{ConnectionContext, TlsInfo, headers::client_cert_header};
use crate::metrics::{REPORTER_SOURCE, SECURITY_MUTUAL_TLS, TcpLabels};
use crate::proxy::{Proxy, RejectReason, copy_both_ways};
use crate::upstream::{self, EndpointFilter};

pub use credentials::{Credential, CredentialCache, CredentialError};
pub use origination::build as build_origination;
pub use termination::{ListenerTls, MeshMaterial, ServerRejection, ServerTls, build, load_mesh};

/// Terminates TLS on one accepted connection and serves what its server routes to.
pub async fn serve_terminated(
    proxy: Arc<Proxy>,
    downstream: TcpStream,
    peer: SocketAddr,
    listener: ListenerKey,
    config: Arc<RuntimeConfig>,
    force_close: CancellationToken,
) {
    let Some(routes) = config.listener(&listener) else {
        return;
    };
    // Small TLS records must not wait for Nagle; failing to set it costs latency only.
    let _ = downstream.set_nodelay(true);
    let reject = |reason: RejectReason, sni: Option<&str>, detail: String| {
        tracing::info!(%peer, listener = %routes.name, sni = sni.unwrap_or(""), reason = reason.as_str(), %detail, "TLS connection rejected");
        proxy.metrics.rejected(&routes.name, reason.as_str(), sni);
    };
    let handshake = async {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), downstream)
            .await
            .map_err(|e| (RejectReason::MalformedHello, None, e.to_string()))?;
        let sni = start
            .client_hello()
            .server_name()
            .map(str::to_ascii_lowercase);
        let server = routes
            .terminating_server_for(sni.as_deref())
            .ok_or_else(|| match &sni {
                Some(_) => (
                    RejectReason::UnknownSni,
                    sni.clone(),
                    "no server of this port covers the SNI".to_owned(),
                ),
                None => (
                    RejectReason::NoSni,
                    None,
                    "the ClientHello has no server_name and no server of this port is for `*`"
                        .to_owned(),
                ),
            })?;
        let server_config = config
            .tls
            .get(&listener)
            .and_then(|table| table.servers.get(&server.name))
            .map(|tls| Arc::clone(&tls.config))
            .ok_or_else(|| {
                (
                    RejectReason::ServerRejected,
                    sni.clone(),
                    format!(
                        "server {} was rejected at apply (see the admin listing)",
                        server.name
                    ),
                )
            })?;
        let stream = start
            .into_stream(server_config)
            .await
            .map_err(|e| (RejectReason::TlsHandshake, sni.clone(), e.to_string()))?;
        Ok::<_, (RejectReason, Option<String>, String)>((stream, server, sni))
    };
    let timed = tokio::select! {
        timed = tokio::time::timeout(proxy.settings.client_hello_timeout, handshake) => timed,
        () = force_close.cancelled() => return,
    };
    let (stream, server, sni) = match timed {
        Ok(Ok(done)) => done,
        Ok(Err((reason, sni, detail))) => return reject(reason, sni.as_deref(), detail),
        Err(_) => {
            return reject(
                RejectReason::HelloTimeout,
                None,
                "TLS handshake did not finish in time".to_owned(),
            );
        }
    };
    let session = stream.get_ref().1;
    let client_cert = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| client_cert_header(leaf));
    let tls = TlsInfo {
        sni,
        mutual: client_cert.is_some(),
        client_cert,
    };
    match &server.routing {
        TerminatedRouting::Http { route_table } => {
            let Some(table) = config.route_tables.get(route_table).cloned() else {
                return;
            };
            let conn = ConnectionContext {
                listener,
                listener_name: routes.name.clone(),
                server: server.name.clone(),
                peer,
                peer_ip: crate::http::headers::ip_value(peer.ip()),
                tls: Some(tls),
                route_table: table,
                checks_https_redirect: false,
                alt_svc: crate::h3::alt_svc(&config, &listener, &server.name),
                config: Arc::clone(&config),
            };
            crate::http::serve_connection(proxy, Arc::new(conn), stream, force_close).await;
        }
        TerminatedRouting::Tcp(destinations) => {
            forward_tcp(
                &proxy,
                &config,
                &routes.name,
                server,
                destinations,
                stream,
                peer,
                tls,
                force_close,
            )
            .await;
        }
    }
}

/// SIMPLE/MUTUAL `TLS` servers with `tcp` routes (C3): the decrypted bytes go to the
/// cluster as plain TCP.
#[allow(clippy::too_many_arguments)]
async fn forward_tcp(
    proxy: &Proxy,
    config: &RuntimeConfig,
    listener: &str,
    server: &TerminatingServer,
    destinations: &crate::config::WeightedDestinations,
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    peer: SocketAddr,
    tls: TlsInfo,
    force_close: CancellationToken,
) {
    let started = Instant::now();
    let Some(cluster) = destinations
        .pick(upstream::random::random_u64())
        .and_then(|name| config.cluster(name))
    else {
        proxy.metrics.rejected(
            listener,
            RejectReason::NoHealthyEndpoint.as_str(),
            tls.sni.as_deref(),
        );
        return;
    };
    let filter = EndpointFilter::default();
    let connected = upstream::connect(
        &proxy.upstreams,
        cluster,
        &filter,
        proxy.settings.connect_timeout,
    );
    let mut connected = tokio::select! {
        connected = connected => match connected {
            Ok(connected) => connected,
            Err(error) => {
                tracing::info!(%peer, listener, server = %server.name, %error, "TLS-terminated TCP: no upstream");
                proxy.metrics.rejected(listener, RejectReason::ConnectFailed.as_str(), tls.sni.as_deref());
                return;
            }
        },
        () = force_close.cancelled() => return,
    };
    let counters = proxy.metrics.connection_opened(&TcpLabels {
        reporter: REPORTER_SOURCE,
        source_cluster: proxy.metrics.source_cluster().to_owned(),
        destination_service: cluster.service.clone(),
        destination_cluster: EndpointConfig::cluster_label(&connected.cluster_id).to_owned(),
        upstream_cluster: cluster.name.clone(),
        request_protocol: "tcp",
        connection_security_policy: if tls.mutual {
            SECURITY_MUTUAL_TLS
        } else {
            "none"
        },
        listener: listener.to_owned(),
    });
    let copied = copy_both_ways(
        tokio::io::split(stream),
        connected.stream.split(),
        &counters.received_bytes,
        &counters.sent_bytes,
    );
    let outcome = tokio::select! {
        outcome = copied => Some(outcome),
        () = force_close.cancelled() => None,
    };
    counters.closed.inc();
    tracing::info!(
        %peer,
        listener,
        server = %server.name,
        sni = tls.sni.as_deref().unwrap_or(""),
        cluster = %cluster.name,
        upstream = %connected.address,
        duration_ms = started.elapsed().as_millis() as u64,
        outcome = ?outcome.map(|o| o.map_err(|e| e.to_string())),
        "TLS-terminated TCP connection closed"
    );
}
