//! The validator runtime: `plume start`.
//!
//! Threads (roles) and the bounded channels between them:
//!
//! ```text
//!  API threads ──submit──▶ sigverify ──verified tx──▶ core (glommio, pinned)
//!                             ▲  │                     │  network + consensus
//!          peer batches ──────┘  └──verified batch───▶ │  + mempool + batches
//!                                                      │
//!                     exec (pinned) ◀──finalized block─┘
//!                     execute + one LMDB commit ──executed──▶ core
//! ```
//!
//! - `core`: one glommio executor pinned to the consensus core: the netstack
//!   endpoint, the consensus engine (a pure state machine driven here),
//!   timers, the mempool and batch dissemination.
//! - `sigverify`: Ed25519 batch verification of client transactions and of
//!   peers' batches.
//! - `exec`: executes finalized blocks (sharded) and commits each in one
//!   LMDB write transaction; then publishes receipts to subscribers.
//!   LMDB commits are blocking syscalls, so they run here and never stall
//!   the network loop.
//! - API threads serve clients (see [`crate::api`]).

use crate::api::{codes, ApiError, ApiServer, NodeApi, Topic};
use crate::config::Config;
use crate::genesis::Genesis;
use crate::keys::NodeKeys;
use crate::mempool::{Mempool, MempoolError};
use crate::safety::SafetyFile;
use crate::wire::{self, NetMsg};
use anyhow::{anyhow, bail, Context, Result};
use plume_consensus::{
    Block, BlsScheme, CommitProof, Effect, Engine, Input, Message, Recovered, Timer,
};
use plume_crypto::ed25519::Address;
use plume_crypto::qc::ValidatorSet;
use plume_crypto::{merkle, Digest};
use plume_execution::{PreparedTx, Receipt, Transaction};
use plume_netstack::{AnyTransport, Channel, Endpoint, GlommioTcp, NetConfig, PeerAddr, PeerId};
use plume_storage::{LmdbKv, LmdbOptions, Store};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Submissions queued for signature verification.
pub const SIG_QUEUE_MAX: usize = 65_536;
/// Verified items queued for the core.
pub const CORE_QUEUE_MAX: usize = 65_536;
/// Finalized blocks queued for execution.
pub const EXEC_QUEUE_MAX: usize = 1024;
/// Most batches (own and peers') the core holds: pending ones and, for
/// peers that ask for them, recently finalized ones.
pub const BATCHES_HELD_MAX: usize = 16_384;
/// Most approximate bytes of batches the core holds (see [`BatchCache`]).
/// Finalized batches are evicted first (oldest first); a batch still
/// pending is never evicted, and while pending batches alone exceed a bound
/// the core takes no new batch from the mempool (back-pressure).
/// (64 MiB: about a minute of finalized 512-byte transactions at 800 tx/s,
/// kept for peers that missed them.)
pub const BATCHES_HELD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Digests of recently finalized batches the core remembers, so a batch
/// that arrives after its block was finalized is not kept as pending.
pub const FINALIZED_DIGESTS_MAX: usize = 65_536;
/// Most submission times remembered for the finality-latency histogram.
pub const SUBMITTED_MAX: usize = 262_144;
/// Submission times older than this are forgotten (the transaction was
/// dropped, or finalized before its submission was recorded).
pub const SUBMITTED_TTL: Duration = Duration::from_secs(120);
/// Own batches not finalized after this long are offered again.
pub const BATCH_REPROPOSE_AFTER: Duration = Duration::from_secs(2);
/// Largest signature-verification batch.
pub const SIG_BATCH_MAX: usize = 1024;
/// Most transaction ids listed in one block notification.
pub const BLOCK_NOTE_HASHES_MAX: usize = 20_000;
/// Notifications buffered per subscriber before drops.
pub const SUBSCRIBER_QUEUE: usize = 4096;

/// A batch whose signatures were checked (deterministically: every
/// validator reaches the same `valid` flags for the same bytes).
#[derive(Debug)]
pub struct VerifiedBatch {
    /// Batch digest (Merkle root over the transaction ids).
    pub digest: Digest,
    /// Decoded transactions (`None`: did not decode).
    pub txs: Vec<Option<PreparedTx>>,
    /// The encodings as received.
    pub raw: Vec<Vec<u8>>,
    /// Signature check result per transaction.
    pub valid: Vec<bool>,
}

/// Digest of a batch: Merkle root over the transaction ids.
pub fn batch_root(ids: &[Digest]) -> Digest {
    let leaves: Vec<Digest> = ids
        .iter()
        .map(|d| merkle::leaf_hash(d.as_bytes()))
        .collect();
    merkle::root_of_leaves(&leaves)
}

/// Approximate heap bytes of a held batch: the encodings, the decoded
/// transactions (about as large again) and fixed per-transaction overheads.
pub fn batch_bytes(b: &VerifiedBatch) -> usize {
    let per_tx = std::mem::size_of::<Option<PreparedTx>>()
        + std::mem::size_of::<Vec<u8>>()
        + std::mem::size_of::<bool>()
        + std::mem::size_of::<Address>();
    std::mem::size_of::<VerifiedBatch>() + b.raw.iter().map(|r| 2 * r.len() + per_tx).sum::<usize>()
}

/// The core's batches by digest, bounded by count and approximate bytes.
///
/// Eviction is oldest first and skips *pinned* batches (the caller says
/// which: those still pending or needed by a finalized block not yet
/// executed). Pinned batches are kept even over the bounds; the caller
/// stops producing new ones while [`BatchCache::over_bounds`].
#[derive(Debug)]
pub struct BatchCache {
    map: HashMap<Digest, Arc<VerifiedBatch>>,
    order: VecDeque<Digest>,
    bytes: usize,
    count_max: usize,
    bytes_max: usize,
}

impl BatchCache {
    /// An empty cache with these bounds.
    pub fn new(count_max: usize, bytes_max: usize) -> Self {
        BatchCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            count_max,
            bytes_max,
        }
    }

    /// The batch with this digest.
    pub fn get(&self, d: &Digest) -> Option<&Arc<VerifiedBatch>> {
        self.map.get(d)
    }

    /// Whether this digest is held.
    pub fn contains(&self, d: &Digest) -> bool {
        self.map.contains_key(d)
    }

    /// Batches held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Approximate bytes held ([`batch_bytes`] summed).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True when over either bound (after [`BatchCache::trim`]: by pinned
    /// batches alone). A cache trimmed to exactly its bounds is not over.
    pub fn over_bounds(&self) -> bool {
        self.map.len() > self.count_max || self.bytes > self.bytes_max
    }

    /// Hold `b` (false: already held). The caller then calls
    /// [`BatchCache::trim`].
    pub fn insert(&mut self, b: Arc<VerifiedBatch>) -> bool {
        if self.map.contains_key(&b.digest) {
            return false;
        }
        self.bytes += batch_bytes(&b);
        self.order.push_back(b.digest);
        self.map.insert(b.digest, b);
        true
    }

    /// Evict the oldest unpinned batches while over a bound. Returns how
    /// many were evicted; afterwards [`BatchCache::over_bounds`] means the
    /// pinned batches alone reach a bound.
    pub fn trim(&mut self, pinned: impl Fn(&Digest) -> bool) -> usize {
        let mut evicted = 0;
        // Each held digest is looked at most once: pinned ones go to the
        // back, so a cache of only pinned batches ends the loop.
        let mut budget = self.order.len();
        while (self.map.len() > self.count_max || self.bytes > self.bytes_max) && budget > 0 {
            budget -= 1;
            let Some(d) = self.order.pop_front() else {
                break;
            };
            if pinned(&d) {
                self.order.push_back(d);
                continue;
            }
            if let Some(old) = self.map.remove(&d) {
                self.bytes -= batch_bytes(&old);
                evicted += 1;
            }
        }
        evicted
    }
}

/// A bounded set of recent digests (oldest forgotten first).
#[derive(Debug, Default)]
struct RecentDigests {
    set: HashSet<Digest>,
    order: VecDeque<Digest>,
}

