//! Port protocol names as Istio accepts them (case-insensitive).

use std::fmt;

/// A port protocol Isthmus knows how to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Https,
    Grpc,
    GrpcWeb,
    Http2,
    Mongo,
    Mysql,
    Redis,
    Tcp,
    Tls,
}

impl Protocol {
    /// Every protocol, in the order Istio's documentation lists them.
    pub const ALL: [Protocol; 10] = [
        Protocol::Http,
        Protocol::Https,
        Protocol::Grpc,
        Protocol::GrpcWeb,
        Protocol::Http2,
        Protocol::Mongo,
        Protocol::Mysql,
        Protocol::Redis,
        Protocol::Tcp,
        Protocol::Tls,
    ];

    /// Parses a protocol name ignoring case, as Istio does; `None` for anything else.
    pub fn parse(name: &str) -> Option<Protocol> {
        Self::ALL
            .into_iter()
            .find(|protocol| protocol.name().eq_ignore_ascii_case(name))
    }

    /// The canonical upper-case name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Grpc => "GRPC",
            Protocol::GrpcWeb => "GRPC-WEB",
            Protocol::Http2 => "HTTP2",
            Protocol::Mongo => "MONGO",
            Protocol::Mysql => "MYSQL",
            Protocol::Redis => "REDIS",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
        }
    }

    /// Plain-text HTTP family (HTTP/1.1, HTTP/2, gRPC, gRPC-Web).
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::GrpcWeb
        )
    }

    /// Protocols carried inside TLS (HTTPS, TLS).
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    /// Protocols proxied as opaque TCP streams (after any TLS handling).
    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            Protocol::Tcp
                | Protocol::Https
                | Protocol::Tls
                | Protocol::Mongo
                | Protocol::Redis
                | Protocol::Mysql
        )
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_ignoring_case() {
        for protocol in Protocol::ALL {
            assert_eq!(Protocol::parse(protocol.name()), Some(protocol));
            assert_eq!(
                Protocol::parse(&protocol.name().to_ascii_lowercase()),
                Some(protocol)
            );
        }
        assert_eq!(Protocol::parse("grpc-Web"), Some(Protocol::GrpcWeb));
        assert_eq!(Protocol::parse("Https"), Some(Protocol::Https));
        assert_eq!(Protocol::parse("HTTP3"), None);
        assert_eq!(Protocol::parse(""), None);
    }

    #[test]
    fn classifies_like_istio() {
        assert!(Protocol::Grpc.is_http());
        assert!(!Protocol::Https.is_http());
        assert!(Protocol::Https.is_tls() && Protocol::Tls.is_tls());
        assert!(!Protocol::Tcp.is_tls());
        assert!(Protocol::Mongo.is_tcp());
        assert!(!Protocol::Http.is_tcp());
    }
}
