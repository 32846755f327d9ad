//! The transaction pool: verified transactions waiting to be put into a
//! batch.
//!
//! - Deduplicated by transaction id.
//! - Ordered per sender by sequence: a batch only ever takes a sender's
//!   transactions in sequence order without gaps, so a block never holds a
//!   sender's sequence `n+1` before `n`.
//! - Across senders, batches take the highest tip per gas first: the tip
//!   the transaction will pay at the base fee its admission read
//!   (`min(priority fee, max fee - base fee)`), not its maximum fee, so a
//!   sender cannot buy priority with a fee it never pays.
//! - Bounded by count, bytes and per-sender depth ([`SENDER_PENDING_MAX`]).
//!   A sender's pending transactions together may not commit more fees
//!   (gas limit x max fee each) than its balance at admission.
//! - When full, fairness first: the sender holding the most pending
//!   transactions loses its last one, if it holds more than the newcomer's
//!   sender would; else a newcomer paying a higher tip evicts the cheapest
//!   sender's last one; else the newcomer is refused with `Full`. Evicting a
//!   sender's *last* pending transaction never creates a gap. An attacker
//!   with many accounts gets at most its share per account, however it
//!   prices its transactions.
//! - Transactions stuck behind a gap (a missing earlier sequence) expire
//!   after [`GAP_TTL_US`] ([`Mempool::expire_gapped`]).

use plume_crypto::ed25519::Address;
use plume_crypto::Digest;
use plume_protocol::PreparedTx;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Most transactions held.
pub const MEMPOOL_TXS_MAX: usize = 200_000;
/// Most bytes of encoded transactions held.
pub const MEMPOOL_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Ids of batched (not yet executed) transactions remembered for
/// duplicate detection. Batching to execution takes well under a second, and
/// once executed a copy is refused by its used sequence anyway, so this only
/// needs to cover seconds of own batches (65 536: about 5 s at 12 000 tx/s
/// per node; about 6 MiB).
pub const RECENT_IDS_MAX: usize = 65_536;
/// How far ahead of its next sequence a sender may queue.
pub const SENDER_SEQUENCE_WINDOW: u64 = 1024;
/// Most pending transactions of one sender.
pub const SENDER_PENDING_MAX: usize = 256;
/// A transaction waiting behind a gap longer than this (microseconds on
/// the caller's clock) is dropped.
pub const GAP_TTL_US: u64 = 30_000_000;

/// What a transaction's admission check read from the latest state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateView {
    /// The sender's next sequence.
    pub next_sequence: u64,
    /// The payer's native balance (what its fees are paid from).
    pub fee_balance: u128,
    /// The tip per gas it would pay at the current base fee.
    pub tip_per_gas: u64,
}

impl StateView {
    /// A view with no balance limit and the tip at a zero base fee
    /// (`min(priority fee, max fee)`).
    pub fn unlimited(tx: &PreparedTx, next_sequence: u64) -> StateView {
        let b = &tx.tx.body;
        StateView {
            next_sequence,
            fee_balance: u128::MAX,
            tip_per_gas: b.priority_fee_per_gas.min(b.max_fee_per_gas),
        }
    }
}
/// Senders whose latest executed sequence is remembered although nothing
/// of theirs is pending here (see [`Mempool::advance`]): enough for every
/// payer of the last few seconds of blocks.
pub const STATE_SEEN_MAX: usize = 65_536;

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Already held (or already batched).
    #[error("transaction already in the mempool")]
    Duplicate,
    /// The pool is full and the transaction does not pay more than the
    /// cheapest one held.
    #[error("mempool full")]
    Full,
    /// Sequence already used or batched.
    #[error("sequence {got} already used (next is {next})")]
    SequenceUsed {
        /// The transaction's sequence.
        got: u64,
        /// The sender's next sequence.
        next: u64,
    },
    /// The sender already has [`SENDER_PENDING_MAX`] pending transactions.
    #[error("the sender already has {held} transactions waiting (at most {SENDER_PENDING_MAX})")]
    SenderFull {
        /// Pending transactions of the sender.
        held: usize,
    },
    /// The sender's pending transactions would commit more fees than its
    /// balance.
    #[error("pending fees of the sender ({reserved} with this one) exceed its balance {balance}")]
    FeesExceedBalance {
        /// Fees committed by its pending transactions, this one included.
        reserved: u128,
        /// Its balance at admission.
        balance: u128,
    },
    /// Sequence too far ahead.
    #[error("sequence {got} too far ahead (next is {next}, window {SENDER_SEQUENCE_WINDOW})")]
    SequenceTooFar {
        /// The transaction's sequence.
        got: u64,
        /// The sender's next sequence.
        next: u64,
    },
}

