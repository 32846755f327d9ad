//! Batching, certification and dissemination as a pure state machine.
//!
//! The [`Batcher`] owns the transaction pool and the batches a validator
//! holds. The driver (the node's core role, or a simulator) feeds it events
//! with the current time in microseconds and carries out the [`Action`]s it
//! returns; it never reads a clock, signs, sends, writes or spawns. The
//! driver checks every signature (votes, certificates) before it hands an
//! item over, and drops items the batcher says it does not want first.
//!
//! The life of a batch (`plume_protocol::batch` has the formats):
//! 1. **Cut.** The author takes up to `batch_max_txs` / `batch_max_bytes`
//!    from the pool (every transaction in it was verified at submission, so
//!    the author's verdict is "all valid"), gives it an expiry height
//!    (its committed height + `expiry_blocks`), persists it
//!    ([`Action::Persist`]) and broadcasts it with its verdict.
//! 2. **Store and vote.** Every receiver persists it; once durable
//!    ([`Batcher::on_durable`]) it votes *stored*, or, if it is one of the
//!    batch's designated verifiers, verifies every signature
//!    ([`Action::Verify`]) and votes *verified* with its own verdict. A
//!    designated verifier whose verdict differs from the author's records
//!    [`Action::Evidence`] and votes only stored. A batch that does not
//!    come from its author, or breaks a cap, is not stored
//!    ([`Batcher::on_batch`]); a resend of one already voted for brings
//!    the vote again (it may have been lost).
//! 3. **Certify.** The author collects votes; a quorum of voters with the
//!    validity power among the verified ones is a certificate, which it
//!    persists and broadcasts. When the verified votes lag
//!    (`verify_timeout_us`), the author asks the next validator in the
//!    batch's ranking to verify; when votes are missing altogether, it
//!    sends the batch again to those that did not vote.
//! 4. **Offer.** Every validator offers every certified digest it learns
//!    (any author) to consensus, once, with its transaction count; a
//!    certified digest not finalized after `repropose_after_us` is offered
//!    again (a fork may have dropped it).
//! 5. **Execute.** Finalized blocks wait, in order, until every batch they
//!    name is held with its certificate; what is missing is fetched from the
//!    certificate's voters, one holder at a time, moving to the next after
//!    `fetch_retry_us`; then the block goes to execution with its batches
//!    and their verdicts (a batch final in an earlier block is skipped).
//! 6. **Expire.** Past its expiry height a batch can never be proposed:
//!    it leaves memory and log, and a certified one is withdrawn from
//!    consensus ([`Action::Withdraw`]).
//!
//! Memory: batches are held in a [`BatchCache`] bounded by count and bytes;
//! a batch held (not executed, not past its expiry height), certified and
//! not finalized, or needed by a finalized block not yet executed is
//! pinned and never evicted. What one author's batches may take is capped
//! ([`PEER_UNCERTIFIED_MAX`], a 1/n share of the bytes).

use crate::cache::{Batch, BatchCache, FinalizedIndex};
use crate::checks::DigestRule;
use crate::pool::Mempool;
use plume_crypto::Digest;
use plume_protocol::batch::{BatchCertificate, BatchCommittee, BatchId, BatchVote, Verdict};
use plume_protocol::consensus::{Block, CommitProof};
use plume_protocol::scheme::Scheme;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Most batches held: pending ones and, for peers that ask for them,
/// recently finalized ones.
pub const BATCHES_HELD_MAX: usize = 16_384;
/// Most approximate bytes of batches held (finalized ones are evicted
/// first, oldest first; pinned ones never; while pinned batches alone
/// exceed a bound no batch is cut: back-pressure).
pub const BATCHES_HELD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Blocks a new batch stays proposable for: its author sets its expiry
/// height to its committed height plus this.
pub const EXPIRY_BLOCKS: u64 = 1024;
/// A peer's batch is stored (and voted for) only if it expires within this
/// many blocks of our committed height: how long a vote obliges us to keep
/// it.
pub const EXPIRY_MAX: u64 = 2 * EXPIRY_BLOCKS;
/// Heights of finalized payload remembered by the vote rule (covers every
/// expiry a vote accepted).
pub const FINALIZED_WINDOW: u64 = 2 * EXPIRY_MAX;
/// A certified digest not finalized after this long is offered again.
pub const REPROPOSE_AFTER_US: u64 = 2_000_000;
/// A missing batch is asked of the next holder after this long.
pub const FETCH_RETRY_US: u64 = 200_000;
/// An own batch without enough verified votes after this long asks the
/// next validator of its ranking to verify.
pub const VERIFY_TIMEOUT_US: u64 = 150_000;
/// Most uncertified batches of one peer held (an honest author has at
/// most [`OWN_UNCERTIFIED_MAX`]); beyond it its batches are not stored.
pub const PEER_UNCERTIFIED_MAX: usize = OWN_UNCERTIFIED_MAX + 64;
/// Most digests served from one batch request.
pub const SERVE_MAX: usize = 64;
/// Most own batches waiting for their certificate: beyond it no batch is
/// cut (back-pressure to the pool).
pub const OWN_UNCERTIFIED_MAX: usize = 256;
/// Most own batches cut and not finalized yet (back-pressure on cutting
/// while consensus does not keep up).
pub const OWN_UNFINALIZED_MAX: usize = 4096;
/// Most pieces of evidence of lying authors kept.
pub const EVIDENCE_MAX: usize = 1024;

/// The batcher's settings.
#[derive(Clone, Debug)]
pub struct BatcherConfig {
    /// Our committee index.
    pub me: u32,
    /// Current epoch (votes and certificates carry it).
    pub epoch: u64,
    /// The committee, as batch certificates see it.
    pub committee: BatchCommittee,
    /// Most transactions in one batch.
    pub batch_max_txs: usize,
    /// Most bytes of encoded transactions in one batch.
    pub batch_max_bytes: usize,
    /// See [`REPROPOSE_AFTER_US`].
    pub repropose_after_us: u64,
    /// See [`FETCH_RETRY_US`].
    pub fetch_retry_us: u64,
    /// See [`VERIFY_TIMEOUT_US`].
    pub verify_timeout_us: u64,
    /// See [`EXPIRY_BLOCKS`].
    pub expiry_blocks: u64,
    /// Most transactions a block may carry: a larger batch is never stored
    /// or voted for (no block could carry it).
    pub block_txs_max: u64,
    /// See [`BATCHES_HELD_MAX`].
    pub batches_held_max: usize,
    /// See [`BATCHES_HELD_BYTES_MAX`].
    pub batches_held_bytes_max: usize,
    /// How own batches' digests are computed: always
    /// [`DigestRule::Bound`] in a node (the other rule exists for the
    /// simulator's mutation test of review C1).
    pub digest_rule: DigestRule,
}

