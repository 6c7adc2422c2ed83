//! The QUIC side of an HTTPS port: which of its servers get an HTTP/3 twin, and the quinn
//! server configuration they share.
//!
//! A QUIC endpoint takes one TLS configuration for the whole port and, unlike the TCP side,
//! the gateway cannot see the SNI before the handshake (it sits inside the encrypted
//! Initial). A port with one HTTP server reuses that server's rustls configuration (with
//! ALPN `h3`). A port with several gets one TLS 1.3 configuration whose certificate is
//! chosen by SNI and whose client-certificate verifier accepts what any of the servers would
//! ([`certs::PortClientVerifier`]); when the handshake completes, the rules of the server the
//! SNI selected decide alone ([`super::client_auth`]). Both steps run the servers' own TCP
//! verifiers. A server whose TLS versions exclude 1.3 is left out of the twin (and keeps no
//! `alt-svc`); the port's other servers keep theirs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::H3Error;
use super::client_auth::{PerServerClientAuth, PortRules};
use crate::config::{ListenerKey, ListenerRoutes, RuntimeConfig, TerminatedRouting};
use crate::tls::ServerTls;

const ALPN_H3: &[u8] = b"h3";
/// How long `alt-svc` lets clients remember the HTTP/3 twin (the value E1 expects).
const ALT_SVC_MAX_AGE_SECS: u32 = 86_400;
/// A QUIC connection with no traffic for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP/3 settings that hold for every port of a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http3Settings {
    pub enabled: bool,
    /// 0-RTT requests can be replayed by an attacker: off unless asked for.
    pub zero_rtt: bool,
}

/// The HTTP/3 twin of one listener.
#[derive(Debug, Clone)]
pub struct QuicListenerTls {
    pub server_config: quinn::ServerConfig,
    /// Servers reachable over HTTP/3 on this port.
    pub servers: Vec<String>,
    /// Those of `servers` that ask for client certificates: on a shared handshake, a
    /// certificate sent to any other server is ignored, as its TCP side never asks for one.
    pub client_cert_servers: Vec<String>,
    /// `h3=":<configured port>"; ma=86400`, added to this port's TCP responses.
    pub alt_svc: HeaderValue,
}

impl QuicListenerTls {
    pub fn serves(&self, server: &str) -> bool {
        self.servers.iter().any(|s| s == server)
    }

    pub fn takes_client_certs(&self, server: &str) -> bool {
        self.client_cert_servers.iter().any(|s| s == server)
    }
}

/// The HTTP/3 twins of `config`'s listeners, and the servers or listeners left without one
/// (and why).
pub fn build(
    config: &RuntimeConfig,
    settings: Http3Settings,
) -> (HashMap<ListenerKey, Arc<QuicListenerTls>>, Vec<H3Error>) {
    let mut twins = HashMap::new();
    let mut skipped = Vec::new();
    if !settings.enabled {
        return (twins, skipped);
    }
    for (key, routes) in &config.listeners {
        let Some(table) = config.tls.get(key) else {
            continue;
        };
        let servers: Vec<TwinServer<'_>> = routes
            .terminating
            .iter()
            .filter(|s| matches!(s.routing, TerminatedRouting::Http { .. }))
            .filter_map(|s| table.servers.get(&s.name).map(|tls| (s.name.as_str(), tls)))
            .collect();
        let built = match servers.as_slice() {
            [] => continue,
            [(name, tls)] => single(routes, name, tls, settings).map(Some),
            _ => shared(routes, &servers, settings, &mut skipped),
        };
        match built {
            Ok(Some(twin)) => {
                twins.insert(*key, Arc::new(twin));
            }
            Ok(None) => {}
            Err(error) => skipped.push(error),
        }
    }
    (twins, skipped)
}

type TwinServer<'a> = (&'a str, &'a ServerTls);

/// The port's only HTTP server: its own rustls configuration, with ALPN `h3`.
fn single(
    routes: &ListenerRoutes,
    name: &str,
    tls: &ServerTls,
    settings: Http3Settings,
) -> Result<QuicListenerTls, H3Error> {
    let crypto = quic_crypto(routes, (*tls.config).clone(), settings)?;
    Ok(twin(routes, crypto, &[(name, tls)]))
}

