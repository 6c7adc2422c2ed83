//! One cluster's objects as its watchers last reported them, per kind.

use std::collections::BTreeMap;

use crate::mesh::Rejection;
use crate::resource::Decoded;

use super::kinds::{Entry, KIND_COUNT, Kind, ObjectKey};

/// What a watcher reported, with its objects already converted.
#[derive(Debug)]
pub(super) enum StoreEvent {
    Apply(Entry),
    Delete(ObjectKey),
    /// A (re)list starts: the objects that follow replace the kind's current set at `InitDone`.
    Init,
    InitApply(Entry),
    InitDone,
}

type Objects = BTreeMap<ObjectKey, Result<Decoded, Rejection>>;

#[derive(Debug, Default)]
struct KindState {
    objects: Objects,
    /// Filled during a (re)list; the current objects stay in use until it completes, so a
    /// relist after `410 Gone` never shows a half-empty cluster.
    relisting: Option<Objects>,
    synced: bool,
    /// Why the kind cannot be listed (RBAC, a missing API), reported with the cluster.
    problem: Option<Rejection>,
}

#[derive(Debug)]
pub(super) struct Store {
    kinds: [KindState; KIND_COUNT],
}

impl Store {
    pub(super) fn new() -> Self {
        Store {
            kinds: Default::default(),
        }
    }

    pub(super) fn apply(&mut self, kind: Kind, event: StoreEvent) {
        let state = &mut self.kinds[kind.index()];
        match event {
            StoreEvent::Apply(entry) => {
                state.objects.insert(entry.key, entry.value);
            }
            StoreEvent::Delete(key) => {
                state.objects.remove(&key);
            }
            StoreEvent::Init => state.relisting = Some(Objects::new()),
            StoreEvent::InitApply(entry) => {
                state
                    .relisting
                    .get_or_insert_default()
                    .insert(entry.key, entry.value);
            }
            StoreEvent::InitDone => {
                state.objects = state.relisting.take().unwrap_or_default();
                state.synced = true;
                state.problem = None;
            }
        }
    }

    /// The kind cannot be read: what it had stays, and start-up does not wait for it.
    pub(super) fn refuse(&mut self, kind: Kind, problem: Rejection) -> bool {
        let state = &mut self.kinds[kind.index()];
        let changed = state.problem.as_ref() != Some(&problem) || !state.synced;
        state.problem = Some(problem);
        state.synced = true;
        changed
    }

    pub(super) fn synced(&self) -> bool {
        self.kinds.iter().all(|state| state.synced)
    }

    /// Kinds in index order, objects in namespace/name order.
    pub(super) fn resources(&self) -> Vec<Decoded> {
        self.kinds
            .iter()
            .flat_map(|state| state.objects.values())
            .filter_map(|value| value.as_ref().ok().cloned())
            .collect()
    }

    pub(super) fn problems(&self) -> Vec<Rejection> {
        let mut problems: Vec<Rejection> = self
            .kinds
            .iter()
            .filter_map(|state| state.problem.clone())
            .collect();
        problems.extend(
            self.kinds
                .iter()
                .flat_map(|state| state.objects.values())
                .filter_map(|value| value.as_ref().err().cloned()),
        );
        problems
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::super::kinds::typed;
    use super::*;
    use crate::resource::Resource;

    fn namespace(name: &str) -> Entry {
        let object = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                resource_version: Some("7".to_string()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        typed(Kind::Namespace, object, Resource::from)
    }

    fn names(store: &Store) -> Vec<String> {
        store
            .resources()
            .iter()
            .map(|decoded| decoded.name().to_string())
            .collect()
    }

    #[test]
    fn a_relist_replaces_the_kind_only_when_complete() {
        let mut store = Store::new();
        store.apply(Kind::Namespace, StoreEvent::Init);
        store.apply(Kind::Namespace, StoreEvent::InitApply(namespace("b")));
        store.apply(Kind::Namespace, StoreEvent::InitApply(namespace("a")));
        assert!(names(&store).is_empty(), "nothing before InitDone");
        store.apply(Kind::Namespace, StoreEvent::InitDone);
        assert_eq!(names(&store), ["a", "b"]);

        store.apply(Kind::Namespace, StoreEvent::Init);
        store.apply(Kind::Namespace, StoreEvent::InitApply(namespace("c")));
        assert_eq!(
            names(&store),
            ["a", "b"],
            "the old set serves during a relist"
        );
        store.apply(Kind::Namespace, StoreEvent::InitDone);
        assert_eq!(names(&store), ["c"]);

        store.apply(
            Kind::Namespace,
            StoreEvent::Delete((String::new(), "c".into())),
        );
        store.apply(Kind::Namespace, StoreEvent::Apply(namespace("d")));
        assert_eq!(names(&store), ["d"]);
        let Resource::Namespace(namespace) = &store.resources()[0].resource else {
            panic!("not a namespace")
        };
        assert_eq!(
            namespace.metadata.resource_version, None,
            "bookkeeping is dropped"
        );
    }

    #[test]
    fn synced_needs_every_kind() {
        let mut store = Store::new();
        store.apply(Kind::Namespace, StoreEvent::InitDone);
        assert!(!store.synced());
        for kind in [
            Kind::Service,
            Kind::EndpointSlice,
            Kind::Pod,
            Kind::Secret,
            Kind::Gateway,
            Kind::VirtualService,
            Kind::DestinationRule,
            Kind::ServiceEntry,
        ] {
            store.apply(kind, StoreEvent::InitDone);
        }
        assert!(store.synced());
    }
}