impl BatcherConfig {
    /// The defaults for validator `me` of `committee`, with these batch
    /// limits.
    pub fn new(
        me: u32,
        committee: BatchCommittee,
        batch_max_txs: usize,
        batch_max_bytes: usize,
    ) -> Self {
        BatcherConfig {
            me,
            epoch: 0,
            committee,
            batch_max_txs,
            batch_max_bytes,
            repropose_after_us: REPROPOSE_AFTER_US,
            fetch_retry_us: FETCH_RETRY_US,
            verify_timeout_us: VERIFY_TIMEOUT_US,
            expiry_blocks: EXPIRY_BLOCKS,
            block_txs_max: u64::from(u32::MAX),
            batches_held_max: BATCHES_HELD_MAX,
            batches_held_bytes_max: BATCHES_HELD_BYTES_MAX,
            digest_rule: DigestRule::Bound,
        }
    }
}

/// A batch with its certificate: what execution runs (item `i` runs only
/// if it decodes and the certificate's verdict says it is valid).
#[derive(Clone, Debug)]
pub struct CertifiedBatch {
    /// The batch.
    pub batch: Arc<Batch>,
    /// Its certificate.
    pub cert: Arc<BatchCertificate>,
}

impl CertifiedBatch {
    /// Whether item `i` is to be executed.
    pub fn runs(&self, i: usize) -> bool {
        self.batch.txs.get(i).is_some_and(Option::is_some) && self.cert.verdict.is_valid(i)
    }
}

/// A finalized block whose batches are all held: ready to execute.
#[derive(Debug)]
pub struct ExecJob<S: Scheme> {
    /// The block.
    pub block: Block<S>,
    /// Its commit proof.
    pub proof: CommitProof<S>,
    /// Its batches, in payload order; `None` for a batch already final in
    /// an earlier block (nothing of it runs again).
    pub batches: Vec<Option<CertifiedBatch>>,
}

/// What the batch log holds.
#[derive(Clone, Debug)]
pub enum LogItem {
    /// A batch (durable before any vote for it).
    Batch(Arc<Batch>),
    /// A certificate.
    Cert(Arc<BatchCertificate>),
}

/// What the driver must do.
#[derive(Debug)]
pub enum Action<S: Scheme> {
    /// Append to the batch log; report with [`Batcher::on_durable`] once it
    /// is synced.
    Persist(LogItem),
    /// The records of these digests are no longer needed.
    Retire(Vec<Digest>),
    /// Send this batch (with its author's verdict) to these validators.
    SendBatch {
        /// The batch.
        batch: Arc<Batch>,
        /// The author's verdict.
        verdict: Verdict,
        /// Recipients.
        to: Vec<u32>,
    },
    /// Verify every signature of this batch and report with
    /// [`Batcher::on_verified`].
    Verify(Arc<Batch>),
    /// Sign a vote and send it to the batch's author (`id.author`; to
    /// ourselves when we are the author: the driver then hands it to
    /// [`Batcher::on_vote`]).
    Vote {
        /// The batch.
        id: BatchId,
        /// `Some`: a verified vote with this verdict.
        verdict: Option<Verdict>,
    },
    /// Send this certificate to every other validator.
    SendCert(Arc<BatchCertificate>),
    /// Ask validator `to` to verify our batch.
    AskVerify {
        /// The validator.
        to: u32,
        /// The batch.
        digest: Digest,
    },
    /// Offer these certified digests (with their transaction counts) to
    /// consensus.
    Offer(Vec<(Digest, u32)>),
    /// These certified digests expired unproposed: consensus must drop them.
    Withdraw(Vec<Digest>),
    /// Ask validator `from` for these batches (with certificates).
    Fetch {
        /// The holder asked.
        from: u32,
        /// What is missing.
        digests: Vec<Digest>,
    },
    /// An author's verdict contradicts the bytes: keep the evidence.
    Evidence(Evidence),
    /// Execute this block next (blocks come out in finalization order).
    Execute(ExecJob<S>),
}

/// Proof that `author` lied about a batch's verdict: its batch (the bytes
/// decide) and the verdict it claimed.
#[derive(Clone, Debug)]
pub struct Evidence {
    /// The batch.
    pub batch: Arc<Batch>,
    /// The author's claim.
    pub claimed: Verdict,
    /// What the bytes say.
    pub computed: Verdict,
}

/// Why a proposal gets no vote ([`Batcher::check_proposal`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A batch it names has no certificate here.
    #[error("batch {0} has no certificate")]
    Uncertified(Digest),
    /// A batch is named twice.
    #[error("batch {0} is named twice")]
    Repeated(Digest),
    /// A batch already in a finalized block.
    #[error("batch {0} is already final")]
    AlreadyFinal(Digest),
    /// A batch past its expiry height.
    #[error("batch {digest} expired at height {expires}")]
    Expired {
        /// The batch.
        digest: Digest,
        /// Its expiry.
        expires: u64,
    },
    /// More transactions than a block may hold.
    #[error("{txs} transactions, a block holds at most {max}")]
    TooManyTxs {
        /// What its certificates add up to.
        txs: u64,
        /// The limit.
        max: u64,
    },
}

/// Sizes of every collection (the node exports them as `plume_mem_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Batch cache entries.
    pub batches: usize,
    /// Batch cache approximate bytes.
    pub batches_bytes: usize,
    /// Own batches not yet certified.
    pub own_pending: usize,
    /// Own batches not yet finalized.
    pub own_unfinalized: usize,
    /// Pool senders held back until a batch of theirs is finalized.
    pub pool_senders_held: usize,
    /// Peers' batches not yet certified.
    pub peer_pending: usize,
    /// Certified, not yet finalized.
    pub certified: usize,
    /// Recently finalized digests remembered.
    pub finalized_recent: usize,
    /// Finalized blocks waiting for batches.
    pub finalized_waiting: usize,
    /// Missing batches being fetched.
    pub fetching: usize,
    /// Pool transactions.
    pub pool_txs: usize,
    /// Pool bytes.
    pub pool_bytes: usize,
    /// Pool sender cursors.
    pub pool_senders: usize,
    /// Pool ids remembered for duplicate detection.
    pub pool_recent_ids: usize,
    /// Certificates held (live and of executed batches).
    pub certs: usize,
    /// Evidence kept.
    pub evidence: usize,
}

/// Counters of what the batcher did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Own batches cut.
    pub batches_cut: u64,
    /// Certificates formed for own batches.
    pub certs_formed: u64,
    /// Certificates learned (own and peers').
    pub certs_learned: u64,
    /// Votes sent.
    pub votes_sent: u64,
    /// Verifications asked of us (designated or by request).
    pub verifications: u64,
    /// Fallback verification requests sent.
    pub verify_requests: u64,
    /// Fetch requests sent.
    pub fetches: u64,
    /// Digests offered to consensus (first offers and re-offers).
    pub offered: u64,
    /// Evidence found.
    pub evidence: u64,
    /// Sum over certified own batches of cut-to-certificate microseconds.
    pub cert_latency_us_sum: u64,
    /// Peers' batches not stored (see [`Batcher::on_batch`]).
    pub refused: u64,
    /// Transactions of own batches that expired unfinalized.
    pub own_expired_txs: u64,
}

