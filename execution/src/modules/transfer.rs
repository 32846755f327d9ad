//! Transfers of PLUME or an issued asset from the payer to one recipient.

use super::{Call, CallResult, Ledger, Module, TxInfo};
use crate::state::account_key;
use plume_protocol::calls::{ModuleCall, Transfer, MODULE_TRANSFER};
use plume_protocol::{Cause, Event, Reason};

/// Gas of a transfer (besides the envelope's).
pub const GAS_TRANSFER: u64 = 5_000;

/// The transfer module (id [`MODULE_TRANSFER`]).
#[derive(Debug, Clone, Copy)]
pub struct Transfers;

impl Module for Transfers {
    fn id(&self) -> u16 {
        MODULE_TRANSFER
    }
    fn name(&self) -> &'static str {
        "transfer"
    }
    fn decode(&self, call: &[u8]) -> Result<Box<dyn Call>, Reason> {
        Ok(Box::new(Transfer::decode(call)?))
    }
}

impl Call for Transfer {
    fn gas(&self) -> u64 {
        GAS_TRANSFER
    }
    fn touched(&self, _tx: &TxInfo<'_>, out: &mut Vec<[u8; 32]>) {
        out.push(account_key(&self.to));
    }
    fn named_accounts(&self, out: &mut Vec<[u8; 32]>) {
        out.push(self.to);
    }
    fn apply(&self, tx: &TxInfo<'_>, l: &mut dyn Ledger, events: &mut Vec<Event>) -> CallResult {
        tri!(l.debit(tx.payer, &self.asset, self.amount, Cause::Transfer, events));
        tri!(l.credit(&self.to, &self.asset, self.amount, Cause::Transfer, events));
        Ok(Ok(()))
    }
}
