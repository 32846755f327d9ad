//! One simulated cluster: validators, network, faults, checkers.
//!
//! Everything is driven by [`SimConfig::seed`] through [`Rng`]; all maps are
//! ordered, so the same config gives the same trace bit for bit
//! ([`Outcome::trace_hash`]).

use crate::keys::SimScheme;
use crate::rng::Rng;
use plume_consensus::engine::RETAIN_BLOCKS;
use plume_consensus::{
    Block, CommitProof, CommitRule, Config, Effect, Engine, Input, Message, Mutation, QuorumCert,
    Recovered, SafetyState, Timer, Vote,
};
use plume_crypto::Digest;
use plume_mempool::{Batcher, ExecJob};
use plume_protocol::batch::{BatchCertificate, BatchCommittee};
use std::collections::{BTreeMap, BTreeSet};

mod batches;
mod catchup;

/// A block in the simulated block store, with what catch-up serves: its
/// commit proof and its batches (`None`: final in an earlier block).
#[derive(Debug)]
struct StoredBlock<S: SimScheme> {
    block: Block<S>,
    proof: CommitProof<S>,
    batches: Vec<Option<plume_mempool::CertifiedBatch>>,
}

/// Virtual time between payload ticks (each tick hands every validator a few
/// batch digests).
/// The virtual clock's wall time at simulated time 0 (2026-01-01), for
/// block times.
const SIM_EPOCH_MS: u64 = 1_767_225_600_000;

pub const TICK_US: u64 = 20_000;
/// A run stops after this many events (a guard against a livelock making a
/// seed run forever; reaching it is reported as a liveness violation).
pub const EVENTS_MAX: u64 = 5_000_000;
/// Sync requests a flooding validator adds to each message it sends.
pub const FLOOD_PER_MESSAGE: usize = 8;

/// What a faulty validator does: a named, seedable strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// Follows the protocol.
    Honest,
    /// As leader, sends two different blocks to two halves of the peers.
    Equivocate,
    /// Votes for its block and for a made-up one in the same view.
    DoubleVote,
    /// Two instances run with the same key (Twins), each with its own
    /// place in every partition.
    Twin,
    /// Also votes for random blocks nobody proposed.
    UnknownVotes,
    /// Its votes and timeouts carry signatures over the wrong message.
    BadSignatures,
    /// Never sends proposals or votes.
    Withhold,
    /// As leader, justifies its block with a forged certificate: its
    /// parent's, relabelled to the previous view (so the block looks like
    /// a two-chain), the signatures of the genuine one.
    ForgedCert,
    /// Its certificates (in timeouts and view-sync messages) claim every
    /// validator signed, over the aggregate of the real signers.
    ForgedSigners,
    /// Votes and timeouts validly signed, but for another chain id.
    CrossChain,
    /// Votes and timeouts for views 10^9 ahead and `u64::MAX`.
    FarFutureView,
    /// Adds [`FLOOD_PER_MESSAGE`] sync requests (random and real blocks,
    /// `max = u32::MAX`) to every consensus message it sends.
    SyncFlood,
    /// Sends every commit proof it ever saw to everyone, as epoch proofs,
    /// again and again.
    EpochProofReplay,
    /// As leader, puts a made-up state root in its headers.
    WrongRoot,
    /// As author, sends half its peers one version of each batch and the
    /// other half a version with one signature flipped (the same bodies).
    TwoBatches,
    /// As author, sends each batch to just enough peers to certify it and
    /// serves no fetch.
    WithholdBatches,
    /// As leader, names a batch digest nobody certified.
    UncertifiedDigest,
    /// As author, batches transactions whose signatures do not verify and
    /// claims they are valid.
    LyingVerdict,
}

/// Every Byzantine strategy, in the order `--strategy` names them.
pub const BYZANTINE_BEHAVIORS: [Behavior; 17] = [
    Behavior::Equivocate,
    Behavior::DoubleVote,
    Behavior::Twin,
    Behavior::UnknownVotes,
    Behavior::BadSignatures,
    Behavior::Withhold,
    Behavior::ForgedCert,
    Behavior::ForgedSigners,
    Behavior::CrossChain,
    Behavior::FarFutureView,
    Behavior::SyncFlood,
    Behavior::EpochProofReplay,
    Behavior::WrongRoot,
    Behavior::TwoBatches,
    Behavior::WithholdBatches,
    Behavior::UncertifiedDigest,
    Behavior::LyingVerdict,
];

impl Behavior {
    /// The strategy's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Behavior::Honest => "honest",
            Behavior::Equivocate => "equivocate",
            Behavior::DoubleVote => "double-vote",
            Behavior::Twin => "twins",
            Behavior::UnknownVotes => "unknown-votes",
            Behavior::BadSignatures => "bad-signatures",
            Behavior::Withhold => "withhold",
            Behavior::ForgedCert => "forged-cert",
            Behavior::ForgedSigners => "forged-signers",
            Behavior::CrossChain => "cross-chain",
            Behavior::FarFutureView => "far-future-view",
            Behavior::SyncFlood => "sync-flood",
            Behavior::EpochProofReplay => "epoch-proof-replay",
            Behavior::WrongRoot => "wrong-root",
            Behavior::TwoBatches => "two-batches",
            Behavior::WithholdBatches => "withhold-batches",
            Behavior::UncertifiedDigest => "uncertified-digest",
            Behavior::LyingVerdict => "lying-verdict",
        }
    }

    /// The strategy named `name` (`random` is `None`).
    pub fn from_name(name: &str) -> Option<Behavior> {
        BYZANTINE_BEHAVIORS.into_iter().find(|b| b.name() == name)
    }
}

/// What the simulated disk keeps across a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persist {
    /// As the node: the safety state (durable before any later send, with
    /// the unexecuted blocks toward the high QC) and each finalized block
    /// once execution committed it, with its commit proof and state root.
    /// A crash loses what execution had not committed.
    Node,
    /// The node before the restart fix (review C3): the safety state
    /// without its blocks, the last committed block, no commit proof.
    CommittedOnly,
    /// DELIBERATELY UNSAFE: the fsync lies, no safety state survives a
    /// crash (mutation test: persist nothing before voting).
    Nothing,
}

/// A deliberately broken rule of batch certification (mutation tests of
/// the review's C1 and C2: the code before their fixes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BatchMutation {
    /// Every rule holds.
    #[default]
    None,
    /// DELIBERATELY UNSAFE (review C2): proposals reach the engine without
    /// the vote rule of certified batches (votes without availability).
    SkipVoteRule,
    /// DELIBERATELY UNSAFE (review C1): batch digests over the bodies
    /// only, signatures outside them.
    BodyOnlyDigest,
}

/// A network partition: validators in different groups cannot talk.
#[derive(Debug, Clone)]
pub struct Partition {
    /// Start, virtual µs.
    pub from_us: u64,
    /// End (healed), virtual µs.
    pub until_us: u64,
    /// Group of each instance (twins are two instances of one validator,
    /// see [`SimConfig::instances`]).
    pub group: Vec<u8>,
}

