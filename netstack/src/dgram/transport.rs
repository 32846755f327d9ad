//! [`DgramTransport`]: the [`Transport`] over datagrams. One driver task on
//! the glommio executor owns the device: each round it receives a burst,
//! feeds packets to their [`Conn`]s, fires timers, transmits what the
//! connections have due (optionally dropping every k-th datagram to prove
//! retransmission), flushes the device and wakes the readers and writers
//! whose connection changed. Between rounds it yields; when idle it sleeps
//! with growing pauses up to `idle_sleep_max`, or keeps spinning with
//! `busy_poll` (dedicated network core). Writers and readers kick it.

use super::device::DatagramIo;
use super::proto::{
    reset_for, syn_ack_for, syn_cookie, Conn, ConnConfig, ConnStats, Header, Kind, State, HEADER,
};
use crate::frame::{encode_len_prefix, RecordBuf};
use crate::metrics::{add, counters, inc};
use crate::transport::{Connection, Listener, RecordReader, RecordWriter, Transport};
use crate::NetError;
use rand::Rng;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, SocketAddrV4};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// Receive buffer of a reader at start; grows up to one largest record.
pub const READ_BUF_INITIAL: usize = 64 << 10;
/// Most stateless answers (RESETs, cookie SYN-ACKs) waiting to be sent.
pub const RESETS_MAX: usize = 64;
/// Seconds per SYN-cookie time slot (a cookie is good for one to two).
pub const COOKIE_SLOT_S: u64 = 64;
/// Most receive bursts per driver round.
pub const RX_BURSTS_PER_ROUND: usize = 16;
/// Most packets one connection sends per driver round (fairness).
pub const PACKETS_PER_ROUND: usize = 64;

counters! {
    DgramMetrics, DgramMetricsSnapshot, "Live counters of one datagram transport.";
    datagrams_sent: "Datagrams handed to the device.",
    datagrams_received: "Datagrams received from the device.",
    bad_packets: "Datagrams that were not valid packets of ours.",
    send_deferred: "Datagrams the device did not take (ring full, next hop unresolved); resent later.",
    send_errors: "Datagrams the device refused with an error.",
    injected_drops: "Datagrams dropped on purpose (loss injection).",
    resets_sent: "RESETs sent for unknown connections or local closes.",
    conns_refused: "SYNs refused (not listening, connection table or backlog full).",
    cookies_sent: "SYN-ACKs sent with a cookie (no state kept for the SYN).",
    cookies_bad: "Cookie echoes that did not verify (forged, or older than two slots).",
    data_sent: "Data packets sent for the first time.",
    retransmits: "Data packets sent again.",
    timeouts: "Retransmission timeouts.",
    data_received: "Data packets accepted.",
    data_discarded: "Data packets received twice.",
    data_over_window: "Data packets dropped because the receive window was full.",
}

/// Bounds and behaviour of the datagram transport.
#[derive(Clone, Debug)]
pub struct DgramConfig {
    /// Per-connection bounds and timers.
    pub conn: ConnConfig,
    /// Most connections at once.
    pub conns_max: usize,
    /// Accepted connections waiting for `accept`.
    pub backlog: usize,
    /// Drop every k-th outgoing datagram (0: never). Loss injection for
    /// this crate's own tests (feature `test-utils`); the node never sets
    /// it, and its loss tests drop packets in the kernel instead.
    #[cfg(any(test, feature = "test-utils"))]
    pub drop_every: u64,
    /// Never sleep between rounds (a dedicated, pinned network core).
    pub busy_poll: bool,
    /// Longest pause of an idle driver when not busy-polling.
    pub idle_sleep_max: Duration,
    /// Datagrams received per round at most.
    pub burst: usize,
}

impl Default for DgramConfig {
    fn default() -> Self {
        DgramConfig {
            conn: ConnConfig::default(),
            conns_max: 256,
            backlog: 64,
            #[cfg(any(test, feature = "test-utils"))]
            drop_every: 0,
            busy_poll: false,
            idle_sleep_max: Duration::from_micros(200),
            burst: 64,
        }
    }
}

type Key = (SocketAddrV4, u32);

