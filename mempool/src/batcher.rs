//! Batching and dissemination as a pure state machine.
//!
//! The [`Batcher`] owns the transaction pool and the batches a validator
//! holds. The driver (the node's core role, or a simulator) feeds it events
//! with the current time in microseconds and carries out the [`Action`]s it
//! returns; it never reads a clock, sends a message or touches a thread.
//!
//! What it decides:
//! - **Cutting.** Every tick, one batch is cut from the pool (at most
//!   `batch_max_txs` transactions and `batch_max_bytes` bytes), held as
//!   pending and broadcast to the other validators, unless the pending
//!   batches alone fill the cache (back-pressure: the pool then fills and
//!   refuses clients).
//! - **Offering.** Own batches are offered to consensus
//!   ([`Action::Offer`]) while everything offered but not yet proposed
//!   still fits one block (`block_txs_max` transactions), so an honest
//!   proposal always fits.
//! - **Re-offering.** An own batch not finalized after `repropose_after_us`
//!   is broadcast again (a peer that missed it could otherwise never help)
//!   and offered again; a peer's batch left unfinalized for twice as long
//!   is offered by this validator too (its owner may be slow and skipped by
//!   leader reputation).
//! - **Execution order.** Finalized blocks wait, in order, until every
//!   batch they name is held; missing ones are requested from every peer
//!   ([`Action::Request`], again after `request_retry_us`); then the block
//!   goes to execution ([`Action::Execute`]) with its batches.
//! - **Memory.** Batches are held in a [`BatchCache`] bounded by count and
//!   bytes; a batch still pending here, offered, or needed by a finalized
//!   block not yet executed is pinned and never evicted.

use crate::cache::{BatchCache, RecentDigests, VerifiedBatch};
use crate::pool::Mempool;
use plume_crypto::Digest;
use plume_protocol::consensus::{Block, CommitProof};
use plume_protocol::scheme::Scheme;
use plume_protocol::PreparedTx;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Most batches (own and peers') held: pending ones and, for peers that ask
/// for them, recently finalized ones.
pub const BATCHES_HELD_MAX: usize = 16_384;
/// Most approximate bytes of batches held. Finalized batches are evicted
/// first (oldest first); a pending batch is never evicted, and while pending
/// batches alone exceed a bound no batch is cut (back-pressure). (64 MiB:
/// about a minute of finalized 512-byte transactions at 800 tx/s, kept for
/// peers that missed them.)
pub const BATCHES_HELD_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Digests of recently finalized batches remembered, so a batch that
/// arrives after its block was finalized is not kept as pending.
pub const FINALIZED_DIGESTS_MAX: usize = 65_536;
/// Own batches not finalized after this long are sent and offered again.
pub const REPROPOSE_AFTER_US: u64 = 2_000_000;
/// A missing batch is requested again after this long.
pub const REQUEST_RETRY_US: u64 = 200_000;

/// The batcher's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatcherConfig {
    /// Most transactions in one batch.
    pub batch_max_txs: usize,
    /// Most bytes of encoded transactions in one batch.
    pub batch_max_bytes: usize,
    /// Most transactions in one block (offers never exceed it together).
    pub block_txs_max: usize,
    /// See [`REPROPOSE_AFTER_US`].
    pub repropose_after_us: u64,
    /// See [`REQUEST_RETRY_US`].
    pub request_retry_us: u64,
    /// See [`BATCHES_HELD_MAX`].
    pub batches_held_max: usize,
    /// See [`BATCHES_HELD_BYTES_MAX`].
    pub batches_held_bytes_max: usize,
    /// See [`FINALIZED_DIGESTS_MAX`].
    pub finalized_digests_max: usize,
}

impl BatcherConfig {
    /// The defaults with these batch and block limits.
    pub fn new(batch_max_txs: usize, batch_max_bytes: usize, block_txs_max: usize) -> Self {
        BatcherConfig {
            batch_max_txs,
            batch_max_bytes,
            block_txs_max,
            repropose_after_us: REPROPOSE_AFTER_US,
            request_retry_us: REQUEST_RETRY_US,
            batches_held_max: BATCHES_HELD_MAX,
            batches_held_bytes_max: BATCHES_HELD_BYTES_MAX,
            finalized_digests_max: FINALIZED_DIGESTS_MAX,
        }
    }
}