/// What one author's batches take here.
#[derive(Clone, Copy, Debug, Default)]
struct AuthorLoad {
    uncertified: usize,
    bytes: usize,
}

/// A batch held, with what we know and did about it.
#[derive(Debug)]
struct Held {
    batch: Arc<Batch>,
    /// The author's claimed verdict.
    claimed: Verdict,
    durable: bool,
    /// Our own verdict, once verified.
    local: Option<Verdict>,
    /// We must verify before voting.
    verify: bool,
    /// What we voted (`Some(None)`: stored; `Some(Some(v))`: verified).
    voted: Option<Option<Verdict>>,
}

/// An own batch waiting for its certificate.
#[derive(Debug)]
struct Own {
    cut_us: u64,
    /// Admission time of each transaction (own batches only).
    admitted_us: Vec<u64>,
    /// Votes by voter: (verified, signature).
    votes: BTreeMap<u32, (bool, [u8; 64])>,
    /// Ranking of the others for verification, and how far down we asked.
    ranking: Vec<u32>,
    asked: usize,
    last_push_us: u64,
}

/// A certified digest not yet finalized.
#[derive(Debug)]
struct Certified {
    offered_us: Option<u64>,
}

/// A missing batch being fetched.
#[derive(Debug)]
struct Fetching {
    holders: Vec<u32>,
    next: usize,
    last_us: Option<u64>,
}

/// Batching, certification and dissemination state (see the module doc).
#[derive(Debug)]
pub struct Batcher<S: Scheme> {
    cfg: BatcherConfig,
    /// The transaction pool batches are cut from.
    pub pool: Mempool,
    cache: BatchCache,
    held: HashMap<Digest, Held>,
    certs: HashMap<Digest, Arc<BatchCertificate>>,
    own: BTreeMap<Digest, Own>,
    certified: BTreeMap<Digest, Certified>,
    finalized: FinalizedIndex,
    /// Height of the last finalized block we heard of.
    height: u64,
    /// Per author: uncertified batches held, and bytes held.
    load: HashMap<u32, AuthorLoad>,
    /// How many waiting blocks name each digest.
    waiting: HashMap<Digest, u32>,
    /// Finalized blocks not yet executed, with the digests they finalized
    /// first (the others were final in an earlier block).
    finalized_waiting: VecDeque<(Block<S>, CommitProof<S>, Vec<Digest>)>,
    fetching: BTreeMap<Digest, Fetching>,
    /// Certificates of executed batches, kept (bounded) to serve peers
    /// that are behind.
    old_certs: HashMap<Digest, Arc<BatchCertificate>>,
    old_order: VecDeque<Digest>,
    evidence: VecDeque<Evidence>,
    counters: Counters,
    /// Cut-to-certificate times of own batches not yet taken by the driver.
    cert_latencies: Vec<u64>,
    /// Admission-to-certificate times of transactions of own batches.
    tx_cert_latencies: Vec<u64>,
    /// Own batches not finalized yet: when cut, and their senders (held
    /// back in the pool until then; see [`Mempool::hold_senders`]).
    unfinalized: HashMap<Digest, (u64, Vec<plume_crypto::ed25519::Address>)>,
    /// Held batches whose signature check the driver could not queue
    /// (its verifier queue was full): asked again on the next tick.
    reverify: BTreeSet<Digest>,
    /// Executed batches whose log records are kept until the finalized
    /// height passes the stamp ([`KEEP_EXECUTED_BLOCKS`] later).
    retiring: VecDeque<(u64, Digest)>,
}

/// Blocks an executed batch's log records (batch and certificate) are
/// kept, so that after a restart of every validator a peer whose
/// execution trails by less than catch-up's reach can still fetch it: its
/// only other source is the block stores, whose segments need state roots
/// certified STATE_LAG blocks later, which such a peer may be needed to
/// vote for. Found by the simulator (seed 111 at n=4).
pub const KEEP_EXECUTED_BLOCKS: u64 = 32;

/// Most cut-to-certificate times kept for the driver between takes.
pub const CERT_LATENCIES_MAX: usize = 4096;

/// Most admission-to-certificate times of transactions kept between takes.
pub const TX_CERT_LATENCIES_MAX: usize = 65_536;

/// Certificates of executed batches kept to serve peers.
pub const OLD_CERTS_MAX: usize = 16_384;

impl<S: Scheme> Batcher<S> {
    /// An empty batcher around `pool`.
    pub fn new(cfg: BatcherConfig, pool: Mempool) -> Self {
        Batcher {
            cache: BatchCache::new(cfg.batches_held_max, cfg.batches_held_bytes_max),
            cfg,
            pool,
            held: HashMap::new(),
            certs: HashMap::new(),
            own: BTreeMap::new(),
            certified: BTreeMap::new(),
            finalized: FinalizedIndex::default(),
            height: 0,
            load: HashMap::new(),
            waiting: HashMap::new(),
            finalized_waiting: VecDeque::new(),
            fetching: BTreeMap::new(),
            old_certs: HashMap::new(),
            old_order: VecDeque::new(),
            retiring: VecDeque::new(),
            evidence: VecDeque::new(),
            counters: Counters::default(),
            cert_latencies: Vec::new(),
            tx_cert_latencies: Vec::new(),
            unfinalized: HashMap::new(),
            reverify: BTreeSet::new(),
        }
    }

