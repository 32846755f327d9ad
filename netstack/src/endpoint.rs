//! What the node uses: an [`Endpoint`] holds at most one session per peer,
//! dials the peers it should dial, accepts the rest, and moves frames
//! between bounded priority queues and the transport.
//!
//! One session per peer pair: of two peers that know each other's address,
//! the one with the smaller [`PeerId`] dials; the other dials too once the
//! pair has been apart for [`NetConfig::fallback_dial_after`] (so a link
//! the smaller side cannot re-dial still comes back); an inbound session
//! from a peer replaces an older one (the newest wins, so a restarted peer
//! is taken at once). Inbound handshakes from addresses of members have
//! their own [`MEMBER_HANDSHAKES_MAX`] slots: strangers filling theirs
//! never keep a member out. Per peer there is a bounded send queue per channel that outlives
//! sessions; the writer drains consensus first, batching records up to
//! `write_batch_bytes`. Inbound frames go to one endpoint-wide bounded
//! priority queue; when it is full the reader stops reading, so a slow
//! consumer pushes back through TCP and a fast peer cannot grow our memory.
//!
//! Delivery is at most once: frames popped into a batch that fails to send
//! are lost; protocols above retransmit.

use crate::frame::{
    frame_header, parse_frame, Channel, FrameKind, FRAME_PAYLOAD_LIMIT, FRAME_PAYLOAD_MAX_DEFAULT,
};
use crate::handshake::{
    AllowList, ChainId, HandshakeConfig, HandshakeError, Initiator, Responder, HANDSHAKE_MSG_MAX,
};
use crate::metrics::{add, inc, Metrics};
use crate::pool::{BufPool, PooledBuf};
use crate::queue::PrioQueue;
use crate::session::{record_body_max, sealed_len, SessionCipher};
use crate::transport::{Connection, Listener, RecordReader, RecordWriter, Transport};
use crate::util::{race, with_timeout, Either, Signal};
use crate::{NetError, PeerId};
use glommio::sync::Semaphore;
use glommio::timer::sleep;
use glommio::Task;
use plume_crypto::ed25519::SigningKey;
use rand::Rng;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// Most inbound handshakes in progress at once from addresses that are not
/// known members'; more are dropped.
pub const PENDING_HANDSHAKES_MAX: usize = 64;
/// Most inbound handshakes in progress at once from members' addresses (a
/// reserve strangers cannot use).
pub const MEMBER_HANDSHAKES_MAX: usize = 64;
/// Most addresses the handshake rate limiter tracks.
pub const RATE_TABLE_MAX: usize = 1024;
/// Most remembered addresses of authenticated peers.
pub const KNOWN_IPS_MAX: usize = 4096;

/// A peer we may dial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// Its network key.
    pub id: PeerId,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Endpoint configuration. All bounds in one place.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Listen address (port 0: any).
    pub listen: SocketAddr,
    /// The chain.
    pub chain_id: ChainId,
    /// Network keys allowed to hold a session (genesis members).
    pub allow: Vec<PeerId>,
    /// Known addresses; we dial those whose key is greater than ours, and
    /// the others after [`NetConfig::fallback_dial_after`] apart.
    pub peers: Vec<PeerAddr>,
    /// Largest frame payload.
    pub frame_payload_max: usize,
    /// Frames queued per peer per channel before `send` waits.
    pub send_queue_frames: usize,
    /// Bytes queued per peer before a bulk `send` waits and a bulk
    /// `try_send` refuses: a slow or hostile peer holds at most this much
    /// of our memory in bulk frames (plus one), whatever their sizes;
    /// consensus frames (small, bounded by their lane's count) always get
    /// in.
    pub send_queue_bytes: usize,
    /// Inbound frames queued per channel before readers stop reading.
    pub recv_queue_frames: usize,
    /// Inbound payload bytes held (queued or not yet dropped by the
    /// application) before readers stop reading. At least `frame_payload_max`.
    pub recv_budget_bytes: usize,
    /// Pooled buffers allocated at start.
    pub pool_bufs: usize,
    /// Initial capacity of each pooled buffer.
    pub pool_buf_bytes: usize,
    /// Bytes gathered before a write.
    pub write_batch_bytes: usize,
    /// Close a session when nothing arrived for this long.
    pub idle_timeout: Duration,
    /// Send a ping when nothing was sent for this long.
    pub keepalive: Duration,
    /// Connect + handshake deadline.
    pub handshake_timeout: Duration,
    /// First reconnection delay.
    pub backoff_min: Duration,
    /// Largest reconnection delay.
    pub backoff_max: Duration,
    /// Handshakes per second accepted from one unknown address.
    pub unknown_handshakes_per_s: f64,
    /// Burst of handshakes from one unknown address.
    pub unknown_handshake_burst: f64,
    /// Encrypt records (false only for benchmarks; both ends must agree).
    pub encrypt: bool,
    /// How long a pair must be apart before the side with the greater key
    /// dials as well.
    pub fallback_dial_after: Duration,
}