impl RecentDigests {
    fn insert(&mut self, d: Digest, max: usize) {
        if self.set.insert(d) {
            self.order.push_back(d);
            while self.order.len() > max {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, d: &Digest) -> bool {
        self.set.contains(d)
    }

    fn len(&self) -> usize {
        self.set.len()
    }
}

type Reply = flume::Sender<Result<Digest, ApiError>>;

enum SigIn {
    Submit {
        bytes: Vec<u8>,
        state_seq: u64,
        reply: Reply,
    },
    PeerBatch {
        digest: Digest,
        txs: Vec<Vec<u8>>,
    },
}

enum CoreIn {
    Verified {
        ptx: PreparedTx,
        bytes: Vec<u8>,
        state_seq: u64,
        reply: Reply,
    },
    Batch(Arc<VerifiedBatch>),
    Executed {
        height: u64,
        block: Digest,
        root: Digest,
        sequences: Vec<(Address, u64)>,
    },
}

struct ExecJob {
    block: Block<BlsScheme>,
    proof: CommitProof<BlsScheme>,
    batches: Vec<Arc<VerifiedBatch>>,
}

/// Counters shared by every thread, exported at `/metrics`.
#[derive(Default, Debug)]
pub struct NodeMetrics {
    /// Transactions accepted into the mempool.
    pub txs_admitted: AtomicU64,
    /// Submissions rejected (any reason).
    pub txs_rejected: AtomicU64,
    /// Transactions executed in finalized blocks.
    pub txs_finalized: AtomicU64,
    /// Blocks finalized and committed.
    pub blocks_finalized: AtomicU64,
    /// Mempool depth.
    pub mempool_depth: AtomicU64,
    /// Signature batches verified.
    pub sig_batches: AtomicU64,
    /// Signatures verified.
    pub sigs_verified: AtomicU64,
    /// Consensus view.
    pub view: AtomicU64,
    /// Local timeouts (view changes).
    pub view_changes: AtomicU64,
    /// Connected peers.
    pub peers: AtomicU64,
    /// Malformed peer messages dropped.
    pub malformed_msgs: AtomicU64,
    /// Notifications dropped because a subscriber was slow.
    pub notifications_dropped: AtomicU64,
    /// Busy microseconds per role: core, sigverify, exec.
    pub busy_us: [AtomicU64; 3],
    /// Finalized height.
    pub height: AtomicU64,
    /// Finality latency histogram (submission on this node to commit), ms buckets.
    pub finality_ms: LatencyBuckets,
    /// Consensus messages rejected by the engine.
    pub consensus_rejected: AtomicU64,
    /// Transactions cut from over-full blocks.
    pub txs_cut: AtomicU64,
    /// Sizes of the long-lived collections (`plume_mem_*`).
    pub mem: MemGauges,
}

/// Sizes of every long-lived collection of the core and exec threads,
/// written by their owners (the core each tick, exec after each commit) and
/// exported at `/metrics` as `plume_mem_*` gauges. Byte figures are
/// approximate: payload bytes plus fixed per-entry overheads, or a hash
/// table's allocated capacity times its slot size.
#[derive(Default, Debug)]
pub struct MemGauges {
    /// Batch cache entries.
    pub batches: AtomicU64,
    /// Batch cache approximate bytes.
    pub batches_bytes: AtomicU64,
    /// Own batches not yet finalized.
    pub own_pending: AtomicU64,
    /// Peers' batches not yet finalized.
    pub peer_pending: AtomicU64,
    /// Recently finalized batch digests remembered by the core.
    pub finalized_recent: AtomicU64,
    /// Own batches waiting to be offered to the engine.
    pub ready: AtomicU64,
    /// Batches offered to the engine, not yet proposed.
    pub fed: AtomicU64,
    /// Finalized blocks waiting for their batches.
    pub finalized_waiting: AtomicU64,
    /// Missing batches requested from peers.
    pub requested: AtomicU64,
    /// Armed timers.
    pub timers: AtomicU64,
    /// Mempool transactions.
    pub mempool_txs: AtomicU64,
    /// Mempool bytes (encoded transactions).
    pub mempool_bytes: AtomicU64,
    /// Mempool sender cursors.
    pub mempool_senders: AtomicU64,
    /// Mempool ids remembered for duplicate detection.
    pub mempool_recent_ids: AtomicU64,
    /// Items queued for the core.
    pub core_queue: AtomicU64,
    /// Finalized blocks queued for execution.
    pub exec_queue: AtomicU64,
    /// Executed batch digests remembered by exec (re-proposal skip).
    pub executed_batches: AtomicU64,
    /// Bytes allocated by exec's executed-batch set (capacity).
    pub executed_set_bytes: AtomicU64,
}

impl MemGauges {
    /// (name, help, value) of every gauge.
    pub fn pairs(&self) -> Vec<(&'static str, &'static str, u64)> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("batches", "Batches held by the core.", g(&self.batches)),
            (
                "batches_bytes",
                "Approximate bytes of the batches held.",
                g(&self.batches_bytes),
            ),
            (
                "own_pending",
                "Own batches not yet finalized.",
                g(&self.own_pending),
            ),
            (
                "peer_pending",
                "Peers' batches not yet finalized.",
                g(&self.peer_pending),
            ),
            (
                "finalized_recent",
                "Finalized batch digests remembered by the core.",
                g(&self.finalized_recent),
            ),
            (
                "ready",
                "Batches waiting to be offered to consensus.",
                g(&self.ready),
            ),
            (
                "fed",
                "Batches offered to consensus, not yet proposed.",
                g(&self.fed),
            ),
            (
                "finalized_waiting",
                "Finalized blocks waiting for batches.",
                g(&self.finalized_waiting),
            ),
            (
                "requested",
                "Missing batches requested from peers.",
                g(&self.requested),
            ),
            ("timers", "Armed consensus timers.", g(&self.timers)),
            ("mempool_txs", "Mempool transactions.", g(&self.mempool_txs)),
            (
                "mempool_bytes",
                "Mempool bytes of encoded transactions.",
                g(&self.mempool_bytes),
            ),
            (
                "mempool_senders",
                "Mempool sender cursors.",
                g(&self.mempool_senders),
            ),
            (
                "mempool_recent_ids",
                "Batched ids remembered for duplicate detection.",
                g(&self.mempool_recent_ids),
            ),
            (
                "core_queue",
                "Items queued for the core.",
                g(&self.core_queue),
            ),
            (
                "exec_queue",
                "Finalized blocks queued for execution.",
                g(&self.exec_queue),
            ),
            (
                "executed_batches",
                "Executed batch digests remembered by exec.",
                g(&self.executed_batches),
            ),
            (
                "executed_set_bytes",
                "Bytes allocated by exec's executed-batch set.",
                g(&self.executed_set_bytes),
            ),
        ]
    }
}

/// Bytes a hash table with this capacity allocates for `(K, V)` slots
/// (one control byte per slot; approximate).
fn table_bytes<K, V>(capacity: usize) -> u64 {
    (capacity * (std::mem::size_of::<K>() + std::mem::size_of::<V>() + 1)) as u64
}

/// (RssAnon, RssFile) of this process in bytes, from `/proc/self/status`.
fn proc_self_rss() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("RssAnon:")?, field("RssFile:")?))
}

/// A fixed-bucket histogram (Prometheus style, cumulative at render).
#[derive(Debug)]
pub struct LatencyBuckets {
    bounds: [u64; 12],
    counts: [AtomicU64; 13],
    sum: AtomicU64,
}

impl Default for LatencyBuckets {
    fn default() -> Self {
        LatencyBuckets {
            bounds: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000],
            counts: Default::default(),
            sum: AtomicU64::new(0),
        }
    }
}

impl LatencyBuckets {
    /// Record one observation in milliseconds.
    pub fn observe(&self, ms: u64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(ms, Ordering::Relaxed);
    }

    fn render(&self, name: &str, out: &mut String) {
        out.push_str(&format!("# TYPE {name} histogram\n"));
        let mut acc = 0;
        for (i, b) in self.bounds.iter().enumerate() {
            acc += self.counts[i].load(Ordering::Relaxed);
            out.push_str(&format!(
                "{name}_bucket{{le=\"{}\"}} {acc}\n",
                *b as f64 / 1000.0
            ));
        }
        acc += self.counts[self.bounds.len()].load(Ordering::Relaxed);
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {acc}\n"));
        out.push_str(&format!(
            "{name}_sum {}\n",
            self.sum.load(Ordering::Relaxed) as f64 / 1000.0
        ));
        out.push_str(&format!("{name}_count {acc}\n"));
    }
}

/// Everything derived from the home directory before threads start.
pub struct NodeSetup {
    /// Home.
    pub home: PathBuf,
    /// Config.
    pub config: Config,
    /// Genesis.
    pub genesis: Genesis,
    /// Keys.
    pub keys: NodeKeys,
    /// Our committee index.
    pub me: u32,
    /// Committee.
    pub committee: ValidatorSet,
    /// Execution parameters.
    pub params: plume_execution::Params,
    /// Consensus chain id (from the chain id string).
    pub chain_u64: u64,
}

impl std::fmt::Debug for NodeSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSetup")
            .field("home", &self.home)
            .field("me", &self.me)
            .finish()
    }
}

/// Convert genesis params to execution params.
pub fn exec_params(g: &Genesis) -> Result<plume_execution::Params> {
    let p = &g.params;
    let params = plume_execution::Params {
        chain_id: g.chain_id.clone(),
        block_txs_max: p.block_txs_max,
        block_gas_limit: p.block_gas_limit,
        block_gas_target: p.block_gas_target,
        base_fee_initial: p.base_fee_initial,
        base_fee_min: p.base_fee_min,
        base_fee_change_denominator: p.base_fee_change_denominator,
        fee_burn_percent: p.fee_burn_percent,
        fee_treasury_percent: p.fee_treasury_percent,
        treasury: Address::from_hex(&p.treasury)?,
    };
    params
        .validate()
        .map_err(|e| anyhow!("genesis params: {e}"))?;
    Ok(params)
}

/// The consensus chain id: the first 8 bytes of the chain id's hash.
pub fn chain_u64(chain_id: &str) -> u64 {
    let d = plume_crypto::hash(plume_crypto::Domain::Block, chain_id.as_bytes());
    u64::from_le_bytes(d.0[..8].try_into().expect("8 bytes"))
}

impl NodeSetup {
    /// Load config, genesis (`HOME/genesis.json` unless given) and keys.
    pub fn load(home: &Path, genesis: Option<&Path>) -> Result<NodeSetup> {
        let config = Config::load(home)?;
        let gpath = genesis
            .map(Path::to_path_buf)
            .unwrap_or_else(|| home.join("genesis.json"));
        let genesis = Genesis::load(&gpath)?;
        let keys = NodeKeys::load(home)?;
        let committee = genesis.validator_set()?;
        let me = committee
            .index_of(&keys.consensus.public_key())
            .ok_or_else(|| {
                anyhow!(
                    "this node's consensus key {} is not a validator in {}; non-validator nodes are not built yet",
                    keys.consensus.public_key(),
                    gpath.display()
                )
            })? as u32;
        let net_key = keys.network.public_key().to_hex();
        if genesis.validators[me as usize].network_key != net_key {
            bail!(
                "{}: validators[{me}].network_key does not match keys/network.key",
                gpath.display()
            );
        }
        let params = exec_params(&genesis)?;
        let chain = chain_u64(&genesis.chain_id);
        Ok(NodeSetup {
            home: home.to_path_buf(),
            config,
            genesis,
            keys,
            me,
            committee,
            params,
            chain_u64: chain,
        })
    }
}

/// Stop flag set by SIGINT/SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// The process-wide stop flag (set by SIGINT/SIGTERM).
pub fn stop_flag() -> &'static AtomicBool {
    &STOP
}

/// Route SIGINT and SIGTERM to [`stop_flag`].
pub fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Cores for each role from `[placement]`, or the default for this host.
fn placement(cfg: &Config) -> (usize, usize, usize) {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let pick =
        |v: &[u32], default: usize| v.first().map(|c| *c as usize % n).unwrap_or(default % n);
    let p = &cfg.placement;
    (
        pick(&p.consensus_cores, 0),
        pick(&p.sigverify_cores, 1),
        pick(&p.exec_cores, 1),
    )
}

fn pin(core: usize) {
    if let Some(id) = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.id == core)
    {
        core_affinity::set_for_current(id);
    }
}

/// Shared between threads: what the API needs besides channels.
struct Shared {
    setup_chain_id: String,
    kv: LmdbKv,
    metrics: Arc<NodeMetrics>,
    sig_tx: flume::Sender<SigIn>,
    subscribers: Mutex<Vec<(Topic, flume::Sender<Value>)>>,
    /// Submission time of transactions submitted here (for finality latency).
    submitted: Mutex<HashMap<Digest, Instant>>,
    state_root: Mutex<(u64, Digest)>,
    view: AtomicU64,
    peers: Mutex<Vec<String>>,
    params: plume_execution::Params,
    committee_len: usize,
    started: Instant,
    net_metrics: std::sync::OnceLock<Arc<plume_netstack::Metrics>>,
    dgram_metrics: std::sync::OnceLock<Arc<plume_netstack::dgram::DgramMetrics>>,
    /// Why the core stopped, when it failed (start-up errors included).
    fatal: Mutex<Option<String>>,
}

