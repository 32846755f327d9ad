//! The stake module (id 6): bonded PLUME per account, the unbonding queue,
//! and the history governance weighs votes by.
//!
//! Records (keys from [`module_key`] under this module's id):
//! - `bond/<account key>`: a [`StakeRecord`]: the bonded amount, its
//!   checkpoints (the amount after each block that changed it, at most
//!   [`CHECKPOINTS_MAX`]) and the unbonding entries (at most
//!   [`UNBONDINGS_MAX`]);
//! - `total`: [`TotalBonded`], the sum of every account's bonded amount and
//!   its value at the start of the block that last changed it.
//!
//! Bonded and unbonding PLUME sit in the stake escrow account
//! ([`stake_escrow`]), so balances and supply accounting stay those of the
//! core. Rules:
//! - `Bond` moves PLUME from the payer to the escrow and raises its bonded
//!   amount; `Unbond` lowers it and queues an entry that matures
//!   `unbonding_blocks` later; `Withdraw` pays every matured entry back.
//! - [`StakeRecord::at_start_of`] is the bonded amount at the start of a
//!   block. When the checkpoint list is full, its two oldest entries merge
//!   into one holding the smaller amount: a lookup may under-count an old
//!   height, never over-count, so one token never weighs twice.

use super::{module_key, Call, CallResult, Ledger, Module, QueryError, StateRead, TxInfo};
use crate::state::account_key;
use crate::ExecError;
use plume_protocol::calls::ModuleCall;
use plume_protocol::governance::{codes, stake_escrow, StakeCall, MODULE_STAKE};
use plume_protocol::tx::NATIVE_ASSET;
use plume_protocol::{Cause, Event, Reason};
use plume_storage::StateKey;

/// Gas of a stake call (besides the envelope's).
pub const GAS_STAKE: u64 = 20_000;
/// Most checkpoints kept per account.
pub const CHECKPOINTS_MAX: usize = 32;
/// Most unbonding entries per account.
pub const UNBONDINGS_MAX: usize = 16;

/// One account's stake.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct StakeRecord {
    /// Bonded now.
    pub bonded: u128,
    /// `(height, amount)`: bonded after block `height`, ascending heights.
    pub checkpoints: Vec<(u64, u128)>,
    /// `(height it can be withdrawn from, amount)`, ascending heights.
    pub unbonding: Vec<(u64, u128)>,
}
rkyv_record!(StakeRecord, "stake record");

impl StakeRecord {
    /// Bonded at the start of block `height` (after block `height - 1`).
    pub fn at_start_of(&self, height: u64) -> u128 {
        self.checkpoints
            .iter()
            .rev()
            .find(|(h, _)| *h < height)
            .map_or(0, |c| c.1)
    }

    /// Set the bonded amount in block `height`.
    fn set_bonded(&mut self, height: u64, amount: u128) {
        self.bonded = amount;
        match self.checkpoints.last_mut() {
            Some(last) if last.0 == height => last.1 = amount,
            _ => self.checkpoints.push((height, amount)),
        }
        if self.checkpoints.len() > CHECKPOINTS_MAX {
            let second = self.checkpoints.remove(1);
            self.checkpoints[0].1 = self.checkpoints[0].1.min(second.1);
        }
    }

    fn is_empty(&self) -> bool {
        self.bonded == 0 && self.unbonding.is_empty() && self.checkpoints.iter().all(|c| c.1 == 0)
    }
}

/// The sum of bonded stake.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct TotalBonded {
    /// Bonded now.
    pub current: u128,
    /// The last block that changed it.
    pub changed_at: u64,
    /// Its value at the start of that block.
    pub before_change: u128,
}
rkyv_record!(TotalBonded, "total bonded");

impl TotalBonded {
    /// The total at the start of block `height` (`height` at or after the
    /// last change: the current block or later).
    pub fn at_start_of(&self, height: u64) -> u128 {
        if self.changed_at >= height {
            self.before_change
        } else {
            self.current
        }
    }

    fn set(&mut self, height: u64, amount: u128) {
        if self.changed_at != height {
            self.before_change = self.current;
            self.changed_at = height;
        }
        self.current = amount;
    }
}

/// Key of an account's stake record.
pub fn stake_key(account: &[u8; 32]) -> StateKey {
    module_key(MODULE_STAKE, &[b"bond", &account_key(account)])
}

/// Key of the total.
pub fn total_key() -> StateKey {
    module_key(MODULE_STAKE, &[b"total"])
}

/// An account's stake record (empty when it never bonded).
pub fn ledger_stake(l: &mut dyn Ledger, account: &[u8; 32]) -> Result<StakeRecord, ExecError> {
    l.record(&stake_key(account))?
        .map_or(Ok(StakeRecord::default()), |b| StakeRecord::decode(&b))
}

/// The total bonded.
pub fn ledger_total(l: &mut dyn Ledger) -> Result<TotalBonded, ExecError> {
    l.record(&total_key())?
        .map_or(Ok(TotalBonded::default()), |b| TotalBonded::decode(&b))
}

/// Read an account's stake record from committed state.
pub fn read_stake<B: StateRead + ?Sized>(
    state: &B,
    account: &[u8; 32],
) -> Result<StakeRecord, ExecError> {
    state
        .get(&stake_key(account))?
        .map_or(Ok(StakeRecord::default()), |b| StakeRecord::decode(&b))
}

/// The stake module (id [`MODULE_STAKE`]).
#[derive(Debug, Clone, Copy)]
pub struct Stake;

