//! Start-up options of a gateway, with Istio's ports as defaults.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The gateway's own mesh certificate (SPIFFE identity) as PEM files, for ISTIO_MUTUAL
/// servers and ISTIO_MUTUAL origination. Read at every apply, so rotated files are picked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshIdentity {
    pub cert_chain: PathBuf,
    pub private_key: PathBuf,
    /// The mesh root(s) that peers' certificates must chain to.
    pub roots: PathBuf,
}

#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// `/healthz/ready`; Istio's 15021 on every address, for load balancer probes.
    pub ready_address: SocketAddr,
    /// `/stats/prometheus`; Istio's 15090.
    pub stats_address: SocketAddr,
    /// Config dump and listings: localhost only, as Envoy's admin on 15000.
    pub admin_address: SocketAddr,
    /// Bind every listener to this address instead of the configured one.
    pub listener_address: Option<IpAddr>,
    /// Configured listener port → port to bind (0 picks a free one).
    pub port_map: BTreeMap<u16, u16>,
    /// Bind listeners whose port `port_map` does not name to a free port.
    pub free_ports: bool,
    /// This gateway's network; AUTO_PASSTHROUGH only delivers to endpoints on it.
    pub network: Option<String>,
    /// This gateway's Istio cluster id (its identity's), the `source_cluster` of its metrics;
    /// `None`: "unknown".
    pub cluster: Option<String>,
    /// How long a client may take to send its whole ClientHello.
    pub client_hello_timeout: Duration,
    /// Upstream connect timeout when the cluster sets none.
    pub connect_timeout: Duration,
    /// How long removed listeners (and all listeners at shutdown) let connections finish.
    pub drain_timeout: Duration,
    /// Worker threads of the data-plane runtime.
    pub data_plane_threads: usize,
    /// Request line plus headers an HTTP client may send (431 beyond).
    pub max_request_header_bytes: usize,
    /// How long an HTTP client may take to send a request's headers (slowloris guard).
    pub http_header_read_timeout: Duration,
    /// Without one, ISTIO_MUTUAL servers are rejected at apply with that reason.
    pub mesh_identity: Option<MeshIdentity>,
    /// OpenTelemetry traces over OTLP/gRPC; `None` (the default): no spans at all.
    pub telemetry: Option<crate::telemetry::TelemetryOptions>,
    /// HTTP/3 on the UDP side of every HTTPS port that terminates TLS, advertised over TCP
    /// with `alt-svc`. Off: TCP only, and no `alt-svc`.
    pub http3: bool,
    /// Accept HTTP/3 requests in 0-RTT data. Off by default: an attacker can replay them.
    pub http3_zero_rtt: bool,
    /// Name servers for ServiceEntry `resolution: DNS` hosts; empty: `/etc/resolv.conf`.
    pub dns_servers: Vec<SocketAddr>,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        GatewayOptions {
            ready_address: SocketAddr::new(any, 15021),
            stats_address: SocketAddr::new(any, 15090),
            admin_address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 15000),
            listener_address: None,
            port_map: BTreeMap::new(),
            free_ports: false,
            network: None,
            cluster: None,
            client_hello_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
            data_plane_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_request_header_bytes: 60 * 1024,
            http_header_read_timeout: Duration::from_secs(10),
            mesh_identity: None,
            telemetry: None,
            http3: true,
            http3_zero_rtt: false,
            dns_servers: Vec::new(),
        }
    }
}

impl GatewayOptions {
    /// Everything on 127.0.0.1 with ephemeral ports and short timeouts: for tests and for
    /// running several gateways side by side.
    pub fn ephemeral() -> Self {
        let local = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        GatewayOptions {
            ready_address: local(0),
            stats_address: local(0),
            admin_address: local(0),
            listener_address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            free_ports: true,
            client_hello_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(2),
            data_plane_threads: 2,
            http_header_read_timeout: Duration::from_secs(2),
            ..GatewayOptions::default()
        }
    }
}
