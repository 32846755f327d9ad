//! The transaction pool: verified transactions waiting to be put into a
//! batch.
//!
//! - Deduplicated by transaction id.
//! - Ordered per sender by sequence: a batch only ever takes a sender's
//!   transactions in sequence order without gaps, so a block never holds a
//!   sender's sequence `n+1` before `n`.
//! - Across senders, batches take the highest fee per gas first.
//! - Bounded by count, bytes and per-sender depth. When full, a new
//!   transaction that pays more per gas than the cheapest one held evicts
//!   it (the cheapest sender's *last* pending transaction, so no gap is
//!   created); otherwise it is refused with `Full`.

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
    fee: u64,
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

    /// Admit a verified transaction. `state_next_sequence` is the sender's
    /// next sequence in the latest executed state (used the first time the
    /// sender is seen, or to move its cursor forward).
    pub fn insert(
        &mut self,
        tx: PreparedTx,
        bytes: Vec<u8>,
        state_next_sequence: u64,
    ) -> Result<(), MempoolError> {
        self.insert_at(tx, bytes, state_next_sequence, 0)
    }

    /// [`Mempool::insert`], remembering the admission time `now_us` (handed
    /// back by [`Mempool::take_batch_timed`]).
    pub fn insert_at(
        &mut self,
        tx: PreparedTx,
        bytes: Vec<u8>,
        state_next_sequence: u64,
        now_us: u64,
    ) -> Result<(), MempoolError> {
        let Some(sender) = tx.payer().copied() else {
            return Err(MempoolError::SequenceUsed { got: 0, next: 0 });
        };
        if self.ids.contains_key(&tx.hash) || self.recent_set.contains(&tx.hash) {
            return Err(MempoolError::Duplicate);
        }
        let seq = tx.tx.body.sequence;
        let fee = tx.tx.body.max_fee_per_gas;
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
        while self.ids.len() >= self.txs_max || self.bytes + bytes.len() > self.bytes_max {
            let Some(&(cheapest, _, _)) = self.by_fee.first() else {
                return Err(MempoolError::Full);
            };
            if fee <= cheapest {
                self.drop_sender_if_empty(&sender);
                return Err(MempoolError::Full);
            }
            self.evict_cheapest();
        }
        let s = self.senders.entry(sender).or_default();
        self.bytes += bytes.len();
        self.ids.insert(tx.hash, (sender, seq));
        self.by_fee.insert((fee, sender, seq));
        s.pending.insert(
            seq,
            Entry {
                tx,
                bytes,
                fee,
                admitted_us: now_us,
            },
        );
        Ok(())
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

    fn evict_cheapest(&mut self) {
        let Some(&(fee, sender, _)) = self.by_fee.first() else {
            return;
        };
        // Evict the cheapest sender's last pending transaction (no gap).
        let s = self
            .senders
            .get_mut(&sender)
            .expect("by_fee and senders agree");
        let (&seq, _) = s.pending.iter().next_back().expect("sender has pending");
        let e = s.pending.remove(&seq).expect("present");
        self.by_fee.remove(&(e.fee, sender, seq));
        self.ids.remove(&e.tx.hash);
        self.bytes -= e.bytes.len();
        self.evicted += 1;
        let _ = fee;
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
            let e = s.pending.remove(&seq).expect("listed");
            self.by_fee.remove(&(e.fee, *sender, seq));
            self.ids.remove(&e.tx.hash);
            self.bytes -= e.bytes.len();
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
                let e = s.pending.remove(&seq).expect("just looked up");
                s.next += 1;
                s.batched_upto = s.next;
                size += e.bytes.len();
                self.bytes -= e.bytes.len();
                self.by_fee.remove(&(e.fee, sender, seq));
                self.ids.remove(&e.tx.hash);
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
    fn full_pool_evicts_the_cheapest_senders_last_transaction() {
        let mut m = Mempool::with_limits(3, usize::MAX);
        let (a, b, c) = (key(1), key(2), key(3));
        add(&mut m, tx(&a, 0, 5)).unwrap();
        add(&mut m, tx(&a, 1, 5)).unwrap();
        add(&mut m, tx(&b, 0, 20)).unwrap();
        assert_eq!(
            add(&mut m, tx(&c, 0, 5)),
            Err(MempoolError::Full),
            "not better than the cheapest"
        );
        add(&mut m, tx(&c, 0, 30)).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m.evicted(), 1);
        let seqs_of_a: Vec<u64> = m
            .take_batch(10, usize::MAX)
            .iter()
            .filter(|(t, _)| t.tx.body.signers[0] == a.public_key().to_bytes())
            .map(|(t, _)| t.tx.body.sequence)
            .collect();
        assert_eq!(
            seqs_of_a,
            vec![0],
            "a's last transaction (seq 1) was evicted, not seq 0"
        );
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