impl Module for Stake {
    fn id(&self) -> u16 {
        MODULE_STAKE
    }
    fn name(&self) -> &'static str {
        "stake"
    }
    fn decode(&self, call: &[u8]) -> Result<Box<dyn Call>, Reason> {
        Ok(Box::new(StakeCall::decode(call)?))
    }
    fn reason_name(&self, r: Reason) -> Option<&'static str> {
        codes::reason_name(r)
    }
    fn cause_name(&self, c: Cause) -> Option<&'static str> {
        codes::cause_name(c)
    }
    fn queries(&self) -> &'static [&'static str] {
        &["account", "total"]
    }
    fn query(
        &self,
        state: &dyn StateRead,
        method: &str,
        args: &[String],
    ) -> Result<serde_json::Value, QueryError> {
        match method {
            "account" => {
                let a = super::hex32_arg(args, 0, "account")?;
                let r = read_stake(state, &a)?;
                Ok(serde_json::json!({
                    "account": hex::encode(a),
                    "bonded": r.bonded.to_string(),
                    "unbonding": r.unbonding.iter().map(|(h, v)| serde_json::json!({
                        "withdrawable_from_height": h, "amount": v.to_string()
                    })).collect::<Vec<_>>(),
                    "checkpoints": r.checkpoints.iter().map(|(h, v)| serde_json::json!({
                        "after_height": h, "bonded": v.to_string()
                    })).collect::<Vec<_>>(),
                }))
            }
            "total" => {
                let t = state
                    .get(&total_key())?
                    .map_or(Ok(TotalBonded::default()), |b| TotalBonded::decode(&b))?;
                Ok(serde_json::json!({ "bonded": t.current.to_string() }))
            }
            _ => Err(QueryError::Unknown(format!("stake.{method}"))),
        }
    }
}

impl Call for StakeCall {
    fn gas(&self) -> u64 {
        GAS_STAKE
    }
    fn touched(&self, tx: &TxInfo<'_>, out: &mut Vec<[u8; 32]>) {
        out.push(stake_key(tx.payer));
        out.push(total_key());
        out.push(account_key(&stake_escrow()));
    }
    fn apply(&self, tx: &TxInfo<'_>, l: &mut dyn Ledger, events: &mut Vec<Event>) -> CallResult {
        let mut rec = ledger_stake(l, tx.payer)?;
        let mut total = ledger_total(l)?;
        let escrow = stake_escrow();
        match self {
            StakeCall::Bond { amount } => {
                tri!(l.debit(tx.payer, &NATIVE_ASSET, *amount, codes::BOND, events));
                tri!(l.credit(&escrow, &NATIVE_ASSET, *amount, codes::BOND, events));
                let Some(b) = rec.bonded.checked_add(*amount) else {
                    return Ok(Err(Reason::Overflow));
                };
                rec.set_bonded(tx.height, b);
                // Bonded stake is part of a supply that fits u128.
                total.set(tx.height, total.current.saturating_add(*amount));
            }
            StakeCall::Unbond { amount } => {
                let Some(b) = rec.bonded.checked_sub(*amount) else {
                    return Ok(Err(codes::BOND_TOO_SMALL));
                };
                if rec.unbonding.len() >= UNBONDINGS_MAX {
                    return Ok(Err(codes::TOO_MANY_UNBONDINGS));
                }
                let from = tx.height.saturating_add(tx.params.gov.unbonding_blocks);
                rec.unbonding.push((from, *amount));
                rec.unbonding.sort_by_key(|u| u.0);
                rec.set_bonded(tx.height, b);
                total.set(tx.height, total.current.saturating_sub(*amount));
            }
            StakeCall::Withdraw => {
                let matured: u128 = rec
                    .unbonding
                    .iter()
                    .filter(|u| u.0 <= tx.height)
                    .map(|u| u.1)
                    .sum();
                if matured == 0 {
                    return Ok(Err(codes::NOTHING_TO_WITHDRAW));
                }
                rec.unbonding.retain(|u| u.0 > tx.height);
                tri!(l.debit(&escrow, &NATIVE_ASSET, matured, codes::WITHDRAW, events));
                tri!(l.credit(tx.payer, &NATIVE_ASSET, matured, codes::WITHDRAW, events));
            }
        }
        l.set_record(&stake_key(tx.payer), (!rec.is_empty()).then(|| rec.encode()));
        l.set_record(&total_key(), Some(total.encode()));
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_answer_the_block_start_and_merge_conservatively() {
        let mut r = StakeRecord::default();
        r.set_bonded(10, 100);
        r.set_bonded(10, 150);
        r.set_bonded(20, 50);
        assert_eq!(r.at_start_of(10), 0);
        assert_eq!(r.at_start_of(11), 150);
        assert_eq!(r.at_start_of(20), 150);
        assert_eq!(r.at_start_of(21), 50);
        for h in 0..(CHECKPOINTS_MAX as u64 + 5) {
            r.set_bonded(100 + h, 1_000 + h as u128);
        }
        assert!(r.checkpoints.len() <= CHECKPOINTS_MAX);
        // Never more than what was bonded at any height merged away.
        for h in 0..200 {
            let truth = if h <= 10 {
                0
            } else if h <= 20 {
                150
            } else if h <= 100 {
                50
            } else {
                1_000 + (h - 101).min(CHECKPOINTS_MAX as u64 + 4) as u128
            };
            assert!(r.at_start_of(h) <= truth, "height {h}");
        }
        assert_eq!(r.at_start_of(200), 1_000 + CHECKPOINTS_MAX as u128 + 4);
    }

    #[test]
    fn total_reports_the_block_start() {
        let mut t = TotalBonded::default();
        t.set(5, 10);
        t.set(5, 30);
        assert_eq!(t.at_start_of(5), 0);
        assert_eq!(t.at_start_of(6), 30);
        t.set(7, 20);
        assert_eq!(t.at_start_of(7), 30);
        assert_eq!(t.at_start_of(8), 20);
    }
}
