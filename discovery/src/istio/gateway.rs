//! `Gateway` (networking.istio.io): the ports, hosts and TLS settings a gateway serves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::protocol::Protocol;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GatewaySpec {
    /// Labels of the gateway workloads this configuration applies to.
    pub selector: BTreeMap<String, String>,
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Server {
    pub port: Option<ServerPort>,
    /// Address to bind to; empty means every address.
    pub bind: String,
    /// `host` or `namespace/host` entries (`*`, `*.example.com`, `istio-system/*`).
    pub hosts: Vec<String>,
    pub tls: Option<ServerTlsSettings>,
    /// Optional name, used in stats and listener names.
    pub name: String,
    pub default_endpoint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerPort {
    pub number: u32,
    /// Protocol name as written; see [`ServerPort::protocol`].
    pub protocol: String,
    pub name: String,
    /// Deprecated in Istio and ignored by gateways; validation says so.
    pub target_port: u32,
}

impl ServerPort {
    /// The parsed protocol, `None` when the name is unknown (validation reports it).
    pub fn protocol(&self) -> Option<Protocol> {
        Protocol::parse(&self.protocol)
    }
}

/// TLS mode of a gateway server. Istio's default (the zero value) is PASSTHROUGH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    #[default]
    Passthrough,
    Simple,
    Mutual,
    AutoPassthrough,
    IstioMutual,
    OptionalMutual,
}

impl ServerTlsMode {
    pub fn name(self) -> &'static str {
        match self {
            ServerTlsMode::Passthrough => "PASSTHROUGH",
            ServerTlsMode::Simple => "SIMPLE",
            ServerTlsMode::Mutual => "MUTUAL",
            ServerTlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
            ServerTlsMode::IstioMutual => "ISTIO_MUTUAL",
            ServerTlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
        }
    }

    /// The gateway forwards the TLS bytes without terminating.
    pub fn is_passthrough(self) -> bool {
        matches!(
            self,
            ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
        )
    }
}

/// TLS protocol version bounds. TLS_AUTO lets the proxy choose.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub enum TlsProtocolVersion {
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    #[serde(rename = "TLSV1_0")]
    TlsV1_0,
    #[serde(rename = "TLSV1_1")]
    TlsV1_1,
    #[serde(rename = "TLSV1_2")]
    TlsV1_2,
    #[serde(rename = "TLSV1_3")]
    TlsV1_3,
}

impl TlsProtocolVersion {
    pub fn name(self) -> &'static str {
        match self {
            TlsProtocolVersion::TlsAuto => "TLS_AUTO",
            TlsProtocolVersion::TlsV1_0 => "TLSV1_0",
            TlsProtocolVersion::TlsV1_1 => "TLSV1_1",
            TlsProtocolVersion::TlsV1_2 => "TLSV1_2",
            TlsProtocolVersion::TlsV1_3 => "TLSV1_3",
        }
    }

    /// TLS 1.0 and 1.1, which rustls (and so Isthmus) cannot speak.
    pub fn is_legacy(self) -> bool {
        matches!(
            self,
            TlsProtocolVersion::TlsV1_0 | TlsProtocolVersion::TlsV1_1
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerTlsSettings {
    /// On a plain HTTP server: answer every request with a 301 to https.
    pub https_redirect: bool,
    pub mode: ServerTlsMode,
    pub server_certificate: String,
    pub private_key: String,
    pub ca_certificates: String,
    pub ca_crl: String,
    /// Name of a Kubernetes Secret holding the certificate (and CA for MUTUAL).
    pub credential_name: String,
    pub subject_alt_names: Vec<String>,
    /// Base64 SHA-256 digests of accepted client SubjectPublicKeyInfo.
    pub verify_certificate_spki: Vec<String>,
    /// Hex SHA-256 digests of accepted client certificates (colons optional).
    pub verify_certificate_hash: Vec<String>,
    pub min_protocol_version: TlsProtocolVersion,
    pub max_protocol_version: TlsProtocolVersion,
    /// OpenSSL-style cipher suite names for TLS 1.2.
    pub cipher_suites: Vec<String>,
}
