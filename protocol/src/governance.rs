//! The call formats, parameters and codes of the stake and governance
//! modules (ids 6 and 7).
//!
//! - **Stake** ([`StakeCall`]): an account bonds PLUME (moved to the stake
//!   escrow), unbonds it (queued for `unbonding_blocks`) and withdraws what
//!   matured. Bonded stake is what governance counts. This is the first
//!   part of the staking ledger (validators, delegation pools, rewards and
//!   slashing build on the same bonded records).
//! - **Governance** ([`GovCall`]): proposals (text, a parameter change at a
//!   stated height, a treasury spend) with deposits, and votes
//!   (yes/no/abstain/veto) weighted by the voter's bonded stake at the start
//!   of the proposal's first voting block.
//!
//! The rules are written out in `execution/src/modules/governance.rs` and
//! in the README's *Governance* section.

use crate::calls::{rkyv_call, ModuleId};
use crate::receipt::{Cause, Reason};
use serde::{Deserialize, Serialize};

/// Module id of [`StakeCall`].
pub const MODULE_STAKE: ModuleId = 6;
/// Module id of [`GovCall`].
pub const MODULE_GOVERNANCE: ModuleId = 7;
/// Module id of [`VestingCall`].
pub const MODULE_VESTING: ModuleId = 8;

/// Longest vesting schedule: five years (1,827 days), in ms.
pub const VESTING_DURATION_MAX_MS: u64 = 1_827 * 24 * 3_600 * 1_000;

/// Longest proposal title, in bytes.
pub const TITLE_LEN_MAX: usize = 128;
/// Longest text proposal body, in bytes.
pub const TEXT_LEN_MAX: usize = 2_048;

/// Governance parameters (governable themselves; genesis `params.governance`).
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
)]
#[serde(deny_unknown_fields)]
pub struct GovParams {
    /// Deposit (PLUME base units) a proposal needs to enter voting.
    pub min_deposit: u128,
    /// Blocks a proposal may wait for its deposit before it expires (and its
    /// deposits are burned).
    pub deposit_period_blocks: u64,
    /// Blocks of voting, counting the first.
    pub voting_period_blocks: u64,
    /// Percent of the bonded stake (at voting start) that must vote.
    pub quorum_percent: u8,
    /// A proposal passes when yes is more than this percent of yes + no +
    /// veto.
    pub threshold_percent: u8,
    /// Veto above this percent of all votes rejects it and burns deposits.
    pub veto_percent: u8,
    /// Blocks between an unbond and its withdrawal.
    pub unbonding_blocks: u64,
}

impl Default for GovParams {
    fn default() -> Self {
        GovParams {
            min_deposit: 10_000_000,
            deposit_period_blocks: 100_000,
            voting_period_blocks: 100_000,
            quorum_percent: 33,
            threshold_percent: 50,
            veto_percent: 33,
            unbonding_blocks: 100_000,
        }
    }
}

impl GovParams {
    /// The rules every parameter set keeps.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.min_deposit == 0 {
            return Err("governance.min_deposit is 0");
        }
        if self.deposit_period_blocks == 0 || self.voting_period_blocks == 0 {
            return Err("governance periods must be at least one block");
        }
        if self.quorum_percent == 0 || self.quorum_percent > 100 {
            return Err("governance.quorum_percent not in 1..=100");
        }
        if self.threshold_percent > 100 || self.veto_percent > 100 {
            return Err("governance percent above 100");
        }
        if self.unbonding_blocks == 0 {
            return Err("governance.unbonding_blocks is 0");
        }
        Ok(())
    }
}

