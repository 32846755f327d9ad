//! The governance module (id 7): proposals, deposits, stake-weighted votes,
//! their tally at the end of the voting period, and the parameters in state.
//!
//! Records (keys from [`module_key`] under this module's id):
//! - `proposal/<id>`: a [`Proposal`] (kind, status, deposits, tally);
//! - `vote/<id>/<account key>`: a voter's [`VoteRecord`];
//! - `active`: [`Active`], the open proposals and the last block of their
//!   current period (at most [`PROPOSALS_ACTIVE_MAX`]);
//! - `params`: [`ParamsRecord`], the parameter changes passed so far (kept
//!   and read by `params.rs`);
//! - `upgrade`: the last [`UpgradePlan`] passed (version, height).
//!
//! Rules:
//! - A proposal is governed by the parameters in force when it was
//!   submitted (minimum deposit, periods, quorum, threshold, veto).
//! - Deposits go to the deposit escrow. The block in which the deposit
//!   reaches the minimum is the first voting block `S`; the deposit period
//!   is `deposit_period_blocks` blocks counting the submission block, the
//!   voting period `voting_period_blocks` blocks counting `S`.
//! - A vote weighs the voter's bonded stake at the start of block `S`
//!   (checkpoints of the stake module); quorum is counted against the total
//!   bonded at the start of `S`. Stake bonded later does not count, and
//!   moving stake does not count it twice. A vote again replaces the
//!   voter's earlier vote. Votes outside the voting period are refused.
//! - At the end of a proposal's last deposit block without the minimum, or
//!   of its last voting block, the executor decides it (in block order,
//!   after every transaction of the block): expired (no voting), below
//!   quorum or vetoed (veto above `veto_percent` of the votes): deposits
//!   burned; otherwise deposits refunded, and it passes when yes is above
//!   `threshold_percent` of yes + no + veto.
//! - A passed parameter change applies from its activation height, which
//!   must be after the latest block its voting could end in: every node
//!   reads it from the block-start state of that height. A passed treasury
//!   spend pays at once, or is recorded as not executed if the treasury
//!   cannot pay. A passed software upgrade replaces the upgrade plan: the
//!   node halts before executing its height unless its software is at
//!   least that version (the node's rule, `node/src/roles/exec.rs`).

pub use super::params::{effective_gas_limit, effective_params, params_key, ParamsRecord};
use super::stake::{ledger_stake, ledger_total};
use super::{module_key, Call, CallResult, Ledger, Module, QueryError, StateRead, TxInfo};
use crate::state::account_key;
use crate::{ExecError, Params};
use plume_protocol::calls::ModuleCall;
use plume_protocol::governance::{
    codes, deposit_escrow, proposal_id, GovCall, ParamChange, ProposalKind, VoteOption,
    MODULE_GOVERNANCE,
};
use plume_protocol::tx::NATIVE_ASSET;
use plume_protocol::{Cause, Event, Reason};
use plume_storage::StateKey;

/// Gas of a proposal (besides the envelope's).
pub const GAS_PROPOSE: u64 = 50_000;
/// Gas of a deposit or a vote.
pub const GAS_VOTE: u64 = 20_000;
/// Most proposals open (in deposit or voting) at once.
pub const PROPOSALS_ACTIVE_MAX: usize = 32;
/// Most depositors of one proposal.
pub const DEPOSITORS_MAX: usize = 64;

/// Where a proposal is.
#[derive(
    rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq,
)]
pub enum ProposalStatus {
    /// Waiting for its minimum deposit.
    DepositPeriod,
    /// Taking votes.
    Voting,
    /// Passed and executed (a parameter change: scheduled).
    Passed,
    /// Passed, but could not be executed (treasury short, too many
    /// scheduled changes).
    PassedNotExecuted,
    /// Quorum met, threshold not: deposits refunded.
    Rejected,
    /// Below quorum: deposits burned.
    RejectedNoQuorum,
    /// Vetoed: deposits burned.
    Vetoed,
    /// Never reached voting: deposits burned.
    Expired,
}

impl ProposalStatus {
    /// Lower-case name (API, CLI).
    pub fn name(self) -> &'static str {
        match self {
            ProposalStatus::DepositPeriod => "deposit_period",
            ProposalStatus::Voting => "voting",
            ProposalStatus::Passed => "passed",
            ProposalStatus::PassedNotExecuted => "passed_not_executed",
            ProposalStatus::Rejected => "rejected",
            ProposalStatus::RejectedNoQuorum => "rejected_no_quorum",
            ProposalStatus::Vetoed => "vetoed",
            ProposalStatus::Expired => "expired",
        }
    }
}