/// A finalized block whose batches are all held: ready to execute.
#[derive(Debug)]
pub struct ExecJob<S: Scheme> {
    /// The block.
    pub block: Block<S>,
    /// Its commit proof.
    pub proof: CommitProof<S>,
    /// Its batches, in payload order.
    pub batches: Vec<Arc<VerifiedBatch>>,
}

/// What the driver must do.
#[derive(Debug)]
pub enum Action<S: Scheme> {
    /// Send this batch to every other validator.
    Broadcast(Arc<VerifiedBatch>),
    /// Ask every other validator for these batches.
    Request(Vec<Digest>),
    /// Offer these batch digests to consensus for proposals.
    Offer(Vec<Digest>),
    /// Execute this block next (blocks come out in finalization order).
    Execute(ExecJob<S>),
}

/// Sizes of every collection (the node exports them as `plume_mem_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    /// Batch cache entries.
    pub batches: usize,
    /// Batch cache approximate bytes.
    pub batches_bytes: usize,
    /// Own batches not yet finalized.
    pub own_pending: usize,
    /// Peers' batches not yet finalized.
    pub peer_pending: usize,
    /// Recently finalized digests remembered.
    pub finalized_recent: usize,
    /// Own batches waiting to be offered.
    pub ready: usize,
    /// Offered, not yet proposed.
    pub fed: usize,
    /// Finalized blocks waiting for batches.
    pub finalized_waiting: usize,
    /// Missing batches requested.
    pub requested: usize,
    /// Pool transactions.
    pub pool_txs: usize,
    /// Pool bytes.
    pub pool_bytes: usize,
    /// Pool sender cursors.
    pub pool_senders: usize,
    /// Pool ids remembered for duplicate detection.
    pub pool_recent_ids: usize,
}

/// Batching and dissemination state (see the module doc).
#[derive(Debug)]
pub struct Batcher<S: Scheme> {
    cfg: BatcherConfig,
    /// The transaction pool batches are cut from.
    pub pool: Mempool,
    batches: BatchCache,
    /// Batches seen in finalized blocks (a late copy is not pending).
    finalized_recent: RecentDigests,
    /// Own batches not yet finalized, with when they were (re-)sent.
    own_pending: BTreeMap<Digest, u64>,
    /// Peers' batches not yet finalized, with when they arrived.
    peer_pending: BTreeMap<Digest, u64>,
    /// Batches waiting to be offered, with their transaction counts.
    ready: VecDeque<(Digest, usize)>,
    /// Offered, not yet seen in one of our proposals.
    fed: HashMap<Digest, usize>,
    fed_txs: usize,
    finalized_waiting: VecDeque<(Block<S>, CommitProof<S>)>,
    requested: HashMap<Digest, u64>,
}

impl<S: Scheme> Batcher<S> {
    /// An empty batcher around `pool`.
    pub fn new(cfg: BatcherConfig, pool: Mempool) -> Self {
        Batcher {
            batches: BatchCache::new(cfg.batches_held_max, cfg.batches_held_bytes_max),
            cfg,
            pool,
            finalized_recent: RecentDigests::default(),
            own_pending: BTreeMap::new(),
            peer_pending: BTreeMap::new(),
            ready: VecDeque::new(),
            fed: HashMap::new(),
            fed_txs: 0,
            finalized_waiting: VecDeque::new(),
            requested: HashMap::new(),
        }
    }

    /// The held batch with this digest (to answer a peer's request).
    pub fn batch(&self, digest: &Digest) -> Option<&Arc<VerifiedBatch>> {
        self.batches.get(digest)
    }

    /// Whether a peer's batch with this digest is worth verifying: not held
    /// yet, and not a late copy of one already finalized and executed.
    pub fn wants_peer_batch(&self, digest: &Digest) -> bool {
        let late = self.finalized_recent.contains(digest)
            && self
                .finalized_waiting
                .iter()
                .all(|(b, _)| !b.payload.contains(digest));
        !self.batches.contains(digest) && !late
    }