struct Entry {
    tx: PreparedTx,
    bytes: Vec<u8>,
    /// The tip per gas it pays (the priority key).
    fee: u64,
    /// The most fee it can be charged (gas limit x max fee).
    max_fee: u128,
    /// When it was admitted, on the caller's clock.
    admitted_us: u64,
}

#[derive(Default)]
struct Sender {
    /// Next sequence a batch may take for this sender.
    next: u64,
    /// Highest next-sequence the state has reported.
    state_seen: u64,
    /// One past the highest sequence handed to a batch.
    batched_upto: u64,
    /// Sum of `max_fee` over `pending`.
    reserved: u128,
    pending: BTreeMap<u64, Entry>,
}

/// The pool.
pub struct Mempool {
    txs_max: usize,
    bytes_max: usize,
    senders: HashMap<Address, Sender>,
    ids: HashMap<Digest, (Address, u64)>,
    /// (fee, sender, sequence) of every held transaction, cheapest first.
    by_fee: BTreeSet<(u64, Address, u64)>,
    /// (admission time, sender, sequence), oldest first.
    by_admit: BTreeSet<(u64, Address, u64)>,
    /// (pending count, sender) of every sender with pending transactions.
    by_depth: BTreeSet<(usize, Address)>,
    expired: u64,
    bytes: usize,
    evicted: u64,
    recent: std::collections::VecDeque<Digest>,
    recent_set: std::collections::HashSet<Digest>,
    /// Next sequences reported by `advance` for senders without a cursor,
    /// oldest first out: a submission prechecked against an older state
    /// must not move a sender's cursor back behind an execution that the
    /// pool already heard of.
    state_seen: HashMap<Address, u64>,
    state_seen_order: std::collections::VecDeque<Address>,
    /// Senders with transactions in batches not finalized yet, and how many
    /// such batches: their next transactions wait, since a later batch
    /// could be ordered before the earlier one and its transactions would
    /// fail on their sequence.
    in_flight: HashMap<Address, u32>,
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("len", &self.len())
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Default for Mempool {
    fn default() -> Self {
        Self::with_limits(MEMPOOL_TXS_MAX, MEMPOOL_BYTES_MAX)
    }
}

impl Mempool {
    /// An empty pool with the default bounds.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty pool with other bounds.
    pub fn with_limits(txs_max: usize, bytes_max: usize) -> Self {
        Mempool {
            txs_max,
            bytes_max,
            senders: HashMap::new(),
            ids: HashMap::new(),
            by_fee: BTreeSet::new(),
            by_admit: BTreeSet::new(),
            by_depth: BTreeSet::new(),
            expired: 0,
            bytes: 0,
            evicted: 0,
            recent: std::collections::VecDeque::new(),
            recent_set: std::collections::HashSet::new(),
            state_seen: HashMap::new(),
            state_seen_order: std::collections::VecDeque::new(),
            in_flight: HashMap::new(),
        }
    }

    /// These senders have transactions in a batch that is not finalized:
    /// [`Mempool::take_batch`] skips them until [`Mempool::release`].
    pub fn hold_senders(&mut self, senders: &[Address]) {
        for s in senders {
            *self.in_flight.entry(*s).or_default() += 1;
        }
    }

    /// The batch that held these senders is finalized (ordered for good).
    pub fn release(&mut self, senders: &[Address]) {
        for s in senders {
            if let Some(n) = self.in_flight.get_mut(s) {
                *n -= 1;
                if *n == 0 {
                    self.in_flight.remove(s);
                }
            }
        }
    }

    /// Senders waiting for a batch of theirs to be finalized.
    pub fn senders_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Transactions held.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Sender cursors held.
    pub fn senders_len(&self) -> usize {
        self.senders.len()
    }

    /// Batched ids remembered for duplicate detection.
    pub fn recent_len(&self) -> usize {
        self.recent_set.len()
    }

    /// Transactions evicted so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Gapped transactions expired so far.
    pub fn expired(&self) -> u64 {
        self.expired
    }

