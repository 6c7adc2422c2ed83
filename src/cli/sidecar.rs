//! `isthmus sidecar`: the workload proxy, configured by discovery.
//!
//! The application points its HTTP proxy at `--outbound` (CONNECT for any TCP protocol,
//! absolute-form for HTTP/1.1); callers reach it on each `--inbound` address, where mesh mTLS
//! is terminated and plaintext handed to the app.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use certs::{Identity, RotatingCert};
use gateway::runtime::GatewayOptions;
use gateway::sidecar::{InboundSpec, MeshTls, Sidecar, SidecarOptions};
use gateway::xds::ClientOptions;
use multicluster::proto::{GatewayIdentity, Role};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Discovery's gRPC address.
    #[arg(
        long,
        env = "ISTHMUS_DISCOVERY",
        default_value = "http://127.0.0.1:15012"
    )]
    discovery: String,
    /// This workload's name (as its pod name would be).
    #[arg(long, env = "ISTHMUS_NAME")]
    name: String,
    /// The workload's namespace; must match the certificate's SPIFFE identity.
    #[arg(long, env = "ISTHMUS_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Cluster the workload runs in; its DestinationRules apply.
    #[arg(long, env = "ISTHMUS_CLUSTER")]
    cluster: String,
    /// Network the workload is on: endpoints elsewhere are reached through their gateways.
    #[arg(long, env = "ISTHMUS_NETWORK")]
    network: String,
    /// The workload's service account; must match the certificate's SPIFFE identity.
    #[arg(long, env = "ISTHMUS_SERVICE_ACCOUNT", default_value = "default")]
    service_account: String,
    /// The HTTP proxy port the application points at.
    #[arg(long, default_value = "127.0.0.1:15001")]
    outbound: SocketAddr,
    /// `<advertised endpoint addr:port>=<app addr:port>[,http|,tcp]`, e.g.
    /// `10.20.0.2:9080=127.0.0.1:8080,http`. Repeat per port.
    #[arg(long = "inbound")]
    inbound: Vec<InboundSpec>,
    /// The workload certificate chain, leaf first (`cert-chain.pem`).
    #[arg(long, env = "ISTHMUS_CERT_CHAIN")]
    cert_chain: PathBuf,
    /// The workload private key (`key.pem`).
    #[arg(long, env = "ISTHMUS_KEY")]
    key: PathBuf,
    /// The mesh root every peer must chain to (`root-cert.pem`).
    #[arg(long, env = "ISTHMUS_ROOT_CERT")]
    root_cert: PathBuf,
    /// Expands short names (`reviews.default`) in proxy requests.
    #[arg(long, default_value = multicluster::model::DEFAULT_DOMAIN_SUFFIX)]
    domain_suffix: String,
    /// Config dump and listings; keep it on loopback.
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin: SocketAddr,
    /// `/healthz/ready`.
    #[arg(long, default_value = "0.0.0.0:15021")]
    ready: SocketAddr,
    /// `/stats/prometheus`.
    #[arg(long, default_value = "0.0.0.0:15090")]
    stats: SocketAddr,
}

/// The certificate as the CSR client will later rotate it, and the roots peers must chain to.
fn load_identity(args: &Args) -> anyhow::Result<Arc<MeshTls>> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let key = certs::certified_key_from_pem(&read(&args.cert_chain)?, &read(&args.key)?)
        .with_context(|| {
            format!(
                "loading {} and {}",
                args.cert_chain.display(),
                args.key.display()
            )
        })?;
    let roots = certs::load::load_ca_file(&args.root_cert)
        .with_context(|| format!("loading the mesh root {}", args.root_cert.display()))?;
    let certificate = Arc::new(RotatingCert::new(key).context("reading the workload certificate")?);
    let tls = Arc::new(MeshTls::new(certificate, roots)?);
    let own = tls.own_identity();
    let claimed = Identity::new(own.trust_domain(), &args.namespace, &args.service_account)
        .context("--namespace and --service-account must be valid identity parts")?;
    if own != &claimed {
        bail!(
            "the certificate in {} is for {own}, but this workload is {claimed} (--namespace {} --service-account {}); \
             issue a certificate for this workload or fix the flags",
            args.cert_chain.display(),
            args.namespace,
            args.service_account
        );
    }
    Ok(tls)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let tls = load_identity(&args)?;
    let identity = GatewayIdentity {
        name: args.name,
        namespace: args.namespace,
        cluster: args.cluster.clone(),
        network: args.network.clone(),
        role: Role::Sidecar as i32,
        ..Default::default()
    };
    let options = SidecarOptions {
        outbound: args.outbound,
        inbound: args.inbound,
        domain_suffix: args.domain_suffix,
        gateway: GatewayOptions {
            ready_address: args.ready,
            stats_address: args.stats,
            admin_address: args.admin,
            network: Some(args.network),
            cluster: Some(args.cluster),
            ..GatewayOptions::default()
        },
        ..SidecarOptions::default()
    };
    super::runtime()?.block_on(async {
        let handle = Sidecar::start(options, tls)
            .await
            .context("starting the sidecar")?;
        super::follow_discovery_until_stopped(
            ClientOptions::new(args.discovery, identity),
            handle.gateway(),
        )
        .await;
        handle.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
