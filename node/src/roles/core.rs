//! The core role: one glommio executor pinned to the consensus core. It
//! owns the peer network (`plume_netstack::Endpoint`), the consensus
//! engine and the batcher (`plume_mempool::Batcher`: pool, batches,
//! certification and dissemination policy), and drives them:
//!
//! - engine effects are applied in order; `PersistSafety` is durable
//!   before any later `Send`/`Broadcast` of the same list; an outgoing
//!   proposal carries the certificate of every batch it names;
//! - an incoming proposal reaches the engine only when every batch it
//!   names has a valid certificate (known, or attached and checked): the
//!   vote rule of certified batches. Others are refused and counted;
//! - the batcher's actions become network sends, signed votes, batch-log
//!   appends, signature-role work, engine inputs and execution jobs;
//! - view timers are kept here (the engine asks, the tick fires them).
//!
//! Policies live in the state machines; this file only moves bytes and
//! time between them and the world, and signs batch votes with the
//! network key. Queue policy: see `channels.rs`; network sends are
//! `try_send` (a full peer queue drops the frame: consensus retries by
//! timeouts, batches by re-sending and fetching).

use super::channels::{CoreIn, ExecIn, LogIn, ServeIn, SigIn};
use super::shared::Shared;
use crate::http::{codes, ApiError};
use crate::safety::SafetyFile;
use crate::setup::NodeSetup;
use crate::wire::{self, NetMsg};
use anyhow::{anyhow, bail, Result};
use plume_consensus::{BlsScheme, Effect, Engine, Input, Message, Recovered, Timer};
use plume_mempool::{Action, Batcher, BatcherConfig, LogItem, Mempool, MempoolError};
use plume_netstack::{AnyTransport, Channel, Endpoint, NetConfig, PeerAddr, PeerId};
use plume_protocol::batch::{BatchCertificate, BatchCommittee, BatchVote};
use plume_protocol::consensus::STATE_LAG;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The core executor's state.
struct Core {
    engine: Engine<BlsScheme>,
    safety: SafetyFile,
    ep: Rc<Endpoint<AnyTransport>>,
    peers: Vec<PeerId>,
    batcher: Batcher<BlsScheme>,
    timers: Vec<(Timer, Instant)>,
    exec_tx: flume::Sender<ExecIn>,
    /// Finalized blocks the exec queue could not take yet (never blocks).
    exec_feed: super::feed::ExecFeed<ExecIn>,
    /// Batch log items its queue could not take yet (never blocks).
    log_backlog: super::feed::Backlog<LogIn>,
    /// When gapped mempool transactions were last expired.
    last_expiry: Instant,
    sig_tx: flume::Sender<SigIn>,
    log_tx: flume::Sender<LogIn>,
    shared: Arc<Shared>,
    /// Signs batch votes.
    net_key: plume_crypto::ed25519::SigningKey,
    /// Consensus chain id (batch votes bind it).
    chain: u64,
    /// Zero of the batcher's clock.
    epoch: Instant,
    /// Most transactions a block may carry (the vote rule checks it).
    block_txs_max: u32,
    /// Work budget of each validator (committee order).
    budgets: Vec<crate::budget::PeerBudget>,
    /// Catch-up requests to the server thread.
    serve_tx: flume::Sender<ServeIn>,
    /// Block-sync requests served from the store, to the same thread.
    sync_tx: flume::Sender<ServeIn>,
    /// Store-backed sync requests each peer may make per second.
    store_sync: Vec<crate::budget::Bucket>,
    /// When to catch up from peers' stores, and from whom.
    catchup: CatchUp,
    /// Genesis observers' network ids (index `peers.len() + k`).
    observers: Vec<PeerId>,
    /// Each observer's serving budget, in bytes.
    observer_budgets: Vec<crate::budget::Bucket>,
    /// Observers' catch-up requests, to the server's lowest-priority queue.
    observer_tx: flume::Sender<ServeIn>,
}

/// Catch up from peers' block stores when this many blocks behind what
/// f+1 validators claim (closer, the engine's own sync fetches blocks).
pub const CATCHUP_LAG: u64 = 32;
/// An unanswered catch-up request is given up after this long.
pub const CATCHUP_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer whose segment was refused is not asked again for this long.
pub const CATCHUP_PENALTY: Duration = Duration::from_secs(10);
/// Execution that made no progress for this long (with nothing queued)
/// while the others are ahead is stuck: catch up.
pub const CATCHUP_STALL: Duration = Duration::from_millis(500);
/// Finalized blocks that execution could not run for this long (their
/// batches could not be fetched) are taken from the stores too, even when
/// fewer than [`CATCHUP_LAG`] blocks behind.
pub const CATCHUP_WAITING: Duration = Duration::from_secs(2);
/// Consensus sync requests per second one peer may have served from the
/// block store (each at most `SYNC_BLOCKS_MAX` blocks).
pub const STORE_SYNC_PER_S: f64 = 20.0;
/// Serving-budget bytes a catch-up request costs up front (a peer cannot
/// make us read the store faster than its budget pays for).
pub const CATCHUP_REQUEST_COST: f64 = 256.0 * 1024.0;

/// The client side of catch-up (see `plume_protocol::catchup`).
struct CatchUp {
    /// Highest height each validator's messages mentioned (a claim, not
    /// trusted: the (f+1)-th highest is the target).
    claims: Vec<u64>,
    /// Highest height executed and committed here.
    executed: u64,
    /// When `executed` last moved.
    progress_at: Instant,
    /// The request out: (peer, sent at).
    in_flight: Option<(u32, Instant)>,
    /// The last segment was useful: ask for the next one at once.
    streaming: bool,
    /// Next peer to try first.
    next: usize,
    /// Peers not to ask before these instants.
    penalty: Vec<Option<Instant>>,
}

