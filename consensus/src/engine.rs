//! The two-chain engine: Jolteon (Gelashvili, Kokoris-Kogias, Sonnino,
//! Spiegelman, Xiang: "Jolteon and Ditto: Network-Adaptive Efficient
//! Consensus with Asynchronous Fallback", FC 2022), the steady-state
//! protocol of its §4 ("Jolteon"), which is also DiemBFT v4 / AptosBFT.
//! Comments cite "J§4" for that section.
//!
//! Rules, as implemented (J§4 = Jolteon §4, "Jolteon" protocol):
//! - **Propose** (leader of view v): a block extending `qc_high`, with the
//!   TC of view v-1 attached when `qc_high.view != v-1`.
//! - **Vote** (J§4 voting rule): once per view, only in the current view,
//!   only if `block.justify.view == v-1`, or a TC for v-1 is attached and
//!   `block.justify.view >= max(high-QC views in the TC)`. The vote goes to
//!   the leader of v+1, who aggregates 2f+1 into a QC and proposes with it.
//! - **Timeout** (J§4 pacemaker): on the local timer, stop voting in v and
//!   broadcast a timeout signed over (v, `qc_high.view`); 2f+1 form a TC,
//!   which moves everyone to v+1.
//! - **Commit** (J§4 two-chain rule): B0 is final when a QC certifies a child
//!   B1 of B0 with `B1.view == B0.view + 1`; ancestors of B0 with it.
//!
//! Safety sketch: if B0 (view r) is final, 2f+1 voted for B1 in r+1, so
//! f+1 correct validators hold `qc_high.view >= r` (persisted before the
//! vote) and never vote in r+1 again. Any QC in view r+1 is for B1 (two
//! quorums share a correct validator, who votes once per view). For a block
//! in a view v > r+1 to be certified, one of those f+1 must vote for it:
//! either its justify is from v-1 (by induction a descendant of B0), or a
//! TC for v-1 is attached; that TC contains a timeout from one of the f+1,
//! signed after its vote in r+1, so carrying a high-QC view >= r, so the
//! block's justify has view >= r and certifies B0, B1 or (by induction) a
//! descendant. Hence every certified block above r+1 extends B0, and no
//! conflicting block is ever final.
//!
//! One input at a time goes into [`Engine::step`]; it returns the effects in
//! the order the driver must apply them. **Driver contract:** apply effects
//! in order; in particular a [`Effect::PersistSafety`] must be durable before
//! any later [`Effect::Send`]/[`Effect::Broadcast`] in the same list leaves
//! the node (the vote and timeout paths rely on it).

use plume_crypto::Digest;
use plume_protocol::consensus::*;
use plume_protocol::scheme::Scheme;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How far ahead of our view a message may be and still be stored.
pub const VIEW_AHEAD_MAX: u64 = 64;
/// Blocks kept below the committed height (to serve sync requests).
pub const RETAIN_BLOCKS: u64 = 256;
/// Proposals waiting for their parent.
pub const PENDING_PROPOSALS_MAX: usize = 16;
/// Certified blocks received by sync that do not yet connect to our chain.
pub const ORPHANS_MAX: usize = 1024;
/// Payload digests queued for our next proposals.
pub const PAYLOAD_QUEUE_MAX: usize = 65_536;
/// Blocks of the certified chain looked at for leader reputation.
pub const REPUTATION_WINDOW: usize = 10;
/// Cap on the exponent of the timeout backoff.
pub const BACKOFF_EXP_MAX: u32 = 6;
/// Verified-certificate cache size before it is cleared.
pub const VERIFIED_CACHE_MAX: usize = 4096;
/// Past epochs whose final proofs are kept for lagging validators.
pub const EPOCH_PROOFS_MAX: usize = 16;

/// Which blocks a certificate finalizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitRule {
    /// Jolteon's two-chain rule (J§4, "Commit rule"): a block B0 is final
    /// when a QC certifies a child B1 of B0 with `B1.view == B0.view + 1`.
    TwoChain,
    /// DELIBERATELY UNSAFE mutation for the simulator's self-test: a block
    /// is final as soon as it has a QC. Compiled only with the `test-utils`
    /// feature (the simulator's), never into the validator.
    #[cfg(any(test, feature = "test-utils"))]
    OneChainUnsafe,
}

/// A deliberately broken safety rule, for the simulator's mutation tests:
/// each must be caught by its checkers. Without the `test-utils` feature
/// (the validator's build) every mutation is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mutation {
    /// Every rule holds.
    #[default]
    None,
    /// DELIBERATELY UNSAFE: accept a proposal's justify certificate
    /// without checking its signatures.
    SkipCertCheck,
    /// DELIBERATELY UNSAFE: vote for a block whose header state root
    /// differs from ours.
    SkipRootCheck,
}

/// Engine configuration.
#[derive(Debug, Clone)]
pub struct Config<S: Scheme> {
    /// Our committee index.
    pub me: u32,
    /// Current epoch (blocks carry it; messages of other epochs are dropped).
    pub epoch: u64,
    /// The committee of `epoch`.
    pub committee: S::Committee,
    /// Chain id (the genesis block is derived from it).
    pub chain_id: u64,
    /// First view timeout, microseconds of the driver's clock.
    pub base_timeout_us: u64,
    /// Largest view timeout after backoff.
    pub max_timeout_us: u64,
    /// Seed of the deterministic jitter added to timeouts (Raft-style
    /// randomisation without a source of randomness in the engine).
    pub jitter_seed: u64,
    /// Commit rule; [`CommitRule::TwoChain`] outside mutation tests.
    pub commit_rule: CommitRule,
    /// Skip leaders that did not take part recently (see [`Engine::leader`]).
    pub leader_reputation: bool,
    /// Blocks per epoch; 0 = one epoch forever. Epoch `e` ends with the
    /// block at height `(e + 1) * epoch_length` (see [`Input::NextEpoch`]).
    pub epoch_length: u64,
    /// Most total payload weight (transactions) one proposal carries.
    pub payload_weight_max: u64,
    /// When nothing waits to be proposed or finalized, the leader proposes
    /// an empty block only after this long (and every view timer is this
    /// much longer): an idle chain makes about one block per interval
    /// instead of one per round trip. 0: propose at once, always.
    pub idle_interval_us: u64,
    /// Blocks carry the state root of [`state_height`] (fed by
    /// [`Input::Executed`]) and a validator votes only if its own matches;
    /// off where nothing executes (the simulator).
    pub state_roots: bool,
    /// [`Mutation::None`] outside mutation tests.
    pub mutation: Mutation,
}

/// Timers the engine asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Local timeout of a view.
    View(View),
    /// The leader of an idle view may propose an empty block now.
    Idle(View),
}

/// Inputs of [`Engine::step`].
#[derive(Debug)]
pub enum Input<S: Scheme> {
    /// Start (or restart) the engine: arms the first timer, proposes if leader.
    Start,
    /// A message from peer `from` (authenticated by the transport).
    Message {
        /// Sender's committee index.
        from: u32,
        /// The message.
        msg: Message<S>,
    },
    /// A timer set earlier fired.
    TimerFired(Timer),
    /// Transaction-batch digests ready to be proposed, each with its weight
    /// (its transaction count): a proposal carries digests in queue order
    /// while their weights sum to at most [`Config::payload_weight_max`]
    /// (at least one). Digests already queued or carried by a block this
    /// engine knows of are ignored.
    PayloadReady(Vec<(Digest, u32)>),
    /// These digests may no longer be proposed (their batches expired):
    /// drop them from the queue.
    PayloadWithdrawn(Vec<Digest>),
    /// The committee of the next epoch (decided by rules outside consensus,
    /// e.g. from committed state). The engine switches when it finalizes the
    /// last block of the current epoch; until then it holds this input.
    /// This validator must be a member of the next committee (leaving the
    /// set is not supported yet).
    NextEpoch {
        /// Must be the current epoch + 1 (otherwise ignored).
        epoch: u64,
        /// The new committee.
        committee: S::Committee,
        /// Our index in it.
        me: u32,
        /// Our signing key in it.
        signer: S::Signer,
    },
    /// The driver executed and committed final blocks up to `block` that
    /// it fetched from a peer's store and checked itself (catch-up from any
    /// distance: `plume_protocol::catchup`); the engine jumps its committed
    /// block there. Ignored unless higher than ours and of our epoch. Feed
    /// the [`Input::Executed`] of the blocks too (their roots).
    CaughtUp {
        /// The last of those blocks, lowest first, ending at the highest:
        /// at least [`REPUTATION_WINDOW`] of them when there were that
        /// many (the leader of a view is drawn from them).
        blocks: Vec<Block<S>>,
    },
    /// Execution finished a finalized block.
    Executed {
        /// Height executed.
        height: u64,
        /// Block executed.
        block: Digest,
        /// Resulting state root.
        state_root: Digest,
    },
}

