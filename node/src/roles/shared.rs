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
}