/// A proposal.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Id.
    pub id: [u8; 32],
    /// Who submitted it.
    pub proposer: [u8; 32],
    /// Title.
    pub title: String,
    /// What it does.
    pub kind: ProposalKind,
    /// Where it is.
    pub status: ProposalStatus,
    /// Submission block.
    pub submit_height: u64,
    /// Last block to reach the minimum deposit.
    pub deposit_end: u64,
    /// First voting block (0: not yet).
    pub voting_start: u64,
    /// Last voting block (0: not yet).
    pub voting_end: u64,
    /// Block it was decided in (0: open).
    pub decided_height: u64,
    /// Minimum deposit (from the submission's parameters).
    pub min_deposit: u128,
    /// Voting period (from the submission's parameters).
    pub voting_period_blocks: u64,
    /// Quorum percent (from the submission's parameters).
    pub quorum_percent: u8,
    /// Threshold percent (from the submission's parameters).
    pub threshold_percent: u8,
    /// Veto percent (from the submission's parameters).
    pub veto_percent: u8,
    /// Depositors and amounts.
    pub deposits: Vec<([u8; 32], u128)>,
    /// Sum of deposits.
    pub total_deposit: u128,
    /// Total bonded at the start of the first voting block.
    pub bonded_at_start: u128,
    /// `[yes, no, abstain, veto]` stake.
    pub tally: [u128; 4],
}
rkyv_record!(Proposal, "proposal");

/// One voter's vote.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteRecord {
    /// The option.
    pub option: VoteOption,
    /// Its weight.
    pub weight: u128,
}
rkyv_record!(VoteRecord, "vote");

/// Open proposals and the last block of their current period.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Active {
    /// `(proposal, deadline)` in submission order.
    pub entries: Vec<([u8; 32], u64)>,
}
rkyv_record!(Active, "active proposals");


/// The software upgrade governance passed last.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UpgradePlan {
    /// Required version from `height` on.
    pub version: String,
    /// First block only that version (or later) executes.
    pub height: u64,
    /// The proposal that passed it.
    pub proposal: [u8; 32],
}
rkyv_record!(UpgradePlan, "upgrade plan");

/// A milestone grant.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Recipient.
    pub to: [u8; 32],
    /// The tranches.
    pub tranches: Vec<u128>,
    /// How many were paid.
    pub paid: u32,
    /// Cancelled (the rest went back to the treasury).
    pub cancelled: bool,
}
rkyv_record!(Grant, "milestone grant");

/// Key of a milestone grant.
pub fn grant_key(id: &[u8; 32]) -> StateKey {
    module_key(MODULE_GOVERNANCE, &[b"grant", id])
}

fn ledger_grant(l: &mut dyn Ledger, id: &[u8; 32]) -> Result<Option<Grant>, ExecError> {
    l.record(&grant_key(id))?
        .map(|b| Grant::decode(&b))
        .transpose()
}

/// Move `amount` between two accounts as a block event; `false` (nothing
/// changed) if `from` is short.
fn move_plume(
    l: &mut dyn Ledger,
    from: &[u8; 32],
    to: &[u8; 32],
    amount: u128,
    cause: Cause,
    events: &mut Vec<Event>,
) -> Result<bool, ExecError> {
    let mut ev = Vec::new();
    if l.debit(from, &NATIVE_ASSET, amount, cause, &mut ev)?.is_err() {
        return Ok(false);
    }
    if l.credit(to, &NATIVE_ASSET, amount, cause, &mut ev)?.is_err() {
        expect_ok(l.credit(from, &NATIVE_ASSET, amount, cause, &mut Vec::new())?);
        return Ok(false);
    }
    events.extend(ev);
    Ok(true)
}

/// Key of the upgrade plan.
pub fn upgrade_key() -> StateKey {
    module_key(MODULE_GOVERNANCE, &[b"upgrade"])
}

/// The software upgrade in force or scheduled, if governance passed one.
pub fn upgrade_plan<B: StateRead + ?Sized>(state: &B) -> Result<Option<UpgradePlan>, ExecError> {
    state
        .get(&upgrade_key())?
        .map(|b| UpgradePlan::decode(&b))
        .transpose()
}

/// Key of a proposal.
pub fn proposal_key(id: &[u8; 32]) -> StateKey {
    module_key(MODULE_GOVERNANCE, &[b"proposal", id])
}