    /// Pending transactions of `sender`.
    pub fn pending_of(&self, sender: &Address) -> usize {
        self.senders.get(sender).map_or(0, |s| s.pending.len())
    }

    /// Take entry `seq` of `sender` out of every index (the caller removed
    /// it from the sender's `pending`; `before` is the count before that).
    fn unlink(&mut self, sender: Address, seq: u64, e: &Entry, before: usize) {
        self.by_fee.remove(&(e.fee, sender, seq));
        self.by_admit.remove(&(e.admitted_us, sender, seq));
        self.ids.remove(&e.tx.hash);
        self.bytes -= e.bytes.len();
        if let Some(s) = self.senders.get_mut(&sender) {
            s.reserved = s.reserved.saturating_sub(e.max_fee);
        }
        self.by_depth.remove(&(before, sender));
        if before > 1 {
            self.by_depth.insert((before - 1, sender));
        }
    }

    /// Remove `sender`'s pending `seq` from the pool.
    fn remove(&mut self, sender: Address, seq: u64) -> Option<Entry> {
        let s = self.senders.get_mut(&sender)?;
        let before = s.pending.len();
        let e = s.pending.remove(&seq)?;
        self.unlink(sender, seq, &e, before);
        Some(e)
    }

    /// Drop transactions admitted more than `ttl_us` before `now_us` that
    /// wait behind a gap (an earlier sequence of their sender is missing).
    /// Returns how many were dropped.
    pub fn expire_gapped(&mut self, now_us: u64, ttl_us: u64) -> u64 {
        let cutoff = now_us.saturating_sub(ttl_us);
        let old: Vec<(Address, u64)> = self
            .by_admit
            .iter()
            .take_while(|(t, _, _)| *t < cutoff)
            .map(|(_, a, q)| (*a, *q))
            .collect();
        let mut n = 0;
        for (sender, seq) in old {
            let gapped = self.senders.get(&sender).is_some_and(|s| {
                // Reachable: every sequence from the cursor up to it held.
                (s.next..seq).any(|q| !s.pending.contains_key(&q))
            });
            if gapped && self.remove(sender, seq).is_some() {
                n += 1;
            }
            self.drop_sender_if_empty(&sender);
        }
        self.expired += n;
        n
    }

    /// Admit a verified transaction. `state_next_sequence` is the sender's
    /// next sequence in the latest executed state (used the first time the
    /// sender is seen, or to move its cursor forward).
    pub fn insert(
        &mut self,
        tx: PreparedTx,
        bytes: Vec<u8>,
        state_next_sequence: u64,
    ) -> Result<(), MempoolError> {
        let view = StateView::unlimited(&tx, state_next_sequence);
        self.insert_at(tx, bytes, view, 0)
    }

