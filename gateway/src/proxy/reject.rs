//! Why a connection was closed without being forwarded: one word for the log field and the
//! `reason` metric label.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The first bytes cannot start a TLS record (plain HTTP, SSH, noise).
    NotTls,
    /// A well-formed ClientHello without server_name.
    NoSni,
    /// The SNI matches nothing this listener routes.
    UnknownSni,
    /// AUTO_PASSTHROUGH only carries mesh mTLS, recognised by Istio's ALPNs.
    NoIstioAlpn,
    /// The ClientHello did not arrive before the deadline.
    HelloTimeout,
    /// The ClientHello is over the size cap.
    HelloTooLarge,
    /// TLS-shaped bytes that are not a valid ClientHello, or a client that hung up mid-hello.
    MalformedHello,
    NoHealthyEndpoint,
    ConnectFailed,
    /// The listener's servers are of a kind this data plane does not serve.
    UnsupportedServer,
    /// The TLS handshake with the client failed (no shared version or cipher, a client
    /// certificate refused by the server's policy, a client that gave up).
    TlsHandshake,
    /// The SNI picked a server whose TLS was rejected at apply (e.g. its credential does not
    /// load).
    ServerRejected,
}

impl RejectReason {
    pub const ALL: [RejectReason; 12] = [
        RejectReason::NotTls,
        RejectReason::NoSni,
        RejectReason::UnknownSni,
        RejectReason::NoIstioAlpn,
        RejectReason::HelloTimeout,
        RejectReason::HelloTooLarge,
        RejectReason::MalformedHello,
        RejectReason::NoHealthyEndpoint,
        RejectReason::ConnectFailed,
        RejectReason::UnsupportedServer,
        RejectReason::TlsHandshake,
        RejectReason::ServerRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NotTls => "not_tls",
            RejectReason::NoSni => "no_sni",
            RejectReason::UnknownSni => "unknown_sni",
            RejectReason::NoIstioAlpn => "no_istio_alpn",
            RejectReason::HelloTimeout => "hello_timeout",
            RejectReason::HelloTooLarge => "hello_too_large",
            RejectReason::MalformedHello => "malformed_hello",
            RejectReason::NoHealthyEndpoint => "no_healthy_endpoint",
            RejectReason::ConnectFailed => "connect_failed",
            RejectReason::UnsupportedServer => "unsupported_server",
            RejectReason::TlsHandshake => "tls_handshake",
            RejectReason::ServerRejected => "server_rejected",
        }
    }
}

impl RejectReason {
    /// Envoy's response flag for the access log, so operators grep for what they know: `NR`
    /// (no route: no matching filter chain, as for an unknown or missing SNI), `UH` (no
    /// healthy upstream), `UF` (upstream connection failure), `DPE` (downstream protocol
    /// error: the client's bytes were not a usable ClientHello or handshake).
    pub fn response_flags(self) -> &'static str {
        match self {
            RejectReason::NotTls
            | RejectReason::NoSni
            | RejectReason::UnknownSni
            | RejectReason::NoIstioAlpn
            | RejectReason::UnsupportedServer
            | RejectReason::ServerRejected => "NR",
            RejectReason::NoHealthyEndpoint => "UH",
            RejectReason::ConnectFailed => "UF",
            RejectReason::HelloTimeout
            | RejectReason::HelloTooLarge
            | RejectReason::MalformedHello
            | RejectReason::TlsHandshake => "DPE",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_snake_case() {
        let labels: std::collections::HashSet<&str> =
            RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), RejectReason::ALL.len());
        assert!(
            labels
                .iter()
                .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
    }
}