/// Run a validator until SIGINT/SIGTERM.
pub fn run(home: &Path, genesis: Option<&Path>) -> Result<()> {
    install_signal_handlers();
    let setup = NodeSetup::load(home, genesis)?;
    let data_dir = home.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let kv = LmdbKv::open(
        &data_dir.join("store"),
        &LmdbOptions::with_map_size_gib(setup.config.storage.map_size_gib as u64),
    )
    .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let mut store = Store::open(kv.clone()).context("opening the store")?;
    let genesis_block = Block::<BlsScheme>::genesis(setup.chain_u64);
    if store.head().is_none() {
        let allocs = setup
            .genesis
            .alloc
            .iter()
            .map(|a| Ok((Address::from_hex(&a.address)?, a.amount.parse::<u128>()?)))
            .collect::<Result<Vec<_>>>()?;
        let writes = plume_execution::genesis_writes(&setup.params, &allocs)
            .map_err(|e| anyhow!("genesis state: {e}"))?;
        let enc = crate::proof::encode_block_record(&genesis_block, &[]);
        store
            .commit_block_with_writes(
                &plume_storage::BlockCommit {
                    height: 0,
                    hash: genesis_block.id,
                    block: &enc,
                    qc: &[],
                    txs: &[],
                },
                &writes,
            )
            .context("committing the genesis state")?;
        tracing::info!(root = %store.committed_root(), "genesis state committed");
    }
    let (safety_file, safety) = SafetyFile::open(&data_dir)?;
    let head = store.head().expect("genesis committed");
    let committed_block = match store.block(head.finalized_height)? {
        Some(rec) => {
            crate::proof::decode_block_record(&rec.bytes)
                .with_context(|| format!("stored block {}", head.finalized_height))?
                .0
        }
        None => bail!("store head {} has no block record", head.finalized_height),
    };
    let restarted = safety.is_some() || head.finalized_height > 0;
    let recovered = restarted.then(|| Recovered {
        safety,
        blocks: vec![committed_block.clone()],
        committed: committed_block.id,
    });
    tracing::info!(
        me = setup.me,
        height = head.finalized_height,
        root = %store.committed_root(),
        restarted = recovered.is_some(),
        "starting validator"
    );

    let metrics = Arc::new(NodeMetrics::default());
    metrics
        .height
        .store(head.finalized_height, Ordering::Relaxed);
    let (sig_tx, sig_rx) = flume::bounded::<SigIn>(SIG_QUEUE_MAX);
    let (core_tx, core_rx) = flume::bounded::<CoreIn>(CORE_QUEUE_MAX);
    let (exec_tx, exec_rx) = flume::bounded::<ExecJob>(EXEC_QUEUE_MAX);
    let shared = Arc::new(Shared {
        setup_chain_id: setup.genesis.chain_id.clone(),
        kv: kv.clone(),
        metrics: metrics.clone(),
        sig_tx: sig_tx.clone(),
        subscribers: Mutex::new(Vec::new()),
        submitted: Mutex::new(HashMap::new()),
        state_root: Mutex::new((head.finalized_height, store.committed_root())),
        view: AtomicU64::new(0),
        peers: Mutex::new(Vec::new()),
        params: setup.params.clone(),
        committee_len: setup.committee.len(),
        started: Instant::now(),
        net_metrics: std::sync::OnceLock::new(),
        dgram_metrics: std::sync::OnceLock::new(),
        fatal: Mutex::new(None),
    });
    let (core_core, sig_core, exec_core) = placement(&setup.config);

    // sigverify
    let sig_thread = {
        let core_tx = core_tx.clone();
        let m = metrics.clone();
        std::thread::Builder::new()
            .name("sigverify".into())
            .spawn(move || {
                pin(sig_core);
                sigverify_loop(sig_rx, core_tx, &m);
            })?
    };
    // exec
    let exec_thread = {
        let core_tx = core_tx.clone();
        let shared = shared.clone();
        let params = setup.params.clone();
        let validators = setup.genesis.validators.clone();
        std::thread::Builder::new()
            .name("exec".into())
            .spawn(move || {
                pin(exec_core);
                if let Err(e) = exec_loop(store, exec_rx, core_tx, &shared, &params, &validators) {
                    tracing::error!("execution stopped: {e:#}");
                    STOP.store(true, Ordering::SeqCst);
                }
            })?
    };
    // API
    let api = ApiServer::start(
        &setup.config.api.listen_addr,
        Arc::new(ApiNode {
            shared: shared.clone(),
        }),
    )?;
    tracing::info!(addr = %api.addr, "API listening");

    // core (glommio)
    let core_thread = {
        let shared = shared.clone();
        glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(core_core))
            .name("core")
            .spawn(move || async move {
                if let Err(e) = core_main(
                    setup,
                    recovered,
                    safety_file,
                    core_rx,
                    sig_tx,
                    exec_tx,
                    shared.clone(),
                    core_core,
                )
                .await
                {
                    tracing::error!("core stopped: {e:#}");
                    *shared.fatal.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("{e:#}"));
                    STOP.store(true, Ordering::SeqCst);
                }
            })
            .map_err(|e| anyhow!("starting the core executor: {e}"))?
    };

    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!("stopping");
    api.stop();
    let _ = core_thread.join();
    drop(core_tx);
    let _ = exec_thread.join();
    let _ = sig_thread.join();
    let fatal = shared
        .fatal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    match fatal {
        Some(e) => Err(anyhow!("{e}")),
        None => Ok(()),
    }
}

/// The transport `[network]` asks for, opened on the calling (core) thread.
fn open_transport(
    n: &crate::config::NetworkSection,
    listen: std::net::SocketAddr,
    core: usize,
) -> Result<AnyTransport> {
    use crate::config::TransportKind;
    use plume_netstack::dgram::open::{open, Device, OpenSpec};
    use plume_netstack::dgram::{DgramConfig, DgramTransport};
    let device = match n.transport {
        TransportKind::Tcp => return Ok(AnyTransport::Tcp(GlommioTcp)),
        TransportKind::Udp => Device::KernelUdp,
        TransportKind::AfXdp => Device::AfXdp {
            interface: n.interface.clone(),
            queue: n.queue,
            force_skb: n.xdp_mode == "generic",
            force_copy: n.xdp_bind == "copy",
        },
        TransportKind::Dpdk => Device::Dpdk {
            device: n.dpdk_device.clone(),
            lcore: core,
            mem_mb: n.dpdk_mem_mb as usize,
            no_huge: n.dpdk_no_huge,
            vdevs: n.dpdk_vdevs.clone(),
            pci_allow: n.dpdk_pci.clone(),
        },
    };
    let std::net::SocketAddr::V4(local) = listen else {
        bail!("network.transport = \"{}\" carries IPv4 only", n.transport);
    };
    let gateway = if n.gateway.is_empty() {
        None
    } else {
        Some(n.gateway.parse()?)
    };
    let io = open(&OpenSpec {
        local,
        prefix_len: n.prefix_len,
        gateway,
        device,
    })
    .map_err(|e| anyhow!("network.transport = \"{}\": {e}", n.transport))?;
    let t = DgramTransport::start(
        io,
        DgramConfig {
            busy_poll: n.busy_poll,
            drop_every: n.drop_every,
            ..DgramConfig::default()
        },
    );
    tracing::info!(transport = %n.transport, mode = t.mode(), %local, "datagram transport up");
    Ok(AnyTransport::Dgram(t))
}

fn reject(code: i64, msg: impl Into<String>) -> ApiError {
    ApiError::new(code, msg)
}