/// The parameters governance may change, each optional: what a
/// [`ProposalKind::ParamChange`] sets.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
)]
#[serde(deny_unknown_fields, default)]
pub struct ParamChange {
    /// Percent of the base fee burned.
    pub fee_burn_percent: Option<u8>,
    /// Percent of the unburned base fee to the treasury.
    pub fee_treasury_percent: Option<u8>,
    /// Most transactions one block admits (at most the genesis
    /// `block_txs_max`, which bounds what consensus carries; the rest of a
    /// block is rejected with `BlockTxLimit`).
    pub block_txs_limit: Option<u32>,
    /// Gas limit of one block.
    pub block_gas_limit: Option<u64>,
    /// EIP-1559 gas target (at most the block gas limit; lowered with it).
    pub block_gas_target: Option<u64>,
    /// Lowest base fee per gas.
    pub base_fee_min: Option<u64>,
    /// Base fee change denominator.
    pub base_fee_change_denominator: Option<u64>,
    /// Governance: minimum deposit.
    pub min_deposit: Option<u128>,
    /// Governance: deposit period.
    pub deposit_period_blocks: Option<u64>,
    /// Governance: voting period.
    pub voting_period_blocks: Option<u64>,
    /// Governance: quorum.
    pub quorum_percent: Option<u8>,
    /// Governance: threshold.
    pub threshold_percent: Option<u8>,
    /// Governance: veto.
    pub veto_percent: Option<u8>,
    /// Stake: unbonding period.
    pub unbonding_blocks: Option<u64>,
}

impl ParamChange {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == ParamChange::default()
    }

    /// `gov` with this change's governance fields applied.
    pub fn apply_gov(&self, gov: &GovParams) -> GovParams {
        GovParams {
            min_deposit: self.min_deposit.unwrap_or(gov.min_deposit),
            deposit_period_blocks: self
                .deposit_period_blocks
                .unwrap_or(gov.deposit_period_blocks),
            voting_period_blocks: self
                .voting_period_blocks
                .unwrap_or(gov.voting_period_blocks),
            quorum_percent: self.quorum_percent.unwrap_or(gov.quorum_percent),
            threshold_percent: self.threshold_percent.unwrap_or(gov.threshold_percent),
            veto_percent: self.veto_percent.unwrap_or(gov.veto_percent),
            unbonding_blocks: self.unbonding_blocks.unwrap_or(gov.unbonding_blocks),
        }
    }

    /// Stateless rules: something changes, each field in its range (the
    /// gas target against the block gas limit is checked at proposal time).
    pub fn check_rules(&self) -> Result<(), Reason> {
        if self.is_empty() {
            return Err(codes::BAD_PROPOSAL);
        }
        let pct = |v: Option<u8>| v.is_some_and(|p| p > 100);
        if pct(self.fee_burn_percent)
            || pct(self.fee_treasury_percent)
            || pct(self.threshold_percent)
            || pct(self.veto_percent)
            || self.quorum_percent.is_some_and(|p| p == 0 || p > 100)
        {
            return Err(codes::BAD_PARAMS);
        }
        let zero = |v: Option<u64>| v == Some(0);
        if self.block_txs_limit == Some(0)
            || zero(self.block_gas_target)
            || zero(self.block_gas_limit)
            || zero(self.base_fee_change_denominator)
            || zero(self.deposit_period_blocks)
            || zero(self.voting_period_blocks)
            || zero(self.unbonding_blocks)
            || self.min_deposit == Some(0)
        {
            return Err(codes::BAD_PARAMS);
        }
        Ok(())
    }
}

/// Bond, unbond and withdraw PLUME (the payer's own).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum StakeCall {
    /// Move `amount` from the payer's balance to its bonded stake.
    Bond {
        /// Amount.
        amount: u128,
    },
    /// Move `amount` of bonded stake to the unbonding queue; it can be
    /// withdrawn `unbonding_blocks` later.
    Unbond {
        /// Amount.
        amount: u128,
    },
    /// Pay out every matured unbonding entry to the payer.
    Withdraw,
}

impl StakeCall {
    fn check_rules(&self) -> Result<(), Reason> {
        match self {
            StakeCall::Bond { amount } | StakeCall::Unbond { amount } if *amount == 0 => {
                Err(Reason::ZeroAmount)
            }
            _ => Ok(()),
        }
    }
}