    /// A peer's batch, verified.
    pub fn on_peer_batch(&mut self, b: Arc<VerifiedBatch>, now_us: u64, out: &mut Vec<Action<S>>) {
        // Pending unless it is ours, already finalized (a late copy) or
        // there is no room: a batch not pending may be evicted.
        if !self.own_pending.contains_key(&b.digest)
            && !self.finalized_recent.contains(&b.digest)
            && self.peer_pending.len() < self.cfg.batches_held_max
            && !self.trim()
        {
            self.peer_pending.entry(b.digest).or_insert(now_us);
        }
        self.hold(b);
        self.dispatch(now_us, out);
    }

    /// Our own proposal went out carrying `payload`: those are no longer
    /// waiting to be proposed.
    pub fn on_own_proposal(&mut self, payload: &[Digest]) {
        for d in payload {
            if let Some(c) = self.fed.remove(d) {
                self.fed_txs -= c;
            }
        }
    }

    /// Consensus finalized `block`.
    pub fn on_finalized(
        &mut self,
        block: Block<S>,
        proof: CommitProof<S>,
        now_us: u64,
        out: &mut Vec<Action<S>>,
    ) {
        for d in &block.payload {
            self.finalized_recent
                .insert(*d, self.cfg.finalized_digests_max);
            self.own_pending.remove(d);
            self.peer_pending.remove(d);
            if let Some(c) = self.fed.remove(d) {
                self.fed_txs -= c;
            }
        }
        let done: HashSet<Digest> = block.payload.iter().copied().collect();
        self.ready.retain(|(d, _)| !done.contains(d));
        self.finalized_waiting.push_back((block, proof));
        self.dispatch(now_us, out);
    }

    /// The periodic step: cut a batch, re-send and re-offer stale ones,
    /// offer what fits, hand finalized blocks to execution.
    pub fn tick(&mut self, now_us: u64, out: &mut Vec<Action<S>>) {
        self.cut(now_us, out);
        self.refresh_stale(now_us, out);
        // Offer batches while one block can still hold them all.
        let mut offer = Vec::new();
        while let Some(&(d, n)) = self.ready.front() {
            if self.fed_txs + n > self.cfg.block_txs_max
                && !(self.fed.is_empty() && offer.is_empty())
            {
                break;
            }
            self.ready.pop_front();
            self.fed_txs += n;
            self.fed.insert(d, n);
            offer.push(d);
        }
        if !offer.is_empty() {
            out.push(Action::Offer(offer));
        }
        if self.finalized_waiting.is_empty() {
            // Nothing is missing: no request is still useful.
            self.requested.clear();
        }
        self.dispatch(now_us, out);
    }

    /// Hand finalized blocks to execution, in order, once their batches
    /// are held; request the missing batches of the first one that waits.
    pub fn dispatch(&mut self, now_us: u64, out: &mut Vec<Action<S>>) {
        while let Some((block, _)) = self.finalized_waiting.front() {
            let missing: Vec<Digest> = block
                .payload
                .iter()
                .filter(|d| !self.batches.contains(d))
                .copied()
                .collect();
            if !missing.is_empty() {
                let retry = self.cfg.request_retry_us;
                let want: Vec<Digest> = missing
                    .into_iter()
                    .filter(|d| {
                        self.requested
                            .get(d)
                            .is_none_or(|t| now_us.saturating_sub(*t) > retry)
                    })
                    .collect();
                if !want.is_empty() {
                    for d in &want {
                        self.requested.insert(*d, now_us);
                    }
                    out.push(Action::Request(want));
                }
                return;
            }
            let (block, proof) = self.finalized_waiting.pop_front().expect("front exists");
            let batches = block
                .payload
                .iter()
                .map(|d| self.batches.get(d).expect("checked above").clone())
                .collect();
            out.push(Action::Execute(ExecJob {
                block,
                proof,
                batches,
            }));
        }
    }

    /// Sizes of every collection.
    pub fn sizes(&self) -> Sizes {
        Sizes {
            batches: self.batches.len(),
            batches_bytes: self.batches.bytes(),
            own_pending: self.own_pending.len(),
            peer_pending: self.peer_pending.len(),
            finalized_recent: self.finalized_recent.len(),
            ready: self.ready.len(),
            fed: self.fed.len(),
            finalized_waiting: self.finalized_waiting.len(),
            requested: self.requested.len(),
            pool_txs: self.pool.len(),
            pool_bytes: self.pool.bytes(),
            pool_senders: self.pool.senders_len(),
            pool_recent_ids: self.pool.recent_len(),
        }
    }