/// Key of a voter's vote on a proposal.
pub fn vote_key(id: &[u8; 32], voter: &[u8; 32]) -> StateKey {
    module_key(MODULE_GOVERNANCE, &[b"vote", id, &account_key(voter)])
}

/// Key of the open-proposal list.
pub fn active_key() -> StateKey {
    module_key(MODULE_GOVERNANCE, &[b"active"])
}

fn ledger_proposal(l: &mut dyn Ledger, id: &[u8; 32]) -> Result<Option<Proposal>, ExecError> {
    l.record(&proposal_key(id))?
        .map(|b| Proposal::decode(&b))
        .transpose()
}

fn ledger_active(l: &mut dyn Ledger) -> Result<Active, ExecError> {
    l.record(&active_key())?
        .map_or(Ok(Active::default()), |b| Active::decode(&b))
}

fn set_active(l: &mut dyn Ledger, a: &Active) {
    l.set_record(&active_key(), (!a.entries.is_empty()).then(|| a.encode()));
}

/// `a * 100 >= b * p` (or `>` when `strict`) without overflow.
fn percent_cmp(a: u128, b: u128, p: u8, strict: bool) -> bool {
    // 192-bit products as (high, low 64 bits).
    fn mul(v: u128, m: u128) -> (u128, u64) {
        let lo = (v & u64::MAX as u128) * m;
        ((v >> 64) * m + (lo >> 64), lo as u64)
    }
    let l = mul(a, 100);
    let r = mul(b, p as u128);
    if strict {
        l > r
    } else {
        l >= r
    }
}

/// Start voting in block `height`.
fn start_voting(l: &mut dyn Ledger, p: &mut Proposal, height: u64) -> Result<(), ExecError> {
    let total = ledger_total(l)?;
    p.status = ProposalStatus::Voting;
    p.voting_start = height;
    p.voting_end = height.saturating_add(p.voting_period_blocks - 1);
    p.bonded_at_start = total.at_start_of(height);
    Ok(())
}

/// The governance module (id [`MODULE_GOVERNANCE`]).
#[derive(Debug, Clone, Copy)]
pub struct Governance;

impl Module for Governance {
    fn id(&self) -> u16 {
        MODULE_GOVERNANCE
    }
    fn name(&self) -> &'static str {
        "governance"
    }
    fn decode(&self, call: &[u8]) -> Result<Box<dyn Call>, Reason> {
        Ok(Box::new(GovCall::decode(call)?))
    }
    fn reason_name(&self, r: Reason) -> Option<&'static str> {
        codes::reason_name(r)
    }
    fn cause_name(&self, c: Cause) -> Option<&'static str> {
        codes::cause_name(c)
    }
    fn queries(&self) -> &'static [&'static str] {
        &["proposal", "proposals", "vote", "params", "upgrade", "revenue", "grant"]
    }
    fn query(
        &self,
        state: &dyn StateRead,
        method: &str,
        args: &[String],
    ) -> Result<serde_json::Value, QueryError> {
        match method {
            "proposal" => {
                let id = super::hex32_arg(args, 0, "proposal")?;
                Ok(match state.get(&proposal_key(&id))? {
                    Some(b) => proposal_json(&Proposal::decode(&b)?),
                    None => serde_json::Value::Null,
                })
            }
            "proposals" => {
                let active = state
                    .get(&active_key())?
                    .map_or(Ok(Active::default()), |b| Active::decode(&b))?;
                let mut out = Vec::new();
                for (id, _) in &active.entries {
                    if let Some(b) = state.get(&proposal_key(id))? {
                        out.push(proposal_json(&Proposal::decode(&b)?));
                    }
                }
                Ok(serde_json::Value::Array(out))
            }
            "vote" => {
                let id = super::hex32_arg(args, 0, "proposal")?;
                let voter = super::hex32_arg(args, 1, "voter")?;
                Ok(match state.get(&vote_key(&id, &voter))? {
                    Some(b) => {
                        let v = VoteRecord::decode(&b)?;
                        serde_json::json!({
                            "option": format!("{:?}", v.option).to_lowercase(),
                            "weight": v.weight.to_string(),
                        })
                    }
                    None => serde_json::Value::Null,
                })
            }
            "params" => {
                let rec = state
                    .get(&params_key())?
                    .map_or(Ok(ParamsRecord::default()), |b| ParamsRecord::decode(&b))?;
                Ok(serde_json::json!({
                    "changes_in_force": change_json(&rec.folded),
                    "scheduled": rec.scheduled.iter().map(|(h, c)| serde_json::json!({
                        "activation_height": h, "change": change_json(c)
                    })).collect::<Vec<_>>(),
                }))
            }
            "grant" => {
                let id = super::hex32_arg(args, 0, "grant")?;
                Ok(match state.get(&grant_key(&id))? {
                    Some(b) => {
                        let g = Grant::decode(&b)?;
                        serde_json::json!({
                            "to": hex::encode(g.to),
                            "tranches": g.tranches.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                            "paid": g.paid,
                            "cancelled": g.cancelled,
                        })
                    }
                    None => serde_json::Value::Null,
                })
            }
            "revenue" => {
                let t = super::revenue::read_tally(state)?;
                let p = super::revenue::read_program(state)?;
                Ok(serde_json::json!({
                    "program": p.map(|p| serde_json::json!({
                        "share_percent": p.share_percent,
                        "epoch_blocks": p.epoch_blocks,
                        "institutions": p.institutions.iter().map(|(i, a)| serde_json::json!({
                            "identity": hex::encode(i), "payout": hex::encode(a)
                        })).collect::<Vec<_>>(),
                    })),
                    "epoch": {
                        "total_fees": t.total_fees.to_string(),
                        "pool_received": t.pool_received.to_string(),
                        "per_institution": t.per_institution.iter().map(|(i, f)| serde_json::json!({
                            "identity": hex::encode(i), "fees": f.to_string()
                        })).collect::<Vec<_>>(),
                    },
                }))
            }
            "upgrade" => Ok(match upgrade_plan(state)? {
                Some(u) => serde_json::json!({
                    "version": u.version,
                    "height": u.height,
                    "proposal": hex::encode(u.proposal),
                }),
                None => serde_json::Value::Null,
            }),
            _ => Err(QueryError::Unknown(format!("governance.{method}"))),
        }
    }
}

