//! Admission, batching and dissemination of transactions as pure state
//! machines: the transaction pool ([`pool::Mempool`]), the batches a
//! validator holds ([`cache::BatchCache`]) and the policy that cuts,
//! broadcasts, offers, re-offers and fetches batches and hands finalized
//! blocks to execution in order ([`batcher::Batcher`]).
//!
//! Start reading at [`batcher`]: its module doc is the policy, its
//! [`batcher::Action`]s are what a driver (the node's core role, or the
//! simulator) must carry out. Nothing here reads a clock (callers pass
//! `now_us`), sends a message or spawns a thread.
#![forbid(unsafe_code)]

pub mod batcher;
pub mod cache;
pub mod checks;
pub mod pool;

pub use batcher::{
    Action, Batcher, BatcherConfig, CertifiedBatch, Counters, Evidence, ExecJob, LogItem, Refusal,
    Sizes,
};
pub use cache::{batch_bytes, Batch, BatchCache, FinalizedIndex};
pub use checks::{
    open_peer_batch, pick_transactions, verdict_of, vote_is_valid, BatchRefusal, DigestRule,
    Picked, Sent,
};
pub use pool::{Mempool, MempoolError, StateView};
