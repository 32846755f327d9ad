//! The vesting module (id 8): PLUME locked for a beneficiary and released
//! linearly by block time after a cliff, with an optional clawback
//! authority.
//!
//! Records (keys from [`module_key`] under this module's id):
//! `schedule/<id>`: a [`Schedule`].
//!
//! Rules:
//! - `Create` moves `total` from the payer to the vesting escrow
//!   ([`vesting_escrow`]); the schedule's times are block times (the
//!   header's `time_ms`, agreed by the validators), the duration at most
//!   five years, the cliff within it.
//! - What has vested at block time `t` is
//!   [`plume_protocol::governance::vested`]: 0 before the cliff,
//!   `floor(total x elapsed / duration)` after, `total` at the end; it never
//!   decreases. The beneficiary's `Claim` pays out what vested and was not
//!   claimed; nothing else leaves the escrow for it.
//! - Unvested PLUME is in the escrow, not in the beneficiary's balance: it
//!   cannot be transferred, and it cannot be staked either (bonding takes
//!   liquid balance only). Claimed PLUME is liquid like any other.
//! - The clawback authority's `Clawback` takes what is unvested at that
//!   block time and freezes the vested amount there: the beneficiary keeps
//!   (and may still claim) what vested, and nothing vests later.
//! - Governance creates schedules from the treasury with a passed
//!   `VestedGrant` ([`create_from_treasury`]).

use super::{module_key, Call, CallResult, Ledger, Module, QueryError, StateRead, TxInfo};
use crate::state::account_key;
use crate::ExecError;
use plume_protocol::calls::ModuleCall;
use plume_protocol::governance::{
    codes, schedule_id, vested, vesting_escrow, VestingCall, MODULE_VESTING,
};
use plume_protocol::tx::NATIVE_ASSET;
use plume_protocol::{Cause, Event, Reason};
use plume_storage::StateKey;

/// Gas of a vesting call (besides the envelope's).
pub const GAS_VESTING: u64 = 20_000;

/// A vesting schedule.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Id.
    pub id: [u8; 32],
    /// Who locked the PLUME (the treasury for a governance grant).
    pub funder: [u8; 32],
    /// Who claims.
    pub beneficiary: [u8; 32],
    /// Locked in all.
    pub total: u128,
    /// Start, block time ms.
    pub start_ms: u64,
    /// Cliff after the start, ms.
    pub cliff_ms: u64,
    /// Duration, ms.
    pub duration_ms: u64,
    /// Clawback authority.
    pub clawback: Option<[u8; 32]>,
    /// Claimed so far.
    pub released: u128,
    /// After a clawback: the vested amount, frozen.
    pub frozen: Option<u128>,
}
rkyv_record!(Schedule, "vesting schedule");

impl Schedule {
    /// Vested at block time `now_ms`.
    pub fn vested_at(&self, now_ms: u64) -> u128 {
        self.frozen.unwrap_or_else(|| {
            vested(
                self.total,
                self.start_ms,
                self.cliff_ms,
                self.duration_ms,
                now_ms,
            )
        })
    }
}

/// Key of a schedule.
pub fn schedule_key(id: &[u8; 32]) -> StateKey {
    module_key(MODULE_VESTING, &[b"schedule", id])
}

fn ledger_schedule(l: &mut dyn Ledger, id: &[u8; 32]) -> Result<Option<Schedule>, ExecError> {
    l.record(&schedule_key(id))?
        .map(|b| Schedule::decode(&b))
        .transpose()
}

/// Create a schedule funded by the treasury (a passed grant): moves
/// `amount` from `treasury` to the escrow. `Ok(false)`: the treasury is
/// short (nothing changed).
#[allow(clippy::too_many_arguments)]
pub fn create_from_treasury(
    l: &mut dyn Ledger,
    treasury: &[u8; 32],
    id: [u8; 32],
    to: [u8; 32],
    amount: u128,
    start_ms: u64,
    cliff_ms: u64,
    duration_ms: u64,
    events: &mut Vec<Event>,
) -> Result<bool, ExecError> {
    let mut ev = Vec::new();
    if l.debit(treasury, &NATIVE_ASSET, amount, codes::VESTING_LOCK, &mut ev)?
        .is_err()
    {
        return Ok(false);
    }
    if l.credit(&vesting_escrow(), &NATIVE_ASSET, amount, codes::VESTING_LOCK, &mut ev)?
        .is_err()
    {
        // The escrow holds part of a supply that fits u128: unreachable,
        // but undo rather than panic.
        let undo = l.credit(treasury, &NATIVE_ASSET, amount, codes::VESTING_LOCK, &mut Vec::new())?;
        assert_eq!(undo, Ok(()), "treasury debit undone");
        return Ok(false);
    }
    let _ = ledger_schedule(l, &id)?;
    let s = Schedule {
        id,
        funder: *treasury,
        beneficiary: to,
        total: amount,
        start_ms,
        cliff_ms,
        duration_ms,
        clawback: None,
        released: 0,
        frozen: None,
    };
    l.set_record(&schedule_key(&id), Some(s.encode()));
    events.extend(ev);
    Ok(true)
}

/// The vesting module (id [`MODULE_VESTING`]).
#[derive(Debug, Clone, Copy)]
pub struct Vesting;

