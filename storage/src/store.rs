//! The block store: one atomic commit per finalized block, over any
//! [`KvStore`], and the authenticated state staged between commits.
//!
//! Use: execution reads and writes state through the
//! [`AuthenticatedState`] impl of [`Store`]; `apply` stages the writes in
//! memory (values and tree nodes) and returns the new root without touching
//! disk. [`Store::commit_block`] then writes the block, its certificate,
//! transactions, receipts, the staged state and tree nodes, the new root and
//! the finalized height in ONE write transaction (one fsync with LMDB).
//! Readers never see a half-applied block; a crash loses at most the commit
//! in flight.

use crate::kv::{KvRead, KvStore, KvWrite, Table};
use crate::records::{
    corrupt, decode, encode, seal, unseal, with_archived, BlockRecord, ChainMeta, HeightRecord,
    QcRecord, SchemaRecord, TreeNode, TxReceiptRecord, TxRecord, SCHEMA_VERSION,
};
use crate::smt::{self, NodePos, NodeRead, NodeStore, PosMap, StateProof, EMPTY_HASH};
use crate::{AuthenticatedState, StateKey, StateWrite, StorageError};
use plume_crypto::Digest;
use std::collections::BTreeMap;

/// Most transactions one block may carry (indexes are u32 on disk).
pub const BLOCK_TXS_MAX: usize = 1 << 20;

/// Most state writes staged between two commits: bounds the memory the
/// staging area holds.
pub const STAGED_WRITES_MAX: usize = 4 << 20;

const META_SCHEMA: &[u8] = b"schema";
const META_CHAIN: &[u8] = b"chain";

/// One transaction of a block, with its receipt.
#[derive(Clone, Copy, Debug)]
pub struct TxEntry<'a> {
    /// Transaction hash (the key of the `txs` table).
    pub hash: Digest,
    /// Encoded transaction.
    pub tx: &'a [u8],
    /// Encoded receipt.
    pub receipt: &'a [u8],
}

/// A finalized block as storage sees it: opaque bytes and indexes.
#[derive(Clone, Copy, Debug)]
pub struct BlockCommit<'a> {
    /// Height: must be the finalized height plus one (any height for the
    /// first block of an empty store).
    pub height: u64,
    /// Block hash.
    pub hash: Digest,
    /// Encoded block.
    pub block: &'a [u8],
    /// Encoded quorum certificate that finalized it.
    pub qc: &'a [u8],
    /// Its transactions and receipts, in block order.
    pub txs: &'a [TxEntry<'a>],
}

#[derive(Default)]
struct Staged {
    values: BTreeMap<StateKey, Option<Vec<u8>>>,
    nodes: PosMap<Option<TreeNode>>,
}

/// Block store and authenticated state over a [`KvStore`].
pub struct Store<K: KvStore> {
    kv: K,
    head: Option<ChainMeta>,
    staged: Staged,
    root: Digest,
}

impl<K: KvStore> std::fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("head", &self.head)
            .field("root", &self.root)
            .finish()
    }
}

/// The tree seen through staged nodes, then a read transaction.
struct Overlay<'a, R: KvRead> {
    base: &'a R,
    staged: &'a mut PosMap<Option<TreeNode>>,
}

fn read_node<R: KvRead>(base: &R, pos: &NodePos) -> Result<Option<TreeNode>, StorageError> {
    let (key, n) = pos.encode();
    let key = &key[..n];
    match base.get(Table::Nodes, key)? {
        None => Ok(None),
        Some(raw) => {
            let payload = unseal(Table::Nodes, key, raw)?;
            with_archived::<TreeNode, _, _>(Table::Nodes, key, payload, |a| Some(a.to_node()))
        }
    }
}

impl<R: KvRead> NodeRead for Overlay<'_, R> {
    fn get_node(&self, pos: &NodePos) -> Result<Option<TreeNode>, StorageError> {
        match self.staged.get(pos) {
            Some(n) => Ok(*n),
            None => read_node(self.base, pos),
        }
    }
}

impl<R: KvRead> NodeStore for Overlay<'_, R> {
    fn put_node(&mut self, pos: &NodePos, node: TreeNode) -> Result<(), StorageError> {
        self.staged.insert(*pos, Some(node));
        Ok(())
    }
    fn delete_node(&mut self, pos: &NodePos) -> Result<(), StorageError> {
        self.staged.insert(*pos, None);
        Ok(())
    }
}

