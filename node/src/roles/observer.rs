//! The observer's follower (`plume start --role observer`): a non-voting
//! node that trusts no single validator. It holds a network key listed in
//! genesis `observers` and no consensus key, so it cannot vote, propose or
//! sign a batch; it runs no consensus engine, no batcher and no mempool.
//!
//! It follows the chain through the validators' block stores: it asks one
//! validator at a time (in turn) for the finalized blocks above what it
//! executed (`NetMsg::CatchUpRequest`), hands each answer to the execution
//! role, which checks it with `plume_protocol::catchup::verify_segment`
//! against the genesis committee (hash links, commit proofs with both
//! aggregate signatures, batch records, transaction signatures), executes
//! the blocks whose certified root the segment proves and commits a group
//! only if every block arrived at exactly the root the validators
//! certified. So the store never holds a state the validators did not
//! certify, and the API serves nothing else. The cost: the certified root
//! of block `h` is carried by block `h + STATE_LAG`, so the observer runs
//! `STATE_LAG` (8) blocks behind the validators' finality.
//!
//! A segment whose execution misses the certified root is refused (a
//! server can list other transactions than the validators executed) and
//! its server rests; when f+1 different validators' segments miss the same
//! certified root at the same height, at least one honest validator served
//! the truth and our own execution differs: the divergence alarm
//! (`plume_state_diverged`, `plume_status.state = "diverged"`, an error in
//! the log) is raised.
//!
//! The validators serve observers from the lowest-priority queue of their
//! catch-up server, under a byte budget per observer, and drop anything
//! else an observer sends (`plume_observer_refused`).

use super::channels::{CoreIn, ExecIn, Refusal};
use super::shared::Shared;
use crate::setup::ObserverSetup;
use crate::wire::{self, NetMsg};
use anyhow::{anyhow, Result};
use plume_netstack::{AnyTransport, Channel, Endpoint, NetConfig, PeerAddr, PeerId};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At the top (an empty answer, or nothing certifiable yet): ask again
/// after this long.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// An unanswered request is given up after this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A validator whose segment was refused is not asked again for this long.
pub const PENALTY: Duration = Duration::from_secs(10);
/// How often the follower looks at its timers.
const TICK: Duration = Duration::from_millis(20);

/// The follower's decisions, apart from the network and the clock's source
/// (tested without either).
#[derive(Debug)]
pub struct Follow {
    /// Validators (committee order).
    n: usize,
    /// Highest height executed and committed here.
    pub executed: u64,
    /// The request out: (validator, sent at).
    in_flight: Option<(u32, Instant)>,
    /// A segment is with execution.
    executing: bool,
    /// Do not ask before this (at the top).
    idle_until: Option<Instant>,
    /// Next validator to try first.
    next: usize,
    /// Validators not to ask before these instants.
    penalty: Vec<Option<Instant>>,
    /// Certified-root misses: (height, certified root) -> validators whose
    /// segments our execution could not reproduce there.
    misses: BTreeMap<(u64, plume_crypto::Digest), BTreeSet<u32>>,
    /// Raised: (height, our root, the certified root).
    pub diverged: Option<(u64, plume_crypto::Digest, plume_crypto::Digest)>,
}

/// What the follower wants done.
#[derive(Debug, PartialEq, Eq)]
pub enum Ask {
    /// Send `CatchUpRequest { from }` to validator `to`.
    Request {
        /// Committee index.
        to: u32,
        /// First height wanted.
        from: u64,
    },
    /// Hand this validator's segment to execution.
    Execute {
        /// Committee index.
        from: u32,
    },
}

impl Follow {
    /// A follower of `n` validators that executed up to `executed`.
    pub fn new(n: usize, executed: u64) -> Follow {
        Follow {
            n,
            executed,
            in_flight: None,
            executing: false,
            idle_until: None,
            next: 0,
            penalty: vec![None; n],
            misses: BTreeMap::new(),
            diverged: None,
        }
    }

    /// f+1: validators that cannot all be faulty.
    fn honest_min(&self) -> usize {
        (self.n.saturating_sub(1)) / 3 + 1
    }