impl NetConfig {
    /// Defaults for a listen address and chain.
    pub fn new(listen: SocketAddr, chain_id: ChainId) -> NetConfig {
        NetConfig {
            listen,
            chain_id,
            allow: Vec::new(),
            peers: Vec::new(),
            frame_payload_max: FRAME_PAYLOAD_MAX_DEFAULT,
            send_queue_frames: 256,
            send_queue_bytes: 64 << 20,
            recv_queue_frames: 1024,
            recv_budget_bytes: 64 << 20,
            pool_bufs: 4096,
            pool_buf_bytes: 1024,
            write_batch_bytes: 256 << 10,
            idle_timeout: Duration::from_secs(15),
            keepalive: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            unknown_handshakes_per_s: 1.0,
            unknown_handshake_burst: 4.0,
            encrypt: true,
            fallback_dial_after: Duration::from_secs(2),
        }
    }
}

/// Why a send failed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SendError {
    /// Not an allow-listed peer.
    #[error("unknown peer {0}")]
    UnknownPeer(PeerId),
    /// Larger than the frame limit.
    #[error("message of {len} bytes exceeds the frame limit of {max}")]
    TooLarge {
        /// Length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The peer's queue for that channel is full (`try_send` only).
    #[error("send queue full")]
    Full,
}

/// A received application message. Its bytes count against the endpoint's
/// receive budget until it is dropped.
pub struct Inbound {
    /// Authenticated sender.
    pub peer: PeerId,
    /// Channel.
    pub channel: Channel,
    buf: PooledBuf,
    budget: Rc<Semaphore>,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("peer", &self.peer)
            .field("channel", &self.channel)
            .field("len", &self.payload().len())
            .finish()
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        self.budget.signal(self.buf.len() as u64);
    }
}

impl Inbound {
    /// The message bytes.
    pub fn payload(&self) -> &[u8] {
        &self.buf[crate::frame::FRAME_HEADER..]
    }
}

struct PeerState {
    id: PeerId,
    addr: Option<SocketAddr>,
    out: PrioQueue<PooledBuf>,
    /// Bytes of the frames in `out` (bounded by `send_queue_bytes`).
    out_bytes: Cell<usize>,
    /// Notified when frames leave `out`.
    drained: Signal,
    session: RefCell<Option<Task<()>>>,
    generation: Cell<u64>,
    connected: Cell<bool>,
    changed: Signal,
}

struct Inner<T: Transport> {
    cfg: NetConfig,
    hs: HandshakeConfig,
    transport: T,
    local_addr: SocketAddr,
    peers: HashMap<PeerId, Rc<PeerState>>,
    inbound: PrioQueue<Inbound>,
    recv_budget: Rc<Semaphore>,
    pool: BufPool,
    metrics: Arc<Metrics>,
    limiter: RefCell<RateLimiter>,
    known_ips: RefCell<HashSet<IpAddr>>,
    pending_handshakes: Cell<usize>,
    /// The same for members' addresses.
    pending_members: Cell<usize>,
    tasks: RefCell<Vec<Task<()>>>,
    body_max: usize,
}

