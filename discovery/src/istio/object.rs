//! The envelope every Istio resource shares: apiVersion, Kubernetes metadata and a spec.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The namespace Kubernetes assumes when metadata names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// One Istio resource (`networking.istio.io` Gateway, VirtualService, ...).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IstioObject<S> {
    /// As written: `networking.istio.io/v1alpha3`, `.../v1beta1` or `.../v1`.
    pub api_version: String,
    pub metadata: ObjectMeta,
    pub spec: S,
    /// Field paths (e.g. `spec.servers[0].tls.foo`) present in the YAML but not known to
    /// Isthmus; reported as validation warnings, otherwise ignored.
    pub unknown_fields: Vec<String>,
}

impl<S> IstioObject<S> {
    pub fn new(name: &str, namespace: &str, spec: S) -> Self {
        Self {
            api_version: "networking.istio.io/v1".to_string(),
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                ..ObjectMeta::default()
            },
            spec,
            unknown_fields: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The namespace, `default` when the metadata names none (as `kubectl apply` does).
    pub fn namespace(&self) -> &str {
        self.metadata
            .namespace
            .as_deref()
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE)
    }
}