    /// The next request, if one is due: one at a time, validators in turn,
    /// skipping the resting and the unconnected.
    pub fn poll(&mut self, now: Instant, connected: impl Fn(u32) -> bool) -> Option<Ask> {
        if let Some((_, at)) = self.in_flight {
            if now.duration_since(at) < REQUEST_TIMEOUT {
                return None;
            }
            self.in_flight = None;
        }
        if self.executing || self.idle_until.is_some_and(|t| now < t) {
            return None;
        }
        for k in 0..self.n {
            let p = (self.next + k) % self.n;
            if !connected(p as u32) || self.penalty[p].is_some_and(|until| now < until) {
                continue;
            }
            self.next = p + 1;
            self.in_flight = Some((p as u32, now));
            return Some(Ask::Request {
                to: p as u32,
                from: self.executed + 1,
            });
        }
        None
    }

    /// A segment arrived from validator `from` (`empty`: it has nothing
    /// above what we asked for). Only the answer we wait for is used.
    pub fn on_segment(&mut self, from: u32, empty: bool, now: Instant) -> Option<Ask> {
        match self.in_flight {
            Some((p, _)) if p == from => {}
            _ => return None,
        }
        self.in_flight = None;
        if empty {
            self.idle_until = Some(now + POLL_INTERVAL);
            return None;
        }
        self.executing = true;
        Some(Ask::Execute { from })
    }

    /// Execution could not take the segment (its queue was full).
    pub fn execute_failed(&mut self) {
        self.executing = false;
    }

    /// Execution committed blocks up to `height`.
    pub fn on_executed(&mut self, height: u64) {
        self.executed = self.executed.max(height);
        self.misses.retain(|(h, _), _| *h > height);
    }

    /// Execution's verdict on validator `from`'s segment. `Ok(height)`:
    /// committed up to `height` (ask again at once).
    pub fn on_outcome(&mut self, from: u32, outcome: Result<u64, &Refusal>, now: Instant) {
        self.executing = false;
        match outcome {
            Ok(height) => {
                self.on_executed(height);
                self.idle_until = None;
            }
            Err(r) if r.nothing_yet => self.idle_until = Some(now + POLL_INTERVAL),
            Err(r) => {
                if let Some(p) = self.penalty.get_mut(from as usize) {
                    *p = Some(now + PENALTY);
                }
                if let Some((h, ours, certified)) = r.mismatch {
                    let who = self.misses.entry((h, certified)).or_default();
                    who.insert(from);
                    if who.len() >= self.honest_min() && self.diverged.is_none() {
                        self.diverged = Some((h, ours, certified));
                    }
                }
            }
        }
    }
}

/// The follower's state on its executor.
struct Follower {
    follow: Follow,
    ep: Rc<Endpoint<AnyTransport>>,
    validators: Vec<PeerId>,
    exec_tx: flume::Sender<ExecIn>,
    shared: Arc<Shared>,
}

impl Follower {
    fn index_of(&self, peer: &PeerId) -> Option<u32> {
        self.validators
            .iter()
            .position(|p| p == peer)
            .map(|i| i as u32)
    }

    fn carry_out(
        &mut self,
        ask: Option<Ask>,
        segment: Option<Vec<plume_protocol::catchup::SegmentBlock>>,
    ) {
        match ask {
            Some(Ask::Request { to, from }) => {
                tracing::debug!(validator = to, from, "asking for certified blocks");
                let bytes = wire::encode(&NetMsg::CatchUpRequest { from });
                if self
                    .ep
                    .try_send(&self.validators[to as usize], Channel::Bulk, &bytes)
                    .is_err()
                {
                    // Timed out in REQUEST_TIMEOUT; the next one goes elsewhere.
                    tracing::debug!(validator = to, "request not queued");
                }
            }
            Some(Ask::Execute { from }) => {
                let segment = segment.unwrap_or_default();
                if self
                    .exec_tx
                    .try_send(ExecIn::CatchUp { from, segment })
                    .is_err()
                {
                    self.follow.execute_failed();
                }
            }
            None => {}
        }
    }

    fn on_inbound(&mut self, peer: &PeerId, bytes: &[u8]) {
        let Some(from) = self.index_of(peer) else {
            return;
        };
        match wire::decode(bytes) {
            Ok(NetMsg::CatchUp(segment)) => {
                let ask = self
                    .follow
                    .on_segment(from, segment.is_empty(), Instant::now());
                self.carry_out(ask, Some(segment));
            }
            Ok(_) => {}
            Err(e) => {
                self.shared.metrics.malformed_msgs.inc();
                tracing::debug!(%peer, "dropping a malformed message: {e}");
            }
        }
    }

