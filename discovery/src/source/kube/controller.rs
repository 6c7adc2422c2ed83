//! The kube source's one task: starts a [`ClusterWatch`] per cluster, follows the
//! remote-cluster Secrets (add, rotate, remove), decides when start-up has read enough, and
//! publishes every cluster's resources as [`ExternalClusters`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use multicluster::model::ClusterId;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::mesh::{Rejection, Severity};
use crate::mesh_config::{ClusterConfig, ClusterSource, KubeAccess, MeshConfig};
use crate::source::ExternalClusters;

use super::cluster::{ClusterWatch, WatchTimings};
use super::metrics::ClusterMetrics;
use super::remote::{self, Wanted};
use super::{KubeError, client};

/// The kube source's timings.
#[derive(Debug, Clone, Copy)]
pub struct KubeOptions {
    /// How long start-up waits for the clusters of remote-cluster Secrets.
    pub remote_cluster_timeout: Duration,
    /// How often each API server is asked whether it is there (staleness).
    pub probe_interval: Duration,
    /// First pause after a failed list or watch; it doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Changes arriving within this time are published together.
    pub debounce: Duration,
}

impl KubeOptions {
    pub fn new(remote_cluster_timeout: Duration) -> Self {
        KubeOptions {
            remote_cluster_timeout,
            probe_interval: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(800),
            backoff_max: Duration::from_secs(30),
            debounce: Duration::from_millis(100),
        }
    }

    fn timings(&self) -> WatchTimings {
        WatchTimings {
            probe_interval: self.probe_interval,
            backoff_initial: self.backoff_initial,
            backoff_max: self.backoff_max,
            istio_recheck: Duration::from_secs(30),
        }
    }

    /// Readiness deadlines and the metrics' sync ages are checked this often.
    fn tick(&self) -> Duration {
        (self.probe_interval / 2).clamp(Duration::from_millis(50), Duration::from_secs(1))
    }
}

/// The Kubernetes clusters of a mesh description.
pub struct KubeSource {
    config: MeshConfig,
    options: KubeOptions,
    metrics: Option<ClusterMetrics>,
}

/// A started kube source; dropping it stops every watcher.
pub struct RunningKube {
    clusters: watch::Receiver<Arc<ExternalClusters>>,
    task: JoinHandle<()>,
}

impl Drop for RunningKube {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RunningKube {
    /// What [`crate::source::FileMesh::with_external`] takes.
    pub fn clusters(&self) -> watch::Receiver<Arc<ExternalClusters>> {
        self.clusters.clone()
    }
}

impl KubeSource {
    pub fn new(config: MeshConfig) -> Self {
        let options = KubeOptions::new(config.remote_cluster_timeout);
        KubeSource {
            config,
            options,
            metrics: None,
        }
    }

    pub fn with_options(mut self, options: KubeOptions) -> Self {
        self.options = options;
        self
    }