    /// Admit a verified transaction with what its admission check read
    /// from the state, remembering the admission time `now_us` (handed back
    /// by [`Mempool::take_batch_timed`]; gapped transactions expire by it).
    pub fn insert_at(
        &mut self,
        tx: PreparedTx,
        bytes: Vec<u8>,
        view: StateView,
        now_us: u64,
    ) -> Result<(), MempoolError> {
        let state_next_sequence = view.next_sequence;
        let Some(sender) = tx.payer().copied() else {
            return Err(MempoolError::SequenceUsed { got: 0, next: 0 });
        };
        if self.ids.contains_key(&tx.hash) || self.recent_set.contains(&tx.hash) {
            return Err(MempoolError::Duplicate);
        }
        let seq = tx.tx.body.sequence;
        let fee = view.tip_per_gas;
        let max_fee = tx.tx.body.gas_limit as u128 * tx.tx.body.max_fee_per_gas as u128;
        if !self.senders.contains_key(&sender) && self.senders.len() >= self.txs_max {
            // Idle senders (everything batched) are forgotten first.
            self.senders.retain(|_, s| !s.pending.is_empty());
        }
        // The precheck read the state before this arrived; execution may
        // have moved on since (and told us while we had no cursor).
        let state_next_sequence =
            state_next_sequence.max(self.state_seen.get(&sender).copied().unwrap_or(0));
        let s = self.senders.entry(sender).or_default();
        s.next = s.next.max(state_next_sequence);
        s.state_seen = s.state_seen.max(state_next_sequence);
        if seq < s.next {
            let next = s.next;
            self.drop_sender_if_empty(&sender);
            return Err(MempoolError::SequenceUsed { got: seq, next });
        }
        if seq >= s.next.saturating_add(SENDER_SEQUENCE_WINDOW) {
            let next = s.next;
            self.drop_sender_if_empty(&sender);
            return Err(MempoolError::SequenceTooFar { got: seq, next });
        }
        if s.pending.contains_key(&seq) {
            // Same sender and sequence, different transaction: keep the first.
            return Err(MempoolError::Duplicate);
        }
        let held = s.pending.len();
        if held >= SENDER_PENDING_MAX {
            return Err(MempoolError::SenderFull { held });
        }
        let reserved = s.reserved.saturating_add(max_fee);
        if reserved > view.fee_balance {
            self.drop_sender_if_empty(&sender);
            return Err(MempoolError::FeesExceedBalance {
                reserved,
                balance: view.fee_balance,
            });
        }
        // Behind a gap it cannot pay until its predecessors come: it may
        // take a deeper sender's place, never evict by its tip.
        let reachable = self
            .senders
            .get(&sender)
            .is_some_and(|s| (s.next..seq).all(|q| s.pending.contains_key(&q)));
        while self.ids.len() >= self.txs_max || self.bytes + bytes.len() > self.bytes_max {
            if !self.evict_for(sender, held, fee, reachable) {
                self.drop_sender_if_empty(&sender);
                return Err(MempoolError::Full);
            }
        }
        let s = self.senders.entry(sender).or_default();
        s.reserved = s.reserved.saturating_add(max_fee);
        let before = s.pending.len();
        let (hash, len) = (tx.hash, bytes.len());
        s.pending.insert(
            seq,
            Entry {
                tx,
                bytes,
                fee,
                max_fee,
                admitted_us: now_us,
            },
        );
        self.bytes += len;
        self.ids.insert(hash, (sender, seq));
        self.by_fee.insert((fee, sender, seq));
        self.by_admit.insert((now_us, sender, seq));
        self.by_depth.remove(&(before, sender));
        self.by_depth.insert((before + 1, sender));
        Ok(())
    }

    /// Make room for a newcomer of `sender` (holding `held`) paying `fee`:
    /// evict the deepest sender's last transaction if it holds more than
    /// the newcomer's sender would, else (for a `reachable` newcomer: no
    /// gap before it) the last one of the cheapest other sender paying
    /// less. Never the newcomer's own sender (that could cut a gap under
    /// it). False when neither applies.
    fn evict_for(&mut self, sender: Address, held: usize, fee: u64, reachable: bool) -> bool {
        if let Some(&(depth, deepest)) = self.by_depth.last() {
            if deepest != sender && depth > held + 1 {
                self.evict_last_of(deepest);
                return true;
            }
        }
        if !reachable {
            return false;
        }
        let victim = self
            .by_fee
            .iter()
            .take_while(|(f, _, _)| *f < fee)
            .find(|(_, a, _)| *a != sender)
            .map(|(_, a, _)| *a);
        match victim {
            Some(v) => {
                self.evict_last_of(v);
                true
            }
            None => false,
        }
    }

    fn drop_sender_if_empty(&mut self, sender: &Address) {
        // A sender with nothing pending and nothing batched past the state
        // needs no cursor: the state's sequence is authoritative. (Senders
        // whose batched transactions are not executed yet keep their cursor
        // until `advance` catches up.) What the cursor knew of the state is
        // remembered, for admissions prechecked against an older state.
        if self
            .senders
            .get(sender)
            .is_some_and(|s| s.pending.is_empty() && s.batched_upto <= s.state_seen)
        {
            if let Some(s) = self.senders.remove(sender) {
                self.remember_state(sender, s.state_seen);
            }
        }
    }

    /// Remember `next` as `sender`'s latest executed next sequence (bounded,
    /// oldest first out).
    fn remember_state(&mut self, sender: &Address, next: u64) {
        let e = self.state_seen.entry(*sender).or_insert_with(|| {
            self.state_seen_order.push_back(*sender);
            0
        });
        *e = (*e).max(next);
        while self.state_seen_order.len() > STATE_SEEN_MAX {
            if let Some(old) = self.state_seen_order.pop_front() {
                self.state_seen.remove(&old);
            }
        }
    }

    fn evict_last_of(&mut self, sender: Address) {
        // A sender's last pending transaction: no gap is created.
        let Some(seq) = self
            .senders
            .get(&sender)
            .and_then(|s| s.pending.keys().next_back().copied())
        else {
            return;
        };
        if self.remove(sender, seq).is_some() {
            self.evicted += 1;
        }
        self.drop_sender_if_empty(&sender);
    }