/// A crash and restart (from persisted state) of one validator (every
/// instance of it).
#[derive(Debug, Clone, Copy)]
pub struct Crash {
    /// Committee index.
    pub validator: u32,
    /// Crash time.
    pub at_us: u64,
    /// Restart time.
    pub restart_us: u64,
}

/// One simulation run's parameters. [`SimConfig::random`] derives a fault mix
/// from the seed.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of everything random in the run.
    pub seed: u64,
    /// Committee size.
    pub validators: usize,
    /// Behaviour per committee index.
    pub behaviors: Vec<Behavior>,
    /// One-way base latency.
    pub latency_us: u64,
    /// Extra uniform random latency (also reorders messages).
    pub jitter_us: u64,
    /// Drop probability (ppm) while faults are on.
    pub drop_ppm: u64,
    /// Duplication probability (ppm) while faults are on.
    pub dup_ppm: u64,
    /// Partitions (all healed by `fault_end_us`).
    pub partitions: Vec<Partition>,
    /// Crash/restarts (all restarted by `fault_end_us`).
    pub crashes: Vec<Crash>,
    /// When faults stop: drops/duplicates off, Byzantine validators go
    /// silent, partitions healed.
    pub fault_end_us: u64,
    /// After `fault_end_us`, every correct validator must finalize
    /// `liveness_blocks` new blocks within this much virtual time.
    pub liveness_bound_us: u64,
    /// See `liveness_bound_us`.
    pub liveness_blocks: u64,
    /// Engine commit rule (the unsafe one only in the mutation test).
    pub commit_rule: CommitRule,
    /// Engine leader reputation.
    pub leader_reputation: bool,
    /// Check every commit proof like an offline client would.
    pub check_commit_proofs: bool,
    /// End the run as soon as liveness is shown.
    pub stop_when_live: bool,
    /// Blocks per epoch (0 = no epoch changes). Each epoch has a fresh
    /// committee: the same validators with new keys.
    pub epoch_length: u64,
    /// What survives a crash.
    pub persist: Persist,
    /// A deliberately broken engine rule (mutation tests).
    pub mutation: Mutation,
    /// Byzantine validators keep attacking after the network faults stop
    /// (liveness is then shown during the attack).
    pub attack_after_faults: bool,
    /// Headers carry state roots and validators vote only on their own.
    pub state_roots: bool,
    /// Events before the run stops as a livelock ([`EVENTS_MAX`]).
    pub events_max: u64,
    /// A deliberately broken batch rule (mutation tests).
    pub batch_mutation: BatchMutation,
}

impl SimConfig {
    /// Base view timeout for the network of this config.
    pub fn base_timeout_us(&self) -> u64 {
        6 * (self.latency_us + self.jitter_us) + 5_000
    }

    /// The validator each instance runs: one per validator, two (adjacent)
    /// for a twin.
    pub fn instances(&self) -> Vec<u32> {
        instances_of(&self.behaviors)
    }

    /// A fault mix drawn from `seed`: latency 1–10 ms with jitter, drops,
    /// duplicates, healing partitions, crash/restarts (sometimes of every
    /// validator at once) and `byzantine` validators with random Byzantine
    /// strategies, faults for `fault_window_us` of virtual time. With a
    /// twin, half the seeds run Twins proper: the window is cut into rounds
    /// of about one view, and in each round the instances are split in two
    /// with the twins on opposite sides; the split of round `r` is digit
    /// `r` of the seed in base 2^(instances - 2), so consecutive seeds
    /// enumerate every split sequence of the first rounds.
    pub fn random(seed: u64, validators: usize, byzantine: usize, fault_window_us: u64) -> Self {
        Self::random_with(seed, validators, byzantine, fault_window_us, None)
    }

    /// [`SimConfig::random`] with every Byzantine validator following
    /// `strategy` (when given).
    pub fn random_with(
        seed: u64,
        validators: usize,
        byzantine: usize,
        fault_window_us: u64,
        strategy: Option<Behavior>,
    ) -> Self {
        let mut r = Rng::new(seed, 1);
        let n = validators;
        let latency_us = r.range(1_000, 10_000);
        let jitter_us = r.below(latency_us + 1);
        let drop_ppm = [0, 10_000, 50_000, 150_000][r.below(4) as usize];
        let dup_ppm = [0, 20_000, 100_000][r.below(3) as usize];
        let mut behaviors = vec![Behavior::Honest; n];
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..byzantine.min(n) {
            let j = i + r.below((n - i) as u64) as usize;
            idx.swap(i, j);
            let pick = BYZANTINE_BEHAVIORS[r.below(BYZANTINE_BEHAVIORS.len() as u64) as usize];
            behaviors[idx[i]] = strategy.unwrap_or(pick);
        }
        let insts = instances_of(&behaviors);
        let m = insts.len();
        let base_timeout = 6 * (latency_us + jitter_us) + 5_000;
        let mut partitions = Vec::new();
        let twins: Vec<usize> = (1..m).filter(|&k| insts[k] == insts[k - 1]).collect();
        if !twins.is_empty() && r.below(2) == 0 {
            // Twins proper: per-round splits, twins apart.
            let round = 2 * base_timeout;
            let free: Vec<usize> = (0..m)
                .filter(|k| !twins.iter().any(|&t| t == *k || t - 1 == *k))
                .collect();
            let choices = 1u64 << free.len().min(16);
            let mut digits = seed;
            let mut from_us = r.below(round);
            while from_us + round <= fault_window_us {
                let pick = digits % choices;
                digits /= choices;
                if digits == 0 {
                    digits = r.next_u64();
                }
                let mut group = vec![0u8; m];
                for (bit, &k) in free.iter().enumerate() {
                    group[k] = ((pick >> bit) & 1) as u8;
                }
                for &t in &twins {
                    group[t - 1] = 0;
                    group[t] = 1;
                }
                partitions.push(Partition {
                    from_us,
                    until_us: from_us + round,
                    group,
                });
                from_us += round;
            }
        } else if r.below(2) == 0 {
            for _ in 0..r.range(1, 3) {
                let from_us = r.below(fault_window_us / 2);
                let until_us = (from_us + r.range(50_000, 400_000)).min(fault_window_us);
                let groups = r.range(2, 3) as u8;
                let group = (0..m).map(|_| r.below(u64::from(groups)) as u8).collect();
                partitions.push(Partition {
                    from_us,
                    until_us,
                    group,
                });
            }
        }
        let mut crashes = Vec::new();
        match r.below(4) {
            0 | 1 => {
                for _ in 0..r.range(1, 2) {
                    let honest: Vec<u32> = (0..n as u32)
                        .filter(|&i| behaviors[i as usize] == Behavior::Honest)
                        .collect();
                    if honest.is_empty() {
                        break;
                    }
                    let validator = honest[r.below(honest.len() as u64) as usize];
                    let at_us = r.below(fault_window_us / 2);
                    let restart_us = (at_us + r.range(20_000, 300_000)).min(fault_window_us);
                    crashes.push(Crash {
                        validator,
                        at_us,
                        restart_us,
                    });
                }
            }
            2 => {
                // Every validator down at once (a power cut, an upgrade).
                let at = r.below(fault_window_us / 2);
                for validator in 0..n as u32 {
                    let at_us = at + r.below(5_000);
                    let restart_us = (at_us + r.range(20_000, 200_000)).min(fault_window_us);
                    crashes.push(Crash {
                        validator,
                        at_us,
                        restart_us,
                    });
                }
            }
            _ => {}
        }
        let mut cfg = SimConfig {
            seed,
            validators: n,
            behaviors,
            latency_us,
            jitter_us,
            drop_ppm,
            dup_ppm,
            partitions,
            crashes,
            fault_end_us: fault_window_us,
            liveness_bound_us: 0,
            liveness_blocks: 3,
            commit_rule: CommitRule::TwoChain,
            leader_reputation: true,
            check_commit_proofs: true,
            stop_when_live: true,
            epoch_length: if r.below(2) == 0 { r.range(4, 12) } else { 0 },
            persist: Persist::Node,
            mutation: Mutation::None,
            attack_after_faults: true,
            state_roots: true,
            events_max: EVENTS_MAX,
            batch_mutation: BatchMutation::None,
        };
        // Worst case after faults stop: timeouts at their cap and up to about
        // 2n views before two correct leaders follow each other (leader
        // reputation has no certified history to go on before that).
        cfg.liveness_bound_us = (2 * n as u64 + 10) * 8 * cfg.base_timeout_us() + 1_000_000;
        cfg
    }

