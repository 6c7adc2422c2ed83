//! The well-known labels the index reads, with the meaning Istio and Kubernetes give them.

use std::sync::{Mutex, PoisonError};

use multicluster::model::Labels;

use crate::resource::kubernetes::{LabelSets, ObjectMeta};

/// On a pod, the system namespace, or a gateway Service: the network it belongs to.
pub const NETWORK_LABEL: &str = "topology.istio.io/network";
/// On a network gateway Service: the port that carries AUTO_PASSTHROUGH traffic.
pub const GATEWAY_PORT_LABEL: &str = "networking.istio.io/gatewayPort";
/// Istio's default east-west gateway port.
pub const DEFAULT_GATEWAY_PORT: u16 = 15443;
/// Set by Istio's injector on pods whose proxy terminates mesh mTLS.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
pub const TLS_MODE_ISTIO: &str = "istio";
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
pub const SUBZONE_LABEL: &str = "topology.istio.io/subzone";
/// On an EndpointSlice: the Service it belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub(crate) fn label<'a>(metadata: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(key))
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}

/// One shared copy of each distinct label set, for the endpoints of one build. Locked rather
/// than borrowed mutably because the views that hand out endpoints are shared references.
#[derive(Debug, Default)]
pub(crate) struct LabelInterner {
    known: Mutex<LabelSets>,
}

impl LabelInterner {
    /// `metadata`'s labels as a shared set: the set met before if there was one.
    pub(crate) fn labels_of(&self, metadata: &ObjectMeta) -> Labels {
        let Some(labels) = metadata.labels.as_ref().filter(|labels| !labels.is_empty()) else {
            return Labels::default();
        };
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .share(labels)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn metadata(labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            labels: Some(Arc::new(
                labels
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.to_string()))
                    .collect(),
            )),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn equal_label_sets_share_one_copy_and_different_ones_do_not() {
        let interner = LabelInterner::default();
        let first = interner.labels_of(&metadata(&[("app", "reviews"), ("version", "v1")]));
        let again = interner.labels_of(&metadata(&[("version", "v1"), ("app", "reviews")]));
        let other = interner.labels_of(&metadata(&[("app", "reviews"), ("version", "v2")]));
        assert!(Arc::ptr_eq(&first, &again));
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(other.get("version").map(String::as_str), Some("v2"));
        assert!(interner.labels_of(&ObjectMeta::default()).is_empty());
    }
}