struct Slot {
    conn: Conn,
    /// Handles alive (connection object, or its reader and writer).
    handles: u8,
    /// Handed to the application (connect, or taken by accept).
    owned: bool,
    reader: Option<Waker>,
    writer: Option<Waker>,
    opener: Option<Waker>,
    reported: ConnStats,
}

struct Stack {
    io: Box<dyn DatagramIo>,
    cfg: DgramConfig,
    conns: HashMap<Key, Slot>,
    listening: bool,
    backlog: VecDeque<Key>,
    acceptor: Option<Waker>,
    driver: Option<Waker>,
    kicked: bool,
    tx_count: u64,
    resets: VecDeque<(SocketAddrV4, [u8; HEADER])>,
    /// Key of the SYN cookies (random per start).
    secret: [u8; 32],
    /// Origin of the cookie time slots.
    started: Instant,
    buf: Vec<u8>,
    metrics: Arc<DgramMetrics>,
}

impl Stack {
    fn kick(&mut self) {
        self.kicked = true;
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    /// One driver round. Returns whether anything happened, the wakers to
    /// wake, and the earliest connection timer.
    fn round(&mut self, now: Instant) -> (bool, Vec<Waker>, Option<Instant>) {
        let mut wake = Vec::new();
        let mut touched: Vec<Key> = Vec::new();
        let Stack {
            io,
            cfg,
            conns,
            listening,
            backlog,
            resets,
            metrics,
            secret,
            started,
            ..
        } = self;
        let slot_now = now.saturating_duration_since(*started).as_secs() / COOKIE_SLOT_S;
        // 1. Receive: drain the device (up to RX_BURSTS_PER_ROUND bursts),
        // so that timers never judge a connection whose acknowledgements
        // are still waiting in the receive ring.
        let mut on_datagram = |src: SocketAddrV4, d: &[u8]| {
            inc(&metrics.datagrams_received);
            let (h, payload) = match Header::decode(d) {
                Ok(x) => x,
                Err(e) => {
                    inc(&metrics.bad_packets);
                    tracing::debug!(%src, error = %e, "dropped a malformed datagram");
                    return;
                }
            };
            let key = (src, h.conn);
            if let Some(s) = conns.get_mut(&key) {
                s.conn.on_packet(&h, payload, now);
                if touched.last() != Some(&key) {
                    touched.push(key);
                }
                return;
            }
            if h.kind == Kind::Syn && *listening {
                // Stateless: a SYN-ACK carrying a cookie, nothing kept.
                if resets.len() < RESETS_MAX {
                    let mut r = [0u8; HEADER];
                    let cookie = syn_cookie(secret, src, h.conn, slot_now);
                    let window = cfg.conn.recv_window.min(u32::MAX as usize) as u32;
                    syn_ack_for(&h, cookie, window, &mut r);
                    resets.push_back((src, r));
                    inc(&metrics.cookies_sent);
                } else {
                    inc(&metrics.conns_refused);
                }
                return;
            }
            let echo = h.kind == Kind::Ack && h.seq != 0 && *listening;
            if echo {
                let valid = [slot_now, slot_now.wrapping_sub(1)]
                    .iter()
                    .any(|s| syn_cookie(secret, src, h.conn, *s) == h.seq);
                if !valid {
                    inc(&metrics.cookies_bad);
                    return;
                }
                if conns.len() < cfg.conns_max && backlog.len() < cfg.backlog {
                    let mut conn = Conn::accept_echoed(cfg.conn.clone(), h.conn, now);
                    conn.on_packet(&h, payload, now);
                    conns.insert(
                        key,
                        Slot {
                            conn,
                            handles: 0,
                            owned: false,
                            reader: None,
                            writer: None,
                            opener: None,
                            reported: ConnStats::default(),
                        },
                    );
                    backlog.push_back(key);
                    touched.push(key);
                    return;
                }
                // Full: the initiator echoes again later.
                inc(&metrics.conns_refused);
                return;
            }
            if resets.len() < RESETS_MAX {
                let mut r = [0u8; HEADER];
                if reset_for(&h, &mut r).is_some() {
                    resets.push_back((src, r));
                }
            }
        };
        let mut got = 0;
        let mut drained = false;
        for _ in 0..RX_BURSTS_PER_ROUND {
            match io.recv(cfg.burst, &mut on_datagram) {
                Ok(n) => {
                    got += n;
                    if n < cfg.burst {
                        drained = true;
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "datagram device receive failed");
                    drained = true;
                    break;
                }
            }
        }
        if !backlog.is_empty() {
            if let Some(w) = self.acceptor.take() {
                wake.push(w);
            }
        }
        // 2. Timers, 3. transmit.
        let mut sent = 0usize;
        let mut next: Option<Instant> = None;
        let Stack {
            io,
            cfg,
            conns,
            resets,
            buf,
            tx_count,
            metrics,
            ..
        } = self;
        #[cfg(not(any(test, feature = "test-utils")))]
        let _ = &cfg;
        let mut send = |io: &mut Box<dyn DatagramIo>, dst: SocketAddrV4, pkt: &[u8]| {
            *tx_count += 1;
            #[cfg(any(test, feature = "test-utils"))]
            if cfg.drop_every > 0 && *tx_count % cfg.drop_every == 0 {
                inc(&metrics.injected_drops);
                return;
            }
            match io.send(dst, pkt) {
                Ok(true) => inc(&metrics.datagrams_sent),
                Ok(false) => inc(&metrics.send_deferred),
                Err(e) => {
                    inc(&metrics.send_errors);
                    tracing::debug!(%dst, error = %e, "datagram send failed");
                }
            }
        };
        while let Some((dst, r)) = resets.pop_front() {
            inc(&metrics.resets_sent);
            send(io, dst, &r);
            sent += 1;
        }
        for (key, s) in conns.iter_mut() {
            let before = s.conn.state().clone();
            if drained {
                s.conn.on_timer(now);
            }
            let mut k = 0;
            while k < PACKETS_PER_ROUND {
                let Some(n) = s.conn.poll_transmit(now, buf) else {
                    break;
                };
                if buf[3] == Kind::Reset as u8 {
                    inc(&metrics.resets_sent);
                }
                send(io, key.0, &buf[..n]);
                k += 1;
            }
            sent += k;
            if k == PACKETS_PER_ROUND {
                // More due: come back at once.
                next = Some(now);
            }
            if (*s.conn.state() != before || k > 0) && !touched.contains(key) {
                touched.push(*key);
            }
            if let Some(t) = s.conn.next_timer() {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
            let st = s.conn.stats();
            let r = s.reported;
            add(&metrics.data_sent, st.data_sent - r.data_sent);
            add(&metrics.retransmits, st.retransmits - r.retransmits);
            add(&metrics.timeouts, st.timeouts - r.timeouts);
            add(&metrics.data_received, st.data_received - r.data_received);
            add(
                &metrics.data_discarded,
                st.data_discarded - r.data_discarded,
            );
            s.reported = st;
        }
        if let Err(e) = io.flush() {
            tracing::warn!(error = %e, "datagram device flush failed");
        }
        // 4. Wake whoever waits on a connection that changed.
        for key in &touched {
            if let Some(s) = self.conns.get_mut(key) {
                wake.extend(s.reader.take());
                wake.extend(s.writer.take());
                wake.extend(s.opener.take());
            }
        }
        // 5. Forget connections nobody holds any more: closed ones whose
        // handles are gone, and never-accepted ones that died.
        let backlog = &mut self.backlog;
        self.conns.retain(|key, s| {
            let closed = matches!(s.conn.state(), State::Closed(_));
            let keep = if s.owned { s.handles > 0 } else { !closed };
            if !keep && !s.owned {
                backlog.retain(|k| k != key);
            }
            keep
        });
        (got > 0 || sent > 0 || !drained, wake, next)
    }
}

/// The datagram [`Transport`]. Cheap to clone (one shared stack).
#[derive(Clone)]
pub struct DgramTransport {
    stack: Rc<RefCell<Stack>>,
    metrics: Arc<DgramMetrics>,
    mode: Rc<str>,
}

impl std::fmt::Debug for DgramTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DgramTransport({})", self.mode)
    }
}