    fn on_done(&mut self, msg: CoreIn) {
        match msg {
            CoreIn::CaughtUp { from, outcome } => {
                let now = Instant::now();
                match &outcome {
                    Ok((blocks, payloads)) => {
                        let height = blocks.last().map_or(self.follow.executed, |b| b.height);
                        self.shared
                            .metrics
                            .observed_blocks
                            .inc_by(payloads.len() as u64);
                        tracing::debug!(from, height, "followed");
                        self.follow.on_outcome(from, Ok(height), now);
                    }
                    Err(r) => {
                        if !r.nothing_yet {
                            self.shared.metrics.catchup_refused.inc();
                            tracing::warn!(from, "segment refused: {r}");
                        }
                        let was = self.follow.diverged;
                        self.follow.on_outcome(from, Err(r), now);
                        if was.is_none() {
                            if let Some((height, ours, certified)) = self.follow.diverged {
                                tracing::error!(
                                    height,
                                    ours = %ours,
                                    certified = %certified,
                                    "DIVERGED: f+1 validators' blocks lead to a state root after block {height} other than ours; this observer's execution differs from the validators' (it keeps serving the last certified state)"
                                );
                                let m = &self.shared.metrics;
                                m.state_diverged.set(1);
                                m.state_diverged_height.set(height);
                                *self
                                    .shared
                                    .diverged
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner()) =
                                    Some((height, ours, certified));
                            }
                        }
                    }
                }
                let ask = self
                    .follow
                    .poll(now, |p| self.ep.is_connected(&self.validators[p as usize]));
                self.carry_out(ask, None);
            }
            CoreIn::Executed { height, .. } => {
                self.follow.on_executed(height);
                self.shared.metrics.consensus_height.set(height);
            }
            _ => {}
        }
    }

    fn tick(&mut self) {
        let ask = self.follow.poll(Instant::now(), |p| {
            self.ep.is_connected(&self.validators[p as usize])
        });
        self.carry_out(ask, None);
        let m = &self.shared.metrics;
        let connected = self.ep.connected_peers();
        m.peers.set(connected.len() as u64);
        if let Ok(mut p) = self.shared.peers.try_lock() {
            *p = connected.iter().map(|p| p.to_string()).collect();
        }
    }
}

