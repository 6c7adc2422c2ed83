//! Where cluster resources come from: a directory per cluster of multi-document YAML in
//! Kubernetes shape, watched for changes (`files`), or a Kubernetes API server (`kube`).
//!
//! Both end in the same [`ClusterResources`] per cluster, and one place turns those into
//! snapshots ([`FileMesh`]): the kube source hands its clusters over as [`ExternalClusters`].

mod directory;
mod files;
pub mod kube;
mod publisher;
mod scan;
mod watch;

pub use files::{DEFAULT_DEBOUNCE, DEFAULT_RESYNC, FileMesh, load_once, run_file_mesh};

use crate::index::ClusterResources;
use crate::mesh_config::ClusterConfig;

/// Clusters another source reads, as it last saw them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExternalClusters {
    /// False until the source has read what start-up waits for; no snapshot is published before.
    pub ready: bool,
    /// Clusters the source found at run time (remote-cluster Secrets), after the configured ones.
    pub added: Vec<ClusterConfig>,
    /// One entry per cluster the source reads, configured or added.
    pub clusters: Vec<ClusterResources>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "cannot start the file watcher: {message}: check the inotify limits (fs.inotify.max_user_instances)"
    )]
    Watcher { message: String },
    #[error(
        "cluster {cluster}: cannot watch {directory}: {message}: check that the directory exists and is readable (and fs.inotify.max_user_watches)"
    )]
    Watch {
        cluster: String,
        directory: String,
        message: String,
    },
    #[error("the file watcher stopped unexpectedly: restart discovery")]
    WatcherStopped,
    #[error("the gateway hostname resolver stopped unexpectedly: restart discovery")]
    ResolverStopped,
    #[error("the kubernetes source stopped unexpectedly: restart discovery")]
    ExternalStopped,
    #[error("reading cluster directories failed: {message}")]
    ReadTask { message: String },
}
