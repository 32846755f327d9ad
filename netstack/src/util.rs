//! Small single-threaded async helpers: a wake-up signal and a race of
//! futures (glommio executors are single-threaded, so `Cell` suffices).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::task::{Poll, Waker};

/// Wakes every task waiting for "something changed".
#[derive(Default)]
pub(crate) struct Signal {
    version: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Signal {
    pub(crate) fn notify(&self) {
        self.version.set(self.version.get().wrapping_add(1));
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    pub(crate) fn version(&self) -> u64 {
        self.version.get()
    }

    /// Resolve once `notify` ran after `seen` was read.
    pub(crate) async fn changed_since(&self, seen: u64) {
        std::future::poll_fn(|cx| {
            if self.version.get() != seen {
                return Poll::Ready(());
            }
            let mut ws = self.wakers.borrow_mut();
            if !ws.iter().any(|w| w.will_wake(cx.waker())) {
                ws.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// Which of two raced futures finished.
pub(crate) enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Poll both, return the first to finish (the other is dropped).
pub(crate) async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(x));
        }
        if let Poll::Ready(x) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(x));
        }
        Poll::Pending
    })
    .await
}

/// Run `f` for at most `dur`.
pub(crate) async fn with_timeout<F: Future>(dur: std::time::Duration, f: F) -> Option<F::Output> {
    match race(f, glommio::timer::Timer::new(dur)).await {
        Either::Left(x) => Some(x),
        Either::Right(_) => None,
    }
}
