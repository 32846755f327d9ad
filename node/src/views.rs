//! JSON views of protocol objects for API clients and subscribers.

use plume_execution::Registry;
use plume_protocol::Receipt;
use serde_json::{json, Value};

/// A receipt for clients (reason and cause names from the registry).
pub fn receipt_json(registry: &Registry, r: &Receipt) -> Value {
    json!({
        "tx": hex::encode(r.tx_hash),
        "status": format!("{:?}", r.status),
        "reason": registry.reason_name(r.reason),
        "reason_code": r.reason.0,
        "gas_used": r.gas_used,
        "fee_paid": r.fee_paid.to_string(),
        "fee_burned": r.fee_burned.to_string(),
        "tip": r.tip.to_string(),
        "events": r.events.iter().map(|e| json!({
            "account": hex::encode(e.account),
            "asset": hex::encode(e.asset),
            "credit": e.credit,
            "amount": e.amount.to_string(),
            "cause": registry.cause_name(e.cause),
        })).collect::<Vec<_>>(),
    })
}