/// A network endpoint on the current glommio executor. Dropping it stops
/// every task and closes every session.
pub struct Endpoint<T: Transport> {
    inner: Rc<Inner<T>>,
}

impl<T: Transport> std::fmt::Debug for Endpoint<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.inner.hs.id)
            .field("addr", &self.inner.local_addr)
            .finish()
    }
}

impl<T: Transport> Endpoint<T> {
    /// Bind, start accepting and dialling. Must run inside a glommio executor.
    pub fn start(
        transport: T,
        cfg: NetConfig,
        identity: SigningKey,
    ) -> Result<Endpoint<T>, NetError> {
        if cfg.frame_payload_max == 0 || cfg.frame_payload_max > FRAME_PAYLOAD_LIMIT {
            return Err(NetError::Runtime(format!(
                "frame_payload_max {} outside 1..={FRAME_PAYLOAD_LIMIT}",
                cfg.frame_payload_max
            )));
        }
        if cfg.recv_budget_bytes < crate::frame::FRAME_HEADER + cfg.frame_payload_max {
            return Err(NetError::Runtime(
                "recv_budget_bytes is smaller than one frame".into(),
            ));
        }
        let allow = AllowList::new(cfg.allow.iter().copied())?;
        let hs = HandshakeConfig::new(cfg.chain_id, identity, allow, !cfg.encrypt)?;
        let listener = transport.listen(cfg.listen)?;
        let local_addr = listener.local_addr();
        let metrics = Arc::new(Metrics::default());
        let addrs: HashMap<PeerId, SocketAddr> = cfg.peers.iter().map(|p| (p.id, p.addr)).collect();
        let peers = hs
            .allow
            .iter()
            .filter(|id| **id != hs.id)
            .map(|id| {
                let st = PeerState {
                    id: *id,
                    addr: addrs.get(id).copied(),
                    out: PrioQueue::new(cfg.send_queue_frames),
                    out_bytes: Cell::new(0),
                    drained: Signal::default(),
                    session: RefCell::new(None),
                    generation: Cell::new(0),
                    connected: Cell::new(false),
                    changed: Signal::default(),
                };
                (*id, Rc::new(st))
            })
            .collect();
        let known_ips = cfg.peers.iter().map(|p| p.addr.ip()).collect();
        let inner = Rc::new(Inner {
            pool: BufPool::new(
                cfg.pool_bufs,
                cfg.pool_buf_bytes,
                crate::frame::FRAME_HEADER + cfg.frame_payload_max,
                metrics.clone(),
            ),
            inbound: PrioQueue::new(cfg.recv_queue_frames),
            recv_budget: Rc::new(Semaphore::new(cfg.recv_budget_bytes as u64)),
            limiter: RefCell::new(RateLimiter::new(
                cfg.unknown_handshakes_per_s,
                cfg.unknown_handshake_burst,
            )),
            body_max: record_body_max(cfg.frame_payload_max, cfg.encrypt),
            cfg,
            hs,
            transport,
            local_addr,
            peers,
            metrics,
            known_ips: RefCell::new(known_ips),
            pending_handshakes: Cell::new(0),
            pending_members: Cell::new(0),
            tasks: RefCell::new(Vec::new()),
        });
        let mut tasks = vec![glommio::spawn_local(accept_loop(inner.clone(), listener))];
        for p in inner.peers.values() {
            if p.addr.is_some() {
                tasks.push(glommio::spawn_local(dial_loop(inner.clone(), p.clone())));
            }
        }
        *inner.tasks.borrow_mut() = tasks;
        Ok(Endpoint { inner })
    }

    /// Our identity.
    pub fn id(&self) -> PeerId {
        self.inner.hs.id
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Counters (shareable with another thread).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.inner.metrics.clone()
    }