    /// The state says `sender`'s next sequence is `next` (after a block):
    /// drop pending transactions below it and move the cursor forward, so
    /// transactions that arrived here before their predecessors (sent to
    /// another validator) become eligible.
    ///
    /// For a sender without a cursor the value is remembered (bounded by
    /// [`STATE_SEEN_MAX`]): a transaction of it prechecked against the
    /// state before this block, and admitted after, then starts from here
    /// rather than from its stale sequence (else it would wait forever for
    /// a predecessor that was already executed).
    pub fn advance(&mut self, sender: &Address, next: u64) {
        let Some(s) = self.senders.get_mut(sender) else {
            self.remember_state(sender, next);
            return;
        };
        s.state_seen = s.state_seen.max(next);
        if next <= s.next {
            self.drop_sender_if_empty(sender);
            return;
        }
        s.next = next;
        let stale: Vec<u64> = s.pending.range(..next).map(|(k, _)| *k).collect();
        for seq in stale {
            self.remove(*sender, seq);
        }
        self.drop_sender_if_empty(sender);
    }

    /// Take up to `txs_max` transactions / `bytes_max` bytes for a batch:
    /// senders with the best-paying next transaction first, each sender's
    /// transactions in sequence order without gaps.
    pub fn take_batch(&mut self, txs_max: usize, bytes_max: usize) -> Vec<(PreparedTx, Vec<u8>)> {
        self.take_batch_timed(txs_max, bytes_max)
            .into_iter()
            .map(|(t, b, _)| (t, b))
            .collect()
    }

