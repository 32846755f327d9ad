//! Institutional revenue sharing: registered institutions (compliance
//! identities) receive, per revenue epoch, a share of what the validators'
//! fee pool received, in proportion to the fees their transactions paid.
//!
//! Records (keys from [`module_key`] under the governance module's id):
//! - `revenue/program`: the [`Program`] governance set last (a passed
//!   `RevenueProgram` proposal; from the next block on);
//! - `revenue/tally`: the current epoch's [`Tally`].
//!
//! Rules:
//! - A transaction counts for an institution when its payer's address is
//!   linked (compliance registry, block-start state) to the institution's
//!   identity and it paid a fee (succeeded or failed). It does not count
//!   when every party of its balance movements belongs to that same
//!   identity (volume between an institution's own accounts).
//! - Every fee paid in the epoch counts toward the total, counted or not.
//! - At the end of the last block of an epoch (heights that are multiples
//!   of `epoch_blocks`), `pool = share_percent` of what the fee pool
//!   received during the epoch; institution i gets `floor(pool x fees_i /
//!   total)` from the fee pool; the rounding dust of the institutions' part
//!   goes to the treasury; the rest stays in the fee pool. Then a new tally
//!   starts.
//!
//! Cost: with no program, nothing (one record read per block); with one,
//! one registry read per transaction (its payer), and one per party of a
//! counted institution's transaction.

use super::{module_key, Ledger, StateRead};
use crate::ExecError;
use plume_protocol::governance::{codes, MODULE_GOVERNANCE};
use plume_protocol::tx::NATIVE_ASSET;
use plume_protocol::Event;
use plume_storage::StateKey;

/// The program in force.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// Percent of the epoch's fee-pool receipts shared.
    pub share_percent: u8,
    /// Blocks per epoch.
    pub epoch_blocks: u64,
    /// `(identity, payout address)`.
    pub institutions: Vec<([u8; 32], [u8; 32])>,
}
rkyv_record!(Program, "revenue program");

impl Program {
    /// Whether `identity` is registered.
    pub fn has(&self, identity: &[u8; 32]) -> bool {
        self.institutions.iter().any(|i| &i.0 == identity)
    }
}

/// The current epoch's counts.
#[derive(
    rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, Default, PartialEq, Eq,
)]
pub struct Tally {
    /// Every fee paid in the epoch.
    pub total_fees: u128,
    /// What the fee pool received in the epoch.
    pub pool_received: u128,
    /// Counted fees per institution identity.
    pub per_institution: Vec<([u8; 32], u128)>,
}
rkyv_record!(Tally, "revenue tally");

/// Key of the program.
pub fn program_key() -> StateKey {
    module_key(MODULE_GOVERNANCE, &[b"revenue", b"program"])
}

/// Key of the tally.
pub fn tally_key() -> StateKey {
    module_key(MODULE_GOVERNANCE, &[b"revenue", b"tally"])
}

/// The program in force at the block start (None: no program, or an
/// empty one).
pub fn read_program<B: StateRead + ?Sized>(state: &B) -> Result<Option<Program>, ExecError> {
    Ok(state
        .get(&program_key())?
        .map(|b| Program::decode(&b))
        .transpose()?
        .filter(|p| !p.institutions.is_empty()))
}

/// The current tally.
pub fn read_tally<B: StateRead + ?Sized>(state: &B) -> Result<Tally, ExecError> {
    state
        .get(&tally_key())?
        .map_or(Ok(Tally::default()), |b| Tally::decode(&b))
}

/// Set the program (a passed proposal).
pub fn set_program(l: &mut dyn Ledger, p: &Program) -> Result<(), ExecError> {
    let _ = l.record(&program_key())?;
    l.set_record(&program_key(), Some(p.encode()));
    Ok(())
}

/// `floor(a x b / c)` for `b <= c`, exact (256-bit intermediate).
pub fn mul_div(a: u128, b: u128, c: u128) -> u128 {
    debug_assert!(b <= c && c > 0);
    // a = q c + r: a b / c = q b + r b / c, with r b < c b <= c^2.
    let (q, r) = (a / c, a % c);
    let (hi, lo) = mul_wide(r, b);
    q * b + div_wide(hi, lo, c)
}

fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const M: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & M);
    let (b1, b0) = (b >> 64, b & M);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 64) + (p01 & M) + (p10 & M);
    (
        (p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64)),
        (p00 & M) | (mid << 64),
    )
}

/// `(hi 2^128 + lo) / d` when the quotient fits u128 (`hi < d`).
fn div_wide(hi: u128, lo: u128, d: u128) -> u128 {
    let mut rem = hi;
    let mut q = 0u128;
    for i in (0..128).rev() {
        let carry = rem >> 127;
        rem = (rem << 1) | ((lo >> i) & 1);
        q <<= 1;
        if carry == 1 || rem >= d {
            rem = rem.wrapping_sub(d);
            q |= 1;
        }
    }
    q
}

/// End of block `height`: add the block's counts to the tally and, at the
/// end of an epoch, pay the shares. `counted` are the block's counted
/// institution fees, `fees_paid` and `pool_received` its totals.
#[allow(clippy::too_many_arguments)]
pub fn end_block(
    l: &mut dyn Ledger,
    program: &Program,
    height: u64,
    counted: &[([u8; 32], u128)],
    fees_paid: u128,
    pool_received: u128,
    fee_pool: &[u8; 32],
    treasury: &[u8; 32],
    events: &mut Vec<Event>,
) -> Result<(), ExecError> {
    let mut t = l
        .record(&tally_key())?
        .map_or(Ok(Tally::default()), |b| Tally::decode(&b))?;
    t.total_fees = t.total_fees.saturating_add(fees_paid);
    t.pool_received = t.pool_received.saturating_add(pool_received);
    for (id, f) in counted {
        match t.per_institution.iter_mut().find(|e| &e.0 == id) {
            Some(e) => e.1 = e.1.saturating_add(*f),
            None => t.per_institution.push((*id, *f)),
        }
    }
    if height % program.epoch_blocks != 0 {
        l.set_record(&tally_key(), Some(t.encode()));
        return Ok(());
    }
    let pct = u128::from(program.share_percent.min(100));
    let pool = t.pool_received / 100 * pct + t.pool_received % 100 * pct / 100;
    if pool > 0 && t.total_fees > 0 {
        let counted_total: u128 = t.per_institution.iter().map(|e| e.1).sum();
        let mut paid = 0u128;
        let mut pay = |l: &mut dyn Ledger, to: &[u8; 32], amount: u128, cause| {
            if amount == 0 {
                return Ok::<(), ExecError>(());
            }
            let d = l.debit(fee_pool, &NATIVE_ASSET, amount, cause, events)?;
            assert_eq!(d, Ok(()), "the fee pool holds what it received this epoch");
            let c = l.credit(to, &NATIVE_ASSET, amount, cause, events)?;
            assert_eq!(c, Ok(()), "a share of the supply fits u128");
            Ok(())
        };
        // In registration order (the program's), each identity once.
        for (id, payout) in &program.institutions {
            let f = t
                .per_institution
                .iter()
                .find(|e| &e.0 == id)
                .map_or(0, |e| e.1);
            let share = mul_div(pool, f.min(t.total_fees), t.total_fees);
            paid += share;
            pay(l, payout, share, codes::REVENUE_SHARE)?;
        }
        let owed = mul_div(pool, counted_total.min(t.total_fees), t.total_fees);
        pay(l, treasury, owed.saturating_sub(paid), codes::REVENUE_DUST)?;
    }
    l.set_record(&tally_key(), None);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mul_div_is_exact() {
        assert_eq!(mul_div(100, 60, 100), 60);
        assert_eq!(mul_div(7, 1, 3), 2);
        assert_eq!(mul_div(u128::MAX, u128::MAX, u128::MAX), u128::MAX);
        assert_eq!(mul_div(u128::MAX, 1, 2), u128::MAX / 2);
        assert_eq!(mul_div(u128::MAX, 3, 5), u128::MAX / 5 * 3);
        assert_eq!(mul_div(0, 0, 1), 0);
    }
}