impl DgramTransport {
    /// Take over `io` and start the driver task. Must run inside a glommio
    /// executor.
    pub fn start(io: Box<dyn DatagramIo>, cfg: DgramConfig) -> DgramTransport {
        let mut cfg = cfg;
        cfg.conn.mss = cfg.conn.mss.min(io.payload_max() - HEADER);
        let metrics = Arc::new(DgramMetrics::default());
        let mode: Rc<str> = io.mode().into();
        let stack = Rc::new(RefCell::new(Stack {
            buf: vec![0; HEADER + cfg.conn.mss],
            io,
            cfg,
            conns: HashMap::new(),
            listening: false,
            backlog: VecDeque::new(),
            acceptor: None,
            driver: None,
            kicked: false,
            tx_count: 0,
            resets: VecDeque::new(),
            secret: rand::thread_rng().gen(),
            started: Instant::now(),
            metrics: metrics.clone(),
        }));
        // Event-driven receive where the device has a descriptor (kernel
        // UDP, AF_XDP) and the core is not dedicated to spinning.
        let waiter = {
            let st = stack.borrow();
            match (st.cfg.busy_poll, st.io.rx_fd()) {
                (false, Some(fd)) => match super::waiter::RxWaiter::start(fd) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        tracing::warn!(error = %e, "no receive-readiness thread; polling instead");
                        None
                    }
                },
                _ => None,
            }
        };
        glommio::spawn_local(drive(Rc::downgrade(&stack), waiter)).detach();
        DgramTransport {
            stack,
            metrics,
            mode,
        }
    }

    /// Counters.
    pub fn metrics(&self) -> Arc<DgramMetrics> {
        self.metrics.clone()
    }

    /// How the device runs.
    pub fn mode(&self) -> &str {
        &self.mode
    }

    /// The local address.
    pub fn local(&self) -> SocketAddrV4 {
        self.stack.borrow().io.local()
    }

    /// Connections currently held.
    pub fn connections(&self) -> usize {
        self.stack.borrow().conns.len()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Let an idle driver notice that the transport is gone.
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }
}

