//! A gateway with one HTTPS server for benchmarks: TLS SIMPLE with the given certificate,
//! every request routed to one upstream. Used by `bench/https.sh`.
//!
//! Environment: `BENCH_CERT`, `BENCH_KEY` (PEM files), `BENCH_UPSTREAM` (ip:port),
//! `BENCH_PORT` (port to listen on, 127.0.0.1), `BENCH_THREADS` (data-plane threads);
//! optional `BENCH_OTLP_ENDPOINT` (traces to that OTLP/gRPC collector) with
//! `BENCH_TRACE_SAMPLING` (0.0 to 1.0, as `--trace-sampling`; default 0.01).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use gateway::{Gateway, GatewayOptions};

// The allocator of the `isthmus` binary, so the bench measures what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use multicluster::proto::{self, Protocol, TlsMode, http_route::Action, server::Routing};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} must be set (see the example's docs)"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cert = env("BENCH_CERT")?;
    let key = env("BENCH_KEY")?;
    let upstream: SocketAddr = env("BENCH_UPSTREAM")?.parse()?;
    let port: u16 = env("BENCH_PORT")?.parse()?;
    let threads: usize = env("BENCH_THREADS")
        .unwrap_or_else(|_| "1".into())
        .parse()?;
    let telemetry = match std::env::var("BENCH_OTLP_ENDPOINT") {
        Ok(endpoint) => {
            let mut options = gateway::telemetry::TelemetryOptions::new(endpoint, "bench");
            if let Ok(sampling) = std::env::var("BENCH_TRACE_SAMPLING") {
                options.sampling = sampling.parse()?;
            }
            Some(options)
        }
        Err(_) => None,
    };
    let local = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let options = GatewayOptions {
        ready_address: local(0),
        stats_address: local(0),
        admin_address: local(0),
        listener_address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        port_map: BTreeMap::from([(443, port)]),
        data_plane_threads: threads,
        telemetry,
        ..GatewayOptions::default()
    };
    let handle = Gateway::start(options).await?;
    let cluster = "outbound|80||upstream.bench.svc.cluster.local";
    let config = proto::GatewayConfig {
        version: "bench".into(),
        listeners: vec![proto::Listener {
            name: "0.0.0.0_443".into(),
            bind_address: "0.0.0.0".into(),
            port: 443,
            servers: vec![proto::Server {
                name: "https.443.bench".into(),
                protocol: Protocol::Https as i32,
                hosts: vec!["*".into()],
                tls: Some(proto::ServerTls {
                    mode: TlsMode::Simple as i32,
                    credential: "bench".into(),
                    ..Default::default()
                }),
                routing: Some(Routing::RouteTable("https.443.bench".into())),
            }],
        }],
        clusters: vec![proto::Cluster {
            name: cluster.into(),
            service: "upstream.bench.svc.cluster.local".into(),
            port: 80,
            protocol: Protocol::Http as i32,
            endpoints: vec![proto::Endpoint {
                address: upstream.ip().to_string(),
                port: u32::from(upstream.port()),
                weight: 1,
                ..Default::default()
            }],
            ..Default::default()
        }],
        route_tables: vec![proto::RouteTable {
            name: "https.443.bench".into(),
            virtual_hosts: vec![proto::VirtualHost {
                name: "*:443".into(),
                domains: vec!["*".into()],
                routes: vec![proto::HttpRoute {
                    name: "all".into(),
                    action: Some(Action::Route(proto::RouteAction {
                        destinations: vec![proto::WeightedCluster {
                            cluster: cluster.into(),
                            weight: 100,
                        }],
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
            }],
        }],
        credentials: vec![proto::TlsCredential {
            name: "bench".into(),
            source: Some(proto::tls_credential::Source::Files(
                proto::CredentialFiles {
                    certificate_chain: cert,
                    private_key: key,
                    ca_certificates: String::new(),
                },
            )),
        }],
        rejections: vec![],
    };
    handle.apply(config).map_err(|reasons| reasons.join("; "))?;
    if let Some(rejected) = handle.gateway().config().rejected_servers.first() {
        return Err(format!("server rejected: {}", rejected.reason).into());
    }
    println!("ready on {}", local(port));
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
