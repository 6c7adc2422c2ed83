//! The input model of discovery: Kubernetes-shaped YAML decoded into typed resources.
//!
//! A file holds any number of documents separated by `---`; each document is a Namespace,
//! Service, EndpointSlice, Pod (the lean types of [`kubernetes`]), Secret (k8s-openapi), an Istio Gateway,
//! VirtualService, DestinationRule or ServiceEntry, or a `List` of those. A document that
//! cannot be decoded is reported as a [`DecodeError`] and skipped; the rest are kept.

mod decode;
pub mod fast_yaml;
pub mod kubernetes;
mod split;

use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret};

pub use decode::{decode_documents, decode_object};
pub use kubernetes::{EndpointSlice, Pod, Service};

pub use crate::istio::IstioObject;
use crate::istio::{
    DEFAULT_NAMESPACE, DestinationRuleSpec, GatewaySpec, ServiceEntrySpec, VirtualServiceSpec,
};

/// Where a resource came from, for messages: file, document and (in a `List`) item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// The path (or other label) given to [`decode_documents`].
    pub path: String,
    /// 1-based position of the document in the file; 0 for an object read from an API
    /// server, whose `path` is then the object's API path.
    pub document: usize,
    /// 1-based line where the document starts.
    pub line: usize,
    /// 0-based index in the `items` of a `List` document.
    pub item: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.document == 0 {
            return f.write_str(&self.path);
        }
        write!(
            f,
            "{} (document {}, line {}",
            self.path, self.document, self.line
        )?;
        if let Some(item) = self.item {
            write!(f, ", items[{item}]")?;
        }
        f.write_str(")")
    }
}

/// One decoded Kubernetes or Istio object. Shared, not copied: a source hands the index the
/// same objects on every rebuild, and a clone is a reference count.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Namespace(Arc<Namespace>),
    Service(Arc<Service>),
    EndpointSlice(Arc<EndpointSlice>),
    Pod(Arc<Pod>),
    Secret(Arc<Secret>),
    Gateway(Arc<IstioObject<GatewaySpec>>),
    VirtualService(Arc<IstioObject<VirtualServiceSpec>>),
    DestinationRule(Arc<IstioObject<DestinationRuleSpec>>),
    ServiceEntry(Arc<IstioObject<ServiceEntrySpec>>),
}