/// Longest an idle driver waits for input when a readiness thread watches
/// the device (connection timers wake it earlier).
pub const IDLE_WAIT_MAX: Duration = Duration::from_millis(50);
/// Short sleeps (10, 20, 40, ... µs) an idle driver takes before it hands
/// over to the readiness thread.
pub const SHORT_SLEEPS: u32 = 5;

async fn drive(weak: Weak<RefCell<Stack>>, waiter: Option<super::waiter::RxWaiter>) {
    let mut idle: u32 = 0;
    loop {
        let Some(rc) = weak.upgrade() else {
            return;
        };
        let now = Instant::now();
        let (busy, wake, next, busy_poll, sleep_max) = {
            let mut st = rc.borrow_mut();
            st.kicked = false;
            let (b, w, n) = st.round(now);
            (b, w, n, st.cfg.busy_poll, st.cfg.idle_sleep_max)
        };
        drop(rc);
        for w in wake {
            w.wake();
        }
        if busy || busy_poll {
            idle = 0;
            futures_lite::future::yield_now().await;
            continue;
        }
        idle = idle.saturating_add(1);
        if idle < 4 {
            futures_lite::future::yield_now().await;
            continue;
        }
        // Just after activity, look again after short sleeps (a reply is
        // often about to arrive); once idle for longer, hand over to the
        // readiness thread (if any) and stop waking up.
        let use_waiter = waiter.is_some() && idle >= 4 + SHORT_SLEEPS;
        let mut pause = if use_waiter {
            IDLE_WAIT_MAX
        } else {
            Duration::from_micros(10u64 << (idle - 4).min(10)).min(sleep_max)
        };
        if let Some(t) = next {
            pause = pause.min(t.saturating_duration_since(Instant::now()));
        }
        if pause.is_zero() {
            futures_lite::future::yield_now().await;
            continue;
        }
        let w2 = weak.clone();
        let kicked = std::future::poll_fn(move |cx| {
            let Some(rc) = w2.upgrade() else {
                return Poll::Ready(());
            };
            let mut st = rc.borrow_mut();
            if st.kicked {
                return Poll::Ready(());
            }
            st.driver = Some(cx.waker().clone());
            Poll::Pending
        });
        let woken = match waiter.as_ref().filter(|_| use_waiter) {
            Some(w) => {
                let input = async {
                    match crate::util::race(kicked, w.readable()).await {
                        crate::util::Either::Left(()) | crate::util::Either::Right(()) => {}
                    }
                };
                crate::util::race(input, glommio::timer::Timer::new(pause)).await
            }
            None => crate::util::race(kicked, glommio::timer::Timer::new(pause)).await,
        };
        if let crate::util::Either::Left(()) = woken {
            idle = 0;
        }
    }
}

