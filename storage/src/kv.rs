//! The KV-transaction trait (read transactions, write transactions, named
//! tables) and its in-memory implementation. The LMDB one is in
//! [`crate::lmdb`].
//!
//! Semantics both implementations keep:
//! - a read transaction sees one committed snapshot for its whole life,
//!   whatever commits meanwhile;
//! - one write transaction at a time (a second `write_txn` waits);
//! - a write transaction sees its own writes; dropping it without
//!   `commit` discards them; `commit` makes all of them visible at once.

use crate::StorageError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The tables of a store. The discriminant is part of the on-disk format
/// (it feeds the record checksum): never renumber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Table {
    /// Height (8 bytes, big endian) -> [`crate::records::BlockRecord`].
    Blocks = 1,
    /// Block hash -> [`crate::records::HeightRecord`].
    BlockHashes = 2,
    /// Height -> [`crate::records::QcRecord`].
    Qcs = 3,
    /// Transaction hash -> [`crate::records::TxReceiptRecord`] (the transaction
    /// and its receipt in one record: one random-key insert per
    /// transaction; 5 was a separate receipts table before schema 4).
    Txs = 4,
    /// State key -> raw value bytes (execution's encoding).
    Accounts = 6,
    /// Tree position ([`crate::smt::NodePos::encode`]) -> [`crate::records::TreeNode`].
    Nodes = 7,
    /// `schema` -> [`crate::records::SchemaRecord`]; `chain` -> [`crate::records::ChainMeta`].
    Meta = 8,
}

impl Table {
    /// Every table, in discriminant order.
    pub const ALL: [Table; 7] = [
        Table::Blocks,
        Table::BlockHashes,
        Table::Qcs,
        Table::Txs,
        Table::Accounts,
        Table::Nodes,
        Table::Meta,
    ];

    /// Name (LMDB database name; used in errors).
    pub const fn name(self) -> &'static str {
        match self {
            Table::Blocks => "blocks",
            Table::BlockHashes => "block_hashes",
            Table::Qcs => "qcs",
            Table::Txs => "txs",
            Table::Accounts => "accounts",
            Table::Nodes => "nodes",
            Table::Meta => "meta",
        }
    }

    /// Position in [`Table::ALL`].
    pub(crate) fn index(self) -> usize {
        match self {
            Table::Blocks => 0,
            Table::BlockHashes => 1,
            Table::Qcs => 2,
            Table::Txs => 3,
            Table::Accounts => 4,
            Table::Nodes => 5,
            Table::Meta => 6,
        }
    }
}

/// Reads inside a transaction. Returned slices borrow from the
/// transaction: for LMDB they point into the memory map (zero copy).
pub trait KvRead {
    /// Value of `key` in `table`.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>, StorageError>;
}

/// Writes inside a write transaction.
pub trait KvWrite: KvRead {
    /// Insert or overwrite.
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StorageError>;
    /// Remove; returns whether the key was present.
    fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool, StorageError>;
    /// Make every write of this transaction visible and durable at once.
    fn commit(self) -> Result<(), StorageError>;
}

/// A transactional key-value store with named tables.
pub trait KvStore {
    /// Read transaction.
    type Read<'a>: KvRead
    where
        Self: 'a;
    /// Write transaction.
    type Write<'a>: KvWrite
    where
        Self: 'a;
    /// Begin a read transaction on the latest committed snapshot.
    fn read_txn(&self) -> Result<Self::Read<'_>, StorageError>;
    /// Begin the write transaction (waits for any other writer).
    fn write_txn(&self) -> Result<Self::Write<'_>, StorageError>;
}

type Map = BTreeMap<Vec<u8>, Vec<u8>>;
type Snapshot = Arc<Vec<Arc<Map>>>;

/// In-memory store with LMDB's transaction semantics (for the simulator
/// and tests). Snapshots are copy-on-write per table: a commit copies a
/// table only while a reader still holds the previous version of it.
#[derive(Clone)]
pub struct MemoryKv {
    inner: Arc<MemoryInner>,
}

struct MemoryInner {
    current: Mutex<Snapshot>,
    writer: Mutex<()>,
}

impl std::fmt::Debug for MemoryKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryKv")
    }
}

