//! One cluster's watchers: one kube-rs watcher per kind (the Istio kinds once their API
//! version is known), the remote-cluster Secrets of a configured cluster, and a reachability
//! probe. They share one [`ClusterState`] and signal the controller after each change.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event, watcher};
use multicluster::model::ClusterId;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::index::ClusterResources;
use crate::mesh::{Rejection, Severity, SyncState};
use crate::resource::Resource;

use super::backoff::RetryBackoff;
use super::kinds::{self, Entry, ISTIO_KINDS, ISTIO_VERSIONS, Kind, ObjectKey, key_of};
use super::remote::MULTICLUSTER_SELECTOR;
use super::store::{Store, StoreEvent};

/// Timings of one cluster's watchers.
#[derive(Debug, Clone, Copy)]
pub(super) struct WatchTimings {
    pub(super) probe_interval: Duration,
    pub(super) backoff_initial: Duration,
    pub(super) backoff_max: Duration,
    /// How often a cluster without the Istio API is asked again (CRDs installed later).
    pub(super) istio_recheck: Duration,
}

/// What the watchers of one cluster know.
#[derive(Debug)]
pub(super) struct ClusterState {
    pub(super) store: Store,
    /// The remote-cluster Secrets, once listed; `None` for clusters that do not follow them.
    pub(super) remote_secrets: Option<BTreeMap<ObjectKey, Secret>>,
    follows_secrets: bool,
    /// Last time the API server answered (a watch event, a list, the probe).
    pub(super) last_ok: Instant,
    /// Set while the API server cannot be reached: the cluster is stale.
    pub(super) unreachable: Option<String>,
}

impl ClusterState {
    pub(super) fn synced(&self) -> bool {
        self.store.synced() && (!self.follows_secrets || self.remote_secrets.is_some())
    }

    pub(super) fn stale(&self) -> bool {
        self.unreachable.is_some()
    }

    fn reached(&mut self) -> bool {
        self.last_ok = Instant::now();
        self.unreachable.take().is_some()
    }

    fn unreachable(&mut self, reason: String) -> bool {
        let changed = self.unreachable.is_none();
        self.unreachable = Some(reason);
        changed
    }

    fn sync_state(&self) -> SyncState {
        match (&self.unreachable, self.synced()) {
            (None, true) => SyncState::Synced,
            (None, false) => SyncState::Pending,
            (Some(reason), true) => SyncState::Failed(format!(
                "API server unreachable ({reason}); serving the last known objects"
            )),
            (Some(reason), false) => SyncState::Failed(format!(
                "API server unreachable ({reason}); nothing read yet"
            )),
        }
    }
}

struct Shared {
    serial: u64,
    cluster: ClusterId,
    state: Mutex<ClusterState>,
    signals: mpsc::UnboundedSender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ClusterState> {
        // A panicking watcher cannot leave the state half-updated in a way that matters more
        // than losing the cluster, so a poisoned lock is taken over.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut ClusterState) -> bool) {
        let (changed, unreachable) = {
            let mut state = self.lock();
            let was_stale = state.stale();
            let changed = change(&mut state);
            (changed, state.unreachable.clone().filter(|_| !was_stale))
        };
        if let Some(reason) = unreachable {
            tracing::warn!(cluster = %self.cluster, %reason, "Kubernetes API server unreachable; keeping the cluster's last known objects");
        }
        if changed {
            // The controller may be gone during shutdown; nothing is left to tell then.
            let _ = self.signals.send(self.serial);
        }
    }

    /// A watcher failed. Connection failures make the cluster stale; an API error is about
    /// one kind (RBAC, a missing CRD) and is reported with it; `410 Gone` is routine (the
    /// watcher relists).
    fn watch_failed(&self, kind: Option<(Kind, &str)>, error: &watcher::Error) {
        let status = match error {
            watcher::Error::WatchError(status) if status.code == 410 => {
                tracing::debug!(cluster = %self.cluster, "watch expired (410 Gone), relisting");
                return;
            }
            watcher::Error::WatchError(status) => Some(status.as_ref()),
            watcher::Error::InitialListFailed(kube::Error::Api(status))
            | watcher::Error::WatchStartFailed(kube::Error::Api(status))
            | watcher::Error::WatchFailed(kube::Error::Api(status)) => Some(status.as_ref()),
            _ => None,
        };
        match (status, kind) {
            (Some(status), Some((kind, version))) => {
                let message = format!(
                    "cannot list and watch {}: {} ({}): grant discovery's service account list and watch on {}",
                    kind.plural(),
                    status.message,
                    status.code,
                    kind.plural()
                );
                tracing::warn!(cluster = %self.cluster, kind = kind.name(), %message, "kind not readable");
                let problem = Rejection {
                    cluster: self.cluster.clone(),
                    origin: kind.collection_path(version),
                    kind: String::new(),
                    namespace: String::new(),
                    name: String::new(),
                    field: String::new(),
                    message,
                    severity: Severity::Error,
                };
                self.update(|state| {
                    let reached = state.reached();
                    state.store.refuse(kind, problem) || reached
                });
            }
            (Some(status), None) => {
                tracing::warn!(cluster = %self.cluster, message = %status.message, code = status.code, "cannot watch remote-cluster Secrets");
                self.update(|state| {
                    let reached = state.reached();
                    let first = state.remote_secrets.is_none();
                    state.remote_secrets.get_or_insert_default();
                    first || reached
                });
            }
            (None, _) => {
                let reason = error.to_string();
                self.update(|state| state.unreachable(reason));
            }
        }
    }
}

