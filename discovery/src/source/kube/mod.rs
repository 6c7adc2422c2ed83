//! The Kubernetes source: kube-rs watchers over each cluster's API server, feeding the same
//! [`ClusterResources`](crate::index::ClusterResources) the file source builds, so the same
//! objects mean the same thing from either source.
//!
//! - Clusters of the mesh description with `kubeconfig:` or `inCluster: true` are watched for
//!   Namespaces, Services, EndpointSlices, Pods, Secrets and the Istio kinds
//!   (`networking.istio.io` v1, else v1beta1, else v1alpha3), each object decoded and validated
//!   by the rules the file source applies ([`crate::resource::decode_object`]).
//! - Each of them also follows the remote-cluster Secrets (`istio/multiCluster=true`) in its
//!   system namespace; every data key names a cluster, its value a kubeconfig. Those clusters
//!   are added, rotated (the new client must sync before the old one stops) and removed live.
//! - A cluster whose API server stops answering keeps its last known objects and is reported
//!   stale (in its sync state and in the `isthmus_discovery_cluster_*` metrics).
//!
//! Objects are kept per kind in namespace/name order, kinds in the order of
//! [`crate::resource::Resource`]: that is the order the index sees them in.

mod backoff;
mod client;
mod cluster;
mod controller;
mod kinds;
mod metrics;
mod remote;
mod store;

pub use controller::{KubeOptions, KubeSource, RunningKube};
pub use metrics::ClusterMetrics;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(
        "cluster {cluster}: cannot load kubeconfig {path}: {message}: check the path (relative to the mesh description) and the context"
    )]
    Kubeconfig {
        cluster: String,
        path: String,
        message: String,
    },
    #[error(
        "cluster {cluster}: no in-cluster configuration: {message}: run discovery in a pod with a service account token, or use `kubeconfig:`"
    )]
    InCluster { cluster: String, message: String },
    #[error("cluster {cluster}: cannot create a Kubernetes client: {message}")]
    Client { cluster: String, message: String },
}