    /// No faults at all, fixed latency: for measuring finality latency.
    pub fn fault_free(seed: u64, validators: usize, latency_us: u64, blocks: u64) -> Self {
        let mut cfg = SimConfig {
            seed,
            validators,
            behaviors: vec![Behavior::Honest; validators],
            latency_us,
            jitter_us: 0,
            drop_ppm: 0,
            dup_ppm: 0,
            partitions: Vec::new(),
            crashes: Vec::new(),
            fault_end_us: 0,
            liveness_bound_us: 0,
            liveness_blocks: blocks,
            commit_rule: CommitRule::TwoChain,
            leader_reputation: true,
            check_commit_proofs: true,
            stop_when_live: true,
            epoch_length: 0,
            persist: Persist::Node,
            mutation: Mutation::None,
            attack_after_faults: false,
            state_roots: true,
            events_max: EVENTS_MAX,
            batch_mutation: BatchMutation::None,
        };
        cfg.liveness_bound_us = (blocks + 10) * 20 * cfg.base_timeout_us();
        cfg
    }
}

fn instances_of(behaviors: &[Behavior]) -> Vec<u32> {
    let mut v = Vec::new();
    for (i, b) in behaviors.iter().enumerate() {
        v.push(i as u32);
        if *b == Behavior::Twin {
            v.push(i as u32);
        }
    }
    v
}

/// Which checker fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    /// Two correct validators finalized different blocks at one height.
    Agreement,
    /// Two correct validators reached different state roots after one
    /// height, or one saw a finalized header disagree with its own state.
    StateRoot,
    /// A finalized block does not extend the validator's previous one.
    Validity,
    /// A commit proof does not check out.
    Certificate,
    /// A correct validator signed two different votes in one view.
    Equivocation,
    /// Not enough blocks finalized after faults stopped.
    Liveness,
}
/// A checker failure.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Which checker.
    pub kind: ViolationKind,
    /// Virtual time.
    pub at_us: u64,
    /// What happened.
    pub detail: String,
}

/// Result of one run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Highest height finalized by a correct validator.
    pub blocks_finalized: u64,
    /// Checker failures (the run stops at the first safety violation).
    pub violations: Vec<Violation>,
    /// Hash of every event and finalization, in order.
    pub trace_hash: u64,
    /// Events processed.
    pub events: u64,
    /// Virtual time at the end.
    pub end_us: u64,
    /// Peer messages the engines rejected (bad signatures, equivocations...).
    pub rejected_messages: u64,
    /// Timeouts broadcast by correct validators (engine metrics of the
    /// instances running at the end).
    pub timeouts: u64,
    /// Lowest epoch any correct validator ended in.
    pub min_epoch: u64,
    /// Proposal-to-finality latency samples (µs), one per block per correct
    /// validator, for blocks proposed after the faults stopped.
    pub finality_latency_us: Vec<u64>,
    /// Transactions executed (most of any correct validator).
    pub txs_executed: u64,
    /// Receipts with status Success, summed over correct validators.
    pub txs_succeeded: u64,
    /// Of those, settlements (both parties signed).
    pub settlements_succeeded: u64,
    /// Of those, transactions a mixed-order key signed.
    pub mixed_succeeded: u64,
    /// Submissions refused (broken signatures, a full pool).
    pub rejected_txs: u64,
    /// Proposals refused by the vote rule of certified batches.
    pub proposals_refused: u64,
    /// Peers' batches, votes and certificates refused by the node's checks.
    pub refused_bulk: u64,
    /// Evidence of lying batch authors recorded.
    pub evidence: u64,
    /// Catch-ups from a peer's store that executed blocks.
    pub catch_ups: u64,
    /// Catch-up segments refused.
    pub refused_segments: u64,
}

/// The simulated disk of one instance: what survives a crash.
#[derive(Debug)]
struct Disk<S: SimScheme> {
    safety: Option<SafetyState<S>>,
    /// Last block execution committed, its commit proof and state root.
    committed: Block<S>,
    /// The last committed blocks, lowest first, ending at `committed` (the
    /// node reads the same from its block store at start).
    chain: std::collections::VecDeque<Block<S>>,
    proof: Option<CommitProof<S>>,
    root: Digest,
    /// (height, block, root) of the last committed blocks (the node reads
    /// them back from its block store at start).
    recent_roots: BTreeMap<u64, (Digest, Digest)>,
    /// The batch log.
    log: batches::Log,
    /// The block store (every committed block).
    store: BTreeMap<u64, std::sync::Arc<StoredBlock<S>>>,
    /// The store's KV (the node's `Store` over it while running).
    kv: plume_storage::MemoryKv,
    /// Transactions committed.
    txs_committed: u64,
}

#[derive(Debug)]
struct Instance<S: SimScheme> {
    index: u32,
    behavior: Behavior,
    engine: Option<Engine<S>>,
    /// The node's batcher (pool, batches, certificates), while running.
    batcher: Option<Batcher<S>>,
    /// The node's store over the disk's KV, while running (staged writes
    /// are lost in a crash).
    store: Option<plume_storage::Store<plume_storage::MemoryKv>>,
    /// Batches executed since the last start (memory only, as the node's).
    executed_batches: BTreeSet<Digest>,
    /// Committed height when the faults stopped.
    exec_at_fault_end: u64,
    /// Catch-up from peers' stores (memory only).
    catchup: catchup::CatchUp,
    disk: Disk<S>,
    /// Incremented at each crash (and view timer): stale events are void.
    timer_gen: u64,
    life: u64,
    /// Virtual time execution is busy until.
    exec_busy_until: u64,
    tip: (u64, Digest),
    height_at_fault_end: u64,
    /// Commit proofs seen (the epoch-proof replayer's ammunition).
    seen_proofs: Vec<CommitProof<S>>,
}

