//! Where cluster resources come from. Only files for now: a directory per cluster of
//! multi-document YAML in Kubernetes shape, watched for changes.

mod directory;
mod files;
mod scan;
mod watch;

pub use files::{DEFAULT_DEBOUNCE, DEFAULT_RESYNC, FileMesh, load_once, run_file_mesh};

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
    #[error("reading cluster directories failed: {message}")]
    ReadTask { message: String },
}