    /// [`Mempool::take_batch`], with each transaction's admission time.
    pub fn take_batch_timed(
        &mut self,
        txs_max: usize,
        bytes_max: usize,
    ) -> Vec<(PreparedTx, Vec<u8>, u64)> {
        let mut out = Vec::new();
        let mut size = 0usize;
        // Candidates: each sender whose next sequence is held, best fee first.
        let mut heads: Vec<(u64, Address)> = self
            .senders
            .iter()
            .filter(|(a, _)| !self.in_flight.contains_key(*a))
            .filter_map(|(a, s)| s.pending.get(&s.next).map(|e| (e.fee, *a)))
            .collect();
        heads.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        for (_, sender) in heads {
            loop {
                if out.len() >= txs_max {
                    return out;
                }
                let s = self.senders.get_mut(&sender).expect("listed sender exists");
                let Some(e) = s.pending.get(&s.next) else {
                    break;
                };
                if size + e.bytes.len() > bytes_max {
                    break;
                }
                let seq = s.next;
                s.next += 1;
                s.batched_upto = s.next;
                let e = self.remove(sender, seq).expect("just looked up");
                size += e.bytes.len();
                if self.recent_set.insert(e.tx.hash) {
                    self.recent.push_back(e.tx.hash);
                    if self.recent.len() > RECENT_IDS_MAX {
                        if let Some(old) = self.recent.pop_front() {
                            self.recent_set.remove(&old);
                        }
                    }
                }
                out.push((e.tx, e.bytes, e.admitted_us));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plume_crypto::ed25519::SigningKey;
    use plume_protocol::calls::Transfer;
    use plume_protocol::tx::{Transaction, TxBody, NATIVE_ASSET};

    fn tx(key: &SigningKey, seq: u64, fee: u64) -> PreparedTx {
        let mut body = TxBody::for_call(Transfer {
            asset: NATIVE_ASSET,
            to: [7; 32],
            amount: 1,
        });
        body.chain_id = "t".into();
        body.signers = vec![key.public_key().to_bytes()];
        body.sequence = seq;
        body.max_fee_per_gas = fee;
        body.priority_fee_per_gas = fee;
        body.gas_limit = 100_000;
        body.expiry_height = 1000;
        PreparedTx::new(Transaction::sign(body, &[key]))
    }

    fn key(i: u8) -> SigningKey {
        SigningKey::from_bytes(&[i; 32])
    }

    fn add(m: &mut Mempool, t: PreparedTx) -> Result<(), MempoolError> {
        let bytes = t.tx.to_bytes();
        m.insert(t, bytes, 0)
    }

    #[test]
    fn batches_follow_sequence_and_fee_order() {
        let mut m = Mempool::new();
        let (a, b) = (key(1), key(2));
        add(&mut m, tx(&a, 1, 10)).unwrap();
        add(&mut m, tx(&a, 0, 10)).unwrap();
        add(&mut m, tx(&b, 0, 50)).unwrap();
        add(&mut m, tx(&a, 3, 10)).unwrap(); // gap at 2: stays
        let batch = m.take_batch(100, usize::MAX);
        let order: Vec<(u8, u64)> = batch
            .iter()
            .map(|(t, _)| {
                (
                    if t.tx.body.signers[0] == a.public_key().to_bytes() {
                        1
                    } else {
                        2
                    },
                    t.tx.body.sequence,
                )
            })
            .collect();
        assert_eq!(order, vec![(2, 0), (1, 0), (1, 1)]);
        assert_eq!(m.len(), 1);
        add(&mut m, tx(&a, 2, 10)).unwrap();
        let batch = m.take_batch(100, usize::MAX);
        assert_eq!(
            batch
                .iter()
                .map(|(t, _)| t.tx.body.sequence)
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert!(m.is_empty());
        assert_eq!(m.bytes(), 0);
    }

    #[test]
    fn duplicates_replays_and_far_sequences_are_refused() {
        let mut m = Mempool::new();
        let a = key(1);
        add(&mut m, tx(&a, 0, 10)).unwrap();
        assert_eq!(add(&mut m, tx(&a, 0, 10)), Err(MempoolError::Duplicate));
        assert_eq!(add(&mut m, tx(&a, 0, 11)), Err(MempoolError::Duplicate));
        m.take_batch(10, usize::MAX);
        assert_eq!(
            add(&mut m, tx(&a, 0, 10)),
            Err(MempoolError::Duplicate),
            "batched, not executed yet"
        );
        assert_eq!(
            add(&mut m, tx(&a, 0, 12)),
            Err(MempoolError::SequenceUsed { got: 0, next: 1 })
        );
        let far = SENDER_SEQUENCE_WINDOW + 1;
        assert_eq!(
            add(&mut m, tx(&a, far, 10)),
            Err(MempoolError::SequenceTooFar { got: far, next: 1 })
        );
        let t = tx(&a, 5, 10);
        let bytes = t.tx.to_bytes();
        assert_eq!(
            m.insert(t, bytes, 9),
            Err(MempoolError::SequenceUsed { got: 5, next: 9 })
        );
    }

    #[test]
    fn full_pool_evicts_the_deepest_sender_first_then_the_cheapest() {
        let mut m = Mempool::with_limits(3, usize::MAX);
        let (a, b, c, d) = (key(1), key(2), key(3), key(5));
        add(&mut m, tx(&a, 0, 5)).unwrap();
        add(&mut m, tx(&a, 1, 5)).unwrap();
        add(&mut m, tx(&b, 0, 20)).unwrap();
        // a holds two, c none: a's last goes (c pays no more than a).
        add(&mut m, tx(&c, 0, 5)).unwrap();
        assert_eq!(m.evicted(), 1);
        assert_eq!(m.pending_of(&a.public_key().address()), 1, "a kept seq 0");
        // One each now: only a better tip gets in.
        assert_eq!(
            add(&mut m, tx(&d, 0, 5)),
            Err(MempoolError::Full),
            "not better than the cheapest"
        );
        add(&mut m, tx(&d, 0, 30)).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m.evicted(), 2);
        let held = |k: &SigningKey| m.pending_of(&k.public_key().address());
        assert_eq!(held(&a) + held(&c), 1, "one of the cheapest lost its last");
        assert_eq!((held(&b), held(&d)), (1, 1));
    }

    #[test]
    fn a_newcomer_never_evicts_its_own_sender_and_gapped_ones_never_evict_by_tip() {
        let mut m = Mempool::with_limits(2, usize::MAX);
        let (a, b, c) = (key(21), key(22), key(23));
        add(&mut m, tx(&a, 0, 1)).unwrap();
        add(&mut m, tx(&b, 0, 5)).unwrap();
        // a's seq 1 pays more than a's own seq 0, the cheapest: the victim
        // must be b (cheapest other sender paying less), never a's seq 0.
        add(&mut m, tx(&a, 1, 10)).unwrap();
        assert_eq!(m.pending_of(&a.public_key().address()), 2);
        assert_eq!(m.pending_of(&b.public_key().address()), 0);
        let batch = m.take_batch(10, usize::MAX);
        let seqs: Vec<u64> = batch.iter().map(|(t, _)| t.tx.body.sequence).collect();
        assert_eq!(seqs, vec![0, 1], "no gap was cut under a");
        // A gapped newcomer (c's seq 3, nothing before it) with a huge tip
        // does not evict a reachable transaction.
        let mut m = Mempool::with_limits(2, usize::MAX);
        add(&mut m, tx(&a, 0, 1)).unwrap();
        add(&mut m, tx(&b, 0, 1)).unwrap();
        assert_eq!(add(&mut m, tx(&c, 3, 1_000)), Err(MempoolError::Full));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn squatting_accounts_cannot_keep_an_honest_sender_out() {
        // 300 funded accounts with high tips fill the pool; an honest
        // sender with the lowest tip still gets in, and only squatters lose.
        let mut m = Mempool::with_limits(2_000, usize::MAX);
        let squatters: Vec<SigningKey> = (0..300u32)
            .map(|i| {
                let mut b = [0u8; 32];
                b[..4].copy_from_slice(&i.to_le_bytes());
                b[31] = 0xee;
                SigningKey::from_bytes(&b)
            })
            .collect();
        'fill: for seq in 0..SENDER_PENDING_MAX as u64 {
            for k in &squatters {
                if add(&mut m, tx(k, seq, 1_000)).is_err() {
                    break 'fill;
                }
            }
        }
        assert_eq!(m.len(), 2_000, "the pool is full of squatters");
        for i in 0..50u8 {
            let honest = key(100 + i);
            add(&mut m, tx(&honest, 0, 1)).expect("an honest newcomer is admitted");
            assert_eq!(m.pending_of(&honest.public_key().address()), 1);
        }
        assert_eq!(m.len(), 2_000);
        let batch = m.take_batch(10_000, usize::MAX);
        let honest = batch
            .iter()
            .filter(|(t, _)| t.tx.body.max_fee_per_gas == 1)
            .count();
        assert_eq!(honest, 50, "every honest transaction is batched");
    }

    #[test]
    fn one_sender_holds_a_bounded_number_and_its_fees_are_covered_together() {
        let mut m = Mempool::new();
        let a = key(9);
        for seq in 0..SENDER_PENDING_MAX as u64 {
            add(&mut m, tx(&a, seq, 1)).unwrap();
        }
        assert_eq!(
            add(&mut m, tx(&a, SENDER_PENDING_MAX as u64, 1)),
            Err(MempoolError::SenderFull {
                held: SENDER_PENDING_MAX
            })
        );
        // Balance for exactly two transactions' fees (gas limit 100,000 x
        // max fee 10 each): the third is refused although each alone is
        // covered.
        let b = key(10);
        let t = |seq| tx(&b, seq, 10);
        let view = |t: &PreparedTx| StateView {
            next_sequence: 0,
            fee_balance: 2_000_000,
            tip_per_gas: StateView::unlimited(t, 0).tip_per_gas,
        };
        for seq in 0..2 {
            let t = t(seq);
            let (v, bytes) = (view(&t), t.tx.to_bytes());
            m.insert_at(t, bytes, v, 0).unwrap();
        }
        let t3 = t(2);
        let (v, bytes) = (view(&t3), t3.tx.to_bytes());
        assert_eq!(
            m.insert_at(t3, bytes, v, 0),
            Err(MempoolError::FeesExceedBalance {
                reserved: 3_000_000,
                balance: 2_000_000
            })
        );
        // Once one is batched its reservation is gone from the pool's sum.
        let _ = m.take_batch(1, usize::MAX);
        let t3 = t(2);
        let (v, bytes) = (view(&t3), t3.tx.to_bytes());
        m.insert_at(t3, bytes, v, 0).unwrap();
    }

    #[test]
    fn priority_is_the_tip_paid_not_the_max_fee() {
        let mut m = Mempool::new();
        let (rich_cap, real_tip) = (key(11), key(12));
        // Max fee 1,000 but no priority fee: pays no tip.
        let mut t = tx(&rich_cap, 0, 1_000);
        t = {
            let mut body = t.tx.body.clone();
            body.priority_fee_per_gas = 0;
            PreparedTx::new(Transaction::sign(body, &[&rich_cap]))
        };
        add(&mut m, t).unwrap();
        add(&mut m, tx(&real_tip, 0, 5)).unwrap();
        let batch = m.take_batch(1, usize::MAX);
        assert_eq!(batch[0].0.tx.body.priority_fee_per_gas, 5);
    }

    #[test]
    fn transactions_behind_a_gap_expire_and_reachable_ones_stay() {
        let mut m = Mempool::new();
        let (a, b) = (key(13), key(14));
        let at = |m: &mut Mempool, k: &SigningKey, seq, now| {
            let t = tx(k, seq, 1);
            let (v, bytes) = (StateView::unlimited(&t, 0), t.tx.to_bytes());
            m.insert_at(t, bytes, v, now).unwrap();
        };
        // a: sequence 0 missing, 1 and 2 wait. b: 0 and 1, reachable, but
        // held back (b's earlier batch is not final yet).
        at(&mut m, &a, 1, 0);
        at(&mut m, &a, 2, 0);
        at(&mut m, &b, 0, 0);
        at(&mut m, &b, 1, 0);
        m.hold_senders(&[b.public_key().address()]);
        assert_eq!(m.expire_gapped(GAP_TTL_US - 1, GAP_TTL_US), 0, "not yet");
        assert_eq!(m.expire_gapped(GAP_TTL_US + 1, GAP_TTL_US), 2);
        assert_eq!(m.pending_of(&a.public_key().address()), 0);
        assert_eq!(m.pending_of(&b.public_key().address()), 2);
        assert_eq!(m.expired(), 2);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn advance_unblocks_a_gap_filled_elsewhere() {
        let mut m = Mempool::new();
        let a = key(4);
        add(&mut m, tx(&a, 1, 10)).unwrap();
        add(&mut m, tx(&a, 2, 10)).unwrap();
        assert!(
            m.take_batch(10, usize::MAX).is_empty(),
            "seq 0 is missing here"
        );
        m.advance(&a.public_key().address(), 1);
        let b = m.take_batch(10, usize::MAX);
        assert_eq!(
            b.iter()
                .map(|(t, _)| t.tx.body.sequence)
                .collect::<Vec<_>>(),
            vec![1, 2]
        );
        add(&mut m, tx(&a, 3, 10)).unwrap();
        add(&mut m, tx(&a, 4, 10)).unwrap();
        m.advance(&a.public_key().address(), 4);
        assert_eq!(m.len(), 1, "seq 3 was executed elsewhere and is dropped");
    }

    #[test]
    fn an_execution_heard_before_admission_is_not_forgotten() {
        // The race behind "accepted but never final": tx 5 was prechecked
        // against a state where the sender's next sequence was 4; before it
        // reached the pool, the block executing tx 4 (sent to another
        // validator) was committed and reported here, while this pool held
        // nothing of the sender.
        let mut m = Mempool::new();
        let a = key(5);
        m.advance(&a.public_key().address(), 5);
        let t = tx(&a, 5, 10);
        let bytes = t.tx.to_bytes();
        m.insert(t, bytes, 4).unwrap();
        let b = m.take_batch(10, usize::MAX);
        assert_eq!(b.len(), 1, "sequence 5 is takeable: 4 is known executed");
        // A stale sequence below what execution reported is refused.
        let old = tx(&a, 4, 10);
        let bytes = old.tx.to_bytes();
        assert!(matches!(
            m.insert(old, bytes, 4),
            Err(MempoolError::SequenceUsed { .. })
        ));
    }

    #[test]
    fn remembered_state_is_bounded() {
        let mut m = Mempool::new();
        for i in 0..(STATE_SEEN_MAX + 10) as u64 {
            let mut addr = [0u8; 32];
            addr[..8].copy_from_slice(&i.to_le_bytes());
            m.advance(&Address(addr), 1);
        }
        assert_eq!(m.state_seen.len(), STATE_SEEN_MAX);
        assert_eq!(m.state_seen_order.len(), STATE_SEEN_MAX);
    }

    #[test]
    fn batch_limits_are_respected() {
        let mut m = Mempool::new();
        let a = key(3);
        for s in 0..10 {
            add(&mut m, tx(&a, s, 10)).unwrap();
        }
        assert_eq!(m.take_batch(4, usize::MAX).len(), 4);
        let one = m.take_batch(100, 1).len();
        assert_eq!(one, 0, "nothing fits in one byte");
        assert_eq!(m.take_batch(100, usize::MAX).len(), 6);
    }
}