/// What a proposal does when it passes.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ProposalKind {
    /// Nothing but the record of the vote.
    Text {
        /// The text.
        text: String,
    },
    /// Change parameters from `activation_height` on (later than the
    /// latest block its voting could end in).
    ParamChange {
        /// The new values.
        change: ParamChange,
        /// First block the new values apply to.
        activation_height: u64,
    },
    /// Pay `amount` PLUME from the treasury to `to` when it passes.
    TreasurySpend {
        /// Recipient.
        to: [u8; 32],
        /// Amount.
        amount: u128,
    },
    /// Lock `amount` from the treasury in a vesting schedule for `to`,
    /// starting at the block time of the block that decides it
    /// (irrevocable; the schedule's id is the proposal's).
    VestedGrant {
        /// Beneficiary.
        to: [u8; 32],
        /// Amount.
        amount: u128,
        /// Cliff after the start, ms.
        cliff_ms: u64,
        /// Duration, ms (at most five years).
        duration_ms: u64,
    },
    /// A grant paid in tranches: on passing, the sum of `tranches` moves
    /// from the treasury to the grant escrow (the grant's id is the
    /// proposal's); each tranche is then paid by its own passed
    /// [`ProposalKind::ReleaseTranche`], in order.
    MilestoneGrant {
        /// Recipient.
        to: [u8; 32],
        /// Amounts, 1..=TRANCHES_MAX, each > 0.
        tranches: Vec<u128>,
    },
    /// Run one call of a ledger module as the governance account
    /// ([`governance_account`]), at the end of the deciding block. A module
    /// whose admin is that account is governed by token holders: e.g. the
    /// compliance engine's rules, providers and lists when genesis (or its
    /// admin's `SetRoles`) names it. A call that fails leaves no trace but
    /// the `passed_not_executed` status.
    Execute {
        /// Module id.
        module: u16,
        /// The call's bytes (at most EXECUTE_CALL_BYTES_MAX).
        call: Vec<u8>,
    },
    /// Pay the next tranche of a milestone grant.
    ReleaseTranche {
        /// The grant (its proposal's id).
        grant: [u8; 32],
    },
    /// End a milestone grant: its unpaid tranches go back to the treasury.
    CancelGrant {
        /// The grant (its proposal's id).
        grant: [u8; 32],
    },
    /// Set (replace) the institutional revenue-sharing program: every
    /// `epoch_blocks` blocks, `share_percent` of what the fee pool received
    /// is shared among the listed institutions in proportion to the fees
    /// their transactions paid (an empty list ends the program).
    RevenueProgram {
        /// Percent of the epoch's fee-pool receipts shared.
        share_percent: u8,
        /// Blocks per revenue epoch (epochs end at multiples of it).
        epoch_blocks: u64,
        /// `(compliance identity, payout address)`, at most
        /// [`INSTITUTIONS_MAX`], each identity once.
        institutions: Vec<([u8; 32], [u8; 32])>,
    },
    /// From block `height` on, only software of at least `version` executes
    /// blocks: older nodes halt cleanly before executing `height`, naming
    /// the version (later than the latest block its voting could end in).
    SoftwareUpgrade {
        /// Required version, `MAJOR.MINOR.PATCH` (digits and dots).
        version: String,
        /// First block the new software executes.
        height: u64,
    },
}

/// Longest module call a governance `Execute` proposal carries.
pub const EXECUTE_CALL_BYTES_MAX: usize = 64 * 1024;

/// The keyless account governance acts as (`Execute` proposals): no key
/// exists for it, only passed proposals sign as it.
pub fn governance_account() -> [u8; 32] {
    plume_crypto::hash(plume_crypto::Domain::Address, b"plume governance").0
}

/// Most tranches of a milestone grant.
pub const TRANCHES_MAX: usize = 16;

/// Most institutions in a revenue-sharing program.
pub const INSTITUTIONS_MAX: usize = 64;

/// Longest version string of a software upgrade.
pub const VERSION_LEN_MAX: usize = 32;

/// Parse `MAJOR.MINOR.PATCH` (a pre-release or build suffix after `-` or
/// `+` is ignored).
pub fn parse_version(v: &str) -> Option<[u64; 3]> {
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.');
    let mut out = [0u64; 3];
    for slot in &mut out {
        let part = it.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *slot = part.parse().ok()?;
    }
    it.next().is_none().then_some(out)
}

/// Whether software `have` satisfies an upgrade to `need` (`have >= need`
/// by `MAJOR.MINOR.PATCH`; unparsable versions satisfy nothing).
pub fn version_satisfies(have: &str, need: &str) -> bool {
    matches!((parse_version(have), parse_version(need)), (Some(h), Some(n)) if h >= n)
}

