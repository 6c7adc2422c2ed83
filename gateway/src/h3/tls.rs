//! The QUIC side of an HTTPS port: which of its servers get an HTTP/3 twin, and the quinn
//! server configuration they share.
//!
//! Each twin reuses its TCP server's rustls configuration (same certificate resolver, same
//! client-certificate verifier), with ALPN `h3` and without early data. A QUIC endpoint
//! takes one TLS configuration for the whole port and, unlike the TCP side, the gateway
//! cannot see the SNI before the handshake (it sits inside the encrypted Initial). So a port
//! gets a twin when its HTTP servers can share one handshake: a single server (any mode), or
//! several SIMPLE servers, whose certificates are then chosen by SNI. A port that mixes
//! several servers with client-certificate rules keeps HTTP/1 and HTTP/2 only, and its
//! responses carry no `alt-svc`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use multicluster::proto::TlsMode;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::H3Error;
use crate::config::{ListenerKey, ListenerRoutes, RuntimeConfig, TerminatedRouting};

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
    /// `h3=":<configured port>"; ma=86400`, added to this port's TCP responses.
    pub alt_svc: HeaderValue,
}

impl QuicListenerTls {
    pub fn serves(&self, server: &str) -> bool {
        self.servers.iter().any(|s| s == server)
    }
}

/// The HTTP/3 twins of `config`'s listeners, and the listeners left without one (and why).
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
        let servers: Vec<(&str, TlsMode, &Arc<rustls::ServerConfig>)> = routes
            .terminating
            .iter()
            .filter(|s| matches!(s.routing, TerminatedRouting::Http { .. }))
            .filter_map(|s| {
                table
                    .servers
                    .get(&s.name)
                    .map(|c| (s.name.as_str(), s.mode, c))
            })
            .collect();
        if servers.is_empty() {
            continue;
        }
        match twin(routes, &servers, settings) {
            Ok(built) => {
                twins.insert(*key, Arc::new(built));
            }
            Err(error) => skipped.push(error),
        }
    }
    (twins, skipped)
}

fn twin(
    routes: &ListenerRoutes,
    servers: &[(&str, TlsMode, &Arc<rustls::ServerConfig>)],
    settings: Http3Settings,
) -> Result<QuicListenerTls, H3Error> {
    let shareable =
        servers.len() == 1 || servers.iter().all(|(_, mode, _)| *mode == TlsMode::Simple);
    if !shareable {
        return Err(H3Error::MixedClientPolicies {
            listener: routes.name.clone(),
        });
    }
    let (_, _, first) = servers[0];
    let mut tls = (**first).clone();
    if servers.len() > 1 {
        tls.cert_resolver = Arc::new(BySni {
            routes: routes.clone(),
            resolvers: servers
                .iter()
                .map(|(name, _, c)| ((*name).to_owned(), Arc::clone(&c.cert_resolver)))
                .collect(),
        });
    }
    tls.alpn_protocols = vec![ALPN_H3.to_vec()];
    // quinn accepts only these two values: 0 refuses early data, u32::MAX takes it.
    tls.max_early_data_size = if settings.zero_rtt { u32::MAX } else { 0 };
    tls.send_half_rtt_data = false;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(Arc::new(tls)).map_err(|e| {
        H3Error::QuicTls {
            listener: routes.name.clone(),
            reason: e.to_string(),
        }
    })?;
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    // The conversion is infallible for durations far below 2^62 ms.
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        transport.max_idle_timeout(Some(idle));
    }
    server_config.transport_config(Arc::new(transport));
    // Clients that change address (NAT rebinding, Wi-Fi to cellular) keep their connection.
    server_config.migration(true);
    Ok(QuicListenerTls {
        server_config,
        servers: servers
            .iter()
            .map(|(name, _, _)| (*name).to_owned())
            .collect(),
        alt_svc: alt_svc_value(routes.key.port),
    })
}

/// The advertised port is the configured one (conformance E1), not a test's remapped bind
/// port: clients reach the gateway through the port the Gateway resource names.
pub fn alt_svc_value(port: u16) -> HeaderValue {
    let text = format!("h3=\":{port}\"; ma={ALT_SVC_MAX_AGE_SECS}");
    // Digits, quotes, colons and letters only: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("clear"))
}

/// Several SIMPLE servers on one UDP port: each SNI gets its server's certificate, as on TCP.
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
