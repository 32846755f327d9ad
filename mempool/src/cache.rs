//! The batches a validator holds, bounded by count and bytes.

use plume_crypto::ed25519::Address;
use plume_crypto::Digest;
use plume_protocol::PreparedTx;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A batch as a validator holds it: its author, its digest (over the
/// raw encodings: `plume_protocol::batch::batch_digest`), the encodings and
/// their decodings. Whether its signatures are valid is its certificate's
/// verdict, not a property of the held bytes.
#[derive(Debug)]
pub struct Batch {
    /// The author's committee index.
    pub author: u32,
    /// The last block height that may carry it (part of the digest).
    pub expires: u64,
    /// Batch digest.
    pub digest: Digest,
    /// Decoded transactions (`None`: did not decode).
    pub txs: Vec<Option<PreparedTx>>,
    /// The encodings as received.
    pub raw: Vec<Vec<u8>>,
}

impl Batch {
    /// Decode `raw` (no signature checks) and compute the digest.
    pub fn from_raw(author: u32, expires: u64, raw: Vec<Vec<u8>>) -> Batch {
        let txs = raw
            .iter()
            .map(|r| {
                plume_protocol::Transaction::from_bytes(r)
                    .ok()
                    .map(PreparedTx::new)
            })
            .collect();
        Batch {
            author,
            expires,
            digest: plume_protocol::batch::batch_digest(author, expires, &raw),
            txs,
            raw,
        }
    }

    /// Transactions.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// Approximate heap bytes of a held batch: the encodings, the decoded
/// transactions (about as large again) and fixed per-transaction overheads.
pub fn batch_bytes(b: &Batch) -> usize {
    let per_tx = std::mem::size_of::<Option<PreparedTx>>()
        + std::mem::size_of::<Vec<u8>>()
        + std::mem::size_of::<Address>();
    std::mem::size_of::<Batch>() + b.raw.iter().map(|r| 2 * r.len() + per_tx).sum::<usize>()
}

/// The core's batches by digest, bounded by count and approximate bytes.
///
/// Eviction is oldest first and skips *pinned* batches (the caller says
/// which: those still pending or needed by a finalized block not yet
/// executed). Pinned batches are kept even over the bounds; the caller
/// stops producing new ones while [`BatchCache::over_bounds`].
#[derive(Debug)]
pub struct BatchCache {
    map: HashMap<Digest, Arc<Batch>>,
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
    pub fn get(&self, d: &Digest) -> Option<&Arc<Batch>> {
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
    pub fn insert(&mut self, b: Arc<Batch>) -> bool {
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

/// The payload digests of finalized blocks within a window of heights:
/// what the vote rule needs to refuse a batch that is already final (a
/// batch can only be proposed up to its expiry height, so a window of the
/// longest expiry accepted covers every digest that could come back).
#[derive(Debug, Default)]
pub struct FinalizedIndex {
    by_height: std::collections::BTreeMap<u64, Vec<Digest>>,
    at: HashMap<Digest, u64>,
}

impl FinalizedIndex {
    /// Block `height` finalized these digests.
    pub fn insert(&mut self, height: u64, digests: &[Digest]) {
        let mut kept = Vec::with_capacity(digests.len());
        for d in digests {
            if let std::collections::hash_map::Entry::Vacant(e) = self.at.entry(*d) {
                e.insert(height);
                kept.push(*d);
            }
        }
        self.by_height.entry(height).or_default().extend(kept);
    }

    /// Forget heights below `floor`.
    pub fn prune_below(&mut self, floor: u64) {
        let keep = self.by_height.split_off(&floor);
        for (_, ds) in std::mem::replace(&mut self.by_height, keep) {
            for d in ds {
                self.at.remove(&d);
            }
        }
    }

    /// The height that finalized `d`, if within the window.
    pub fn height_of(&self, d: &Digest) -> Option<u64> {
        self.at.get(d).copied()
    }

    /// Digests remembered.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_finalized_index_keeps_a_window_of_heights() {
        let d = |i: u8| Digest([i; 32]);
        let mut f = FinalizedIndex::default();
        f.insert(5, &[d(1), d(2)]);
        f.insert(6, &[d(3)]);
        f.insert(7, &[d(1)]);
        assert_eq!(f.height_of(&d(1)), Some(5), "the first finalization counts");
        f.prune_below(6);
        assert_eq!(f.height_of(&d(1)), None);
        assert_eq!(f.height_of(&d(3)), Some(6));
        assert_eq!(f.len(), 1);
    }

    fn batch(i: u32, txs: usize, tx_len: usize) -> Arc<Batch> {
        Arc::new(Batch {
            author: 0,
            expires: 0,
            digest: plume_crypto::hash(plume_crypto::Domain::Tx, &i.to_le_bytes()),
            txs: (0..txs).map(|_| None).collect(),
            raw: vec![vec![0u8; tx_len]; txs],
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
}