impl CatchUp {
    fn new(n: usize, executed: u64) -> CatchUp {
        CatchUp {
            claims: vec![0; n],
            executed,
            progress_at: Instant::now(),
            in_flight: None,
            streaming: false,
            next: 0,
            penalty: vec![None; n],
        }
    }

    /// A catch-up from the stores is under way.
    fn active(&self) -> bool {
        self.streaming || self.in_flight.is_some()
    }

    fn claim(&mut self, from: u32, height: u64) {
        if let Some(c) = self.claims.get_mut(from as usize) {
            *c = (*c).max(height);
        }
    }

    /// The height at least one honest validator reached (the (f+1)-th
    /// highest claim).
    fn target(&self) -> u64 {
        let mut c = self.claims.clone();
        c.sort_unstable_by(|a, b| b.cmp(a));
        let f = (c.len().saturating_sub(1)) / 3;
        c.get(f).copied().unwrap_or(0)
    }
}

/// What the core starts from besides its queues.
pub struct CoreStart {
    /// Consensus state from disk.
    pub recovered: Option<Recovered<BlsScheme>>,
    /// The safety-state file.
    pub safety: SafetyFile,
    /// What the batch log held.
    pub log_items: Vec<LogItem>,
    /// The committee as batch certificates see it.
    pub committee: BatchCommittee,
    /// Height of the last committed block.
    pub height: u64,
    /// Payload of the recently committed blocks, by height.
    pub recent_payloads: Vec<(u64, Vec<plume_crypto::Digest>)>,
    /// (height, block, state root after it) of the last committed blocks.
    pub recent_roots: Vec<(u64, plume_crypto::Digest, plume_crypto::Digest)>,
}

/// Run the core until the stop flag is set. Opens the transport on this
/// (pinned) thread.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    setup: NodeSetup,
    start: CoreStart,
    core_rx: flume::Receiver<CoreIn>,
    done_rx: flume::Receiver<CoreIn>,
    sig_tx: flume::Sender<SigIn>,
    exec_tx: flume::Sender<ExecIn>,
    log_tx: flume::Sender<LogIn>,
    serve_tx: flume::Sender<ServeIn>,
    sync_tx: flume::Sender<ServeIn>,
    observer_tx: flume::Sender<ServeIn>,
    shared: Arc<Shared>,
    core_core: usize,
) -> Result<()> {
    let (ep, peers, observers) = start_network(&setup, &shared, core_core)?;
    let engine = Engine::new(
        engine_config(&setup),
        plume_crypto::bls::SecretKey::from_bytes(&setup.keys.consensus.to_bytes())?,
        start.recovered,
    );
    let b = &setup.config.batching;
    let mut bcfg = BatcherConfig::new(
        setup.me,
        start.committee,
        b.batch_max_txs as usize,
        b.batch_max_bytes as usize,
    );
    bcfg.block_txs_max = u64::from(setup.params.block_txs_max);
    let mut batcher = Batcher::new(
        bcfg,
        Mempool::with_limits(
            setup.config.mempool.txs_max as usize,
            setup.config.mempool.mib_max as usize * 1024 * 1024,
        ),
    );
    batcher.resume(start.height, start.recent_payloads);
    let ep = Rc::new(ep);
    let stop = shared.stop;
    let core = Rc::new(RefCell::new(Core {
        engine,
        safety: start.safety,
        ep: ep.clone(),
        peers,
        batcher,
        timers: Vec::new(),
        exec_tx,
        exec_feed: super::feed::ExecFeed::new(super::feed::EXEC_BACKLOG_MAX),
        log_backlog: super::feed::Backlog::new(super::feed::LOG_BACKLOG_MAX),
        last_expiry: Instant::now(),
        sig_tx,
        log_tx,
        shared,
        net_key: plume_crypto::ed25519::SigningKey::from_bytes(&setup.keys.network.to_bytes()),
        chain: setup.chain_u64,
        epoch: Instant::now(),
        block_txs_max: setup.params.block_txs_max,
        budgets: vec![crate::budget::PeerBudget::new(Instant::now()); setup.committee.len()],
        serve_tx,
        sync_tx,
        store_sync: vec![
            crate::budget::Bucket::new(
                STORE_SYNC_PER_S,
                2.0 * STORE_SYNC_PER_S,
                Instant::now()
            );
            setup.committee.len()
        ],
        catchup: CatchUp::new(setup.committee.len(), start.height),
        observer_budgets: vec![
            crate::budget::Bucket::new(
                crate::budget::OBSERVER_SERVE_BYTES_PER_S,
                crate::budget::OBSERVER_SERVE_BYTES_BURST,
                Instant::now()
            );
            observers.len()
        ],
        observers,
        observer_tx,
    }));
    {
        let mut c = core.borrow_mut();
        let mut actions = Vec::new();
        let now = c.now_us();
        c.batcher.recover(start.log_items, now, &mut actions);
        c.carry_out(actions)?;
        for (height, block, state_root) in start.recent_roots {
            c.step(Input::Executed {
                height,
                block,
                state_root,
            })?;
        }
        c.step(Input::Start)?;
    }

    // Network receive task.
    let c1 = core.clone();
    let net_task = glommio::spawn_local(async move {
        loop {
            let inb = ep.recv().await;
            let t0 = Instant::now();
            let r = c1.borrow_mut().on_inbound(&inb.peer, inb.payload());
            if let Err(e) = r {
                tracing::error!("core: {e:#}");
                stop.store(true, Ordering::SeqCst);
                return;
            }
            c1.borrow().busy(t0);
        }
    })
    .detach();
    // Channel tasks: verified transactions and batches (bounded, the
    // senders wait: back-pressure), and what execution and the batch log
    // report (a queue of its own that never makes them wait on the core,
    // bounded by the work the core gave them).
    let chan_task = channel_task(core.clone(), core_rx, stop, true);
    let done_task = channel_task(core.clone(), done_rx, stop, false);
    // Tick: timers, batches, housekeeping.
    let interval = Duration::from_millis(setup.config.batching.batch_delay_ms as u64);
    while !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(interval).await;
        let t0 = Instant::now();
        core.borrow_mut().tick()?;
        core.borrow().busy(t0);
    }
    drop(net_task);
    drop(chan_task);
    drop(done_task);
    Ok(())
}