fn change_json(c: &ParamChange) -> serde_json::Value {
    serde_json::to_value(c).unwrap_or(serde_json::Value::Null)
}

fn proposal_json(p: &Proposal) -> serde_json::Value {
    let kind = match &p.kind {
        ProposalKind::Text { text } => serde_json::json!({ "text": text }),
        ProposalKind::ParamChange {
            change,
            activation_height,
        } => serde_json::json!({
            "param_change": change_json(change),
            "activation_height": activation_height,
        }),
        ProposalKind::TreasurySpend { to, amount } => serde_json::json!({
            "treasury_spend": { "to": hex::encode(to), "amount": amount.to_string() }
        }),
        ProposalKind::SoftwareUpgrade { version, height } => serde_json::json!({
            "software_upgrade": { "version": version, "height": height }
        }),
        ProposalKind::MilestoneGrant { to, tranches } => serde_json::json!({
            "milestone_grant": {
                "to": hex::encode(to),
                "tranches": tranches.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                "grant": hex::encode(p.id),
            }
        }),
        ProposalKind::Execute { module, call } => serde_json::json!({
            "execute": { "module": module, "call": hex::encode(call) }
        }),
        ProposalKind::ReleaseTranche { grant } => serde_json::json!({
            "release_tranche": { "grant": hex::encode(grant) }
        }),
        ProposalKind::CancelGrant { grant } => serde_json::json!({
            "cancel_grant": { "grant": hex::encode(grant) }
        }),
        ProposalKind::RevenueProgram {
            share_percent,
            epoch_blocks,
            institutions,
        } => serde_json::json!({
            "revenue_program": {
                "share_percent": share_percent, "epoch_blocks": epoch_blocks,
                "institutions": institutions.iter().map(|(i, p)| serde_json::json!({
                    "identity": hex::encode(i), "payout": hex::encode(p)
                })).collect::<Vec<_>>(),
            }
        }),
        ProposalKind::VestedGrant {
            to,
            amount,
            cliff_ms,
            duration_ms,
        } => serde_json::json!({
            "vested_grant": {
                "to": hex::encode(to), "amount": amount.to_string(),
                "cliff_ms": cliff_ms, "duration_ms": duration_ms,
                "schedule": hex::encode(p.id),
            }
        }),
    };
    serde_json::json!({
        "id": hex::encode(p.id),
        "proposer": hex::encode(p.proposer),
        "title": p.title,
        "kind": kind,
        "status": p.status.name(),
        "submit_height": p.submit_height,
        "deposit_end": p.deposit_end,
        "voting_start": p.voting_start,
        "voting_end": p.voting_end,
        "decided_height": p.decided_height,
        "min_deposit": p.min_deposit.to_string(),
        "total_deposit": p.total_deposit.to_string(),
        "bonded_at_start": p.bonded_at_start.to_string(),
        "quorum_percent": p.quorum_percent,
        "threshold_percent": p.threshold_percent,
        "veto_percent": p.veto_percent,
        "tally": {
            "yes": p.tally[0].to_string(),
            "no": p.tally[1].to_string(),
            "abstain": p.tally[2].to_string(),
            "veto": p.tally[3].to_string(),
        },
    })
}