impl Resource {
    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Namespace(_) => "Namespace",
            Resource::Service(_) => "Service",
            Resource::EndpointSlice(_) => "EndpointSlice",
            Resource::Pod(_) => "Pod",
            Resource::Secret(_) => "Secret",
            Resource::Gateway(_) => "Gateway",
            Resource::VirtualService(_) => "VirtualService",
            Resource::DestinationRule(_) => "DestinationRule",
            Resource::ServiceEntry(_) => "ServiceEntry",
        }
    }

    /// Whether both are the same decoded object (not merely equal ones).
    pub fn same_object(&self, other: &Resource) -> bool {
        match (self, other) {
            (Resource::Namespace(a), Resource::Namespace(b)) => Arc::ptr_eq(a, b),
            (Resource::Service(a), Resource::Service(b)) => Arc::ptr_eq(a, b),
            (Resource::EndpointSlice(a), Resource::EndpointSlice(b)) => Arc::ptr_eq(a, b),
            (Resource::Pod(a), Resource::Pod(b)) => Arc::ptr_eq(a, b),
            (Resource::Secret(a), Resource::Secret(b)) => Arc::ptr_eq(a, b),
            (Resource::Gateway(a), Resource::Gateway(b)) => Arc::ptr_eq(a, b),
            (Resource::VirtualService(a), Resource::VirtualService(b)) => Arc::ptr_eq(a, b),
            (Resource::DestinationRule(a), Resource::DestinationRule(b)) => Arc::ptr_eq(a, b),
            (Resource::ServiceEntry(a), Resource::ServiceEntry(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// `metadata.name` and `metadata.namespace` as written.
    fn name_and_namespace(&self) -> (Option<&str>, Option<&str>) {
        fn pair<'a>(
            name: &'a Option<String>,
            namespace: &'a Option<String>,
        ) -> (Option<&'a str>, Option<&'a str>) {
            (name.as_deref(), namespace.as_deref())
        }
        match self {
            Resource::Namespace(o) => pair(&o.metadata.name, &o.metadata.namespace),
            Resource::Service(o) => pair(&o.metadata.name, &o.metadata.namespace),
            Resource::EndpointSlice(o) => pair(&o.metadata.name, &o.metadata.namespace),
            Resource::Pod(o) => pair(&o.metadata.name, &o.metadata.namespace),
            Resource::Secret(o) => pair(&o.metadata.name, &o.metadata.namespace),
            Resource::Gateway(o) => pair(&o.metadata.name, &o.metadata.namespace),
            Resource::VirtualService(o) => pair(&o.metadata.name, &o.metadata.namespace),
            Resource::DestinationRule(o) => pair(&o.metadata.name, &o.metadata.namespace),
            Resource::ServiceEntry(o) => pair(&o.metadata.name, &o.metadata.namespace),
        }
    }

    pub fn name(&self) -> &str {
        self.name_and_namespace().0.unwrap_or_default()
    }

    /// The namespace, `default` when absent; empty for the cluster-scoped Namespace kind.
    pub fn namespace(&self) -> &str {
        if matches!(self, Resource::Namespace(_)) {
            return "";
        }
        self.name_and_namespace()
            .1
            .filter(|namespace| !namespace.is_empty())
            .unwrap_or(DEFAULT_NAMESPACE)
    }
}

macro_rules! from_object {
    ($($kind:ident: $from:ty => $lean:ty),* $(,)?) => {$(
        impl From<$from> for Resource {
            fn from(object: $from) -> Self {
                Resource::$kind(Arc::new(<$lean>::from(object)))
            }
        }
    )*};
}

// What a Kubernetes client receives, kept as the index reads it.
from_object! {
    Namespace: Namespace => Namespace,
    Service: k8s_openapi::api::core::v1::Service => Service,
    EndpointSlice: k8s_openapi::api::discovery::v1::EndpointSlice => EndpointSlice,
    Pod: k8s_openapi::api::core::v1::Pod => Pod,
    Secret: Secret => Secret,
}

/// A resource together with where it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub origin: Origin,
    pub resource: Resource,
}

impl Decoded {
    pub fn kind(&self) -> &'static str {
        self.resource.kind()
    }

    pub fn name(&self) -> &str {
        self.resource.name()
    }

    pub fn namespace(&self) -> &str {
        self.resource.namespace()
    }
}

/// A document that could not be turned into a [`Resource`]; it is skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{origin}: invalid YAML: {message}")]
    Yaml { origin: Origin, message: String },
    #[error(
        "{origin}: expected a Kubernetes object (a mapping with apiVersion and kind), found {found}"
    )]
    NotAnObject { origin: Origin, found: &'static str },
    #[error("{origin}: missing {field}: every document needs apiVersion and kind")]
    MissingTypeMeta { origin: Origin, field: &'static str },
    #[error(
        "{origin}: unsupported apiVersion {api_version:?} with kind {kind:?}: Isthmus reads v1 Namespace, Service, Pod, Secret, List, discovery.k8s.io/v1 EndpointSlice and networking.istio.io/v1alpha3, v1beta1 or v1 Gateway, VirtualService, DestinationRule, ServiceEntry"
    )]
    Unsupported {
        origin: Origin,
        api_version: String,
        kind: String,
    },
    #[error("{origin}: {kind} {name:?} ({api_version}) does not match its schema: {message}")]
    Invalid {
        origin: Origin,
        api_version: String,
        kind: String,
        name: String,
        message: String,
    },
    #[error("{origin}: a List inside a List is not supported: flatten the items")]
    NestedList { origin: Origin },
}

impl DecodeError {
    pub fn origin(&self) -> &Origin {
        match self {
            DecodeError::Yaml { origin, .. }
            | DecodeError::NotAnObject { origin, .. }
            | DecodeError::MissingTypeMeta { origin, .. }
            | DecodeError::Unsupported { origin, .. }
            | DecodeError::Invalid { origin, .. }
            | DecodeError::NestedList { origin } => origin,
        }
    }
}
