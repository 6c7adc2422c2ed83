//! `isthmus certs`: the mesh's CA files, as Istio's multicluster setup lays them out.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory to write `root-cert.pem`, `root-key.pem` and `<cluster>/{ca-cert,ca-key,root-cert,cert-chain}.pem`.
    #[arg(long, default_value = "certs")]
    out: PathBuf,
    /// SPIFFE trust domain of the mesh.
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// A cluster to create an intermediate CA for; repeat for each cluster.
    #[arg(long = "cluster", required = true)]
    clusters: Vec<String>,
    /// Replace files that already exist.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let clusters: Vec<&str> = args.clusters.iter().map(String::as_str).collect();
    let files = certs::generate_mesh_files(
        &args.out,
        &args.trust_domain,
        &clusters,
        certs::CaLifetimes::default(),
        args.force,
    )
    .with_context(|| format!("writing the mesh CA files under {}", args.out.display()))?;
    for path in &files.written {
        println!("wrote {}", path.display());
    }
    if files.root_reused {
        println!("kept the existing root CA");
    }
    Ok(ExitCode::SUCCESS)
}