impl Call for GovCall {
    fn gas(&self) -> u64 {
        match self {
            GovCall::Propose { .. } => GAS_PROPOSE,
            _ => GAS_VOTE,
        }
    }
    fn touched(&self, tx: &TxInfo<'_>, out: &mut Vec<[u8; 32]>) {
        match self {
            GovCall::Propose { .. } => {
                out.push(proposal_key(&proposal_id(tx.payer, tx.sequence)));
                out.push(active_key());
                out.push(super::stake::total_key());
                out.push(account_key(&deposit_escrow()));
            }
            GovCall::Deposit { proposal, .. } => {
                out.push(proposal_key(proposal));
                out.push(active_key());
                out.push(super::stake::total_key());
                out.push(account_key(&deposit_escrow()));
            }
            GovCall::Vote { proposal, .. } => {
                out.push(proposal_key(proposal));
                out.push(vote_key(proposal, tx.payer));
                out.push(super::stake::stake_key(tx.payer));
            }
        }
    }
    fn apply(&self, tx: &TxInfo<'_>, l: &mut dyn Ledger, events: &mut Vec<Event>) -> CallResult {
        match self {
            GovCall::Propose {
                title,
                kind,
                deposit,
            } => {
                let gov = &tx.params.gov;
                let id = proposal_id(tx.payer, tx.sequence);
                let deposit_end = tx.height.saturating_add(gov.deposit_period_blocks - 1);
                let latest_end = deposit_end.saturating_add(gov.voting_period_blocks - 1);
                match kind {
                    ProposalKind::ParamChange {
                        change,
                        activation_height,
                    } => {
                        let limit = change.block_gas_limit.unwrap_or(tx.params.block_gas_limit);
                        let target = change.block_gas_target.unwrap_or(tx.params.block_gas_target);
                        if target > limit {
                            return Ok(Err(codes::BAD_PARAMS));
                        }
                        if *activation_height <= latest_end {
                            return Ok(Err(codes::ACTIVATION_TOO_EARLY));
                        }
                    }
                    ProposalKind::SoftwareUpgrade { height, .. } => {
                        if *height <= latest_end {
                            return Ok(Err(codes::ACTIVATION_TOO_EARLY));
                        }
                    }
                    ProposalKind::Text { .. }
                    | ProposalKind::TreasurySpend { .. }
                    | ProposalKind::VestedGrant { .. }
                    | ProposalKind::MilestoneGrant { .. }
                    | ProposalKind::ReleaseTranche { .. }
                    | ProposalKind::CancelGrant { .. }
                    | ProposalKind::Execute { .. }
                    | ProposalKind::RevenueProgram { .. } => {}
                }
                let mut active = ledger_active(l)?;
                if active.entries.len() >= PROPOSALS_ACTIVE_MAX {
                    return Ok(Err(codes::TOO_MANY_PROPOSALS));
                }
                // The id is fresh: (payer, sequence) is used once.
                let _ = ledger_proposal(l, &id)?;
                let escrow = deposit_escrow();
                tri!(l.debit(tx.payer, &NATIVE_ASSET, *deposit, codes::DEPOSIT, events));
                tri!(l.credit(&escrow, &NATIVE_ASSET, *deposit, codes::DEPOSIT, events));
                let mut p = Proposal {
                    id,
                    proposer: *tx.payer,
                    title: title.clone(),
                    kind: kind.clone(),
                    status: ProposalStatus::DepositPeriod,
                    submit_height: tx.height,
                    deposit_end,
                    voting_start: 0,
                    voting_end: 0,
                    decided_height: 0,
                    min_deposit: gov.min_deposit,
                    voting_period_blocks: gov.voting_period_blocks,
                    quorum_percent: gov.quorum_percent,
                    threshold_percent: gov.threshold_percent,
                    veto_percent: gov.veto_percent,
                    deposits: vec![(*tx.payer, *deposit)],
                    total_deposit: *deposit,
                    bonded_at_start: 0,
                    tally: [0; 4],
                };
                let mut deadline = deposit_end;
                if p.total_deposit >= p.min_deposit {
                    start_voting(l, &mut p, tx.height)?;
                    deadline = p.voting_end;
                }
                active.entries.push((id, deadline));
                set_active(l, &active);
                l.set_record(&proposal_key(&id), Some(p.encode()));
            }
            GovCall::Deposit { proposal, amount } => {
                let Some(mut p) = ledger_proposal(l, proposal)? else {
                    return Ok(Err(codes::UNKNOWN_PROPOSAL));
                };
                if !matches!(
                    p.status,
                    ProposalStatus::DepositPeriod | ProposalStatus::Voting
                ) {
                    return Ok(Err(codes::PROPOSAL_CLOSED));
                }
                let slot = p.deposits.iter().position(|d| d.0 == *tx.payer);
                if slot.is_none() && p.deposits.len() >= DEPOSITORS_MAX {
                    return Ok(Err(codes::TOO_MANY_DEPOSITORS));
                }
                let escrow = deposit_escrow();
                tri!(l.debit(tx.payer, &NATIVE_ASSET, *amount, codes::DEPOSIT, events));
                tri!(l.credit(&escrow, &NATIVE_ASSET, *amount, codes::DEPOSIT, events));
                match slot {
                    // Cannot overflow: deposits are part of the supply.
                    Some(i) => p.deposits[i].1 = p.deposits[i].1.saturating_add(*amount),
                    None => p.deposits.push((*tx.payer, *amount)),
                }
                p.total_deposit = p.total_deposit.saturating_add(*amount);
                if p.status == ProposalStatus::DepositPeriod && p.total_deposit >= p.min_deposit {
                    start_voting(l, &mut p, tx.height)?;
                    let mut active = ledger_active(l)?;
                    if let Some(e) = active.entries.iter_mut().find(|e| e.0 == *proposal) {
                        e.1 = p.voting_end;
                    }
                    set_active(l, &active);
                }
                l.set_record(&proposal_key(proposal), Some(p.encode()));
            }
            GovCall::Vote { proposal, option } => {
                let Some(mut p) = ledger_proposal(l, proposal)? else {
                    return Ok(Err(codes::UNKNOWN_PROPOSAL));
                };
                if p.status != ProposalStatus::Voting
                    || tx.height < p.voting_start
                    || tx.height > p.voting_end
                {
                    return Ok(Err(codes::NOT_IN_VOTING));
                }
                let weight = ledger_stake(l, tx.payer)?.at_start_of(p.voting_start);
                if weight == 0 {
                    return Ok(Err(codes::NO_STAKE));
                }
                let vk = vote_key(proposal, tx.payer);
                if let Some(b) = l.record(&vk)? {
                    let old = VoteRecord::decode(&b)?;
                    let t = &mut p.tally[old.option.index()];
                    *t = t.saturating_sub(old.weight);
                }
                let t = &mut p.tally[option.index()];
                *t = t.saturating_add(weight);
                l.set_record(
                    &vk,
                    Some(
                        VoteRecord {
                            option: *option,
                            weight,
                        }
                        .encode(),
                    ),
                );
                l.set_record(&proposal_key(proposal), Some(p.encode()));
            }
        }
        Ok(Ok(()))
    }
}

