//! Filesystem events → "cluster N changed" signals, and collecting a burst of them.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::SourceError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Signal {
    /// `path`, under the directory of the cluster at index `cluster`, changed.
    Changed {
        cluster: usize,
        path: PathBuf,
        state: FileState,
    },
    /// The watcher lost track (queue overflow, error): every cluster must be read again.
    RescanAll,
}

/// Whether a file may still be mid-write after the event that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileState {
    /// Created or written to, and not closed since: more writes may follow.
    Writing,
    /// Closed after writing, renamed, removed, or only its metadata changed: complete as it
    /// stands.
    Settled,
}

impl FileState {
    fn of(kind: &EventKind) -> FileState {
        match kind {
            EventKind::Create(CreateKind::Folder)
            | EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Metadata(_))
            | EventKind::Access(_)
            | EventKind::Remove(_) => FileState::Settled,
            _ => FileState::Writing,
        }
    }
}

/// How long a burst of events is collected before the changed files are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BurstTiming {
    /// Quiet time that ends a burst while some file may still be mid-write.
    pub(crate) quiet: Duration,
    /// Quiet time that ends a burst once every file written in it was closed (or renamed
    /// into place): short, only to gather the other files of the same operation.
    pub(crate) settled: Duration,
    /// Longest a burst lasts, however busy the directory is.
    pub(crate) max_wait: Duration,
}

/// The watched cluster directories, by cluster index.
pub(crate) struct DirectoryWatcher {
    watcher: RecommendedWatcher,
    directories: Vec<(usize, String, PathBuf)>,
}

impl DirectoryWatcher {
    /// Starts a watcher for `(cluster index, cluster id, directory)` entries; nothing is
    /// watched until [`DirectoryWatcher::watch`]. Events arrive on notify's own thread and
    /// are forwarded without blocking it.
    pub(crate) fn start(
        directories: Vec<(usize, String, PathBuf)>,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Signal>), SourceError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let targets: Vec<(usize, PathBuf)> = directories
            .iter()
            .map(|(index, _, directory)| (*index, directory.clone()))
            .collect();
        let watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            let signals = match event {
                // inotify's queue overflowed: events were lost, so nothing can be trusted.
                Ok(event) if event.need_rescan() => vec![Signal::RescanAll],
                Ok(event) if !is_content_change(&event.kind) => return,
                Ok(event) => {
                    let state = FileState::of(&event.kind);
                    event
                        .paths
                        .into_iter()
                        .filter_map(|path| {
                            let (cluster, _) = targets
                                .iter()
                                .find(|(_, directory)| path.starts_with(directory))?;
                            Some(Signal::Changed {
                                cluster: *cluster,
                                path,
                                state,
                            })
                        })
                        .collect::<Vec<_>>()
                }
                Err(error) => {
                    tracing::warn!(%error, "file watcher error, reading every cluster again");
                    vec![Signal::RescanAll]
                }
            };
            for signal in signals {
                // The receiver is gone only when the source stopped; nothing is left to tell.
                let _ = sender.send(signal);
            }
        })
        .map_err(|error| SourceError::Watcher {
            message: error.to_string(),
        })?;
        Ok((
            Self {
                watcher,
                directories,
            },
            receiver,
        ))
    }

    pub(crate) fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.directories.iter().map(|(index, _, _)| *index)
    }

    /// (Re)watches the directory of the cluster at `index`, recursively. Watching again
    /// after the directory was deleted and re-created is how it comes back.
    pub(crate) fn watch(&mut self, index: usize) -> Result<(), SourceError> {
        let Some((_, cluster, directory)) = self.directories.iter().find(|(i, _, _)| *i == index)
        else {
            return Ok(());
        };
        self.watcher
            .watch(directory, RecursiveMode::Recursive)
            .map_err(|error| SourceError::Watch {
                cluster: cluster.clone(),
                directory: directory.display().to_string(),
                message: error.to_string(),
            })
    }
}