#[derive(Debug)]
enum Ev<S: SimScheme> {
    Deliver {
        to: usize,
        from: u32,
        msg: Message<S>,
        /// The batch certificates a proposal carries.
        certs: Vec<BatchCertificate>,
    },
    Bulk {
        to: usize,
        from: u32,
        msg: batches::Bulk<S>,
    },
    Durable {
        inst: usize,
        life: u64,
    },
    Timer {
        inst: usize,
        view: u64,
        gen: u64,
    },
    Idle {
        inst: usize,
        view: u64,
        life: u64,
    },
    Executed {
        inst: usize,
        life: u64,
        job: ExecJob<S>,
    },
    Crash {
        inst: usize,
    },
    Restart {
        inst: usize,
    },
    Tick,
    FaultEnd,
}

struct World<S: SimScheme> {
    cfg: SimConfig,
    /// Committee and signers per epoch, generated on first use.
    epochs: Vec<(S::Committee, Vec<S::Signer>)>,
    insts: Vec<Instance<S>>,
    queue: BTreeMap<(u64, u64), Ev<S>>,
    seq: u64,
    now: u64,
    net: Rng,
    byz: Rng,
    trace: u64,
    finalized_at: BTreeMap<u64, Digest>,
    roots_at: BTreeMap<u64, Digest>,
    /// Votes correct validators signed: (validator, epoch, view) -> block.
    votes: BTreeMap<(u32, u64, u64), Digest>,
    proposed_at: BTreeMap<Digest, u64>,
    /// Parent of every block proposed in the run (checker's record).
    parents: BTreeMap<Digest, Digest>,
    violations: Vec<Violation>,
    faults_on: bool,
    latency: Vec<u64>,
    /// The committee as batch certificates see it, and its network keys.
    batch_committee: BatchCommittee,
    net_keys: Vec<plume_crypto::ed25519::SigningKey>,
    /// The workload's client accounts.
    accounts: Vec<batches::Account>,
    /// The workload's randomness.
    work: Rng,
    /// The workload's choice of transaction kind (its own stream, so the
    /// rest of a seed's schedule does not depend on it).
    kinds: Rng,
    rejected_txs: u64,
    refused_bulk: u64,
    proposals_refused: u64,
    evidence: u64,
    catchups: u64,
    refused_segments: u64,
    /// Signature checks of executed items (by leaf), done once each.
    sig_checked: BTreeMap<Digest, bool>,
    /// The ledger modules and the chain parameters.
    registry: plume_execution::Registry,
    params: plume_execution::Params,
    /// Hash of each height's transactions and receipts (the receipts
    /// checker's record).
    receipts_at: BTreeMap<u64, Digest>,
    /// Receipts with status Success, over correct validators' executions.
    txs_succeeded: u64,
    settlements_succeeded: u64,
    mixed_succeeded: u64,
}