impl Default for MemoryKv {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        let tables = Table::ALL.iter().map(|_| Arc::new(Map::new())).collect();
        MemoryKv {
            inner: Arc::new(MemoryInner {
                current: Mutex::new(Arc::new(tables)),
                writer: Mutex::new(()),
            }),
        }
    }

    fn snapshot(&self) -> Snapshot {
        self.inner
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Read transaction of [`MemoryKv`]: a snapshot.
pub struct MemoryRead {
    snap: Snapshot,
}

impl KvRead for MemoryRead {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>, StorageError> {
        Ok(self.snap[table.index()].get(key).map(Vec::as_slice))
    }
}

/// Write transaction of [`MemoryKv`]: pending changes over a snapshot.
pub struct MemoryWrite<'a> {
    store: &'a MemoryKv,
    _writer: MutexGuard<'a, ()>,
    base: Snapshot,
    pending: Vec<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl KvRead for MemoryWrite<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>, StorageError> {
        match self.pending[table.index()].get(key) {
            Some(v) => Ok(v.as_deref()),
            None => Ok(self.base[table.index()].get(key).map(Vec::as_slice)),
        }
    }
}

impl KvWrite for MemoryWrite<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.pending[table.index()].insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool, StorageError> {
        let present = self.get(table, key)?.is_some();
        self.pending[table.index()].insert(key.to_vec(), None);
        Ok(present)
    }

    fn commit(self) -> Result<(), StorageError> {
        let MemoryWrite {
            store,
            _writer,
            base,
            pending,
        } = self;
        drop(base);
        let mut cur = store
            .inner
            .current
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let tables = Arc::make_mut(&mut cur);
        for (i, changes) in pending.into_iter().enumerate() {
            if changes.is_empty() {
                continue;
            }
            let t = Arc::make_mut(&mut tables[i]);
            for (k, v) in changes {
                match v {
                    Some(v) => {
                        t.insert(k, v);
                    }
                    None => {
                        t.remove(&k);
                    }
                }
            }
        }
        Ok(())
    }
}

impl KvStore for MemoryKv {
    type Read<'a> = MemoryRead;
    type Write<'a> = MemoryWrite<'a>;

    fn read_txn(&self) -> Result<MemoryRead, StorageError> {
        Ok(MemoryRead {
            snap: self.snapshot(),
        })
    }

    fn write_txn(&self) -> Result<MemoryWrite<'_>, StorageError> {
        let guard = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        Ok(MemoryWrite {
            store: self,
            _writer: guard,
            base: self.snapshot(),
            pending: Table::ALL.iter().map(|_| BTreeMap::new()).collect(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The semantics every [`KvStore`] must keep; run against both.
    pub(crate) fn check_semantics<K: KvStore>(kv: &K) {
        let before = kv.read_txn().unwrap();
        let mut w = kv.write_txn().unwrap();
        w.put(Table::Blocks, b"a", b"1").unwrap();
        w.put(Table::Qcs, b"a", b"2").unwrap();
        assert_eq!(w.get(Table::Blocks, b"a").unwrap(), Some(&b"1"[..]));
        assert_eq!(
            w.get(Table::Txs, b"a").unwrap(),
            None,
            "tables are separate"
        );
        w.commit().unwrap();
        assert_eq!(before.get(Table::Blocks, b"a").unwrap(), None, "snapshot");
        drop(before);
        let r = kv.read_txn().unwrap();
        assert_eq!(r.get(Table::Blocks, b"a").unwrap(), Some(&b"1"[..]));
        assert_eq!(r.get(Table::Qcs, b"a").unwrap(), Some(&b"2"[..]));
        drop(r);

        let mut w = kv.write_txn().unwrap();
        assert!(w.delete(Table::Blocks, b"a").unwrap());
        assert!(!w.delete(Table::Blocks, b"zz").unwrap());
        w.put(Table::Blocks, b"b", b"3").unwrap();
        drop(w); // aborted
        let r = kv.read_txn().unwrap();
        assert_eq!(r.get(Table::Blocks, b"a").unwrap(), Some(&b"1"[..]));
        assert_eq!(r.get(Table::Blocks, b"b").unwrap(), None);
        drop(r);

        let mut w = kv.write_txn().unwrap();
        assert!(w.delete(Table::Blocks, b"a").unwrap());
        assert_eq!(w.get(Table::Blocks, b"a").unwrap(), None);
        w.commit().unwrap();
        assert_eq!(
            kv.read_txn().unwrap().get(Table::Blocks, b"a").unwrap(),
            None
        );
    }

    #[test]
    fn memory_kv_keeps_transaction_semantics() {
        check_semantics(&MemoryKv::new());
    }
}
