//! The runtime listeners and connections run on.
//!
//! With one thread the data plane is a current-thread runtime driven by a dedicated thread;
//! with more, a multi-thread runtime. One thread has no one to steal work from, and the
//! multi-thread scheduler's cross-thread queues, wake-ups and parking cost it throughput
//! (linkerd2-proxy makes the same choice for one core). Measured once, not reproducible from
//! this repository: two gateways of one binary, the runtime kind chosen by a temporary
//! switch, alternating on `bench/https.sh`'s setup gave the current-thread one 12–24% more
//! HTTP/1 and 18–23% more HTTP/2 requests per second.

use std::io;
use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;

const THREAD_NAME: &str = "isthmus-data";

/// Stops its runtime when dropped, also on an early return from async code (where dropping
/// a multi-thread runtime itself would panic).
pub struct DataPlane {
    handle: Handle,
    kind: Option<Kind>,
}

enum Kind {
    MultiThread(Runtime),
    /// The runtime lives on its driver thread, which blocks on it until told to stop.
    CurrentThread {
        stop: oneshot::Sender<()>,
        driver: JoinHandle<()>,
    },
}

impl DataPlane {
    pub fn start(threads: usize) -> io::Result<DataPlane> {
        if threads > 1 {
            let runtime = Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name(THREAD_NAME)
                .enable_all()
                .build()?;
            return Ok(DataPlane {
                handle: runtime.handle().clone(),
                kind: Some(Kind::MultiThread(runtime)),
            });
        }
        let runtime = Builder::new_current_thread()
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let driver = std::thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || {
                // A dropped sender stops the runtime as a sent stop does.
                let _ = runtime.block_on(stopped);
                runtime.shutdown_background();
            })?;
        Ok(DataPlane {
            handle,
            kind: Some(Kind::CurrentThread { stop, driver }),
        })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    fn stop(&mut self) {
        match self.kind.take() {
            Some(Kind::MultiThread(runtime)) => runtime.shutdown_background(),
            Some(Kind::CurrentThread { stop, driver }) => {
                let _ = stop.send(());
                // The driver thread finishes on its own; joining it here could block an
                // async caller.
                drop(driver);
            }
            None => {}
        }
    }
}

/// Dropping stops the runtime without waiting for its tasks: they are dropped where they stand.
/// Safe from async code (nothing here blocks).
impl Drop for DataPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_run_tasks_and_stop() {
        for threads in [1, 2] {
            let data_plane = DataPlane::start(threads).unwrap();
            let (done, finished) = std::sync::mpsc::channel();
            data_plane.handle().spawn(async move {
                let name = std::thread::current().name().map(str::to_owned);
                done.send(name).unwrap();
            });
            let name = finished
                .recv_timeout(std::time::Duration::from_secs(5))
                .unwrap();
            assert_eq!(name.as_deref(), Some(THREAD_NAME), "{threads} thread(s)");
            drop(data_plane);
        }
    }

    /// What `Gateway::start` does when a step after starting the data plane fails.
    #[tokio::test]
    async fn dropping_from_async_code_does_not_panic() {
        for threads in [1, 2] {
            drop(DataPlane::start(threads).unwrap());
        }
    }

    #[test]
    fn a_stopped_current_thread_runtime_runs_nothing_more() {
        let mut data_plane = DataPlane::start(1).unwrap();
        let handle = data_plane.handle().clone();
        let Some(Kind::CurrentThread { stop, driver }) = data_plane.kind.take() else {
            panic!("one thread is a current-thread runtime");
        };
        let _ = stop.send(());
        driver.join().unwrap();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        drop(handle.spawn(async move { done.send(()).unwrap() }));
        assert!(
            finished
                .recv_timeout(std::time::Duration::from_millis(200))
                .is_err()
        );
    }
}