/// Feed one inbound channel to the core until it closes or fails.
fn channel_task(
    core: Rc<RefCell<Core>>,
    rx: flume::Receiver<CoreIn>,
    stop: &'static std::sync::atomic::AtomicBool,
    gauge: bool,
) -> glommio::task::JoinHandle<()> {
    glommio::spawn_local(async move {
        while let Ok(msg) = rx.recv_async().await {
            let t0 = Instant::now();
            if gauge {
                core.borrow()
                    .shared
                    .metrics
                    .mem
                    .core_queue
                    .set(rx.len() as u64);
            }
            let r = core.borrow_mut().on_core_in(msg);
            if let Err(e) = r {
                tracing::error!("core: {e:#}");
                stop.store(true, Ordering::SeqCst);
                return;
            }
            core.borrow().busy(t0);
        }
    })
    .detach()
}

/// Open the transport and start the endpoint with every genesis
/// validator and observer allow-listed (observers dial us; we never dial
/// them); returns it, the validators' peer ids (in committee order) and
/// the observers' (in genesis order).
fn start_network(
    setup: &NodeSetup,
    shared: &Shared,
    core_core: usize,
) -> Result<(Endpoint<AnyTransport>, Vec<PeerId>, Vec<PeerId>)> {
    let g = &setup.genesis;
    let listen: std::net::SocketAddr = setup.config.node.listen_addr.parse()?;
    let transport = crate::transport::open(&setup.config.network, listen, core_core)?;
    if let AnyTransport::Dgram(t) = &transport {
        let _ = shared.metrics.dgram.set(t.metrics());
    }
    let mut net = NetConfig::new(listen, plume_netstack::ChainId::from_name(&g.chain_id));
    let mut peers = Vec::new();
    for v in &g.validators {
        let id = PeerId(plume_crypto::ed25519::PublicKey::from_hex(&v.network_key)?.to_bytes());
        peers.push(id);
        net.allow.push(id);
        net.peers.push(PeerAddr {
            id,
            addr: v.address.parse()?,
        });
    }
    let mut observers = Vec::new();
    for o in &g.observers {
        let id = PeerId(plume_crypto::ed25519::PublicKey::from_hex(&o.network_key)?.to_bytes());
        observers.push(id);
        net.allow.push(id);
    }
    net.frame_payload_max = wire::FRAME_BYTES_MAX;
    let ep = Endpoint::start(
        transport,
        net,
        plume_crypto::ed25519::SigningKey::from_bytes(&setup.keys.network.to_bytes()),
    )
    .map_err(|e| anyhow!("network: {e}"))?;
    let _ = shared.metrics.net.set(ep.metrics());
    Ok((ep, peers, observers))
}

fn engine_config(setup: &NodeSetup) -> plume_consensus::Config<BlsScheme> {
    let view_timeout_us = setup.genesis.params.view_timeout_ms.saturating_mul(1000);
    plume_consensus::Config {
        me: setup.me,
        epoch: 0,
        committee: setup.committee.clone(),
        chain_id: setup.chain_u64,
        base_timeout_us: view_timeout_us,
        max_timeout_us: view_timeout_us.saturating_mul(16),
        jitter_seed: u64::from_le_bytes(
            setup.keys.network.public_key().to_bytes()[..8]
                .try_into()
                .expect("8"),
        ),
        commit_rule: plume_consensus::CommitRule::TwoChain,
        leader_reputation: true,
        // Validator-set changes are not wired to governance yet: one epoch.
        epoch_length: 0,
        payload_weight_max: u64::from(setup.params.block_txs_max),
        idle_interval_us: setup
            .genesis
            .params
            .idle_block_interval_ms
            .saturating_mul(1000),
        state_roots: true,
        mutation: plume_consensus::Mutation::None,
    }
}

impl Core {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn busy(&self, since: Instant) {
        self.shared
            .metrics
            .add_busy("core", since.elapsed().as_micros() as u64);
    }

    fn me(&self) -> u32 {
        self.engine.config().me
    }

    fn index_of(&self, peer: &PeerId) -> Option<u32> {
        self.peers.iter().position(|p| p == peer).map(|i| i as u32)
    }

    /// Send `bytes` on `ch` to every other validator.
    fn to_all(&self, ch: Channel, bytes: &[u8]) {
        for (i, p) in self.peers.iter().enumerate() {
            if i as u32 != self.me() {
                let _ = self.ep.try_send(p, ch, bytes);
            }
        }
    }

    fn step(&mut self, input: Input<BlsScheme>) -> Result<()> {
        // Block times come from this clock (bounded by the parent's time
        // and, for votes, by ours: protocol::consensus::MAX_CLOCK_AHEAD_MS).
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.engine.set_clock(now_ms);
        let effects = self.engine.step(input);
        self.apply(effects)
    }