/// Aborts its task when dropped, so a removed cluster stops all of its watchers.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running cluster. Dropping it stops every watcher.
pub(super) struct ClusterWatch {
    shared: Arc<Shared>,
    _tasks: Vec<Task>,
}

impl ClusterWatch {
    /// `system_namespace` is given for clusters that follow remote-cluster Secrets.
    pub(super) fn start(
        cluster: ClusterId,
        client: Client,
        timings: WatchTimings,
        system_namespace: Option<&str>,
        serial: u64,
        signals: mpsc::UnboundedSender<u64>,
    ) -> Self {
        let shared = Arc::new(Shared {
            serial,
            cluster: cluster.clone(),
            state: Mutex::new(ClusterState {
                store: Store::new(),
                remote_secrets: None,
                follows_secrets: system_namespace.is_some(),
                last_ok: Instant::now(),
                unreachable: None,
            }),
            signals,
        });
        let backoff = || RetryBackoff::new(timings.backoff_initial, timings.backoff_max);
        let mut tasks = vec![
            spawn_typed::<Namespace>(&shared, &client, backoff(), Kind::Namespace, Resource::from),
            spawn_typed::<Service>(&shared, &client, backoff(), Kind::Service, Resource::from),
            spawn_typed::<EndpointSlice>(
                &shared,
                &client,
                backoff(),
                Kind::EndpointSlice,
                Resource::from,
            ),
            spawn_typed::<Pod>(&shared, &client, backoff(), Kind::Pod, Resource::from),
            spawn_typed::<Secret>(&shared, &client, backoff(), Kind::Secret, Resource::from),
            Task(tokio::spawn(follow_istio(
                Arc::clone(&shared),
                client.clone(),
                timings,
            ))),
            Task(tokio::spawn(probe(
                Arc::clone(&shared),
                client.clone(),
                timings.probe_interval,
            ))),
        ];
        if let Some(namespace) = system_namespace {
            let api = Api::<Secret>::namespaced(client, namespace);
            tasks.push(Task(tokio::spawn(follow_remote_secrets(
                Arc::clone(&shared),
                api,
                backoff(),
            ))));
        }
        ClusterWatch {
            shared,
            _tasks: tasks,
        }
    }

    pub(super) fn state(&self) -> MutexGuard<'_, ClusterState> {
        self.shared.lock()
    }

    pub(super) fn synced(&self) -> bool {
        self.state().synced()
    }

    /// What the index reads from this cluster, with `extra` problems (about its Secrets).
    pub(super) fn resources(&self, cluster: &ClusterId, extra: &[Rejection]) -> ClusterResources {
        let state = self.state();
        let mut problems = state.store.problems();
        problems.extend(extra.iter().cloned());
        ClusterResources {
            cluster: cluster.clone(),
            resources: state.store.resources(),
            problems,
            sync: state.sync_state(),
        }
    }
}

fn spawn_typed<K>(
    shared: &Arc<Shared>,
    client: &Client,
    backoff: RetryBackoff,
    kind: Kind,
    wrap: fn(K) -> Resource,
) -> Task
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let api = Api::<K>::all(client.clone());
    let shared = Arc::clone(shared);
    Task(tokio::spawn(async move {
        follow(&shared, (kind, ""), api, backoff, |object| {
            kinds::typed(kind, object, wrap)
        })
        .await;
    }))
}

/// Feeds one kind's watch events into the store until the task is aborted.
async fn follow<K>(
    shared: &Shared,
    (kind, version): (Kind, &str),
    api: Api<K>,
    backoff: RetryBackoff,
    convert: impl Fn(K) -> Entry,
) where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let stream = watcher(api, watcher::Config::default()).backoff(backoff);
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(Event::Apply(object)) => StoreEvent::Apply(convert(object)),
            Ok(Event::Delete(object)) => StoreEvent::Delete(key_of(object.meta())),
            Ok(Event::Init) => StoreEvent::Init,
            Ok(Event::InitApply(object)) => StoreEvent::InitApply(convert(object)),
            Ok(Event::InitDone) => StoreEvent::InitDone,
            Err(error) => {
                shared.watch_failed(Some((kind, version)), &error);
                continue;
            }
        };
        // Init and InitApply change nothing visible; only their InitDone does.
        let visible = !matches!(event, StoreEvent::Init | StoreEvent::InitApply(_));
        shared.update(|state| {
            let reached = state.reached();
            state.store.apply(kind, event);
            visible || reached
        });
    }
}

