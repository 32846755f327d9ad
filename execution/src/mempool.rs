//! The stateful pre-check the mempool runs before admitting a transaction
//! (after its signatures were verified): everything that would make it a
//! `Rejected` receipt at the next height, plus a sequence window and the
//! payer's ability to pay its maximum fee.

use crate::fees;
use crate::modules::{Registry, TxInfo};
use crate::state::{read_account, read_ledger_meta};
use crate::{ExecError, Params};
use plume_protocol::tx::PreparedTx;
use plume_protocol::Reason;
use plume_storage::AuthenticatedState;

/// How far ahead of the payer's committed next sequence a transaction may
/// be queued: the mempool's own window (`plume_mempool`'s
/// `SENDER_SEQUENCE_WINDOW`), so a client that submits its 256 pending
/// transactions back to back is never refused because execution has not
/// caught up with the first ones yet (it was 64, and such a client got
/// 1005 depending on timing).
pub const SEQUENCE_WINDOW: u64 = 1024;

/// Why the mempool refuses a transaction.
#[derive(Debug, thiserror::Error)]
pub enum PrecheckError {
    /// The transaction would be rejected or cannot pay.
    #[error("transaction refused: {0:?}")]
    Refused(Reason),
    /// The state could not be read.
    #[error(transparent)]
    State(#[from] ExecError),
}

impl From<Reason> for PrecheckError {
    fn from(r: Reason) -> Self {
        PrecheckError::Refused(r)
    }
}

/// What the check read from the state, for the mempool's own limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The payer's next sequence.
    pub next_sequence: u64,
    /// The payer's native balance.
    pub balance: u128,
    /// The tip per gas it would pay at the current base fee.
    pub tip_per_gas: u64,
}

/// Check `ptx` against the current state for inclusion in the next block.
///
/// Refuses: limits broken, wrong chain, a call no module decodes or that
/// its module does not authorize (say an unsigned debited account),
/// expiry before the next height, fee cap below the current base fee, gas
/// limit below the intrinsic gas or above the block gas limit, sequence
/// outside `[next, next + SEQUENCE_WINDOW)`, or a payer balance below
/// `gas_limit x max_fee_per_gas`.
pub fn precheck<S: AuthenticatedState + ?Sized>(
    state: &S,
    params: &Params,
    registry: &Registry,
    ptx: &PreparedTx,
) -> Result<Checked, PrecheckError> {
    let body = &ptx.tx.body;
    ptx.tx.check_limits()?;
    if body.chain_id != params.chain_id {
        return Err(Reason::WrongChain.into());
    }
    let payer = ptx.payer().ok_or(Reason::SignerCount)?;
    let meta = read_ledger_meta(state)?;
    let next_height = meta.height.saturating_add(1);
    let call = registry.decode(body.module, &body.call)?;
    let info = TxInfo {
        hash: &ptx.hash,
        payer: &payer.0,
        signers: &ptx.signer_addresses,
        sequence: body.sequence,
        height: next_height,
        time_ms: 0,
        chain_id: &body.chain_id,
        params,
    };
    call.authorize(&info)?;
    let compliance_gas = crate::modules::compliance::read_gas(state, || {
        crate::modules::compliance::parties(&*call, &info)
    })?;
    if next_height > body.expiry_height {
        return Err(Reason::Expired.into());
    }
    let tip_per_gas = fees::effective_tip(
        body.max_fee_per_gas,
        body.priority_fee_per_gas,
        meta.base_fee_per_gas,
    )
    .ok_or(Reason::FeeCapBelowBaseFee)?;
    if body.gas_limit < fees::intrinsic_gas(body, call.gas().saturating_add(compliance_gas)) {
        return Err(Reason::OutOfGas.into());
    }
    // The block gas limit is governable: the one in force next block.
    let block_gas_limit =
        crate::modules::governance::effective_gas_limit(state, params, next_height)?;
    if body.gas_limit > block_gas_limit {
        return Err(Reason::BlockGasLimit.into());
    }
    let acct = read_account(state, payer)?;
    if body.sequence < acct.sequence || body.sequence - acct.sequence >= SEQUENCE_WINDOW {
        return Err(Reason::BadSequence.into());
    }
    let max_fee = body.gas_limit as u128 * body.max_fee_per_gas as u128;
    if acct.balance < max_fee {
        return Err(Reason::InsufficientFeeBalance.into());
    }
    Ok(Checked {
        next_sequence: acct.sequence,
        balance: acct.balance,
        tip_per_gas,
    })
}