    /// Cut one batch from the pool unless pending batches fill the cache.
    fn cut(&mut self, now_us: u64, out: &mut Vec<Action<S>>) {
        if self.pool.is_empty() || self.trim() {
            return;
        }
        let taken = self
            .pool
            .take_batch(self.cfg.batch_max_txs, self.cfg.batch_max_bytes);
        if taken.is_empty() {
            return;
        }
        let ids: Vec<Digest> = taken.iter().map(|(p, _)| p.hash).collect();
        let digest = plume_protocol::batch_root(&ids);
        let mut txs: Vec<Option<PreparedTx>> = Vec::with_capacity(taken.len());
        let mut raw = Vec::with_capacity(taken.len());
        for (p, b) in taken {
            txs.push(Some(p));
            raw.push(b);
        }
        let valid = vec![true; txs.len()];
        let b = Arc::new(VerifiedBatch {
            digest,
            txs,
            raw,
            valid,
        });
        // Pending first, so the cache never evicts it.
        self.own_pending.insert(digest, now_us);
        self.hold(b.clone());
        out.push(Action::Broadcast(b));
        self.ready.push_back((digest, ids.len()));
    }

    /// Re-send and re-queue own batches not finalized in time, and queue
    /// peers' batches left unfinalized for twice as long.
    fn refresh_stale(&mut self, now_us: u64, out: &mut Vec<Action<S>>) {
        let after = self.cfg.repropose_after_us;
        let stale: Vec<Digest> = self
            .own_pending
            .iter()
            .filter(|(_, t)| now_us.saturating_sub(**t) > after)
            .map(|(d, _)| *d)
            .collect();
        let orphaned: Vec<Digest> = self
            .peer_pending
            .iter()
            .filter(|(_, t)| now_us.saturating_sub(**t) > 2 * after)
            .map(|(d, _)| *d)
            .collect();
        for d in &orphaned {
            self.peer_pending.insert(*d, now_us);
        }
        // Send stale own batches to every peer again: a peer that missed the
        // first broadcast (a full queue) could otherwise never propose it,
        // and if leader reputation skips this validator nobody would.
        for d in &stale {
            if let Some(b) = self.batches.get(d) {
                out.push(Action::Broadcast(b.clone()));
            }
        }
        for d in stale.into_iter().chain(orphaned) {
            self.own_pending.entry(d).and_modify(|t| *t = now_us);
            if !self.fed.contains_key(&d) && !self.ready.iter().any(|(r, _)| *r == d) {
                let n = self.batches.get(&d).map_or(0, |b| b.txs.len());
                self.ready.push_back((d, n));
            }
        }
    }

    fn hold(&mut self, b: Arc<VerifiedBatch>) {
        // A requested batch has arrived: forget the request (the map stays
        // bounded by what is still missing).
        self.requested.remove(&b.digest);
        self.batches.insert(b);
        self.trim();
    }