/// Effects returned by [`Engine::step`], to apply in order.
#[derive(Debug, Clone)]
pub enum Effect<S: Scheme> {
    /// Send to one peer.
    Send {
        /// Committee index.
        to: u32,
        /// The message.
        msg: Message<S>,
    },
    /// Send to every other member.
    Broadcast(Message<S>),
    /// Fire [`Input::TimerFired`] after this many microseconds (a timer of
    /// the same kind replaces the earlier one).
    SetTimer {
        /// Which timer.
        timer: Timer,
        /// Delay.
        after_us: u64,
    },
    /// Make the safety state durable before applying later effects.
    PersistSafety(SafetyState<S>),
    /// Store a block (restarts reload stored blocks).
    PersistBlock(Block<S>),
    /// Our state root after `height` differs from the one finalized
    /// headers carry (or the proposal claims): this validator stopped
    /// voting, proposing and timing out. Emitted once.
    Diverged {
        /// The height.
        height: u64,
        /// Our root.
        ours: Digest,
        /// The root the others certified or claim.
        claimed: Digest,
    },
    /// The block is final (blocks come in height order, each exactly once).
    Finalized {
        /// The block.
        block: Block<S>,
        /// Proof for the directly committed block of this batch (the last
        /// one); earlier blocks of the batch are its ancestors.
        proof: CommitProof<S>,
    },
}

/// State recovered from storage after a restart.
#[derive(Debug, Clone)]
pub struct Recovered<S: Scheme> {
    /// Last persisted safety state (`None` if none was ever persisted: the
    /// validator never voted, timed out or changed epoch). Its epoch must be
    /// the epoch of the [`Config`] passed with it (a driver bug otherwise).
    pub safety: Option<SafetyState<S>>,
    /// Persisted blocks.
    pub blocks: Vec<Block<S>>,
    /// Id of the highest finalized block.
    pub committed: Digest,
    /// The commit proof stored with it (the child of the block it finalized
    /// directly, that block at or above ours, and the child's QC): a crash
    /// can lose that QC from the safety state, and a leader must extend at
    /// least that child (the blocks between are fetched by sync).
    pub commit_proof: Option<CommitProof<S>>,
}

impl<S: Scheme> Recovered<S> {
    /// What a validator restarts from, the same for the node and the
    /// simulator: the durable safety state, the last committed blocks
    /// (lowest first, ending at the last one; the blocks above it are in
    /// the safety state) and the commit proof stored with the last,
    /// kept only when its child is above it (then a leader must extend at
    /// least that child). Give the last [`REPUTATION_WINDOW`] committed
    /// blocks: the leader of a view is drawn from them, and a validator
    /// that held fewer than its peers would pick another leader (a
    /// restart of every validator then halted: found by the simulator).
    /// `None` on a first start: nothing was ever persisted.
    pub fn after_restart(
        safety: Option<SafetyState<S>>,
        committed_chain: Vec<Block<S>>,
        stored_proof: Option<CommitProof<S>>,
    ) -> Option<Self> {
        let committed = committed_chain.last()?;
        if safety.is_none() && committed.height == 0 {
            return None;
        }
        let commit_proof = stored_proof.filter(|p| p.child.height > committed.height);
        Some(Recovered {
            safety,
            committed: committed.id,
            blocks: committed_chain,
            commit_proof,
        })
    }
}

/// Counters of what the engine saw and did.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Peer messages received.
    pub messages_received: u64,
    /// Peer messages dropped, by reason.
    pub rejected: BTreeMap<&'static str, u64>,
    /// Proposals we made.
    pub proposals: u64,
    /// Votes we sent.
    pub votes: u64,
    /// Timeouts we broadcast.
    pub timeouts: u64,
    /// QCs we aggregated.
    pub qcs_formed: u64,
    /// TCs we formed.
    pub tcs_formed: u64,
    /// Blocks finalized.
    pub finalized: u64,
    /// Sync requests sent.
    pub sync_requests: u64,
    /// Blocks accepted from sync responses.
    pub synced_blocks: u64,
    /// Commits refused because the chain conflicted with the finalized one
    /// (must stay 0 unless more than f validators are faulty).
    pub commit_conflicts: u64,
    /// Payload digests dropped because the queue was full.
    pub payload_dropped: u64,
    /// Payload digests returned to the queue from abandoned views.
    pub payload_returned: u64,
    /// Our state diverged from the certified one (we stopped voting).
    pub diverged: bool,
}