fn sigverify_loop(rx: flume::Receiver<SigIn>, core_tx: flume::Sender<CoreIn>, m: &NodeMetrics) {
    while !STOP.load(Ordering::Relaxed) {
        let first = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(x) => x,
            Err(flume::RecvTimeoutError::Timeout) => continue,
            Err(_) => return,
        };
        let t0 = Instant::now();
        let mut items = vec![first];
        while items.len() < SIG_BATCH_MAX {
            match rx.try_recv() {
                Ok(x) => items.push(x),
                Err(_) => break,
            }
        }
        let mut submits: Vec<(PreparedTx, Vec<u8>, u64, Reply)> = Vec::new();
        for it in items {
            match it {
                SigIn::Submit {
                    bytes,
                    state_seq,
                    reply,
                } => match Transaction::from_bytes(&bytes) {
                    Ok(tx) => submits.push((PreparedTx::new(tx), bytes, state_seq, reply)),
                    Err(e) => {
                        m.txs_rejected.fetch_add(1, Ordering::Relaxed);
                        let code = match e {
                            plume_execution::tx::TxError::TooLarge(_) => codes::OVERSIZED,
                            _ => codes::MALFORMED_TX,
                        };
                        let _ = reply.send(Err(reject(code, e.to_string())));
                    }
                },
                SigIn::PeerBatch { digest, txs } => {
                    let b = verify_peer_batch(digest, txs, m);
                    match b {
                        Some(b) => {
                            let _ = core_tx.send(CoreIn::Batch(Arc::new(b)));
                        }
                        None => {
                            m.malformed_msgs.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        if !submits.is_empty() {
            let txs: Vec<Transaction> = submits.iter().map(|(p, _, _, _)| p.tx.clone()).collect();
            let bad: HashSet<usize> = plume_execution::tx::verify_batch(&txs)
                .into_iter()
                .collect();
            m.sig_batches.fetch_add(1, Ordering::Relaxed);
            m.sigs_verified
                .fetch_add(txs.len() as u64, Ordering::Relaxed);
            for (i, (ptx, bytes, state_seq, reply)) in submits.into_iter().enumerate() {
                if bad.contains(&i) {
                    m.txs_rejected.fetch_add(1, Ordering::Relaxed);
                    let _ = reply.send(Err(reject(
                        codes::BAD_SIGNATURE,
                        "a signature does not verify",
                    )));
                } else if core_tx
                    .send(CoreIn::Verified {
                        ptx,
                        bytes,
                        state_seq,
                        reply: reply.clone(),
                    })
                    .is_err()
                {
                    let _ = reply.send(Err(reject(codes::UNAVAILABLE, "node shutting down")));
                }
            }
        }
        m.busy_us[1].fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
}

/// Decode a peer's batch, check its digest and every signature. `None` when
/// the digest does not match its contents (the peer lied; nothing is kept).
fn verify_peer_batch(digest: Digest, raw: Vec<Vec<u8>>, m: &NodeMetrics) -> Option<VerifiedBatch> {
    let mut txs = Vec::with_capacity(raw.len());
    let mut ids = Vec::with_capacity(raw.len());
    for r in &raw {
        match Transaction::from_bytes(r) {
            Ok(t) => {
                let p = PreparedTx::new(t);
                ids.push(p.hash);
                txs.push(Some(p));
            }
            Err(_) => {
                ids.push(plume_crypto::hash(plume_crypto::Domain::Tx, r));
                txs.push(None);
            }
        }
    }
    if batch_root(&ids) != digest {
        return None;
    }
    let decoded: Vec<Transaction> = txs.iter().flatten().map(|p| p.tx.clone()).collect();
    let bad: HashSet<usize> = plume_execution::tx::verify_batch(&decoded)
        .into_iter()
        .collect();
    m.sig_batches.fetch_add(1, Ordering::Relaxed);
    m.sigs_verified
        .fetch_add(decoded.len() as u64, Ordering::Relaxed);
    let mut valid = Vec::with_capacity(txs.len());
    let mut k = 0;
    for t in &txs {
        if t.is_some() {
            valid.push(!bad.contains(&k));
            k += 1;
        } else {
            valid.push(false);
        }
    }
    Some(VerifiedBatch {
        digest,
        txs,
        raw,
        valid,
    })
}

/// The core executor's state.
struct Core {
    engine: Engine<BlsScheme>,
    safety: SafetyFile,
    ep: Rc<Endpoint<AnyTransport>>,
    peers: Vec<PeerId>,
    mempool: Mempool,
    batches: BatchCache,
    /// Batches seen in finalized blocks (a late copy is not pending).
    finalized_recent: RecentDigests,
    own_pending: BTreeMap<Digest, Instant>,
    /// Peers' batches not yet seen in a finalized block, with when they
    /// arrived: if their owner cannot get them proposed (say it is slow and
    /// leader reputation skips it), every validator offers them too.
    peer_pending: BTreeMap<Digest, Instant>,
    /// Own batches waiting to be offered to the engine, with their sizes.
    ready: VecDeque<(Digest, usize)>,
    /// Offered to the engine, not yet seen in one of our proposals.
    fed: HashMap<Digest, usize>,
    fed_txs: usize,
    block_txs_max: usize,
    finalized_waiting: VecDeque<(Block<BlsScheme>, CommitProof<BlsScheme>)>,
    requested: HashMap<Digest, Instant>,
    timer_gen: u64,
    exec_tx: flume::Sender<ExecJob>,
    sig_tx: flume::Sender<SigIn>,
    shared: Arc<Shared>,
    timers: Vec<(u64, Timer, Instant)>,
    batching: crate::config::BatchingSection,
}

async fn core_main(
    setup: NodeSetup,
    recovered: Option<Recovered<BlsScheme>>,
    safety: SafetyFile,
    core_rx: flume::Receiver<CoreIn>,
    sig_tx: flume::Sender<SigIn>,
    exec_tx: flume::Sender<ExecJob>,
    shared: Arc<Shared>,
    core_core: usize,
) -> Result<()> {
    let g = &setup.genesis;
    let listen: std::net::SocketAddr = setup.config.node.listen_addr.parse()?;
    let transport = open_transport(&setup.config.network, listen, core_core)?;
    if let AnyTransport::Dgram(t) = &transport {
        let _ = shared.dgram_metrics.set(t.metrics());
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
    net.frame_payload_max = wire::FRAME_BYTES_MAX;
    let ep = Endpoint::start(
        transport,
        net,
        plume_crypto::ed25519::SigningKey::from_bytes(&setup.keys.network.to_bytes()),
    )
    .map_err(|e| anyhow!("network: {e}"))?;
    let _ = shared.net_metrics.set(ep.metrics());
    let view_timeout_us = g.params.view_timeout_ms.saturating_mul(1000);
    let cfg = plume_consensus::Config {
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
    };
    let engine = Engine::new(
        cfg,
        plume_crypto::bls::SecretKey::from_bytes(&setup.keys.consensus.to_bytes())?,
        recovered,
    );
    let ep = Rc::new(ep);
    let core = Rc::new(RefCell::new(Core {
        engine,
        safety,
        ep: ep.clone(),
        peers,
        batching: setup.config.batching.clone(),
        mempool: Mempool::with_limits(
            setup.config.mempool.txs_max as usize,
            setup.config.mempool.mib_max as usize * 1024 * 1024,
        ),
        batches: BatchCache::new(BATCHES_HELD_MAX, BATCHES_HELD_BYTES_MAX),
        finalized_recent: RecentDigests::default(),
        own_pending: BTreeMap::new(),
        peer_pending: BTreeMap::new(),
        ready: VecDeque::new(),
        fed: HashMap::new(),
        fed_txs: 0,
        block_txs_max: setup.params.block_txs_max as usize,
        finalized_waiting: VecDeque::new(),
        requested: HashMap::new(),
        timer_gen: 0,
        exec_tx,
        sig_tx,
        shared,
        timers: Vec::new(),
    }));
    // Give peers a moment to come up, then start consensus.
    core.borrow_mut().step(Input::Start)?;

    // Network receive task.
    let c1 = core.clone();
    let net_task = glommio::spawn_local(async move {
        loop {
            let inb = ep.recv().await;
            let t0 = Instant::now();
            if let Err(e) = c1.borrow_mut().on_inbound(&inb.peer, inb.payload()) {
                tracing::error!("core: {e:#}");
                STOP.store(true, Ordering::SeqCst);
                return;
            }
            c1.borrow().shared.metrics.busy_us[0]
                .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
    })
    .detach();
    // Channel task: verified transactions, batches, execution results.
    let c2 = core.clone();
    let chan_task = glommio::spawn_local(async move {
        while let Ok(msg) = core_rx.recv_async().await {
            let t0 = Instant::now();
            c2.borrow()
                .shared
                .metrics
                .mem
                .core_queue
                .store(core_rx.len() as u64, Ordering::Relaxed);
            let r = c2.borrow_mut().on_core_in(msg);
            if let Err(e) = r {
                tracing::error!("core: {e:#}");
                STOP.store(true, Ordering::SeqCst);
                return;
            }
            c2.borrow().shared.metrics.busy_us[0]
                .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
    })
    .detach();
    // Tick: batches, timers, housekeeping.
    let interval = Duration::from_millis(setup.config.batching.batch_delay_ms as u64);
    while !STOP.load(Ordering::Relaxed) {
        glommio::timer::sleep(interval).await;
        let t0 = Instant::now();
        core.borrow_mut().tick()?;
        core.borrow().shared.metrics.busy_us[0]
            .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
    drop(net_task);
    drop(chan_task);
    Ok(())
}

impl Core {
    fn index_of(&self, peer: &PeerId) -> Option<u32> {
        self.peers.iter().position(|p| p == peer).map(|i| i as u32)
    }

    fn step(&mut self, input: Input<BlsScheme>) -> Result<()> {
        let effects = self.engine.step(input);
        self.apply(effects)
    }

    fn apply(&mut self, effects: Vec<Effect<BlsScheme>>) -> Result<()> {
        for e in effects {
            match e {
                Effect::PersistSafety(s) => self.safety.persist(&s)?,
                Effect::PersistBlock(_) => {}
                Effect::Send { to, msg } => {
                    if let Some(p) = self.peers.get(to as usize).copied() {
                        let bytes = wire::encode(&NetMsg::Consensus(msg));
                        let _ = self.ep.try_send(&p, Channel::Consensus, &bytes);
                    }
                }
                Effect::Broadcast(msg) => {
                    if let Message::Proposal(p) = &msg {
                        if p.block.proposer == self.engine.config().me {
                            for d in &p.block.payload {
                                if let Some(c) = self.fed.remove(d) {
                                    self.fed_txs -= c;
                                }
                            }
                        }
                    }
                    let bytes = wire::encode(&NetMsg::Consensus(msg));
                    for (i, p) in self.peers.iter().enumerate() {
                        if i as u32 != self.engine.config().me {
                            let _ = self.ep.try_send(p, Channel::Consensus, &bytes);
                        }
                    }
                }
                Effect::SetTimer { timer, after_us } => {
                    self.timer_gen += 1;
                    // A timer of the same kind replaces the earlier one.
                    self.timers.retain(|(_, t, _)| {
                        std::mem::discriminant(t) != std::mem::discriminant(&timer)
                    });
                    self.timers.push((
                        self.timer_gen,
                        timer,
                        Instant::now() + Duration::from_micros(after_us),
                    ));
                }
                Effect::Finalized { block, proof } => {
                    for d in &block.payload {
                        self.finalized_recent.insert(*d, FINALIZED_DIGESTS_MAX);
                        self.own_pending.remove(d);
                        self.peer_pending.remove(d);
                        if let Some(c) = self.fed.remove(d) {
                            self.fed_txs -= c;
                        }
                    }
                    let done: HashSet<Digest> = block.payload.iter().copied().collect();
                    self.ready.retain(|(d, _)| !done.contains(d));
                    self.finalized_waiting.push_back((block, proof));
                }
            }
        }
        self.shared
            .view
            .store(self.engine.view(), Ordering::Relaxed);
        self.shared
            .metrics
            .view
            .store(self.engine.view(), Ordering::Relaxed);
        self.shared
            .metrics
            .consensus_rejected
            .store(self.engine.metrics().rejected_total(), Ordering::Relaxed);
        self.dispatch_finalized()
    }

    /// Hand finalized blocks to execution, in order, once their batches are here.
    fn dispatch_finalized(&mut self) -> Result<()> {
        while let Some((block, _)) = self.finalized_waiting.front() {
            let missing: Vec<Digest> = block
                .payload
                .iter()
                .filter(|d| !self.batches.contains(d))
                .copied()
                .collect();
            if !missing.is_empty() {
                let now = Instant::now();
                let want: Vec<Digest> = missing
                    .into_iter()
                    .filter(|d| {
                        self.requested
                            .get(d)
                            .is_none_or(|t| now.duration_since(*t) > Duration::from_millis(200))
                    })
                    .collect();
                if !want.is_empty() {
                    for d in &want {
                        self.requested.insert(*d, now);
                    }
                    let bytes = wire::encode(&NetMsg::BatchRequest(want));
                    for (i, p) in self.peers.iter().enumerate() {
                        if i as u32 != self.engine.config().me {
                            let _ = self.ep.try_send(p, Channel::Bulk, &bytes);
                        }
                    }
                }
                return Ok(());
            }
            let (block, proof) = self.finalized_waiting.pop_front().expect("front exists");
            let batches = block
                .payload
                .iter()
                .map(|d| self.batches.get(d).expect("checked above").clone())
                .collect();
            if self
                .exec_tx
                .send(ExecJob {
                    block,
                    proof,
                    batches,
                })
                .is_err()
            {
                if STOP.load(Ordering::Relaxed) {
                    return Ok(());
                }
                bail!("execution thread is gone");
            }
        }
        Ok(())
    }

    fn on_inbound(&mut self, peer: &PeerId, bytes: &[u8]) -> Result<()> {
        let Some(from) = self.index_of(peer) else {
            return Ok(());
        };
        let msg = match wire::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.shared
                    .metrics
                    .malformed_msgs
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "dropping malformed message: {e}");
                return Ok(());
            }
        };
        match msg {
            NetMsg::Consensus(m) => {
                if matches!(m, Message::Timeout(_)) {
                    // counted as a view change attempt by a peer
                }
                self.step(Input::Message { from, msg: m })?;
            }
            NetMsg::Batch { digest, txs } => {
                // A batch already held, or already finalized (a late or
                // re-sent copy), is not verified again.
                let late = self.finalized_recent.contains(&digest)
                    && self
                        .finalized_waiting
                        .iter()
                        .all(|(b, _)| !b.payload.contains(&digest));
                if !self.batches.contains(&digest) && !late {
                    let _ = self.sig_tx.try_send(SigIn::PeerBatch { digest, txs });
                }
            }
            NetMsg::BatchRequest(ds) => {
                for d in ds {
                    if let Some(b) = self.batches.get(&d) {
                        let bytes = wire::encode(&NetMsg::Batch {
                            digest: d,
                            txs: b.raw.clone(),
                        });
                        let _ = self.ep.try_send(peer, Channel::Bulk, &bytes);
                    }
                }
            }
        }
        Ok(())
    }

    fn hold_batch(&mut self, b: Arc<VerifiedBatch>) {
        // A requested batch has arrived: forget the request (the map stays
        // bounded by what is still missing).
        self.requested.remove(&b.digest);
        // Pinned: still pending here, or needed by a finalized block that
        // waits for execution. Only finalized batches are evicted.
        self.batches.insert(b);
        self.trim_batches();
    }

    /// Evict finalized batches while the cache is over a bound. Pinned (never
    /// evicted): batches still pending here, or needed by a finalized block
    /// that waits for execution. True when pinned batches alone reach a
    /// bound.
    fn trim_batches(&mut self) -> bool {
        let pinned = |d: &Digest| {
            self.own_pending.contains_key(d)
                || self.peer_pending.contains_key(d)
                || self.fed.contains_key(d)
                || self
                    .finalized_waiting
                    .iter()
                    .any(|(b, _)| b.payload.contains(d))
        };
        self.batches.trim(pinned);
        self.batches.over_bounds()
    }

    /// Publish the sizes of the core's collections (`plume_mem_*`).
    fn update_mem_gauges(&self) {
        let g = &self.shared.metrics.mem;
        let set = |a: &AtomicU64, v: usize| a.store(v as u64, Ordering::Relaxed);
        set(&g.batches, self.batches.len());
        set(&g.batches_bytes, self.batches.bytes());
        set(&g.own_pending, self.own_pending.len());
        set(&g.peer_pending, self.peer_pending.len());
        set(&g.finalized_recent, self.finalized_recent.len());
        set(&g.ready, self.ready.len());
        set(&g.fed, self.fed.len());
        set(&g.finalized_waiting, self.finalized_waiting.len());
        set(&g.requested, self.requested.len());
        set(&g.timers, self.timers.len());
        set(&g.mempool_txs, self.mempool.len());
        set(&g.mempool_bytes, self.mempool.bytes());
        set(&g.mempool_senders, self.mempool.senders_len());
        set(&g.mempool_recent_ids, self.mempool.recent_len());
        set(&g.exec_queue, self.exec_tx.len());
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
                let r = self.mempool.insert(ptx, bytes, state_seq);
                let r = match r {
                    Ok(()) => {
                        self.shared
                            .metrics
                            .txs_admitted
                            .fetch_add(1, Ordering::Relaxed);
                        Ok(hash)
                    }
                    Err(e) => {
                        self.shared
                            .metrics
                            .txs_rejected
                            .fetch_add(1, Ordering::Relaxed);
                        let code = match e {
                            MempoolError::Duplicate => codes::DUPLICATE,
                            MempoolError::Full => codes::MEMPOOL_FULL,
                            MempoolError::SequenceUsed { .. } => codes::SEQUENCE_USED,
                            MempoolError::SequenceTooFar { .. } => codes::SEQUENCE_TOO_FAR,
                        };
                        Err(ApiError::new(code, e.to_string()))
                    }
                };
                self.shared
                    .metrics
                    .mempool_depth
                    .store(self.mempool.len() as u64, Ordering::Relaxed);
                let _ = reply.send(r);
            }
            CoreIn::Batch(b) => {
                // Pending unless it is ours, already finalized (a late copy)
                // or there is no room: a batch not pending may be evicted.
                if !self.own_pending.contains_key(&b.digest)
                    && !self.finalized_recent.contains(&b.digest)
                    && self.peer_pending.len() < BATCHES_HELD_MAX
                    && !self.trim_batches()
                {
                    self.peer_pending
                        .entry(b.digest)
                        .or_insert_with(Instant::now);
                }
                self.hold_batch(b);
                self.dispatch_finalized()?;
            }
            CoreIn::Executed {
                height,
                block,
                root,
                sequences,
            } => {
                for (a, next) in sequences {
                    self.mempool.advance(&a, next);
                }
                self.shared
                    .metrics
                    .mempool_depth
                    .store(self.mempool.len() as u64, Ordering::Relaxed);
                self.step(Input::Executed {
                    height,
                    block,
                    state_root: root,
                })?;
            }
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<()> {
        // Timers.
        let now = Instant::now();
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, _, at)| *at <= now)
            .map(|(_, t, _)| *t)
            .collect();
        self.timers.retain(|(_, _, at)| *at > now);
        for t in due {
            let Timer::View(v) = t;
            if v == self.engine.view() {
                self.shared
                    .metrics
                    .view_changes
                    .fetch_add(1, Ordering::Relaxed);
            }
            self.step(Input::TimerFired(t))?;
        }
        // A batch from the mempool, unless the batch cache is full of
        // pending batches (back-pressure: the mempool fills and refuses).
        if !self.mempool.is_empty() && !self.trim_batches() {
            let taken = self.mempool.take_batch(
                self.batching.batch_max_txs as usize,
                self.batching.batch_max_bytes as usize,
            );
            if !taken.is_empty() {
                let ids: Vec<Digest> = taken.iter().map(|(p, _)| p.hash).collect();
                let digest = batch_root(&ids);
                let mut txs = Vec::with_capacity(taken.len());
                let mut raw = Vec::with_capacity(taken.len());
                for (p, b) in taken {
                    txs.push(Some(p));
                    raw.push(b);
                }
                let valid = vec![true; txs.len()];
                let bytes = wire::encode(&NetMsg::Batch {
                    digest,
                    txs: raw.clone(),
                });
                // Pending first, so the cache never evicts it.
                self.own_pending.insert(digest, now);
                self.hold_batch(Arc::new(VerifiedBatch {
                    digest,
                    txs,
                    raw,
                    valid,
                }));
                for (i, p) in self.peers.iter().enumerate() {
                    if i as u32 != self.engine.config().me {
                        let _ = self.ep.try_send(p, Channel::Bulk, &bytes);
                    }
                }
                self.ready.push_back((digest, ids.len()));
            }
            self.shared
                .metrics
                .mempool_depth
                .store(self.mempool.len() as u64, Ordering::Relaxed);
        }
        // Own batches that did not make it into a finalized block: offer again.
        let stale: Vec<Digest> = self
            .own_pending
            .iter()
            .filter(|(_, t)| now.duration_since(**t) > BATCH_REPROPOSE_AFTER)
            .map(|(d, _)| *d)
            .collect();
        // Peers' batches that stayed unfinalized for twice as long.
        let orphaned: Vec<Digest> = self
            .peer_pending
            .iter()
            .filter(|(_, t)| now.duration_since(**t) > 2 * BATCH_REPROPOSE_AFTER)
            .map(|(d, _)| *d)
            .collect();
        for d in &orphaned {
            self.peer_pending.insert(*d, now);
        }
        // Send stale own batches to every peer again: a peer that missed the
        // first broadcast (a full queue) could otherwise never propose it,
        // and if leader reputation skips this validator nobody would.
        for d in &stale {
            if let Some(b) = self.batches.get(d) {
                let bytes = wire::encode(&NetMsg::Batch {
                    digest: *d,
                    txs: b.raw.clone(),
                });
                for (i, p) in self.peers.iter().enumerate() {
                    if i as u32 != self.engine.config().me {
                        let _ = self.ep.try_send(p, Channel::Bulk, &bytes);
                    }
                }
            }
        }
        for d in stale.into_iter().chain(orphaned) {
            self.own_pending.entry(d).and_modify(|t| *t = now);
            if !self.fed.contains_key(&d) && !self.ready.iter().any(|(r, _)| *r == d) {
                let n = self.batches.get(&d).map_or(0, |b| b.txs.len());
                self.ready.push_back((d, n));
            }
        }
        // Offer batches to the engine while one block can still hold them
        // all: a block never carries more than `block_txs_max` transactions.
        let mut offer = Vec::new();
        while let Some(&(d, n)) = self.ready.front() {
            if self.fed_txs + n > self.block_txs_max && !(self.fed.is_empty() && offer.is_empty()) {
                break;
            }
            self.ready.pop_front();
            self.fed_txs += n;
            self.fed.insert(d, n);
            offer.push(d);
        }
        if !offer.is_empty() {
            self.step(Input::PayloadReady(offer))?;
        }
        if self.finalized_waiting.is_empty() {
            // Nothing is missing: no request is still useful.
            self.requested.clear();
        }
        self.update_mem_gauges();
        self.shared
            .metrics
            .peers
            .store(self.ep.connected_peers().len() as u64, Ordering::Relaxed);
        if let Ok(mut p) = self.shared.peers.try_lock() {
            *p = self
                .ep
                .connected_peers()
                .iter()
                .map(|p| p.to_string())
                .collect();
        }
        self.dispatch_finalized()
    }
}

/// Most finalized blocks committed in one LMDB write transaction when
/// execution falls behind (group commit).
pub const GROUP_COMMIT_MAX: usize = 32;

/// One executed block waiting for the group's commit.
struct Executed {
    block: Block<BlsScheme>,
    root: Digest,
    txs: Vec<PreparedTx>,
    raws: Vec<Vec<u8>>,
    receipts: Vec<Receipt>,
    receipt_bytes: Vec<Vec<u8>>,
    block_bytes: Vec<u8>,
    proof_bytes: Vec<u8>,
    digests: Vec<Digest>,
}

fn exec_loop(
    mut store: Store<LmdbKv>,
    rx: flume::Receiver<ExecJob>,
    core_tx: flume::Sender<CoreIn>,
    shared: &Shared,
    params: &plume_execution::Params,
    validators: &[crate::keys::ValidatorInfo],
) -> Result<()> {
    let shards = 2usize;
    let mut executed_batches: VecDeque<Digest> = VecDeque::new();
    let mut executed_set: HashSet<Digest> = HashSet::new();
    while let Ok(first) = rx.recv() {
        let t0 = Instant::now();
        let mut jobs = vec![first];
        while jobs.len() < GROUP_COMMIT_MAX {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut next_height = store.finalized_height().map_or(0, |h| h + 1);
        let mut group: Vec<Executed> = Vec::with_capacity(jobs.len());
        let mut group_txs: HashSet<Digest> = HashSet::new();
        for job in jobs {
            let height = job.block.height;
            if height < next_height {
                continue; // already committed (replay after a restart)
            }
            if height != next_height {
                bail!("finalized block at height {height} but the store expects {next_height}");
            }
            group.push(execute_one(
                &mut store,
                job,
                params,
                validators,
                shards,
                &mut executed_set,
                &mut group_txs,
                shared,
            )?);
            next_height += 1;
        }
        if group.is_empty() {
            continue;
        }
        let entries: Vec<Vec<plume_storage::TxEntry<'_>>> = group
            .iter()
            .map(|e| {
                e.txs
                    .iter()
                    .zip(&e.raws)
                    .zip(&e.receipt_bytes)
                    .map(|((p, raw), rc)| plume_storage::TxEntry {
                        hash: p.hash,
                        tx: raw,
                        receipt: rc,
                    })
                    .collect()
            })
            .collect();
        let commits: Vec<plume_storage::BlockCommit<'_>> = group
            .iter()
            .zip(&entries)
            .map(|(e, ent)| plume_storage::BlockCommit {
                height: e.block.height,
                hash: e.block.id,
                block: &e.block_bytes,
                qc: &e.proof_bytes,
                txs: ent,
            })
            .collect();
        store
            .commit_blocks(&commits)
            .map_err(|e| anyhow!("committing blocks: {e}"))?;
        drop(commits);
        drop(entries);
        // Durable: now tell consensus, subscribers and clients.
        let m = &shared.metrics;
        for e in &group {
            let height = e.block.height;
            for d in &e.digests {
                executed_batches.push_back(*d);
                if executed_batches.len() > BATCHES_HELD_MAX {
                    if let Some(old) = executed_batches.pop_front() {
                        executed_set.remove(&old);
                    }
                }
            }
            m.blocks_finalized.fetch_add(1, Ordering::Relaxed);
            m.txs_finalized
                .fetch_add(e.txs.len() as u64, Ordering::Relaxed);
            m.height.store(height, Ordering::Relaxed);
            *shared.state_root.lock().expect("not poisoned") = (height, e.root);
            {
                let mut sub = shared.submitted.lock().expect("not poisoned");
                for p in &e.txs {
                    if let Some(t) = sub.remove(&p.hash) {
                        m.finality_ms.observe(t.elapsed().as_millis() as u64);
                    }
                }
            }
            publish(shared, height, &e.block, e.root, &e.txs, &e.receipts);
            let mut payers: Vec<Address> =
                e.txs.iter().filter_map(|p| p.payer().copied()).collect();
            payers.sort();
            payers.dedup();
            let mut sequences = Vec::with_capacity(payers.len());
            for a in payers {
                let acct = plume_execution::state::read_account(&store, &a)
                    .map_err(|err| anyhow!("reading account {a}: {err}"))?;
                sequences.push((a, acct.sequence));
            }
            let _ = core_tx.send(CoreIn::Executed {
                height,
                block: e.block.id,
                root: e.root,
                sequences,
            });
        }
        m.mem
            .executed_batches
            .store(executed_batches.len() as u64, Ordering::Relaxed);
        m.mem.executed_set_bytes.store(
            table_bytes::<Digest, ()>(executed_set.capacity()),
            Ordering::Relaxed,
        );
        m.busy_us[2].fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        if STOP.load(Ordering::Relaxed) && rx.is_empty() {
            break;
        }
    }
    Ok(())
}

/// Execute one finalized block against the (staged) state; its writes are
/// staged and its root returned, nothing is durable yet.
fn execute_one(
    store: &mut Store<LmdbKv>,
    job: ExecJob,
    params: &plume_execution::Params,
    validators: &[crate::keys::ValidatorInfo],
    shards: usize,
    executed_set: &mut HashSet<Digest>,
    group_txs: &mut HashSet<Digest>,
    shared: &Shared,
) -> Result<Executed> {
    let height = job.block.height;
    // Transactions in block order; a batch already executed in an earlier
    // block is skipped (re-proposed batches), as are transactions that failed
    // decoding or signature checks: deterministic, so every validator skips
    // the same ones.
    let mut txs: Vec<PreparedTx> = Vec::new();
    let mut raws: Vec<Vec<u8>> = Vec::new();
    let mut skipped = 0u64;
    let mut seen_here: HashSet<Digest> = HashSet::new();
    let mut newly_executed = Vec::new();
    for b in &job.batches {
        if executed_set.contains(&b.digest) || !seen_here.insert(b.digest) {
            continue;
        }
        newly_executed.push(b.digest);
        for (i, t) in b.txs.iter().enumerate() {
            match t {
                Some(p) if b.valid[i] => {
                    // A transaction already in a finalized block (a batch
                    // offered twice, even across a restart) is not executed
                    // again: its first receipt stands. The store is the same
                    // on every validator, so this is deterministic.
                    let dup = !group_txs.insert(p.hash)
                        || store
                            .tx(&p.hash)
                            .map_err(|e| anyhow!("reading tx index: {e}"))?
                            .is_some();
                    if dup {
                        continue;
                    }
                    txs.push(p.clone());
                    raws.push(b.raw[i].clone());
                }
                _ => skipped += 1,
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(
            height,
            skipped,
            "transactions with bad encodings or signatures skipped"
        );
    }
    let proposer = validators
        .get(job.block.proposer as usize)
        .and_then(|v| plume_crypto::ed25519::PublicKey::from_hex(&v.network_key).ok())
        .map(|k| k.address())
        .unwrap_or_default();
    let ctx = plume_execution::BlockContext { height, proposer };
    let max = params.block_txs_max as usize;
    if txs.len() > max {
        // Honest proposers never exceed the limit (the core budgets what it
        // offers); a block from a faulty one is cut deterministically here,
        // the same way on every validator.
        tracing::warn!(
            height,
            txs = txs.len(),
            max,
            "block exceeds block_txs_max; executing the first {max}"
        );
        shared
            .metrics
            .txs_cut
            .fetch_add((txs.len() - max) as u64, Ordering::Relaxed);
        txs.truncate(max);
        raws.truncate(max);
    }
    let out = plume_execution::apply_block_sharded(&*store, params, &ctx, &txs, shards)
        .map_err(|e| anyhow!("executing block {height}: {e}"))?;
    let root = plume_storage::AuthenticatedState::apply(store, &out.writes)
        .map_err(|e| anyhow!("staging block {height}: {e}"))?;
    // Later blocks of the same group must see these batches as executed.
    executed_set.extend(newly_executed.iter().copied());
    let batch_ids: Vec<Vec<Digest>> = job
        .batches
        .iter()
        .map(|b| {
            b.txs
                .iter()
                .zip(&b.raw)
                .map(|(t, r)| {
                    t.as_ref().map_or_else(
                        || plume_crypto::hash(plume_crypto::Domain::Tx, r),
                        |p| p.hash,
                    )
                })
                .collect()
        })
        .collect();
    let receipt_bytes = out.receipts.iter().map(encode_receipt).collect();
    Ok(Executed {
        block_bytes: crate::proof::encode_block_record(&job.block, &batch_ids),
        proof_bytes: encode_proof(&job.proof),
        digests: newly_executed,
        block: job.block,
        root,
        txs,
        raws,
        receipts: out.receipts,
        receipt_bytes,
    })
}

/// Encode a commit proof: child block then its certificate.
pub fn encode_proof(p: &CommitProof<BlsScheme>) -> Vec<u8> {
    let child = wire::encode_block(&p.child);
    let mut out = Vec::with_capacity(child.len() + 256);
    out.extend_from_slice(&(child.len() as u32).to_le_bytes());
    out.extend_from_slice(&child);
    out.extend_from_slice(&wire::encode_qc(&p.child_qc));
    out
}

/// Decode [`encode_proof`].
pub fn decode_proof(b: &[u8]) -> Result<CommitProof<BlsScheme>> {
    if b.len() < 4 {
        bail!("proof truncated");
    }
    let n = u32::from_le_bytes(b[..4].try_into().expect("4")) as usize;
    let child_bytes = b.get(4..4 + n).ok_or_else(|| anyhow!("proof truncated"))?;
    let child = wire::decode_block(child_bytes)?;
    let child_qc = wire::decode_qc(&b[4 + n..])?;
    Ok(CommitProof { child, child_qc })
}

fn publish(
    shared: &Shared,
    height: u64,
    block: &Block<BlsScheme>,
    root: Digest,
    txs: &[PreparedTx],
    receipts: &[Receipt],
) {
    let mut subs = shared.subscribers.lock().expect("not poisoned");
    if subs.is_empty() {
        return;
    }
    subs.retain(|(_, tx)| !tx.is_disconnected());
    let hashes: Vec<String> = txs
        .iter()
        .take(BLOCK_NOTE_HASHES_MAX)
        .map(|p| p.hash.to_hex())
        .collect();
    let block_note = json!({
        "height": height, "hash": block.id.to_hex(), "view": block.view, "txs": txs.len(),
        "state_root": root.to_hex(), "tx_hashes": hashes,
    });
    for (topic, tx) in subs.iter() {
        match topic {
            Topic::Blocks => {
                if tx.try_send(block_note.clone()).is_err() {
                    shared
                        .metrics
                        .notifications_dropped
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            Topic::Receipts(addr) => {
                for (p, r) in txs.iter().zip(receipts) {
                    let touches = {
                        let mut t = Vec::new();
                        p.touched(&mut t);
                        t.iter().any(|a| hex::encode(a) == *addr)
                    };
                    if touches
                        && tx
                            .try_send(json!({"height": height, "tx": p.hash.to_hex(), "receipt": receipt_json(r)}))
                            .is_err()
                    {
                        shared.metrics.notifications_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// rkyv bytes of a receipt (what the store keeps).
pub fn encode_receipt(r: &Receipt) -> Vec<u8> {
    rkyv::to_bytes::<rkyv::rancor::Error>(r)
        .expect("in-memory serialisation cannot fail")
        .into_vec()
}

/// Decode a stored receipt (validated before access).
pub fn decode_receipt(b: &[u8]) -> Result<Receipt> {
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(b.len());
    aligned.extend_from_slice(b);
    rkyv::from_bytes::<Receipt, rkyv::rancor::Error>(&aligned)
        .map_err(|e| anyhow!("corrupt receipt: {e}"))
}

/// A receipt for clients.
pub fn receipt_json(r: &Receipt) -> Value {
    json!({
        "tx": hex::encode(r.tx_hash),
        "status": format!("{:?}", r.status),
        "reason": format!("{:?}", r.reason),
        "gas_used": r.gas_used,
        "fee_paid": r.fee_paid.to_string(),
        "fee_burned": r.fee_burned.to_string(),
        "tip": r.tip.to_string(),
        "events": r.events.iter().map(|e| json!({
            "account": hex::encode(e.account),
            "asset": hex::encode(e.asset),
            "credit": e.credit,
            "amount": e.amount.to_string(),
            "cause": format!("{:?}", e.cause),
        })).collect::<Vec<_>>(),
    })
}

/// The API's view of a running node.
struct ApiNode {
    shared: Arc<Shared>,
}

impl ApiNode {
    fn store(&self) -> Result<Store<LmdbKv>, ApiError> {
        Store::open(self.shared.kv.clone())
            .map_err(|e| ApiError::new(codes::INTERNAL, format!("store: {e}")))
    }

    /// Check and hand over many transactions; replies in order.
    fn submit_all(&self, hex_txs: &[Result<&str, ApiError>]) -> Vec<Result<Digest, ApiError>> {
        let store = match self.store() {
            Ok(s) => s,
            Err(e) => return hex_txs.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut waiting: Vec<Result<flume::Receiver<Result<Digest, ApiError>>, ApiError>> =
            Vec::with_capacity(hex_txs.len());
        for h in hex_txs {
            waiting.push(h.clone().and_then(|h| self.precheck_and_queue(&store, h)));
        }
        drop(store);
        let deadline = Instant::now() + Duration::from_secs(30);
        let out: Vec<Result<Digest, ApiError>> = waiting
            .into_iter()
            .map(|w| {
                w.and_then(|rx| {
                    rx.recv_deadline(deadline).map_err(|_| {
                        ApiError::new(codes::UNAVAILABLE, "node did not answer in time")
                    })?
                })
            })
            .collect();
        let now = Instant::now();
        let mut sub = self.shared.submitted.lock().expect("not poisoned");
        for h in out.iter().flatten() {
            if sub.len() >= SUBMITTED_MAX {
                // Entries that never saw finality here (dropped, or finalized
                // before they were recorded) would otherwise stay forever.
                sub.retain(|_, t| now.duration_since(*t) < SUBMITTED_TTL);
            }
            if sub.len() < SUBMITTED_MAX {
                sub.insert(*h, now);
            }
        }
        out
    }

    fn precheck_and_queue(
        &self,
        store: &Store<LmdbKv>,
        hex_tx: &str,
    ) -> Result<flume::Receiver<Result<Digest, ApiError>>, ApiError> {
        let bytes = hex::decode(hex_tx.trim_start_matches("0x"))
            .map_err(|_| ApiError::new(codes::MALFORMED_TX, "transaction is not hex"))?;
        if bytes.len() > plume_execution::tx::TX_BYTES_MAX {
            return Err(ApiError::new(
                codes::OVERSIZED,
                format!(
                    "transaction is {} bytes, at most {}",
                    bytes.len(),
                    plume_execution::tx::TX_BYTES_MAX
                ),
            ));
        }
        // Stateful checks against the latest committed state, before the
        // signature stage.
        let tx = Transaction::from_bytes(&bytes)
            .map_err(|e| ApiError::new(codes::MALFORMED_TX, e.to_string()))?;
        if tx.body.chain_id != self.shared.setup_chain_id {
            return Err(ApiError::new(
                codes::WRONG_CHAIN,
                format!(
                    "chain id {:?}, this network is {:?}",
                    tx.body.chain_id, self.shared.setup_chain_id
                ),
            ));
        }
        let ptx = PreparedTx::new(tx);
        let payer = ptx.payer().copied().unwrap_or_default();
        let state_seq = plume_execution::state::read_account(store, &payer)
            .map_err(|e| ApiError::new(codes::INTERNAL, e.to_string()))?
            .sequence;
        if let Err(e) = plume_execution::precheck(store, &self.shared.params, &ptx) {
            return Err(precheck_error(&e, ptx.tx.body.sequence, state_seq));
        }
        let (rtx, rrx) = flume::bounded(1);
        self.shared
            .sig_tx
            .try_send(SigIn::Submit {
                bytes,
                state_seq,
                reply: rtx,
            })
            .map_err(|_| ApiError::new(codes::MEMPOOL_FULL, "signature queue full; retry later"))?;
        Ok(rrx)
    }
}

fn precheck_error(e: &plume_execution::PrecheckError, seq: u64, state_seq: u64) -> ApiError {
    use plume_execution::Reason as R;
    let code = match e {
        plume_execution::PrecheckError::State(_) => codes::INTERNAL,
        plume_execution::PrecheckError::Refused(r) => match r {
            R::WrongChain => codes::WRONG_CHAIN,
            R::Expired => codes::EXPIRED,
            R::BadSequence if seq < state_seq => codes::SEQUENCE_USED,
            R::BadSequence => codes::SEQUENCE_TOO_FAR,
            R::FeeCapBelowBaseFee | R::InsufficientFeeBalance => codes::FEE_TOO_LOW,
            _ => codes::MALFORMED_TX,
        },
    };
    ApiError::new(code, e.to_string())
}

fn param_str<'a>(params: &'a Value, i: usize, name: &str) -> Result<&'a str, ApiError> {
    params
        .get(i)
        .or_else(|| params.get(name))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::new(
                codes::INVALID_PARAMS,
                format!("missing string parameter {name:?}"),
            )
        })
}

impl ApiNode {
    fn finality_proof(
        &self,
        store: &Store<LmdbKv>,
        height: u64,
        tx: &Digest,
    ) -> Result<Value, ApiError> {
        let internal = |e: String| ApiError::new(codes::INTERNAL, e);
        let block_at = |h: u64| -> Result<(Block<BlsScheme>, Vec<Vec<Digest>>), ApiError> {
            let rec = store
                .block(h)
                .map_err(|e| internal(e.to_string()))?
                .ok_or_else(|| internal(format!("block {h} missing")))?;
            crate::proof::decode_block_record(&rec.bytes).map_err(|e| internal(e.to_string()))
        };
        let (first, batches) = block_at(height)?;
        let (batch_index, tx_index, batch_len, siblings) = crate::proof::locate(&batches, tx)
            .ok_or_else(|| internal("transaction not in its block's batches".into()))?;
        let qc = store
            .qc(height)
            .map_err(|e| internal(e.to_string()))?
            .ok_or_else(|| internal(format!("commit proof of block {height} missing")))?;
        let proof = decode_proof(&qc.bytes).map_err(|e| internal(e.to_string()))?;
        let committed_height = proof.child.height.saturating_sub(1);
        let mut chain = vec![hex::encode(wire::encode_block(&first))];
        let mut h = height + 1;
        while h <= committed_height && chain.len() < crate::proof::PROOF_CHAIN_MAX {
            chain.push(hex::encode(wire::encode_block(&block_at(h)?.0)));
            h += 1;
        }
        let p = crate::proof::FinalityProof {
            tx: tx.to_hex(),
            chain,
            batch_index,
            tx_index,
            batch_len,
            siblings: siblings.iter().map(|d| d.to_hex()).collect(),
            commit_proof: hex::encode(&qc.bytes),
        };
        serde_json::to_value(p).map_err(|e| internal(e.to_string()))
    }
}

impl NodeApi for ApiNode {
    fn call(&self, method: &str, params: &Value) -> Result<Value, ApiError> {
        match method {
            "plume_submitTransaction" => {
                let h = self
                    .submit_all(&[param_str(params, 0, "tx")])
                    .pop()
                    .expect("one result per input")?;
                Ok(json!({"hash": h.to_hex()}))
            }
            "plume_status" => {
                let (height, root) = *self.shared.state_root.lock().expect("not poisoned");
                let m = &self.shared.metrics;
                Ok(json!({
                    "chain_id": self.shared.setup_chain_id,
                    "height": height,
                    "state_root": root.to_hex(),
                    "view": self.shared.view.load(Ordering::Relaxed),
                    "validators": self.shared.committee_len,
                    "peers": m.peers.load(Ordering::Relaxed),
                    "mempool": m.mempool_depth.load(Ordering::Relaxed),
                    "txs_finalized": m.txs_finalized.load(Ordering::Relaxed),
                    "blocks_finalized": m.blocks_finalized.load(Ordering::Relaxed),
                    "view_changes": m.view_changes.load(Ordering::Relaxed),
                    "uptime_s": self.shared.started.elapsed().as_secs(),
                }))
            }
            "plume_peers" => Ok(json!(self
                .shared
                .peers
                .lock()
                .expect("not poisoned")
                .clone())),
            "plume_getBlock" => {
                let height = params
                    .get(0)
                    .or_else(|| params.get("height"))
                    .and_then(Value::as_u64)
                    .ok_or_else(|| {
                        ApiError::new(
                            codes::INVALID_PARAMS,
                            "missing integer parameter \"height\"",
                        )
                    })?;
                let store = self.store()?;
                let rec = store
                    .block(height)
                    .map_err(|e| ApiError::new(codes::INTERNAL, e.to_string()))?
                    .ok_or_else(|| {
                        ApiError::new(
                            codes::NOT_FOUND,
                            format!("no finalized block at height {height}"),
                        )
                    })?;
                let (b, _) = crate::proof::decode_block_record(&rec.bytes)
                    .map_err(|e| ApiError::new(codes::INTERNAL, e.to_string()))?;
                Ok(json!({
                    "height": b.height, "hash": b.id.to_hex(), "view": b.view, "epoch": b.epoch,
                    "parent": b.parent.to_hex(), "proposer": b.proposer,
                    "batches": b.payload.iter().map(|d| d.to_hex()).collect::<Vec<_>>(),
                    "block_bytes": hex::encode(wire::encode_block(&b)),
                }))
            }
            "plume_getTransaction" => {
                let h = Digest::from_hex(param_str(params, 0, "hash")?)
                    .map_err(|e| ApiError::new(codes::INVALID_PARAMS, e.to_string()))?;
                let store = self.store()?;
                let rec = store
                    .tx(&h)
                    .map_err(|e| ApiError::new(codes::INTERNAL, e.to_string()))?
                    .ok_or_else(|| {
                        ApiError::new(
                            codes::NOT_FOUND,
                            format!("transaction {h} is not in a finalized block"),
                        )
                    })?;
                let receipt = store
                    .receipt(&h)
                    .map_err(|e| ApiError::new(codes::INTERNAL, e.to_string()))?
                    .ok_or_else(|| ApiError::new(codes::INTERNAL, "receipt missing"))?;
                let receipt = decode_receipt(&receipt.bytes)
                    .map_err(|e| ApiError::new(codes::INTERNAL, e.to_string()))?;
                let proof = self.finality_proof(&store, rec.height, &h)?;
                Ok(json!({
                    "hash": h.to_hex(),
                    "height": rec.height,
                    "index": rec.index,
                    "tx": hex::encode(&rec.bytes),
                    "receipt": receipt_json(&receipt),
                    "finality_proof": proof,
                }))
            }
            "plume_getAccount" => {
                let a = Address::from_hex(param_str(params, 0, "address")?)
                    .map_err(|e| ApiError::new(codes::INVALID_PARAMS, e.to_string()))?;
                let store = self.store()?;
                let bal = plume_execution::state::read_balance(
                    &store,
                    &a,
                    &plume_execution::tx::NATIVE_ASSET,
                )
                .map_err(|e| ApiError::new(codes::INTERNAL, e.to_string()))?;
                let acct = plume_execution::state::read_account(&store, &a)
                    .map_err(|e| ApiError::new(codes::INTERNAL, e.to_string()))?;
                let proof = store
                    .prove(&a.0)
                    .map_err(|e| ApiError::new(codes::INTERNAL, e.to_string()))?;
                Ok(json!({
                    "address": a.to_hex(),
                    "balance": bal.to_string(),
                    "sequence": acct.sequence,
                    "height": store.finalized_height(),
                    "state_root": store.committed_root().to_hex(),
                    "state_proof": format!("{proof:?}"),
                }))
            }
            other => Err(ApiError::new(
                codes::METHOD_NOT_FOUND,
                format!("unknown method {other:?}"),
            )),
        }
    }

    fn submit_many(&self, params: &[Value]) -> Vec<Result<Value, ApiError>> {
        let txs: Vec<Result<&str, ApiError>> =
            params.iter().map(|p| param_str(p, 0, "tx")).collect();
        self.submit_all(&txs)
            .into_iter()
            .map(|r| r.map(|h| json!({"hash": h.to_hex()})))
            .collect()
    }

    fn metrics_text(&self) -> String {
        let m = &self.shared.metrics;
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            ));
        };
        counter(
            "plume_txs_admitted_total",
            "Transactions admitted to the mempool.",
            m.txs_admitted.load(Ordering::Relaxed),
        );
        counter(
            "plume_txs_rejected_total",
            "Transactions rejected at submission.",
            m.txs_rejected.load(Ordering::Relaxed),
        );
        counter(
            "plume_txs_finalized_total",
            "Transactions executed in finalized blocks.",
            m.txs_finalized.load(Ordering::Relaxed),
        );
        counter(
            "plume_blocks_finalized_total",
            "Blocks finalized and committed.",
            m.blocks_finalized.load(Ordering::Relaxed),
        );
        counter(
            "plume_sig_batches_total",
            "Signature verification batches.",
            m.sig_batches.load(Ordering::Relaxed),
        );
        counter(
            "plume_sigs_verified_total",
            "Signatures verified.",
            m.sigs_verified.load(Ordering::Relaxed),
        );
        counter(
            "plume_view_changes_total",
            "Local view timeouts.",
            m.view_changes.load(Ordering::Relaxed),
        );
        counter(
            "plume_malformed_messages_total",
            "Malformed peer messages dropped.",
            m.malformed_msgs.load(Ordering::Relaxed),
        );
        counter(
            "plume_consensus_rejected_total",
            "Consensus messages the engine rejected.",
            m.consensus_rejected.load(Ordering::Relaxed),
        );
        counter(
            "plume_txs_cut_total",
            "Transactions cut from blocks over block_txs_max.",
            m.txs_cut.load(Ordering::Relaxed),
        );
        counter(
            "plume_notifications_dropped_total",
            "Subscription notifications dropped.",
            m.notifications_dropped.load(Ordering::Relaxed),
        );
        for (i, role) in ["core", "sigverify", "exec"].iter().enumerate() {
            s.push_str(&format!(
                "plume_role_busy_seconds_total{{role=\"{role}\"}} {}\n",
                m.busy_us[i].load(Ordering::Relaxed) as f64 / 1e6
            ));
        }
        s.push_str(&format!(
            "# TYPE plume_mempool_depth gauge\nplume_mempool_depth {}\n",
            m.mempool_depth.load(Ordering::Relaxed)
        ));
        s.push_str(&format!(
            "# TYPE plume_peers gauge\nplume_peers {}\n",
            m.peers.load(Ordering::Relaxed)
        ));
        s.push_str(&format!(
            "# TYPE plume_view gauge\nplume_view {}\n",
            m.view.load(Ordering::Relaxed)
        ));
        s.push_str(&format!(
            "# TYPE plume_finalized_height gauge\nplume_finalized_height {}\n",
            m.height.load(Ordering::Relaxed)
        ));
        for (name, help, v) in m.mem.pairs() {
            s.push_str(&format!(
                "# HELP plume_mem_{name} {help}\n# TYPE plume_mem_{name} gauge\nplume_mem_{name} {v}\n"
            ));
        }
        {
            let sub = self.shared.submitted.lock().expect("not poisoned");
            let subs = self.shared.subscribers.lock().expect("not poisoned").len();
            for (name, help, v) in [
                (
                    "submitted",
                    "Submission times held for finality latency.",
                    sub.len() as u64,
                ),
                (
                    "submitted_bytes",
                    "Bytes allocated by the submission-time table (capacity).",
                    table_bytes::<Digest, Instant>(sub.capacity()),
                ),
                ("subscribers", "Subscriptions.", subs as u64),
                (
                    "sig_queue",
                    "Items queued for signature verification.",
                    self.shared.sig_tx.len() as u64,
                ),
            ] {
                s.push_str(&format!(
                    "# HELP plume_mem_{name} {help}\n# TYPE plume_mem_{name} gauge\nplume_mem_{name} {v}\n"
                ));
            }
        }
        if let Some((anon, file)) = proc_self_rss() {
            s.push_str(&format!(
                "# HELP plume_mem_rss_anon_bytes Resident anonymous memory (heap).\n# TYPE plume_mem_rss_anon_bytes gauge\nplume_mem_rss_anon_bytes {anon}\n"
            ));
            s.push_str(&format!(
                "# HELP plume_mem_rss_file_bytes Resident file-backed memory (mostly the LMDB map: page cache).\n# TYPE plume_mem_rss_file_bytes gauge\nplume_mem_rss_file_bytes {file}\n"
            ));
        }
        m.finality_ms
            .render("plume_finality_latency_seconds", &mut s);
        if let Some(nm) = self.shared.net_metrics.get() {
            for (name, v) in nm.snapshot().pairs() {
                s.push_str(&format!("plume_net_{name} {v}\n"));
            }
        }
        if let Some(dm) = self.shared.dgram_metrics.get() {
            for (name, v) in dm.snapshot().pairs() {
                s.push_str(&format!("plume_dgram_{name} {v}\n"));
            }
        }
        s
    }

    fn health(&self) -> (bool, Value) {
        let ok = !STOP.load(Ordering::Relaxed);
        (
            ok,
            json!({"ok": ok, "height": self.shared.metrics.height.load(Ordering::Relaxed)}),
        )
    }

    fn subscribe(&self, topic: Topic) -> Result<flume::Receiver<Value>, ApiError> {
        let (tx, rx) = flume::bounded(SUBSCRIBER_QUEUE);
        let mut subs = self.shared.subscribers.lock().expect("not poisoned");
        if subs.len() >= crate::api::WS_CONNECTIONS_MAX * crate::api::WS_SUBSCRIPTIONS_MAX {
            return Err(ApiError::new(codes::UNAVAILABLE, "too many subscriptions"));
        }
        subs.push((topic, tx));
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(i: u32, txs: usize, tx_len: usize) -> Arc<VerifiedBatch> {
        Arc::new(VerifiedBatch {
            digest: plume_crypto::hash(plume_crypto::Domain::Tx, &i.to_le_bytes()),
            txs: (0..txs).map(|_| None).collect(),
            raw: vec![vec![0u8; tx_len]; txs],
            valid: vec![false; txs],
        })
    }

    #[test]
    fn batch_cache_evicts_oldest_by_bytes() {
        let one = batch_bytes(&batch(0, 10, 1000));
        let mut c = BatchCache::new(1000, 3 * one);
        let all: Vec<_> = (0..5).map(|i| batch(i, 10, 1000)).collect();
        for b in &all {
            c.insert(b.clone());
            c.trim(|_| false);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.bytes(), 3 * one);
        assert!(!c.contains(&all[0].digest) && !c.contains(&all[1].digest));
        assert!(all[2..].iter().all(|b| c.contains(&b.digest)));
        // Inserting a held batch again changes nothing.
        assert!(!c.insert(all[4].clone()));
        assert_eq!(c.trim(|_| false), 0);
        assert_eq!(c.bytes(), 3 * one);
    }

    #[test]
    fn batch_cache_evicts_by_count() {
        let mut c = BatchCache::new(2, usize::MAX);
        let all: Vec<_> = (0..4).map(|i| batch(i, 1, 10)).collect();
        let evicted: usize = all
            .iter()
            .map(|b| {
                c.insert(b.clone());
                c.trim(|_| false)
            })
            .sum();
        assert_eq!(evicted, 2);
        assert_eq!(c.len(), 2);
        assert!(c.contains(&all[3].digest) && c.contains(&all[2].digest));
        // Full of finalized batches is not "over": batching goes on.
        assert!(!c.over_bounds());
    }

    #[test]
    fn batch_cache_never_evicts_a_pinned_batch() {
        let one = batch_bytes(&batch(0, 10, 1000));
        let mut c = BatchCache::new(1000, 2 * one);
        let all: Vec<_> = (0..6).map(|i| batch(i, 10, 1000)).collect();
        // The two oldest are pending.
        let pinned: HashSet<Digest> = all[..2].iter().map(|b| b.digest).collect();
        for b in &all {
            c.insert(b.clone());
            c.trim(|d| pinned.contains(d));
        }
        assert!(all[..2].iter().all(|b| c.contains(&b.digest)));
        assert!(all[2..].iter().filter(|b| c.contains(&b.digest)).count() <= 1);
        assert!(c.bytes() <= 3 * one);
        // Only pinned batches over the bound: nothing is evicted, and the
        // cache reports it is full (the core then stops batching).
        let mut c = BatchCache::new(1000, one);
        let everything: HashSet<Digest> = all.iter().map(|b| b.digest).collect();
        for b in &all {
            assert!(c.insert(b.clone()));
            assert_eq!(c.trim(|d| everything.contains(d)), 0);
        }
        assert_eq!(c.len(), all.len());
        assert!(c.over_bounds());
        // Once they are finalized (unpinned), the next insert trims back.
        c.insert(batch(99, 10, 1000));
        assert_eq!(c.trim(|_| false), all.len());
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), one);
        assert!(!c.over_bounds());
    }

    #[test]
    fn recent_digests_are_bounded() {
        let mut r = RecentDigests::default();
        for i in 0..10u32 {
            r.insert(
                plume_crypto::hash(plume_crypto::Domain::Tx, &i.to_le_bytes()),
                4,
            );
        }
        assert_eq!(r.len(), 4);
        let d = |i: u32| plume_crypto::hash(plume_crypto::Domain::Tx, &i.to_le_bytes());
        assert!(r.contains(&d(9)) && r.contains(&d(6)) && !r.contains(&d(5)));
    }

    #[test]
    fn mem_gauges_render_with_their_names() {
        let m = MemGauges::default();
        m.batches_bytes.store(1234, Ordering::Relaxed);
        let pairs = m.pairs();
        assert!(pairs
            .iter()
            .any(|(n, _, v)| *n == "batches_bytes" && *v == 1234));
        let rss = proc_self_rss().expect("linux /proc");
        assert!(rss.0 > 0);
    }
}