    /// Evict finalized batches while the cache is over a bound. True when
    /// pinned batches alone reach a bound.
    fn trim(&mut self) -> bool {
        let (own, peer, fed, waiting) = (
            &self.own_pending,
            &self.peer_pending,
            &self.fed,
            &self.finalized_waiting,
        );
        let pinned = |d: &Digest| {
            own.contains_key(d)
                || peer.contains_key(d)
                || fed.contains_key(d)
                || waiting.iter().any(|(b, _)| b.payload.contains(d))
        };
        self.batches.trim(pinned);
        self.batches.over_bounds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plume_crypto::ed25519::SigningKey;
    use plume_protocol::calls::Transfer;
    use plume_protocol::consensus::QuorumCert;
    use plume_protocol::tx::{Transaction, TxBody, NATIVE_ASSET};
    use plume_protocol::BlsScheme;

    type B = Batcher<BlsScheme>;

    fn tx(sender: u8, seq: u64) -> (PreparedTx, Vec<u8>) {
        let key = SigningKey::from_bytes(&[sender; 32]);
        let mut body = TxBody::for_call(Transfer {
            asset: NATIVE_ASSET,
            to: [7; 32],
            amount: 1,
        });
        body.chain_id = "t".into();
        body.signers = vec![key.public_key().to_bytes()];
        body.sequence = seq;
        body.max_fee_per_gas = 10;
        body.gas_limit = 100_000;
        body.expiry_height = 1000;
        let t = Transaction::sign(body, &[&key]);
        let bytes = t.to_bytes();
        (PreparedTx::new(t), bytes)
    }

    fn batcher(block_txs_max: usize) -> B {
        Batcher::new(
            BatcherConfig::new(2, 1 << 20, block_txs_max),
            Mempool::default(),
        )
    }

    fn fill(b: &mut B, senders: u8) {
        for s in 1..=senders {
            let (p, bytes) = tx(s, 0);
            b.pool.insert(p, bytes, 0).unwrap();
        }
    }

    fn finalized(payload: Vec<Digest>) -> (Block<BlsScheme>, CommitProof<BlsScheme>) {
        let g = Block::<BlsScheme>::genesis(1);
        let block = Block::new(0, 1, 0, payload, QuorumCert::genesis(0, &g));
        let child = Block::new(0, 2, 0, vec![], QuorumCert::genesis(0, &block));
        let proof = CommitProof {
            child_qc: QuorumCert::genesis(0, &child),
            child,
        };
        (block, proof)
    }

    fn peer_batch(i: u8) -> Arc<VerifiedBatch> {
        let (p, bytes) = tx(100 + i, 0);
        Arc::new(VerifiedBatch {
            digest: plume_protocol::batch_root(&[p.hash]),
            txs: vec![Some(p)],
            raw: vec![bytes],
            valid: vec![true],
        })
    }

    #[test]
    fn a_tick_cuts_broadcasts_and_offers_one_batch() {
        let mut b = batcher(100);
        fill(&mut b, 3);
        let mut out = Vec::new();
        b.tick(0, &mut out);
        let [Action::Broadcast(batch), Action::Offer(offer)] = &out[..] else {
            panic!("{out:?}");
        };
        assert_eq!(batch.txs.len(), 2, "batch_max_txs");
        assert_eq!(offer, &vec![batch.digest]);
        assert_eq!(b.sizes().own_pending, 1);
        assert_eq!(b.pool.len(), 1);
        // The offered batch is pinned until proposed and finalized.
        b.on_own_proposal(offer);
        assert_eq!(b.sizes().fed, 0);
    }

    #[test]
    fn offers_never_exceed_one_block() {
        let mut b = batcher(3);
        fill(&mut b, 6);
        let mut out = Vec::new();
        b.tick(0, &mut out); // batch 1 (2 txs): offered
        b.tick(1, &mut out); // batch 2 (2 txs): 4 > 3, held back
        let offers: Vec<usize> = out
            .iter()
            .filter_map(|a| match a {
                Action::Offer(o) => Some(o.len()),
                _ => None,
            })
            .collect();
        assert_eq!(offers, vec![1]);
        assert_eq!(b.sizes().ready, 1);
        // Once the first is proposed, the second goes.
        let Action::Offer(first) = &out[1] else {
            panic!()
        };
        b.on_own_proposal(&first.clone());
        out.clear();
        b.tick(2, &mut out);
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::Offer(o) if o.len() == 1)));
    }

    #[test]
    fn a_finalized_block_waits_for_its_batches_and_requests_them_with_backoff() {
        let mut b = batcher(100);
        let (x, y) = (peer_batch(1), peer_batch(2));
        let (block, proof) = finalized(vec![x.digest, y.digest]);
        let mut out = Vec::new();
        b.on_finalized(block, proof, 0, &mut out);
        assert!(matches!(&out[..], [Action::Request(d)] if d.len() == 2));
        // Not again before the retry interval, again after it.
        out.clear();
        b.dispatch(REQUEST_RETRY_US, &mut out);
        assert!(out.is_empty());
        b.dispatch(REQUEST_RETRY_US + 1, &mut out);
        assert!(matches!(&out[..], [Action::Request(d)] if d.len() == 2));
        // One arrives: the other is still missing, nothing executes.
        out.clear();
        b.on_peer_batch(x.clone(), REQUEST_RETRY_US + 2, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // Late copies of a finalized batch still needed are wanted; once
        // executed they are not.
        assert!(b.wants_peer_batch(&y.digest));
        b.on_peer_batch(y.clone(), REQUEST_RETRY_US + 3, &mut out);
        let [Action::Execute(job)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(job.batches.len(), 2);
        assert_eq!(job.batches[0].digest, x.digest);
        assert!(!b.wants_peer_batch(&y.digest), "held");
        // Finalized batches are not pending.
        assert_eq!(b.sizes().peer_pending, 0);
        assert_eq!(b.sizes().finalized_waiting, 0);
    }

    #[test]
    fn blocks_execute_in_finalization_order() {
        let mut b = batcher(100);
        let (x, y) = (peer_batch(1), peer_batch(2));
        let (b1, p1) = finalized(vec![x.digest]);
        let (b2, p2) = finalized(vec![y.digest]);
        let (h1, h2) = (b1.id, b2.id);
        let mut out = Vec::new();
        b.on_peer_batch(y, 0, &mut out);
        b.on_finalized(b1, p1, 1, &mut out);
        b.on_finalized(b2, p2, 2, &mut out);
        // The second block's batch is here, the first's is not: nothing runs.
        assert!(!out.iter().any(|a| matches!(a, Action::Execute(_))));
        out.clear();
        b.on_peer_batch(x, 3, &mut out);
        let ids: Vec<Digest> = out
            .iter()
            .filter_map(|a| match a {
                Action::Execute(j) => Some(j.block.id),
                _ => None,
            })
            .collect();
        assert_eq!(ids, vec![h1, h2]);
    }

    #[test]
    fn stale_own_batches_are_sent_and_offered_again() {
        let mut b = batcher(100);
        fill(&mut b, 2);
        let mut out = Vec::new();
        b.tick(0, &mut out);
        let Action::Offer(o) = &out[1] else { panic!() };
        let d = o[0];
        b.on_own_proposal(&[d]); // proposed in a view that then failed
        out.clear();
        b.tick(REPROPOSE_AFTER_US, &mut out);
        assert!(out.is_empty(), "not stale yet: {out:?}");
        b.tick(REPROPOSE_AFTER_US + 1, &mut out);
        assert!(matches!(&out[0], Action::Broadcast(x) if x.digest == d));
        assert!(matches!(&out[1], Action::Offer(x) if x == &vec![d]));
        // Once finalized it is never offered again.
        let (block, proof) = finalized(vec![d]);
        out.clear();
        b.on_finalized(block, proof, REPROPOSE_AFTER_US + 2, &mut out);
        out.clear();
        b.tick(10 * REPROPOSE_AFTER_US, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn orphaned_peer_batches_are_offered_after_twice_the_delay() {
        let mut b = batcher(100);
        let x = peer_batch(1);
        let mut out = Vec::new();
        b.on_peer_batch(x.clone(), 0, &mut out);
        b.tick(2 * REPROPOSE_AFTER_US, &mut out);
        assert!(out.is_empty());
        b.tick(2 * REPROPOSE_AFTER_US + 1, &mut out);
        assert!(matches!(&out[..], [Action::Offer(o)] if o == &vec![x.digest]));
    }

    #[test]
    fn pending_batches_fill_the_cache_then_cutting_stops() {
        let mut cfg = BatcherConfig::new(1, 1 << 20, 100);
        cfg.batches_held_max = 2;
        let mut b: B = Batcher::new(cfg, Mempool::default());
        fill(&mut b, 5);
        let mut out = Vec::new();
        for t in 0..5 {
            b.tick(t, &mut out);
        }
        let cut = out
            .iter()
            .filter(|a| matches!(a, Action::Broadcast(_)))
            .count();
        // Two fit; the third is cut before the cache notices it is over
        // (pinned batches are never evicted); then cutting stops.
        assert_eq!(cut, 3);
        assert_eq!(b.pool.len(), 2, "the rest waits in the pool");
        assert_eq!(b.sizes().batches, 3);
    }
}
