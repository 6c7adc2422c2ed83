//! The little of a kubeconfig that a remote-cluster Secret needs: the API server of one
//! context and how to trust it.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error(
        "cannot read kubeconfig {path}: {source}: pass --kubeconfig, or --server with --certificate-authority"
    )]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("kubeconfig {path}: {message}")]
    Yaml { path: String, message: String },
    #[error("kubeconfig {path}: no context {context:?}: pick one of {known:?} with --context")]
    NoContext {
        path: String,
        context: String,
        known: Vec<String>,
    },
    #[error("kubeconfig {path}: no current-context: name one with --context")]
    NoCurrentContext { path: String },
    #[error(
        "kubeconfig {path}: context {context} names cluster {cluster}, which is not in the file"
    )]
    NoCluster {
        path: String,
        context: String,
        cluster: String,
    },
    #[error("cannot read certificate authority {path}: {source}")]
    ReadCa {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(rename = "current-context", default)]
    current_context: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NamedCluster {
    name: String,
    cluster: ClusterEntry,
}

#[derive(Debug, Deserialize)]
struct ClusterEntry {
    server: Option<String>,
    #[serde(rename = "certificate-authority-data")]
    certificate_authority_data: Option<String>,
    #[serde(rename = "certificate-authority")]
    certificate_authority: Option<PathBuf>,
    #[serde(rename = "insecure-skip-tls-verify", default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Deserialize)]
struct NamedContext {
    name: String,
    context: ContextEntry,
}

#[derive(Debug, Deserialize)]
struct ContextEntry {
    cluster: String,
}

/// An API server and what the remote kubeconfig will say about trusting it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ApiServer {
    pub server: Option<String>,
    /// Base64 of the PEM bundle, as `certificate-authority-data` holds it.
    pub certificate_authority_data: Option<String>,
    pub insecure_skip_tls_verify: bool,
}

/// Reads the cluster of `context` (or the current one) from the kubeconfig at `path`.
pub fn load(path: &Path, context: Option<&str>) -> Result<ApiServer, KubeconfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KubeconfigError::Read {
        path: shown.clone(),
        source,
    })?;
    let file: File = serde_saphyr::from_str(&text).map_err(|error| KubeconfigError::Yaml {
        path: shown.clone(),
        message: error.to_string(),
    })?;
    let context = match context.map(str::to_owned).or(file.current_context.clone()) {
        Some(context) => context,
        None => return Err(KubeconfigError::NoCurrentContext { path: shown }),
    };
    let entry = file
        .contexts
        .iter()
        .find(|named| named.name == context)
        .ok_or_else(|| KubeconfigError::NoContext {
            path: shown.clone(),
            context: context.clone(),
            known: file
                .contexts
                .iter()
                .map(|named| named.name.clone())
                .collect(),
        })?;
    let cluster = file
        .clusters
        .iter()
        .find(|named| named.name == entry.context.cluster)
        .ok_or_else(|| KubeconfigError::NoCluster {
            path: shown.clone(),
            context: context.clone(),
            cluster: entry.context.cluster.clone(),
        })?;
    let certificate_authority_data = match (
        &cluster.cluster.certificate_authority_data,
        &cluster.cluster.certificate_authority,
    ) {
        (Some(data), _) => Some(data.clone()),
        // A relative path in a kubeconfig starts at the kubeconfig's directory.
        (None, Some(file)) => Some(read_ca(
            &path.parent().unwrap_or(Path::new(".")).join(file),
        )?),
        (None, None) => None,
    };
    Ok(ApiServer {
        server: cluster.cluster.server.clone(),
        certificate_authority_data,
        insecure_skip_tls_verify: cluster.cluster.insecure_skip_tls_verify,
    })
}

/// A PEM file as `certificate-authority-data`.
pub fn read_ca(path: &Path) -> Result<String, KubeconfigError> {
    let pem = std::fs::read(path).map_err(|source| KubeconfigError::ReadCa {
        path: path.display().to_string(),
        source,
    })?;
    Ok(STANDARD.encode(pem))
}