/// Opening or reading a file (including our own reads) changes nothing; closing a file that
/// was open for writing, creating, modifying, renaming or removing may.
fn is_content_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// What a burst of signals amounts to.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Burst {
    pub(crate) clusters: BTreeSet<usize>,
    pub(crate) all: bool,
    /// The channel closed: the watcher is gone.
    pub(crate) closed: bool,
    /// Files written in this burst and not closed since.
    writing: HashSet<PathBuf>,
}

impl Burst {
    fn add(&mut self, signal: Signal) {
        match signal {
            Signal::Changed {
                cluster,
                path,
                state,
            } => {
                self.clusters.insert(cluster);
                match state {
                    FileState::Writing => {
                        self.writing.insert(path);
                    }
                    FileState::Settled => {
                        self.writing.remove(&path);
                    }
                }
            }
            Signal::RescanAll => self.all = true,
        }
    }

    /// A rescan reads every file, written or not, so it waits as long as an open file does.
    fn settled(&self) -> bool {
        self.writing.is_empty() && !self.all
    }
}

/// Starting from `first`, collects signals until none arrived for the quiet time, or
/// `max_wait` passed since the first (so a file rewritten without pause still gets picked up).
///
/// Decision: the quiet time is `timing.settled` once every file the burst wrote was closed or
/// renamed into place, and `timing.quiet` while one may still be mid-write. A writer's close
/// says its file is whole, so waiting the long quiet after it only delays the push; a file
/// still open would be read half-written.
pub(crate) async fn collect_burst(
    first: Signal,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
    timing: BurstTiming,
) -> Burst {
    let mut burst = Burst::default();
    burst.add(first);
    let give_up = Instant::now() + timing.max_wait;
    loop {
        let now = Instant::now();
        // `timeout_at` polls the receiver before its timer, so a receiver that is always ready
        // would never time out: the cap has to be checked here.
        if now >= give_up {
            return burst;
        }
        let quiet = if burst.settled() {
            timing.settled
        } else {
            timing.quiet
        };
        let deadline = (now + quiet).min(give_up);
        match tokio::time::timeout_at(deadline, signals.recv()).await {
            Ok(Some(signal)) => burst.add(signal),
            Ok(None) => {
                burst.closed = true;
                return burst;
            }
            Err(_elapsed) => return burst,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: BurstTiming = BurstTiming {
        quiet: Duration::from_millis(100),
        settled: Duration::from_millis(10),
        max_wait: Duration::from_secs(1),
    };

    fn signal(cluster: usize, file: &str, state: FileState) -> Signal {
        Signal::Changed {
            cluster,
            path: PathBuf::from(file),
            state,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_with_a_file_still_open_ends_after_the_long_quiet() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        for (cluster, file) in [(1, "b.yaml"), (2, "c.yaml"), (1, "b.yaml")] {
            sender
                .send(signal(cluster, file, FileState::Writing))
                .unwrap();
        }
        sender
            .send(signal(2, "c.yaml", FileState::Settled))
            .unwrap();
        let started = Instant::now();
        let burst = collect_burst(
            signal(0, "a.yaml", FileState::Settled),
            &mut receiver,
            TIMING,
        )
        .await;
        assert_eq!(burst.clusters, BTreeSet::from([0, 1, 2]));
        assert!(!burst.all && !burst.closed);
        // b.yaml was written and never closed.
        assert_eq!(started.elapsed(), TIMING.quiet);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_whose_files_were_all_closed_ends_after_the_short_quiet() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        sender
            .send(signal(0, "a.yaml", FileState::Settled))
            .unwrap();
        sender
            .send(signal(1, "b.yaml", FileState::Writing))
            .unwrap();
        sender
            .send(signal(1, "b.yaml", FileState::Settled))
            .unwrap();
        let started = Instant::now();
        let burst = collect_burst(
            signal(0, "a.yaml", FileState::Writing),
            &mut receiver,
            TIMING,
        )
        .await;
        assert_eq!(burst.clusters, BTreeSet::from([0, 1]));
        assert_eq!(started.elapsed(), TIMING.settled);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rescan_waits_the_long_quiet() {
        let (_sender, mut receiver) = mpsc::unbounded_channel();
        let started = Instant::now();
        let burst = collect_burst(Signal::RescanAll, &mut receiver, TIMING).await;
        assert!(burst.all);
        assert_eq!(started.elapsed(), TIMING.quiet);
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_is_cut_at_the_maximum_wait() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let writer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if sender
                    .send(signal(0, "a.yaml", FileState::Writing))
                    .is_err()
                {
                    return;
                }
            }
        });
        let started = Instant::now();
        let timing = BurstTiming {
            max_wait: Duration::from_millis(500),
            ..TIMING
        };
        let burst = collect_burst(Signal::RescanAll, &mut receiver, timing).await;
        writer.abort();
        assert!(burst.all);
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_flood_that_never_pauses_still_ends_the_burst() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        // A thread keeps the channel non-empty, so every receive is immediately ready.
        let flood = std::thread::spawn(move || {
            while sender.send(signal(3, "d.yaml", FileState::Writing)).is_ok() {
                std::thread::yield_now();
            }
        });
        let started = std::time::Instant::now();
        let timing = BurstTiming {
            max_wait: Duration::from_millis(200),
            ..TIMING
        };
        let burst = collect_burst(
            signal(3, "d.yaml", FileState::Writing),
            &mut receiver,
            timing,
        )
        .await;
        drop(receiver);
        flood.join().unwrap();
        assert_eq!(burst.clusters, BTreeSet::from([3]));
        // The point is that the burst ends at all (the 200 ms cap), not how fast: a loaded
        // machine can stretch 200 ms a lot, so the bound only catches a burst that never ends.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_close_after_writing_a_rename_or_a_removal_settles_a_file() {
        use notify::event::{DataChange, RemoveKind, RenameMode};
        let settled = [
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Remove(RemoveKind::File),
        ];
        for kind in settled {
            assert_eq!(FileState::of(&kind), FileState::Settled, "{kind:?}");
        }
        let writing = [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
        ];
        for kind in writing {
            assert_eq!(FileState::of(&kind), FileState::Writing, "{kind:?}");
        }
    }

    /// What inotify really reports for the usual ways of changing a file must end settled, or
    /// every change would wait the long quiet: the test fails by timing out otherwise.
    #[tokio::test]
    async fn real_writes_and_renames_end_settled() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path().canonicalize().unwrap();
        let (mut watcher, mut signals) =
            DirectoryWatcher::start(vec![(0, "cluster1".into(), root.clone())]).unwrap();
        watcher.watch(0).unwrap();
        let written = root.join("written.yaml");
        std::fs::write(&written, "kind: Service\n").unwrap();
        std::fs::write(&written, "kind: Pod\n").unwrap();
        let staged = root.join(".staged.yaml");
        let renamed = root.join("renamed.yaml");
        std::fs::write(&staged, "kind: Pod\n").unwrap();
        std::fs::rename(&staged, &renamed).unwrap();

        let mut last = std::collections::HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(last.get(&written) == Some(&FileState::Settled)
            && last.get(&renamed) == Some(&FileState::Settled)
            && last.get(&staged) == Some(&FileState::Settled))
        {
            let signal = tokio::time::timeout_at(deadline, signals.recv())
                .await
                .unwrap_or_else(|_| panic!("no settling event; last states: {last:?}"))
                .unwrap();
            if let Signal::Changed { path, state, .. } = signal {
                last.insert(path, state);
            }
        }
    }

    #[test]
    fn reads_are_not_changes() {
        assert!(!is_content_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_content_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_content_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_content_change(&EventKind::Remove(
            notify::event::RemoveKind::File
        )));
    }
}
