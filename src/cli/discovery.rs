//! `isthmus discovery`: the control plane over a mesh description.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use discovery::app::{Discovery, DiscoveryOptions};
use discovery::mesh_config::MeshConfig;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The mesh description: clusters, their networks and their sources.
    #[arg(long, env = "ISTHMUS_MESH")]
    mesh: PathBuf,
    /// Where gateways subscribe (gRPC).
    #[arg(long, default_value = "0.0.0.0:15012")]
    grpc: SocketAddr,
    /// Readiness, metrics and the connected-gateway list (HTTP).
    #[arg(long, default_value = "0.0.0.0:15014")]
    monitor: SocketAddr,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mesh = MeshConfig::load(&args.mesh)
        .with_context(|| format!("loading the mesh description {}", args.mesh.display()))?;
    let mut options = DiscoveryOptions::new(mesh);
    options.grpc_address = args.grpc;
    options.monitor_address = args.monitor;
    super::runtime()?.block_on(async {
        let discovery = Discovery::start(options).await?;
        super::wait_for_ctrl_c().await;
        discovery.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}
