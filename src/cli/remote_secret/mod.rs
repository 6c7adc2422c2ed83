//! `isthmus create-remote-secret --name C`: Istio's remote-cluster credentials, printed.
//!
//! There is no API server to ask, so the token comes in two steps and is never invented:
//! without `--token-file` the reader ServiceAccount, its token Secret and read-only RBAC are
//! printed (apply them in cluster C) with, on stderr, the command that reads the token
//! Kubernetes filled in; with `--token-file` the `istio/multiCluster` Secret is printed (apply
//! it where discovery runs), its kubeconfig pointing at the server of `--kubeconfig`'s context
//! or `--server`.

mod kubeconfig;
mod manifests;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The id of the cluster these credentials reach (the remote Secret's data key).
    #[arg(long)]
    name: String,
    /// The reader's token in that cluster; `-` reads standard input.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Where the cluster's API server and CA come from (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context of that cluster (default: its current context).
    #[arg(long)]
    context: Option<String>,
    /// The API server address discovery dials, in place of the kubeconfig's.
    #[arg(long)]
    server: Option<String>,
    /// A PEM file of the API server's CA, in place of the kubeconfig's.
    #[arg(long)]
    certificate_authority: Option<PathBuf>,
    /// Namespace of the reader in the remote cluster and of the remote Secret.
    #[arg(long, default_value = "istio-system")]
    namespace: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    check_name(&args.name)?;
    let Some(token_file) = &args.token_file else {
        print!(
            "{}",
            serde_saphyr::to_string_multiple(&manifests::reader(&args.namespace))?
        );
        eprintln!("{}", next_step(&args));
        return Ok(ExitCode::SUCCESS);
    };
    let token = read_token(token_file)?;
    let api = api_server(&args)?;
    let Some(server) = args.server.clone().or(api.server) else {
        bail!(
            "no API server address: the kubeconfig's cluster has no `server`; pass --server https://..."
        );
    };
    let certificate_authority = match &args.certificate_authority {
        Some(path) => Some(kubeconfig::read_ca(path)?),
        None => api.certificate_authority_data,
    };
    if certificate_authority.is_none() {
        if !api.insecure_skip_tls_verify {
            bail!(
                "no CA for {server}: the kubeconfig's cluster has no certificate-authority(-data); pass --certificate-authority ca.pem"
            );
        }
        eprintln!("warning: the kubeconfig skips TLS verification for {server}; so will discovery");
    }
    let config = manifests::kubeconfig(
        &args.name,
        &server,
        certificate_authority.as_deref(),
        &token,
    );
    let config = serde_saphyr::to_string(&config).context("writing the kubeconfig")?;
    let secret = manifests::remote_secret(&args.name, &args.namespace, &config);
    print!("{}", serde_saphyr::to_string(&secret)?);
    Ok(ExitCode::SUCCESS)
}

/// The id is a Secret data key and an annotation value.
fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        bail!(
            "--name {name:?} is not a usable cluster id: use letters, digits, '-', '_' or '.' (at most 63)"
        );
    }
    Ok(())
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the token from standard input")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the token file {}", path.display()))?;
    }
    let token = text.trim();
    // A service account token is a JWT: three base64url parts. Anything else here is most
    // likely still base64-encoded (`.data.token` without `base64 -d`) or empty.
    let parts: Vec<&str> = token.split('.').collect();
    let jwt = parts.len() == 3
        && parts.iter().all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        });
    if !jwt {
        bail!(
            "the token in {} is not a service account token (a JWT, header.payload.signature): decode `.data.token` with base64 -d",
            path.display()
        );
    }
    Ok(token.to_owned())
}

fn api_server(args: &Args) -> anyhow::Result<kubeconfig::ApiServer> {
    let path = match &args.kubeconfig {
        Some(path) => Some(path.clone()),
        None => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube/config")),
    };
    match path {
        // Everything can come from flags; then a kubeconfig is not needed.
        Some(path) if args.server.is_none() || args.certificate_authority.is_none() => {
            Ok(kubeconfig::load(&path, args.context.as_deref())?)
        }
        _ => Ok(kubeconfig::ApiServer::default()),
    }
}

/// The command that turns the applied reader objects into a remote Secret, with the user's
/// own flags repeated so it can be pasted as is.
fn next_step(args: &Args) -> String {
    let context = args
        .context
        .as_ref()
        .map(|context| format!(" --context={context}"))
        .unwrap_or_default();
    let mut again = format!("isthmus create-remote-secret --name {}", args.name);
    for (flag, value) in [
        (
            "--kubeconfig",
            args.kubeconfig
                .as_ref()
                .map(|path| path.display().to_string()),
        ),
        ("--context", args.context.clone()),
        ("--server", args.server.clone()),
        (
            "--certificate-authority",
            args.certificate_authority
                .as_ref()
                .map(|path| path.display().to_string()),
        ),
    ] {
        if let Some(value) = value {
            again.push_str(&format!(" {flag} {value}"));
        }
    }
    if args.namespace != "istio-system" {
        again.push_str(&format!(" --namespace {}", args.namespace));
    }
    format!(
        "# 1. Apply the objects above in cluster {name}:  kubectl{context} apply -f -\n\
         # 2. Once Kubernetes has filled in the token, print the remote Secret and apply it where discovery runs:\n\
         #    kubectl{context} -n {namespace} get secret {secret} -o jsonpath='{{.data.token}}' | base64 -d | {again} --token-file -",
        name = args.name,
        namespace = args.namespace,
        secret = manifests::token_secret_name(),
    )
}
