//! The objects of Istio's remote-cluster credentials: a reader ServiceAccount with its token
//! Secret and read-only RBAC (applied in the remote cluster), and the `istio/multiCluster`
//! Secret holding a kubeconfig for it (applied where discovery runs).

use serde_json::{Value, json};

pub const READER: &str = "isthmus-reader-service-account";

pub fn token_secret_name() -> String {
    format!("{READER}-token")
}

pub fn cluster_role_name(namespace: &str) -> String {
    format!("isthmus-reader-clusterrole-{namespace}")
}

/// Istio's `istio-reader-clusterrole` read rules (get, list, watch only; its two `create`
/// rules for token and access reviews serve istiod's own authentication and are left out).
fn reader_rules() -> Value {
    let read = json!(["get", "list", "watch"]);
    json!([
        {"apiGroups": ["config.istio.io", "security.istio.io", "networking.istio.io",
                       "authentication.istio.io", "rbac.istio.io", "telemetry.istio.io",
                       "extensions.istio.io"],
         "resources": ["*"], "verbs": read},
        {"apiGroups": [""],
         "resources": ["endpoints", "pods", "services", "nodes", "replicationcontrollers",
                       "namespaces", "secrets"],
         "verbs": read},
        {"apiGroups": ["networking.istio.io"], "resources": ["workloadentries"], "verbs": read},
        {"apiGroups": ["networking.x-k8s.io", "gateway.networking.k8s.io"],
         "resources": ["gateways"], "verbs": read},
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
         "verbs": read},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read},
        {"apiGroups": ["multicluster.x-k8s.io"], "resources": ["serviceexports", "serviceimports"],
         "verbs": read},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": read},
    ])
}

/// What the remote cluster needs so that a token for discovery exists there.
pub fn reader(namespace: &str) -> Vec<Value> {
    let labels = json!({"app.kubernetes.io/part-of": "isthmus"});
    vec![
        json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": READER, "namespace": namespace, "labels": labels},
        }),
        // Kubernetes fills in `data.token` for this type; since 1.24 it no longer makes one
        // per ServiceAccount by itself.
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "metadata": {"name": token_secret_name(), "namespace": namespace, "labels": labels,
                         "annotations": {"kubernetes.io/service-account.name": READER}},
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": cluster_role_name(namespace), "labels": labels},
            "rules": reader_rules(),
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_role_name(namespace), "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": cluster_role_name(namespace)},
            "subjects": [{"kind": "ServiceAccount", "name": READER, "namespace": namespace}],
        }),
    ]
}

/// The kubeconfig discovery uses for cluster `name`.
pub fn kubeconfig(
    name: &str,
    server: &str,
    certificate_authority_data: Option<&str>,
    token: &str,
) -> Value {
    let cluster = match certificate_authority_data {
        Some(data) => json!({"server": server, "certificate-authority-data": data}),
        None => json!({"server": server, "insecure-skip-tls-verify": true}),
    };
    json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
        "users": [{"name": name, "user": {"token": token}}],
    })
}

/// Istio's remote secret: one data key, the cluster id, whose value is its kubeconfig.
pub fn remote_secret(name: &str, namespace: &str, kubeconfig_yaml: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": format!("istio-remote-secret-{name}"), "namespace": namespace,
            "labels": {"istio/multiCluster": "true"},
            "annotations": {"networking.istio.io/cluster": name},
        },
        "stringData": {name: kubeconfig_yaml},
    })
}
