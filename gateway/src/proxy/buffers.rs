//! Copy buffers leased only while a direction has bytes to move.
//!
//! A passthrough connection spends nearly all its life idle. Holding a buffer per direction
//! for that whole life costs 2 × the buffer size per connection (32 KiB at 16 KiB buffers,
//! 270 MiB at 10,000 connections); leasing one only between "readable" and "drained" makes
//! an idle connection cost its task and sockets, and lets a busy one use a larger buffer.
//!
//! Free buffers are kept per thread, so a lease is a thread-local pop with no lock and no
//! contention between data-plane workers. A task that moved threads between taking and
//! giving back a buffer simply gives it to the other thread's list.

use std::cell::RefCell;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Size of a leased buffer. Larger than a TLS record, so one read drains several records of
/// a bulk transfer and one write hands them on: fewer syscalls per byte while busy, at no
/// cost for idle connections, which hold none.
pub const COPY_BUFFER: usize = 64 * 1024;

/// Free buffers a thread keeps for the next lease; more are freed. Bounds what the pool
/// holds when a burst ends to `KEEP_PER_THREAD × COPY_BUFFER` per worker thread.
const KEEP_PER_THREAD: usize = 8;

thread_local! {
    static FREE: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// Counts leases so the data plane (and its tests) can see that idle connections hold none.
#[derive(Debug, Default)]
pub struct BufferPool {
    leased: AtomicUsize,
    allocated: AtomicUsize,
}

impl BufferPool {
    pub const fn new() -> Self {
        BufferPool {
            leased: AtomicUsize::new(0),
            allocated: AtomicUsize::new(0),
        }
    }

    /// A buffer of [`COPY_BUFFER`] bytes, from this thread's free list when it has one.
    pub fn lease(&self) -> Lease<'_> {
        let reused = FREE.with(|free| free.borrow_mut().pop());
        let buffer = reused.unwrap_or_else(|| {
            self.allocated.fetch_add(1, Ordering::Relaxed);
            vec![0u8; COPY_BUFFER].into_boxed_slice()
        });
        self.leased.fetch_add(1, Ordering::Relaxed);
        Lease {
            buffer: Some(buffer),
            pool: self,
        }
    }

    /// Buffers currently held by connections.
    pub fn leased(&self) -> usize {
        self.leased.load(Ordering::Relaxed)
    }

    /// Buffers this pool had to allocate because no free one was at hand.
    pub fn allocated(&self) -> usize {
        self.allocated.load(Ordering::Relaxed)
    }
}

/// A buffer on loan; dropping it gives it back.
pub struct Lease<'p> {
    buffer: Option<Box<[u8]>>,
    pool: &'p BufferPool,
}

impl Deref for Lease<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.buffer.as_deref().unwrap_or_default()
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.buffer.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.pool.leased.fetch_sub(1, Ordering::Relaxed);
        if let Some(buffer) = self.buffer.take() {
            // During thread teardown the list may already be gone; the buffer is then freed.
            let _ = FREE.try_with(|free| {
                let mut free = free.borrow_mut();
                if free.len() < KEEP_PER_THREAD {
                    free.push(buffer);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_buffer_is_reused_on_the_same_thread() {
        let pool = BufferPool::new();
        let first = pool.lease();
        assert_eq!(first.len(), COPY_BUFFER);
        assert_eq!(pool.leased(), 1);
        let address = first.as_ptr();
        drop(first);
        assert_eq!(pool.leased(), 0);
        let second = pool.lease();
        assert_eq!(second.as_ptr(), address);
        assert_eq!(pool.allocated(), 1);
    }

    #[test]
    fn a_thread_keeps_a_bounded_number_of_free_buffers() {
        let pool = BufferPool::new();
        let leases: Vec<_> = (0..KEEP_PER_THREAD + 4).map(|_| pool.lease()).collect();
        assert_eq!(pool.leased(), KEEP_PER_THREAD + 4);
        drop(leases);
        assert_eq!(pool.leased(), 0);
        assert_eq!(FREE.with(|free| free.borrow().len()), KEEP_PER_THREAD);
    }
}
