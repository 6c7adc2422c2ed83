//! The mesh description: which clusters exist, the network each sits on, and where discovery
//! reads each one's resources from.
//!
//! ```yaml
//! domainSuffix: cluster.local        # default
//! trustDomain: cluster.local         # default
//! systemNamespace: istio-system      # default
//! clusters:
//! - id: cluster1
//!   network: network1
//!   files: ./cluster1                # directory, relative to this file
//!   ca: ./certs/cluster1             # optional: the cluster's intermediate CA (Istio's
//!                                    # plugged-in layout); discovery then signs CSRs and
//!                                    # serves its gRPC port over mTLS
//! - id: cluster2
//!   network: network2
//!   kubeconfig: ./cluster2.kubeconfig  # or `inCluster: true`; optional `context: name`
//! remoteClusterTimeout: 30s          # default; how long start-up waits for clusters named
//!                                    # by remote-cluster Secrets before serving without them
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use multicluster::model::{ClusterId, DEFAULT_DOMAIN_SUFFIX, NetworkId};
use serde::Deserialize;

use crate::istio::duration::parse_duration;

pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
pub const DEFAULT_SYSTEM_NAMESPACE: &str = "istio-system";

#[derive(Debug, thiserror::Error)]
pub enum MeshConfigError {
    #[error("cannot read mesh description {path}: {source}: check the path given to discovery")]
    Read { path: String, source: io::Error },
    #[error("{path}: invalid mesh description: {message}")]
    Yaml { path: String, message: String },
    #[error("{path}: {field} is empty: remove the line to use the default {default:?}")]
    EmptySetting {
        path: String,
        field: &'static str,
        default: &'static str,
    },
    #[error("{path}: no clusters: list at least one under `clusters:` with id, network and files")]
    NoClusters { path: String },
    #[error(
        "{path}: clusters[{index}]: id is empty: give every cluster a unique id such as cluster1"
    )]
    EmptyClusterId { path: String, index: usize },
    #[error(
        "{path}: cluster {cluster}: network is empty: name the L3 network the cluster sits on, such as network1"
    )]
    EmptyNetwork { path: String, cluster: String },
    #[error(
        "{path}: cluster id {cluster} is used by clusters[{first}] and clusters[{second}]: cluster ids must be unique"
    )]
    DuplicateCluster {
        path: String,
        cluster: String,
        first: usize,
        second: usize,
    },
    #[error(
        "{path}: cluster {cluster}: ca directory {directory} is not a directory: point `ca:` at the directory `isthmus certs` wrote for this cluster (ca-cert.pem, ca-key.pem, root-cert.pem)"
    )]
    BadCaDirectory {
        path: String,
        cluster: String,
        directory: String,
    },
    #[error(
        "{path}: cluster {cluster} has no source: add `files: <directory>`, `kubeconfig: <file>` or `inCluster: true`"
    )]
    NoSource { path: String, cluster: String },
    #[error(
        "{path}: cluster {cluster} names more than one of files, kubeconfig and inCluster: keep exactly one source"
    )]
    TwoSources { path: String, cluster: String },
    #[error(
        "{path}: cluster {cluster}: `context:` only applies to `kubeconfig:`: remove it or add the kubeconfig file"
    )]
    StrayContext { path: String, cluster: String },
    #[error("{path}: remoteClusterTimeout {value:?} is not a duration: write it like 30s or 1m30s")]
    BadTimeout { path: String, value: String },
    #[error(
        "{path}: cluster {cluster}: files directory {directory} does not exist: create it or fix the path (relative paths start at the mesh description's directory)"
    )]
    MissingDirectory {
        path: String,
        cluster: String,
        directory: String,
    },
    #[error(
        "{path}: cluster {cluster}: files path {directory} is not a directory: point `files:` at the directory that holds the cluster's YAML files"
    )]
    NotADirectory {
        path: String,
        cluster: String,
        directory: String,
    },
}

