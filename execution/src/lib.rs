//! The ledger state machine: PLUME and issued assets, atomic multi-leg
//! settlement, batch payments, fees with burn, the module framework every
//! ledger feature plugs into, and the deterministic parallel scheduler.
//! The transaction and receipt formats are `plume_protocol`'s.
//!
//! Where to start reading:
//! - [`block::apply_block`]: a block of prepared transactions in, a
//!   [`block::BlockOutput`] out (sorted state writes, receipts, next base
//!   fee, supply accounting). [`block::commit`] hands the writes to the
//!   authenticated state and returns the root.
//! - [`modules`]: the [`modules::Module`] / [`modules::Call`] traits, the
//!   [`modules::Registry`], and one file per built-in module (transfer,
//!   asset, settlement, batch payment).
//! - [`schedule`]: how transactions are grouped into conflict-free shards.
//! - [`state`]: the key layout and value encodings in the authenticated
//!   state, and the in-memory overlay every block executes through.
//! - [`fees`]: the envelope's gas, the EIP-1559 base fee rule and the split
//!   of every fee into burn, treasury, fee pool and proposer tip.
//! - [`mempool::precheck`]: the stateful check before a transaction enters
//!   the mempool (sequence window, fee cap, balance covers the max fee,
//!   expiry).
//!
//! Pure: no clock, no randomness, no I/O. The only threads are those of
//! [`block::apply_block_sharded`] / [`block::apply_block_sharded_with`] (the
//! scheduler helper the node calls), and their result is equal, byte for
//! byte, to sequential execution. Signatures are NOT checked inside
//! [`block::apply_block`]: the node verifies them in batches
//! (`plume_protocol::tx::verify_batch`) before the mempool.
#![forbid(unsafe_code)]

pub mod block;
pub mod fees;
pub mod mempool;
pub mod modules;
pub mod schedule;
pub mod state;

pub use block::ComplianceTotals;
pub use block::{
    apply_block, apply_block_sharded, apply_block_sharded_with, commit, BlockContext, BlockOutput,
};
pub use mempool::{precheck, Checked, PrecheckError, SEQUENCE_WINDOW};
pub use modules::compliance::genesis_writes_with;
pub use modules::{standard, Call, Ledger, Module, Registry};
pub use plume_protocol::{Cause, Event, PreparedTx, Reason, Receipt, Status};
pub use state::{genesis_writes, read_ledger_meta, LedgerMeta};

use plume_crypto::ed25519::Address;

/// Protocol parameters execution needs; they mirror the genesis `Params` of
/// the node (which converts its JSON form into this).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Chain id every transaction must name.
    pub chain_id: String,
    /// Most transactions in one block (what consensus carries; more is a
    /// block error).
    pub block_txs_max: u32,
    /// Most transactions one block admits, at most `block_txs_max`
    /// (governable; the rest are rejected with `BlockTxLimit`).
    pub block_txs_limit: u32,
    /// Gas limit of one block.
    pub block_gas_limit: u64,
    /// Gas per block the base fee steers toward.
    pub block_gas_target: u64,
    /// Base fee per gas written at genesis.
    pub base_fee_initial: u64,
    /// Lowest base fee per gas.
    pub base_fee_min: u64,
    /// The base fee moves by at most 1/denominator per block.
    pub base_fee_change_denominator: u64,
    /// Percent of the base fee burned.
    pub fee_burn_percent: u8,
    /// Percent of the unburned base fee credited to the treasury; the rest
    /// goes to the validators' fee pool ([`fee_pool_address`]).
    pub fee_treasury_percent: u8,
    /// Treasury account.
    pub treasury: Address,
    /// Governance and stake parameters.
    pub gov: plume_protocol::governance::GovParams,
}

impl Params {
    /// Check the rules the node's genesis validation also checks.
    pub fn validate(&self) -> Result<(), ExecError> {
        let bad = |what: &'static str| Err(ExecError::BadParams(what));
        if self.chain_id.is_empty() || self.chain_id.len() > plume_protocol::tx::CHAIN_ID_LEN_MAX {
            return bad("chain_id length");
        }
        if self.block_txs_max == 0 {
            return bad("block_txs_max is 0");
        }
        if self.block_txs_limit == 0 || self.block_txs_limit > self.block_txs_max {
            return bad("block_txs_limit not in 1..=block_txs_max");
        }
        if self.block_gas_target == 0 || self.block_gas_target > self.block_gas_limit {
            return bad("block_gas_target not in 1..=block_gas_limit");
        }
        if self.base_fee_change_denominator == 0 {
            return bad("base_fee_change_denominator is 0");
        }
        if self.base_fee_initial < self.base_fee_min {
            return bad("base_fee_initial below base_fee_min");
        }
        if self.fee_burn_percent > 100 || self.fee_treasury_percent > 100 {
            return bad("fee percent above 100");
        }
        self.gov.validate().map_err(ExecError::BadParams)?;
        Ok(())
    }

    /// The parameters of the node's default genesis with `chain_id`.
    pub fn with_defaults(chain_id: &str) -> Self {
        Params {
            chain_id: chain_id.to_string(),
            block_txs_max: 10_000,
            block_txs_limit: 10_000,
            block_gas_limit: 300_000_000,
            block_gas_target: 150_000_000,
            base_fee_initial: 10,
            base_fee_min: 1,
            base_fee_change_denominator: 8,
            fee_burn_percent: 50,
            fee_treasury_percent: 20,
            treasury: Address(
                plume_crypto::hash(plume_crypto::Domain::Address, b"plume treasury").0,
            ),
            gov: plume_protocol::governance::GovParams::default(),
        }
    }
}

/// The validators' fee pool: the unburned, non-treasury part of base fees.
pub fn fee_pool_address() -> Address {
    Address(plume_crypto::hash(plume_crypto::Domain::Address, b"plume fee pool").0)
}

/// Errors that stop a whole block (a bad transaction is a receipt, never
/// one of these).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The backing state failed.
    #[error("state store: {0}")]
    Storage(Box<dyn std::error::Error + Send + Sync>),
    /// A value in the state does not decode.
    #[error("corrupt state value: {0}")]
    CorruptState(&'static str),
    /// The ledger metadata record is missing (genesis not applied).
    #[error("ledger metadata missing: apply genesis_writes first")]
    NoGenesis,
    /// The block is not the next height.
    #[error("block height {got}, expected {expected}")]
    WrongHeight {
        /// Height of the block given.
        got: u64,
        /// Next height of the state.
        expected: u64,
    },
    /// More transactions than `block_txs_max`.
    #[error("block has {got} transactions, at most {max}")]
    TooManyTxs {
        /// Transactions in the block.
        got: usize,
        /// The limit.
        max: u32,
    },
    /// Parameters break a rule.
    #[error("bad parameters: {0}")]
    BadParams(&'static str),
    /// Genesis allocations break a rule.
    #[error("bad genesis: {0}")]
    BadGenesis(&'static str),
    /// A shard worker thread panicked (a bug; reported, not propagated).
    #[error("shard worker panicked")]
    WorkerPanicked,
}

impl ExecError {
    pub(crate) fn storage<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        ExecError::Storage(Box::new(e))
    }
}
