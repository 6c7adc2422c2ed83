//! Kubernetes clients from a kubeconfig file, the pod's service account, or the kubeconfig
//! text of a remote-cluster Secret.

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use multicluster::model::ClusterId;

use crate::mesh_config::KubeAccess;

use super::KubeError;

/// The client of a cluster of the mesh description.
pub(super) async fn configured(
    cluster: &ClusterId,
    access: &KubeAccess,
) -> Result<Client, KubeError> {
    let config = match access {
        KubeAccess::Kubeconfig { path, context } => {
            let failed = |message: String| KubeError::Kubeconfig {
                cluster: cluster.to_string(),
                path: path.display().to_string(),
                message,
            };
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| failed(e.to_string()))?;
            let options = KubeConfigOptions {
                context: context.clone(),
                ..KubeConfigOptions::default()
            };
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| failed(e.to_string()))?
        }
        KubeAccess::InCluster => Config::incluster().map_err(|e| KubeError::InCluster {
            cluster: cluster.to_string(),
            message: e.to_string(),
        })?,
        KubeAccess::RemoteSecret { .. } => {
            return Err(KubeError::Client {
                cluster: cluster.to_string(),
                message: "a remote cluster is reached through its Secret, not the mesh description"
                    .to_string(),
            });
        }
    };
    Client::try_from(config).map_err(|e| KubeError::Client {
        cluster: cluster.to_string(),
        message: e.to_string(),
    })
}

/// The client a remote-cluster Secret describes (its current context).
pub(super) async fn from_kubeconfig_text(text: &str) -> Result<Client, String> {
    let kubeconfig = Kubeconfig::from_yaml(text).map_err(|e| e.to_string())?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    Client::try_from(config).map_err(|e| e.to_string())
}
