//! Receive readiness without busy polling: a small thread blocks in
//! `poll(2)` on the device's descriptor (a UDP socket, an AF_XDP socket)
//! while the driver task is idle, and wakes the driver when a datagram
//! arrives. The driver arms it only after it found the device empty, so
//! the thread never spins; between arming and waking, the executor sleeps
//! instead of waking up every few hundred microseconds to look.

use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

/// How long one `poll(2)` waits before the thread checks for shutdown.
pub const POLL_SLICE: Duration = Duration::from_millis(100);

#[derive(Default)]
struct State {
    /// The driver is idle and wants to hear about input.
    armed: bool,
    /// Input arrived since the driver last looked.
    ready: bool,
    /// The transport is gone: the thread ends.
    stop: bool,
    waker: Option<Waker>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

/// Wakes the driver when the descriptor becomes readable.
pub struct RxWaiter {
    shared: Arc<Shared>,
}

impl RxWaiter {
    /// Start the waiting thread for `fd`. The descriptor must stay open for
    /// as long as this waiter lives (the transport owns both).
    pub fn start(fd: RawFd) -> std::io::Result<RxWaiter> {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        std::thread::Builder::new()
            .name("dgram-rx-wait".into())
            .spawn(move || wait_loop(fd, &s))?;
        Ok(RxWaiter { shared })
    }

    /// Resolve once input arrived (arming the thread first).
    pub async fn readable(&self) {
        std::future::poll_fn(|cx| {
            let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.ready {
                st.ready = false;
                st.armed = false;
                return Poll::Ready(());
            }
            st.waker = Some(cx.waker().clone());
            if !st.armed {
                st.armed = true;
                self.shared.cv.notify_one();
            }
            Poll::Pending
        })
        .await
    }
}

impl Drop for RxWaiter {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.stop = true;
        st.waker = None;
        self.shared.cv.notify_one();
    }
}

fn wait_loop(fd: RawFd, s: &Shared) {
    loop {
        {
            let mut st = s.state.lock().unwrap_or_else(|p| p.into_inner());
            while !st.armed && !st.stop {
                st = s.cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.stop {
                return;
            }
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `p` is one valid pollfd for the duration of the call; the
        // descriptor is kept open by the transport that owns this waiter
        // (and the loop ends, at the latest one slice after `stop`).
        let r = unsafe { libc::poll(&mut p, 1, POLL_SLICE.as_millis() as libc::c_int) };
        if r == 0 {
            continue;
        }
        if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        // Readable, or an error the driver will see when it reads.
        let mut st = s.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.stop {
            return;
        }
        st.ready = true;
        st.armed = false;
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }
}