/// Vesting schedules: PLUME locked in the vesting escrow, released
/// linearly by block time after a cliff.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum VestingCall {
    /// Lock `total` of the payer's PLUME for `beneficiary`; its id is
    /// [`schedule_id`]`(payer, sequence)`.
    Create {
        /// Who may claim what vested.
        beneficiary: [u8; 32],
        /// Amount locked.
        total: u128,
        /// Start (block time, ms since the Unix epoch).
        start_ms: u64,
        /// Nothing vests before `start_ms + cliff_ms`.
        cliff_ms: u64,
        /// Everything has vested at `start_ms + duration_ms` (at most
        /// [`VESTING_DURATION_MAX_MS`]).
        duration_ms: u64,
        /// Who may take back the unvested part (none: irrevocable).
        clawback: Option<[u8; 32]>,
    },
    /// Beneficiary: receive what vested and was not claimed yet.
    Claim {
        /// Schedule id.
        schedule: [u8; 32],
    },
    /// Clawback authority: take the unvested part; what vested stays the
    /// beneficiary's to claim, and nothing vests later.
    Clawback {
        /// Schedule id.
        schedule: [u8; 32],
    },
}

/// Whether a schedule's shape is allowed (duration in 1..=5 years, cliff
/// within it).
pub fn schedule_ok(cliff_ms: u64, duration_ms: u64) -> bool {
    duration_ms > 0 && duration_ms <= VESTING_DURATION_MAX_MS && cliff_ms <= duration_ms
}

impl VestingCall {
    fn check_rules(&self) -> Result<(), Reason> {
        match self {
            VestingCall::Create {
                total,
                cliff_ms,
                duration_ms,
                ..
            } => {
                if *total == 0 {
                    return Err(Reason::ZeroAmount);
                }
                if !schedule_ok(*cliff_ms, *duration_ms) {
                    return Err(codes::BAD_SCHEDULE);
                }
                Ok(())
            }
            VestingCall::Claim { .. } | VestingCall::Clawback { .. } => Ok(()),
        }
    }
}

/// What of `total` has vested at block time `now_ms`: 0 before the cliff,
/// `floor(total x elapsed / duration)` after it, `total` from the end on.
/// Never decreases as `now_ms` grows.
pub fn vested(total: u128, start_ms: u64, cliff_ms: u64, duration_ms: u64, now_ms: u64) -> u128 {
    let elapsed = now_ms.saturating_sub(start_ms);
    if now_ms < start_ms || elapsed < cliff_ms {
        return 0;
    }
    if duration_ms == 0 || elapsed >= duration_ms {
        return total;
    }
    // floor(total * elapsed / duration) without overflow: elapsed < duration.
    let (e, d) = (elapsed as u128, duration_ms as u128);
    total / d * e + total % d * e / d
}

/// A vesting schedule's id: `hash(Address, "vesting" || payer || sequence)`.
pub fn schedule_id(payer: &[u8; 32], sequence: u64) -> [u8; 32] {
    plume_crypto::hash_parts(
        plume_crypto::Domain::Address,
        &[b"vesting", payer, &sequence.to_le_bytes()],
    )
    .0
}

/// The account holding unvested (and vested, unclaimed) PLUME.
pub fn vesting_escrow() -> [u8; 32] {
    plume_crypto::hash(plume_crypto::Domain::Address, b"plume vesting escrow").0
}

/// A vote.
#[derive(
    rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash,
)]
pub enum VoteOption {
    /// For.
    Yes,
    /// Against.
    No,
    /// Counts toward quorum only.
    Abstain,
    /// Against, and burns the deposits when above the veto share.
    Veto,
}

impl VoteOption {
    /// Index into a tally (`[yes, no, abstain, veto]`).
    pub fn index(self) -> usize {
        match self {
            VoteOption::Yes => 0,
            VoteOption::No => 1,
            VoteOption::Abstain => 2,
            VoteOption::Veto => 3,
        }
    }