/// Return every deposit of `p` to its depositor.
fn refund(l: &mut dyn Ledger, p: &Proposal, events: &mut Vec<Event>) -> Result<(), ExecError> {
    let escrow = deposit_escrow();
    for (who, amount) in &p.deposits {
        expect_ok(l.debit(&escrow, &NATIVE_ASSET, *amount, codes::DEPOSIT_REFUND, events)?);
        expect_ok(l.credit(who, &NATIVE_ASSET, *amount, codes::DEPOSIT_REFUND, events)?);
    }
    Ok(())
}

/// Burn every deposit of `p`; returns the amount burned.
fn burn(l: &mut dyn Ledger, p: &Proposal, events: &mut Vec<Event>) -> Result<u128, ExecError> {
    let escrow = deposit_escrow();
    expect_ok(l.debit(
        &escrow,
        &NATIVE_ASSET,
        p.total_deposit,
        codes::DEPOSIT_BURN,
        events,
    )?);
    Ok(p.total_deposit)
}

/// The escrow holds every deposit it records: anything else is a bug.
fn expect_ok(r: Result<(), Reason>) {
    assert_eq!(r, Ok(()), "governance escrow out of step with its proposals");
}

/// End of block `height`: decide every open proposal whose period ends in
/// it. Balance changes go to `events`; returns the PLUME burned.
/// One state read when nothing is due.
pub(crate) fn end_block<S: plume_storage::AuthenticatedState + ?Sized>(
    ov: &mut crate::state::Overlay<'_, S>,
    registry: &super::Registry,
    params: &Params,
    height: u64,
    time_ms: u64,
    events: &mut Vec<Event>,
) -> Result<u128, ExecError> {
    let l: &mut dyn Ledger = ov;
    let mut active = ledger_active(l)?;
    if active.entries.iter().all(|e| e.1 > height) {
        return Ok(0);
    }
    let mut burned = 0u128;
    let due: Vec<[u8; 32]> = active
        .entries
        .iter()
        .filter(|e| e.1 <= height)
        .map(|e| e.0)
        .collect();
    active.entries.retain(|e| e.1 > height);
    set_active(l, &active);
    for id in due {
        let l: &mut dyn Ledger = ov;
        let Some(mut p) = ledger_proposal(l, &id)? else {
            return Err(ExecError::CorruptState("active proposal without a record"));
        };
        p.decided_height = height;
        p.status = match p.status {
            ProposalStatus::DepositPeriod => {
                burned += burn(l, &p, events)?;
                ProposalStatus::Expired
            }
            ProposalStatus::Voting => {
                let [yes, no, abstain, veto] = p.tally;
                let votes = yes.saturating_add(no).saturating_add(abstain).saturating_add(veto);
                let against = yes.saturating_add(no).saturating_add(veto);
                if p.bonded_at_start == 0
                    || votes == 0
                    || !percent_cmp(votes, p.bonded_at_start, p.quorum_percent, false)
                {
                    burned += burn(l, &p, events)?;
                    ProposalStatus::RejectedNoQuorum
                } else if percent_cmp(veto, votes, p.veto_percent, true) {
                    burned += burn(l, &p, events)?;
                    ProposalStatus::Vetoed
                } else {
                    refund(l, &p, events)?;
                    if against > 0 && percent_cmp(yes, against, p.threshold_percent, true) {
                        let ctx = Decided {
                            registry,
                            params,
                            height,
                            time_ms,
                        };
                        execute(ov, &ctx, &p, events)?
                    } else {
                        ProposalStatus::Rejected
                    }
                }
            }
            _ => return Err(ExecError::CorruptState("decided proposal still active")),
        };
        let l: &mut dyn Ledger = ov;
        l.set_record(&proposal_key(&id), Some(p.encode()));
    }
    Ok(burned)
}

