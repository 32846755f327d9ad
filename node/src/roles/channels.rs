//! Every channel between the roles: the message types, the bound of each
//! queue and what the sender does when it is full.
//!
//! | queue | from -> to | bound | when full |
//! | --- | --- | --- | --- |
//! | [`SigIn`] | API, core -> sigverify | [`SIG_QUEUE_MAX`] | API: `try_send`, the client gets "mempool full" (retry); core: `try_send`, the item is dropped (batches are re-sent or fetched, votes re-sent, proposals time out) |
//! | [`CoreIn`] | sigverify, catch-up server -> core | [`CORE_QUEUE_MAX`] | blocking `send`: back-pressure on sigverify (whose full queue turns into "mempool full" for clients) and on the catch-up server; the core never waits on either, so this cannot close a cycle |
//! | [`CoreIn`] (done) | exec, batch log -> core | none in count: bounded by the work the core handed them (at most [`EXEC_QUEUE_MAX`] blocks + [`LOG_QUEUE_MAX`] items in flight, one report each) | never waits |
//! | [`ExecIn`] | core -> exec | [`EXEC_QUEUE_MAX`] | blocks: `try_send`, what does not fit waits in the core's ordered backlog (`feed::EXEC_BACKLOG_MAX`), retried on every tick and report; past it the oldest waiting block is dropped (`plume_shed_total{reason="exec_backlog_full"}`) and nothing is sent until catch-up has executed past the highest dropped height (no gap ever reaches execution); catch-up segments: `try_send`, dropped (asked again later) |
//! | [`ServeIn`] | core -> catch-up server, three queues (validators' catch-up segments first, then store-backed block sync, then observers' segments) | [`SERVE_QUEUE_MAX`] each | `try_send`, the request is dropped (the peer asks again) |
//! | [`LogIn`] | core -> batch log | [`LOG_QUEUE_MAX`] | `try_send`, then the core's ordered backlog (`feed::LOG_BACKLOG_MAX`); past it an append is dropped (that batch is not voted for) and a retire is dropped (its record stays), `log_backlog_full` |
//!
//! The core thread never blocks on a queue (it also drives the network);
//! exec and the batch log never wait on the core. The three-way wait of
//! the first design (core on a full exec queue, exec and sigverify on a
//! full core queue) cannot form: `feed.rs` tests the full cases.

use crate::http::ApiError;
use plume_consensus::{Block, BlsScheme};
use plume_crypto::ed25519::Address;
use plume_crypto::Digest;
use plume_mempool::{Batch, ExecJob, LogItem, StateView};
use plume_protocol::batch::{BatchCertificate, BatchVote, Verdict};
use plume_protocol::catchup::SegmentBlock;
use plume_protocol::codec::ConsensusMsg;
use plume_protocol::{PreparedTx, Receipt};
use std::sync::Arc;

/// Work queued for the signature role.
pub const SIG_QUEUE_MAX: usize = 65_536;
/// Where a submission's outcome goes (the waiting API call).
pub type Reply = flume::Sender<Result<Digest, ApiError>>;

/// Work for the signature role: everything that costs a signature check
/// or a decode, kept off the core.
pub enum SigIn {
    /// A client's transaction, prechecked against the state `state_seq`
    /// describes.
    Submit {
        /// Encoded transaction.
        bytes: Vec<u8>,
        /// What the precheck read: the payer's next sequence and balance,
        /// the tip it pays.
        state_seq: StateView,
        /// Where the outcome goes.
        reply: Reply,
    },
    /// A peer's batch (or a fetch answer): decode it, compute its digest,
    /// check the certificate if one came with it.
    DecodeBatch {
        /// The peer that sent it.
        from: u32,
        /// The author.
        author: u32,
        /// Its expiry height.
        expires: u64,
        /// The author's verdict.
        verdict: Verdict,
        /// The encodings.
        txs: Vec<Vec<u8>>,
        /// Its certificate (fetch answers).
        cert: Option<BatchCertificate>,
    },
    /// Verify every signature of a batch (we are one of its verifiers).
    VerifyBatch(Arc<Batch>),
    /// Check a vote's signature.
    Vote(BatchVote),
    /// Check a certificate.
    Cert(BatchCertificate),
    /// Check the certificates a proposal came with.
    Proposal {
        /// Sender's committee index.
        from: u32,
        /// The proposal.
        msg: ConsensusMsg,
        /// Its certificates (those already known are not checked again).
        certs: Vec<BatchCertificate>,
    },
}

/// What a catch-up segment gave: the last blocks committed (lowest first,
/// at most `REPUTATION_WINDOW`) and the batch digests of every committed
/// block by height; or why the segment was refused.
pub type CatchUpOutcome = Result<(Vec<Block<BlsScheme>>, Vec<(u64, Vec<Digest>)>), Refusal>;