    /// Parse `yes|no|abstain|veto`.
    pub fn parse(s: &str) -> Option<VoteOption> {
        Some(match s {
            "yes" => VoteOption::Yes,
            "no" => VoteOption::No,
            "abstain" => VoteOption::Abstain,
            "veto" | "no-with-veto" => VoteOption::Veto,
            _ => return None,
        })
    }
}

/// Governance calls.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum GovCall {
    /// Submit a proposal with an initial deposit from the payer; its id is
    /// [`proposal_id`]`(payer, sequence)`.
    Propose {
        /// Title, 1..=TITLE_LEN_MAX bytes.
        title: String,
        /// What it does.
        kind: ProposalKind,
        /// Initial deposit (> 0).
        deposit: u128,
    },
    /// Add to a proposal's deposit (during its deposit or voting period).
    Deposit {
        /// Proposal id.
        proposal: [u8; 32],
        /// Amount.
        amount: u128,
    },
    /// Vote (again: the last vote counts) on a proposal in its voting period.
    Vote {
        /// Proposal id.
        proposal: [u8; 32],
        /// The vote.
        option: VoteOption,
    },
}

impl GovCall {
    fn check_rules(&self) -> Result<(), Reason> {
        match self {
            GovCall::Propose {
                title,
                kind,
                deposit,
            } => {
                if *deposit == 0 {
                    return Err(Reason::ZeroAmount);
                }
                if title.is_empty() || title.len() > TITLE_LEN_MAX {
                    return Err(codes::BAD_PROPOSAL);
                }
                match kind {
                    ProposalKind::Text { text } if text.len() > TEXT_LEN_MAX => {
                        Err(codes::BAD_PROPOSAL)
                    }
                    ProposalKind::Text { .. } => Ok(()),
                    ProposalKind::ParamChange { change, .. } => change.check_rules(),
                    ProposalKind::TreasurySpend { amount, .. } if *amount == 0 => {
                        Err(Reason::ZeroAmount)
                    }
                    ProposalKind::TreasurySpend { .. } => Ok(()),
                    ProposalKind::VestedGrant { amount, .. } if *amount == 0 => {
                        Err(Reason::ZeroAmount)
                    }
                    ProposalKind::VestedGrant {
                        cliff_ms,
                        duration_ms,
                        ..
                    } => {
                        if schedule_ok(*cliff_ms, *duration_ms) {
                            Ok(())
                        } else {
                            Err(codes::BAD_SCHEDULE)
                        }
                    }
                    ProposalKind::MilestoneGrant { tranches, .. } => {
                        if tranches.is_empty()
                            || tranches.len() > TRANCHES_MAX
                            || tranches.contains(&0)
                            || tranches
                                .iter()
                                .try_fold(0u128, |a, t| a.checked_add(*t))
                                .is_none()
                        {
                            Err(codes::BAD_PROPOSAL)
                        } else {
                            Ok(())
                        }
                    }
                    ProposalKind::ReleaseTranche { .. } | ProposalKind::CancelGrant { .. } => {
                        Ok(())
                    }
                    ProposalKind::Execute { call, .. } if call.len() > EXECUTE_CALL_BYTES_MAX => {
                        Err(codes::BAD_PROPOSAL)
                    }
                    ProposalKind::Execute { .. } => Ok(()),
                    ProposalKind::RevenueProgram {
                        share_percent,
                        epoch_blocks,
                        institutions,
                    } => {
                        let mut ids: Vec<_> = institutions.iter().map(|i| i.0).collect();
                        ids.sort_unstable();
                        ids.dedup();
                        if *share_percent > 100
                            || *epoch_blocks == 0
                            || institutions.len() > INSTITUTIONS_MAX
                            || ids.len() != institutions.len()
                        {
                            Err(codes::BAD_PROPOSAL)
                        } else {
                            Ok(())
                        }
                    }
                    ProposalKind::SoftwareUpgrade { version, .. } => {
                        if version.len() > VERSION_LEN_MAX || parse_version(version).is_none() {
                            Err(codes::BAD_PROPOSAL)
                        } else {
                            Ok(())
                        }
                    }
                }
            }
            GovCall::Deposit { amount, .. } if *amount == 0 => Err(Reason::ZeroAmount),
            GovCall::Deposit { .. } | GovCall::Vote { .. } => Ok(()),
        }
    }
}

