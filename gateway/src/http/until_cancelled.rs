//! A future that gives way when a cancellation token fires, without waiting on the token at
//! every poll of the future it guards.
//!
//! `select!` over a connection and `token.cancelled()` polls the token's wait each time the
//! connection wakes, several times per request, and each such poll takes the token's waiter
//! lock to compare wakers (bench/https.sh --instructions counted ~320 instructions per
//! HTTP/1.1 request). Here the token's wait holds a waker of its own, made once, that marks
//! it woken and wakes the task: the wait is polled again only when it was woken.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Polls `future` until it completes (`Some(output)`) or `token` is cancelled (`None`).
pub struct UntilCancelled<F> {
    future: F,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    signal: Arc<CancelSignal>,
    waker: Waker,
}

/// Given to the token's wait as its waker: remembers the wake and passes it on to the task's
/// latest waker.
struct CancelSignal {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for CancelSignal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future + Unpin> UntilCancelled<F> {
    pub fn new(future: F, token: CancellationToken) -> Self {
        let signal = Arc::new(CancelSignal {
            // The first poll registers the wait.
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        UntilCancelled {
            future,
            cancelled: Box::pin(token.cancelled_owned()),
            waker: Waker::from(Arc::clone(&signal)),
            signal,
        }
    }
}

impl<F: Future + Unpin> Future for UntilCancelled<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // Registered before the flag is read, so a cancellation between the two still wakes
        // this task.
        this.signal.task.register(cx.waker());
        if this.signal.woken.swap(false, Ordering::AcqRel) {
            let mut signal_cx = Context::from_waker(&this.waker);
            if this.cancelled.as_mut().poll(&mut signal_cx).is_ready() {
                return Poll::Ready(None);
            }
        }
        Pin::new(&mut this.future).poll(cx).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_future_that_completes_gives_its_output() {
        let token = CancellationToken::new();
        let guarded = UntilCancelled::new(Box::pin(async { 7 }), token);
        assert_eq!(guarded.await, Some(7));
    }

    #[tokio::test]
    async fn cancellation_ends_a_pending_future() {
        let token = CancellationToken::new();
        let guarded = UntilCancelled::new(Box::pin(std::future::pending::<()>()), token.clone());
        let waiting = tokio::spawn(guarded);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        token.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert_eq!(
            ended.expect("cancellation must wake the task").unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn cancellation_reaches_a_future_that_keeps_waking() {
        // The guarded future wakes its task over and over, as a busy connection does: the
        // token's wait, skipped on those polls, must still see the cancellation.
        let token = CancellationToken::new();
        let busy = Box::pin(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
        let waiting = tokio::spawn(UntilCancelled::new(busy, token.clone()));
        tokio::time::sleep(Duration::from_millis(20)).await;
        token.cancel();
        let ended: Option<()> = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("cancellation must end a busy future")
            .unwrap();
        assert_eq!(ended, None);
    }

    #[tokio::test]
    async fn a_token_cancelled_before_the_first_poll_ends_it_at_once() {
        let token = CancellationToken::new();
        token.cancel();
        let guarded = UntilCancelled::new(Box::pin(std::future::pending::<()>()), token);
        let ended = tokio::time::timeout(Duration::from_secs(5), guarded).await;
        assert_eq!(ended.expect("a cancelled token must end it"), None);
    }
}
