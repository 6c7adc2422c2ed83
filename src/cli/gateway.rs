//! `isthmus gateway`: the data plane, configured by discovery.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::{Context, bail};
use gateway::runtime::{Gateway, GatewayOptions};
use gateway::xds::ClientOptions;
use multicluster::proto::GatewayIdentity;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Discovery's gRPC address.
    #[arg(
        long,
        env = "ISTHMUS_DISCOVERY",
        default_value = "http://127.0.0.1:15012"
    )]
    discovery: String,
    /// This gateway's workload name (as a pod name would be).
    #[arg(long, env = "ISTHMUS_NAME")]
    name: String,
    /// Namespace of the gateway workload; `credentialName` Secrets resolve here.
    #[arg(long, env = "ISTHMUS_NAMESPACE", default_value = "istio-system")]
    namespace: String,
    /// Cluster the gateway runs in.
    #[arg(long, env = "ISTHMUS_CLUSTER")]
    cluster: String,
    /// Network the gateway fronts; AUTO_PASSTHROUGH only reaches endpoints on it.
    #[arg(long, env = "ISTHMUS_NETWORK")]
    network: String,
    /// A workload label, `key=value`; Gateway resources select gateways by these. Repeat.
    #[arg(long = "label", value_parser = parse_label, default_value = "istio=eastwestgateway")]
    labels: Vec<(String, String)>,
    /// Bind every listener to this address instead of the one configured (e.g. 127.0.0.2).
    #[arg(long)]
    listener_address: Option<IpAddr>,
    /// Serve configured port A on port B instead, `A=B` (unprivileged runs). Repeat.
    #[arg(long = "port-map", value_parser = parse_port_map)]
    port_map: Vec<(u16, u16)>,
    /// `/healthz/ready`.
    #[arg(long, default_value = "0.0.0.0:15021")]
    ready: SocketAddr,
    /// `/stats/prometheus`.
    #[arg(long, default_value = "0.0.0.0:15090")]
    stats: SocketAddr,
    /// Config dump and listings; keep it on loopback.
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// Name server for ServiceEntry `resolution: DNS` hosts, `ip:port`; repeat for more.
    /// Without one, /etc/resolv.conf is used.
    #[arg(long = "dns-server", env = "ISTHMUS_DNS_SERVER", value_delimiter = ',')]
    dns_servers: Vec<SocketAddr>,
    #[command(flatten)]
    tracing: super::tracing_args::TracingArgs,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("label {text:?} must be key=value")),
    }
}

fn parse_port_map(text: &str) -> Result<(u16, u16), String> {
    let parse = |part: &str| {
        part.parse::<u16>()
            .map_err(|_| format!("{part:?} is not a port number"))
    };
    match text.split_once('=') {
        Some((from, to)) => Ok((parse(from)?, parse(to)?)),
        None => Err(format!(
            "port map {text:?} must be configured=actual, e.g. 443=8443"
        )),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.labels.is_empty() {
        bail!("a gateway needs at least one --label for Gateway resources to select it");
    }
    let telemetry = args.tracing.options(&args.name, &args.namespace);
    let identity = GatewayIdentity {
        name: args.name,
        namespace: args.namespace,
        labels: args.labels.into_iter().collect(),
        cluster: args.cluster.clone(),
        network: args.network.clone(),
        ..Default::default()
    };
    let options = GatewayOptions {
        ready_address: args.ready,
        stats_address: args.stats,
        admin_address: args.admin,
        listener_address: args.listener_address,
        port_map: args.port_map.into_iter().collect::<BTreeMap<_, _>>(),
        network: Some(args.network),
        cluster: Some(args.cluster),
        dns_servers: args.dns_servers,
        telemetry,
        ..GatewayOptions::default()
    };
    super::runtime()?.block_on(async {
        let handle = Gateway::start(options)
            .await
            .context("starting the gateway")?;
        super::follow_discovery_until_stopped(
            ClientOptions::new(args.discovery, identity),
            handle.gateway(),
        )
        .await;
        handle.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