/// Finds the Istio API version the cluster serves, then watches the four Istio kinds.
async fn follow_istio(shared: Arc<Shared>, client: Client, timings: WatchTimings) {
    let version = loop {
        match istio_version(&client).await {
            Ok(Some(version)) => break version,
            Ok(None) => {
                tracing::warn!(cluster = %shared.cluster, "networking.istio.io is not served: Istio's CRDs are not installed; Gateways, VirtualServices, DestinationRules and ServiceEntries are not read");
                for kind in ISTIO_KINDS {
                    let problem = Rejection {
                        cluster: shared.cluster.clone(),
                        origin: format!("/apis/{}", kinds::ISTIO_GROUP),
                        kind: String::new(),
                        namespace: String::new(),
                        name: String::new(),
                        field: String::new(),
                        message: format!(
                            "the API server serves no {} (networking.istio.io v1, v1beta1 or v1alpha3): install Istio's CRDs to use them",
                            kind.plural()
                        ),
                        severity: Severity::Warning,
                    };
                    shared.update(|state| state.reached() | state.store.refuse(kind, problem));
                }
                tokio::time::sleep(timings.istio_recheck).await;
            }
            Err(reason) => {
                shared.update(|state| state.unreachable(reason));
                tokio::time::sleep(timings.backoff_initial).await;
            }
        }
    };
    let backoff = || RetryBackoff::new(timings.backoff_initial, timings.backoff_max);
    let watchers = ISTIO_KINDS.map(|kind| {
        let resource = kind.istio_resource(version);
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
        let shared = &shared;
        let cluster = shared.cluster.clone();
        async move {
            follow(shared, (kind, version), api, backoff(), |object| {
                kinds::dynamic(&cluster, kind, &resource, object)
            })
            .await;
        }
    });
    futures::future::join_all(watchers).await;
}

/// The first Istio version the API server serves; `None` when it serves none of them.
async fn istio_version(client: &Client) -> Result<Option<&'static str>, String> {
    for version in ISTIO_VERSIONS {
        match client
            .list_api_group_resources(&format!("{}/{version}", kinds::ISTIO_GROUP))
            .await
        {
            Ok(_) => return Ok(Some(version)),
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(None)
}

/// Keeps the remote-cluster Secrets of the system namespace in the state.
async fn follow_remote_secrets(shared: Arc<Shared>, api: Api<Secret>, backoff: RetryBackoff) {
    let config = watcher::Config::default().labels(MULTICLUSTER_SELECTOR);
    let stream = watcher(api, config).backoff(backoff);
    let mut stream = std::pin::pin!(stream);
    let mut listing: Option<BTreeMap<ObjectKey, Secret>> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(Event::Init) => listing = Some(BTreeMap::new()),
            Ok(Event::InitApply(secret)) => {
                listing
                    .get_or_insert_default()
                    .insert(key_of(&secret.metadata), secret);
            }
            Ok(Event::InitDone) => {
                let listed = listing.take().unwrap_or_default();
                shared.update(|state| {
                    state.reached();
                    state.remote_secrets = Some(listed);
                    true
                });
            }
            Ok(Event::Apply(secret)) => shared.update(|state| {
                state.reached();
                state
                    .remote_secrets
                    .get_or_insert_default()
                    .insert(key_of(&secret.metadata), secret);
                true
            }),
            Ok(Event::Delete(secret)) => shared.update(|state| {
                state.reached();
                let key = key_of(&secret.metadata);
                state
                    .remote_secrets
                    .get_or_insert_default()
                    .remove(&key)
                    .is_some()
            }),
            Err(error) => shared.watch_failed(None, &error),
        }
    }
}

/// Asks the API server for its version every `interval`: a watch with nothing to report says
/// nothing about reachability, this does.
async fn probe(shared: Arc<Shared>, client: Client, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let answer = tokio::time::timeout(
            interval.max(Duration::from_secs(1)),
            client.apiserver_version(),
        )
        .await;
        match answer {
            // Any answer, even a refusal, means the server is there.
            Ok(Ok(_)) | Ok(Err(kube::Error::Api(_))) => shared.update(ClusterState::reached),
            Ok(Err(error)) => {
                let reason = error.to_string();
                shared.update(|state| state.unreachable(reason));
            }
            Err(_) => shared.update(|state| {
                state.unreachable(format!("no answer to GET /version within {interval:?}"))
            }),
        }
    }
}
