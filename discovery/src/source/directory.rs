//! One cluster's directory of YAML files, and the last good content of each file.
//!
//! Editors and `kubectl get -o yaml >` write files in several steps, so a watcher can see a
//! file half written. A file that is present but unreadable or not valid YAML therefore keeps
//! the resources it last had (and the problem is reported); only a deleted file loses them.
//! A half-written file never empties a cluster.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use multicluster::model::ClusterId;

use crate::index::ClusterResources;
use crate::mesh::{Rejection, Severity, SyncState};
use crate::resource::{DecodeError, Decoded, decode_documents};

use super::scan::yaml_files;

#[derive(Debug)]
pub(crate) struct ClusterDirectory {
    cluster: ClusterId,
    directory: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    sync: SyncState,
}

#[derive(Debug, Default)]
struct FileState {
    /// From the last read that was valid YAML.
    resources: Vec<Decoded>,
    /// From the latest read, good or not.
    problems: Vec<Rejection>,
    /// Of the text this state was made from; `None` when the file could not be read.
    fingerprint: Option<Fingerprint>,
}

/// Identifies a file's content without keeping it. Decoding dominates a refresh (a cluster of
/// 30,000 pods is tens of MiB of YAML), and one event usually means one changed file, so the
/// others are recognised by this and not decoded again. A 64-bit SipHash collision between two
/// versions of one file is not a practical concern; the length is compared too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    length: usize,
    hash: u64,
}

impl Fingerprint {
    fn of(text: &str) -> Self {
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        Fingerprint {
            length: text.len(),
            hash: hasher.finish(),
        }
    }
}

impl ClusterDirectory {
    pub(crate) fn new(cluster: ClusterId, directory: PathBuf) -> Self {
        Self {
            cluster,
            directory,
            files: BTreeMap::new(),
            sync: SyncState::Pending,
        }
    }

    pub(crate) fn sync(&self) -> &SyncState {
        &self.sync
    }

    /// Reads the directory again. Every file is re-read: directories are small, and a full
    /// pass also repairs anything a lost watch event would have missed.
    pub(crate) fn refresh(&mut self) {
        let paths = match yaml_files(&self.directory) {
            Ok(paths) => paths,
            Err(error) => {
                let reason = format!(
                    "cannot list {}: {error}; the cluster keeps its last resources until the directory is readable",
                    self.directory.display()
                );
                tracing::warn!(cluster = %self.cluster, directory = %self.directory.display(), %error, "cluster directory unreadable");
                self.sync = SyncState::Failed(reason);
                return;
            }
        };
        self.files
            .retain(|path, _| paths.binary_search(path).is_ok());
        for path in paths {
            let previous = self.files.remove(&path);
            let state = self.read_file(&path, previous);
            self.files.insert(path, state);
        }
        self.sync = SyncState::Synced;
        tracing::info!(
            cluster = %self.cluster,
            directory = %self.directory.display(),
            files = self.files.len(),
            resources = self.files.values().map(|file| file.resources.len()).sum::<usize>(),
            problems = self.files.values().map(|file| file.problems.len()).sum::<usize>(),
            "cluster directory read"
        );
    }

    fn read_file(&self, path: &Path, mut previous: Option<FileState>) -> FileState {
        let label = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                return self.keep_previous(
                    &label,
                    previous,
                    Severity::Error,
                    format!("cannot read file: {error}"),
                    Vec::new(),
                    None,
                );
            }
        };
        let fingerprint = Fingerprint::of(&text);
        if let Some(unchanged) = previous.take_if(|p| p.fingerprint == Some(fingerprint)) {
            return unchanged;
        }
        let had_resources = previous.as_ref().is_some_and(|p| !p.resources.is_empty());
        if text.trim().is_empty() && had_resources {
            // `>` redirections truncate first and write later: an empty file that had
            // content is far more often in the middle of a write than meant to be empty.
            return self.keep_previous(
                &label,
                previous,
                Severity::Warning,
                "the file is empty (delete it to remove its resources)".to_string(),
                Vec::new(),
                Some(fingerprint),
            );
        }
        let (resources, errors) = decode_documents(&text, &label);
        let problems: Vec<Rejection> = errors
            .iter()
            .map(|error| self.decode_problem(error))
            .collect();
        let broken_yaml = errors
            .iter()
            .any(|error| matches!(error, DecodeError::Yaml { .. }));
        match previous {
            Some(previous) if broken_yaml => self.keep_previous(
                &label,
                Some(previous),
                Severity::Error,
                "the file is not valid YAML".to_string(),
                problems,
                Some(fingerprint),
            ),
            _ => FileState {
                resources,
                problems,
                fingerprint: Some(fingerprint),
            },
        }
    }

    fn keep_previous(
        &self,
        label: &str,
        previous: Option<FileState>,
        severity: Severity,
        reason: String,
        mut problems: Vec<Rejection>,
        fingerprint: Option<Fingerprint>,
    ) -> FileState {
        let resources = previous
            .map(|previous| previous.resources)
            .unwrap_or_default();
        let message = format!(
            "{reason}; its last good content ({} resources) stays in use until the file is fixed or deleted",
            resources.len()
        );
        tracing::warn!(cluster = %self.cluster, file = label, reason = %reason, kept = resources.len(), "file broken, keeping last good content");
        problems.insert(0, self.file_problem(label, severity, message));
        FileState {
            resources,
            problems,
            fingerprint,
        }
    }

    fn file_problem(&self, label: &str, severity: Severity, message: String) -> Rejection {
        Rejection {
            cluster: self.cluster.clone(),
            origin: label.to_string(),
            kind: String::new(),
            namespace: String::new(),
            name: String::new(),
            field: String::new(),
            message,
            severity,
        }
    }

    fn decode_problem(&self, error: &DecodeError) -> Rejection {
        let origin = error.origin().to_string();
        let text = error.to_string();
        // The error's text starts with its origin; the rejection carries the origin apart.
        let message = text
            .strip_prefix(&format!("{origin}: "))
            .unwrap_or(&text)
            .to_string();
        let (kind, name) = match error {
            DecodeError::Invalid { kind, name, .. } => (kind.clone(), name.clone()),
            DecodeError::Unsupported { kind, .. } => (kind.clone(), String::new()),
            _ => (String::new(), String::new()),
        };
        Rejection {
            cluster: self.cluster.clone(),
            origin,
            kind,
            namespace: String::new(),
            name,
            field: String::new(),
            message,
            severity: Severity::Error,
        }
    }

    /// What the index needs, in file order.
    pub(crate) fn resources(&self) -> ClusterResources {
        ClusterResources {
            cluster: self.cluster.clone(),
            resources: self
                .files
                .values()
                .flat_map(|file| file.resources.iter().cloned())
                .collect(),
            problems: self
                .files
                .values()
                .flat_map(|file| file.problems.iter().cloned())
                .collect(),
            sync: self.sync.clone(),
        }
    }
}
