//! Every channel between the roles: the message types, the bound of each
//! queue and what the sender does when it is full.
//!
//! | queue | from -> to | bound | when full |
//! | --- | --- | --- | --- |
//! | [`SigIn`] | API, core -> sigverify | [`SIG_QUEUE_MAX`] | API: `try_send`, the client gets "mempool full" (retry); core: `try_send`, a peer batch is dropped (re-sent or fetched later) |
//! | [`CoreIn`] | sigverify, exec -> core | [`CORE_QUEUE_MAX`] | blocking `send` (back-pressure on sigverify and exec) |
//! | [`ExecIn`] | core -> exec | [`EXEC_QUEUE_MAX`] | blocking `send` (back-pressure on the core) |
//!
//! Known limit: the two blocking sends can wait on each other when both
//! queues are full (exec 1,024 blocks behind with full submission queues);
//! replacing them with explicit shedding is the adversarial-load work.

use crate::http::ApiError;
use plume_consensus::BlsScheme;
use plume_crypto::ed25519::Address;
use plume_crypto::Digest;
use plume_mempool::{ExecJob, VerifiedBatch};
use plume_protocol::PreparedTx;
use std::sync::Arc;

/// Submissions queued for signature verification.
pub const SIG_QUEUE_MAX: usize = 65_536;
/// Where a submission's outcome goes (the waiting API call).
pub type Reply = flume::Sender<Result<Digest, ApiError>>;

/// Work for the signature role.
pub enum SigIn {
    /// A client's transaction, prechecked against the state whose payer
    /// sequence was `state_seq`.
    Submit {
        /// Encoded transaction.
        bytes: Vec<u8>,
        /// The payer's next sequence in the state the precheck read.
        state_seq: u64,
        /// Where the outcome goes.
        reply: Reply,
    },
    /// A peer's batch.
    PeerBatch {
        /// The digest the peer named.
        digest: Digest,
        /// The encoded transactions.
        txs: Vec<Vec<u8>>,
    },
}

/// Items queued for the core.
pub const CORE_QUEUE_MAX: usize = 65_536;

/// Work for the core.
pub enum CoreIn {
    /// A client's transaction whose signatures verified.
    Verified {
        /// The transaction.
        ptx: PreparedTx,
        /// Its encoding.
        bytes: Vec<u8>,
        /// The payer's next sequence in the state the precheck read.
        state_seq: u64,
        /// Where the admission outcome goes.
        reply: Reply,
    },
    /// A peer's batch, verified.
    Batch(Arc<VerifiedBatch>),
    /// A finalized block was executed and committed.
    Executed {
        /// Its height.
        height: u64,
        /// Its id.
        block: plume_crypto::Digest,
        /// The state root after it.
        root: plume_crypto::Digest,
        /// The next sequence of every payer in it.
        sequences: Vec<(Address, u64)>,
    },
}

/// Finalized blocks queued for execution.
pub const EXEC_QUEUE_MAX: usize = 1024;
/// A finalized block for execution, with its batches.
pub type ExecIn = ExecJob<BlsScheme>;