rkyv_call!(StakeCall, MODULE_STAKE);
rkyv_call!(GovCall, MODULE_GOVERNANCE);
rkyv_call!(VestingCall, MODULE_VESTING);

/// A proposal's id: `hash(Address, "proposal" || payer || sequence)`.
pub fn proposal_id(payer: &[u8; 32], sequence: u64) -> [u8; 32] {
    plume_crypto::hash_parts(
        plume_crypto::Domain::Address,
        &[b"proposal", payer, &sequence.to_le_bytes()],
    )
    .0
}

/// The account holding bonded and unbonding PLUME.
pub fn stake_escrow() -> [u8; 32] {
    plume_crypto::hash(plume_crypto::Domain::Address, b"plume stake escrow").0
}

/// The account holding the unpaid tranches of milestone grants.
pub fn grant_escrow() -> [u8; 32] {
    plume_crypto::hash(plume_crypto::Domain::Address, b"plume grant escrow").0
}

/// The account holding proposal deposits.
pub fn deposit_escrow() -> [u8; 32] {
    plume_crypto::hash(plume_crypto::Domain::Address, b"plume governance deposits").0
}

/// The reason and cause codes of both modules. Stable: never renumber.
pub mod codes {
    use super::{Cause, Reason};

    macro_rules! table {
        ($ty:ident, $fn:ident, $all:ident; $($name:ident = $code:expr, $doc:expr;)*) => {
            $(#[doc = $doc] pub const $name: $ty = $ty($code);)*
            /// The name of one of these codes.
            pub fn $fn(c: $ty) -> Option<&'static str> {
                match c.0 {
                    $($code => Some(stringify!($name)),)*
                    _ => None,
                }
            }
            /// Every code with its name and meaning.
            pub const $all: &[($ty, &str, &str)] = &[$(($name, stringify!($name), $doc),)*];
        };
    }

    table! {
        Reason, reason_name, REASONS;
        BOND_TOO_SMALL = 100, "Unbond of more than the payer's bonded stake.";
        NOTHING_TO_WITHDRAW = 101, "No unbonding entry of the payer has matured.";
        TOO_MANY_UNBONDINGS = 102, "The payer has UNBONDINGS_MAX entries unbonding already.";
        UNKNOWN_PROPOSAL = 600, "No proposal has this id.";
        PROPOSAL_CLOSED = 601, "The proposal no longer takes deposits (decided or expired).";
        NOT_IN_VOTING = 602, "The proposal is not in its voting period (not yet, or over: late votes are refused).";
        NO_STAKE = 603, "The voter had no bonded stake at the start of the voting period.";
        TOO_MANY_PROPOSALS = 604, "PROPOSALS_ACTIVE_MAX proposals are open already.";
        BAD_PARAMS = 605, "A parameter change is out of range (percent above 100, zero period, gas target above the block gas limit).";
        ACTIVATION_TOO_EARLY = 606, "The activation height is not after the latest block the voting could end in.";
        BAD_PROPOSAL = 607, "An empty or too long title or text, or a change of nothing.";
        TOO_MANY_DEPOSITORS = 608, "The proposal has DEPOSITORS_MAX depositors already.";
        UNKNOWN_SCHEDULE = 620, "No vesting schedule has this id.";
        NOT_BENEFICIARY = 621, "Only the schedule's beneficiary may claim.";
        NOTHING_VESTED = 622, "Nothing vested that was not claimed already.";
        NOT_CLAWBACK_AUTHORITY = 623, "Only the schedule's clawback authority may claw back (and it has none).";
        BAD_SCHEDULE = 624, "A zero or longer than five years duration, or a cliff after the end.";
        NOTHING_TO_CLAW_BACK = 625, "Nothing is unvested (vested in full, or clawed back already).";
    }