/// Why a catch-up segment was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// For the log.
    pub why: String,
    /// Set when our execution of a block of it missed the root the
    /// validators certified: (height, our root, the certified root).
    /// Either the server listed other transactions than the validators
    /// executed, or our state differs from theirs.
    pub mismatch: Option<(u64, Digest, Digest)>,
    /// The segment held nothing to execute yet (we are at the top).
    pub nothing_yet: bool,
}

impl From<String> for Refusal {
    fn from(why: String) -> Refusal {
        Refusal {
            why,
            mismatch: None,
            nothing_yet: false,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
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
        /// What the precheck read (sequence, balance, tip).
        state_seq: StateView,
        /// Where the admission outcome goes.
        reply: Reply,
    },
    /// A peer's batch, decoded (its certificate, if any, checked).
    Batch {
        /// The batch.
        batch: Arc<Batch>,
        /// The author's verdict.
        verdict: Verdict,
        /// Its certificate.
        cert: Option<Arc<BatchCertificate>>,
    },
    /// Our verification of a batch is done.
    BatchVerified {
        /// The batch.
        digest: Digest,
        /// Which items are invalid.
        verdict: Verdict,
    },
    /// A vote whose signature verified.
    Vote(BatchVote),
    /// A certificate that verified.
    Cert(Arc<BatchCertificate>),
    /// A proposal whose attached certificates were checked (`certs`: those
    /// that verified).
    Proposal {
        /// Sender's committee index.
        from: u32,
        /// The proposal.
        msg: ConsensusMsg,
        /// The certificates that verified.
        certs: Vec<Arc<BatchCertificate>>,
    },
    /// The batch log synced these batches.
    Durable(Vec<Digest>),
    /// A catch-up segment from peer `from` was checked and executed up to
    /// `block` (`Ok`), or refused (`Err`, why).
    CaughtUp {
        /// The peer that served it.
        from: u32,
        /// The highest block committed, with the batch digests of every
        /// committed block by height; or why the segment was refused.
        outcome: CatchUpOutcome,
    },
    /// Encoded catch-up answer for peer `to` (from the catch-up server).
    Serve {
        /// Committee index.
        to: u32,
        /// Encoded `NetMsg::CatchUp`.
        bytes: Vec<u8>,
    },
    /// A finalized block was executed and committed.
    Executed {
        /// Its height.
        height: u64,
        /// Its id.
        block: Digest,
        /// The state root after it.
        root: Digest,
        /// The next sequence of every payer in it.
        sequences: Vec<(Address, u64)>,
        /// Its batches (no longer needed for execution).
        digests: Vec<Digest>,
    },
}

/// Finalized blocks queued for execution.
pub const EXEC_QUEUE_MAX: usize = 1024;

/// Work for execution.
pub enum ExecIn {
    /// A finalized block, with its certified batches.
    Block(ExecJob<BlsScheme>),
    /// Finalized blocks served by peer `from` from its store: check
    /// (`plume_protocol::catchup::verify_segment`), execute, commit.
    CatchUp {
        /// The peer.
        from: u32,
        /// The blocks.
        segment: Vec<SegmentBlock>,
    },
}

/// Catch-up requests queued for the server thread.
pub const SERVE_QUEUE_MAX: usize = 16;

/// A peer's request for blocks from the store.
pub enum ServeIn {
    /// Finalized blocks from `height` on, with their transactions.
    Segment {
        /// Committee index (observers: committee size + their position in
        /// genesis `observers`).
        from: u32,
        /// First height.
        height: u64,
        /// Answer even with no block (an observer polls: an empty answer
        /// tells it it is at the top, so it waits instead of timing out).
        answer_empty: bool,
    },
    /// A consensus sync request the engine could not answer from memory:
    /// the block and its ancestors, from the store.
    Blocks {
        /// Committee index.
        from: u32,
        /// The block.
        block: Digest,
        /// Most blocks (capped at `SYNC_BLOCKS_MAX`).
        max: u32,
    },
}

/// Items queued for the batch log.
pub const LOG_QUEUE_MAX: usize = 4096;

/// Work for the batch log.
pub enum LogIn {
    /// Append (a batch is reported durable once synced).
    Append(LogItem),
    /// These batches are executed: their records may go.
    Retire(Vec<Digest>),
}

/// One committed block, for the notifier (`notify::NOTIFY_QUEUE_MAX`
/// queued; execution `try_send`s, a full queue drops the note and cuts
/// every subscriber with a reason).
pub struct Note {
    /// Its height.
    pub height: u64,
    /// Its id.
    pub block: Digest,
    /// Its view.
    pub view: u64,
    /// The state root after it.
    pub root: Digest,
    /// Each transaction's hash and signers, in block order.
    pub txs: Vec<(Digest, Vec<Address>)>,
    /// Each transaction's receipt.
    pub receipts: Vec<Receipt>,
}