    pub fn with_metrics(mut self, metrics: ClusterMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Creates a client per configured Kubernetes cluster (a kubeconfig that does not load
    /// stops start-up with its reason) and starts watching.
    pub async fn start(self) -> Result<RunningKube, KubeError> {
        let (signals, signal_rx) = mpsc::unbounded_channel();
        let mut controller = Controller {
            system_namespace: self.config.system_namespace.clone(),
            options: self.options,
            metrics: self.metrics,
            configured: Vec::new(),
            remotes: BTreeMap::new(),
            problems: BTreeMap::new(),
            signals,
            next_serial: 0,
            ready: false,
            remote_deadline: None,
        };
        for cluster in &self.config.clusters {
            let ClusterSource::Kubernetes { access } = &cluster.source else {
                continue;
            };
            let client = client::configured(&cluster.id, access).await?;
            let watch = controller.watch(&cluster.id, client, true);
            tracing::info!(cluster = %cluster.id, source = %cluster.source, "watching Kubernetes cluster");
            controller.configured.push(Member {
                config: cluster.clone(),
                watch,
            });
        }
        let (out, clusters) = watch::channel(Arc::new(controller.external()));
        let task = tokio::spawn(controller.run(signal_rx, out));
        Ok(RunningKube { clusters, task })
    }
}

struct Member {
    config: ClusterConfig,
    watch: ClusterWatch,
}

struct Remote {
    config: ClusterConfig,
    fingerprint: u64,
    watch: ClusterWatch,
    /// A rotated kubeconfig's client, serving once it has synced.
    next: Option<(u64, ClusterWatch)>,
}

struct Controller {
    system_namespace: String,
    options: KubeOptions,
    metrics: Option<ClusterMetrics>,
    configured: Vec<Member>,
    remotes: BTreeMap<ClusterId, Remote>,
    /// About remote-cluster Secrets, by the cluster they were read from.
    problems: BTreeMap<ClusterId, Vec<Rejection>>,
    signals: mpsc::UnboundedSender<u64>,
    next_serial: u64,
    ready: bool,
    remote_deadline: Option<Instant>,
}

impl Controller {
    fn watch(
        &mut self,
        cluster: &ClusterId,
        client: kube::Client,
        follows_secrets: bool,
    ) -> ClusterWatch {
        self.next_serial += 1;
        let namespace = follows_secrets.then_some(self.system_namespace.as_str());
        ClusterWatch::start(
            cluster.clone(),
            client,
            self.options.timings(),
            namespace,
            self.next_serial,
            self.signals.clone(),
        )
    }

    async fn run(
        mut self,
        mut signals: mpsc::UnboundedReceiver<u64>,
        out: watch::Sender<Arc<ExternalClusters>>,
    ) {
        let mut tick = tokio::time::interval(self.options.tick());
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let mut dirty = tokio::select! {
                signal = signals.recv() => {
                    if signal.is_none() {
                        return;
                    }
                    // Whatever else arrives meanwhile goes out in the same publication.
                    tokio::time::sleep(self.options.debounce).await;
                    while signals.try_recv().is_ok() {}
                    true
                }
                _ = tick.tick() => false,
            };
            dirty |= self.reconcile().await;
            dirty |= self.update_readiness();
            self.record_metrics();
            if dirty {
                out.send_replace(Arc::new(self.external()));
            }
        }
    }

    /// Brings the remote clusters in line with the Secrets; true when anything changed.
    async fn reconcile(&mut self) -> bool {
        let configured: BTreeSet<ClusterId> = self
            .configured
            .iter()
            .map(|m| m.config.id.clone())
            .collect();
        let mut wanted: BTreeMap<ClusterId, Wanted> = BTreeMap::new();
        let mut problems: Vec<Rejection> = Vec::new();
        for member in &self.configured {
            let state = member.watch.state();
            for (key, secret) in state.remote_secrets.iter().flatten() {
                remote::collect(
                    &member.config,
                    key,
                    secret,
                    &configured,
                    &mut wanted,
                    &mut problems,
                );
            }
        }
        let mut changed = false;
        let gone: Vec<ClusterId> = self
            .remotes
            .keys()
            .filter(|id| !wanted.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            tracing::info!(cluster = %id, "remote cluster removed: its Secret no longer names it");
            self.remotes.remove(&id);
            if let Some(metrics) = &self.metrics {
                metrics.forget(&id);
            }
            changed = true;
        }
        for (id, wanted) in wanted {
            let running = self.remotes.get(&id).map(|r| {
                (
                    r.fingerprint,
                    r.next.as_ref().map(|(fingerprint, _)| *fingerprint),
                )
            });
            match running {
                Some((current, _)) if current == wanted.fingerprint => {
                    // A rotation taken back: the running client is what the Secret says again.
                    if let Some(remote) = self.remotes.get_mut(&id) {
                        remote.next = None;
                        remote.config = remote_config(&id, &wanted);
                    }
                }
                Some((_, Some(next))) if next == wanted.fingerprint => {}
                _ => match client::from_kubeconfig_text(&wanted.kubeconfig).await {
                    Err(reason) => problems.push(remote::unusable(&wanted, &id, &reason)),
                    Ok(client) => {
                        let watch = self.watch(&id, client, false);
                        let config = remote_config(&id, &wanted);
                        match self.remotes.get_mut(&id) {
                            Some(remote) => {
                                tracing::info!(cluster = %id, "remote cluster kubeconfig rotated; the new client takes over once synced");
                                remote.next = Some((wanted.fingerprint, watch));
                                remote.config = config;
                            }
                            None => {
                                tracing::info!(cluster = %id, source = %config.source, "remote cluster added");
                                self.remotes.insert(
                                    id.clone(),
                                    Remote {
                                        config,
                                        fingerprint: wanted.fingerprint,
                                        watch,
                                        next: None,
                                    },
                                );
                                changed = true;
                            }
                        }
                    }
                },
            }
            let Some(remote) = self.remotes.get_mut(&id) else {
                continue;
            };
            let next_synced = remote.next.as_ref().map(|(_, next)| next.synced());
            match next_synced {
                Some(true) => {
                    if let Some((fingerprint, next)) = remote.next.take() {
                        tracing::info!(cluster = %id, "rotated kubeconfig synced; the previous client stops");
                        remote.watch = next;
                        remote.fingerprint = fingerprint;
                        changed = true;
                    }
                }
                Some(false) => problems.push(remote::secret_problem(
                    &wanted,
                    &id,
                    Severity::Warning,
                    format!(
                        "the new kubeconfig for cluster {id} has not synced yet; the previous one stays in use until it has"
                    ),
                )),
                None => {}
            }
        }
        let mut by_cluster: BTreeMap<ClusterId, Vec<Rejection>> = BTreeMap::new();
        for problem in problems {
            by_cluster
                .entry(problem.cluster.clone())
                .or_default()
                .push(problem);
        }
        if by_cluster != self.problems {
            for problem in by_cluster.values().flatten() {
                tracing::warn!(%problem, "remote-cluster Secret not applied as written");
            }
            self.problems = by_cluster;
            changed = true;
        }
        changed
    }

    /// Ready once every configured cluster has synced and every remote cluster has too, or
    /// `remote_cluster_timeout` has passed since the remote clusters were known.
    fn update_readiness(&mut self) -> bool {
        if self.ready || !self.configured.iter().all(|member| member.watch.synced()) {
            return false;
        }
        let deadline = *self
            .remote_deadline
            .get_or_insert_with(|| Instant::now() + self.options.remote_cluster_timeout);
        let waiting: Vec<String> = self
            .remotes
            .iter()
            .filter(|(_, remote)| !remote.watch.synced())
            .map(|(id, _)| id.to_string())
            .collect();
        if !waiting.is_empty() && Instant::now() < deadline {
            return false;
        }
        if !waiting.is_empty() {
            tracing::warn!(clusters = ?waiting, timeout = ?self.options.remote_cluster_timeout, "remote clusters did not sync within remoteClusterTimeout; serving without them until they do");
        }
        self.ready = true;
        true
    }

    fn record_metrics(&self) {
        let Some(metrics) = &self.metrics else {
            return;
        };
        let members = self.configured.iter().map(|m| (&m.config.id, &m.watch));
        let remotes = self.remotes.iter().map(|(id, r)| (id, &r.watch));
        for (id, watch) in members.chain(remotes) {
            let state = watch.state();
            metrics.record(id, state.synced(), state.stale(), state.last_ok.elapsed());
        }
    }

    fn external(&self) -> ExternalClusters {
        let none = Vec::new();
        let problems = |id: &ClusterId| self.problems.get(id).unwrap_or(&none);
        let mut clusters: Vec<_> = self
            .configured
            .iter()
            .map(|m| m.watch.resources(&m.config.id, problems(&m.config.id)))
            .collect();
        clusters.extend(
            self.remotes
                .iter()
                .map(|(id, remote)| remote.watch.resources(id, problems(id))),
        );
        ExternalClusters {
            ready: self.ready,
            added: self.remotes.values().map(|r| r.config.clone()).collect(),
            clusters,
        }
    }
}

/// A remote cluster sits on its Secret's cluster's network until its own system namespace
/// says otherwise (the index reads `topology.istio.io/network` there, as Istio does).
fn remote_config(id: &ClusterId, wanted: &Wanted) -> ClusterConfig {
    ClusterConfig {
        id: id.clone(),
        network: wanted.network.clone(),
        source: ClusterSource::Kubernetes {
            access: KubeAccess::RemoteSecret {
                from: wanted.from.clone(),
                namespace: wanted.secret.0.clone(),
                name: wanted.secret.1.clone(),
            },
        },
    }
}
