//! One cluster's directory of YAML files, and the last good content of each file.
//!
//! Editors and `kubectl get -o yaml >` write files in several steps, so a watcher can see a
//! file half written. A file that is present but unreadable or not valid YAML therefore keeps
//! the resources it last had (and the problem is reported); only a deleted file loses them.
//! A half-written file never empties a cluster.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use multicluster::model::ClusterId;

use crate::index::{ClusterResources, FileChange};
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
    /// The file's metadata when it was read.
    stamp: Option<Stamp>,
}

/// How thoroughly [`ClusterDirectory::refresh`] checks files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// After watch events: files whose metadata did not change are not read.
    Changed,
    /// First read and periodic resync: every file is read and its content compared.
    Full,
}

/// A file's metadata, to skip reading files that a watch event did not touch. Any write moves
/// the change time (ctime) and a rename into place changes the inode; a file written twice
/// within one timestamp tick with the same size is caught by the next full resync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    length: u64,
    inode: u64,
    device: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(Stamp {
            length: metadata.len(),
            inode: metadata.ino(),
            device: metadata.dev(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        })
    }
}

/// `f` over `items` on every core, in order. One file is the common case after a watch event,
/// and is decoded on the calling thread.
fn parallel_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(items.len());
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let count = items.len();
    let queue = Mutex::new(items.into_iter().enumerate());
    let next = || queue.lock().unwrap_or_else(PoisonError::into_inner).next();
    let mut results: Vec<Option<R>> = (0..count).map(|_| None).collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some((index, item)) = next() {
                        done.push((index, f(item)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(done) => {
                    for (index, result) in done {
                        results[index] = Some(result);
                    }
                }
                // Decoding does not panic; if it ever does, fail the refresh like inline code would.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    results.into_iter().flatten().collect()
}

/// Whether two resource lists are the very same objects (a file read again with equal content
/// keeps its decoded objects), without comparing contents.
fn same_arcs(a: &[Decoded], b: &[Decoded]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(a, b)| a.origin == b.origin && a.resource.same_object(&b.resource))
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

    /// Reads the directory again. Every file is listed, so a lost watch event is repaired by the
    /// next refresh. With [`Refresh::Changed`] a file whose size, times and inode are those of
    /// the last read is taken as unchanged without reading it; [`Refresh::Full`] reads every
    /// file and compares content. Files that did change are decoded in parallel. Returns the
    /// files whose content changed, appeared or disappeared, so the index can follow them.
    pub(crate) fn refresh(&mut self, mode: Refresh) -> Vec<FileChange> {
        let paths = match yaml_files(&self.directory) {
            Ok(paths) => paths,
            Err(error) => {
                let reason = format!(
                    "cannot list {}: {error}; the cluster keeps its last resources until the directory is readable",
                    self.directory.display()
                );
                tracing::warn!(cluster = %self.cluster, directory = %self.directory.display(), %error, "cluster directory unreadable");
                self.sync = SyncState::Failed(reason);
                return Vec::new();
            }
        };
        let mut previous = std::mem::take(&mut self.files);
        let mut to_read = Vec::new();
        for path in paths {
            let state = previous.remove(&path);
            let stamp = Stamp::of(&path);
            match state {
                Some(state)
                    if mode == Refresh::Changed
                        && stamp.is_some()
                        && state.stamp == stamp
                        && state.fingerprint.is_some() =>
                {
                    self.files.insert(path, state);
                }
                state => to_read.push((path, state, stamp)),
            }
        }
        let reread = to_read.len();
        let this = &*self;
        let states = parallel_map(to_read, |(path, state, stamp)| {
            // Only a read that decoded new content replaces the resources' `Arc`s.
            let before = state
                .as_ref()
                .map(|state| (state.resources.clone(), state.problems.clone()));
            let mut state = this.read_file(&path, state);
            state.stamp = stamp;
            let (before, problems_before) = before.unwrap_or_default();
            let change = (!same_arcs(&before, &state.resources)
                || problems_before != state.problems)
                .then(|| FileChange {
                    path: path.clone(),
                    before,
                    after: state.resources.clone(),
                    problems_changed: problems_before != state.problems,
                });
            (path, state, change)
        });
        let mut changes = Vec::new();
        for (path, state, change) in states {
            changes.extend(change);
            self.files.insert(path, state);
        }
        // Files no longer listed were deleted.
        changes.extend(previous.into_iter().map(|(path, state)| FileChange {
            path,
            problems_changed: !state.problems.is_empty(),
            before: state.resources,
            after: Vec::new(),
        }));
        self.sync = SyncState::Synced;
        tracing::info!(
            cluster = %self.cluster,
            directory = %self.directory.display(),
            files = self.files.len(),
            reread,
            resources = self.files.values().map(|file| file.resources.len()).sum::<usize>(),
            problems = self.files.values().map(|file| file.problems.len()).sum::<usize>(),
            "cluster directory read"
        );
        changes
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
                stamp: None,
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
            stamp: None,
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
