//! Batch payments: one payer, many payees, one asset; all or none.

use super::{Call, CallResult, Ledger, Module, TxInfo};
use crate::state::account_key;
use plume_protocol::calls::{BatchPay, ModuleCall, MODULE_BATCH_PAY};
use plume_protocol::{Cause, Event, Reason};

/// Gas per payee.
pub const GAS_PER_PAYEE: u64 = 4_000;

/// The batch-payment module (id [`MODULE_BATCH_PAY`]).
#[derive(Debug, Clone, Copy)]
pub struct BatchPayments;

impl Module for BatchPayments {
    fn id(&self) -> u16 {
        MODULE_BATCH_PAY
    }
    fn name(&self) -> &'static str {
        "batch_pay"
    }
    fn decode(&self, call: &[u8]) -> Result<Box<dyn Call>, Reason> {
        Ok(Box::new(BatchPay::decode(call)?))
    }
}

impl Call for BatchPay {
    fn gas(&self) -> u64 {
        GAS_PER_PAYEE.saturating_mul(self.payments.len() as u64)
    }
    fn touched(&self, _tx: &TxInfo<'_>, out: &mut Vec<[u8; 32]>) {
        out.extend(self.payments.iter().map(|p| account_key(&p.to)));
    }
    fn named_accounts(&self, out: &mut Vec<[u8; 32]>) {
        out.extend(self.payments.iter().map(|p| p.to));
    }
    fn apply(&self, tx: &TxInfo<'_>, l: &mut dyn Ledger, events: &mut Vec<Event>) -> CallResult {
        let mut total: u128 = 0;
        for p in &self.payments {
            let Some(t) = total.checked_add(p.amount) else {
                return Ok(Err(Reason::Overflow));
            };
            total = t;
        }
        tri!(l.debit(tx.payer, &self.asset, total, Cause::Transfer, events));
        for p in &self.payments {
            tri!(l.credit(&p.to, &self.asset, p.amount, Cause::Transfer, events));
        }
        Ok(Ok(()))
    }
}
