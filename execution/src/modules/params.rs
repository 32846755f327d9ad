//! The parameters in state: the changes governance passed (one folded
//! change in force and the scheduled ones with their activation heights),
//! and the parameters a block runs with (genesis values with every change
//! whose activation height is reached). Records under the governance
//! module's id: `params`, a [`ParamsRecord`].

use super::{module_key, Ledger, StateRead};
use crate::{ExecError, Params};
use plume_protocol::governance::{ParamChange, MODULE_GOVERNANCE};
use plume_storage::StateKey;

/// Most parameter changes scheduled and not yet folded.
pub const PENDING_CHANGES_MAX: usize = 32;

/// The parameter changes governance passed.
#[derive(
    rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, Default, PartialEq, Eq,
)]
pub struct ParamsRecord {
    /// Every change in force before the scheduled ones, folded into one.
    pub folded: ParamChange,
    /// `(activation height, change)`, ascending heights (ties in the order
    /// they passed).
    pub scheduled: Vec<(u64, ParamChange)>,
}
rkyv_record!(ParamsRecord, "governance params");

/// Key of the parameter record.
pub fn params_key() -> StateKey {
    module_key(MODULE_GOVERNANCE, &[b"params"])
}

/// `b`'s fields set over `a`.
fn fold(a: &mut ParamChange, b: &ParamChange) {
    macro_rules! over {
        ($($f:ident),*) => { $(if b.$f.is_some() { a.$f = b.$f; })* };
    }
    over!(
        fee_burn_percent,
        fee_treasury_percent,
        block_txs_limit,
        block_gas_limit,
        block_gas_target,
        base_fee_min,
        base_fee_change_denominator,
        min_deposit,
        deposit_period_blocks,
        voting_period_blocks,
        quorum_percent,
        threshold_percent,
        veto_percent,
        unbonding_blocks
    );
}

/// `p` with change `c` applied.
fn apply_change(p: &mut Params, c: &ParamChange) {
    if let Some(v) = c.fee_burn_percent {
        p.fee_burn_percent = v;
    }
    if let Some(v) = c.fee_treasury_percent {
        p.fee_treasury_percent = v;
    }
    if let Some(v) = c.block_txs_limit {
        p.block_txs_limit = v.clamp(1, p.block_txs_max);
    }
    if let Some(v) = c.block_gas_limit {
        p.block_gas_limit = v.max(1);
    }
    if let Some(v) = c.block_gas_target {
        p.block_gas_target = v;
    }
    // The target never exceeds the limit (checked at proposal time against
    // the parameters then; a later change of the limit lowers it).
    p.block_gas_target = p.block_gas_target.clamp(1, p.block_gas_limit);
    if let Some(v) = c.base_fee_min {
        p.base_fee_min = v;
    }
    if let Some(v) = c.base_fee_change_denominator {
        p.base_fee_change_denominator = v;
    }
    p.gov = c.apply_gov(&p.gov);
}

/// The parameters in force for block `height`: the genesis ones with every
/// change governance passed whose activation height is at most `height`.
/// One state read per block.
pub fn effective_params<B: StateRead + ?Sized>(
    state: &B,
    genesis: &Params,
    height: u64,
) -> Result<Params, ExecError> {
    let Some(b) = state.get(&params_key())? else {
        return Ok(genesis.clone());
    };
    let rec = ParamsRecord::decode(&b)?;
    let mut p = genesis.clone();
    apply_change(&mut p, &rec.folded);
    for (h, c) in &rec.scheduled {
        if *h <= height {
            apply_change(&mut p, c);
        }
    }
    Ok(p)
}

/// The block gas limit in force for block `height` (the mempool's
/// precheck, per transaction: no copy of the parameters when governance
/// never changed any).
pub fn effective_gas_limit<B: StateRead + ?Sized>(
    state: &B,
    genesis: &Params,
    height: u64,
) -> Result<u64, ExecError> {
    if state.get(&params_key())?.is_none() {
        return Ok(genesis.block_gas_limit);
    }
    Ok(effective_params(state, genesis, height)?.block_gas_limit)
}

/// Schedule `change` from `activation_height` (a passed proposal, decided
/// in block `height`), folding what is in force already so the record
/// stays bounded. `Ok(false)`: [`PENDING_CHANGES_MAX`] are scheduled.
pub(crate) fn schedule(
    l: &mut dyn Ledger,
    height: u64,
    activation_height: u64,
    change: &ParamChange,
) -> Result<bool, ExecError> {
    let mut rec = l
        .record(&params_key())?
        .map_or(Ok(ParamsRecord::default()), |b| ParamsRecord::decode(&b))?;
    let (now, later): (Vec<_>, Vec<_>) = rec.scheduled.into_iter().partition(|(h, _)| *h <= height);
    for (_, c) in &now {
        fold(&mut rec.folded, c);
    }
    rec.scheduled = later;
    let ok = rec.scheduled.len() < PENDING_CHANGES_MAX;
    if ok {
        let pos = rec
            .scheduled
            .partition_point(|(h, _)| *h <= activation_height);
        rec.scheduled
            .insert(pos, (activation_height, change.clone()));
    }
    l.set_record(&params_key(), Some(rec.encode()));
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_keeps_the_later_value() {
        let mut a = ParamChange {
            fee_burn_percent: Some(40),
            quorum_percent: Some(10),
            ..Default::default()
        };
        fold(
            &mut a,
            &ParamChange {
                fee_burn_percent: Some(30),
                ..Default::default()
            },
        );
        assert_eq!(a.fee_burn_percent, Some(30));
        assert_eq!(a.quorum_percent, Some(10));
    }
}