/// The parsed, checked mesh description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshConfig {
    pub domain_suffix: String,
    pub trust_domain: String,
    pub system_namespace: String,
    /// In the order written; where clusters disagree on something mesh-wide (a port's
    /// protocol, a ServiceEntry host), the cluster listed first wins.
    pub clusters: Vec<ClusterConfig>,
    /// Clusters whose intermediate CA discovery holds, in the order written.
    pub certificate_authorities: Vec<ClusterCa>,
    /// How long start-up waits for a cluster named by a remote-cluster Secret to sync before
    /// discovery serves without it (Istio's `PILOT_REMOTE_CLUSTER_TIMEOUT`).
    pub remote_cluster_timeout: Duration,
}

/// Istio's default remote-cluster sync timeout.
pub const DEFAULT_REMOTE_CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// A cluster's intermediate CA directory (`ca-cert.pem`, `ca-key.pem`, `root-cert.pem`,
/// optional `cert-chain.pem`), absolute after loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCa {
    pub cluster: ClusterId,
    pub directory: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub id: ClusterId,
    pub network: NetworkId,
    pub source: ClusterSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterSource {
    /// A directory of multi-document YAML files in Kubernetes shape, absolute after loading.
    Files { directory: PathBuf },
    /// A Kubernetes API server, watched by the kube source.
    Kubernetes { access: KubeAccess },
}

/// How discovery reaches a cluster's API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeAccess {
    /// A kubeconfig file (absolute after loading) and optionally one of its contexts.
    Kubeconfig {
        path: PathBuf,
        context: Option<String>,
    },
    /// The service account discovery runs as (`KUBERNETES_SERVICE_HOST` and the mounted token).
    InCluster,
    /// A remote-cluster Secret (`istio/multiCluster=true`) read from another cluster; such
    /// clusters are added at run time, never written in the mesh description.
    RemoteSecret {
        /// The cluster the Secret was read from.
        from: ClusterId,
        namespace: String,
        name: String,
    },
}

impl fmt::Display for ClusterSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterSource::Files { directory } => write!(f, "files: {}", directory.display()),
            ClusterSource::Kubernetes { access } => match access {
                KubeAccess::Kubeconfig {
                    path,
                    context: None,
                } => {
                    write!(f, "kubeconfig: {}", path.display())
                }
                KubeAccess::Kubeconfig {
                    path,
                    context: Some(context),
                } => write!(f, "kubeconfig: {} (context {context})", path.display()),
                KubeAccess::InCluster => f.write_str("inCluster"),
                KubeAccess::RemoteSecret {
                    from,
                    namespace,
                    name,
                } => write!(f, "remote secret {namespace}/{name} in cluster {from}"),
            },
        }
    }
}

impl MeshConfig {
    /// A mesh with default settings and the given clusters, for tests and embedders.
    pub fn new(clusters: Vec<ClusterConfig>) -> Self {
        Self {
            domain_suffix: DEFAULT_DOMAIN_SUFFIX.to_string(),
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            system_namespace: DEFAULT_SYSTEM_NAMESPACE.to_string(),
            clusters,
            certificate_authorities: Vec::new(),
            remote_cluster_timeout: DEFAULT_REMOTE_CLUSTER_TIMEOUT,
        }
    }

    /// Reads and checks a mesh description; relative `files:` paths start at its directory.
    pub fn load(path: &Path) -> Result<Self, MeshConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| MeshConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::parse(&text, base, &path.display().to_string())
    }

    /// Parses a mesh description held in memory. `origin` names it in messages.
    pub fn parse(text: &str, base_dir: &Path, origin: &str) -> Result<Self, MeshConfigError> {
        let file: MeshFile =
            serde_saphyr::from_str(text).map_err(|error| MeshConfigError::Yaml {
                path: origin.to_string(),
                message: one_line(&error.to_string()),
            })?;
        file.check(base_dir, origin)
    }

    pub fn cluster(&self, id: &ClusterId) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|cluster| &cluster.id == id)
    }

    /// Whether any cluster is read from a Kubernetes API server.
    pub fn has_kubernetes(&self) -> bool {
        self.clusters
            .iter()
            .any(|cluster| matches!(cluster.source, ClusterSource::Kubernetes { .. }))
    }
}

fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MeshFile {
    domain_suffix: Option<String>,
    trust_domain: Option<String>,
    system_namespace: Option<String>,
    remote_cluster_timeout: Option<String>,
    #[serde(default)]
    clusters: Vec<ClusterEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClusterEntry {
    #[serde(default)]
    id: String,
    #[serde(default)]
    network: String,
    files: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    #[serde(default)]
    in_cluster: bool,
    ca: Option<PathBuf>,
}

impl MeshFile {
    fn check(self, base_dir: &Path, origin: &str) -> Result<MeshConfig, MeshConfigError> {
        let setting =
            |value: Option<String>, field: &'static str, default: &'static str| match value {
                None => Ok(default.to_string()),
                Some(value) if value.trim().is_empty() => Err(MeshConfigError::EmptySetting {
                    path: origin.to_string(),
                    field,
                    default,
                }),
                Some(value) => Ok(value),
            };
        let domain_suffix = setting(self.domain_suffix, "domainSuffix", DEFAULT_DOMAIN_SUFFIX)?;
        let trust_domain = setting(self.trust_domain, "trustDomain", DEFAULT_TRUST_DOMAIN)?;
        let system_namespace = setting(
            self.system_namespace,
            "systemNamespace",
            DEFAULT_SYSTEM_NAMESPACE,
        )?;
        let remote_cluster_timeout = match self.remote_cluster_timeout {
            None => DEFAULT_REMOTE_CLUSTER_TIMEOUT,
            Some(value) => {
                parse_duration(value.trim()).map_err(|_| MeshConfigError::BadTimeout {
                    path: origin.to_string(),
                    value,
                })?
            }
        };
        if self.clusters.is_empty() {
            return Err(MeshConfigError::NoClusters {
                path: origin.to_string(),
            });
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut clusters = Vec::with_capacity(self.clusters.len());
        let mut certificate_authorities = Vec::new();
        for (index, entry) in self.clusters.into_iter().enumerate() {
            if let Some(&first) = seen.get(&entry.id) {
                return Err(MeshConfigError::DuplicateCluster {
                    path: origin.to_string(),
                    cluster: entry.id,
                    first,
                    second: index,
                });
            }
            seen.insert(entry.id.clone(), index);
            let ca_directory = entry.ca.clone();
            let cluster = entry.check(index, base_dir, origin)?;
            if let Some(directory) = ca_directory {
                certificate_authorities.push(ClusterCa {
                    directory: checked_ca_directory(base_dir.join(directory), origin, &cluster.id)?,
                    cluster: cluster.id.clone(),
                });
            }
            clusters.push(cluster);
        }
        Ok(MeshConfig {
            domain_suffix,
            trust_domain,
            system_namespace,
            clusters,
            certificate_authorities,
            remote_cluster_timeout,
        })
    }
}

impl ClusterEntry {
    fn check(
        self,
        index: usize,
        base_dir: &Path,
        origin: &str,
    ) -> Result<ClusterConfig, MeshConfigError> {
        let path = origin.to_string();
        let id = ClusterId::new(self.id.trim())
            .map_err(|_| MeshConfigError::EmptyClusterId { path, index })?;
        let cluster = id.to_string();
        let network =
            NetworkId::new(self.network.trim()).map_err(|_| MeshConfigError::EmptyNetwork {
                path: origin.to_string(),
                cluster: cluster.clone(),
            })?;
        if self.context.is_some() && self.kubeconfig.is_none() {
            return Err(MeshConfigError::StrayContext {
                path: origin.to_string(),
                cluster,
            });
        }
        let source = match (self.files, self.kubeconfig, self.in_cluster) {
            (Some(files), None, false) => ClusterSource::Files {
                directory: checked_directory(base_dir.join(files), origin, &cluster)?,
            },
            // A missing kubeconfig is reported when the source starts, with the client's reason.
            (None, Some(kubeconfig), false) => ClusterSource::Kubernetes {
                access: KubeAccess::Kubeconfig {
                    path: base_dir.join(kubeconfig),
                    context: self.context,
                },
            },
            (None, None, true) => ClusterSource::Kubernetes {
                access: KubeAccess::InCluster,
            },
            (None, None, false) => {
                return Err(MeshConfigError::NoSource {
                    path: origin.to_string(),
                    cluster,
                });
            }
            _ => {
                return Err(MeshConfigError::TwoSources {
                    path: origin.to_string(),
                    cluster,
                });
            }
        };
        Ok(ClusterConfig {
            id,
            network,
            source,
        })
    }
}

fn checked_ca_directory(
    directory: PathBuf,
    origin: &str,
    cluster: &ClusterId,
) -> Result<PathBuf, MeshConfigError> {
    if !directory.is_dir() {
        return Err(MeshConfigError::BadCaDirectory {
            path: origin.to_string(),
            cluster: cluster.to_string(),
            directory: directory.display().to_string(),
        });
    }
    Ok(std::fs::canonicalize(&directory).unwrap_or(directory))
}

fn checked_directory(
    directory: PathBuf,
    origin: &str,
    cluster: &str,
) -> Result<PathBuf, MeshConfigError> {
    match std::fs::metadata(&directory) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => {
            return Err(MeshConfigError::NotADirectory {
                path: origin.to_string(),
                cluster: cluster.to_string(),
                directory: directory.display().to_string(),
            });
        }
        Err(_) => {
            return Err(MeshConfigError::MissingDirectory {
                path: origin.to_string(),
                cluster: cluster.to_string(),
                directory: directory.display().to_string(),
            });
        }
    }
    // Absolute paths make watcher events comparable with the configured directory.
    Ok(std::fs::canonicalize(&directory).unwrap_or(directory))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in(dir: &Path, text: &str) -> Result<MeshConfig, MeshConfigError> {
        MeshConfig::parse(text, dir, "mesh.yaml")
    }

    fn temp_with_clusters(names: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            std::fs::create_dir(dir.path().join(name)).unwrap();
        }
        dir
    }

    #[test]
    fn defaults_apply_and_paths_resolve_relative_to_the_file() {
        let dir = temp_with_clusters(&["c1", "c2"]);
        let config = parse_in(
            dir.path(),
            "clusters:\n- id: cluster1\n  network: network1\n  files: ./c1\n- id: cluster2\n  network: network2\n  files: c2\n",
        )
        .unwrap();
        assert_eq!(config.domain_suffix, "cluster.local");
        assert_eq!(config.trust_domain, "cluster.local");
        assert_eq!(config.system_namespace, "istio-system");
        assert_eq!(config.clusters.len(), 2);
        assert_eq!(config.clusters[1].id.as_str(), "cluster2");
        assert_eq!(config.clusters[1].network.as_str(), "network2");
        let expected = std::fs::canonicalize(dir.path().join("c1")).unwrap();
        assert_eq!(
            config.clusters[0].source,
            ClusterSource::Files {
                directory: expected
            }
        );
    }

    #[test]
    fn settings_override_defaults() {
        let dir = temp_with_clusters(&["c1"]);
        let config = parse_in(
            dir.path(),
            "domainSuffix: corp.example\ntrustDomain: corp\nsystemNamespace: mesh\nclusters:\n- {id: a, network: n, files: c1}\n",
        )
        .unwrap();
        assert_eq!(config.domain_suffix, "corp.example");
        assert_eq!(config.trust_domain, "corp");
        assert_eq!(config.system_namespace, "mesh");
    }

    #[test]
    fn load_reads_from_disk() {
        let dir = temp_with_clusters(&["c1"]);
        let path = dir.path().join("mesh.yaml");
        std::fs::write(&path, "clusters:\n- {id: a, network: n, files: c1}\n").unwrap();
        assert_eq!(MeshConfig::load(&path).unwrap().clusters.len(), 1);
        let missing = MeshConfig::load(&dir.path().join("nope.yaml")).unwrap_err();
        assert!(matches!(missing, MeshConfigError::Read { .. }), "{missing}");
        assert!(missing.to_string().contains("nope.yaml"));
    }

    #[test]
    fn mistakes_are_named_with_the_cluster_and_the_fix() {
        let dir = temp_with_clusters(&["c1"]);
        let cases: &[(&str, &str)] = &[
            ("clusters: []\n", "no clusters"),
            (
                "clusters:\n- {network: n, files: c1}\n",
                "clusters[0]: id is empty",
            ),
            (
                "clusters:\n- {id: a, files: c1}\n",
                "cluster a: network is empty",
            ),
            (
                "clusters:\n- {id: a, network: n, files: c1}\n- {id: a, network: m, files: c1}\n",
                "cluster id a is used by clusters[0] and clusters[1]",
            ),
            (
                "clusters:\n- {id: a, network: n}\n",
                "cluster a has no source",
            ),
            (
                "clusters:\n- {id: a, network: n, files: c1, kubeconfig: k}\n",
                "keep exactly one source",
            ),
            (
                "clusters:\n- {id: a, network: n, kubeconfig: k, inCluster: true}\n",
                "keep exactly one source",
            ),
            (
                "clusters:\n- {id: a, network: n, files: c1, context: x}\n",
                "`context:` only applies to `kubeconfig:`",
            ),
            (
                "remoteClusterTimeout: soon\nclusters:\n- {id: a, network: n, files: c1}\n",
                "remoteClusterTimeout \"soon\" is not a duration",
            ),
            (
                "clusters:\n- {id: a, network: n, files: missing}\n",
                "cluster a: files directory",
            ),
            ("domainSuffix: ''\nclusters: []\n", "domainSuffix is empty"),
            ("clusterz: []\n", "invalid mesh description"),
        ];
        for (text, expected) in cases {
            let error = parse_in(dir.path(), text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(error.starts_with("mesh.yaml: "), "{error}");
        }
    }

    #[test]
    fn ca_directories_are_optional_and_checked() {
        let dir = temp_with_clusters(&["c1", "c2", "ca1"]);
        let config = parse_in(
            dir.path(),
            "clusters:\n- {id: a, network: n, files: c1, ca: ca1}\n- {id: b, network: m, files: c2}\n",
        )
        .unwrap();
        assert_eq!(
            config.certificate_authorities,
            vec![ClusterCa {
                cluster: ClusterId::new("a").unwrap(),
                directory: std::fs::canonicalize(dir.path().join("ca1")).unwrap(),
            }]
        );
        let error = parse_in(
            dir.path(),
            "clusters:\n- {id: a, network: n, files: c1, ca: nope}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("cluster a: ca directory"), "{error}");
        assert!(error.contains("isthmus certs"), "{error}");
    }

    #[test]
    fn kubernetes_sources_and_the_remote_timeout_parse() {
        let dir = temp_with_clusters(&[]);
        let config = parse_in(
            dir.path(),
            "remoteClusterTimeout: 1m30s\nclusters:\n- {id: a, network: n, kubeconfig: a.kubeconfig, context: admin}\n- {id: b, network: m, inCluster: true}\n",
        )
        .unwrap();
        assert_eq!(config.remote_cluster_timeout, Duration::from_secs(90));
        assert!(config.has_kubernetes());
        assert_eq!(
            config.clusters[0].source,
            ClusterSource::Kubernetes {
                access: KubeAccess::Kubeconfig {
                    path: dir.path().join("a.kubeconfig"),
                    context: Some("admin".to_string()),
                }
            }
        );
        assert_eq!(config.clusters[1].source.to_string(), "inCluster");
        let defaults = parse_in(
            dir.path(),
            "clusters:\n- {id: a, network: n, inCluster: true}\n",
        )
        .unwrap();
        assert_eq!(
            defaults.remote_cluster_timeout,
            DEFAULT_REMOTE_CLUSTER_TIMEOUT
        );
    }

    #[test]
    fn a_file_is_not_a_directory() {
        let dir = temp_with_clusters(&[]);
        std::fs::write(dir.path().join("c1"), "").unwrap();
        let error =
            parse_in(dir.path(), "clusters:\n- {id: a, network: n, files: c1}\n").unwrap_err();
        assert!(
            matches!(error, MeshConfigError::NotADirectory { .. }),
            "{error}"
        );
    }
}
