//! `isthmus deploy ROLE`: the deploy/ kustomize overlay of one role, with the cluster's values,
//! as multi-document YAML on stdout (`| kubectl apply -f -`).

mod embedded;
mod kustomize;
mod values;

use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Discovery with read-only RBAC and its mesh description (deploy/overlays/discovery).
    Discovery,
    /// The cluster's east-west gateway and the cross-network Gateway (deploy/overlays/eastwest).
    Eastwest,
    /// An ingress gateway, HTTPS and HTTP/3 on 443 (deploy/overlays/ingress).
    Ingress,
}

impl Role {
    fn overlay(self) -> &'static str {
        match self {
            Role::Discovery => "overlays/discovery",
            Role::Eastwest => "overlays/eastwest",
            Role::Ingress => "overlays/ingress",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to render.
    #[arg(value_enum)]
    role: Role,
    /// The network this cluster sits on (topology.istio.io/network).
    #[arg(long)]
    network: String,
    /// This cluster's id, as in the mesh and in remote-cluster Secrets.
    #[arg(long)]
    cluster: String,
    /// Image reference of the isthmus binary (default: the overlay's `images:` entry).
    #[arg(long)]
    image: Option<String>,
    /// Namespace of every namespaced object; also the mesh's system namespace.
    #[arg(long, default_value = values::OVERLAY_NAMESPACE)]
    namespace: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let objects = render(
        args.role,
        &args.cluster,
        &args.network,
        &args.namespace,
        args.image,
    )?;
    let yaml =
        serde_saphyr::to_string_multiple(&objects).context("writing the manifests as YAML")?;
    print!("{yaml}");
    Ok(ExitCode::SUCCESS)
}

fn render(
    role: Role,
    cluster: &str,
    network: &str,
    namespace: &str,
    image: Option<String>,
) -> anyhow::Result<Vec<Value>> {
    let substitution = values::Substitution::new(cluster, network, namespace)?;
    if let Some(image) = &image {
        values::check_image(image)?;
    }
    let overrides = kustomize::Overrides {
        namespace: Some(namespace.to_owned()),
        image,
    };
    let mut objects = kustomize::build(role.overlay(), &overrides)?;
    let seen = substitution.apply(&mut objects);
    for default in [values::OVERLAY_CLUSTER, values::OVERLAY_NETWORK] {
        if !seen.contains(&default) {
            return Err(values::ValueError::Unused {
                role: role.overlay().trim_start_matches("overlays/").to_owned(),
                default,
            }
            .into());
        }
    }
    Ok(objects)
}