/// Run the follower until the stop flag is set: dial every validator,
/// ask for certified blocks, hand them to execution.
pub async fn run(
    setup: ObserverSetup,
    height: u64,
    exec_tx: flume::Sender<ExecIn>,
    done_rx: flume::Receiver<CoreIn>,
    shared: Arc<Shared>,
    core: usize,
) -> Result<()> {
    let g = &setup.genesis;
    let listen: std::net::SocketAddr = setup.config.node.listen_addr.parse()?;
    let transport = crate::transport::open(&setup.config.network, listen, core)?;
    let mut net = NetConfig::new(listen, plume_netstack::ChainId::from_name(&g.chain_id));
    let mut validators = Vec::new();
    for v in &g.validators {
        let id = PeerId(plume_crypto::ed25519::PublicKey::from_hex(&v.network_key)?.to_bytes());
        validators.push(id);
        net.allow.push(id);
        net.peers.push(PeerAddr {
            id,
            addr: v.address.parse()?,
        });
    }
    net.frame_payload_max = wire::FRAME_BYTES_MAX;
    // Validators never dial an observer: dial every one of them at once.
    net.fallback_dial_after = Duration::from_millis(1);
    let ep = Rc::new(
        Endpoint::start(
            transport,
            net,
            plume_crypto::ed25519::SigningKey::from_bytes(&setup.network.to_bytes()),
        )
        .map_err(|e| anyhow!("network: {e}"))?,
    );
    let _ = shared.metrics.net.set(ep.metrics());
    let stop = shared.stop;
    let follower = Rc::new(RefCell::new(Follower {
        follow: Follow::new(validators.len(), height),
        ep: ep.clone(),
        validators,
        exec_tx,
        shared,
    }));
    let f1 = follower.clone();
    let ep1 = ep.clone();
    let net_task = glommio::spawn_local(async move {
        loop {
            let inb = ep1.recv().await;
            f1.borrow_mut().on_inbound(&inb.peer, inb.payload());
        }
    })
    .detach();
    let f2 = follower.clone();
    let done_task = glommio::spawn_local(async move {
        while let Ok(msg) = done_rx.recv_async().await {
            f2.borrow_mut().on_done(msg);
        }
    })
    .detach();
    while !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(TICK).await;
        follower.borrow_mut().tick();
    }
    drop(net_task);
    drop(done_task);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use plume_crypto::Digest;

    fn miss(h: u64, ours: u8, certified: u8) -> Refusal {
        Refusal {
            why: "miss".into(),
            mismatch: Some((h, Digest([ours; 32]), Digest([certified; 32]))),
            nothing_yet: false,
        }
    }

    #[test]
    fn asks_one_validator_at_a_time_in_turn_from_the_next_height() {
        let t0 = Instant::now();
        let mut f = Follow::new(4, 10);
        assert_eq!(f.poll(t0, |_| true), Some(Ask::Request { to: 0, from: 11 }));
        assert_eq!(f.poll(t0, |_| true), None, "one request at a time");
        assert_eq!(f.on_segment(2, false, t0), None, "not the one asked");
        assert_eq!(f.on_segment(0, false, t0), Some(Ask::Execute { from: 0 }));
        assert_eq!(f.poll(t0, |_| true), None, "execution has it");
        f.on_outcome(0, Ok(40), t0);
        assert_eq!(
            f.poll(t0, |p| p != 1),
            Some(Ask::Request { to: 2, from: 41 }),
            "at once after a useful segment, the next connected validator"
        );
    }

    #[test]
    fn waits_at_the_top_and_after_a_timeout_asks_another() {
        let t0 = Instant::now();
        let mut f = Follow::new(4, 0);
        assert!(f.poll(t0, |_| true).is_some());
        assert_eq!(f.on_segment(0, true, t0), None);
        assert_eq!(f.poll(t0, |_| true), None, "empty: wait");
        let t1 = t0 + POLL_INTERVAL;
        assert_eq!(f.poll(t1, |_| true), Some(Ask::Request { to: 1, from: 1 }));
        assert_eq!(f.poll(t1 + REQUEST_TIMEOUT / 2, |_| true), None);
        assert_eq!(
            f.poll(t1 + REQUEST_TIMEOUT, |_| true),
            Some(Ask::Request { to: 2, from: 1 }),
            "an unanswered request is given up"
        );
    }

    #[test]
    fn a_refused_server_rests_and_f_plus_1_misses_of_one_root_raise_the_alarm() {
        let t0 = Instant::now();
        let mut f = Follow::new(4, 5);
        // One server's segment misses: it may have lied. Not an alarm.
        f.on_outcome(1, Err(&miss(9, 1, 2)), t0);
        assert!(f.diverged.is_none());
        // The same server again does not count twice.
        f.on_outcome(1, Err(&miss(9, 1, 2)), t0);
        assert!(f.diverged.is_none());
        // A miss of another root at that height is another question.
        f.on_outcome(2, Err(&miss(9, 1, 3)), t0);
        assert!(f.diverged.is_none());
        // It rests; the others are asked.
        for _ in 0..3 {
            let Some(Ask::Request { to, .. }) = f.poll(t0, |_| true) else {
                panic!("a request")
            };
            assert!(to != 1 && to != 2, "resting server {to} asked");
            f.on_segment(to, true, t0);
            f.idle_until = None;
        }
        // A second validator (f + 1 = 2 of 4) misses the same root: ours is wrong.
        f.on_outcome(3, Err(&miss(9, 1, 2)), t0);
        assert_eq!(f.diverged, Some((9, Digest([1; 32]), Digest([2; 32]))));
    }

    #[test]
    fn nothing_to_execute_yet_is_no_fault() {
        let t0 = Instant::now();
        let mut f = Follow::new(4, 0);
        let r = Refusal {
            why: "nothing yet".into(),
            mismatch: None,
            nothing_yet: true,
        };
        f.poll(t0, |_| true);
        f.on_segment(0, false, t0);
        f.on_outcome(0, Err(&r), t0);
        assert!(f.penalty.iter().all(Option::is_none));
        assert_eq!(f.poll(t0, |_| true), None, "waits a poll interval");
        assert_eq!(
            f.poll(t0 + POLL_INTERVAL, |_| true),
            Some(Ask::Request { to: 1, from: 1 })
        );
    }
}
