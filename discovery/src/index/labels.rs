//! The well-known labels the index reads, with the meaning Istio and Kubernetes give them.

use std::collections::BTreeMap;

use crate::resource::kubernetes::ObjectMeta;

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

pub(crate) fn labels(metadata: &ObjectMeta) -> BTreeMap<String, String> {
    metadata.labels.clone().unwrap_or_default()
}

pub(crate) fn label<'a>(metadata: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(key))
        .map(String::as_str)
        .filter(|value| !value.is_empty())
}