    fn apply(&mut self, effects: Vec<Effect<BlsScheme>>) -> Result<()> {
        let mut actions = Vec::new();
        for e in effects {
            match e {
                Effect::PersistSafety(s) => self.safety.persist(&s)?,
                Effect::PersistBlock(_) => {}
                Effect::Send {
                    msg: Message::SyncRequest { .. },
                    ..
                } if self.catchup.active() => {
                    // Far behind: blocks come from the stores; block sync
                    // would only fill the orphan pool with blocks that
                    // cannot connect yet (each a certificate check).
                }
                Effect::Send { to, msg } => {
                    if let Some(p) = self.peers.get(to as usize).copied() {
                        let answer = matches!(msg, Message::SyncResponse { .. });
                        let bytes = wire::encode(&NetMsg::Consensus(msg));
                        // Block sync answers (up to SYNC_BLOCKS_MAX blocks
                        // for a 41-byte request) are paid from the
                        // requester's serving budget, in bytes.
                        if answer {
                            let now = Instant::now();
                            let ok = self
                                .budgets
                                .get_mut(to as usize)
                                .is_some_and(|b| b.serve.take(bytes.len() as f64, now));
                            if !ok {
                                self.shared.metrics.peer_budget_shed.inc();
                                self.shared.metrics.shed("peer_serve_budget");
                                continue;
                            }
                        }
                        let _ = self.ep.try_send(&p, Channel::Consensus, &bytes);
                    }
                }
                Effect::Broadcast(msg) => {
                    let out = match &msg {
                        Message::Proposal(p) => {
                            let certs: Vec<BatchCertificate> = p
                                .block
                                .payload
                                .iter()
                                .filter_map(|d| self.batcher.cert(d).map(|c| (**c).clone()))
                                .collect();
                            NetMsg::Proposal { msg, certs }
                        }
                        _ => NetMsg::Consensus(msg),
                    };
                    self.to_all(Channel::Consensus, &wire::encode(&out));
                }
                Effect::SetTimer { timer, after_us } => {
                    // A timer of the same kind replaces the earlier one.
                    self.timers.retain(|(t, _)| {
                        std::mem::discriminant(t) != std::mem::discriminant(&timer)
                    });
                    self.timers
                        .push((timer, Instant::now() + Duration::from_micros(after_us)));
                }
                Effect::Diverged {
                    height,
                    ours,
                    claimed,
                } => {
                    tracing::error!(
                        height,
                        ours = %ours,
                        certified = %claimed,
                        "DIVERGED: our state root after block {height} differs from the one the validators certified; this validator stopped voting (its state must be rebuilt)"
                    );
                    let m = &self.shared.metrics;
                    m.state_diverged.set(1);
                    m.state_diverged_height.set(height);
                    *self
                        .shared
                        .diverged
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some((height, ours, claimed));
                }
                Effect::Finalized { block, proof } => {
                    let m = &self.shared.metrics;
                    m.consensus_height
                        .set(m.consensus_height.get().max(block.height));
                    let now = self.now_us();
                    self.batcher.on_finalized(block, proof, now, &mut actions);
                }
            }
        }
        let m = &self.shared.metrics;
        m.view.set(self.engine.view());
        m.consensus_rejected.inc_by(
            self.engine
                .metrics()
                .rejected_total()
                .saturating_sub(m.consensus_rejected.get()),
        );
        self.carry_out(actions)
    }

    /// Send `msg` to validator `to` (not ourselves).
    fn to_one(&self, to: u32, ch: Channel, msg: &NetMsg) {
        if to == self.me() {
            return;
        }
        if let Some(p) = self.peers.get(to as usize) {
            let _ = self.ep.try_send(p, ch, &wire::encode(msg));
        }
    }