/// What deciding a proposal needs besides the ledger.
struct Decided<'a> {
    registry: &'a super::Registry,
    params: &'a Params,
    height: u64,
    time_ms: u64,
}

fn execute<S: plume_storage::AuthenticatedState + ?Sized>(
    ov: &mut crate::state::Overlay<'_, S>,
    cx: &Decided<'_>,
    p: &Proposal,
    events: &mut Vec<Event>,
) -> Result<ProposalStatus, ExecError> {
    let (params, height, time_ms) = (cx.params, cx.height, cx.time_ms);
    if let ProposalKind::Execute { module, call } = &p.kind {
        let Ok(call) = cx.registry.decode(*module, call) else {
            return Ok(ProposalStatus::PassedNotExecuted);
        };
        let gov = plume_crypto::ed25519::Address(plume_protocol::governance::governance_account());
        let signers = [gov];
        let info = TxInfo {
            hash: &plume_crypto::Digest(p.id),
            payer: &gov.0,
            signers: &signers,
            sequence: 0,
            height,
            time_ms,
            chain_id: &params.chain_id,
            params,
        };
        if call.authorize(&info).is_err() {
            return Ok(ProposalStatus::PassedNotExecuted);
        }
        let mark = ov.mark();
        let mut ev = Vec::new();
        let l: &mut dyn Ledger = ov;
        return Ok(match call.apply(&info, l, &mut ev)? {
            Ok(()) => {
                events.extend(ev);
                ProposalStatus::Passed
            }
            Err(_) => {
                ov.rollback(mark);
                ProposalStatus::PassedNotExecuted
            }
        });
    }
    let l: &mut dyn Ledger = ov;
    match &p.kind {
        ProposalKind::Execute { .. } => unreachable!("handled above"),
        ProposalKind::VestedGrant {
            to,
            amount,
            cliff_ms,
            duration_ms,
        } => {
            let made = super::vesting::create_from_treasury(
                l,
                &params.treasury.0,
                p.id,
                *to,
                *amount,
                time_ms,
                *cliff_ms,
                *duration_ms,
                events,
            )?;
            Ok(if made {
                ProposalStatus::Passed
            } else {
                ProposalStatus::PassedNotExecuted
            })
        }
        ProposalKind::Text { .. } => Ok(ProposalStatus::Passed),
        ProposalKind::MilestoneGrant { to, tranches } => {
            let total: u128 = tranches.iter().sum();
            let treasury = params.treasury.0;
            let escrow = plume_protocol::governance::grant_escrow();
            if !move_plume(l, &treasury, &escrow, total, codes::GRANT_TRANCHE, events)? {
                return Ok(ProposalStatus::PassedNotExecuted);
            }
            let _ = ledger_grant(l, &p.id)?;
            let g = Grant {
                to: *to,
                tranches: tranches.clone(),
                paid: 0,
                cancelled: false,
            };
            l.set_record(&grant_key(&p.id), Some(g.encode()));
            Ok(ProposalStatus::Passed)
        }
        ProposalKind::ReleaseTranche { grant } | ProposalKind::CancelGrant { grant } => {
            let cancel = matches!(p.kind, ProposalKind::CancelGrant { .. });
            let Some(mut g) = ledger_grant(l, grant)? else {
                return Ok(ProposalStatus::PassedNotExecuted);
            };
            let next = g.paid as usize;
            if g.cancelled || next >= g.tranches.len() {
                return Ok(ProposalStatus::PassedNotExecuted);
            }
            let escrow = plume_protocol::governance::grant_escrow();
            let (to, amount) = if cancel {
                g.cancelled = true;
                (params.treasury.0, g.tranches[next..].iter().sum::<u128>())
            } else {
                g.paid += 1;
                (g.to, g.tranches[next])
            };
            // The escrow holds every unpaid tranche it recorded.
            let moved = move_plume(l, &escrow, &to, amount, codes::GRANT_TRANCHE, events)?;
            assert!(moved, "grant escrow out of step with its grants");
            l.set_record(&grant_key(grant), Some(g.encode()));
            Ok(ProposalStatus::Passed)
        }
        ProposalKind::RevenueProgram {
            share_percent,
            epoch_blocks,
            institutions,
        } => {
            super::revenue::set_program(
                l,
                &super::revenue::Program {
                    share_percent: *share_percent,
                    epoch_blocks: *epoch_blocks,
                    institutions: institutions.clone(),
                },
            )?;
            Ok(ProposalStatus::Passed)
        }
        ProposalKind::SoftwareUpgrade { version, height } => {
            // The last one passed replaces an earlier plan.
            let _ = l.record(&upgrade_key())?;
            let plan = UpgradePlan {
                version: version.clone(),
                height: *height,
                proposal: p.id,
            };
            l.set_record(&upgrade_key(), Some(plan.encode()));
            Ok(ProposalStatus::Passed)
        }
        ProposalKind::TreasurySpend { to, amount } => {
            let treasury = params.treasury.0;
            let mut mark = Vec::new();
            if l
                .debit(
                    &treasury,
                    &NATIVE_ASSET,
                    *amount,
                    codes::TREASURY_SPEND,
                    &mut mark,
                )?
                .is_err()
            {
                return Ok(ProposalStatus::PassedNotExecuted);
            }
            if l
                .credit(to, &NATIVE_ASSET, *amount, codes::TREASURY_SPEND, &mut mark)?
                .is_err()
            {
                // Undo the debit: the recipient's balance would overflow.
                expect_ok(l.credit(
                    &treasury,
                    &NATIVE_ASSET,
                    *amount,
                    codes::TREASURY_SPEND,
                    &mut Vec::new(),
                )?);
                return Ok(ProposalStatus::PassedNotExecuted);
            }
            events.extend(mark);
            Ok(ProposalStatus::Passed)
        }
        ProposalKind::ParamChange {
            change,
            activation_height,
        } => Ok(
            if super::params::schedule(l, height, *activation_height, change)? {
                ProposalStatus::Passed
            } else {
                ProposalStatus::PassedNotExecuted
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_comparison_is_exact_and_does_not_overflow() {
        assert!(percent_cmp(33, 100, 33, false));
        assert!(!percent_cmp(33, 100, 33, true));
        assert!(percent_cmp(34, 100, 33, true));
        assert!(percent_cmp(u128::MAX, u128::MAX, 100, false));
        assert!(!percent_cmp(u128::MAX - 1, u128::MAX, 100, false));
        assert!(!percent_cmp(u128::MAX / 2, u128::MAX, 50, false));
        assert!(percent_cmp(u128::MAX / 2 + 1, u128::MAX, 50, true));
        assert!(!percent_cmp(0, 1, 1, false));
        assert!(percent_cmp(0, 0, 0, false));
    }
}
