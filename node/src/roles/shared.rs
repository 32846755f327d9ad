//! What the roles share besides their channels: the metrics, the store's
//! environment for the API's reads, subscriptions, the last commit, and the
//! stop flag.

use super::channels::Note;
use super::channels::SigIn;
use crate::http::{Sink, Topic};
use crate::metrics::NodeMetrics;
use plume_crypto::Digest;
use plume_execution::Registry;
use plume_storage::LmdbKv;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Shared between the roles: what the API needs besides channels.
pub struct Shared {
    /// The chain id every transaction must name.
    pub chain_id: String,
    /// The store's environment (the API's read transactions).
    pub kv: LmdbKv,
    /// Every role's counters.
    pub metrics: Arc<NodeMetrics>,
    /// The signature role's queue (submissions).
    pub sig_tx: flume::Sender<SigIn>,
    /// Subscriptions, by topic (the notifier delivers to them).
    pub subscribers: Mutex<Vec<(Topic, Sink)>>,
    /// How many there are (execution skips notes when none).
    pub subscriber_count: AtomicUsize,
    /// The notifier's queue (execution `try_send`s one note per block).
    pub notify_tx: flume::Sender<Note>,
    /// Set when a note was dropped: the notifier cuts every subscriber.
    pub notes_lost: AtomicBool,
    /// Submission time of transactions submitted here (finality latency).
    pub submitted: Mutex<HashMap<Digest, Instant>>,
    /// Height and state root of the last commit.
    pub state_root: Mutex<(u64, Digest)>,
    /// Connected peers (for `plume_peers`).
    pub peers: Mutex<Vec<String>>,
    /// Chain parameters.
    pub params: plume_execution::Params,
    /// The ledger modules.
    pub registry: Registry,
    /// Validators in the committee.
    pub committee_len: usize,
    /// When the node started.
    pub started: Instant,
    /// Set to stop every role.
    pub stop: &'static AtomicBool,
    /// Why the core stopped, when it failed (start-up errors included).
    pub fatal: Mutex<Option<String>>,
    /// (height, our root, the certified root) once our state diverged.
    pub diverged: Mutex<Option<(u64, Digest, Digest)>>,
    /// This node is an observer: it refuses every submission.
    pub observer: bool,
    /// The fund-flow index (observers), for the API's queries.
    pub index: Option<plume_index::Location>,
    /// Read-only index handles the API reuses across calls.
    pub index_pool: IndexPool,
}

/// Idle read-only handles on the fund-flow index: opening one costs a
/// PostgreSQL connection (or an SQLite open), so an API call takes one and
/// gives it back; at most [`INDEX_IDLE_MAX`] are kept, a broken one is
/// dropped.
#[derive(Default)]
pub struct IndexPool {
    idle: Mutex<Vec<plume_index::Index>>,
}

/// Most idle index handles kept.
pub const INDEX_IDLE_MAX: usize = 8;

impl IndexPool {
    /// An idle handle, or a new one on `at`.
    pub fn take(&self, at: &plume_index::Location) -> plume_index::Result<plume_index::Index> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(ix) => Ok(ix),
            None => plume_index::Index::open_read_at(at),
        }
    }

    /// Give a handle back after a call.
    pub fn put(&self, ix: plume_index::Index) {
        if !ix.usable() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < INDEX_IDLE_MAX {
            idle.push(ix);
        }
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    #[test]
    fn the_index_pool_reuses_handles_and_keeps_at_most_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let at = plume_index::Location::Sqlite(dir.path().join("index.sqlite"));
        drop(plume_index::Index::open_at(&at).unwrap());
        let pool = IndexPool::default();
        let held: Vec<_> = (0..INDEX_IDLE_MAX + 3)
            .map(|_| pool.take(&at).unwrap())
            .collect();
        assert!(pool.idle.lock().unwrap().is_empty());
        for ix in held {
            pool.put(ix);
        }
        assert_eq!(pool.idle.lock().unwrap().len(), INDEX_IDLE_MAX);
        let ix = pool.take(&at).unwrap();
        assert_eq!(pool.idle.lock().unwrap().len(), INDEX_IDLE_MAX - 1);
        assert_eq!(ix.height().unwrap(), 0);
        // A location that cannot be opened is an error, not a panic.
        let missing = plume_index::Location::Sqlite(dir.path().join("no/such/dir/index.sqlite"));
        assert!(IndexPool::default().take(&missing).is_err());
    }
}
