//! Command-line parsing and dispatch.

mod certs;
mod demo;
mod deploy;
mod discovery;
mod gateway;
mod proxy_config;
mod remote_secret;
mod sidecar;
mod tracing_args;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "isthmus", version, about = "Multi-cluster east-west gateway")]
pub struct Cli {
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "ISTHMUS_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check Istio and Kubernetes YAML the way discovery will, printing every problem.
    Validate(validate::Args),
    /// Bring up two clusters on two networks on this machine and make cross-network calls.
    Demo(demo::Args),
    /// Create a root CA and one intermediate CA per cluster, in Istio's file layout.
    Certs(certs::Args),
    /// Run discovery: read the mesh, translate, push each gateway its configuration.
    Discovery(discovery::Args),
    /// Run a gateway that subscribes to discovery.
    Gateway(gateway::Args),
    /// Run a workload proxy: an outbound HTTP proxy port and mTLS inbound ports for one app.
    Sidecar(sidecar::Args),
    /// Show a running gateway's listeners, clusters or endpoints.
    ProxyConfig(proxy_config::Args),
    /// Print the Kubernetes manifests of one role for one cluster (deploy/ overlays).
    Deploy(deploy::Args),
    /// Print Istio's remote-cluster credentials: reader RBAC, then the istio/multiCluster Secret.
    CreateRemoteSecret(remote_secret::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Discovery(args) => discovery::run(args),
        Command::Gateway(args) => gateway::run(args),
        Command::Sidecar(args) => sidecar::run(args),
        Command::ProxyConfig(args) => proxy_config::run(args),
        Command::Deploy(args) => deploy::run(args),
        Command::CreateRemoteSecret(args) => remote_secret::run(args),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Applies discovery's pushes to `gateway` until Ctrl-C or SIGTERM, then stops the client; the
/// caller then shuts the gateway or sidecar down (draining its connections).
async fn follow_discovery_until_stopped(
    client: ::gateway::xds::ClientOptions,
    gateway: ::gateway::Gateway,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let follow = tokio::spawn(::gateway::xds::run(client, gateway, async move {
        // A dropped sender also means stop.
        let _ = stopped.wait_for(|stop| *stop).await;
    }));
    wait_for_ctrl_c().await;
    let _ = stop.send(true);
    let _ = follow.await;
}

/// Returns on Ctrl-C or SIGTERM, the two ways a supervisor asks a process to stop.
async fn wait_for_ctrl_c() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
    tracing::info!("stopping");
}

/// Logs go to stderr so command output on stdout stays machine-readable.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ISTHMUS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
