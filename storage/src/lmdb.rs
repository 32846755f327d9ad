//! The LMDB implementation of [`KvStore`] through `heed`. Nothing above
//! this crate imports heed: callers get [`LmdbKv`], [`LmdbOptions`] and
//! [`StorageError`].
//!
//! Durability: LMDB's default sync mode. A commit writes the dirty pages,
//! calls `fdatasync` once, then writes the meta page through a descriptor
//! opened with `O_DSYNC`; until that meta page is written, readers and a
//! restarted process see the previous commit. A SIGKILL or power cut
//! therefore loses at most the commit in flight, never a half of it.

use crate::kv::{KvRead, KvStore, KvWrite, Table};
use crate::StorageError;
use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use std::path::{Path, PathBuf};

/// Bytes in a GiB.
pub const GIB: u64 = 1 << 30;

/// Default map size: address space reserved, not disk used.
pub const MAP_SIZE_DEFAULT_GIB: u64 = 64;

/// Concurrent read transactions allowed (LMDB reader slots).
pub const READERS_MAX: u32 = 126;

/// How to open an LMDB store.
#[derive(Clone, Debug)]
pub struct LmdbOptions {
    /// Largest size the store may grow to (`storage.map_size_gib`).
    pub map_size_bytes: u64,
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions {
            map_size_bytes: MAP_SIZE_DEFAULT_GIB * GIB,
        }
    }
}

impl LmdbOptions {
    /// Options with a map of `gib` GiB.
    pub fn with_map_size_gib(gib: u64) -> Self {
        LmdbOptions {
            map_size_bytes: gib * GIB,
        }
    }
}

/// An LMDB environment with one database per [`Table`].
#[derive(Clone)]
pub struct LmdbKv {
    env: Env<WithoutTls>,
    dbs: Vec<Database<Bytes, Bytes>>,
    map_size_bytes: u64,
    path: PathBuf,
}

impl std::fmt::Debug for LmdbKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmdbKv").field("path", &self.path).finish()
    }
}

impl LmdbKv {
    /// Open (creating if needed) the store in directory `dir`.
    ///
    /// A directory must be opened at most once per process at a time
    /// (an LMDB rule: a second environment on the same file in one process
    /// breaks its locking).
    pub fn open(dir: &Path, opts: &LmdbOptions) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir)?;
        let page = 4096u64;
        let map_size = opts.map_size_bytes.max(page).div_ceil(page) * page;
        let mut eo = EnvOpenOptions::new().read_txn_without_tls();
        eo.map_size(usize::try_from(map_size).map_err(|_| {
            StorageError::Limit(format!(
                "map size {map_size} bytes exceeds the address space"
            ))
        })?)
        .max_dbs(Table::ALL.len() as u32)
        .max_readers(READERS_MAX);
        // SAFETY: LMDB requires that the same environment is not opened
        // twice in one process and that nothing else modifies the files
        // while it is open; the store's directory belongs to this node and
        // is opened once (documented above).
        let env = unsafe { eo.open(dir) }.map_err(|e| backend(e, map_size))?;
        let mut wtxn = env.write_txn().map_err(|e| backend(e, map_size))?;
        let mut dbs = Vec::with_capacity(Table::ALL.len());
        for t in Table::ALL {
            let db = env
                .create_database::<Bytes, Bytes>(&mut wtxn, Some(t.name()))
                .map_err(|e| backend(e, map_size))?;
            dbs.push(db);
        }
        wtxn.commit().map_err(|e| backend(e, map_size))?;
        Ok(LmdbKv {
            env,
            dbs,
            map_size_bytes: map_size,
            path: dir.to_path_buf(),
        })
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the map in use (last page number times page size).
    pub fn used_bytes(&self) -> u64 {
        let info = self.env.info();
        (info.last_page_number as u64 + 1) * 4096
    }

    fn db(&self, t: Table) -> &Database<Bytes, Bytes> {
        &self.dbs[t.index()]
    }

    fn err(&self, e: heed::Error) -> StorageError {
        backend(e, self.map_size_bytes)
    }
}

fn backend(e: heed::Error, map_size: u64) -> StorageError {
    match e {
        heed::Error::Mdb(heed::MdbError::MapFull) => StorageError::Full {
            gib: format_gib(map_size),
        },
        heed::Error::Io(io) => StorageError::Io(io),
        other => StorageError::Backend(other.to_string()),
    }
}

fn format_gib(bytes: u64) -> String {
    if bytes % GIB == 0 {
        (bytes / GIB).to_string()
    } else {
        format!("{:.3}", bytes as f64 / GIB as f64)
    }
}

/// Read transaction of [`LmdbKv`].
pub struct LmdbRead<'a> {
    kv: &'a LmdbKv,
    txn: RoTxn<'a, WithoutTls>,
}

impl KvRead for LmdbRead<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>, StorageError> {
        self.kv
            .db(table)
            .get(&self.txn, key)
            .map_err(|e| self.kv.err(e))
    }
}

/// Write transaction of [`LmdbKv`].
pub struct LmdbWrite<'a> {
    kv: &'a LmdbKv,
    txn: RwTxn<'a>,
}

impl KvRead for LmdbWrite<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>, StorageError> {
        self.kv
            .db(table)
            .get(&self.txn, key)
            .map_err(|e| self.kv.err(e))
    }
}

impl KvWrite for LmdbWrite<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.kv
            .db(table)
            .put(&mut self.txn, key, value)
            .map_err(|e| self.kv.err(e))
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool, StorageError> {
        self.kv
            .db(table)
            .delete(&mut self.txn, key)
            .map_err(|e| self.kv.err(e))
    }

    fn commit(self) -> Result<(), StorageError> {
        let kv = self.kv;
        self.txn.commit().map_err(|e| kv.err(e))
    }
}

impl KvStore for LmdbKv {
    type Read<'a> = LmdbRead<'a>;
    type Write<'a> = LmdbWrite<'a>;

    fn read_txn(&self) -> Result<LmdbRead<'_>, StorageError> {
        let txn = self.env.read_txn().map_err(|e| self.err(e))?;
        Ok(LmdbRead { kv: self, txn })
    }

    fn write_txn(&self) -> Result<LmdbWrite<'_>, StorageError> {
        let txn = self.env.write_txn().map_err(|e| self.err(e))?;
        Ok(LmdbWrite { kv: self, txn })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lmdb_kv_keeps_transaction_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let kv = LmdbKv::open(dir.path(), &LmdbOptions::default()).unwrap();
        crate::kv::tests::check_semantics(&kv);
    }

    #[test]
    fn full_map_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let kv = LmdbKv::open(
            dir.path(),
            &LmdbOptions {
                map_size_bytes: 1 << 20,
            },
        )
        .unwrap();
        let value = vec![7u8; 4000];
        let mut err = None;
        for i in 0u32..1000 {
            let mut w = kv.write_txn().unwrap();
            let r = w
                .put(Table::Blocks, &i.to_be_bytes(), &value)
                .and_then(|_| w.commit());
            if let Err(e) = r {
                err = Some(e);
                break;
            }
        }
        let e = err.expect("a 1 MiB map fills up");
        assert!(matches!(e, StorageError::Full { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "store full at 0.001 GiB; raise storage.map_size_gib"
        );
        assert_eq!(format_gib(64 * GIB), "64");
    }
}
