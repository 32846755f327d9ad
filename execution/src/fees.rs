//! The gas schedule, the EIP-1559 base fee rule and the split of a fee.
//!
//! Gas depends only on the transaction's shape, never on state, so the
//! block's gas budget is known before execution and shards need not agree
//! on it. The payer pays `gas_used x (base fee + tip)`, with the tip capped
//! by `max_fee_per_gas - base_fee`. Of the base part, `fee_burn_percent` is
//! burned; of the rest, `fee_treasury_percent` goes to the treasury and the
//! remainder to the validators' fee pool. Tips go to the proposer.

use crate::Params;
use plume_protocol::tx::TxBody;

/// Every transaction.
pub const GAS_TX_BASE: u64 = 10_000;
/// Per signer (signature verification is paid for here).
pub const GAS_PER_SIGNER: u64 = 5_000;
/// Per memo byte (stored forever with the transaction).
pub const GAS_PER_MEMO_BYTE: u64 = 16;

/// Gas a transaction needs: the envelope's (base, signers, memo) plus its
/// call's `call_gas` (the module's, by shape). Saturating: absurd shapes are
/// stopped by the count limits long before.
pub fn intrinsic_gas(body: &TxBody, call_gas: u64) -> u64 {
    let signers = GAS_PER_SIGNER.saturating_mul(body.signers.len() as u64);
    let memo = GAS_PER_MEMO_BYTE.saturating_mul(body.memo.len() as u64);
    GAS_TX_BASE
        .saturating_add(signers)
        .saturating_add(memo)
        .saturating_add(call_gas)
}

/// The next block's base fee: EIP-1559, moving at most
/// `1/base_fee_change_denominator` toward `block_gas_target`, never below
/// `base_fee_min`.
pub fn next_base_fee(params: &Params, base_fee: u64, gas_used: u64) -> u64 {
    let target = params.block_gas_target.max(1) as u128;
    let denom = params.base_fee_change_denominator.max(1) as u128;
    let base = base_fee as u128;
    let used = gas_used as u128;
    let next = if used > target {
        let delta = (base * (used - target) / target / denom).max(1);
        base.saturating_add(delta)
    } else if used < target {
        // At least 1, like the increase: plain EIP-1559 rounding sticks at
        // 7 (7/8 rounds to 0) and would never reach a lower minimum.
        let delta = (base * (target - used) / target / denom).max(1);
        base.saturating_sub(delta)
    } else {
        base
    };
    (next.min(u64::MAX as u128) as u64).max(params.base_fee_min)
}

/// A fee split into its destinations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeeSplit {
    /// Total paid by the payer.
    pub paid: u128,
    /// Burned.
    pub burned: u128,
    /// To the treasury.
    pub treasury: u128,
    /// To the fee pool.
    pub pool: u128,
    /// To the proposer.
    pub tip: u128,
}

/// `v x percent / 100`, rounded down, without overflow.
fn percent_of(v: u128, percent: u8) -> u128 {
    let p = percent.min(100) as u128;
    v / 100 * p + v % 100 * p / 100
}

/// Split the fee of `gas_used` at `base_fee` plus `tip_per_gas`. The parts
/// always sum to `paid`. The tip is capped at `u64::MAX - base_fee` (the
/// effective tip never exceeds it: base + tip <= max fee), so
/// `gas x (base + tip)` fits u128.
pub fn split_fee(params: &Params, gas_used: u64, base_fee: u64, tip_per_gas: u64) -> FeeSplit {
    let tip_per_gas = tip_per_gas.min(u64::MAX - base_fee);
    let base_part = gas_used as u128 * base_fee as u128;
    let tip = gas_used as u128 * tip_per_gas as u128;
    let burned = percent_of(base_part, params.fee_burn_percent);
    let rest = base_part - burned;
    let treasury = percent_of(rest, params.fee_treasury_percent);
    let pool = rest - treasury;
    FeeSplit {
        paid: base_part + tip,
        burned,
        treasury,
        pool,
        tip,
    }
}

/// The tip per gas actually paid: the priority fee, capped by what the max
/// fee leaves above the base fee. `None` if the max fee is below the base fee.
pub fn effective_tip(
    max_fee_per_gas: u64,
    priority_fee_per_gas: u64,
    base_fee: u64,
) -> Option<u64> {
    let headroom = max_fee_per_gas.checked_sub(base_fee)?;
    Some(priority_fee_per_gas.min(headroom))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params::with_defaults("test")
    }

    #[test]
    fn base_fee_moves_at_most_one_eighth() {
        let p = params();
        let t = p.block_gas_target;
        assert_eq!(next_base_fee(&p, 800, t), 800);
        assert_eq!(next_base_fee(&p, 800, 2 * t), 900);
        assert_eq!(next_base_fee(&p, 800, 0), 700);
        // Decreases by at least one, so small fees still reach the minimum.
        assert_eq!(next_base_fee(&p, 7, 0), 6);
        assert_eq!(next_base_fee(&p, 800, t + t / 2), 850);
        // Full blocks raise even a tiny fee by at least one.
        assert_eq!(next_base_fee(&p, 1, p.block_gas_limit), 2);
        // Never below the minimum.
        assert_eq!(next_base_fee(&p, 1, 0), p.base_fee_min);
        // Saturates instead of overflowing.
        assert_eq!(next_base_fee(&p, u64::MAX, 2 * t), u64::MAX);
    }

    #[test]
    fn fee_split_sums_to_paid() {
        let p = params();
        for (gas, base, tip) in [
            (21_000u64, 10u64, 3u64),
            (1, 1, 0),
            (u64::MAX, u64::MAX, u64::MAX),
            (7, 13, 1),
        ] {
            let s = split_fee(&p, gas, base, tip);
            assert_eq!(s.burned + s.treasury + s.pool + s.tip, s.paid);
            assert_eq!(s.tip, gas as u128 * tip.min(u64::MAX - base) as u128);
        }
        let s = split_fee(&p, 1000, 10, 2);
        assert_eq!(
            (s.paid, s.burned, s.treasury, s.pool, s.tip),
            (12_000, 5_000, 1_000, 4_000, 2_000)
        );
    }

    #[test]
    fn tip_is_capped_by_headroom() {
        assert_eq!(effective_tip(15, 10, 10), Some(5));
        assert_eq!(effective_tip(30, 10, 10), Some(10));
        assert_eq!(effective_tip(9, 10, 10), None);
    }
}