    /// Whether a session with `peer` is up.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.inner
            .peers
            .get(peer)
            .is_some_and(|p| p.connected.get())
    }

    /// Peers with a session.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = self
            .inner
            .peers
            .values()
            .filter(|p| p.connected.get())
            .map(|p| p.id)
            .collect();
        v.sort();
        v
    }

    fn frame(
        &self,
        peer: &PeerId,
        ch: Channel,
        msg: &[u8],
    ) -> Result<(Rc<PeerState>, PooledBuf), SendError> {
        let max = self.inner.cfg.frame_payload_max;
        if msg.len() > max {
            return Err(SendError::TooLarge {
                len: msg.len(),
                max,
            });
        }
        let p = self
            .inner
            .peers
            .get(peer)
            .ok_or(SendError::UnknownPeer(*peer))?
            .clone();
        let mut b = self.inner.pool.get();
        b.extend_from_slice(&frame_header(FrameKind::Data, ch));
        b.extend_from_slice(msg);
        Ok((p, b))
    }

    /// Queue `msg` for `peer`, waiting while that peer's queue for `ch` is
    /// full (backpressure). Queued frames wait across reconnections.
    pub async fn send(&self, peer: &PeerId, ch: Channel, msg: &[u8]) -> Result<(), SendError> {
        let (p, b) = self.frame(peer, ch, msg)?;
        let len = b.len();
        // Bulk waits while the peer's queued bytes would pass their bound
        // (an empty queue always takes one frame); consensus frames are
        // bounded by their lane's frame count only, so bulk never starves
        // them.
        if ch == Channel::Bulk {
            loop {
                let seen = p.drained.version();
                let queued = p.out_bytes.get();
                if queued == 0 || queued + len <= self.inner.cfg.send_queue_bytes {
                    break;
                }
                p.drained.changed_since(seen).await;
            }
        }
        p.out.push(ch, b).await;
        // Counted once queued (a cancelled wait leaves nothing counted);
        // nothing runs between the push and this line on this executor.
        p.out_bytes.set(p.out_bytes.get() + len);
        Ok(())
    }

    /// Queue `msg` if there is room (in frames for its channel and in
    /// bytes for the peer).
    pub fn try_send(&self, peer: &PeerId, ch: Channel, msg: &[u8]) -> Result<(), SendError> {
        let (p, b) = self.frame(peer, ch, msg)?;
        let len = b.len();
        let queued = p.out_bytes.get();
        if ch == Channel::Bulk && queued > 0 && queued + len > self.inner.cfg.send_queue_bytes {
            inc(&self.inner.metrics.send_queue_full);
            return Err(SendError::Full);
        }
        match p.out.try_push(ch, b) {
            Ok(()) => {
                p.out_bytes.set(queued + len);
                Ok(())
            }
            Err(_) => {
                inc(&self.inner.metrics.send_queue_full);
                Err(SendError::Full)
            }
        }
    }

    /// Next inbound message, consensus first.
    pub async fn recv(&self) -> Inbound {
        self.inner.inbound.pop_wait().await.1
    }

    /// Next inbound message if one is queued.
    pub fn try_recv(&self) -> Option<Inbound> {
        self.inner.inbound.pop().map(|x| x.1)
    }

    /// Wait until sessions with all `peers` are up, or `timeout` passes.
    pub async fn wait_connected(&self, peers: &[PeerId], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if peers.iter().all(|p| self.is_connected(p)) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(Duration::from_millis(5)).await;
        }
    }
}

impl<T: Transport> Drop for Endpoint<T> {
    fn drop(&mut self) {
        // Cancel our tasks; they hold the only other references to `inner`.
        drop(std::mem::take(&mut *self.inner.tasks.borrow_mut()));
        for p in self.inner.peers.values() {
            drop(p.session.borrow_mut().take());
        }
    }
}

fn count_handshake_error<T: Transport>(inner: &Inner<T>, e: &NetError, from: &str) {
    let m = &inner.metrics;
    match e {
        NetError::Handshake(HandshakeError::NotAllowed(_)) => inc(&m.handshakes_not_allowed),
        NetError::Handshake(HandshakeError::WrongChain) => inc(&m.handshakes_wrong_chain),
        NetError::Timeout => inc(&m.handshakes_timed_out),
        _ => inc(&m.handshakes_failed),
    }
    tracing::info!(from, error = %e, "handshake refused");
}

