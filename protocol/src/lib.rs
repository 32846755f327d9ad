//! The bytes every party agrees on: transactions and the built-in module
//! calls, receipts, blocks and certificates of consensus, their codec, and
//! finality proofs with their offline verification.
//!
//! This crate is the API boundary between the node and everything outside
//! it (the client SDK, light clients, relayers, regulators): it does no I/O
//! and depends on no database, runtime or network crate, so anything that
//! needs to build a transaction or check a proof can use it alone.
//!
//! Where to start reading:
//! - [`tx`]: the transaction envelope ([`tx::Transaction`],
//!   [`tx::PreparedTx`]), its limits, signing hash and signature checks.
//! - [`calls`]: what the built-in ledger modules accept.
//! - [`receipt`]: what happened to a transaction; reason and cause codes.
//! - [`consensus`] and [`scheme`]: blocks, votes, certificates and the
//!   signature scheme they are generic over; [`codec`] their bytes.
//! - [`proof`]: finality proofs and the stored block record.
//! - [`catchup`]: checking a run of finalized blocks served from a peer's
//!   store (catch-up from any distance).
//! - [`genesis`]: the genesis document (validators, allocations,
//!   parameters) and `validator.json`.
#![forbid(unsafe_code)]

pub mod account;
mod archive;
pub mod batch;
pub mod calls;
pub mod catchup;
pub mod codec;
pub mod consensus;
pub mod genesis;
pub mod governance;
pub mod proof;
pub mod receipt;
pub mod scheme;
pub use plume_crypto::state_proof;
pub mod tx;

pub use batch::batch_digest;
pub use receipt::{Cause, Event, Reason, Receipt, Status};
pub use scheme::{BlsScheme, Scheme};
pub use tx::{PreparedTx, Transaction, TxBody, TxError};
