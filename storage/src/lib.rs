//! Storage for Plume: a KV-transaction trait with LMDB (heed) and in-memory
//! implementations, rkyv-archived tables, the block store and the
//! authenticated state tree with proofs.
//!
//! Start reading at [`AuthenticatedState`] (the contract execution programs
//! against) and [`smt`] (the tree, its proofs and [`MemoryState`]); then
//! [`Store`] (one atomic commit per finalized block over any [`KvStore`]),
//! [`kv`] (the transaction trait, in-memory implementation), [`lmdb`] (the
//! product's backend) and [`records`] (on-disk formats, validation).
//! Storage does not know consensus rules: blocks, certificates,
//! transactions and receipts are opaque bytes to it.

pub mod batchlog;
pub mod kv;
pub mod lmdb;
pub mod records;
pub mod smt;
pub mod store;

pub use batchlog::{BatchLog, LogError, LogRecord};
pub use kv::{KvRead, KvStore, KvWrite, MemoryKv, Table};
pub use lmdb::{LmdbKv, LmdbOptions};
pub use records::{BlockRecord, ChainMeta, QcRecord, TxReceiptRecord, TxRecord, SCHEMA_VERSION};
pub use smt::{MemoryState, ProofEnd, ProofError, StateProof};
pub use store::{BlockCommit, StateReader, Store, TxEntry};

use plume_crypto::Digest;

/// A 32-byte key of the authenticated state (execution derives it by
/// hashing the account address, asset and field).
pub type StateKey = [u8; 32];

/// One write of a block's state changes: `None` deletes the key.
pub type StateWrite = (StateKey, Option<Vec<u8>>);

/// Authenticated key-value state: every value is committed to by one root.
///
/// Implementations: an in-memory one (tests, simulator) and the LMDB-backed
/// one (the node). Both give the same root for the same contents, whatever
/// the order of the writes that produced them.
pub trait AuthenticatedState {
    /// Error type of the backing store.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Current value of `key`.
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, Self::Error>;

    /// Apply a batch of writes (sorted by key, each key at most once) and
    /// return the new root. The cost grows with the batch, not the state.
    fn apply(&mut self, writes: &[StateWrite]) -> Result<Digest, Self::Error>;

    /// Current root.
    fn root(&self) -> Digest;
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A stored record failed its checksum or rkyv validation.
    #[error("corrupt record in table {table}, key {key}: {reason}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// Key, hex.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// The tree's nodes do not fit together (a node or record is missing).
    #[error("state tree inconsistent: {0}")]
    TreeInconsistent(String),
    /// The LMDB map is full.
    #[error("store full at {gib} GiB; raise storage.map_size_gib")]
    Full {
        /// Configured map size in GiB (formatted).
        gib: String,
    },
    /// The store was written by an incompatible version.
    #[error("store schema version {found} is not supported by this build (expects {expected}); migrate or use a matching plume version")]
    SchemaMismatch {
        /// Version on disk.
        found: u32,
        /// Version this build reads.
        expected: u32,
    },
    /// A block that does not extend the finalized chain by one.
    #[error("block height {got} does not follow finalized height {finalized}")]
    HeightGap {
        /// Height offered.
        got: u64,
        /// Latest finalized height.
        finalized: u64,
    },
    /// A write batch that breaks the rules (a key written twice).
    #[error("invalid write batch: {0}")]
    InvalidBatch(String),
    /// A bound was exceeded.
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// The backend failed.
    #[error("lmdb error: {0}")]
    Backend(String),
    /// File-system error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}