fn mix(h: u64, x: u64) -> u64 {
    let mut z = (h ^ x).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn d64(d: &Digest) -> u64 {
    u64::from_le_bytes(d.0[..8].try_into().expect("8 bytes"))
}

fn fingerprint<S: SimScheme>(m: &Message<S>) -> u64 {
    match m {
        Message::Proposal(p) => mix(mix(1, p.block.view), d64(&p.block.id)),
        Message::Vote(v) => mix(mix(mix(2, v.view), d64(&v.block)), u64::from(v.voter)),
        Message::Timeout(t) => mix(mix(3, t.view), t.high_qc.view),
        Message::Certificates { high_qc, tc } => {
            mix(mix(4, high_qc.view), tc.as_ref().map_or(0, |t| t.view))
        }
        Message::SyncRequest { block, max } => mix(mix(5, d64(block)), u64::from(*max)),
        Message::SyncResponse { blocks } => mix(6, blocks.len() as u64),
        Message::EpochProof(p) => mix(7, d64(&p.child.id)),
    }
}

/// Run one simulated cluster under `cfg` with signature scheme `S`.
pub fn run<S: SimScheme>(cfg: &SimConfig) -> Outcome {
    let n = cfg.validators;
    assert!(
        n >= 1 && cfg.behaviors.len() == n,
        "behaviour per validator"
    );
    let epochs = vec![S::generate(n, cfg.seed)];
    let genesis = Block::<S>::genesis(cfg.seed);
    let params = batches::params(cfg.seed);
    let accounts = batches::accounts(cfg.seed, n);
    let (_, g_root) = batches::genesis_store(&params, &accounts, &genesis.id);
    let insts: Vec<Instance<S>> = cfg
        .instances()
        .into_iter()
        .map(|i| Instance {
            index: i,
            behavior: cfg.behaviors[i as usize],
            engine: None,
            disk: Disk {
                safety: None,
                committed: genesis.clone(),
                chain: [genesis.clone()].into_iter().collect(),
                proof: None,
                root: g_root,
                recent_roots: [(0, (genesis.id, g_root))].into_iter().collect(),
                log: Vec::new(),
                store: BTreeMap::new(),
                kv: batches::genesis_store(&params, &accounts, &genesis.id).0,
                txs_committed: 0,
            },
            batcher: None,
            store: None,
            executed_batches: BTreeSet::new(),
            exec_at_fault_end: 0,
            catchup: catchup::CatchUp::new(n, 0),
            timer_gen: 0,
            life: 0,
            exec_busy_until: 0,
            tip: (0, genesis.id),
            height_at_fault_end: 0,
            seen_proofs: Vec::new(),
        })
        .collect();
    let mut w = World {
        cfg: cfg.clone(),
        epochs,
        insts,
        queue: BTreeMap::new(),
        seq: 0,
        now: 0,
        net: Rng::new(cfg.seed, 2),
        byz: Rng::new(cfg.seed, 3),
        trace: cfg.seed,
        finalized_at: BTreeMap::new(),
        roots_at: [(0, g_root)].into_iter().collect(),
        votes: BTreeMap::new(),
        proposed_at: BTreeMap::new(),
        parents: BTreeMap::new(),
        violations: Vec::new(),
        faults_on: cfg.fault_end_us > 0,
        latency: Vec::new(),
        batch_committee: batches::batch_committee(cfg.seed, n),
        net_keys: (0..n as u32)
            .map(|i| batches::net_key(cfg.seed, i))
            .collect(),
        accounts,
        work: Rng::new(cfg.seed, 4),
        kinds: Rng::new(cfg.seed, 5),
        rejected_txs: 0,
        refused_bulk: 0,
        proposals_refused: 0,
        evidence: 0,
        catchups: 0,
        refused_segments: 0,
        sig_checked: BTreeMap::new(),
        registry: plume_execution::standard(),
        params,
        receipts_at: BTreeMap::new(),
        txs_succeeded: 0,
        settlements_succeeded: 0,
        mixed_succeeded: 0,
    };
    w.main_loop();
    let blocks_finalized = w.finalized_at.keys().next_back().copied().unwrap_or(0);
    let rejected = w
        .insts
        .iter()
        .filter_map(|i| i.engine.as_ref())
        .map(|e| e.metrics().rejected_total())
        .sum();
    let timeouts = (0..w.insts.len())
        .filter(|&i| w.correct(i))
        .filter_map(|i| w.insts[i].engine.as_ref())
        .map(|e| e.metrics().timeouts)
        .sum();
    let min_epoch = (0..w.insts.len())
        .filter(|&i| w.correct(i))
        .filter_map(|i| w.insts[i].engine.as_ref())
        .map(|e| e.epoch())
        .min()
        .unwrap_or(0);
    let txs_executed = (0..w.insts.len())
        .filter(|&i| w.correct(i))
        .map(|i| w.insts[i].disk.txs_committed)
        .max()
        .unwrap_or(0);
    Outcome {
        txs_executed,
        txs_succeeded: w.txs_succeeded,
        settlements_succeeded: w.settlements_succeeded,
        mixed_succeeded: w.mixed_succeeded,
        rejected_txs: w.rejected_txs,
        proposals_refused: w.proposals_refused,
        refused_bulk: w.refused_bulk,
        evidence: w.evidence,
        catch_ups: w.catchups,
        refused_segments: w.refused_segments,
        min_epoch,
        seed: cfg.seed,
        blocks_finalized,
        violations: w.violations,
        trace_hash: w.trace,
        events: w.seq,
        end_us: w.now,
        rejected_messages: rejected,
        timeouts,
        finality_latency_us: w.latency,
    }
}

impl<S: SimScheme> World<S> {
    fn schedule(&mut self, at: u64, ev: Ev<S>) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn correct(&self, inst: usize) -> bool {
        self.insts[inst].behavior == Behavior::Honest
    }

    /// Byzantine validators act now.
    fn attacking(&self) -> bool {
        self.faults_on || self.cfg.attack_after_faults
    }

    fn epoch_keys(&mut self, epoch: u64) -> &(S::Committee, Vec<S::Signer>) {
        while self.epochs.len() as u64 <= epoch {
            let e = self.epochs.len() as u64;
            let keys = S::generate(
                self.cfg.validators,
                self.cfg.seed ^ e.wrapping_mul(0x5851_F42D_4C95_7F2D),
            );
            self.epochs.push(keys);
        }
        &self.epochs[epoch as usize]
    }

    fn signer(&mut self, epoch: u64, index: u32) -> S::Signer {
        S::clone_signer(&self.epoch_keys(epoch).1[index as usize])
    }

    /// Start an instance from its disk, the way the node starts: the
    /// recovered state (`Recovered::after_restart`, the node's own rule),
    /// then the recent state roots, then `Start`.
    fn boot(&mut self, inst: usize) {
        let epoch = self.insts[inst].disk.safety.as_ref().map_or(0, |s| s.epoch);
        let committee = self.epoch_keys(epoch).0.clone();
        let index = self.insts[inst].index;
        let key = self.signer(epoch, index);
        let i = &self.insts[inst];
        let d = &i.disk;
        let recovered = Recovered::after_restart(
            d.safety.clone(),
            d.chain.iter().cloned().collect(),
            d.proof.clone(),
        );
        let cfg = Config {
            me: i.index,
            epoch,
            committee,
            chain_id: self.cfg.seed,
            base_timeout_us: self.cfg.base_timeout_us(),
            max_timeout_us: 8 * self.cfg.base_timeout_us(),
            jitter_seed: self.cfg.seed ^ (inst as u64) << 32,
            commit_rule: self.cfg.commit_rule,
            leader_reputation: self.cfg.leader_reputation,
            epoch_length: self.cfg.epoch_length,
            payload_weight_max: batches::BLOCK_TXS_MAX,
            idle_interval_us: 0,
            state_roots: self.cfg.state_roots,
            mutation: self.cfg.mutation,
        };
        let roots: Vec<(u64, Digest, Digest)> = d
            .recent_roots
            .iter()
            .map(|(h, (b, r))| (*h, *b, *r))
            .collect();
        self.insts[inst].engine = Some(Engine::new(cfg, key, recovered));
        self.insts[inst].exec_busy_until = self.now;
        self.insts[inst].catchup = catchup::CatchUp::new(self.cfg.validators, self.now);
        let store = plume_storage::Store::open(self.insts[inst].disk.kv.clone())
            .expect("the simulated disk's store opens");
        self.insts[inst].store = Some(store);
        // As the node: the batch log is recovered first (its certified
        // digests are offered to the engine), then the recent roots, then
        // `Start`.
        self.boot_batcher(inst);
        for (height, block, state_root) in roots {
            self.step(
                inst,
                Input::Executed {
                    height,
                    block,
                    state_root,
                },
            );
        }
        self.step(inst, Input::Start);
    }

    fn main_loop(&mut self) {
        for inst in 0..self.insts.len() {
            self.boot(inst);
        }
        for c in self.cfg.crashes.clone() {
            for inst in 0..self.insts.len() {
                if self.insts[inst].index == c.validator {
                    self.schedule(c.at_us, Ev::Crash { inst });
                    self.schedule(c.restart_us, Ev::Restart { inst });
                }
            }
        }
        self.schedule(0, Ev::Tick);
        let fe = self.cfg.fault_end_us;
        self.schedule(fe, Ev::FaultEnd);
        let end = fe + self.cfg.liveness_bound_us;
        let mut events = 0u64;
        while let Some(((t, _), ev)) = self.queue.pop_first() {
            if t > end {
                break;
            }
            events += 1;
            if events > self.cfg.events_max {
                let max = self.cfg.events_max;
                self.violation(ViolationKind::Liveness, format!("{max} events reached"));
                break;
            }
            self.now = t;
            // Every engine reads the one virtual clock (block times).
            let now_ms = SIM_EPOCH_MS + t / 1_000;
            for i in self.insts.iter_mut() {
                if let Some(e) = i.engine.as_mut() {
                    e.set_clock(now_ms);
                }
            }
            self.event(ev);
            if self
                .violations
                .iter()
                .any(|v| v.kind != ViolationKind::Liveness)
            {
                return;
            }
            if !self.faults_on && self.cfg.stop_when_live && self.live() {
                return;
            }
        }
        if !self.live() {
            let lag: Vec<String> = (0..self.insts.len())
                .filter(|&i| self.correct(i))
                .map(|i| {
                    let x = &self.insts[i];
                    let st = x.engine.as_ref().map_or(String::new(), |e| {
                        format!(
                            " epoch {} view {} voted {} high-qc view {} height {} rejected {:?}",
                            e.epoch(),
                            e.view(),
                            e.last_voted_view(),
                            e.high_qc().view,
                            e.high_qc().height,
                            e.metrics().rejected
                        )
                    });
                    format!(
                        "v{}: {} -> {} (executed {} -> {}){st}",
                        x.index,
                        x.height_at_fault_end,
                        x.tip.0,
                        x.exec_at_fault_end,
                        x.disk.committed.height
                    )
                })
                .collect();
            self.violation(
                ViolationKind::Liveness,
                format!(
                    "fewer than {} blocks finalized within {} us after faults stopped{} ({})",
                    self.cfg.liveness_blocks,
                    self.cfg.liveness_bound_us,
                    if self.cfg.attack_after_faults {
                        ", Byzantine validators still attacking"
                    } else {
                        ""
                    },
                    lag.join(", ")
                ),
            );
        }
    }

    fn live(&self) -> bool {
        !self.faults_on
            && (0..self.insts.len()).filter(|&i| self.correct(i)).all(|i| {
                let x = &self.insts[i];
                x.tip.0 >= x.height_at_fault_end + self.cfg.liveness_blocks
                    && x.disk.committed.height >= x.exec_at_fault_end + self.cfg.liveness_blocks
            })
    }

    fn violation(&mut self, kind: ViolationKind, detail: String) {
        self.violations.push(Violation {
            kind,
            at_us: self.now,
            detail,
        });
    }

    fn event(&mut self, ev: Ev<S>) {
        self.trace = mix(self.trace, self.now);
        match ev {
            Ev::Deliver {
                to,
                from,
                msg,
                certs,
            } => {
                self.trace = mix(mix(mix(self.trace, 1), to as u64), fingerprint(&msg));
                self.trace = mix(self.trace, u64::from(from));
                if self.insts[to].engine.is_none() {
                    return;
                }
                self.note_claim(to, from, &msg);
                if matches!(msg, Message::Proposal(_)) {
                    self.on_proposal(to, from, msg, certs);
                } else {
                    let e = self.insts[to].engine.as_mut().expect("checked");
                    let effects = e.step(Input::Message { from, msg });
                    self.apply(to, effects);
                }
            }
            Ev::Bulk { to, from, msg } => {
                self.trace = mix(mix(mix(self.trace, 7), to as u64), msg.fingerprint());
                self.trace = mix(self.trace, u64::from(from));
                self.on_bulk(to, from, msg);
            }
            Ev::Durable { inst, life } => {
                if self.insts[inst].life == life {
                    self.durable(inst);
                }
            }
            Ev::Timer { inst, view, gen } => {
                if self.insts[inst].timer_gen != gen {
                    return;
                }
                let Some(e) = self.insts[inst].engine.as_mut() else {
                    return;
                };
                let effects = e.step(Input::TimerFired(Timer::View(view)));
                self.apply(inst, effects);
            }
            Ev::Idle { inst, view, life } => {
                if self.insts[inst].life != life {
                    return;
                }
                let Some(e) = self.insts[inst].engine.as_mut() else {
                    return;
                };
                let effects = e.step(Input::TimerFired(Timer::Idle(view)));
                self.apply(inst, effects);
            }
            Ev::Executed { inst, life, job } => {
                if self.insts[inst].life != life {
                    return; // lost in a crash: never committed
                }
                self.executed(inst, job);
            }
            Ev::Crash { inst } => {
                self.trace = mix(mix(self.trace, 3), inst as u64);
                let x = &mut self.insts[inst];
                x.engine = None;
                x.batcher = None;
                x.store = None;
                x.executed_batches.clear();
                // The batch log keeps what its last sync covered.
                x.disk.log.retain(|(_, durable)| *durable);
                x.timer_gen += 1;
                x.life += 1;
                match self.cfg.persist {
                    Persist::Node => {}
                    Persist::CommittedOnly => {
                        x.disk.proof = None;
                        if let Some(s) = x.disk.safety.as_mut() {
                            s.blocks.clear();
                        }
                    }
                    Persist::Nothing => x.disk.safety = None,
                }
                // The tip restarts from the disk.
                x.tip = (x.disk.committed.height, x.disk.committed.id);
            }
            Ev::Restart { inst } => {
                self.trace = mix(mix(self.trace, 4), inst as u64);
                if self.insts[inst].engine.is_none() {
                    self.boot(inst);
                }
            }
            Ev::Tick => {
                self.submit_workload();
                for inst in 0..self.insts.len() {
                    self.batcher_tick(inst);
                    self.maybe_catch_up(inst);
                }
                self.schedule(self.now + TICK_US, Ev::Tick);
            }
            Ev::FaultEnd => {
                self.trace = mix(self.trace, 5);
                self.faults_on = false;
                for inst in 0..self.insts.len() {
                    if self.correct(inst) {
                        if self.insts[inst].engine.is_none() {
                            self.boot(inst);
                        }
                        self.insts[inst].height_at_fault_end = self.insts[inst].tip.0;
                        self.insts[inst].exec_at_fault_end = self.insts[inst].disk.committed.height;
                    } else if !self.cfg.attack_after_faults {
                        self.insts[inst].engine = None;
                    } else if self.insts[inst].engine.is_none() {
                        self.boot(inst);
                    }
                }
            }
        }
    }

    /// Execution committed `block`: it is on disk with its proof and root,
    /// and the engine hears `Executed` (as the node's exec role reports).
    fn executed(&mut self, inst: usize, job: ExecJob<S>) {
        let x = &self.insts[inst];
        let block = job.block.clone();
        if block.height != x.disk.committed.height + 1 {
            // Not the next block: the engine finalized out of order.
            let detail = format!(
                "validator {}: execution got height {} after {}",
                x.index, block.height, x.disk.committed.height
            );
            self.violation(ViolationKind::Validity, detail);
            return;
        }
        if let Some((root, entries)) = self.execute(inst, &job) {
            self.commit(inst, job, root, entries);
        }
    }

    /// Hand the engine its next epoch's committee when it asks.
    fn feed_epoch(&mut self, inst: usize) {
        let Some(e) = self.insts[inst].engine.as_ref() else {
            return;
        };
        if e.has_next_epoch() {
            return;
        }
        let next = e.epoch() + 1;
        let index = self.insts[inst].index;
        let committee = self.epoch_keys(next).0.clone();
        let signer = self.signer(next, index);
        let e = self.insts[inst].engine.as_mut().expect("checked above");
        let effects = e.step(Input::NextEpoch {
            epoch: next,
            committee,
            me: index,
            signer,
        });
        self.apply(inst, effects);
    }

    fn apply(&mut self, inst: usize, effects: Vec<Effect<S>>) {
        let mut actions = Vec::new();
        let mut batch_last: Option<Digest> = None;
        let mut proven: Option<Result<Digest, &'static str>> = None;
        for e in effects {
            match e {
                Effect::PersistSafety(s) => self.insts[inst].disk.safety = Some(s),
                // The node keeps no block outside the safety state and the
                // committed chain either.
                Effect::PersistBlock(_) => {}
                Effect::SetTimer {
                    timer: Timer::View(view),
                    after_us,
                } => {
                    self.insts[inst].timer_gen += 1;
                    let gen = self.insts[inst].timer_gen;
                    self.schedule(self.now + after_us, Ev::Timer { inst, view, gen });
                }
                Effect::SetTimer {
                    timer: Timer::Idle(view),
                    after_us,
                } => {
                    let life = self.insts[inst].life;
                    self.schedule(self.now + after_us, Ev::Idle { inst, view, life })
                }
                Effect::Diverged { height, .. } => {
                    if self.correct(inst) {
                        self.violation(
                            ViolationKind::StateRoot,
                            format!(
                                "validator {}: a finalized header disagrees with its state at height {height}",
                                self.insts[inst].index
                            ),
                        )
                    }
                }
                Effect::Send { to, msg } => self.outgoing(inst, vec![to], msg),
                Effect::Broadcast(msg) => {
                    let me = self.insts[inst].index;
                    let tos = (0..self.cfg.validators as u32)
                        .filter(|&j| j != me)
                        .collect();
                    if let Message::Proposal(p) = &msg {
                        if self.correct(inst) {
                            self.proposed_at.entry(p.block.id).or_insert(self.now);
                        }
                    }
                    self.outgoing(inst, tos, msg);
                }
                Effect::Finalized { block, proof } => {
                    let tip = self.insts[inst].tip;
                    self.insts[inst].tip = (block.height, block.id);
                    self.trace = mix(mix(mix(self.trace, 6), inst as u64), d64(&block.id));
                    if !self.correct(inst) {
                        if self.insts[inst].seen_proofs.len() < 8 {
                            self.insts[inst].seen_proofs.push(proof.clone());
                        }
                    } else {
                        self.check_finalized(inst, tip, &block);
                        if self.cfg.check_commit_proofs {
                            batch_last = Some(block.id);
                            let committee = self.epoch_keys(proof.child.epoch).0.clone();
                            proven = Some(proof.verify_direct(&committee, self.cfg.seed));
                            if std::env::var("SIMDBG").is_ok()
                                && proven.as_ref().is_some_and(|p| p.is_err())
                            {
                                eprintln!("{} inst {inst} block h{} e{} v{} | child h{} e{} v{} justify e{} v{} h{} | child_qc e{} v{} h{}", self.now, block.height, block.epoch, block.view, proof.child.height, proof.child.epoch, proof.child.view, proof.child.justify.epoch, proof.child.justify.view, proof.child.justify.height, proof.child_qc.epoch, proof.child_qc.view, proof.child_qc.height);
                            }
                        }
                    }
                    // As the node: the batcher hands the block to execution
                    // once it holds every batch it names.
                    // (Its actions are carried out after every effect of
                    // this step, as the node's core does.)
                    let now = self.now;
                    if let Some(b) = self.insts[inst].batcher.as_mut() {
                        b.on_finalized(block, proof, now, &mut actions);
                    }
                }
            }
        }
        self.feed_epoch(inst);
        self.carry_out(inst, actions);
        if let (Some(last), Some(p)) = (batch_last, proven) {
            match p {
                Ok(id) if self.descends(id, last) => {}
                Ok(id) => self.violation(
                    ViolationKind::Certificate,
                    format!(
                        "validator {}: commit proof is for {} but {} was finalized",
                        self.insts[inst].index, id, last
                    ),
                ),
                Err(why) => self.violation(
                    ViolationKind::Certificate,
                    format!("validator {}: commit proof: {why}", self.insts[inst].index),
                ),
            }
        }
    }

    /// Is `from` equal to `to` or a descendant of it, by the parent links of
    /// every block proposed in the run (the checker's own record)?
    fn descends(&self, from: Digest, to: Digest) -> bool {
        let mut cur = from;
        for _ in 0..=RETAIN_BLOCKS {
            if cur == to {
                return true;
            }
            match self.parents.get(&cur) {
                Some(p) => cur = *p,
                None => return false,
            }
        }
        false
    }

    fn check_finalized(&mut self, inst: usize, tip: (u64, Digest), block: &Block<S>) {
        let who = self.insts[inst].index;
        if block.height != tip.0 + 1 || block.parent != tip.1 {
            self.violation(
                ViolationKind::Validity,
                format!(
                    "validator {who}: finalized height {} (parent {}) after height {} ({})",
                    block.height, block.parent, tip.0, tip.1
                ),
            );
        }
        match self.finalized_at.get(&block.height) {
            Some(id) if *id != block.id => {
                let other = *id;
                self.violation(
                    ViolationKind::Agreement,
                    format!(
                        "validator {who}: finalized {} at height {} but {} was finalized there",
                        block.id, block.height, other
                    ),
                );
            }
            Some(_) => {}
            None => {
                self.finalized_at.insert(block.height, block.id);
            }
        }
        if let Some(&t) = self.proposed_at.get(&block.id) {
            if t >= self.cfg.fault_end_us {
                self.latency.push(self.now - t);
            }
        }
    }

    /// Can instance `a` reach instance `b` now?
    fn link_ok(&self, a: usize, b: usize) -> bool {
        !self
            .cfg
            .partitions
            .iter()
            .any(|p| self.now >= p.from_us && self.now < p.until_us && p.group[a] != p.group[b])
    }

    /// A signature by `me` over `msg` in `epoch`.
    fn sign_as(&mut self, epoch: u64, me: u32, msg: &Digest) -> S::Sig {
        S::sign(&self.epoch_keys(epoch).1[me as usize], msg.as_bytes())
    }

    /// `qc` claiming every validator signed (the aggregate unchanged).
    fn forge_signers(&self, qc: &mut QuorumCert<S>) {
        if let Some(c) = &qc.cert {
            let all: Vec<usize> = (0..self.cfg.validators).collect();
            qc.cert = Some(S::forge_signers(c, &all));
        }
    }

    /// A view 10^9 ahead of `view`, or `u64::MAX`.
    fn far_view(&mut self, view: u64) -> u64 {
        if self.byz.below(2) == 0 {
            u64::MAX
        } else {
            view.saturating_add(1_000_000_000)
        }
    }

    /// Byzantine rewriting of one outgoing message.
    fn corrupt(&mut self, inst: usize, tos: Vec<u32>, msg: Message<S>) -> Vec<(u32, Message<S>)> {
        let behavior = self.insts[inst].behavior;
        let me = self.insts[inst].index;
        let chain = self.cfg.seed;
        if !self.attacking() || behavior == Behavior::Honest {
            return tos.into_iter().map(|t| (t, msg.clone())).collect();
        }
        let same = |tos: Vec<u32>, m: Message<S>| -> Vec<(u32, Message<S>)> {
            tos.into_iter().map(|t| (t, m.clone())).collect()
        };
        match (behavior, msg) {
            (Behavior::Equivocate, Message::Proposal(p)) => {
                let mut p2 = p.clone();
                p2.block.payload.push(Digest(self.byz.bytes32()));
                p2.block.id = p2.block.compute_id();
                tos.into_iter()
                    .map(|t| {
                        if t % 2 == 0 {
                            (t, Message::Proposal(p.clone()))
                        } else {
                            (t, Message::Proposal(p2.clone()))
                        }
                    })
                    .collect()
            }
            (Behavior::DoubleVote | Behavior::UnknownVotes, Message::Vote(v)) => {
                let fake = Digest(self.byz.bytes32());
                let m = QuorumCert::<S>::vote_message(chain, v.epoch, v.view, &fake, v.height);
                let v2 = Vote {
                    block: fake,
                    sig: self.sign_as(v.epoch, me, &m),
                    ..v.clone()
                };
                let mut out = Vec::new();
                for t in tos {
                    if behavior == Behavior::DoubleVote {
                        // The fake vote first, so it is the one counted.
                        out.push((t, Message::Vote(v2.clone())));
                        out.push((t, Message::Vote(v.clone())));
                    } else {
                        out.push((t, Message::Vote(v.clone())));
                    }
                }
                if behavior == Behavior::UnknownVotes {
                    for t in 0..self.cfg.validators as u32 {
                        if t != me {
                            out.push((t, Message::Vote(v2.clone())));
                        }
                    }
                }
                out
            }
            (Behavior::BadSignatures, Message::Vote(mut v)) => {
                v.sig = self.sign_as(v.epoch, me, &Digest([7; 32]));
                same(tos, Message::Vote(v))
            }
            (Behavior::BadSignatures, Message::Timeout(mut to)) => {
                to.sig = self.sign_as(to.epoch, me, &Digest([8; 32]));
                same(tos, Message::Timeout(to))
            }
            (Behavior::Withhold, Message::Proposal(_) | Message::Vote(_)) => Vec::new(),
            (Behavior::ForgedCert, Message::Proposal(mut p)) => {
                let b = &mut p.block;
                if b.justify.cert.is_some() && b.justify.view + 1 != b.view {
                    // Pretend the parent was certified in the previous
                    // view: a direct two-chain, no TC needed.
                    b.justify.view = b.view - 1;
                    p.tc = None;
                } else {
                    self.forge_signers(&mut b.justify);
                }
                b.id = b.compute_id();
                same(tos, Message::Proposal(p))
            }
            (Behavior::ForgedSigners, Message::Proposal(mut p)) => {
                self.forge_signers(&mut p.block.justify);
                p.block.id = p.block.compute_id();
                same(tos, Message::Proposal(p))
            }
            (Behavior::ForgedSigners, Message::Timeout(mut to)) => {
                self.forge_signers(&mut to.high_qc);
                same(tos, Message::Timeout(to))
            }
            (Behavior::ForgedSigners, Message::Certificates { mut high_qc, tc }) => {
                self.forge_signers(&mut high_qc);
                same(tos, Message::Certificates { high_qc, tc })
            }
            (Behavior::CrossChain, Message::Vote(mut v)) => {
                let m =
                    QuorumCert::<S>::vote_message(chain ^ 1, v.epoch, v.view, &v.block, v.height);
                v.sig = self.sign_as(v.epoch, me, &m);
                same(tos, Message::Vote(v))
            }
            (Behavior::CrossChain, Message::Timeout(mut to)) => {
                let m =
                    plume_consensus::timeout_message(chain ^ 1, to.epoch, to.view, to.high_qc.view);
                to.sig = self.sign_as(to.epoch, me, &m);
                same(tos, Message::Timeout(to))
            }
            (Behavior::FarFutureView, Message::Vote(mut v)) => {
                v.view = self.far_view(v.view);
                let m = QuorumCert::<S>::vote_message(chain, v.epoch, v.view, &v.block, v.height);
                v.sig = self.sign_as(v.epoch, me, &m);
                same(tos, Message::Vote(v))
            }
            (Behavior::FarFutureView, Message::Timeout(mut to)) => {
                to.view = self.far_view(to.view);
                let m = plume_consensus::timeout_message(chain, to.epoch, to.view, to.high_qc.view);
                to.sig = self.sign_as(to.epoch, me, &m);
                same(tos, Message::Timeout(to))
            }
            (
                Behavior::SyncFlood,
                m @ (Message::Proposal(_)
                | Message::Vote(_)
                | Message::Timeout(_)
                | Message::Certificates { .. }),
            ) => {
                // (Not on sync traffic: two flooders would answer each
                // other's floods with floods, without end.)
                let mut out = same(tos.clone(), m);
                let known: Vec<Digest> = self.parents.keys().rev().take(64).copied().collect();
                for t in tos {
                    for k in 0..FLOOD_PER_MESSAGE {
                        let block = match (k % 2, known.is_empty()) {
                            (0, false) => known[self.byz.below(known.len() as u64) as usize],
                            _ => Digest(self.byz.bytes32()),
                        };
                        out.push((
                            t,
                            Message::SyncRequest {
                                block,
                                max: u32::MAX,
                            },
                        ));
                    }
                }
                out
            }
            (Behavior::EpochProofReplay, m) => {
                let mut out = same(tos.clone(), m);
                let proofs = &self.insts[inst].seen_proofs;
                if !proofs.is_empty() {
                    let p = proofs[self.byz.below(proofs.len() as u64) as usize].clone();
                    out.extend(same(tos, Message::EpochProof(p)));
                }
                out
            }
            (Behavior::WrongRoot, Message::Proposal(mut p)) => {
                p.block.state_root = Digest(self.byz.bytes32());
                p.block.id = p.block.compute_id();
                same(tos, Message::Proposal(p))
            }
            (_, msg) => same(tos, msg),
        }
    }

    fn outgoing(&mut self, inst: usize, tos: Vec<u32>, msg: Message<S>) {
        let from = self.insts[inst].index;
        if let Message::Proposal(p) = &msg {
            self.parents.insert(p.block.id, p.block.parent);
        }
        if let Message::Vote(v) = &msg {
            if self.correct(inst) {
                match self.votes.get(&(from, v.epoch, v.view)) {
                    Some(b) if *b != v.block => {
                        let detail = format!(
                            "validator {from} voted for {} and {} in epoch {} view {}",
                            b, v.block, v.epoch, v.view
                        );
                        self.violation(ViolationKind::Equivocation, detail);
                    }
                    Some(_) => {}
                    None => {
                        self.votes.insert((from, v.epoch, v.view), v.block);
                    }
                }
            }
        }
        let sends = self.corrupt(inst, tos, msg);
        for (to, m) in sends {
            if let Message::Proposal(p) = &m {
                self.parents.insert(p.block.id, p.block.parent);
            }
            let targets: Vec<usize> = (0..self.insts.len())
                .filter(|&j| j != inst && self.insts[j].index == to && self.link_ok(inst, j))
                .collect();
            let certs = match &m {
                Message::Proposal(p) => self.certs_for(inst, &p.block.payload),
                _ => Vec::new(),
            };
            for j in targets {
                let copies = if self.faults_on && self.net.chance_ppm(self.cfg.dup_ppm) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    if self.faults_on && self.net.chance_ppm(self.cfg.drop_ppm) {
                        continue;
                    }
                    let delay = self.cfg.latency_us + self.net.below(self.cfg.jitter_us + 1);
                    self.schedule(
                        self.now + delay,
                        Ev::Deliver {
                            to: j,
                            from,
                            msg: m.clone(),
                            certs: certs.clone(),
                        },
                    );
                }
            }
        }
    }
}