    /// Carry out the batcher's actions (and what they cause, in order).
    fn carry_out(&mut self, actions: Vec<Action<BlsScheme>>) -> Result<()> {
        let mut queue: std::collections::VecDeque<Action<BlsScheme>> = actions.into();
        while let Some(a) = queue.pop_front() {
            let mut more = Vec::new();
            match a {
                Action::Persist(item) => self.send_log(LogIn::Append(item))?,
                Action::Retire(ds) => self.send_log(LogIn::Retire(ds))?,
                Action::SendBatch { batch, verdict, to } => {
                    let bytes = wire::encode(&NetMsg::Batch {
                        author: batch.author,
                        expires: batch.expires,
                        verdict,
                        txs: batch.raw.clone(),
                        cert: None,
                    });
                    for t in to {
                        if let Some(p) = self.peers.get(t as usize) {
                            if t != self.me() {
                                let _ = self.ep.try_send(p, Channel::Bulk, &bytes);
                            }
                        }
                    }
                }
                Action::Verify(b) => {
                    self.shared.metrics.batch_verifications.inc();
                    let d = b.digest;
                    if self.sig_tx.try_send(SigIn::VerifyBatch(b)).is_err() {
                        // Asked for again on the next tick: a shed check
                        // must not leave the batch without a verdict.
                        self.shared.metrics.shed_sig_queue.inc();
                        self.batcher.on_verify_shed(&d);
                    }
                }
                Action::Vote { id, verdict } => {
                    let mut vote = BatchVote {
                        id,
                        voter: self.me(),
                        verdict,
                        sig: [0; 64],
                    };
                    vote.sig = self
                        .net_key
                        .sign(vote.message(self.chain).as_bytes())
                        .to_bytes();
                    self.shared.metrics.batch_votes_sent.inc();
                    if id.author == self.me() {
                        let now = self.now_us();
                        self.batcher.on_vote(vote, now, &mut more);
                    } else {
                        self.to_one(id.author, Channel::Bulk, &NetMsg::BatchVote(vote));
                    }
                }
                Action::SendCert(c) => {
                    self.shared.metrics.batch_certs_formed.inc();
                    self.to_all(
                        Channel::Bulk,
                        &wire::encode(&NetMsg::BatchCert((*c).clone())),
                    );
                }
                Action::AskVerify { to, digest } => {
                    self.shared.metrics.batch_verify_requests.inc();
                    self.to_one(to, Channel::Bulk, &NetMsg::VerifyRequest(digest));
                }
                Action::Offer(ds) => self.step(Input::PayloadReady(ds))?,
                Action::Withdraw(ds) => self.step(Input::PayloadWithdrawn(ds))?,
                Action::Fetch { from, digests } => {
                    self.shared.metrics.batch_fetches.inc();
                    for chunk in digests.chunks(wire::BATCH_REQUEST_MAX) {
                        self.to_one(from, Channel::Bulk, &NetMsg::BatchRequest(chunk.to_vec()));
                    }
                }
                Action::Evidence(ev) => {
                    self.shared.metrics.batch_evidence.inc();
                    tracing::warn!(
                        author = ev.batch.author,
                        batch = %ev.batch.digest,
                        claimed = ?ev.claimed.invalid(),
                        computed = ?ev.computed.invalid(),
                        "a batch author's verdict contradicts its bytes (evidence kept)"
                    );
                }
                Action::Execute(job) => {
                    let height = job.block.height;
                    let executed = self.catchup.executed;
                    match self
                        .exec_feed
                        .push(height, ExecIn::Block(job), executed, &self.exec_tx)
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            self.shared.metrics.shed("exec_backlog_full");
                            tracing::warn!(
                                height,
                                executed,
                                "execution is too far behind: finalized block dropped here (catch-up will execute it from the peers' stores)"
                            );
                        }
                        Err(super::feed::Gone) => return self.gone("the execution thread"),
                    }
                }
            }
            queue.extend(more);
        }
        for us in self.batcher.take_cert_latencies() {
            self.shared.metrics.observe_certified_us(us);
        }
        for us in self.batcher.take_tx_cert_latencies() {
            self.shared.metrics.observe_tx_certified_us(us);
        }
        Ok(())
    }

    fn gone(&self, what: &str) -> Result<()> {
        if self.shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        bail!("{what} is gone")
    }

    /// A proposal reaches the engine only if it passes the vote rule of
    /// certified batches (`Batcher::check_proposal`): every batch it names
    /// has a valid certificate, known here or among `certs` (then checked
    /// off the core first), and they fit one block.
    fn on_proposal(
        &mut self,
        from: u32,
        msg: Message<BlsScheme>,
        certs: Vec<BatchCertificate>,
    ) -> Result<()> {
        let Message::Proposal(p) = &msg else {
            return Ok(());
        };
        // Cheap checks before any signature work: from its proposer, in a
        // view that can still matter.
        let b = &p.block;
        let view = self.engine.view();
        if b.proposer != from
            || b.view + 1 < view
            || b.view > view + plume_consensus::engine::VIEW_AHEAD_MAX
        {
            return self.step(Input::Message { from, msg });
        }
        let mut missing: std::collections::BTreeSet<plume_crypto::Digest> = b
            .payload
            .iter()
            .filter(|d| self.batcher.cert(d).is_none())
            .copied()
            .collect();
        if missing.is_empty() {
            return self.vote_rule(from, msg);
        }
        // One certificate per missing digest (duplicates are not checked).
        let needed: Vec<BatchCertificate> = certs
            .into_iter()
            .filter(|c| missing.remove(&c.digest()))
            .collect();
        if !missing.is_empty() {
            self.refuse_proposal("a batch without a certificate");
            return Ok(());
        }
        let cost: usize = needed.iter().map(|c| c.voters().len()).sum();
        if !self.charge(from, cost as f64) {
            self.refuse_proposal("its proposer is over its work budget");
            return Ok(());
        }
        if self
            .sig_tx
            .try_send(SigIn::Proposal {
                from,
                msg,
                certs: needed,
            })
            .is_err()
        {
            self.shared.metrics.shed_sig_queue.inc();
        }
        Ok(())
    }

    /// Hand the proposal to the engine if the vote rule holds.
    fn vote_rule(&mut self, from: u32, msg: Message<BlsScheme>) -> Result<()> {
        if let Message::Proposal(p) = &msg {
            let max = u64::from(self.block_txs_max);
            if let Err(e) = self
                .batcher
                .check_proposal(&p.block.payload, p.block.height, max)
            {
                self.refuse_proposal(&e.to_string());
                return Ok(());
            }
        }
        self.step(Input::Message { from, msg })
    }

    /// Charge `units` of signature work to peer `from`'s budget; false
    /// (counted) when it is spent.
    fn charge(&mut self, from: u32, units: f64) -> bool {
        let ok = self
            .budgets
            .get_mut(from as usize)
            .is_some_and(|b| b.sig.take(units, Instant::now()));
        if !ok {
            self.shared.metrics.peer_budget_shed.inc();
        }
        ok
    }

    /// Charge a consensus message's worst-case check cost to peer `from`'s
    /// consensus budget; false (counted) when it is spent.
    fn charge_consensus(&mut self, from: u32, m: &Message<BlsScheme>) -> bool {
        let cost = crate::budget::consensus_cost(m);
        let ok = self
            .budgets
            .get_mut(from as usize)
            .is_some_and(|b| b.consensus.take(cost, Instant::now()));
        if !ok {
            self.shared.metrics.peer_budget_shed.inc();
            self.shared.metrics.shed("peer_consensus_budget");
        }
        ok
    }

    fn refuse_proposal(&self, why: &str) {
        self.shared.metrics.proposals_refused.inc();
        tracing::debug!("refusing a proposal: {why}");
    }

    /// An observer's message: only catch-up requests are served (from the
    /// server's last queue, under the observer's own byte budget); any
    /// other message is dropped and counted (an observer has nothing to
    /// say to consensus, the batcher or the mempool).
    fn on_observer(&mut self, peer: &PeerId, bytes: &[u8]) {
        let Some(k) = self.observers.iter().position(|p| p == peer) else {
            return;
        };
        let m = &self.shared.metrics;
        match wire::decode(bytes) {
            Ok(NetMsg::CatchUpRequest { from: height }) => {
                m.observer_requests.inc();
                let ok = self.observer_budgets[k].take(CATCHUP_REQUEST_COST, Instant::now());
                let from = (self.peers.len() + k) as u32;
                if !ok
                    || self
                        .observer_tx
                        .try_send(ServeIn::Segment {
                            from,
                            height,
                            answer_empty: true,
                        })
                        .is_err()
                {
                    m.shed("observer_budget");
                }
            }
            Ok(_) => {
                m.observer_refused.inc();
                tracing::debug!(%peer, "dropping an observer's message other than a catch-up request");
            }
            Err(e) => {
                m.malformed_msgs.inc();
                tracing::debug!(%peer, "dropping an observer's malformed message: {e}");
            }
        }
    }

    fn on_inbound(&mut self, peer: &PeerId, bytes: &[u8]) -> Result<()> {
        let Some(from) = self.index_of(peer) else {
            self.on_observer(peer, bytes);
            return Ok(());
        };
        let msg = match wire::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.shared.metrics.malformed_msgs.inc();
                tracing::debug!(%peer, "dropping malformed message: {e}");
                return Ok(());
            }
        };
        match &msg {
            NetMsg::Consensus(Message::Proposal(p))
            | NetMsg::Proposal {
                msg: Message::Proposal(p),
                ..
            } => self.catchup.claim(from, p.block.height.saturating_sub(1)),
            NetMsg::Consensus(Message::Certificates { high_qc, .. }) => {
                self.catchup.claim(from, high_qc.height)
            }
            _ => {}
        }
        match msg {
            NetMsg::CatchUpRequest { from: height } => {
                let now = Instant::now();
                let ok = self
                    .budgets
                    .get_mut(from as usize)
                    .is_some_and(|b| b.serve.take(CATCHUP_REQUEST_COST, now));
                // Over budget or a full queue: dropped (the peer asks again).
                if !ok
                    || self
                        .serve_tx
                        .try_send(ServeIn::Segment {
                            from,
                            height,
                            answer_empty: false,
                        })
                        .is_err()
                {
                    self.shared.metrics.peer_budget_shed.inc();
                }
            }
            NetMsg::CatchUp(segment) => {
                match self.catchup.in_flight {
                    Some((p, _)) if p == from => {
                        // Exec answers with `CaughtUp`; until then the
                        // request stays in flight (its timeout covers a
                        // dropped segment).
                        if self
                            .exec_tx
                            .try_send(ExecIn::CatchUp { from, segment })
                            .is_err()
                        {
                            self.catchup.in_flight = None;
                        }
                    }
                    _ => {
                        self.shared.metrics.malformed_msgs.inc();
                        tracing::debug!(from, "dropping an unrequested catch-up segment");
                    }
                }
            }
            NetMsg::Consensus(Message::SyncResponse { .. }) if self.catchup.active() => {}
            NetMsg::Consensus(Message::SyncRequest { block, max })
                if !self.engine.holds(&block) =>
            {
                // Not in memory (pruned, or before our restart): from the
                // store, if finalized there.
                let now = Instant::now();
                let ok = self
                    .store_sync
                    .get_mut(from as usize)
                    .is_some_and(|b| b.take(1.0, now))
                    && self.budgets[from as usize]
                        .serve
                        .take(CATCHUP_REQUEST_COST / 16.0, now);
                if !ok
                    || self
                        .sync_tx
                        .try_send(ServeIn::Blocks { from, block, max })
                        .is_err()
                {
                    self.shared.metrics.peer_budget_shed.inc();
                }
            }
            NetMsg::Consensus(m) if !self.charge_consensus(from, &m) => {}
            NetMsg::Proposal { msg, .. } if !self.charge_consensus(from, &msg) => {}
            NetMsg::Consensus(m @ Message::Proposal(_)) => self.on_proposal(from, m, Vec::new())?,
            NetMsg::Consensus(m) => self.step(Input::Message { from, msg: m })?,
            NetMsg::Proposal { msg, certs } => self.on_proposal(from, msg, certs)?,
            NetMsg::Batch {
                author,
                expires,
                verdict,
                txs,
                cert,
            } => {
                // A copy of something held or executed is not decoded again;
                // without a certificate only its author may send it.
                let known = match &cert {
                    Some(c) => {
                        !self.batcher.wants_batch(&c.digest())
                            && !self.batcher.wants_cert(&c.digest())
                    }
                    None if author != from => {
                        self.shared.metrics.malformed_msgs.inc();
                        tracing::debug!(from, author, "dropping a batch sent under another name");
                        true
                    }
                    None => false,
                };
                let bytes: usize = txs.iter().map(Vec::len).sum();
                let cost = 1.0
                    + bytes as f64 / 8192.0
                    + cert.as_ref().map_or(0, |c| c.voters().len()) as f64;
                if !known
                    && self.charge(from, cost)
                    && self
                        .sig_tx
                        .try_send(SigIn::DecodeBatch {
                            from,
                            author,
                            expires,
                            verdict,
                            txs,
                            cert,
                        })
                        .is_err()
                {
                    self.shared.metrics.shed_sig_queue.inc();
                }
            }
            NetMsg::BatchVote(v) => {
                if v.voter == from
                    && self
                        .batcher
                        .wants_vote(&v.id.digest, v.voter, v.verdict.is_some())
                    && self.charge(from, 1.0)
                    && self.sig_tx.try_send(SigIn::Vote(v)).is_err()
                {
                    self.shared.metrics.shed_sig_queue.inc();
                }
            }
            NetMsg::BatchCert(c) => {
                if self.batcher.wants_cert(&c.digest())
                    && self.charge(from, c.voters().len() as f64)
                    && self.sig_tx.try_send(SigIn::Cert(c)).is_err()
                {
                    self.shared.metrics.shed_sig_queue.inc();
                }
            }
            NetMsg::VerifyRequest(d) => {
                // It may start a batch check or a vote signature.
                if !self.charge(from, 1.0) {
                    return Ok(());
                }
                let mut actions = Vec::new();
                self.batcher.on_verify_request(&d, from, &mut actions);
                self.carry_out(actions)?;
            }
            NetMsg::BatchRequest(mut ds) => {
                // One answer per digest however often it is named.
                let named = ds.len();
                ds.sort_unstable();
                ds.dedup();
                if ds.len() < named {
                    self.shared
                        .metrics
                        .shed_n("peer_duplicate_request", (named - ds.len()) as u64);
                }
                for (b, verdict, c) in self.batcher.serve(&ds) {
                    let size: usize = b.raw.iter().map(Vec::len).sum();
                    let now = Instant::now();
                    let ok = self
                        .budgets
                        .get_mut(from as usize)
                        .is_some_and(|bu| bu.serve.take(size as f64, now));
                    if !ok {
                        self.shared.metrics.peer_budget_shed.inc();
                        break;
                    }
                    let bytes = wire::encode(&NetMsg::Batch {
                        author: b.author,
                        expires: b.expires,
                        verdict,
                        txs: b.raw.clone(),
                        cert: Some((*c).clone()),
                    });
                    let _ = self.ep.try_send(peer, Channel::Bulk, &bytes);
                }
            }
        }
        Ok(())
    }

    fn on_core_in(&mut self, msg: CoreIn) -> Result<()> {
        match msg {
            CoreIn::Verified {
                ptx,
                bytes,
                state_seq,
                reply,
            } => {
                let hash = ptx.hash;
                let m = &self.shared.metrics;
                let now = self.now_us();
                let r = match self.batcher.pool.insert_at(ptx, bytes, state_seq, now) {
                    Ok(()) => {
                        m.txs_admitted.inc();
                        Ok(hash)
                    }
                    Err(e) => {
                        m.txs_rejected.inc();
                        match e {
                            MempoolError::Full => m.shed("mempool_full"),
                            MempoolError::SenderFull { .. } => m.shed("mempool_sender_full"),
                            MempoolError::FeesExceedBalance { .. } => {
                                m.shed("mempool_fees_exceed_balance")
                            }
                            _ => {}
                        }
                        let code = match e {
                            MempoolError::Duplicate => codes::DUPLICATE,
                            MempoolError::Full => codes::MEMPOOL_FULL,
                            MempoolError::SequenceUsed { .. } => codes::SEQUENCE_USED,
                            MempoolError::SequenceTooFar { .. } => codes::SEQUENCE_TOO_FAR,
                            MempoolError::SenderFull { .. } => codes::ACCOUNT_LIMIT,
                            MempoolError::FeesExceedBalance { .. } => codes::FEE_TOO_LOW,
                        };
                        Err(ApiError::new(code, e.to_string()))
                    }
                };
                m.mempool_depth.set(self.batcher.pool.len() as u64);
                let _ = reply.send(r);
            }
            CoreIn::Batch {
                batch,
                verdict,
                cert,
            } => {
                let mut actions = Vec::new();
                let now = self.now_us();
                self.batcher
                    .on_batch(batch, verdict, cert, now, &mut actions);
                self.carry_out(actions)?;
            }
            CoreIn::BatchVerified { digest, verdict } => {
                let mut actions = Vec::new();
                self.batcher.on_verified(&digest, verdict, &mut actions);
                self.carry_out(actions)?;
            }
            CoreIn::Vote(v) => {
                let mut actions = Vec::new();
                let now = self.now_us();
                self.batcher.on_vote(v, now, &mut actions);
                self.carry_out(actions)?;
            }
            CoreIn::Cert(c) => {
                let mut actions = Vec::new();
                let now = self.now_us();
                self.batcher.on_cert(c, now, &mut actions);
                self.carry_out(actions)?;
            }
            CoreIn::Proposal { from, msg, certs } => {
                let mut actions = Vec::new();
                let now = self.now_us();
                for c in certs {
                    self.batcher.on_cert(c, now, &mut actions);
                }
                self.carry_out(actions)?;
                self.vote_rule(from, msg)?;
            }
            CoreIn::Durable(ds) => {
                let mut actions = Vec::new();
                self.batcher.on_durable(&ds, &mut actions);
                self.carry_out(actions)?;
            }
            CoreIn::Serve { to, bytes } if to as usize >= self.peers.len() => {
                let k = to as usize - self.peers.len();
                let ok = self
                    .observer_budgets
                    .get_mut(k)
                    .is_some_and(|b| b.take(bytes.len() as f64, Instant::now()));
                match self.observers.get(k) {
                    Some(p) if ok => {
                        let _ = self.ep.try_send(p, Channel::Bulk, &bytes);
                    }
                    _ => self.shared.metrics.shed("observer_budget"),
                }
            }
            CoreIn::Serve { to, bytes } => {
                let now = Instant::now();
                let ok = self
                    .budgets
                    .get_mut(to as usize)
                    .is_some_and(|b| b.serve.take(bytes.len() as f64, now));
                match self.peers.get(to as usize) {
                    Some(p) if ok => {
                        let _ = self.ep.try_send(p, Channel::Bulk, &bytes);
                    }
                    _ => {
                        self.shared.metrics.peer_budget_shed.inc();
                    }
                }
            }
            CoreIn::CaughtUp { from, outcome } => {
                self.catchup.in_flight = None;
                match outcome {
                    Ok((blocks, payloads)) => {
                        let Some(height) = blocks.last().map(|b| b.height) else {
                            return Ok(());
                        };
                        tracing::info!(
                            from,
                            height,
                            blocks = payloads.len(),
                            "caught up from a peer's block store"
                        );
                        self.catchup.streaming = true;
                        self.batcher.on_caught_up(height, payloads);
                        self.step(Input::CaughtUp { blocks })?;
                        self.maybe_catch_up();
                    }
                    Err(why) => {
                        self.shared.metrics.catchup_refused.inc();
                        tracing::warn!(from, "catch-up segment not used: {why}");
                        self.catchup.streaming = false;
                        if let Some(p) = self.catchup.penalty.get_mut(from as usize) {
                            *p = Some(Instant::now() + CATCHUP_PENALTY);
                        }
                    }
                }
            }
            CoreIn::Executed {
                height,
                block,
                root,
                sequences,
                digests,
            } => {
                if height > self.catchup.executed {
                    self.catchup.executed = height;
                    self.catchup.progress_at = Instant::now();
                }
                for (a, next) in sequences {
                    self.batcher.pool.advance(&a, next);
                }
                let mut actions = Vec::new();
                self.batcher.on_executed(&digests, &mut actions);
                self.carry_out(actions)?;
                self.flush_backlogs()?;
                self.shared
                    .metrics
                    .mempool_depth
                    .set(self.batcher.pool.len() as u64);
                self.step(Input::Executed {
                    height,
                    block,
                    state_root: root,
                })?;
            }
        }
        Ok(())
    }

    /// Hand an item to the batch log without blocking (see `feed`).
    fn send_log(&mut self, item: LogIn) -> Result<()> {
        match self.log_backlog.push(item, &self.log_tx) {
            Ok(super::feed::Pushed::Queued) => Ok(()),
            Ok(super::feed::Pushed::Shed) => {
                self.shared.metrics.shed("log_backlog_full");
                Ok(())
            }
            Err(super::feed::Gone) => self.gone("the batch log"),
        }
    }

    /// Retry the work waiting for full exec and log queues.
    fn flush_backlogs(&mut self) -> Result<()> {
        if self
            .exec_feed
            .flush(self.catchup.executed, &self.exec_tx)
            .is_err()
        {
            return self.gone("the execution thread");
        }
        if self.log_backlog.flush(&self.log_tx).is_err() {
            return self.gone("the batch log");
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<()> {
        self.flush_backlogs()?;
        let now = Instant::now();
        if now.duration_since(self.last_expiry) >= Duration::from_secs(1) {
            self.last_expiry = now;
            let now_us = self.now_us();
            let n = self
                .batcher
                .pool
                .expire_gapped(now_us, plume_mempool::pool::GAP_TTL_US);
            if n > 0 {
                self.shared.metrics.shed_n("mempool_gap_expired", n);
            }
        }
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(t, _)| *t)
            .collect();
        self.timers.retain(|(_, at)| *at > now);
        for t in due {
            if let Timer::View(v) = t {
                if v == self.engine.view() {
                    self.shared.metrics.view_changes.inc();
                }
            }
            self.step(Input::TimerFired(t))?;
        }
        let mut actions = Vec::new();
        let now_us = self.now_us();
        self.batcher.tick(now_us, &mut actions);
        self.carry_out(actions)?;
        self.maybe_catch_up();
        self.update_gauges();
        Ok(())
    }

    /// Ask a peer for finalized blocks from its store when f+1 validators
    /// are more than [`CATCHUP_LAG`] blocks ahead of what we executed and
    /// execution has nothing queued and is not moving (or the last segment
    /// helped): one request at a time, peers in turn, refused ones resting.
    fn maybe_catch_up(&mut self) {
        let now = Instant::now();
        let c = &mut self.catchup;
        if let Some((_, at)) = c.in_flight {
            if now.duration_since(at) < CATCHUP_TIMEOUT {
                return;
            }
            c.in_flight = None;
            c.streaming = false;
        }
        let target = c.target();
        let stalled = now.duration_since(c.progress_at);
        // Finalized here but not executable (its batches are gone from
        // every peer): after a while, close even a short gap from the
        // stores, as long as a segment can certify something.
        let waiting = self.engine.committed().height > c.executed && stalled > CATCHUP_WAITING;
        let (base, lag) = if waiting {
            (c.executed, STATE_LAG + 3)
        } else {
            (c.executed.max(self.engine.committed().height), CATCHUP_LAG)
        };
        if target <= base.saturating_add(lag) {
            c.streaming = false;
            return;
        }
        if !self.exec_tx.is_empty()
            || self.exec_feed.flushable()
            || (!c.streaming && stalled < CATCHUP_STALL)
        {
            return;
        }
        let n = self.peers.len();
        let me = self.engine.config().me as usize;
        for k in 0..n {
            let p = (c.next + k) % n;
            if p == me || c.claims[p] < target || c.penalty[p].is_some_and(|until| now < until) {
                continue;
            }
            c.next = p + 1;
            c.in_flight = Some((p as u32, now));
            let from = c.executed + 1;
            tracing::debug!(
                peer = p,
                from,
                target,
                "catch-up: asking a peer's block store"
            );
            let bytes = wire::encode(&NetMsg::CatchUpRequest { from });
            let _ = self.ep.try_send(&self.peers[p], Channel::Bulk, &bytes);
            return;
        }
    }

    fn update_gauges(&self) {
        let m = &self.shared.metrics;
        m.mem.set_batcher(&self.batcher.sizes());
        m.mem.timers.set(self.timers.len() as u64);
        m.mem.exec_queue.set(self.exec_tx.len() as u64);
        m.mem
            .exec_backlog
            .set((self.exec_feed.backlog() + self.log_backlog.len()) as u64);
        m.mempool_depth.set(self.batcher.pool.len() as u64);
        let connected = self.ep.connected_peers();
        m.peers.set(connected.len() as u64);
        if let Ok(mut p) = self.shared.peers.try_lock() {
            *p = connected.iter().map(|p| p.to_string()).collect();
        }
    }
}
