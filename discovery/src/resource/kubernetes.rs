//! The Kubernetes kinds the index reads, holding only the fields it reads.
//!
//! k8s-openapi's types carry every field of the API (containers, volumes, managed fields ...):
//! at 100,000 pods that is most of discovery's memory and decode time, for data nothing uses.
//! These mirror k8s-openapi's field names and types (so schema errors read the same, e.g.
//! `spec.ports[0].port: invalid type: string "eighty", expected i32`) and their leniency: unknown
//! fields are ignored, and a required field that is absent or null takes its default.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use multicluster::model::Labels;
use serde::{Deserialize, Deserializer};

/// k8s-openapi reads every required field as optional and defaults it; so do we.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// The part of `metadata` the index reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ObjectMeta {
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// Shared: the pods of one workload carry the same set, and at 100,000 pods their own
    /// copies were about half of the decoded objects' memory (the decoder interns them per file).
    #[serde(default, deserialize_with = "shared_labels")]
    pub labels: Option<Labels>,
}

/// One shared copy of each distinct label set met so far: the decoder keeps one per file, the
/// index one per build.
#[derive(Debug, Default)]
pub struct LabelSets(HashSet<Labels>);

impl LabelSets {
    /// The set equal to `labels` met before, else `labels` itself, from now on known.
    pub fn share(&mut self, labels: &Labels) -> Labels {
        if let Some(shared) = self.0.get(labels) {
            return Arc::clone(shared);
        }
        self.0.insert(Arc::clone(labels));
        Arc::clone(labels)
    }
}

fn shared_labels<'de, D>(deserializer: D) -> Result<Option<Labels>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<BTreeMap<String, String>>::deserialize(deserializer).map(|labels| labels.map(Arc::new))
}

/// `v1` Service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Service {
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    pub spec: Option<ServiceSpec>,
    pub status: Option<ServiceStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub ports: Option<Vec<ServicePort>>,
    #[serde(rename = "externalIPs")]
    pub external_ips: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub port: i32,
    pub target_port: Option<IntOrString>,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub load_balancer: Option<LoadBalancerStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct LoadBalancerStatus {
    pub ingress: Option<Vec<LoadBalancerIngress>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct LoadBalancerIngress {
    pub ip: Option<String>,
    pub hostname: Option<String>,
}

/// `discovery.k8s.io/v1` EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_default")]
    pub address_type: String,
    pub endpoints: Option<Vec<Endpoint>>,
    pub ports: Option<Vec<EndpointPort>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(default, deserialize_with = "null_default")]
    pub addresses: Vec<String>,
    pub conditions: Option<EndpointConditions>,
    pub target_ref: Option<ObjectReference>,
    pub zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct EndpointConditions {
    pub ready: Option<bool>,
    pub serving: Option<bool>,
    pub terminating: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct ObjectReference {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPort {
    pub name: Option<String>,
    pub port: Option<i32>,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
}

/// `v1` Pod.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct Pod {
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    pub spec: Option<PodSpec>,
    pub status: Option<PodStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub service_account_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct PodStatus {
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIp>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct PodIp {
    #[serde(default, deserialize_with = "null_default")]
    pub ip: String,
}

/// From the full k8s-openapi objects a Kubernetes client receives.
mod from_openapi {
    use k8s_openapi::api::core::v1 as core;
    use k8s_openapi::api::discovery::v1 as discovery;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

    use super::*;

    impl From<meta::ObjectMeta> for ObjectMeta {
        fn from(metadata: meta::ObjectMeta) -> Self {
            ObjectMeta {
                name: metadata.name,
                namespace: metadata.namespace,
                labels: metadata.labels.map(Arc::new),
            }
        }
    }

    impl From<core::Service> for Service {
        fn from(service: core::Service) -> Self {
            Service {
                metadata: service.metadata.into(),
                spec: service.spec.map(|spec| ServiceSpec {
                    type_: spec.type_,
                    ports: spec.ports.map(|ports| {
                        ports
                            .into_iter()
                            .map(|port| ServicePort {
                                name: port.name,
                                port: port.port,
                                target_port: port.target_port,
                                protocol: port.protocol,
                                app_protocol: port.app_protocol,
                            })
                            .collect()
                    }),
                    external_ips: spec.external_ips,
                }),
                status: service.status.map(|status| ServiceStatus {
                    load_balancer: status.load_balancer.map(|balancer| LoadBalancerStatus {
                        ingress: balancer.ingress.map(|ingress| {
                            ingress
                                .into_iter()
                                .map(|ingress| LoadBalancerIngress {
                                    ip: ingress.ip,
                                    hostname: ingress.hostname,
                                })
                                .collect()
                        }),
                    }),
                }),
            }
        }
    }

    impl From<discovery::EndpointSlice> for EndpointSlice {
        fn from(slice: discovery::EndpointSlice) -> Self {
            EndpointSlice {
                metadata: slice.metadata.into(),
                address_type: slice.address_type,
                endpoints: slice.endpoints.map(|endpoints| {
                    endpoints
                        .into_iter()
                        .map(|endpoint| Endpoint {
                            addresses: endpoint.addresses,
                            conditions: endpoint.conditions.map(|conditions| EndpointConditions {
                                ready: conditions.ready,
                                serving: conditions.serving,
                                terminating: conditions.terminating,
                            }),
                            target_ref: endpoint.target_ref.map(|reference| ObjectReference {
                                kind: reference.kind,
                                name: reference.name,
                                namespace: reference.namespace,
                            }),
                            zone: endpoint.zone,
                        })
                        .collect()
                }),
                ports: slice.ports.map(|ports| {
                    ports
                        .into_iter()
                        .map(|port| EndpointPort {
                            name: port.name,
                            port: port.port,
                            protocol: port.protocol,
                            app_protocol: port.app_protocol,
                        })
                        .collect()
                }),
            }
        }
    }

    impl From<core::Pod> for Pod {
        fn from(pod: core::Pod) -> Self {
            Pod {
                metadata: pod.metadata.into(),
                spec: pod.spec.map(|spec| PodSpec {
                    service_account_name: spec.service_account_name,
                }),
                status: pod.status.map(|status| PodStatus {
                    pod_ip: status.pod_ip,
                    pod_ips: status
                        .pod_ips
                        .map(|ips| ips.into_iter().map(|ip| PodIp { ip: ip.ip }).collect()),
                }),
            }
        }
    }
}
