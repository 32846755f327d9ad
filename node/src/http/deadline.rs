//! A connection whose writes have a deadline: once a write (or flush) has
//! waited [`WriteDeadline::new`]'s `timeout` without the peer taking a
//! single byte, it fails with `TimedOut`, so a client that requests a large
//! response and then stops reading holds its connection slot for that long
//! at most, never forever. Any progress restarts the clock.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner`, with a deadline on each stalled write.
pub struct WriteDeadline<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write waits; dropped once a byte goes out.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Called once when the deadline passes (a log line and a metric).
    on_timeout: Option<Box<dyn FnOnce() + Send>>,
}

impl<T> WriteDeadline<T> {
    /// Wrap `inner`; `on_timeout` runs when a write first times out.
    pub fn new(inner: T, timeout: Duration, on_timeout: Box<dyn FnOnce() + Send>) -> Self {
        WriteDeadline {
            inner,
            timeout,
            timer: None,
            on_timeout: Some(on_timeout),
        }
    }

    /// `r` from the inner writer: progress disarms the timer, a wait arms
    /// it (and fails once it fired).
    fn guard<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => self.stalled(cx).map(Err),
            done => {
                self.timer = None;
                done
            }
        }
    }

    /// The write is blocked: arm the timer if it is not, and fail once it
    /// fired.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.timeout;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                if let Some(f) = self.on_timeout.take() {
                    f();
                }
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the client took no response bytes for {timeout:?}"),
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

use std::future::Future as _;

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.guard(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::io::AsyncWriteExt as _;

    #[tokio::test(flavor = "current_thread")]
    async fn a_stalled_write_fails_after_the_deadline_and_progress_restarts_it() {
        // A 64-byte pipe nobody reads.
        let (a, mut b) = tokio::io::duplex(64);
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let mut w = WriteDeadline::new(
            a,
            Duration::from_millis(400),
            Box::new(move || f.store(true, Ordering::SeqCst)),
        );
        w.write_all(&[1; 64]).await.unwrap();
        // Full: the next write waits. Reading some within the deadline
        // lets it go on.
        let reader = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut got = [0u8; 32];
            tokio::io::AsyncReadExt::read_exact(&mut b, &mut got)
                .await
                .unwrap();
            b
        });
        w.write_all(&[2; 32]).await.unwrap();
        assert!(!fired.load(Ordering::SeqCst));
        let _b = reader.await.unwrap();
        // Nobody reads any more: the write fails once the deadline passed.
        let t0 = tokio::time::Instant::now();
        let e = w.write_all(&[3; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t0.elapsed() >= Duration::from_millis(400));
        assert!(fired.load(Ordering::SeqCst));
    }
}