fn v4(addr: SocketAddr) -> Result<SocketAddrV4, NetError> {
    match addr {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(a) => Err(NetError::Runtime(format!(
            "{a}: the datagram transports carry IPv4 only"
        ))),
    }
}

/// Accepts connections.
pub struct DgramListener {
    stack: Rc<RefCell<Stack>>,
    addr: SocketAddr,
}

impl Transport for DgramTransport {
    type Conn = DgramConn;
    type Listener = DgramListener;

    fn listen(&self, addr: SocketAddr) -> Result<DgramListener, NetError> {
        let want = v4(addr)?;
        let mut st = self.stack.borrow_mut();
        let local = st.io.local();
        let ip_ok = want.ip().is_unspecified() || want.ip() == local.ip();
        let port_ok = want.port() == 0 || want.port() == local.port();
        if !ip_ok || !port_ok {
            return Err(NetError::Runtime(format!(
                "the datagram device is bound to {local}; cannot listen on {want}"
            )));
        }
        st.listening = true;
        Ok(DgramListener {
            stack: self.stack.clone(),
            addr: SocketAddr::V4(local),
        })
    }

    async fn connect(&self, addr: SocketAddr, timeout: Duration) -> Result<DgramConn, NetError> {
        let dst = v4(addr)?;
        let key = {
            let mut st = self.stack.borrow_mut();
            if st.conns.len() >= st.cfg.conns_max {
                return Err(NetError::Runtime("datagram connection table full".into()));
            }
            let mut rng = rand::thread_rng();
            let key = loop {
                let k = (dst, rng.gen_range(1..=u32::MAX));
                if !st.conns.contains_key(&k) {
                    break k;
                }
            };
            let conn = Conn::connect(st.cfg.conn.clone(), key.1, Instant::now());
            st.conns.insert(
                key,
                Slot {
                    conn,
                    handles: 1,
                    owned: true,
                    reader: None,
                    writer: None,
                    opener: None,
                    reported: ConnStats::default(),
                },
            );
            st.kick();
            key
        };
        let conn = DgramConn {
            stack: Some(self.stack.clone()),
            key,
        };
        let stack = self.stack.clone();
        let opened = std::future::poll_fn(|cx| {
            let mut st = stack.borrow_mut();
            let Some(s) = st.conns.get_mut(&key) else {
                return Poll::Ready(Err(NetError::Closed));
            };
            match s.conn.state() {
                State::Established => Poll::Ready(Ok(())),
                State::Closed(r) => {
                    Poll::Ready(Err(NetError::Runtime(format!("connect to {dst}: {r}"))))
                }
                State::SynSent => {
                    s.opener = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        });
        match crate::util::with_timeout(timeout, opened).await {
            Some(Ok(())) => Ok(conn),
            Some(Err(e)) => Err(e),
            None => Err(NetError::Timeout),
        }
    }
}

impl Listener for DgramListener {
    type Conn = DgramConn;

    async fn accept(&self) -> Result<(DgramConn, SocketAddr), NetError> {
        let key = std::future::poll_fn(|cx| {
            let mut st = self.stack.borrow_mut();
            while let Some(key) = st.backlog.pop_front() {
                if let Some(s) = st.conns.get_mut(&key) {
                    s.owned = true;
                    s.handles = 1;
                    return Poll::Ready(key);
                }
            }
            st.acceptor = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        Ok((
            DgramConn {
                stack: Some(self.stack.clone()),
                key,
            },
            SocketAddr::V4(key.0),
        ))
    }

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DgramListener {
    fn drop(&mut self) {
        self.stack.borrow_mut().listening = false;
    }
}

fn release(stack: &Rc<RefCell<Stack>>, key: Key) {
    let mut st = stack.borrow_mut();
    if let Some(s) = st.conns.get_mut(&key) {
        s.handles = s.handles.saturating_sub(1);
        if s.handles == 0 {
            s.conn.close();
            // Keep the slot one more round so the RESET goes out.
            s.handles = 0;
            st.kick();
        }
    }
}

/// An established datagram connection.
pub struct DgramConn {
    stack: Option<Rc<RefCell<Stack>>>,
    key: Key,
}

impl Drop for DgramConn {
    fn drop(&mut self) {
        if let Some(stack) = self.stack.take() {
            release(&stack, self.key);
        }
    }
}

impl Connection for DgramConn {
    type Reader = DgramReader;
    type Writer = DgramWriter;

    fn split(mut self, body_max: usize, batch_bytes: usize) -> (DgramReader, DgramWriter) {
        let stack = self.stack.take().expect("a connection is split once");
        if let Some(s) = stack.borrow_mut().conns.get_mut(&self.key) {
            s.handles = 2;
        }
        (
            DgramReader {
                stack: stack.clone(),
                key: self.key,
                buf: RecordBuf::new(READ_BUF_INITIAL, body_max),
            },
            DgramWriter {
                stack,
                key: self.key,
                batch: Vec::with_capacity(batch_bytes),
            },
        )
    }
}

/// Receive half.
pub struct DgramReader {
    stack: Rc<RefCell<Stack>>,
    key: Key,
    buf: RecordBuf,
}

impl Drop for DgramReader {
    fn drop(&mut self) {
        release(&self.stack, self.key);
    }
}

impl RecordReader for DgramReader {
    async fn next_record(&mut self) -> Result<&[u8], NetError> {
        let range = loop {
            if let Some(r) = self.buf.next_record()? {
                break r;
            }
            let key = self.key;
            let stack = &self.stack;
            let spare = self.buf.spare();
            let n = std::future::poll_fn(|cx| {
                let mut st = stack.borrow_mut();
                let Some(s) = st.conns.get_mut(&key) else {
                    return Poll::Ready(Err(NetError::Closed));
                };
                let n = s.conn.read(spare);
                if n > 0 {
                    st.kick();
                    return Poll::Ready(Ok(n));
                }
                if let State::Closed(r) = s.conn.state() {
                    tracing::debug!(reason = %r, "datagram connection closed");
                    return Poll::Ready(Err(NetError::Closed));
                }
                s.reader = Some(cx.waker().clone());
                Poll::Pending
            })
            .await?;
            self.buf.filled(n);
        };
        Ok(self.buf.body(range))
    }

    fn set_body_max(&mut self, body_max: usize) {
        self.buf.set_body_max(body_max);
    }
}

/// Send half.
pub struct DgramWriter {
    stack: Rc<RefCell<Stack>>,
    key: Key,
    batch: Vec<u8>,
}

impl Drop for DgramWriter {
    fn drop(&mut self) {
        release(&self.stack, self.key);
    }
}

impl RecordWriter for DgramWriter {
    fn reserve(&mut self, body_len: usize) -> &mut [u8] {
        self.batch.extend_from_slice(&encode_len_prefix(body_len));
        let at = self.batch.len();
        self.batch.resize(at + body_len, 0);
        &mut self.batch[at..]
    }

    fn pending(&self) -> usize {
        self.batch.len()
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        let mut off = 0;
        while off < self.batch.len() {
            let key = self.key;
            let stack = &self.stack;
            let rest = &self.batch[off..];
            let n = std::future::poll_fn(|cx| {
                let mut st = stack.borrow_mut();
                let Some(s) = st.conns.get_mut(&key) else {
                    return Poll::Ready(Err(NetError::Closed));
                };
                if let State::Closed(_) = s.conn.state() {
                    return Poll::Ready(Err(NetError::Closed));
                }
                let n = s.conn.write(rest, Instant::now());
                if n > 0 {
                    st.kick();
                    return Poll::Ready(Ok(n));
                }
                s.writer = Some(cx.waker().clone());
                Poll::Pending
            })
            .await?;
            off += n;
        }
        self.batch.clear();
        Ok(())
    }
}
