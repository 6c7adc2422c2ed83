//! The kinds the kube source watches, and how one watched object becomes what the index reads.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use multicluster::model::ClusterId;
use serde_json::Value;

use crate::mesh::{Rejection, Severity};
use crate::resource::{Decoded, Origin, Resource, decode_object};

pub(super) const ISTIO_GROUP: &str = "networking.istio.io";
/// Preferred first: the API server converts between them, so one is enough.
pub(super) const ISTIO_VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];

/// In the order of [`Resource`], which is the order the index reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    Namespace,
    Service,
    EndpointSlice,
    Pod,
    Secret,
    Gateway,
    VirtualService,
    DestinationRule,
    ServiceEntry,
}

pub(super) const KIND_COUNT: usize = 9;
pub(super) const ISTIO_KINDS: [Kind; 4] = [
    Kind::Gateway,
    Kind::VirtualService,
    Kind::DestinationRule,
    Kind::ServiceEntry,
];

impl Kind {
    pub(super) fn index(self) -> usize {
        self as usize
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::Pod => "Pod",
            Kind::Secret => "Secret",
            Kind::Gateway => "Gateway",
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::ServiceEntry => "ServiceEntry",
        }
    }

    pub(super) fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Service => "services",
            Kind::EndpointSlice => "endpointslices",
            Kind::Pod => "pods",
            Kind::Secret => "secrets",
            Kind::Gateway => "gateways",
            Kind::VirtualService => "virtualservices",
            Kind::DestinationRule => "destinationrules",
            Kind::ServiceEntry => "serviceentries",
        }
    }

    /// `/api/v1` or `/apis/<group>/<version>`.
    fn api_prefix(self, istio_version: &str) -> String {
        match self {
            Kind::EndpointSlice => "/apis/discovery.k8s.io/v1".to_string(),
            kind if ISTIO_KINDS.contains(&kind) => format!("/apis/{ISTIO_GROUP}/{istio_version}"),
            _ => "/api/v1".to_string(),
        }
    }

    /// The path the kind is listed and watched at, across namespaces.
    pub(super) fn collection_path(self, istio_version: &str) -> String {
        format!("{}/{}", self.api_prefix(istio_version), self.plural())
    }

    /// The object's own API path, which names it in messages (`kubectl get --raw <path>`).
    pub(super) fn object_path(self, istio_version: &str, namespace: &str, name: &str) -> String {
        let prefix = self.api_prefix(istio_version);
        if self == Kind::Namespace {
            format!("{prefix}/namespaces/{name}")
        } else {
            format!("{prefix}/namespaces/{namespace}/{}/{name}", self.plural())
        }
    }

    pub(super) fn istio_resource(self, version: &str) -> ApiResource {
        let gvk = GroupVersionKind::gvk(ISTIO_GROUP, version, self.name());
        ApiResource::from_gvk_with_plural(&gvk, self.plural())
    }
}

/// `(namespace, name)`; the namespace is empty for Namespaces.
pub(super) type ObjectKey = (String, String);

/// One watched object, decoded, or why it was left out.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub(super) key: ObjectKey,
    pub(super) value: Result<Decoded, Rejection>,
}

pub(super) fn key_of(metadata: &ObjectMeta) -> ObjectKey {
    (
        metadata.namespace.clone().unwrap_or_default(),
        metadata.name.clone().unwrap_or_default(),
    )
}

/// The API server's bookkeeping is not part of what an object means: dropping it keeps memory
/// down (managedFields is often the largest part of an object) and gives the same snapshot as
/// the same YAML read from a file.
fn forget_bookkeeping(metadata: &mut ObjectMeta) {
    metadata.resource_version = None;
    metadata.managed_fields = None;
}

fn origin(path: String) -> Origin {
    Origin {
        path,
        document: 0,
        line: 0,
        item: None,
    }
}

/// A Kubernetes kind: converted to the type the file source decodes into.
pub(super) fn typed<K>(kind: Kind, mut object: K, wrap: fn(K) -> Resource) -> Entry
where
    K: kube::Resource,
{
    forget_bookkeeping(object.meta_mut());
    let key = key_of(object.meta());
    let path = kind.object_path("", &key.0, &key.1);
    Entry {
        key,
        value: Ok(Decoded {
            origin: origin(path),
            resource: wrap(object),
        }),
    }
}

/// An Istio kind: decoded and checked exactly as a YAML document is.
pub(super) fn dynamic(
    cluster: &ClusterId,
    kind: Kind,
    api: &ApiResource,
    mut object: DynamicObject,
) -> Entry {
    forget_bookkeeping(&mut object.metadata);
    let key = key_of(&object.metadata);
    let path = kind.object_path(&api.version, &key.0, &key.1);
    let value = serde_json::to_value(&object)
        .map_err(|error| error.to_string())
        .and_then(|mut value| {
            // List items may come without their type; the watched resource says what they are.
            let Value::Object(map) = &mut value else {
                return Err("the object is not a JSON object".to_string());
            };
            map.insert("apiVersion".into(), Value::String(api.api_version.clone()));
            map.insert("kind".into(), Value::String(api.kind.clone()));
            Ok(value)
        })
        .and_then(|value| {
            decode_object(value, origin(path.clone())).map_err(|error| {
                let text = error.to_string();
                text.strip_prefix(&format!("{path}: "))
                    .unwrap_or(&text)
                    .to_string()
            })
        })
        .map_err(|message| Rejection {
            cluster: cluster.clone(),
            origin: path.clone(),
            kind: kind.name().to_string(),
            namespace: key.0.clone(),
            name: key.1.clone(),
            field: String::new(),
            message,
            severity: Severity::Error,
        });
    Entry { key, value }
}
