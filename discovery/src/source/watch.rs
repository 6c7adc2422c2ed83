//! Filesystem events → "cluster N changed" signals, and collecting a burst of them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::SourceError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Something changed under the directory of the cluster at this index.
    Changed(usize),
    /// The watcher lost track (queue overflow, error): every cluster must be read again.
    RescanAll,
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
                Ok(event) if !is_content_change(&event.kind) => return,
                Ok(event) => event
                    .paths
                    .iter()
                    .filter_map(|path| {
                        targets
                            .iter()
                            .find(|(_, directory)| path.starts_with(directory))
                            .map(|(index, _)| Signal::Changed(*index))
                    })
                    .collect::<Vec<_>>(),
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
}

impl Burst {
    fn add(&mut self, signal: Signal) {
        match signal {
            Signal::Changed(index) => {
                self.clusters.insert(index);
            }
            Signal::RescanAll => self.all = true,
        }
    }
}

/// Starting from `first`, collects signals until none arrived for `quiet`, or `max_wait`
/// passed since the first (so a file rewritten without pause still gets picked up).
pub(crate) async fn collect_burst(
    first: Signal,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
    quiet: Duration,
    max_wait: Duration,
) -> Burst {
    let mut burst = Burst::default();
    burst.add(first);
    let give_up = Instant::now() + max_wait;
    loop {
        let now = Instant::now();
        // `timeout_at` polls the receiver before its timer, so a receiver that is always ready
        // would never time out: the cap has to be checked here.
        if now >= give_up {
            return burst;
        }
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

    #[tokio::test(start_paused = true)]
    async fn a_burst_ends_after_a_quiet_period() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        for index in [1, 2, 1] {
            sender.send(Signal::Changed(index)).unwrap();
        }
        let started = Instant::now();
        let burst = collect_burst(
            Signal::Changed(0),
            &mut receiver,
            Duration::from_millis(100),
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(burst.clusters, BTreeSet::from([0, 1, 2]));
        assert!(!burst.all && !burst.closed);
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_is_cut_at_the_maximum_wait() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let writer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if sender.send(Signal::Changed(0)).is_err() {
                    return;
                }
            }
        });
        let started = Instant::now();
        let burst = collect_burst(
            Signal::RescanAll,
            &mut receiver,
            Duration::from_millis(100),
            Duration::from_millis(500),
        )
        .await;
        writer.abort();
        assert!(burst.all);
        assert_eq!(started.elapsed(), Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_flood_that_never_pauses_still_ends_the_burst() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        // A thread keeps the channel non-empty, so every receive is immediately ready.
        let flood = std::thread::spawn(move || {
            while sender.send(Signal::Changed(3)).is_ok() {
                std::thread::yield_now();
            }
        });
        let started = std::time::Instant::now();
        let burst = collect_burst(
            Signal::Changed(3),
            &mut receiver,
            Duration::from_millis(100),
            Duration::from_millis(200),
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