struct ReadOverlay<'a, R: KvRead> {
    base: &'a R,
    staged: &'a PosMap<Option<TreeNode>>,
}

impl<R: KvRead> NodeRead for ReadOverlay<'_, R> {
    fn get_node(&self, pos: &NodePos) -> Result<Option<TreeNode>, StorageError> {
        match self.staged.get(pos) {
            Some(n) => Ok(*n),
            None => read_node(self.base, pos),
        }
    }
}

impl<K: KvStore> Store<K> {
    /// Open a store: write the schema version into an empty one, refuse
    /// one written by an incompatible version, load the chain head.
    pub fn open(kv: K) -> Result<Self, StorageError> {
        // Schema, head and root node are read in ONE read transaction, so a
        // writer committing concurrently (the node opens read handles while
        // it commits) can never make them disagree.
        let (schema, head, tree_root) = {
            let r = kv.read_txn()?;
            let schema = match r.get(Table::Meta, META_SCHEMA)? {
                Some(raw) => Some(decode::<SchemaRecord>(Table::Meta, META_SCHEMA, raw)?),
                None => None,
            };
            let head = match r.get(Table::Meta, META_CHAIN)? {
                Some(raw) => Some(decode::<ChainMeta>(Table::Meta, META_CHAIN, raw)?),
                None => None,
            };
            let tree_root = read_node(&r, &NodePos::ROOT)?.map_or(EMPTY_HASH, |n| n.hash());
            (schema, head, tree_root)
        };
        match schema {
            Some(s) if s.version != SCHEMA_VERSION => {
                return Err(StorageError::SchemaMismatch {
                    found: s.version,
                    expected: SCHEMA_VERSION,
                })
            }
            Some(_) => {}
            None => {
                if head.is_some() {
                    return Err(corrupt(
                        Table::Meta,
                        META_SCHEMA,
                        "chain head without schema",
                    ));
                }
                let mut w = kv.write_txn()?;
                let rec = SchemaRecord {
                    version: SCHEMA_VERSION,
                };
                w.put(
                    Table::Meta,
                    META_SCHEMA,
                    &encode(Table::Meta, META_SCHEMA, &rec),
                )?;
                w.commit()?;
            }
        }
        let root = head.map_or(EMPTY_HASH, |h| Digest(h.state_root));
        // The stored tree must lead to the recorded root.
        if tree_root != root {
            return Err(StorageError::TreeInconsistent(format!(
                "root node hashes to {tree_root}, chain head records {root}"
            )));
        }
        Ok(Store {
            kv,
            head,
            staged: Staged::default(),
            root,
        })
    }

    /// The backing key-value store.
    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// The last committed block's height, hash and state root.
    pub fn head(&self) -> Option<ChainMeta> {
        self.head
    }

    /// Latest finalized height (None: nothing committed yet).
    pub fn finalized_height(&self) -> Option<u64> {
        self.head.map(|h| h.finalized_height)
    }

    /// Root as of the last commit (staged writes excluded).
    pub fn committed_root(&self) -> Digest {
        self.head.map_or(EMPTY_HASH, |h| Digest(h.state_root))
    }

    /// Whether writes are staged since the last commit.
    pub fn has_staged(&self) -> bool {
        !self.staged.values.is_empty() || !self.staged.nodes.is_empty()
    }

    /// Drop the staged writes (root back to the committed one).
    pub fn discard_staged(&mut self) {
        self.staged = Staged::default();
        self.root = self.committed_root();
    }

    /// Commit `block` with the state staged by `apply` since the last
    /// commit, in one write transaction. Returns the new state root.
    /// On error nothing is written and the staged state is discarded.
    pub fn commit_block(&mut self, block: &BlockCommit<'_>) -> Result<Digest, StorageError> {
        let r = self.write_block(block);
        if r.is_err() {
            self.discard_staged();
        }
        r
    }

    /// `apply(writes)` then `commit_block(block)`.
    pub fn commit_block_with_writes(
        &mut self,
        block: &BlockCommit<'_>,
        writes: &[StateWrite],
    ) -> Result<Digest, StorageError> {
        self.apply(writes)?;
        self.commit_block(block)
    }