fn schedule_json(s: &Schedule, now_ms: Option<u64>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": hex::encode(s.id),
        "funder": hex::encode(s.funder),
        "beneficiary": hex::encode(s.beneficiary),
        "total": s.total.to_string(),
        "start_ms": s.start_ms,
        "cliff_ms": s.cliff_ms,
        "duration_ms": s.duration_ms,
        "clawback": s.clawback.map(hex::encode),
        "released": s.released.to_string(),
        "clawed_back": s.frozen.is_some(),
    });
    if let Some(t) = now_ms {
        let vested = s.vested_at(t);
        v["at_ms"] = serde_json::json!(t);
        v["vested"] = serde_json::json!(vested.to_string());
        v["claimable"] = serde_json::json!(vested.saturating_sub(s.released).to_string());
    }
    v
}

impl Module for Vesting {
    fn id(&self) -> u16 {
        MODULE_VESTING
    }
    fn name(&self) -> &'static str {
        "vesting"
    }
    fn decode(&self, call: &[u8]) -> Result<Box<dyn Call>, Reason> {
        Ok(Box::new(VestingCall::decode(call)?))
    }
    fn reason_name(&self, r: Reason) -> Option<&'static str> {
        codes::reason_name(r)
    }
    fn cause_name(&self, c: Cause) -> Option<&'static str> {
        codes::cause_name(c)
    }
    fn queries(&self) -> &'static [&'static str] {
        &["schedule"]
    }
    /// `schedule <id> [time_ms]`: the schedule, and with a time what has
    /// vested and what can be claimed then.
    fn query(
        &self,
        state: &dyn StateRead,
        method: &str,
        args: &[String],
    ) -> Result<serde_json::Value, QueryError> {
        match method {
            "schedule" => {
                let id = super::hex32_arg(args, 0, "schedule")?;
                let at = match args.get(1) {
                    Some(t) => Some(
                        t.parse::<u64>()
                            .map_err(|_| QueryError::BadArgs("time_ms is not a number".into()))?,
                    ),
                    None => None,
                };
                Ok(match state.get(&schedule_key(&id))? {
                    Some(b) => schedule_json(&Schedule::decode(&b)?, at),
                    None => serde_json::Value::Null,
                })
            }
            _ => Err(QueryError::Unknown(format!("vesting.{method}"))),
        }
    }
}

impl Call for VestingCall {
    fn gas(&self) -> u64 {
        GAS_VESTING
    }
    fn touched(&self, tx: &TxInfo<'_>, out: &mut Vec<[u8; 32]>) {
        out.push(account_key(&vesting_escrow()));
        match self {
            VestingCall::Create { .. } => {
                out.push(schedule_key(&schedule_id(tx.payer, tx.sequence)));
            }
            VestingCall::Claim { schedule } | VestingCall::Clawback { schedule } => {
                out.push(schedule_key(schedule));
            }
        }
    }
    fn apply(&self, tx: &TxInfo<'_>, l: &mut dyn Ledger, events: &mut Vec<Event>) -> CallResult {
        let escrow = vesting_escrow();
        match self {
            VestingCall::Create {
                beneficiary,
                total,
                start_ms,
                cliff_ms,
                duration_ms,
                clawback,
            } => {
                let id = schedule_id(tx.payer, tx.sequence);
                tri!(l.debit(tx.payer, &NATIVE_ASSET, *total, codes::VESTING_LOCK, events));
                tri!(l.credit(&escrow, &NATIVE_ASSET, *total, codes::VESTING_LOCK, events));
                let _ = ledger_schedule(l, &id)?;
                let s = Schedule {
                    id,
                    funder: *tx.payer,
                    beneficiary: *beneficiary,
                    total: *total,
                    start_ms: *start_ms,
                    cliff_ms: *cliff_ms,
                    duration_ms: *duration_ms,
                    clawback: *clawback,
                    released: 0,
                    frozen: None,
                };
                l.set_record(&schedule_key(&id), Some(s.encode()));
            }
            VestingCall::Claim { schedule } => {
                let Some(mut s) = ledger_schedule(l, schedule)? else {
                    return Ok(Err(codes::UNKNOWN_SCHEDULE));
                };
                if account_key(&s.beneficiary) != account_key(tx.payer) {
                    return Ok(Err(codes::NOT_BENEFICIARY));
                }
                let due = s.vested_at(tx.time_ms).saturating_sub(s.released);
                if due == 0 {
                    return Ok(Err(codes::NOTHING_VESTED));
                }
                tri!(l.debit(&escrow, &NATIVE_ASSET, due, codes::VESTING_RELEASE, events));
                tri!(l.credit(tx.payer, &NATIVE_ASSET, due, codes::VESTING_RELEASE, events));
                s.released += due;
                l.set_record(&schedule_key(schedule), Some(s.encode()));
            }
            VestingCall::Clawback { schedule } => {
                let Some(mut s) = ledger_schedule(l, schedule)? else {
                    return Ok(Err(codes::UNKNOWN_SCHEDULE));
                };
                match s.clawback {
                    Some(a) if account_key(&a) == account_key(tx.payer) => {}
                    _ => return Ok(Err(codes::NOT_CLAWBACK_AUTHORITY)),
                }
                if s.frozen.is_some() {
                    return Ok(Err(codes::NOTHING_TO_CLAW_BACK));
                }
                let v = s.vested_at(tx.time_ms);
                let unvested = s.total - v;
                if unvested == 0 {
                    return Ok(Err(codes::NOTHING_TO_CLAW_BACK));
                }
                tri!(l.debit(&escrow, &NATIVE_ASSET, unvested, codes::VESTING_CLAWBACK, events));
                tri!(l.credit(tx.payer, &NATIVE_ASSET, unvested, codes::VESTING_CLAWBACK, events));
                s.frozen = Some(v);
                l.set_record(&schedule_key(schedule), Some(s.encode()));
            }
        }
        Ok(Ok(()))
    }
}
