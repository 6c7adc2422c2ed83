//! Remote-cluster Secrets (Istio's multi-cluster convention): which clusters they name, and
//! which of them are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::Secret;
use multicluster::model::{ClusterId, NetworkId};

use crate::mesh::{Rejection, Severity};
use crate::mesh_config::ClusterConfig;

use super::kinds::{Kind, ObjectKey};

pub(super) const MULTICLUSTER_SELECTOR: &str = "istio/multiCluster=true";
const CLUSTER_ANNOTATION: &str = "networking.istio.io/cluster";

/// A remote cluster a Secret asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    /// The cluster the Secret was read from.
    pub(super) from: ClusterId,
    /// That cluster's network.
    pub(super) network: NetworkId,
    pub(super) secret: ObjectKey,
    pub(super) kubeconfig: String,
    /// Of the kubeconfig: a changed one is a rotation.
    pub(super) fingerprint: u64,
}

/// Adds the clusters `secret` names to `wanted`; what is refused goes to `problems`, keyed by
/// the cluster the Secret was read from. Earlier calls win: callers go through Secrets in a
/// fixed order (cluster, then namespace/name).
pub(super) fn collect(
    source: &ClusterConfig,
    key: &ObjectKey,
    secret: &Secret,
    configured: &BTreeSet<ClusterId>,
    wanted: &mut BTreeMap<ClusterId, Wanted>,
    problems: &mut Vec<Rejection>,
) {
    let from = &source.id;
    let problem = |data_key: &str, severity: Severity, message: String| Rejection {
        cluster: from.clone(),
        origin: Kind::Secret.object_path("", &key.0, &key.1),
        kind: Kind::Secret.name().to_string(),
        namespace: key.0.clone(),
        name: key.1.clone(),
        field: if data_key.is_empty() {
            String::new()
        } else {
            format!("data.{data_key}")
        },
        message,
        severity,
    };
    let data = secret.data.clone().unwrap_or_default();
    if data.is_empty() {
        problems.push(problem(
            "",
            Severity::Warning,
            "a remote-cluster Secret without data names no cluster: add one key per cluster id whose value is that cluster's kubeconfig".to_string(),
        ));
    }
    let annotation = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(CLUSTER_ANNOTATION));
    if let Some(annotated) = annotation
        && !data.contains_key(annotated)
    {
        problems.push(problem(
            "",
            Severity::Warning,
            format!(
                "annotation {CLUSTER_ANNOTATION} is {annotated:?} but no data key has that name: the data keys are the cluster ids"
            ),
        ));
    }
    for (data_key, value) in data {
        let Ok(id) = ClusterId::new(data_key.trim()) else {
            problems.push(problem(
                &data_key,
                Severity::Error,
                "the data key is not a cluster id: name each key after the cluster whose kubeconfig it holds".to_string(),
            ));
            continue;
        };
        if configured.contains(&id) {
            problems.push(problem(
                &data_key,
                Severity::Error,
                format!(
                    "cluster id {id} is a cluster of the mesh description, which a remote-cluster Secret cannot replace: remove the key or give the remote cluster its own id"
                ),
            ));
            continue;
        }
        if let Some(first) = wanted.get(&id) {
            problems.push(problem(
                &data_key,
                Severity::Error,
                format!(
                    "cluster id {id} is already read from Secret {}/{} of cluster {}: a remote cluster must be named by one Secret only; delete one of them",
                    first.secret.0, first.secret.1, first.from
                ),
            ));
            continue;
        }
        let Ok(kubeconfig) = String::from_utf8(value.0) else {
            problems.push(problem(
                &data_key,
                Severity::Error,
                "the kubeconfig is not UTF-8 text".to_string(),
            ));
            continue;
        };
        let mut hasher = DefaultHasher::new();
        kubeconfig.hash(&mut hasher);
        wanted.insert(
            id,
            Wanted {
                from: from.clone(),
                network: source.network.clone(),
                secret: key.clone(),
                kubeconfig,
                fingerprint: hasher.finish(),
            },
        );
    }
}

/// The problem of a Secret whose kubeconfig gives no client.
pub(super) fn unusable(wanted: &Wanted, cluster: &ClusterId, reason: &str) -> Rejection {
    secret_problem(
        wanted,
        cluster,
        Severity::Error,
        format!(
            "the kubeconfig for cluster {cluster} is not usable: {reason}: regenerate it (isthmus or istioctl create-remote-secret)"
        ),
    )
}

pub(super) fn secret_problem(
    wanted: &Wanted,
    cluster: &ClusterId,
    severity: Severity,
    message: String,
) -> Rejection {
    let (namespace, name) = &wanted.secret;
    Rejection {
        cluster: wanted.from.clone(),
        origin: Kind::Secret.object_path("", namespace, name),
        kind: Kind::Secret.name().to_string(),
        namespace: namespace.clone(),
        name: name.clone(),
        field: format!("data.{cluster}"),
        message,
        severity,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::mesh_config::{ClusterSource, KubeAccess};

    fn id(name: &str) -> ClusterId {
        ClusterId::new(name).unwrap()
    }

    fn secret(name: &str, keys: &[(&str, &str)]) -> (ObjectKey, Secret) {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("istio-system".to_string()),
                ..ObjectMeta::default()
            },
            data: Some(
                keys.iter()
                    .map(|(key, value)| (key.to_string(), ByteString(value.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        };
        (("istio-system".to_string(), name.to_string()), secret)
    }

    #[test]
    fn keys_name_clusters_and_the_local_id_or_a_duplicate_is_refused() {
        let configured = BTreeSet::from([id("cluster1")]);
        let mut wanted = BTreeMap::new();
        let mut problems = Vec::new();
        let local = ClusterConfig {
            id: id("cluster1"),
            network: NetworkId::new("network1").unwrap(),
            source: ClusterSource::Kubernetes {
                access: KubeAccess::InCluster,
            },
        };
        for (key, secret) in [
            secret(
                "istio-remote-secret-cluster2",
                &[("cluster2", "kubeconfig-2")],
            ),
            secret("copy", &[("cluster2", "other"), ("cluster1", "local")]),
        ] {
            collect(
                &local,
                &key,
                &secret,
                &configured,
                &mut wanted,
                &mut problems,
            );
        }
        assert_eq!(wanted.keys().collect::<Vec<_>>(), [&id("cluster2")]);
        assert_eq!(wanted[&id("cluster2")].kubeconfig, "kubeconfig-2");
        let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(
            messages[0].contains("Secret istio-system/copy: data.cluster1: cluster id cluster1 is a cluster of the mesh description"),
            "{}",
            messages[0]
        );
        assert!(
            messages[1].contains("data.cluster2: cluster id cluster2 is already read from Secret istio-system/istio-remote-secret-cluster2"),
            "{}",
            messages[1]
        );
    }
}