    /// Group commit: several consecutive blocks whose state was staged by
    /// successive `apply` calls (one per block, in order), in ONE write
    /// transaction with one fsync. The chain head moves to the last block
    /// and the current root; the intermediate roots were returned by
    /// `apply`. Readers see all of the blocks or none.
    /// On error nothing is written and the staged state is discarded.
    pub fn commit_blocks(&mut self, blocks: &[BlockCommit<'_>]) -> Result<Digest, StorageError> {
        let r = self.write_blocks(blocks);
        if r.is_err() {
            self.discard_staged();
        }
        r
    }

    fn write_block(&mut self, b: &BlockCommit<'_>) -> Result<Digest, StorageError> {
        self.write_blocks(std::slice::from_ref(b))
    }

    fn write_blocks(&mut self, blocks: &[BlockCommit<'_>]) -> Result<Digest, StorageError> {
        let Some(last) = blocks.last() else {
            return Err(StorageError::Limit("commit of zero blocks".into()));
        };
        // Each block must follow the previous one (the head, then each other).
        let mut prev: Option<u64> = self.head.map(|h| h.finalized_height);
        for b in blocks {
            if let Some(p) = prev {
                if p.checked_add(1) != Some(b.height) {
                    return Err(StorageError::HeightGap {
                        got: b.height,
                        finalized: p,
                    });
                }
            }
            prev = Some(b.height);
            if b.txs.len() > BLOCK_TXS_MAX {
                return Err(StorageError::Limit(format!(
                    "block of {} transactions exceeds {BLOCK_TXS_MAX}",
                    b.txs.len()
                )));
            }
        }
        let mut w = self.kv.write_txn()?;
        for b in blocks {
            Self::put_block(&mut w, b)?;
        }
        let b = last;
        for (k, v) in &self.staged.values {
            match v {
                Some(v) => w.put(Table::Accounts, k, &seal(Table::Accounts, k, v))?,
                None => {
                    w.delete(Table::Accounts, k)?;
                }
            }
        }
        let mut nodes: Vec<(&NodePos, &Option<TreeNode>)> = self.staged.nodes.iter().collect();
        nodes.sort_unstable_by_key(|(p, _)| p.locality_key());
        for (pos, n) in nodes {
            let (key, len) = pos.encode();
            let key = &key[..len];
            match n {
                Some(n) => w.put(Table::Nodes, key, &n.encode_sealed(key))?,
                None => {
                    w.delete(Table::Nodes, key)?;
                }
            }
        }
        let meta = ChainMeta {
            finalized_height: b.height,
            block_hash: b.hash.0,
            state_root: self.root.0,
        };
        w.put(
            Table::Meta,
            META_CHAIN,
            &encode(Table::Meta, META_CHAIN, &meta),
        )?;
        w.commit()?;
        self.head = Some(meta);
        self.staged = Staged::default();
        Ok(self.root)
    }

    fn put_block(w: &mut K::Write<'_>, b: &BlockCommit<'_>) -> Result<(), StorageError> {
        let hkey = b.height.to_be_bytes();
        let block_rec = BlockRecord {
            height: b.height,
            hash: b.hash.0,
            bytes: b.block.to_vec(),
        };
        w.put(
            Table::Blocks,
            &hkey,
            &encode(Table::Blocks, &hkey, &block_rec),
        )?;
        let hrec = HeightRecord { height: b.height };
        w.put(
            Table::BlockHashes,
            &b.hash.0,
            &encode(Table::BlockHashes, &b.hash.0, &hrec),
        )?;
        let qc = QcRecord {
            height: b.height,
            block_hash: b.hash.0,
            bytes: b.qc.to_vec(),
        };
        w.put(Table::Qcs, &hkey, &encode(Table::Qcs, &hkey, &qc))?;
        for (i, t) in b.txs.iter().enumerate() {
            let e = TxReceiptRecord {
                height: b.height,
                index: i as u32,
                tx: t.tx.to_vec(),
                receipt: t.receipt.to_vec(),
            };
            w.put(Table::Txs, &t.hash.0, &encode(Table::Txs, &t.hash.0, &e))?;
        }
        Ok(())
    }

    /// The block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<BlockRecord>, StorageError> {
        self.get_record(Table::Blocks, &height.to_be_bytes())
    }

    /// The block with hash `hash`.
    pub fn block_by_hash(&self, hash: &Digest) -> Result<Option<BlockRecord>, StorageError> {
        match self.get_record::<HeightRecord>(Table::BlockHashes, &hash.0)? {
            None => Ok(None),
            Some(h) => {
                let b = self.block(h.height)?.ok_or_else(|| {
                    corrupt(Table::BlockHashes, &hash.0, "names a height with no block")
                })?;
                if b.hash != hash.0 {
                    return Err(corrupt(Table::BlockHashes, &hash.0, "names another block"));
                }
                Ok(Some(b))
            }
        }
    }

    /// The certificate of the block at `height`.
    pub fn qc(&self, height: u64) -> Result<Option<QcRecord>, StorageError> {
        self.get_record(Table::Qcs, &height.to_be_bytes())
    }

    /// A transaction with its height and index.
    pub fn tx(&self, hash: &Digest) -> Result<Option<TxRecord>, StorageError> {
        Ok(self
            .get_record::<TxReceiptRecord>(Table::Txs, &hash.0)?
            .map(|e| TxRecord {
                height: e.height,
                index: e.index,
                bytes: e.tx,
            }))
    }

    /// A receipt with its height and index.
    pub fn receipt(&self, hash: &Digest) -> Result<Option<TxRecord>, StorageError> {
        Ok(self
            .get_record::<TxReceiptRecord>(Table::Txs, &hash.0)?
            .map(|e| TxRecord {
                height: e.height,
                index: e.index,
                bytes: e.receipt,
            }))
    }

    /// A transaction and its receipt, with their height and index.
    pub fn tx_entry(&self, hash: &Digest) -> Result<Option<TxReceiptRecord>, StorageError> {
        self.get_record(Table::Txs, &hash.0)
    }

    /// Whether a finalized block holds transaction `hash` (its record's
    /// bytes are not read).
    pub fn has_tx(&self, hash: &Digest) -> Result<bool, StorageError> {
        let r = self.kv.read_txn()?;
        Ok(r.get(Table::Txs, &hash.0)?.is_some())
    }

    fn get_record<T>(&self, table: Table, key: &[u8]) -> Result<Option<T>, StorageError>
    where
        T: rkyv::Archive,
        T::Archived: for<'a> rkyv::bytecheck::CheckBytes<
                rkyv::api::high::HighValidator<'a, rkyv::rancor::Error>,
            > + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rkyv::rancor::Error>>,
    {
        let r = self.kv.read_txn()?;
        match r.get(table, key)? {
            None => Ok(None),
            Some(raw) => decode(table, key, raw).map(Some),
        }
    }

    /// Call `f` on the committed value of `key`, read in place (zero copy
    /// from LMDB's memory map) after its checksum is checked.
    pub fn with_committed_value<R>(
        &self,
        key: &StateKey,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, StorageError> {
        let r = self.kv.read_txn()?;
        match r.get(Table::Accounts, key)? {
            None => Ok(None),
            Some(raw) => Ok(Some(f(unseal(Table::Accounts, key, raw)?))),
        }
    }

    /// A reader over the committed state: one read transaction (one
    /// snapshot) for many zero-copy point reads.
    pub fn state_reader(&self) -> Result<StateReader<'_, K>, StorageError> {
        Ok(StateReader {
            txn: self.kv.read_txn()?,
        })
    }

    /// Proof for `key` against [`AuthenticatedState::root`] (staged writes
    /// included).
    pub fn prove(&self, key: &StateKey) -> Result<StateProof, StorageError> {
        let r = self.kv.read_txn()?;
        let view = ReadOverlay {
            base: &r,
            staged: &self.staged.nodes,
        };
        smt::prove(&view, key)
    }

    fn stage(&mut self, writes: &[StateWrite]) -> Result<Digest, StorageError> {
        if self.staged.values.len() + writes.len() > STAGED_WRITES_MAX {
            return Err(StorageError::Limit(format!(
                "more than {STAGED_WRITES_MAX} state writes staged before a commit"
            )));
        }
        let hashed = smt::prepare_writes(writes)?;
        let r = self.kv.read_txn()?;
        let mut view = Overlay {
            base: &r,
            staged: &mut self.staged.nodes,
        };
        let root = smt::apply_writes(&mut view, &hashed)?;
        drop(r);
        for (k, v) in writes {
            self.staged.values.insert(*k, v.clone());
        }
        self.root = root;
        Ok(root)
    }
}

/// Zero-copy reads of committed state values within one snapshot.
pub struct StateReader<'a, K: KvStore + 'a> {
    txn: K::Read<'a>,
}

impl<K: KvStore> StateReader<'_, K> {
    /// Call `f` on the value of `key`, read in place after its checksum
    /// is checked.
    pub fn get_with<R>(
        &self,
        key: &StateKey,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, StorageError> {
        match self.txn.get(Table::Accounts, key)? {
            None => Ok(None),
            Some(raw) => Ok(Some(f(unseal(Table::Accounts, key, raw)?))),
        }
    }
}

impl<K: KvStore> AuthenticatedState for Store<K> {
    type Error = StorageError;

    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(v) = self.staged.values.get(key) {
            return Ok(v.clone());
        }
        self.with_committed_value(key, <[u8]>::to_vec)
    }