    table! {
        Cause, cause_name, CAUSES;
        BOND = 100, "PLUME bonded (to the stake escrow).";
        WITHDRAW = 101, "Unbonded PLUME paid back from the stake escrow.";
        DEPOSIT = 600, "A proposal deposit (to the deposit escrow).";
        DEPOSIT_REFUND = 601, "A deposit returned: the proposal reached a decision.";
        DEPOSIT_BURN = 602, "A deposit burned: expired, below quorum or vetoed.";
        TREASURY_SPEND = 603, "A treasury payment of a passed proposal.";
        VESTING_LOCK = 620, "PLUME locked in a vesting schedule (to the vesting escrow).";
        VESTING_RELEASE = 621, "Vested PLUME claimed by the beneficiary.";
        VESTING_CLAWBACK = 622, "Unvested PLUME taken back by the clawback authority.";
        GRANT_TRANCHE = 642, "A milestone grant's tranche, reserved (treasury to grant escrow), paid or returned.";
        REVENUE_SHARE = 640, "An institution's revenue share, from the fee pool.";
        REVENUE_DUST = 641, "Rounding dust of the revenue shares, from the fee pool to the treasury.";
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn codes_are_in_their_ranges_and_distinct() {
            let mut seen = std::collections::BTreeSet::new();
            for (r, n, _) in REASONS {
                assert!(
                    (100..200).contains(&r.0) || (600..700).contains(&r.0),
                    "{n}"
                );
                assert!(seen.insert(r.0), "{n} reuses {}", r.0);
                assert!(r.core_name().is_none());
                assert_eq!(reason_name(*r), Some(*n));
            }
            for (c, n, _) in CAUSES {
                assert!(c.core_name().is_none(), "{n}");
                assert_eq!(cause_name(*c), Some(*n));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::ModuleCall;

    #[test]
    fn calls_round_trip_and_stateless_rules_hold() {
        let p = GovCall::Propose {
            title: "burn 40".into(),
            kind: ProposalKind::ParamChange {
                change: ParamChange {
                    fee_burn_percent: Some(40),
                    ..Default::default()
                },
                activation_height: 100,
            },
            deposit: 5,
        };
        assert_eq!(GovCall::decode(&p.encode()), Ok(p));
        let bad = GovCall::Propose {
            title: "x".into(),
            kind: ProposalKind::ParamChange {
                change: ParamChange {
                    fee_burn_percent: Some(101),
                    ..Default::default()
                },
                activation_height: 100,
            },
            deposit: 5,
        };
        assert_eq!(GovCall::decode(&bad.encode()), Err(codes::BAD_PARAMS));
        let empty = GovCall::Propose {
            title: "x".into(),
            kind: ProposalKind::ParamChange {
                change: ParamChange::default(),
                activation_height: 100,
            },
            deposit: 5,
        };
        assert_eq!(GovCall::decode(&empty.encode()), Err(codes::BAD_PROPOSAL));
        assert_eq!(
            StakeCall::decode(&StakeCall::Bond { amount: 0 }.encode()),
            Err(Reason::ZeroAmount)
        );
        assert_eq!(StakeCall::decode(&[1, 2, 3]), Err(Reason::MalformedCall));
        assert!(GovParams::default().validate().is_ok());
        let up = |v: &str| GovCall::Propose {
            title: "upgrade".into(),
            kind: ProposalKind::SoftwareUpgrade {
                version: v.into(),
                height: 100,
            },
            deposit: 5,
        };
        assert!(GovCall::decode(&up("0.2.0").encode()).is_ok());
        assert_eq!(
            GovCall::decode(&up("two").encode()),
            Err(codes::BAD_PROPOSAL)
        );
        assert_eq!(
            GovCall::decode(&up("1.2").encode()),
            Err(codes::BAD_PROPOSAL)
        );
    }

    #[test]
    fn versions_compare_by_major_minor_patch() {
        assert!(version_satisfies("0.2.0", "0.2.0"));
        assert!(version_satisfies("0.10.0", "0.9.9"));
        assert!(version_satisfies("1.0.0-rc1", "1.0.0"));
        assert!(!version_satisfies("0.1.9", "0.2.0"));
        assert!(!version_satisfies("x", "0.2.0"));
        assert!(!version_satisfies("0.2.0", "0.2"));
        assert_eq!(parse_version("1.2.3+build"), Some([1, 2, 3]));
        assert_eq!(parse_version("1.2.3.4"), None);
    }
}