/// Several HTTP servers: one handshake, certificates by SNI, client rules per server.
fn shared(
    routes: &ListenerRoutes,
    servers: &[TwinServer<'_>],
    settings: Http3Settings,
    skipped: &mut Vec<H3Error>,
) -> Result<Option<QuicListenerTls>, H3Error> {
    let (capable, left_out): (Vec<TwinServer<'_>>, Vec<TwinServer<'_>>) =
        servers.iter().partition(|(_, tls)| tls.allows_tls13);
    skipped.extend(left_out.iter().map(|(name, _)| H3Error::ServerNeedsTls13 {
        listener: routes.name.clone(),
        server: (*name).to_owned(),
    }));
    if capable.is_empty() {
        return Ok(None);
    }
    let resolver = BySni {
        routes: routes.clone(),
        resolvers: capable
            .iter()
            .map(|(name, tls)| ((*name).to_owned(), Arc::clone(&tls.config.cert_resolver)))
            .collect(),
    };
    let rules = Arc::new(PortRules {
        routes: routes.clone(),
        servers: capable
            .iter()
            .map(|(name, tls)| ((*name).to_owned(), Arc::clone(&tls.client_rules)))
            .collect(),
    });
    let verifiers: Vec<_> = capable
        .iter()
        .map(|(_, tls)| Arc::clone(&tls.client_rules))
        .collect();
    let tls = certs::shared_quic_server_config(
        Arc::new(resolver),
        certs::PortClientVerifier::for_servers(&verifiers),
        Vec::new(),
    )
    .map_err(|e| H3Error::QuicTls {
        listener: routes.name.clone(),
        reason: e.to_string(),
    })?;
    let crypto = quic_crypto(routes, tls, settings)?;
    let checked = PerServerClientAuth {
        inner: Arc::new(crypto),
        rules,
    };
    Ok(Some(twin(routes, checked, &capable)))
}

fn quic_crypto(
    routes: &ListenerRoutes,
    mut tls: rustls::ServerConfig,
    settings: Http3Settings,
) -> Result<quinn::crypto::rustls::QuicServerConfig, H3Error> {
    tls.alpn_protocols = vec![ALPN_H3.to_vec()];
    // quinn accepts only these two values: 0 refuses early data, u32::MAX takes it.
    tls.max_early_data_size = if settings.zero_rtt { u32::MAX } else { 0 };
    tls.send_half_rtt_data = false;
    quinn::crypto::rustls::QuicServerConfig::try_from(Arc::new(tls)).map_err(|e| H3Error::QuicTls {
        listener: routes.name.clone(),
        reason: e.to_string(),
    })
}

fn twin(
    routes: &ListenerRoutes,
    crypto: impl quinn::crypto::ServerConfig + 'static,
    servers: &[TwinServer<'_>],
) -> QuicListenerTls {
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // The conversion is infallible for durations far below 2^62 ms.
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        transport.max_idle_timeout(Some(idle));
    }
    server_config.transport_config(Arc::new(transport));
    // Clients that change address (NAT rebinding, Wi-Fi to cellular) keep their connection.
    server_config.migration(true);
    QuicListenerTls {
        server_config,
        servers: servers.iter().map(|(name, _)| (*name).to_owned()).collect(),
        client_cert_servers: servers
            .iter()
            .filter(|(_, tls)| tls.client_rules.offer_client_auth())
            .map(|(name, _)| (*name).to_owned())
            .collect(),
        alt_svc: alt_svc_value(routes.key.port),
    }
}

/// The advertised port is the configured one (conformance E1), not a test's remapped bind
/// port: clients reach the gateway through the port the Gateway resource names.
pub fn alt_svc_value(port: u16) -> HeaderValue {
    let text = format!("h3=\":{port}\"; ma={ALT_SVC_MAX_AGE_SECS}");
    // Digits, quotes, colons and letters only: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("clear"))
}

/// Several servers on one UDP port: each SNI gets its server's certificate, as on TCP.
struct BySni {
    routes: ListenerRoutes,
    resolvers: HashMap<String, Arc<dyn ResolvesServerCert>>,
}

impl std::fmt::Debug for BySni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BySni")
            .field("listener", &self.routes.name)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        let server = self.routes.terminating_server_for(sni.as_deref())?;
        self.resolvers.get(&server.name)?.resolve(hello)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alt_svc_names_the_port_and_a_day() {
        assert_eq!(alt_svc_value(443), "h3=\":443\"; ma=86400");
        assert_eq!(alt_svc_value(8443), "h3=\":8443\"; ma=86400");
    }
}
