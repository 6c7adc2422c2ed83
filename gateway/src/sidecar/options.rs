//! What a sidecar is told on its command line: where the app's outbound proxy port is, and
//! which advertised endpoint addresses it terminates mTLS on for which local app ports.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

use crate::runtime::GatewayOptions;

/// The protocol the local application speaks behind an inbound port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppProtocol {
    /// Bytes are copied as they are; the caller's identity is not passed on.
    Tcp,
    /// HTTP/1.1: requests are proxied and `x-forwarded-client-cert` carries the caller.
    Http,
}

/// One `--inbound <listen>=<app>[,http]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSpec {
    /// Where the endpoint is advertised (what iptables capture would make it look like).
    pub listen: SocketAddr,
    /// The application's plaintext port, normally on loopback.
    pub app: SocketAddr,
    pub protocol: AppProtocol,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InboundSpecError {
    #[error(
        "inbound {spec:?} must be <listen addr:port>=<app addr:port>[,http|,tcp], e.g. 10.20.0.2:9080=127.0.0.1:8080,http"
    )]
    Shape { spec: String },
    #[error("inbound {spec:?}: {part:?} is not an address:port")]
    Address { spec: String, part: String },
    #[error("inbound {spec:?}: unknown protocol {protocol:?}; use http or tcp")]
    Protocol { spec: String, protocol: String },
}

impl FromStr for InboundSpec {
    type Err = InboundSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let shape = || InboundSpecError::Shape {
            spec: spec.to_owned(),
        };
        let (listen, rest) = spec.split_once('=').ok_or_else(shape)?;
        let (app, protocol) = match rest.split_once(',') {
            Some((app, protocol)) => (app, Some(protocol)),
            None => (rest, None),
        };
        let address = |part: &str| {
            part.trim()
                .parse::<SocketAddr>()
                .map_err(|_| InboundSpecError::Address {
                    spec: spec.to_owned(),
                    part: part.to_owned(),
                })
        };
        let protocol = match protocol.map(str::trim) {
            None | Some("tcp") => AppProtocol::Tcp,
            Some("http") => AppProtocol::Http,
            Some(other) => {
                return Err(InboundSpecError::Protocol {
                    spec: spec.to_owned(),
                    protocol: other.to_owned(),
                });
            }
        };
        Ok(InboundSpec {
            listen: address(listen)?,
            app: address(app)?,
            protocol,
        })
    }
}

#[derive(Debug, Clone)]
pub struct SidecarOptions {
    /// The HTTP proxy port applications point at (`CONNECT` and absolute-form requests).
    pub outbound: SocketAddr,
    pub inbound: Vec<InboundSpec>,
    /// Expands short names (`reviews.default`) in proxy requests.
    pub domain_suffix: String,
    /// Admin, readiness and stats addresses, timeouts and data-plane threads; the sidecar's
    /// configuration has no listeners, so the listener placement settings are unused.
    pub gateway: GatewayOptions,
    /// Longest wait for a mesh TLS handshake, in either direction.
    pub handshake_timeout: Duration,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        SidecarOptions {
            outbound: SocketAddr::from(([127, 0, 0, 1], 15001)),
            inbound: Vec::new(),
            domain_suffix: multicluster::model::DEFAULT_DOMAIN_SUFFIX.to_owned(),
            gateway: GatewayOptions::default(),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl SidecarOptions {
    /// Loopback and ephemeral ports everywhere: for tests.
    pub fn ephemeral() -> Self {
        SidecarOptions {
            outbound: SocketAddr::from(([127, 0, 0, 1], 0)),
            gateway: GatewayOptions::ephemeral(),
            handshake_timeout: Duration::from_secs(2),
            ..SidecarOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_specs_parse_with_and_without_protocol() {
        let http: InboundSpec = "10.20.0.2:9080=127.0.0.1:8080,http".parse().unwrap();
        assert_eq!(http.listen, SocketAddr::from(([10, 20, 0, 2], 9080)));
        assert_eq!(http.app, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(http.protocol, AppProtocol::Http);
        let tcp: InboundSpec = "10.20.0.2:3306=127.0.0.1:3306".parse().unwrap();
        assert_eq!(tcp.protocol, AppProtocol::Tcp);
    }

    #[test]
    fn bad_inbound_specs_say_what_is_wrong() {
        let shape = "10.20.0.2:9080"
            .parse::<InboundSpec>()
            .unwrap_err()
            .to_string();
        assert!(
            shape.contains("<listen addr:port>=<app addr:port>"),
            "{shape}"
        );
        let address = "10.20.0.2=127.0.0.1:8080"
            .parse::<InboundSpec>()
            .unwrap_err();
        assert_eq!(
            address,
            InboundSpecError::Address {
                spec: "10.20.0.2=127.0.0.1:8080".into(),
                part: "10.20.0.2".into()
            }
        );
        let protocol = "10.20.0.2:1=127.0.0.1:2,h2"
            .parse::<InboundSpec>()
            .unwrap_err()
            .to_string();
        assert!(protocol.contains("unknown protocol \"h2\""), "{protocol}");
    }
}