impl Metrics {
    /// Total rejected peer messages.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// Views and heights above this in a peer's message are refused before
/// anything else looks at them (so no `+ 1` on them can overflow; the
/// chain would need 2^62 rounds to get there).
pub const VIEW_HEIGHT_MAX: u64 = 1 << 62;

fn qc_in_range<S: Scheme>(qc: &QuorumCert<S>) -> bool {
    qc.view < VIEW_HEIGHT_MAX && qc.height < VIEW_HEIGHT_MAX && qc.epoch < VIEW_HEIGHT_MAX
}

fn tc_in_range<S: Scheme>(tc: &TimeoutCert<S>) -> bool {
    tc.view < VIEW_HEIGHT_MAX
        && tc.epoch < VIEW_HEIGHT_MAX
        && tc.entries.iter().all(|e| e.1 < VIEW_HEIGHT_MAX)
}

fn block_in_range<S: Scheme>(b: &Block<S>) -> bool {
    b.view < VIEW_HEIGHT_MAX
        && b.height < VIEW_HEIGHT_MAX
        && b.epoch < VIEW_HEIGHT_MAX
        && qc_in_range(&b.justify)
}

/// Every view, height and epoch a message carries is below
/// [`VIEW_HEIGHT_MAX`].
fn in_range<S: Scheme>(msg: &Message<S>) -> bool {
    match msg {
        Message::Proposal(p) => block_in_range(&p.block) && p.tc.as_ref().is_none_or(tc_in_range),
        Message::Vote(v) => {
            v.view < VIEW_HEIGHT_MAX && v.height < VIEW_HEIGHT_MAX && v.epoch < VIEW_HEIGHT_MAX
        }
        Message::Timeout(t) => {
            t.view < VIEW_HEIGHT_MAX && t.epoch < VIEW_HEIGHT_MAX && qc_in_range(&t.high_qc)
        }
        Message::Certificates { high_qc, tc } => {
            qc_in_range(high_qc) && tc.as_ref().is_none_or(tc_in_range)
        }
        Message::SyncRequest { .. } => true,
        Message::SyncResponse { blocks } => blocks.iter().all(block_in_range),
        Message::EpochProof(p) => block_in_range(&p.child) && qc_in_range(&p.child_qc),
    }
}

/// Votes collected for one view: voter -> (block, height, signature).
type VotesOfView<S> = BTreeMap<u32, (Digest, u64, <S as Scheme>::Sig)>;

/// The consensus state machine of one validator.
#[derive(Debug)]
pub struct Engine<S: Scheme> {
    cfg: Config<S>,
    /// The driver's wall clock (ms since the Unix epoch), set before each
    /// input ([`Engine::set_clock`]); 0 until set.
    now_ms: u64,
    signer: S::Signer,
    n: usize,
    genesis: Block<S>,
    blocks: BTreeMap<Digest, Block<S>>,
    /// First proposal seen per view (equivocation bound).
    proposal_seen: BTreeMap<View, Digest>,
    view: View,
    timeouts_in_row: u32,
    timed_out_view: Option<View>,
    last_voted_view: View,
    high_qc: QuorumCert<S>,
    last_tc: Option<TimeoutCert<S>>,
    committed: Block<S>,
    proposed_view: View,
    votes: BTreeMap<View, VotesOfView<S>>,
    qc_done: BTreeSet<View>,
    timeouts: BTreeMap<View, BTreeMap<u32, (View, S::Sig)>>,
    /// Certificates whose signatures we checked, by signed message (QCs)
    /// or content (TCs): a hit needs the very same certificate, so a forged
    /// one over a cached message is still checked (and refused).
    verified: BTreeMap<Digest, S::Cert>,
    verified_tcs: BTreeMap<Digest, TimeoutCert<S>>,
    /// Blocks certified by a QC we verified (bounded like `verified`).
    certified: BTreeSet<Digest>,
    pending: BTreeMap<Digest, (u32, Proposal<S>)>,
    orphans: BTreeMap<Digest, Block<S>>,
    /// Digests waiting for our next proposals, with their weights.
    payload: VecDeque<(Digest, u32)>,
    /// Payload of accepted proposals not yet finalized, by view: removed
    /// from every queue when the proposal arrives, returned to ours when
    /// its view ends without a certificate for it.
    in_flight: BTreeMap<View, (Digest, Vec<(Digest, u32)>)>,
    /// Weights of digests offered to us, kept while they are in flight so
    /// an abandoned proposal's payload goes back with its weight.
    weights: BTreeMap<Digest, u32>,
    last_executed: Option<(u64, Digest, Digest)>,
    /// Highest height the driver executed (blocks above it go into the
    /// safety state).
    exec_floor: u64,
    /// The block we last voted for.
    voted_block: Option<Digest>,
    /// The view whose idle wait is over (its leader may propose empty).
    idle_done: View,
    /// The view whose idle timer is set.
    idle_armed: View,
    /// [`Input::Start`] was given.
    started: bool,
    /// Our state roots by height (a window; see [`Config::state_roots`]).
    roots: BTreeMap<u64, Digest>,
    /// Roots finalized headers claim for heights we have not executed yet.
    claims: BTreeMap<u64, Digest>,
    /// A proposal of the current view waiting for our root to vote.
    deferred: Option<(u32, Proposal<S>)>,
    /// (height, ours, claimed) once our state diverged.
    diverged: Option<(u64, Digest, Digest)>,
    /// Block the current epoch extends (genesis for epoch 0).
    epoch_start: Digest,
    next_epoch: Option<(u64, S::Committee, u32, S::Signer)>,
    /// Proofs that finalized the last block of past epochs, to hand to
    /// validators still in them.
    epoch_proofs: BTreeMap<u64, CommitProof<S>>,
    /// The child block of the last commit proof that checked (a replay of
    /// it is refused before any signature work).
    last_epoch_proof: Option<Digest>,
    metrics: Metrics,
    out: Vec<Effect<S>>,
    loopback: VecDeque<Message<S>>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl<S: Scheme> Engine<S> {
    /// A fresh engine at genesis, or a restarted one from `recovered`.
    pub fn new(cfg: Config<S>, signer: S::Signer, recovered: Option<Recovered<S>>) -> Self {
        let n = S::committee_len(&cfg.committee);
        assert!(
            n > 0 && (cfg.me as usize) < n,
            "own index outside the committee"
        );
        let genesis = Block::genesis(cfg.chain_id);
        let genesis_qc = QuorumCert::genesis(cfg.epoch, &genesis);
        let mut e = Engine {
            n,
            signer,
            blocks: BTreeMap::new(),
            proposal_seen: BTreeMap::new(),
            view: 1,
            timeouts_in_row: 0,
            now_ms: 0,
            timed_out_view: None,
            last_voted_view: 0,
            high_qc: genesis_qc,
            last_tc: None,
            committed: genesis.clone(),
            proposed_view: 0,
            votes: BTreeMap::new(),
            qc_done: BTreeSet::new(),
            timeouts: BTreeMap::new(),
            verified: BTreeMap::new(),
            verified_tcs: BTreeMap::new(),
            certified: BTreeSet::new(),
            pending: BTreeMap::new(),
            orphans: BTreeMap::new(),
            payload: VecDeque::new(),
            in_flight: BTreeMap::new(),
            weights: BTreeMap::new(),
            last_executed: None,
            exec_floor: 0,
            voted_block: None,
            idle_done: 0,
            idle_armed: 0,
            started: false,
            roots: BTreeMap::new(),
            claims: BTreeMap::new(),
            deferred: None,
            diverged: None,
            epoch_start: genesis.id,
            next_epoch: None,
            epoch_proofs: BTreeMap::new(),
            last_epoch_proof: None,
            metrics: Metrics::default(),
            out: Vec::new(),
            loopback: VecDeque::new(),
            genesis: genesis.clone(),
            cfg,
        };
        e.blocks.insert(genesis.id, genesis);
        if let Some(r) = recovered {
            for b in r.blocks {
                e.blocks.insert(b.id, b);
            }
            if let Some(c) = e.blocks.get(&r.committed) {
                e.committed = c.clone();
            }
            e.exec_floor = e.committed.height;
            if let Some(safety) = r.safety {
                assert_eq!(
                    safety.epoch, e.cfg.epoch,
                    "recovered state of another epoch"
                );
                e.epoch_start = safety.epoch_start;
                e.last_voted_view = safety.last_voted_view;
                e.high_qc = safety.high_qc;
                e.last_tc = safety.high_tc;
                for b in safety.blocks {
                    if b.compute_id() == b.id {
                        e.blocks.insert(b.id, b);
                    }
                }
                if let (Some(p), Some(prev)) = (safety.epoch_proof, e.cfg.epoch.checked_sub(1)) {
                    e.epoch_proofs.insert(prev, p);
                }
            }
            if let Some(p) = r.commit_proof {
                let qc = &p.child_qc;
                if p.child.height > e.committed.height
                    && p.child.compute_id() == p.child.id
                    && qc.block == p.child.id
                    && qc.epoch == e.cfg.epoch
                    && qc.view > e.high_qc.view
                {
                    e.high_qc = qc.clone();
                    e.blocks.insert(p.child.id, p.child);
                }
            }
            // Resume in the highest view we can justify to others (a view
            // entered by a TC we no longer hold could strand us alone).
            let tc_view = e.last_tc.as_ref().map_or(0, |t| t.view + 1);
            e.view = (e.high_qc.view + 1).max(e.last_voted_view).max(tc_view);
        }
        e
    }

    /// Tell the engine the driver's wall clock (ms since the Unix epoch):
    /// a proposal's block time is `max(parent's time, now)`, and the
    /// engine votes only for blocks at most `MAX_CLOCK_AHEAD_MS` ahead of
    /// it. The node sets it before every input; the simulator its own
    /// virtual clock. Time is an input like any other: replay stays exact.
    pub fn set_clock(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    /// Apply one input; returns the effects in the order to apply them.
    pub fn step(&mut self, input: Input<S>) -> Vec<Effect<S>> {
        match input {
            Input::Start => {
                self.started = true;
                let v = self.view;
                self.view = 0;
                self.advance_to(v, false);
            }
            Input::Message { from, msg } => {
                self.metrics.messages_received += 1;
                if from as usize >= self.n || from == self.cfg.me {
                    self.reject("sender not a member");
                } else {
                    self.on_message(from, msg);
                }
            }
            Input::TimerFired(Timer::View(v)) => self.on_local_timeout(v),
            Input::TimerFired(Timer::Idle(v)) => {
                if v == self.view {
                    self.idle_done = v;
                    self.maybe_propose();
                }
            }
            Input::PayloadReady(ds) => {
                self.on_payload_ready(ds);
                if self.started {
                    self.maybe_propose();
                }
            }
            Input::PayloadWithdrawn(ds) => self.drop_payload(&ds),
            Input::NextEpoch {
                epoch,
                committee,
                me,
                signer,
            } => {
                if epoch == self.cfg.epoch + 1 && (me as usize) < S::committee_len(&committee) {
                    self.next_epoch = Some((epoch, committee, me, signer));
                }
            }
            Input::CaughtUp { blocks } => self.on_caught_up(blocks),
            Input::Executed {
                height,
                block,
                state_root,
            } => {
                self.exec_floor = self.exec_floor.max(height);
                self.last_executed = Some((height, block, state_root));
                if self.cfg.state_roots {
                    self.on_executed(height, state_root);
                }
            }
        }
        loop {
            while let Some(m) = self.loopback.pop_front() {
                self.on_message(self.cfg.me, m);
            }
            // Epoch switches happen between inputs, never in the middle of
            // handling one (the rest of a handler would mix epochs).
            if !self.maybe_switch_epoch() {
                break;
            }
        }
        std::mem::take(&mut self.out)
    }

    // ---- accessors ----

    /// Current view.
    pub fn view(&self) -> View {
        self.view
    }
    /// Highest finalized block.
    pub fn committed(&self) -> &Block<S> {
        &self.committed
    }
    /// Highest certificate known.
    pub fn high_qc(&self) -> &QuorumCert<S> {
        &self.high_qc
    }
    /// Counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    /// Last execution result reported by the driver (recorded only:
    /// agreement on state roots is not part of this engine yet).
    pub fn last_executed(&self) -> Option<(u64, Digest, Digest)> {
        self.last_executed
    }
    /// The genesis block.
    pub fn genesis(&self) -> &Block<S> {
        &self.genesis
    }
    /// Highest view we voted or timed out in.
    pub fn last_voted_view(&self) -> View {
        self.last_voted_view
    }
    /// Current epoch.
    pub fn epoch(&self) -> u64 {
        self.cfg.epoch
    }
    /// True when the engine holds the next epoch's committee (or epochs are off).
    pub fn has_next_epoch(&self) -> bool {
        self.cfg.epoch_length == 0 || self.next_epoch.is_some()
    }
    /// Number of blocks held in memory.
    pub fn blocks_held(&self) -> usize {
        self.blocks.len()
    }
    /// Whether the block is in memory (a sync request for one that is not
    /// gets no answer from the engine; the driver may serve it from its
    /// block store).
    pub fn holds(&self, id: &Digest) -> bool {
        self.blocks.contains_key(id)
    }
    /// The configuration.
    pub fn config(&self) -> &Config<S> {
        &self.cfg
    }

    /// Leader of `view` for a proposal extending `anchor` (the certified
    /// parent). Round-robin over the validators that took part in the last
    /// [`REPUTATION_WINDOW`] blocks of the certified chain ending at
    /// `anchor` (proposers and QC signers), so a crashed validator stops
    /// being picked after a few blocks. The choice depends only on the chain,
    /// which every voter checks against the proposal, so all correct
    /// validators agree (DiemBFT v4 leader reputation, simplified). Falls
    /// back to plain round-robin when fewer than a quorum took part.
    pub fn leader(&self, view: View, anchor: &Digest) -> u32 {
        if self.cfg.leader_reputation {
            if let Some(active) = self.active_set(anchor) {
                return active[(view % active.len() as u64) as usize];
            }
        }
        (view % self.n as u64) as u32
    }

    fn active_set(&self, anchor: &Digest) -> Option<Vec<u32>> {
        let mut set = BTreeSet::new();
        let mut cur = self.blocks.get(anchor);
        let mut seen = 0;
        while let Some(b) = cur {
            if b.height == 0 || b.epoch != self.cfg.epoch || seen >= REPUTATION_WINDOW {
                break;
            }
            set.insert(b.proposer);
            if let Some(c) = &b.justify.cert {
                for s in S::cert_signers(c) {
                    set.insert(s as u32);
                }
            }
            seen += 1;
            cur = self.blocks.get(&b.parent);
        }
        let v: Vec<u32> = set.into_iter().filter(|&i| (i as usize) < self.n).collect();
        let idx: Vec<usize> = v.iter().map(|&i| i as usize).collect();
        if S::has_quorum(&self.cfg.committee, &idx) {
            Some(v)
        } else {
            None
        }
    }

    // ---- helpers ----

    fn reject(&mut self, why: &'static str) {
        *self.metrics.rejected.entry(why).or_insert(0) += 1;
    }

    fn send(&mut self, to: u32, msg: Message<S>) {
        if to == self.cfg.me {
            self.loopback.push_back(msg);
        } else {
            self.out.push(Effect::Send { to, msg });
        }
    }

    fn timeout_us(&self, view: View) -> u64 {
        let exp = self.timeouts_in_row.min(BACKOFF_EXP_MAX);
        let base = self.cfg.base_timeout_us.saturating_mul(1 << exp);
        let jitter_span = (self.cfg.base_timeout_us / 2).max(1);
        let jitter = splitmix(self.cfg.jitter_seed ^ view.rotate_left(17) ^ u64::from(self.cfg.me))
            % jitter_span;
        base.min(self.cfg.max_timeout_us) + jitter
    }

    fn safety(&self) -> SafetyState<S> {
        SafetyState {
            epoch: self.cfg.epoch,
            last_voted_view: self.last_voted_view,
            high_qc: self.high_qc.clone(),
            high_tc: self.last_tc.clone(),
            epoch_start: self.epoch_start,
            epoch_proof: self
                .cfg
                .epoch
                .checked_sub(1)
                .and_then(|e| self.epoch_proofs.get(&e).cloned()),
            blocks: self.unexecuted_chain(),
        }
    }

    /// The blocks above the executed height on the way down from
    /// `high_qc`'s block and from the block last voted for, lowest first.
    fn unexecuted_chain(&self) -> Vec<Block<S>> {
        let mut picked: BTreeMap<(u64, Digest), &Block<S>> = BTreeMap::new();
        for top in [Some(self.high_qc.block), self.voted_block]
            .into_iter()
            .flatten()
        {
            let mut cur = self.blocks.get(&top);
            while let Some(b) = cur {
                if b.height <= self.exec_floor || picked.len() >= SAFETY_BLOCKS_MAX {
                    break;
                }
                if picked.insert((b.height, b.id), b).is_some() {
                    break;
                }
                cur = self.blocks.get(&b.parent);
            }
        }
        picked.into_values().cloned().collect()
    }

    /// Whether anything waits: digests to propose, a block with payload
    /// between the committed one and `high_qc`'s that a further block
    /// must finalize, or payload in `high_qc`'s block or its parent (the
    /// block it may just have committed: only the next proposal carries
    /// that certificate to the others).
    fn has_work(&self) -> bool {
        if !self.payload.is_empty() {
            return true;
        }
        let mut cur = self.blocks.get(&self.high_qc.block);
        let mut depth = 0;
        while let Some(b) = cur {
            if b.height == 0 || (b.height <= self.committed.height && depth >= 2) {
                return false;
            }
            if !b.payload.is_empty() {
                return true;
            }
            depth += 1;
            cur = self.blocks.get(&b.parent);
        }
        false
    }

    /// Is `qc` valid? Cached by signed message.
    fn check_qc(&mut self, qc: &QuorumCert<S>) -> bool {
        match &qc.cert {
            None => {
                qc.view == 0
                    && qc.epoch == self.cfg.epoch
                    && qc.block == self.epoch_start
                    && qc.height == self.epoch_start_height()
            }
            Some(c) => {
                if qc.epoch != self.cfg.epoch || qc.view == 0 {
                    return false;
                }
                let m = qc.signed_message(self.cfg.chain_id);
                if self.verified.get(&m) == Some(c) {
                    return true;
                }
                if S::verify_cert(&self.cfg.committee, m.as_bytes(), c) {
                    if self.verified.len() >= VERIFIED_CACHE_MAX {
                        self.verified.clear();
                        self.verified_tcs.clear();
                    }
                    if self.certified.len() >= VERIFIED_CACHE_MAX {
                        self.certified.clear();
                    }
                    self.verified.insert(m, c.clone());
                    self.certified.insert(qc.block);
                    true
                } else {
                    false
                }
            }
        }
    }

    fn epoch_start_height(&self) -> u64 {
        self.cfg.epoch * self.cfg.epoch_length
    }

    /// Height of the last block of the current epoch, if epochs are on.
    fn epoch_end(&self) -> Option<u64> {
        (self.cfg.epoch_length > 0).then(|| (self.cfg.epoch + 1) * self.cfg.epoch_length)
    }

    fn check_block_shape(&self, b: &Block<S>) -> Result<(), &'static str> {
        if b.epoch != self.cfg.epoch {
            return Err("wrong epoch");
        }
        if self.epoch_end().is_some_and(|end| b.height > end) && !b.payload.is_empty() {
            // Blocks past the epoch's last one only carry the two-chain that
            // finalizes it; they are never finalized themselves.
            return Err("payload after the end of the epoch");
        }
        if b.payload.len() > PAYLOAD_DIGESTS_MAX {
            return Err("payload too large");
        }
        if b.proposer as usize >= self.n {
            return Err("proposer not a member");
        }
        if b.view == 0 || b.justify.view >= b.view {
            return Err("block view not above its justify");
        }
        if b.justify.block != b.parent || b.justify.height + 1 != b.height {
            return Err("block does not match its justify");
        }
        if b.compute_id() != b.id {
            return Err("block id mismatch");
        }
        Ok(())
    }

    // ---- view changes (J§4 "Pacemaker") ----

    fn advance_to(&mut self, v: View, by_qc: bool) {
        if v <= self.view {
            return;
        }
        self.view = v;
        if by_qc {
            self.timeouts_in_row = 0;
        }
        self.timed_out_view = None;
        let idle = if self.cfg.idle_interval_us > 0 && !self.has_work() {
            self.cfg.idle_interval_us
        } else {
            0
        };
        self.out.push(Effect::SetTimer {
            timer: Timer::View(v),
            after_us: self.timeout_us(v).saturating_add(idle),
        });
        // Drop vote/timeout collections that can no longer matter.
        let keep_from = v.saturating_sub(1);
        self.votes = self.votes.split_off(&keep_from);
        self.qc_done = self.qc_done.split_off(&keep_from);
        self.timeouts = self.timeouts.split_off(&keep_from);
        self.maybe_propose();
    }

    fn maybe_propose(&mut self) {
        let v = self.view;
        if self.diverged.is_some() {
            return;
        }
        if self.proposed_view >= v {
            return;
        }
        let parent = self.high_qc.block;
        if !self.blocks.contains_key(&parent) {
            // (After a restart we may hold the certificate, not the block.)
            if self.leader(v, &parent) == self.cfg.me {
                if let Some(c) = &self.high_qc.cert {
                    let signers: Vec<usize> = S::cert_signers(c)
                        .into_iter()
                        .filter(|i| *i as u32 != self.cfg.me)
                        .collect();
                    if !signers.is_empty() {
                        let to = signers[(v as usize) % signers.len()] as u32;
                        self.request_sync(to, parent);
                    }
                }
            }
            return;
        }
        if self.leader(v, &parent) != self.cfg.me {
            return;
        }
        // J§4 "Proposing": extend qc_high; attach the TC when the previous
        // view ended by timeout.
        let tc = if self.high_qc.view + 1 == v {
            None
        } else {
            match &self.last_tc {
                Some(tc) if tc.view + 1 == v => Some(tc.clone()),
                _ => return,
            }
        };
        // An idle chain: wait for payload (or the interval) before an empty
        // block. A view entered by timeout proposes at once.
        if tc.is_none() && self.cfg.idle_interval_us > 0 && self.idle_done != v && !self.has_work()
        {
            if self.idle_armed != v {
                self.idle_armed = v;
                self.out.push(Effect::SetTimer {
                    timer: Timer::Idle(v),
                    after_us: self.cfg.idle_interval_us,
                });
                // The certificate we just formed would otherwise travel only
                // with our next proposal: share it now, so every validator
                // commits what it finalizes (and enters this view) at once.
                if self.high_qc.cert.is_some() {
                    self.out.push(Effect::Broadcast(Message::Certificates {
                        high_qc: self.high_qc.clone(),
                        tc: None,
                    }));
                }
            }
            return;
        }
        let state_root = if self.cfg.state_roots {
            match self.roots.get(&state_height(self.high_qc.height + 1)) {
                Some(r) => *r,
                None => return, // execution is behind: propose when it is there
            }
        } else {
            Digest::ZERO
        };
        self.proposed_view = v;
        let past_end = self
            .epoch_end()
            .is_some_and(|end| self.high_qc.height >= end);
        let mut take = 0;
        let mut weight = 0u64;
        if !past_end {
            for (_, w) in self.payload.iter() {
                let w = u64::from(*w);
                if take == PAYLOAD_DIGESTS_MAX
                    || (take > 0 && weight + w > self.cfg.payload_weight_max)
                {
                    break;
                }
                weight += w;
                take += 1;
            }
        }
        let payload: Vec<Digest> = self.payload.drain(..take).map(|(d, _)| d).collect();
        let parent_time = self
            .blocks
            .get(&self.high_qc.block)
            .map_or(0, |b| b.time_ms);
        let block = Block::new(
            self.cfg.epoch,
            v,
            self.cfg.me,
            payload,
            self.high_qc.clone(),
        )
        .with_state_root(state_root)
        .with_time(parent_time.max(self.now_ms));
        self.metrics.proposals += 1;
        let p = Proposal { block, tc };
        self.out
            .push(Effect::Broadcast(Message::Proposal(p.clone())));
        self.loopback.push_back(Message::Proposal(p));
    }

    fn on_local_timeout(&mut self, v: View) {
        if v != self.view || self.diverged.is_some() {
            return;
        }
        if self.timed_out_view != Some(v) {
            self.timed_out_view = Some(v);
            self.timeouts_in_row = self.timeouts_in_row.saturating_add(1);
        }
        // J§4 "Pacemaker": stop voting in v, broadcast a timeout with qc_high.
        self.last_voted_view = self.last_voted_view.max(v);
        self.out.push(Effect::PersistSafety(self.safety()));
        let msg = timeout_message(self.cfg.chain_id, self.cfg.epoch, v, self.high_qc.view);
        let t = Timeout {
            epoch: self.cfg.epoch,
            view: v,
            high_qc: self.high_qc.clone(),
            voter: self.cfg.me,
            sig: S::sign(&self.signer, msg.as_bytes()),
        };
        self.metrics.timeouts += 1;
        self.out
            .push(Effect::Broadcast(Message::Timeout(t.clone())));
        self.loopback.push_back(Message::Timeout(t));
        // Re-arm: the timeout is re-sent until the view changes, which
        // recovers liveness after message loss.
        self.out.push(Effect::SetTimer {
            timer: Timer::View(v),
            after_us: self.timeout_us(v),
        });
    }

    // ---- certificates ----

    /// Take a verified QC into account: qc_high, commit rule, view.
    fn on_qc(&mut self, qc: &QuorumCert<S>, from: u32) {
        // Honest votes sign their block's own (view, height): a certificate
        // naming a known block under other ones is not a certificate of it
        // (a commit proof built on it would not verify).
        if self
            .blocks
            .get(&qc.block)
            .is_some_and(|b| b.view != qc.view || b.height != qc.height)
        {
            return self.reject("certificate view/height differ from its block's");
        }
        if qc.view > self.high_qc.view {
            self.high_qc = qc.clone();
        }
        self.try_commit(qc, from);
        self.advance_to(qc.view + 1, true);
    }

    fn on_tc(&mut self, tc: &TimeoutCert<S>) {
        self.return_abandoned(tc.view);
        if self.last_tc.as_ref().is_none_or(|t| t.view < tc.view) {
            self.last_tc = Some(tc.clone());
            // Persisted so that after a restart we can still hand peers the
            // certificate that justifies the view we resume in.
            self.out.push(Effect::PersistSafety(self.safety()));
        }
        self.advance_to(tc.view + 1, false);
    }

    /// Is `tc` valid? Cached by its content (view and (voter, high-QC view)
    /// pairs), a hit only for the identical certificate (signatures too).
    fn check_tc(&mut self, tc: &TimeoutCert<S>) -> bool {
        if tc.epoch != self.cfg.epoch || tc.entries.len() > self.n {
            return false;
        }
        let mut h = plume_crypto::Hasher::new(plume_crypto::Domain::Timeout);
        h.update(b"tc-cache")
            .update_u64(tc.epoch)
            .update_u64(tc.view);
        for (v, hv, _) in &tc.entries {
            h.update_u64(u64::from(*v)).update_u64(*hv);
        }
        let key = h.finalize();
        if self
            .verified_tcs
            .get(&key)
            .is_some_and(|t| t.view == tc.view && t.epoch == tc.epoch && t.entries == tc.entries)
        {
            return true;
        }
        if !tc.verify(&self.cfg.committee, self.cfg.chain_id) {
            return false;
        }
        if self.verified_tcs.len() >= VERIFIED_CACHE_MAX {
            self.verified_tcs.clear();
        }
        self.verified_tcs.insert(key, tc.clone());
        true
    }

    /// J§4 "Commit rule": B0 <- QC <- B1 <- qc with B1.view = B0.view + 1
    /// finalizes B0 and its ancestors.
    fn try_commit(&mut self, qc: &QuorumCert<S>, from: u32) {
        let Some(b1) = self.blocks.get(&qc.block) else {
            return;
        };
        if qc.view != b1.view || qc.height != b1.height {
            // A certificate must be for its block's own view and height
            // (on_qc refuses it when the block is known first; this is for
            // a block that arrived after its certificate).
            return self.reject("certificate view/height differ from its block's");
        }
        let (target, proof) = match self.cfg.commit_rule {
            CommitRule::TwoChain => {
                if b1.height == 0 || b1.view != b1.justify.view + 1 {
                    return;
                }
                let Some(b0) = self.blocks.get(&b1.parent) else {
                    return;
                };
                (
                    b0.clone(),
                    CommitProof {
                        child: b1.clone(),
                        child_qc: qc.clone(),
                    },
                )
            }
            #[cfg(any(test, feature = "test-utils"))]
            CommitRule::OneChainUnsafe => (
                b1.clone(),
                CommitProof {
                    child: b1.clone(),
                    child_qc: qc.clone(),
                },
            ),
        };
        // Never finalize past the end of the epoch: the next epoch extends
        // exactly the epoch's last block.
        let mut target = target;
        if let Some(end) = self.epoch_end() {
            while target.height > end {
                match self.blocks.get(&target.parent) {
                    Some(p) => target = p.clone(),
                    None => {
                        self.request_sync(from, target.parent);
                        return;
                    }
                }
            }
        }
        if target.height <= self.committed.height {
            return;
        }
        // Collect the chain from target down to the committed tip.
        let mut chain = vec![target.clone()];
        let mut cur = target;
        while cur.height > self.committed.height + 1 {
            match self.blocks.get(&cur.parent) {
                Some(p) => {
                    cur = p.clone();
                    chain.push(cur.clone());
                }
                None => {
                    self.request_sync(from, cur.parent);
                    return;
                }
            }
        }
        if cur.parent != self.committed.id {
            self.metrics.commit_conflicts += 1;
            return;
        }
        let finalized: Vec<Digest> = chain
            .iter()
            .flat_map(|b| b.payload.iter().copied())
            .collect();
        self.drop_payload(&finalized);
        for b in chain.into_iter().rev() {
            self.check_claim(&b);
            self.metrics.finalized += 1;
            self.committed = b.clone();
            self.out.push(Effect::Finalized {
                block: b,
                proof: proof.clone(),
            });
        }
        self.prune();
        if self.epoch_end() == Some(self.committed.height) {
            self.epoch_proofs.insert(self.cfg.epoch, proof);
            while self.epoch_proofs.len() > EPOCH_PROOFS_MAX {
                self.epoch_proofs.pop_first();
            }
        }
    }

    /// Enter the next epoch once the current one's last block is final and
    /// its committee is known. Views restart at 1; the new epoch's chain
    /// extends the last block of the old one, whose certificate is implicit
    /// (it is final for everyone who switches).
    fn maybe_switch_epoch(&mut self) -> bool {
        if self.epoch_end() != Some(self.committed.height) {
            return false;
        }
        let Some((epoch, committee, me, signer)) = self.next_epoch.take() else {
            return false;
        };
        self.cfg.epoch = epoch;
        self.cfg.committee = committee;
        self.cfg.me = me;
        self.signer = signer;
        self.n = S::committee_len(&self.cfg.committee);
        self.epoch_start = self.committed.id;
        self.high_qc = QuorumCert {
            epoch,
            view: 0,
            block: self.committed.id,
            height: self.committed.height,
            cert: None,
        };
        self.last_voted_view = 0;
        self.last_tc = None;
        self.proposed_view = 0;
        self.idle_done = 0;
        self.idle_armed = 0;
        self.timed_out_view = None;
        self.timeouts_in_row = 0;
        self.votes.clear();
        self.qc_done.clear();
        self.timeouts.clear();
        self.proposal_seen.clear();
        self.verified.clear();
        self.verified_tcs.clear();
        self.certified.clear();
        self.pending.clear();
        self.orphans.clear();
        self.view = 0;
        self.loopback.clear();
        self.out.push(Effect::PersistSafety(self.safety()));
        self.advance_to(1, true);
        true
    }

    fn prune(&mut self) {
        let floor = self.committed.height.saturating_sub(RETAIN_BLOCKS);
        let cview = self.committed.view;
        let genesis = self.genesis.id;
        self.blocks
            .retain(|id, b| b.height >= floor || *id == genesis);
        if self.committed.epoch == self.cfg.epoch {
            self.proposal_seen = self.proposal_seen.split_off(&cview);
        }
        let h = self.committed.height;
        self.orphans.retain(|_, b| b.height > h);
        self.pending.retain(|_, (_, p)| p.block.height > h);
        // Payload at or below the committed view is final (or was in an
        // abandoned block whose payload went back to the queue already).
        let keep = self.in_flight.split_off(&(cview + 1));
        for (_, (_, ds)) in std::mem::replace(&mut self.in_flight, keep) {
            for (d, _) in ds {
                self.weights.remove(&d);
            }
        }
    }

    // ---- payload ----

    fn on_payload_ready(&mut self, ds: Vec<(Digest, u32)>) {
        for (d, w) in ds {
            if let Some(old) = self.weights.get_mut(&d) {
                // Queued, or in a block we know of. A digest first seen in
                // a peer's proposal has no weight yet (0); the offer brings
                // the real one, which a block we build must count (with a
                // guessed weight every honest validator refused the block
                // for its size: found by the simulator, seed 10112 at n=7).
                if *old != w {
                    *old = w;
                    for e in self.payload.iter_mut().filter(|e| e.0 == d) {
                        e.1 = w;
                    }
                }
                continue;
            }
            if self.payload.len() >= PAYLOAD_QUEUE_MAX {
                self.metrics.payload_dropped += 1;
                continue;
            }
            self.weights.insert(d, w);
            self.payload.push_back((d, w));
        }
    }

    /// Forget queued digests (final, or withdrawn): a proposal naming one
    /// would be refused by every honest validator.
    fn drop_payload(&mut self, ds: &[Digest]) {
        if ds.is_empty() {
            return;
        }
        let gone: BTreeSet<Digest> = ds.iter().copied().collect();
        self.payload.retain(|(d, _)| !gone.contains(d));
        for d in &gone {
            self.weights.remove(d);
        }
    }

    /// An accepted proposal carries `b.payload`: none of it is proposed
    /// again while the block may still be certified.
    fn take_in_flight(&mut self, b: &Block<S>) {
        if b.payload.is_empty() || self.in_flight.contains_key(&b.view) {
            return;
        }
        let carried: BTreeSet<Digest> = b.payload.iter().copied().collect();
        self.payload.retain(|(d, _)| !carried.contains(d));
        // Weight 0: seen in a peer's block, never offered to us.
        let with_weights: Vec<(Digest, u32)> = b
            .payload
            .iter()
            .map(|d| {
                let w = *self.weights.entry(*d).or_insert(0);
                (*d, w)
            })
            .collect();
        self.in_flight.insert(b.view, (b.id, with_weights));
    }

    /// A TC for `view` ended it: the payload of proposals of views up to
    /// `view` whose blocks we never saw certified goes back to the front of
    /// the queue at once (a block certified elsewhere meanwhile may carry
    /// it too: execution runs a batch once, and a digest that became final
    /// leaves the queue when its block commits).
    fn return_abandoned(&mut self, view: View) {
        let upto = view + 1;
        let mut dead: Vec<View> = Vec::new();
        for (v, (id, _)) in self.in_flight.range(..upto) {
            if !self.certified.contains(id) {
                dead.push(*v);
            }
        }
        for v in dead.into_iter().rev() {
            if let Some((_, ds)) = self.in_flight.remove(&v) {
                // Only digests offered to us come back (with their weight
                // now): one we never got (its certificate never reached
                // our batcher) would make our own proposal unacceptable to
                // every validator that lacks it too (found by the
                // simulator, seed 20015 at n=10).
                for (d, _) in ds.into_iter().rev() {
                    match self.weights.get(&d).copied() {
                        Some(w) if w > 0 => {
                            self.metrics.payload_returned += 1;
                            self.payload.push_front((d, w));
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn request_sync(&mut self, to: u32, block: Digest) {
        if to == self.cfg.me {
            return;
        }
        self.metrics.sync_requests += 1;
        self.send(
            to,
            Message::SyncRequest {
                block,
                max: SYNC_BLOCKS_MAX as u32,
            },
        );
    }

    // ---- messages ----

    fn on_message(&mut self, from: u32, msg: Message<S>) {
        if !in_range(&msg) {
            return self.reject("view or height out of range");
        }
        let msg_epoch = match &msg {
            Message::Proposal(p) => Some(p.block.epoch),
            Message::Vote(v) => Some(v.epoch),
            Message::Timeout(t) => Some(t.epoch),
            Message::Certificates { high_qc, .. } => Some(high_qc.epoch),
            _ => None,
        };
        if let Some(e) = msg_epoch {
            if e < self.cfg.epoch {
                // The sender is in a past epoch: give it the proof that ended it.
                if let Some(p) = self.epoch_proofs.get(&e).cloned() {
                    if from != self.cfg.me {
                        self.send(from, Message::EpochProof(p));
                    }
                }
                return self.reject("past epoch");
            }
            if e > self.cfg.epoch {
                return self.reject("future epoch");
            }
        }
        match msg {
            Message::EpochProof(p) => self.on_epoch_proof(from, p),
            Message::Proposal(p) => self.on_proposal(from, p),
            Message::Vote(v) => self.on_vote(from, v),
            Message::Timeout(t) => self.on_timeout(from, t),
            Message::Certificates { high_qc, tc } => {
                // A timeout certificate of a view we are past (or already
                // hold one for) tells us nothing: not checked, so a peer
                // replaying or recombining old timeouts costs no pairings.
                let tc = tc.filter(|tc| {
                    tc.view >= self.view && self.last_tc.as_ref().is_none_or(|t| t.view < tc.view)
                });
                if !self.check_qc(&high_qc) {
                    return self.reject("bad certificate");
                }
                if let Some(tc) = &tc {
                    if !self.check_tc(tc) {
                        return self.reject("bad timeout certificate");
                    }
                }
                self.on_qc(&high_qc, from);
                if let Some(tc) = &tc {
                    self.on_tc(tc);
                }
            }
            Message::SyncRequest { block, max } => {
                let max = (max as usize).min(SYNC_BLOCKS_MAX);
                let mut blocks = Vec::new();
                let mut cur = self.blocks.get(&block);
                while let Some(b) = cur {
                    if blocks.len() >= max || b.height == 0 {
                        break;
                    }
                    blocks.push(b.clone());
                    cur = self.blocks.get(&b.parent);
                }
                if !blocks.is_empty() {
                    self.send(from, Message::SyncResponse { blocks });
                }
            }
            Message::SyncResponse { blocks } => self.on_sync_response(from, blocks),
        }
    }

    fn on_proposal(&mut self, from: u32, p: Proposal<S>) {
        let b = &p.block;
        if let Err(why) = self.check_block_shape(b) {
            return self.reject(why);
        }
        if b.proposer != from {
            return self.reject("proposal not from its proposer");
        }
        if b.view > self.view + VIEW_AHEAD_MAX {
            return self.reject("view too far ahead");
        }
        if b.height <= self.committed.height {
            return; // old news
        }
        match self.proposal_seen.get(&b.view) {
            Some(id) if *id != b.id => return self.reject("equivocating proposal"),
            _ => {}
        }
        if !self.check_qc(&b.justify) && !self.mutated(Mutation::SkipCertCheck) {
            return self.reject("bad certificate");
        }
        if let Some(tc) = &p.tc {
            if tc.view + 1 != b.view || !self.check_tc(tc) {
                return self.reject("bad timeout certificate");
            }
        }
        let justify = b.justify.clone();
        self.on_qc(&justify, from);
        if let Some(tc) = &p.tc {
            self.on_tc(tc);
        }
        if !self.blocks.contains_key(&p.block.parent) {
            // Block sync: fetch the parent chain, retry when it arrives.
            if self.pending.len() >= PENDING_PROPOSALS_MAX {
                let first = *self.pending.keys().next().expect("non-empty");
                self.pending.remove(&first);
            }
            let parent = p.block.parent;
            self.pending.insert(p.block.id, (from, p));
            self.request_sync(from, parent);
            return;
        }
        let b = p.block;
        if self.leader(b.view, &b.parent) != b.proposer {
            return self.reject("proposer is not the leader");
        }
        if self
            .blocks
            .get(&b.parent)
            .is_some_and(|parent| b.time_ms < parent.time_ms)
        {
            return self.reject("block time before its parent's");
        }
        self.proposal_seen.insert(b.view, b.id);
        self.take_in_flight(&b);
        if let std::collections::btree_map::Entry::Vacant(e) = self.blocks.entry(b.id) {
            e.insert(b.clone());
            self.out.push(Effect::PersistBlock(b.clone()));
        }
        // Votes may have beaten the proposal here: now we can extend it.
        self.maybe_propose();
        self.maybe_vote(from, Proposal { block: b, tc: p.tc });
    }

    /// Vote for `p` (already accepted) if the voting rule allows, once our
    /// own state root for the height it names is known and equal to its.
    /// Whether the (test-only) mutation `m` is on.
    #[allow(unused_variables)]
    fn mutated(&self, m: Mutation) -> bool {
        #[cfg(any(test, feature = "test-utils"))]
        {
            self.cfg.mutation == m
        }
        #[cfg(not(any(test, feature = "test-utils")))]
        {
            false
        }
    }

    fn maybe_vote(&mut self, from: u32, p: Proposal<S>) {
        let b = &p.block;
        if self.diverged.is_some() {
            return;
        }
        // J§4 "Voting rule": vote once per view, only in the current view,
        // and only if the block extends the previous view's QC or a TC for
        // the previous view with qc.view >= max high-QC view in the TC.
        let extends = b.justify.view + 1 == b.view
            || p.tc
                .as_ref()
                .is_some_and(|tc| tc.view + 1 == b.view && b.justify.view >= tc.max_high_qc_view());
        if !(b.view == self.view && b.view > self.last_voted_view && extends) {
            return;
        }
        if b.time_ms > self.now_ms.saturating_add(MAX_CLOCK_AHEAD_MS) {
            // Its time runs ahead of our clock: not ours to certify.
            return self.reject("block time ahead of our clock");
        }
        if self.cfg.state_roots {
            let sh = state_height(b.height);
            match self.roots.get(&sh) {
                None => {
                    // Execution has not reached it yet: vote when it does.
                    self.deferred = Some((from, p));
                    return;
                }
                Some(ours) if *ours != b.state_root && !self.mutated(Mutation::SkipRootCheck) => {
                    // Not ours to certify. (Only a *finalized* header that
                    // disagrees means our state diverged: `check_claim`.)
                    return self.reject("state root differs from ours");
                }
                Some(_) => {}
            }
        }
        {
            self.last_voted_view = b.view;
            self.voted_block = Some(b.id);
            // Persist before the vote leaves (driver contract).
            self.out.push(Effect::PersistSafety(self.safety()));
            let m = QuorumCert::<S>::vote_message(
                self.cfg.chain_id,
                self.cfg.epoch,
                b.view,
                &b.id,
                b.height,
            );
            let vote = Vote {
                epoch: self.cfg.epoch,
                view: b.view,
                block: b.id,
                height: b.height,
                voter: self.cfg.me,
                sig: S::sign(&self.signer, m.as_bytes()),
            };
            self.metrics.votes += 1;
            let next = self.leader(b.view + 1, &b.id);
            self.send(next, Message::Vote(vote));
        }
    }

    /// Our state after `height` is not the one the others claim: stop
    /// voting, proposing and timing out for good, and say so.
    fn diverge(&mut self, height: u64, ours: Digest, claimed: Digest) {
        if self.diverged.is_some() {
            return;
        }
        self.diverged = Some((height, ours, claimed));
        self.metrics.diverged = true;
        self.out.push(Effect::Diverged {
            height,
            ours,
            claimed,
        });
    }

    /// Our execution reached `height` with `root`: compare it with what
    /// finalized headers claimed for it, and resume a proposal or a vote
    /// that waited for it.
    fn on_executed(&mut self, height: u64, root: Digest) {
        self.roots.insert(height, root);
        let floor = height.saturating_sub(4 * STATE_LAG);
        self.roots = self.roots.split_off(&floor);
        if let Some(claimed) = self.claims.remove(&height) {
            if claimed != root {
                self.diverge(height, root, claimed);
            }
        }
        self.claims = self.claims.split_off(&floor);
        if let Some((from, p)) = self.deferred.take() {
            if p.block.view == self.view {
                self.maybe_vote(from, p);
            }
        }
        self.maybe_propose();
    }

    fn on_caught_up(&mut self, blocks: Vec<Block<S>>) {
        let Some(b) = blocks.last().cloned() else {
            return;
        };
        if b.height <= self.committed.height || b.epoch != self.cfg.epoch || b.compute_id() != b.id
        {
            return;
        }
        // The blocks below it, for the leader schedule (only a linked
        // chain down from it).
        let mut want = b.parent;
        for x in blocks.iter().rev().skip(1) {
            if x.id != want || x.compute_id() != x.id {
                break;
            }
            want = x.parent;
            self.blocks.insert(x.id, x.clone());
        }
        self.exec_floor = self.exec_floor.max(b.height);
        self.blocks.insert(b.id, b.clone());
        // Claims for heights now executed were checked by the driver
        // against the certified roots it executed to.
        self.claims = self.claims.split_off(&(b.height + 1));
        self.committed = b;
        self.prune();
        self.retry_pending();
        self.maybe_propose();
    }

    /// A finalized block claims the state root of its state height: check
    /// it now, or when we get there.
    fn check_claim(&mut self, b: &Block<S>) {
        if !self.cfg.state_roots || b.height == 0 {
            return;
        }
        let sh = state_height(b.height);
        match self.roots.get(&sh) {
            Some(ours) if *ours != b.state_root => {
                let ours = *ours;
                self.diverge(sh, ours, b.state_root);
            }
            Some(_) => {}
            None if sh > self.exec_floor => {
                self.claims.insert(sh, b.state_root);
            }
            None => {}
        }
    }

    fn on_vote(&mut self, from: u32, v: Vote<S>) {
        if v.voter != from {
            return self.reject("vote not from its voter");
        }
        if v.epoch != self.cfg.epoch {
            return self.reject("wrong epoch");
        }
        if v.view + 1 < self.view || v.view > self.view + VIEW_AHEAD_MAX {
            return self.reject("vote view out of range");
        }
        if self.qc_done.contains(&v.view) {
            return;
        }
        let per_view = self.votes.entry(v.view).or_default();
        if let Some(prev) = per_view.get(&v.voter) {
            if prev.0 != v.block {
                self.reject("double vote");
            } else {
                self.reject("duplicate vote");
            }
            return;
        }
        per_view.insert(v.voter, (v.block, v.height, v.sig));
        // Votes for the same block and height.
        let same: Vec<(usize, S::Sig)> = per_view
            .iter()
            .filter(|(_, (b, h, _))| *b == v.block && *h == v.height)
            .map(|(i, (_, _, s))| (*i as usize, s.clone()))
            .collect();
        let idx: Vec<usize> = same.iter().map(|(i, _)| *i).collect();
        if !S::has_quorum(&self.cfg.committee, &idx) {
            return;
        }
        let m = QuorumCert::<S>::vote_message(
            self.cfg.chain_id,
            self.cfg.epoch,
            v.view,
            &v.block,
            v.height,
        );
        match S::aggregate(&self.cfg.committee, m.as_bytes(), &same) {
            Ok(cert) => {
                self.qc_done.insert(v.view);
                self.metrics.qcs_formed += 1;
                let qc = QuorumCert {
                    epoch: self.cfg.epoch,
                    view: v.view,
                    block: v.block,
                    height: v.height,
                    cert: Some(cert.clone()),
                };
                self.verified.insert(m, cert);
                self.certified.insert(qc.block);
                self.on_qc(&qc, from);
                if !self.blocks.contains_key(&qc.block) {
                    self.request_sync(from, qc.block);
                }
            }
            Err(bad) => {
                let per_view = self.votes.entry(v.view).or_default();
                for i in bad {
                    per_view.remove(&(i as u32));
                    *self.metrics.rejected.entry("bad signature").or_insert(0) += 1;
                }
            }
        }
    }

    fn on_timeout(&mut self, from: u32, t: Timeout<S>) {
        if t.voter != from {
            return self.reject("timeout not from its voter");
        }
        if t.epoch != self.cfg.epoch {
            return self.reject("wrong epoch");
        }
        if t.view > self.view + VIEW_AHEAD_MAX || t.high_qc.view >= t.view {
            return self.reject("timeout view out of range");
        }
        if t.view < self.view {
            // The sender is behind: help it catch up. What we send is
            // public and checked by the receiver, so the timeout is not
            // (the core charges the peer for the message).
            if from != self.cfg.me {
                let tc = self.last_tc.clone().filter(|tc| tc.view >= t.view);
                self.send(
                    from,
                    Message::Certificates {
                        high_qc: self.high_qc.clone(),
                        tc,
                    },
                );
            }
            return;
        }
        if self
            .timeouts
            .get(&t.view)
            .is_some_and(|pv| pv.contains_key(&t.voter))
        {
            // Checked before any signature work.
            return self.reject("duplicate timeout");
        }
        let m = timeout_message(self.cfg.chain_id, t.epoch, t.view, t.high_qc.view);
        if !S::verify(&self.cfg.committee, from as usize, m.as_bytes(), &t.sig) {
            return self.reject("bad signature");
        }
        if !self.check_qc(&t.high_qc) {
            return self.reject("bad certificate");
        }
        self.on_qc(&t.high_qc, from);
        let per_view = self.timeouts.entry(t.view).or_default();
        per_view.entry(t.voter).or_insert((t.high_qc.view, t.sig));
        let voters: Vec<usize> = per_view.keys().map(|&i| i as usize).collect();
        if t.view >= self.view && S::has_quorum(&self.cfg.committee, &voters) {
            let entries: Vec<(u32, View, S::Sig)> = per_view
                .iter()
                .map(|(i, (hv, s))| (*i, *hv, s.clone()))
                .collect();
            let tc = TimeoutCert {
                epoch: self.cfg.epoch,
                view: t.view,
                entries,
            };
            self.metrics.tcs_formed += 1;
            self.out.push(Effect::Broadcast(Message::Certificates {
                high_qc: self.high_qc.clone(),
                tc: Some(tc.clone()),
            }));
            self.on_tc(&tc);
        }
    }

    /// A commit proof from a peer (sent when we are in a past epoch): treat
    /// its child as a certified block and its certificate as a QC.
    fn on_epoch_proof(&mut self, from: u32, p: CommitProof<S>) {
        if p.child.epoch != self.cfg.epoch {
            return self.reject("wrong epoch");
        }
        if p.child.height <= self.committed.height {
            // Finalizes nothing new. (Checked first: a replayed old proof
            // cost a certificate check and sent a sync request for blocks
            // long pruned, to a peer that could answer with the same proof
            // again; the simulator's epoch-proof-replay strategy found it.)
            return self.reject("stale commit proof");
        }
        if self.last_epoch_proof == Some(p.child.id)
            && p.child.height <= self.committed.height.saturating_add(1)
        {
            // The same proof again, and what it finalizes (the child's
            // parent) is committed: checked once already, nothing to gain.
            // A proof that checked but could not take effect yet (its
            // blocks were missing) is checked and applied again.
            return self.reject("duplicate commit proof");
        }
        if let Err(why) = self.check_block_shape(&p.child) {
            return self.reject(why);
        }
        if p.verify_direct(&self.cfg.committee, self.cfg.chain_id)
            .is_err()
            || !self.check_qc(&p.child.justify)
            || !self.check_qc(&p.child_qc)
        {
            return self.reject("bad commit proof");
        }
        self.last_epoch_proof = Some(p.child.id);
        self.on_qc(&p.child_qc, from);
        if !self.blocks.contains_key(&p.child.id) {
            self.orphans.insert(p.child.id, p.child.clone());
            self.connect_orphans(from);
        }
        let qc = p.child_qc.clone();
        self.try_commit(&qc, from);
    }

    fn on_sync_response(&mut self, from: u32, blocks: Vec<Block<S>>) {
        if blocks.len() > SYNC_BLOCKS_MAX {
            return self.reject("sync response too large");
        }
        for b in blocks {
            if self.blocks.contains_key(&b.id) || b.height <= self.committed.height {
                continue;
            }
            if let Err(why) = self.check_block_shape(&b) {
                return self.reject(why);
            }
            // Only certified blocks are accepted from sync: the block must be
            // certified by a QC we know (the justify of a block we hold or
            // wait for) — checked when it connects, below.
            if !self.check_qc(&b.justify) {
                return self.reject("bad certificate");
            }
            if self.orphans.len() >= ORPHANS_MAX {
                self.orphans.clear();
            }
            self.orphans.insert(b.id, b);
        }
        self.connect_orphans(from);
    }

    fn is_certified(&self, id: &Digest) -> bool {
        self.high_qc.block == *id
            || self.certified.contains(id)
            || self.blocks.values().any(|b| b.parent == *id)
            || self.orphans.values().any(|b| b.parent == *id)
            || self.pending.values().any(|(_, p)| p.block.parent == *id)
    }

    /// Proposals that waited for a parent we now hold go on.
    fn retry_pending(&mut self) {
        let ready: Vec<Digest> = self
            .pending
            .iter()
            .filter(|(_, (_, p))| self.blocks.contains_key(&p.block.parent))
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            if let Some((f, p)) = self.pending.remove(&id) {
                self.on_proposal(f, p);
            }
        }
    }

    fn connect_orphans(&mut self, from: u32) {
        loop {
            let ready: Vec<Digest> = self
                .orphans
                .values()
                .filter(|b| self.blocks.contains_key(&b.parent))
                .map(|b| b.id)
                .collect();
            if ready.is_empty() {
                break;
            }
            for id in ready {
                let b = self.orphans.remove(&id).expect("listed above");
                let parent_h = self.blocks[&b.parent].height;
                if parent_h + 1 != b.height || !self.is_certified(&b.id) {
                    self.reject("sync block does not connect");
                    continue;
                }
                self.metrics.synced_blocks += 1;
                self.out.push(Effect::PersistBlock(b.clone()));
                self.blocks.insert(b.id, b);
            }
        }
        // Ask for the parent of the lowest orphan still dangling.
        if let Some(b) = self.orphans.values().min_by_key(|b| b.height) {
            if !self.orphans.contains_key(&b.parent) {
                let p = b.parent;
                self.request_sync(from, p);
            }
        }
        self.retry_pending();
        let hq = self.high_qc.clone();
        self.try_commit(&hq, from);
        self.maybe_propose();
    }
}