    /// Stage `writes`; on error all staged writes since the last commit are
    /// discarded (the caller re-executes the block).
    fn apply(&mut self, writes: &[StateWrite]) -> Result<Digest, StorageError> {
        let r = self.stage(writes);
        if r.is_err() {
            self.discard_staged();
        }
        r
    }

    fn root(&self) -> Digest {
        self.root
    }
}

#[cfg(test)]
mod group_commit_tests {
    use super::*;
    use crate::kv::MemoryKv;

    #[test]
    fn group_commit_writes_all_blocks_with_the_last_root_and_checks_heights() {
        let mut st = Store::open(MemoryKv::new()).unwrap();
        let mut roots = Vec::new();
        for i in 0..3u8 {
            roots.push(st.apply(&[([i; 32], Some(vec![i]))]).unwrap());
        }
        let blocks: Vec<BlockCommit<'_>> = (0..3u64)
            .map(|h| BlockCommit {
                height: h,
                hash: Digest([h as u8 + 1; 32]),
                block: b"b",
                qc: b"q",
                txs: &[],
            })
            .collect();
        assert_eq!(st.commit_blocks(&blocks).unwrap(), roots[2]);
        assert_eq!(st.finalized_height(), Some(2));
        for h in 0..3 {
            assert!(st.block(h).unwrap().is_some());
        }
        // A gap is refused and nothing is written.
        st.apply(&[([9; 32], Some(vec![9]))]).unwrap();
        let bad = [
            BlockCommit {
                height: 3,
                hash: Digest([4; 32]),
                block: b"b",
                qc: b"q",
                txs: &[],
            },
            BlockCommit {
                height: 5,
                hash: Digest([6; 32]),
                block: b"b",
                qc: b"q",
                txs: &[],
            },
        ];
        assert!(matches!(
            st.commit_blocks(&bad),
            Err(StorageError::HeightGap {
                got: 5,
                finalized: 3
            })
        ));
        assert_eq!(st.finalized_height(), Some(2));
        assert!(st.block(3).unwrap().is_none());
        assert_eq!(st.get(&[9; 32]).unwrap(), None, "staged state discarded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::MemoryKv;
    use crate::lmdb::{LmdbKv, LmdbOptions};
    use crate::MemoryState;

    fn key(i: u64) -> StateKey {
        plume_crypto::hash(plume_crypto::Domain::State, &i.to_le_bytes()).0
    }

    fn writes_for(h: u64) -> Vec<StateWrite> {
        (0..20)
            .map(|i| {
                let k = key((h * 7 + i) % 50);
                let v = if (h + i) % 9 == 0 {
                    None
                } else {
                    Some(format!("{h}:{i}").into_bytes())
                };
                (k, v)
            })
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect()
    }

    fn commit<K: KvStore>(s: &mut Store<K>, h: u64) -> Digest {
        let txh = plume_crypto::hash(plume_crypto::Domain::Tx, &h.to_le_bytes());
        let txs = [TxEntry {
            hash: txh,
            tx: b"tx",
            receipt: b"ok",
        }];
        let b = BlockCommit {
            height: h,
            hash: plume_crypto::hash(plume_crypto::Domain::Block, &h.to_le_bytes()),
            block: b"block",
            qc: b"qc",
            txs: &txs,
        };
        s.commit_block_with_writes(&b, &writes_for(h)).unwrap()
    }

    fn check_store<K: KvStore>(mut s: Store<K>) -> Store<K> {
        let mut m = MemoryState::new();
        for h in 0..30 {
            let root = commit(&mut s, h);
            assert_eq!(root, m.apply(&writes_for(h)).unwrap(), "height {h}");
        }
        assert_eq!(s.finalized_height(), Some(29));
        for i in 0..55 {
            let k = key(i);
            assert_eq!(s.get(&k).unwrap(), m.get(&k).unwrap());
            let p = s.prove(&k).unwrap();
            assert_eq!(p, m.prove(&k));
            p.verify(&s.root(), &k, s.get(&k).unwrap().as_deref())
                .unwrap();
        }
        let b = s.block(3).unwrap().unwrap();
        assert_eq!(b.bytes, b"block");
        assert_eq!(s.block_by_hash(&Digest(b.hash)).unwrap().unwrap(), b);
        let txh = plume_crypto::hash(plume_crypto::Domain::Tx, &3u64.to_le_bytes());
        let tx = s.tx(&txh).unwrap().unwrap();
        assert_eq!(
            (tx.height, tx.index, tx.bytes.as_slice()),
            (3, 0, &b"tx"[..])
        );
        assert_eq!(s.receipt(&txh).unwrap().unwrap().bytes, b"ok");
        assert_eq!(s.qc(3).unwrap().unwrap().bytes, b"qc");
        let gap = BlockCommit {
            height: 31,
            hash: Digest::ZERO,
            block: b"",
            qc: b"",
            txs: &[],
        };
        let e = s.commit_block(&gap).unwrap_err();
        assert!(matches!(
            e,
            StorageError::HeightGap {
                got: 31,
                finalized: 29
            }
        ));
        s
    }

    #[test]
    fn memory_store_matches_memory_state() {
        check_store(Store::open(MemoryKv::new()).unwrap());
    }

    #[test]
    fn lmdb_store_matches_memory_state_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let kv = LmdbKv::open(dir.path(), &LmdbOptions::default()).unwrap();
        let s = check_store(Store::open(kv).unwrap());
        let (root, head) = (s.root(), s.head());
        drop(s);
        let kv = LmdbKv::open(dir.path(), &LmdbOptions::default()).unwrap();
        let s = Store::open(kv).unwrap();
        assert_eq!(s.root(), root);
        assert_eq!(s.head(), head);
    }

    #[test]
    fn staged_writes_are_invisible_until_commit_and_discardable() {
        let kv = MemoryKv::new();
        let mut s = Store::open(kv.clone()).unwrap();
        commit(&mut s, 0);
        let r0 = s.root();
        let r1 = s.apply(&[(key(999), Some(b"x".to_vec()))]).unwrap();
        assert_ne!(r0, r1);
        assert_eq!(s.get(&key(999)).unwrap(), Some(b"x".to_vec()));
        let reader = s.state_reader().unwrap();
        assert_eq!(reader.get_with(&key(999), |v| v.len()).unwrap(), None);
        assert_eq!(
            s.with_committed_value(&key(999), |v| v.to_vec()).unwrap(),
            None
        );
        // Another handle on the same store sees only the commit.
        assert_eq!(Store::open(kv.clone()).unwrap().root(), r0);
        s.discard_staged();
        assert_eq!(s.root(), r0);
        assert_eq!(s.get(&key(999)).unwrap(), None);
    }

    #[test]
    fn incompatible_schema_is_refused() {
        let kv = MemoryKv::new();
        drop(Store::open(kv.clone()).unwrap());
        let mut w = kv.write_txn().unwrap();
        let rec = SchemaRecord {
            version: SCHEMA_VERSION + 1,
        };
        w.put(
            Table::Meta,
            META_SCHEMA,
            &encode(Table::Meta, META_SCHEMA, &rec),
        )
        .unwrap();
        w.commit().unwrap();
        let e = Store::open(kv).unwrap_err();
        assert!(
            matches!(
                e,
                StorageError::SchemaMismatch { found, expected }
                    if found == SCHEMA_VERSION + 1 && expected == SCHEMA_VERSION
            ),
            "{e}"
        );
        assert!(e
            .to_string()
            .contains(&format!("schema version {}", SCHEMA_VERSION + 1)));
    }
}
