//! Atomic multi-leg settlement (delivery versus payment, payment versus
//! payment): every leg applies or none does, and every debited account
//! must have signed the transaction.

use super::{Call, CallResult, Ledger, Module, TxInfo};
use crate::state::account_key;
use plume_protocol::calls::{ModuleCall, Settle, MODULE_SETTLEMENT};
use plume_protocol::{Cause, Event, Reason};

/// Gas per settlement leg.
pub const GAS_PER_LEG: u64 = 6_000;

/// The settlement module (id [`MODULE_SETTLEMENT`]).
#[derive(Debug, Clone, Copy)]
pub struct Settlements;

impl Module for Settlements {
    fn id(&self) -> u16 {
        MODULE_SETTLEMENT
    }
    fn name(&self) -> &'static str {
        "settlement"
    }
    fn decode(&self, call: &[u8]) -> Result<Box<dyn Call>, Reason> {
        Ok(Box::new(Settle::decode(call)?))
    }
}

impl Call for Settle {
    fn gas(&self) -> u64 {
        GAS_PER_LEG.saturating_mul(self.legs.len() as u64)
    }
    fn touched(&self, _tx: &TxInfo<'_>, out: &mut Vec<[u8; 32]>) {
        for l in &self.legs {
            out.push(account_key(&l.from));
            out.push(account_key(&l.to));
        }
    }
    fn named_accounts(&self, out: &mut Vec<[u8; 32]>) {
        for l in &self.legs {
            out.push(l.from);
            out.push(l.to);
        }
    }
    fn authorize(&self, tx: &TxInfo<'_>) -> Result<(), Reason> {
        if self.legs.iter().any(|l| !tx.signed_by(&l.from)) {
            return Err(Reason::Unauthorized);
        }
        Ok(())
    }
    fn apply(&self, _tx: &TxInfo<'_>, l: &mut dyn Ledger, events: &mut Vec<Event>) -> CallResult {
        // Every `from` signed: checked in `authorize` before any state.
        for leg in &self.legs {
            tri!(l.debit(&leg.from, &leg.asset, leg.amount, Cause::Transfer, events));
            tri!(l.credit(&leg.to, &leg.asset, leg.amount, Cause::Transfer, events));
        }
        Ok(Ok(()))
    }
}