    /// Cut-to-certificate microseconds of own batches certified since the
    /// last call.
    pub fn take_cert_latencies(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.cert_latencies)
    }

    /// Admission-to-certificate microseconds of the transactions of own
    /// batches certified since the last call (admission times as given to
    /// [`Mempool::insert_at`]; none for batches recovered from the log).
    pub fn take_tx_cert_latencies(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.tx_cert_latencies)
    }

    /// The committee.
    pub fn committee(&self) -> &BatchCommittee {
        &self.cfg.committee
    }

    /// Counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Evidence kept (oldest first).
    pub fn evidence(&self) -> impl Iterator<Item = &Evidence> {
        self.evidence.iter()
    }

    /// The committed height at start-up, and the payload of the finalized
    /// blocks of the last [`FINALIZED_WINDOW`] heights (from the block
    /// store), so the vote rule still knows what is final after a restart.
    /// Call before [`Batcher::recover`].
    pub fn resume(&mut self, height: u64, history: Vec<(u64, Vec<Digest>)>) {
        self.height = height;
        for (h, ds) in history {
            self.finalized.insert(h, &ds);
        }
        self.finalized
            .prune_below(height.saturating_sub(FINALIZED_WINDOW));
    }

    /// Restore what the batch log held at start-up (records in log order;
    /// everything in it is durable). Own batches still uncertified resume
    /// collecting votes (after checking their signatures again: the log is
    /// ours, but the vote is a claim); peers' are voted for again; expired
    /// ones are retired.
    pub fn recover(&mut self, items: Vec<LogItem>, now_us: u64, out: &mut Vec<Action<S>>) {
        let mut gone = Vec::new();
        for it in items {
            match it {
                LogItem::Batch(b) => {
                    let d = b.digest;
                    if self.held.contains_key(&d) {
                        continue;
                    }
                    if self.finalized.height_of(&d).is_some() {
                        // Executed before the restart: served to peers
                        // that still need it, retired in its time.
                        self.cache.insert(b);
                        self.retiring
                            .push_back((self.height + KEEP_EXECUTED_BLOCKS, d));
                        continue;
                    }
                    if b.expires < self.height {
                        gone.push(d);
                        continue;
                    }
                    let own = b.author == self.cfg.me;
                    let verify = own || self.designated(&d, b.author);
                    self.hold(b.clone(), Verdict::all_valid(), verify);
                    if let Some(h) = self.held.get_mut(&d) {
                        h.durable = true;
                    }
                    if own {
                        self.start_own(d, Vec::new(), now_us);
                        self.hold_senders(&b, now_us);
                    }
                }
                LogItem::Cert(c) => {
                    let d = c.digest();
                    if self.finalized.height_of(&d).is_some() {
                        self.keep_old_cert(d, c);
                        continue;
                    }
                    if c.id.expires >= self.height
                        && self.finalized.height_of(&d).is_none()
                        && !self.certs.contains_key(&d)
                    {
                        self.mark_certified(&d);
                        self.certs.insert(d, c);
                    }
                }
            }
        }
        // In digest order: what the driver is asked to do must not depend
        // on a hash map's order (the simulator replays runs bit for bit).
        let mut digests: Vec<Digest> = self.held.keys().copied().collect();
        digests.sort_unstable();
        for d in digests {
            if self.certs.contains_key(&d) {
                self.own.remove(&d);
                self.certified.insert(d, Certified { offered_us: None });
                continue;
            }
            let Some(h) = self.held.get(&d) else { continue };
            let (batch, verify) = (h.batch.clone(), h.verify);
            if verify {
                self.counters.verifications += 1;
                out.push(Action::Verify(batch.clone()));
            } else {
                self.maybe_vote(&d, out);
            }
            if batch.author == self.cfg.me {
                // Collect votes again: send it to everyone.
                out.push(Action::SendBatch {
                    batch,
                    verdict: Verdict::all_valid(),
                    to: self.others(),
                });
            }
        }
        if !gone.is_empty() {
            out.push(Action::Retire(gone));
        }
    }

    /// The held batch and certificate of `digest` (to answer a request).
    pub fn serve(&self, digests: &[Digest]) -> Vec<(Arc<Batch>, Verdict, Arc<BatchCertificate>)> {
        digests
            .iter()
            .take(SERVE_MAX)
            .filter_map(|d| {
                let c = self.certs.get(d).or_else(|| self.old_certs.get(d))?;
                let b = self
                    .held
                    .get(d)
                    .map(|h| h.batch.clone())
                    .or_else(|| self.cache.get(d).cloned())?;
                Some((b, c.verdict.clone(), c.clone()))
            })
            .collect()
    }

    /// The vote rule of certified batches: a proposal of a block at
    /// `height` naming `payload` may get our vote only if every batch it
    /// names has a certificate we checked, is not final already, has not
    /// expired, is named once, and their transactions (the counts the
    /// certificates prove) sum to at most `txs_max`.
    pub fn check_proposal(
        &self,
        payload: &[Digest],
        height: u64,
        txs_max: u64,
    ) -> Result<(), Refusal> {
        let mut seen = HashSet::with_capacity(payload.len());
        let mut txs = 0u64;
        for d in payload {
            if !seen.insert(*d) {
                return Err(Refusal::Repeated(*d));
            }
            if self.finalized.height_of(d).is_some() {
                return Err(Refusal::AlreadyFinal(*d));
            }
            let Some(c) = self.certs.get(d) else {
                return Err(Refusal::Uncertified(*d));
            };
            if c.id.expires < height {
                return Err(Refusal::Expired {
                    digest: *d,
                    expires: c.id.expires,
                });
            }
            txs += u64::from(c.id.items);
        }
        if txs > txs_max {
            return Err(Refusal::TooManyTxs { txs, max: txs_max });
        }
        Ok(())
    }

    /// Whether a peer's batch with this digest is worth decoding and
    /// storing: not held, not final already.
    pub fn wants_batch(&self, digest: &Digest) -> bool {
        !self.held.contains_key(digest) && !self.cache.contains(digest) && !self.settled(digest)
    }

    /// Whether a certificate for `digest` is worth checking (not known yet,
    /// not final already).
    pub fn wants_cert(&self, digest: &Digest) -> bool {
        !self.certs.contains_key(digest) && !self.settled(digest)
    }

    /// Whether the author of held batch `digest` is `from`.
    pub fn authored_by(&self, digest: &Digest, from: u32) -> bool {
        self.held
            .get(digest)
            .is_some_and(|h| h.batch.author == from)
    }

    /// Finalized and no longer needed by a waiting execution.
    fn settled(&self, digest: &Digest) -> bool {
        self.finalized.height_of(digest).is_some() && !self.waiting.contains_key(digest)
    }

    /// The certificate of `digest`, if known.
    pub fn cert(&self, digest: &Digest) -> Option<&Arc<BatchCertificate>> {
        self.certs.get(digest)
    }

    /// Whether a vote for our batch `digest` is worth checking: a first
    /// vote of `voter`, or a verified one replacing its stored one.
    pub fn wants_vote(&self, digest: &Digest, voter: u32, verified: bool) -> bool {
        self.own
            .get(digest)
            .is_some_and(|o| match o.votes.get(&voter) {
                None => true,
                Some((was_verified, _)) => verified && !was_verified,
            })
    }

    fn others(&self) -> Vec<u32> {
        (0..self.cfg.committee.len() as u32)
            .filter(|i| *i != self.cfg.me)
            .collect()
    }

    fn designated(&self, digest: &Digest, author: u32) -> bool {
        self.cfg
            .committee
            .designated(digest, author)
            .contains(&self.cfg.me)
    }

    fn hold(&mut self, batch: Arc<Batch>, claimed: Verdict, verify: bool) {
        let certified = self.certs.contains_key(&batch.digest);
        let l = self.load.entry(batch.author).or_default();
        l.bytes += crate::cache::batch_bytes(&batch);
        if !certified {
            l.uncertified += 1;
        }
        self.held.insert(
            batch.digest,
            Held {
                batch: batch.clone(),
                claimed,
                durable: false,
                local: None,
                verify,
                voted: None,
            },
        );
        self.cache.insert(batch);
        self.trim();
    }

    /// Drop `d` from the held set (executed or expired).
    fn unhold(&mut self, d: &Digest) -> bool {
        let Some(h) = self.held.remove(d) else {
            return false;
        };
        if let Some(l) = self.load.get_mut(&h.batch.author) {
            l.bytes = l.bytes.saturating_sub(crate::cache::batch_bytes(&h.batch));
            if !self.certs.contains_key(d) {
                l.uncertified = l.uncertified.saturating_sub(1);
            }
            if l.bytes == 0 && l.uncertified == 0 {
                self.load.remove(&h.batch.author);
            }
        }
        true
    }

    /// A held batch got its certificate.
    fn mark_certified(&mut self, d: &Digest) {
        if let Some(h) = self.held.get(d) {
            if let Some(l) = self.load.get_mut(&h.batch.author) {
                l.uncertified = l.uncertified.saturating_sub(1);
            }
        }
    }

    fn start_own(&mut self, d: Digest, admitted_us: Vec<u64>, now_us: u64) {
        let ranking = self.cfg.committee.ranking(&d, self.cfg.me);
        let designated = self.cfg.committee.designated(&d, self.cfg.me).len() - 1;
        self.own.insert(
            d,
            Own {
                cut_us: now_us,
                admitted_us,
                votes: BTreeMap::new(),
                ranking,
                asked: designated,
                last_push_us: now_us,
            },
        );
    }

    /// Why a peer's batch without a certificate is not stored (and gets no
    /// vote), if it is not.
    fn refuse_batch(&self, b: &Batch) -> Option<&'static str> {
        let n = self.cfg.committee.len().max(1);
        let load = self.load.get(&b.author).copied().unwrap_or_default();
        if b.author == self.cfg.me {
            Some("names us as its author")
        } else if b.is_empty() {
            Some("empty")
        } else if b.len() as u64 > self.cfg.block_txs_max {
            Some("more transactions than a block holds")
        } else if b.expires < self.height {
            Some("expired")
        } else if b.expires > self.height.saturating_add(EXPIRY_MAX) {
            Some("expires too far ahead")
        } else if load.uncertified >= PEER_UNCERTIFIED_MAX {
            Some("its author has too many uncertified batches here")
        } else if load.bytes + crate::cache::batch_bytes(b) > self.cfg.batches_held_bytes_max / n {
            Some("its author holds its share of our memory")
        } else {
            None
        }
    }

    /// A peer's batch (a broadcast by its author, or a fetch answer with
    /// its certificate), decoded by the driver, which checked that a batch
    /// without a certificate comes from its author.
    pub fn on_batch(
        &mut self,
        batch: Arc<Batch>,
        claimed: Verdict,
        cert: Option<Arc<BatchCertificate>>,
        now_us: u64,
        out: &mut Vec<Action<S>>,
    ) {
        let d = batch.digest;
        let certified = cert.is_some();
        if let Some(c) = cert {
            self.learn_cert(c, now_us, out);
        }
        if !certified {
            if self.held.get(&d).is_some_and(|h| h.voted.is_some()) {
                // The author sends it again: our vote was lost.
                self.revote(&d, out);
                return;
            }
            if let Some(why) = self.refuse_batch(&batch) {
                self.counters.refused += 1;
                let _ = why;
                return;
            }
        } else if !self.certs.contains_key(&d) {
            return; // its certificate was refused (final or expired)
        }
        if !self.wants_batch(&d) {
            return;
        }
        let verify = !certified && self.designated(&d, batch.author);
        self.hold(batch.clone(), claimed, verify);
        self.fetching.remove(&d);
        out.push(Action::Persist(LogItem::Batch(batch.clone())));
        if verify {
            self.counters.verifications += 1;
            out.push(Action::Verify(batch));
        }
        self.dispatch(now_us, out);
    }

    /// Send the vote we already cast for `d` again.
    fn revote(&mut self, d: &Digest, out: &mut Vec<Action<S>>) {
        let Some(h) = self.held.get(d) else { return };
        let Some(verdict) = h.voted.clone() else {
            return;
        };
        if self.certs.contains_key(d) {
            return;
        }
        self.counters.votes_sent += 1;
        out.push(Action::Vote {
            id: self.id_of(&h.batch),
            verdict,
        });
    }

    /// The author of `digest` (`from`, checked by the driver) asks us to
    /// verify its batch (fallback).
    pub fn on_verify_request(&mut self, digest: &Digest, from: u32, out: &mut Vec<Action<S>>) {
        let certified = self.certs.contains_key(digest);
        let Some(h) = self.held.get_mut(digest) else {
            return;
        };
        if h.batch.author != from || certified {
            return;
        }
        if h.local.is_some() {
            // Checked already: the author asks because our verified vote
            // did not reach it (it heard our stored vote, so it does not
            // resend the batch to us): send the vote again.
            if h.voted.is_some() {
                self.revote(digest, out);
            }
            return;
        }
        if h.verify {
            return; // our check is under way, or queued again for a tick
        }
        h.verify = true;
        h.voted = None;
        self.counters.verifications += 1;
        out.push(Action::Verify(h.batch.clone()));
    }

    /// The driver could not queue the signature check of `digest` (its
    /// verifier queue was full): it is asked for again on the next tick,
    /// so a shed check never leaves the batch waiting for a verdict
    /// forever.
    pub fn on_verify_shed(&mut self, digest: &Digest) {
        if self
            .held
            .get(digest)
            .is_some_and(|h| h.verify && h.local.is_none())
        {
            self.reverify.insert(*digest);
        }
    }

    /// Ask the driver again for the checks it shed.
    fn retry_verify(&mut self, out: &mut Vec<Action<S>>) {
        for d in std::mem::take(&mut self.reverify) {
            if let Some(h) = self.held.get(&d) {
                if h.verify && h.local.is_none() && !self.certs.contains_key(&d) {
                    out.push(Action::Verify(h.batch.clone()));
                }
            }
        }
    }

    /// The batch log made these durable.
    pub fn on_durable(&mut self, digests: &[Digest], out: &mut Vec<Action<S>>) {
        for d in digests {
            if let Some(h) = self.held.get_mut(d) {
                h.durable = true;
            }
            self.maybe_vote(d, out);
        }
    }

    /// Our signature check of `digest` is done.
    pub fn on_verified(&mut self, digest: &Digest, verdict: Verdict, out: &mut Vec<Action<S>>) {
        let Some(h) = self.held.get_mut(digest) else {
            return;
        };
        h.local = Some(verdict);
        h.voted = None;
        self.maybe_vote(digest, out);
    }

    fn maybe_vote(&mut self, d: &Digest, out: &mut Vec<Action<S>>) {
        let me = self.cfg.me;
        if self.certs.contains_key(d) {
            return; // certified: no vote is needed any more
        }
        let Some(h) = self.held.get(d) else {
            return;
        };
        if !h.durable || h.voted.is_some() {
            return;
        }
        let id = self.id_of(&h.batch);
        let verdict = match (&h.local, h.verify) {
            (Some(local), _) if *local == h.claimed => Some(local.clone()),
            (Some(local), _) => {
                // The author's claim contradicts the bytes (for our own
                // batch after a restart: the log was damaged).
                let ev = Evidence {
                    batch: h.batch.clone(),
                    claimed: h.claimed.clone(),
                    computed: local.clone(),
                };
                self.counters.evidence += 1;
                if self.evidence.len() >= EVIDENCE_MAX {
                    self.evidence.pop_front();
                }
                self.evidence.push_back(ev.clone());
                out.push(Action::Evidence(ev));
                if h.batch.author == me {
                    return;
                }
                None
            }
            (None, true) => return, // wait for our verification
            (None, false) if h.batch.author == me => Some(h.claimed.clone()),
            (None, false) => None,
        };
        if let Some(h) = self.held.get_mut(d) {
            h.voted = Some(verdict.clone());
        }
        self.counters.votes_sent += 1;
        out.push(Action::Vote { id, verdict });
    }

    fn id_of(&self, b: &Batch) -> BatchId {
        BatchId {
            epoch: self.cfg.epoch,
            digest: b.digest,
            author: b.author,
            items: b.len() as u32,
            expires: b.expires,
        }
    }

    /// A vote for one of our batches, its signature checked by the driver.
    pub fn on_vote(&mut self, vote: BatchVote, now_us: u64, out: &mut Vec<Action<S>>) {
        let digest = vote.id.digest;
        let Some(h) = self.held.get(&digest) else {
            return;
        };
        if vote.id != self.id_of(&h.batch) {
            return;
        }
        let claimed = h.claimed.clone();
        let Some(own) = self.own.get_mut(&digest) else {
            return;
        };
        // A verified vote with another verdict is not ours to aggregate
        // (the verifier's evidence is its own): its signature is over
        // another message, unusable.
        let verified = vote.verdict.as_ref().is_some_and(|v| *v == claimed);
        if vote.verdict.is_some() && !verified {
            return;
        }
        if verified || !own.votes.contains_key(&vote.voter) {
            own.votes.insert(vote.voter, (verified, vote.sig));
        }
        let c = &self.cfg.committee;
        let all = c.power_of_members(own.votes.keys().copied());
        let ver = c.power_of_members(own.votes.iter().filter(|(_, (v, _))| *v).map(|(i, _)| *i));
        if all >= c.quorum_power() && ver >= c.validity_power() {
            let votes: Vec<(u32, bool, [u8; 64])> =
                own.votes.iter().map(|(i, (v, s))| (*i, *v, *s)).collect();
            let cert = Arc::new(BatchCertificate::from_votes(
                vote.id,
                claimed,
                c.len(),
                &votes,
            ));
            let cut = own.cut_us;
            if let Some(o) = self.own.remove(&digest) {
                let room = TX_CERT_LATENCIES_MAX.saturating_sub(self.tx_cert_latencies.len());
                self.tx_cert_latencies.extend(
                    o.admitted_us
                        .iter()
                        .take(room)
                        .map(|a| now_us.saturating_sub(*a)),
                );
            }
            self.counters.certs_formed += 1;
            self.counters.cert_latency_us_sum += now_us.saturating_sub(cut);
            if self.cert_latencies.len() < CERT_LATENCIES_MAX {
                self.cert_latencies.push(now_us.saturating_sub(cut));
            }
            out.push(Action::SendCert(cert.clone()));
            self.learn_cert(cert, now_us, out);
        }
    }

    /// A certificate, checked by the driver (or formed here).
    pub fn on_cert(&mut self, cert: Arc<BatchCertificate>, now_us: u64, out: &mut Vec<Action<S>>) {
        self.learn_cert(cert, now_us, out);
        self.dispatch(now_us, out);
    }

    /// Take a checked certificate in, unless its batch is final already
    /// or expired (an old certificate replayed).
    fn learn_cert(&mut self, cert: Arc<BatchCertificate>, now_us: u64, out: &mut Vec<Action<S>>) {
        let d = cert.digest();
        let needed = self.waiting.contains_key(&d);
        if self.certs.contains_key(&d)
            || (!needed
                && (self.finalized.height_of(&d).is_some() || cert.id.expires < self.height))
        {
            return;
        }
        self.counters.certs_learned += 1;
        self.mark_certified(&d);
        self.certs.insert(d, cert.clone());
        out.push(Action::Persist(LogItem::Cert(cert.clone())));
        self.own.remove(&d);
        if !needed {
            self.certified.insert(d, Certified { offered_us: None });
        }
        if !self.held.contains_key(&d) && !self.cache.contains(&d) {
            // Certified elsewhere and not here: fetch it before a block
            // needs it.
            self.fetching.entry(d).or_insert(Fetching {
                holders: cert.voters(),
                next: 0,
                last_us: None,
            });
        }
        let _ = now_us;
    }

    /// Consensus finalized `block`.
    pub fn on_finalized(
        &mut self,
        block: Block<S>,
        proof: CommitProof<S>,
        now_us: u64,
        out: &mut Vec<Action<S>>,
    ) {
        self.height = self.height.max(block.height);
        let mut fresh = Vec::with_capacity(block.payload.len());
        for d in &block.payload {
            if self
                .finalized
                .height_of(d)
                .is_some_and(|h| h < block.height)
            {
                continue; // final in an earlier block: nothing more to run
            }
            fresh.push(*d);
            self.certified.remove(d);
            self.own.remove(d);
            if let Some((_, senders)) = self.unfinalized.remove(d) {
                self.pool.release(&senders);
            }
            *self.waiting.entry(*d).or_default() += 1;
            if !self.held.contains_key(d)
                && !self.cache.contains(d)
                && !self.fetching.contains_key(d)
            {
                let holders = self
                    .certs
                    .get(d)
                    .map(|c| c.voters())
                    .unwrap_or_else(|| self.others());
                self.fetching.insert(
                    *d,
                    Fetching {
                        holders,
                        next: 0,
                        last_us: None,
                    },
                );
            }
        }
        self.finalized.insert(block.height, &fresh);
        self.finalized
            .prune_below(self.height.saturating_sub(FINALIZED_WINDOW));
        self.finalized_waiting.push_back((block, proof, fresh));
        self.dispatch(now_us, out);
    }

    /// Execution caught up to `height` from a peer's store (blocks this
    /// node never finalized itself): `payloads` are those blocks' batch
    /// digests by height. They join the finalized index (the vote rule),
    /// and finalized blocks still waiting for batches at or below `height`
    /// are dropped (they are executed; their batches may be gone
    /// everywhere).
    pub fn on_caught_up(&mut self, height: u64, payloads: Vec<(u64, Vec<Digest>)>) {
        self.height = self.height.max(height);
        for (h, ds) in payloads {
            for d in &ds {
                self.certified.remove(d);
                self.own.remove(d);
                if let Some((_, senders)) = self.unfinalized.remove(d) {
                    self.pool.release(&senders);
                }
            }
            self.finalized.insert(h, &ds);
        }
        self.finalized
            .prune_below(self.height.saturating_sub(FINALIZED_WINDOW));
        while self
            .finalized_waiting
            .front()
            .is_some_and(|(b, _, _)| b.height <= height)
        {
            let (_, _, fresh) = self.finalized_waiting.pop_front().expect("front exists");
            for d in &fresh {
                if let Some(n) = self.waiting.get_mut(d) {
                    *n -= 1;
                    if *n == 0 {
                        self.waiting.remove(d);
                        self.fetching.remove(d);
                    }
                }
            }
        }
    }

    /// Execution committed these batches: they may leave memory and log.
    pub fn on_executed(&mut self, digests: &[Digest], out: &mut Vec<Action<S>>) {
        for d in digests {
            if self.unhold(d) {
                self.retiring
                    .push_back((self.height + KEEP_EXECUTED_BLOCKS, *d));
            }
            if let Some(c) = self.certs.remove(d) {
                self.keep_old_cert(*d, c);
            }
        }
        self.retire_executed(out);
    }

    fn keep_old_cert(&mut self, d: Digest, c: Arc<BatchCertificate>) {
        if self.old_certs.insert(d, c).is_none() {
            self.old_order.push_back(d);
        }
        while self.old_order.len() > OLD_CERTS_MAX {
            if let Some(o) = self.old_order.pop_front() {
                self.old_certs.remove(&o);
            }
        }
    }

    /// Retire the log records of batches executed
    /// [`KEEP_EXECUTED_BLOCKS`] ago.
    fn retire_executed(&mut self, out: &mut Vec<Action<S>>) {
        let mut retire = Vec::new();
        while let Some((at, d)) = self.retiring.front().copied() {
            if at > self.height && self.retiring.len() <= BATCHES_HELD_MAX {
                break;
            }
            self.retiring.pop_front();
            if !self.held.contains_key(&d) {
                retire.push(d);
            }
        }
        if !retire.is_empty() {
            out.push(Action::Retire(retire));
        }
    }

    /// The periodic step: cut a batch, chase votes, offer certified
    /// digests, drop what expired, fetch what finalized blocks miss, hand
    /// them to execution.
    pub fn tick(&mut self, now_us: u64, out: &mut Vec<Action<S>>) {
        self.cut(now_us, out);
        self.retry_verify(out);
        self.chase_votes(now_us, out);
        self.offer(now_us, out);
        self.expire(out);
        self.dispatch(now_us, out);
    }

    /// Hold the senders of own batch `b` in the pool until it is finalized:
    /// a sender's next transactions go into a later batch only once this
    /// one's place in the chain is fixed, so its sequences execute in order.
    fn hold_senders(&mut self, b: &Batch, now_us: u64) {
        let mut senders: Vec<_> = b
            .txs
            .iter()
            .flatten()
            .filter_map(|t| t.payer().copied())
            .collect();
        senders.sort_unstable();
        senders.dedup();
        self.pool.hold_senders(&senders);
        self.unfinalized.insert(b.digest, (now_us, senders));
    }

    /// Batches past their expiry height can never be proposed again: drop
    /// them (unless a finalized block still waits for them), withdraw the
    /// certified ones from consensus, and stop holding back the senders of
    /// own ones (their transactions are lost: counted, and clients resubmit).
    fn expire(&mut self, out: &mut Vec<Action<S>>) {
        let h = self.height;
        let stale: Vec<Digest> = self
            .held
            .iter()
            .filter(|(d, hd)| hd.batch.expires < h && !self.waiting.contains_key(d))
            .map(|(d, _)| *d)
            .collect();
        let mut withdraw = Vec::new();
        for d in &stale {
            if let Some(hd) = self.held.get(d) {
                if hd.batch.author == self.cfg.me {
                    self.counters.own_expired_txs += hd.batch.len() as u64;
                }
            }
            if let Some((_, senders)) = self.unfinalized.remove(d) {
                self.pool.release(&senders);
            }
            self.own.remove(d);
            if self.certified.remove(d).is_some() {
                withdraw.push(*d);
            }
            self.unhold(d);
            self.certs.remove(d);
        }
        let certs_only: Vec<Digest> = self
            .certs
            .iter()
            .filter(|(d, c)| c.id.expires < h && !self.waiting.contains_key(d))
            .map(|(d, _)| *d)
            .collect();
        for d in certs_only {
            self.certs.remove(&d);
            self.fetching.remove(&d);
            if self.certified.remove(&d).is_some() {
                withdraw.push(d);
            }
        }
        if !stale.is_empty() {
            out.push(Action::Retire(stale));
        }
        if !withdraw.is_empty() {
            out.push(Action::Withdraw(withdraw));
        }
    }

    fn cut(&mut self, now_us: u64, out: &mut Vec<Action<S>>) {
        if self.pool.is_empty()
            || self.own.len() >= OWN_UNCERTIFIED_MAX
            || self.unfinalized.len() >= OWN_UNFINALIZED_MAX
            || self.trim()
        {
            return;
        }
        let txs_max = self
            .cfg
            .batch_max_txs
            .min(self.cfg.block_txs_max.min(usize::MAX as u64) as usize);
        let taken = self
            .pool
            .take_batch_timed(txs_max, self.cfg.batch_max_bytes);
        if taken.is_empty() {
            return;
        }
        let mut txs = Vec::with_capacity(taken.len());
        let mut raw = Vec::with_capacity(taken.len());
        let mut admitted = Vec::with_capacity(taken.len());
        for (p, b, at) in taken {
            txs.push(Some(p));
            raw.push(b);
            admitted.push(at);
        }
        let expires = self.height.saturating_add(self.cfg.expiry_blocks);
        let digest = self.cfg.digest_rule.digest(self.cfg.me, expires, &raw);
        let b = Arc::new(Batch {
            author: self.cfg.me,
            expires,
            digest,
            txs,
            raw,
        });
        self.counters.batches_cut += 1;
        self.start_own(digest, admitted, now_us);
        self.hold_senders(&b, now_us);
        self.hold(b.clone(), Verdict::all_valid(), false);
        out.push(Action::Persist(LogItem::Batch(b.clone())));
        out.push(Action::SendBatch {
            batch: b,
            verdict: Verdict::all_valid(),
            to: self.others(),
        });
    }

    /// Own batches waiting too long: ask the next verifier, resend to
    /// silent validators.
    fn chase_votes(&mut self, now_us: u64, out: &mut Vec<Action<S>>) {
        let c = self.cfg.committee.clone();
        let timeout = self.cfg.verify_timeout_us;
        let me = self.cfg.me;
        for (d, own) in self.own.iter_mut() {
            if now_us.saturating_sub(own.last_push_us) <= timeout {
                continue;
            }
            own.last_push_us = now_us;
            let Some(h) = self.held.get(d) else { continue };
            let ver =
                c.power_of_members(own.votes.iter().filter(|(_, (v, _))| *v).map(|(i, _)| *i));
            if ver < c.validity_power() && !own.ranking.is_empty() {
                // Ask the next validator of the ranking that has not sent
                // a verified vote, going round the ranking again once it
                // is through (a request, the batch before it, the check or
                // the vote may each have been lost or shed on the way, so
                // one pass can end with nobody verifying).
                let n = own.ranking.len();
                for _ in 0..n {
                    let next = own.ranking[own.asked % n];
                    own.asked += 1;
                    if !own.votes.get(&next).is_some_and(|(v, _)| *v) {
                        self.counters.verify_requests += 1;
                        out.push(Action::AskVerify {
                            to: next,
                            digest: *d,
                        });
                        break;
                    }
                }
            }
            let silent: Vec<u32> = (0..c.len() as u32)
                .filter(|i| *i != me && !own.votes.contains_key(i))
                .collect();
            if !silent.is_empty() {
                out.push(Action::SendBatch {
                    batch: h.batch.clone(),
                    verdict: h.claimed.clone(),
                    to: silent,
                });
            }
        }
    }

    /// Offer certified digests to consensus, interleaved across authors
    /// (one of each author in turn), each weighted by the transaction count
    /// its certificate proves.
    fn offer(&mut self, now_us: u64, out: &mut Vec<Action<S>>) {
        let again = self.cfg.repropose_after_us;
        let mut by_author: BTreeMap<u32, VecDeque<(Digest, u32)>> = BTreeMap::new();
        for (d, c) in self.certified.iter_mut() {
            let due = match c.offered_us {
                None => true,
                Some(t) => now_us.saturating_sub(t) > again,
            };
            let Some(cert) = self.certs.get(d) else {
                continue;
            };
            if !due {
                continue;
            }
            c.offered_us = Some(now_us);
            by_author
                .entry(cert.id.author)
                .or_default()
                .push_back((*d, cert.id.items.max(1)));
        }
        let mut offer = Vec::new();
        while !by_author.is_empty() {
            by_author.retain(|_, q| match q.pop_front() {
                Some(x) => {
                    offer.push(x);
                    true
                }
                None => false,
            });
        }
        if !offer.is_empty() {
            self.counters.offered += offer.len() as u64;
            out.push(Action::Offer(offer));
        }
    }

    /// Hand finalized blocks to execution, in order, once their batches and
    /// certificates are held; fetch the missing ones of the first block
    /// that waits. A batch already final in an earlier block is not run
    /// again (it is `None` in the job).
    pub fn dispatch(&mut self, now_us: u64, out: &mut Vec<Action<S>>) {
        while let Some((_, _, fresh)) = self.finalized_waiting.front() {
            let missing: Vec<Digest> = fresh
                .iter()
                .filter(|d| {
                    !self.certs.contains_key(d)
                        || !(self.held.contains_key(d) || self.cache.contains(d))
                })
                .copied()
                .collect();
            if !missing.is_empty() {
                self.fetch(&missing, now_us, out);
                return;
            }
            let (block, proof, fresh) = self.finalized_waiting.pop_front().expect("front exists");
            for d in &fresh {
                if let Some(n) = self.waiting.get_mut(d) {
                    *n -= 1;
                    if *n == 0 {
                        self.waiting.remove(d);
                    }
                }
            }
            let batches = block
                .payload
                .iter()
                .map(|d| {
                    if !fresh.contains(d) {
                        return None;
                    }
                    Some(CertifiedBatch {
                        batch: self
                            .held
                            .get(d)
                            .map(|h| h.batch.clone())
                            .or_else(|| self.cache.get(d).cloned())
                            .expect("checked above"),
                        cert: self.certs[d].clone(),
                    })
                })
                .collect();
            out.push(Action::Execute(ExecJob {
                block,
                proof,
                batches,
            }));
        }
        // Batches certified elsewhere that we never received: fetch them
        // too (not only when a block needs them).
        let pending: Vec<Digest> = self
            .fetching
            .keys()
            .filter(|d| self.certs.contains_key(d))
            .copied()
            .collect();
        if !pending.is_empty() {
            self.fetch(&pending, now_us, out);
        }
    }

    /// Ask one holder per missing digest, the next one after each retry
    /// interval.
    fn fetch(&mut self, missing: &[Digest], now_us: u64, out: &mut Vec<Action<S>>) {
        let retry = self.cfg.fetch_retry_us;
        let others = self.others();
        let me = self.cfg.me;
        let mut by_holder: BTreeMap<u32, Vec<Digest>> = BTreeMap::new();
        for d in missing {
            let holders = self
                .certs
                .get(d)
                .map(|c| c.voters())
                .unwrap_or_else(|| others.clone());
            let f = self.fetching.entry(*d).or_insert(Fetching {
                holders: holders.clone(),
                next: 0,
                last_us: None,
            });
            if f.holders.iter().all(|h| *h == me) {
                f.holders = holders;
            }
            if f.last_us.is_some_and(|t| now_us.saturating_sub(t) <= retry) {
                continue;
            }
            let candidates: Vec<u32> = f.holders.iter().copied().filter(|h| *h != me).collect();
            if candidates.is_empty() {
                continue;
            }
            let from = candidates[f.next % candidates.len()];
            f.next += 1;
            f.last_us = Some(now_us);
            by_holder.entry(from).or_default().push(*d);
        }
        for (from, digests) in by_holder {
            self.counters.fetches += 1;
            out.push(Action::Fetch { from, digests });
        }
    }

    /// Sizes of every collection.
    pub fn sizes(&self) -> Sizes {
        let me = self.cfg.me;
        Sizes {
            batches: self.cache.len(),
            batches_bytes: self.cache.bytes(),
            own_pending: self.own.len(),
            own_unfinalized: self.unfinalized.len(),
            pool_senders_held: self.pool.senders_in_flight(),
            peer_pending: self
                .held
                .iter()
                .filter(|(d, h)| h.batch.author != me && !self.certs.contains_key(d))
                .count(),
            certified: self.certified.len(),
            finalized_recent: self.finalized.len(),
            finalized_waiting: self.finalized_waiting.len(),
            fetching: self.fetching.len(),
            pool_txs: self.pool.len(),
            pool_bytes: self.pool.bytes(),
            pool_senders: self.pool.senders_len(),
            pool_recent_ids: self.pool.recent_len(),
            certs: self.certs.len() + self.old_certs.len(),
            evidence: self.evidence.len(),
        }
    }

    /// Evict unpinned batches while the cache is over a bound. True when
    /// pinned batches alone reach a bound. Pinned: held (not executed, not
    /// expired: a stored vote promises it until its expiry), certified, or
    /// needed by a waiting block.
    fn trim(&mut self) -> bool {
        let (held, certified, waiting) = (&self.held, &self.certified, &self.waiting);
        let pinned = |d: &Digest| {
            held.contains_key(d) || certified.contains_key(d) || waiting.contains_key(d)
        };
        self.cache.trim(pinned);
        self.cache.over_bounds()
    }

    /// Digests this batcher holds (for tests and metrics).
    pub fn held_digests(&self) -> BTreeSet<Digest> {
        self.held.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests;