async fn accept_loop<T: Transport>(inner: Rc<Inner<T>>, listener: T::Listener) {
    loop {
        let (conn, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let known = inner.known_ips.borrow().contains(&addr.ip());
        // Members' addresses and strangers' have separate slots.
        let (slots, max) = if known {
            (&inner.pending_members, MEMBER_HANDSHAKES_MAX)
        } else {
            (&inner.pending_handshakes, PENDING_HANDSHAKES_MAX)
        };
        if slots.get() >= max {
            inc(&inner.metrics.handshakes_overload);
            continue;
        }
        if !known && !inner.limiter.borrow_mut().allow(addr.ip(), Instant::now()) {
            inc(&inner.metrics.handshakes_rate_limited);
            tracing::debug!(%addr, "handshake rate-limited");
            continue;
        }
        slots.set(slots.get() + 1);
        let i = inner.clone();
        glommio::spawn_local(async move {
            let r = with_timeout(i.cfg.handshake_timeout, respond(&i, conn)).await;
            let slots = if known {
                &i.pending_members
            } else {
                &i.pending_handshakes
            };
            slots.set(slots.get() - 1);
            match r.unwrap_or(Err(NetError::Timeout)) {
                Ok((peer, cipher, rd, wr)) => {
                    remember_ip(&i, addr.ip());
                    install(&i, peer, cipher, rd, wr);
                }
                Err(e) => count_handshake_error(&i, &e, &addr.to_string()),
            }
        })
        .detach();
    }
}

type Halves<T> = (
    <<T as Transport>::Conn as Connection>::Reader,
    <<T as Transport>::Conn as Connection>::Writer,
);

async fn respond<T: Transport>(
    inner: &Inner<T>,
    conn: T::Conn,
) -> Result<
    (
        PeerId,
        SessionCipher,
        <T::Conn as Connection>::Reader,
        <T::Conn as Connection>::Writer,
    ),
    NetError,
> {
    let (mut rd, mut wr): Halves<T> = conn.split(HANDSHAKE_MSG_MAX, inner.cfg.write_batch_bytes);
    let msg1 = rd.next_record().await?;
    let (r, msg2) = Responder::accept(&inner.hs, msg1)?;
    wr.reserve(msg2.len()).copy_from_slice(&msg2);
    wr.flush().await?;
    let msg3 = rd.next_record().await?;
    let est = r.finish(&inner.hs, msg3)?;
    rd.set_body_max(inner.body_max);
    Ok((est.peer, est.cipher, rd, wr))
}

async fn dial<T: Transport>(
    inner: &Inner<T>,
    peer: PeerId,
    addr: SocketAddr,
) -> Result<
    (
        SessionCipher,
        <T::Conn as Connection>::Reader,
        <T::Conn as Connection>::Writer,
    ),
    NetError,
> {
    let conn = inner
        .transport
        .connect(addr, inner.cfg.handshake_timeout)
        .await?;
    let (mut rd, mut wr): Halves<T> = conn.split(HANDSHAKE_MSG_MAX, inner.cfg.write_batch_bytes);
    let (i, msg1) = Initiator::start(&inner.hs, Some(peer))?;
    wr.reserve(msg1.len()).copy_from_slice(&msg1);
    wr.flush().await?;
    let msg2 = rd.next_record().await?;
    let (est, msg3) = i.finish(&inner.hs, msg2)?;
    wr.reserve(msg3.len()).copy_from_slice(&msg3);
    wr.flush().await?;
    rd.set_body_max(inner.body_max);
    Ok((est.cipher, rd, wr))
}

/// Exponential backoff with jitter: `min(max, min_delay * 2^attempt)`
/// scaled by a uniform factor in [0.5, 1).
pub fn backoff(attempt: u32, min: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = min.saturating_mul(1u32 << attempt.min(20)).min(max);
    exp.mul_f64(rng.gen_range(0.5..1.0))
}

async fn dial_loop<T: Transport>(inner: Rc<Inner<T>>, peer: Rc<PeerState>) {
    let addr = peer
        .addr
        .expect("dial loops exist only for peers with an address");
    let mut attempt: u32 = 0;
    let mut rng = rand::thread_rng();
    // The smaller key dials at once; the greater one only once the pair has
    // been apart for a while (the smaller side may be unable to dial: no
    // address for us, a one-way firewall), so both never race.
    let primary = inner.hs.id < peer.id;
    loop {
        if peer.connected.get() {
            let seen = peer.changed.version();
            if peer.connected.get() {
                peer.changed.changed_since(seen).await;
            }
            continue;
        }
        if !primary && attempt == 0 {
            let grace = inner.cfg.fallback_dial_after;
            sleep(grace.mul_f64(rng.gen_range(1.0..1.5))).await;
            if peer.connected.get() {
                continue;
            }
        }
        inc(&inner.metrics.dials);
        match with_timeout(inner.cfg.handshake_timeout, dial(&inner, peer.id, addr))
            .await
            .unwrap_or(Err(NetError::Timeout))
        {
            Ok((cipher, rd, wr)) => {
                attempt = 0;
                install(&inner, peer.id, cipher, rd, wr);
                // Wait for this session to end, then pause before redialling
                // so a peer that accepts and drops cannot make us spin.
                while peer.connected.get() {
                    let seen = peer.changed.version();
                    if peer.connected.get() {
                        peer.changed.changed_since(seen).await;
                    }
                }
                sleep(backoff(
                    0,
                    inner.cfg.backoff_min,
                    inner.cfg.backoff_max,
                    &mut rng,
                ))
                .await;
            }
            Err(e) => {
                inc(&inner.metrics.dial_failures);
                if matches!(e, NetError::Handshake(_) | NetError::Timeout) {
                    count_handshake_error(&inner, &e, &addr.to_string());
                } else {
                    tracing::debug!(%addr, error = %e, "dial failed");
                }
                sleep(backoff(
                    attempt,
                    inner.cfg.backoff_min,
                    inner.cfg.backoff_max,
                    &mut rng,
                ))
                .await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

fn remember_ip<T: Transport>(inner: &Inner<T>, ip: IpAddr) {
    let mut k = inner.known_ips.borrow_mut();
    if k.len() < KNOWN_IPS_MAX {
        k.insert(ip);
    }
}

/// Start a session task for `peer`, replacing (cancelling) any older one.
fn install<T: Transport>(
    inner: &Rc<Inner<T>>,
    peer: PeerId,
    cipher: SessionCipher,
    rd: <T::Conn as Connection>::Reader,
    wr: <T::Conn as Connection>::Writer,
) {
    let p = inner
        .peers
        .get(&peer)
        .expect("handshake admits only allow-listed peers")
        .clone();
    inc(&inner.metrics.handshakes_ok);
    inc(&inner.metrics.sessions_opened);
    let gen = p.generation.get() + 1;
    p.generation.set(gen);
    p.connected.set(true);
    p.changed.notify();
    tracing::info!(peer = %peer, gen, "session up");
    let task = glommio::spawn_local(run_session(inner.clone(), p.clone(), gen, cipher, rd, wr));
    // Dropping the previous task cancels it; its guard sees a newer
    // generation and leaves `connected` alone.
    let old = p.session.borrow_mut().replace(task);
    drop(old);
}

struct SessionGuard<T: Transport> {
    inner: Rc<Inner<T>>,
    peer: Rc<PeerState>,
    gen: u64,
}

impl<T: Transport> Drop for SessionGuard<T> {
    fn drop(&mut self) {
        inc(&self.inner.metrics.sessions_closed);
        if self.peer.generation.get() == self.gen {
            self.peer.connected.set(false);
            self.peer.changed.notify();
        }
    }
}

async fn run_session<T: Transport>(
    inner: Rc<Inner<T>>,
    peer: Rc<PeerState>,
    gen: u64,
    cipher: SessionCipher,
    rd: <T::Conn as Connection>::Reader,
    wr: <T::Conn as Connection>::Writer,
) {
    let _guard = SessionGuard {
        inner: inner.clone(),
        peer: peer.clone(),
        gen,
    };
    let cipher = RefCell::new(cipher);
    let last_rx = Cell::new(Instant::now());
    let last_tx = Cell::new(Instant::now());
    let ping_due = Cell::new(false);
    let io = race(
        read_loop(&inner, &peer, &cipher, rd, &last_rx),
        write_loop(&inner, &peer, &cipher, wr, &last_tx, &ping_due),
    );
    let end = race(io, watchdog(&inner, &peer, &last_rx, &last_tx, &ping_due)).await;
    let e = match end {
        Either::Left(Either::Left(e)) | Either::Left(Either::Right(e)) | Either::Right(e) => e,
    };
    match &e {
        NetError::Frame(_) => {
            inc(&inner.metrics.malformed_frames);
            tracing::warn!(peer = %peer.id, error = %e, "malformed frame, closing session");
        }
        NetError::Idle => {
            inc(&inner.metrics.sessions_idle_closed);
            tracing::info!(peer = %peer.id, "idle timeout, closing session");
        }
        _ => tracing::info!(peer = %peer.id, error = %e, "session ended"),
    }
}

async fn read_loop<T: Transport>(
    inner: &Inner<T>,
    peer: &PeerState,
    cipher: &RefCell<SessionCipher>,
    mut rd: <T::Conn as Connection>::Reader,
    last_rx: &Cell<Instant>,
) -> NetError {
    loop {
        let rec = match rd.next_record().await {
            Ok(r) => r,
            Err(e) => return e,
        };
        last_rx.set(Instant::now());
        add(
            &inner.metrics.bytes_received,
            (rec.len() + crate::frame::LEN_PREFIX) as u64,
        );
        let mut buf = inner.pool.get();
        if let Err(e) = cipher.borrow_mut().open(rec, &mut buf) {
            return e.into();
        }
        let (kind, channel) = match parse_frame(&buf, inner.cfg.frame_payload_max) {
            Ok(f) => (f.kind, f.channel),
            Err(e) => return e.into(),
        };
        if kind == FrameKind::Ping {
            continue;
        }
        inc(&inner.metrics.frames_received);
        inner
            .recv_budget
            .acquire(buf.len() as u64)
            .await
            .expect("the receive budget is never closed");
        inner
            .inbound
            .push(
                channel,
                Inbound {
                    peer: peer.id,
                    channel,
                    buf,
                    budget: inner.recv_budget.clone(),
                },
            )
            .await;
    }
}

async fn write_loop<T: Transport>(
    inner: &Inner<T>,
    peer: &PeerState,
    cipher: &RefCell<SessionCipher>,
    mut wr: <T::Conn as Connection>::Writer,
    last_tx: &Cell<Instant>,
    ping_due: &Cell<bool>,
) -> NetError {
    let batch_max = inner.cfg.write_batch_bytes;
    loop {
        let seen = peer.out.ready.version();
        if peer.out.is_empty() && !ping_due.get() {
            peer.out.ready.changed_since(seen).await;
            continue;
        }
        let frames = match fill_batch(peer, cipher, &mut wr, batch_max, ping_due.replace(false)) {
            Ok(n) => n,
            Err(e) => return e,
        };
        let bytes = wr.pending() as u64;
        if let Err(e) = wr.flush().await {
            return e;
        }
        last_tx.set(Instant::now());
        add(&inner.metrics.frames_sent, frames);
        add(&inner.metrics.bytes_sent, bytes);
    }
}

/// Seal queued frames (and a ping if due) into the writer's batch until it
/// holds `batch_max` bytes. Consensus first, every time a frame is taken: a
/// bulk frame never goes ahead of a queued consensus frame.
fn fill_batch<W: RecordWriter>(
    peer: &PeerState,
    cipher: &RefCell<SessionCipher>,
    wr: &mut W,
    batch_max: usize,
    ping: bool,
) -> Result<u64, NetError> {
    let mut c = cipher.borrow_mut();
    let enc = c.encrypted();
    if ping {
        let p = frame_header(FrameKind::Ping, Channel::Consensus);
        let out = wr.reserve(sealed_len(p.len(), enc));
        c.seal(&p, out)
            .map_err(|e| NetError::Runtime(e.to_string()))?;
    }
    let mut frames = 0u64;
    while wr.pending() < batch_max {
        let Some((_ch, buf)) = peer.out.pop() else {
            break;
        };
        peer.out_bytes
            .set(peer.out_bytes.get().saturating_sub(buf.len()));
        peer.drained.notify();
        let out = wr.reserve(sealed_len(buf.len(), enc));
        c.seal(&buf, out)
            .map_err(|e| NetError::Runtime(e.to_string()))?;
        frames += 1;
    }
    Ok(frames)
}

async fn watchdog<T: Transport>(
    inner: &Inner<T>,
    peer: &PeerState,
    last_rx: &Cell<Instant>,
    last_tx: &Cell<Instant>,
    ping_due: &Cell<bool>,
) -> NetError {
    let idle = inner.cfg.idle_timeout;
    let keepalive = inner.cfg.keepalive;
    let tick = keepalive.min(idle / 2).max(Duration::from_millis(1));
    loop {
        sleep(tick).await;
        if last_rx.get().elapsed() > idle {
            return NetError::Idle;
        }
        if last_tx.get().elapsed() >= keepalive && !ping_due.get() {
            ping_due.set(true);
            peer.out.ready.notify();
        }
    }
}

/// Token bucket per source address, for handshakes from addresses that are
/// not configured peers and never authenticated. The table is bounded: when
/// full, idle (refilled) entries are evicted; if none is, the new address is
/// refused.
#[derive(Debug)]
pub struct RateLimiter {
    rate_per_s: f64,
    burst: f64,
    table: HashMap<IpAddr, (f64, Instant)>,
}

impl RateLimiter {
    /// `rate_per_s` tokens per second, up to `burst`.
    pub fn new(rate_per_s: f64, burst: f64) -> Self {
        RateLimiter {
            rate_per_s,
            burst: burst.max(1.0),
            table: HashMap::new(),
        }
    }

    /// Whether one more handshake from `ip` at `now` is allowed.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.table.contains_key(&ip) && self.table.len() >= RATE_TABLE_MAX {
            let (rate, burst) = (self.rate_per_s, self.burst);
            self.table.retain(|_, (tokens, last)| {
                *tokens + now.duration_since(*last).as_secs_f64() * rate < burst
            });
            if self.table.len() >= RATE_TABLE_MAX {
                return false;
            }
        }
        let (tokens, last) = self.table.entry(ip).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.rate_per_s).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn rate_limiter_bursts_then_refills() {
        let mut r = RateLimiter::new(1.0, 2.0);
        let t0 = Instant::now();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(r.allow(ip, t0));
        assert!(r.allow(ip, t0));
        assert!(!r.allow(ip, t0), "burst exhausted");
        assert!(r.allow(other, t0), "per-address buckets");
        assert!(r.allow(ip, t0 + Duration::from_millis(1100)), "refilled");
    }

    #[test]
    fn rate_limiter_table_is_bounded() {
        let mut r = RateLimiter::new(0.0, 1.0);
        let t0 = Instant::now();
        for i in 0..RATE_TABLE_MAX as u32 {
            assert!(r.allow(IpAddr::from(i.to_be_bytes()), t0));
        }
        assert!(
            !r.allow("255.255.255.255".parse().unwrap(), t0),
            "full of busy entries"
        );
        assert_eq!(r.table.len(), RATE_TABLE_MAX);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        for attempt in 0..30 {
            let d = backoff(attempt, min, max, &mut rng);
            let cap = min.saturating_mul(1 << attempt.min(20)).min(max);
            assert!(
                d >= cap / 2 && d < cap,
                "attempt {attempt}: {d:?} vs cap {cap:?}"
            );
        }
    }
}
