//! Issued assets: create (the id is derived from the issuer and its
//! sequence), mint and burn by the issuer of a mintable asset. Every
//! asset's supply is tracked in its record; the block executor asserts
//! that balances move by exactly the supply change.

use super::{hex32_arg, Call, CallResult, Ledger, Module, QueryError, StateRead, TxInfo};
use crate::state::{account_key, asset_key, AssetInfo};
use plume_protocol::calls::{AssetCall, ModuleCall, SupplyPolicy, MODULE_ASSET};
use plume_protocol::tx::asset_id;
use plume_protocol::{Cause, Event, Reason};

/// Gas of creating an asset.
pub const GAS_CREATE_ASSET: u64 = 100_000;
/// Gas of a mint or a burn.
pub const GAS_MINT_BURN: u64 = 10_000;

/// The asset module (id [`MODULE_ASSET`]).
#[derive(Debug, Clone, Copy)]
pub struct Assets;

impl Module for Assets {
    fn id(&self) -> u16 {
        MODULE_ASSET
    }
    fn name(&self) -> &'static str {
        "asset"
    }
    fn decode(&self, call: &[u8]) -> Result<Box<dyn Call>, Reason> {
        Ok(Box::new(AssetCall::decode(call)?))
    }
    fn queries(&self) -> &'static [&'static str] {
        &["info"]
    }
    fn query(
        &self,
        state: &dyn StateRead,
        method: &str,
        args: &[String],
    ) -> Result<serde_json::Value, QueryError> {
        match method {
            "info" => {
                let id = hex32_arg(args, 0, "asset id")?;
                let info = match state.get(&asset_key(&id))? {
                    Some(b) => Some(AssetInfo::decode(&b)?),
                    None => None,
                };
                Ok(match info {
                    None => serde_json::Value::Null,
                    Some(a) => serde_json::json!({
                        "id": hex::encode(id),
                        "symbol": a.symbol,
                        "decimals": a.decimals,
                        "issuer": hex::encode(a.issuer),
                        "supply": a.supply.to_string(),
                        "mintable": a.policy == SupplyPolicy::IssuerMintable,
                    }),
                })
            }
            other => Err(QueryError::Unknown(format!("asset.{other}"))),
        }
    }
}

impl Call for AssetCall {
    fn gas(&self) -> u64 {
        match self {
            AssetCall::Create { .. } => GAS_CREATE_ASSET,
            AssetCall::Mint { .. } | AssetCall::Burn { .. } => GAS_MINT_BURN,
        }
    }
    fn touched(&self, tx: &TxInfo<'_>, out: &mut Vec<[u8; 32]>) {
        match self {
            AssetCall::Create { .. } => out.push(asset_id(tx.payer, tx.sequence)),
            AssetCall::Mint { asset, to, .. } => {
                out.push(*asset);
                out.push(account_key(to));
            }
            AssetCall::Burn { asset, .. } => out.push(*asset),
        }
    }
    fn apply(&self, tx: &TxInfo<'_>, l: &mut dyn Ledger, events: &mut Vec<Event>) -> CallResult {
        let payer = *tx.payer;
        match self {
            AssetCall::Create {
                symbol,
                decimals,
                policy,
                initial_supply,
            } => {
                let id = asset_id(&payer, tx.sequence);
                if l.asset(&id)?.is_some() {
                    return Ok(Err(Reason::AssetExists));
                }
                l.set_asset(
                    &id,
                    AssetInfo {
                        issuer: payer,
                        supply: *initial_supply,
                        decimals: *decimals,
                        policy: *policy,
                        symbol: symbol.clone(),
                    },
                );
                if *initial_supply > 0 {
                    tri!(l.credit(&payer, &id, *initial_supply, Cause::Mint, events));
                }
            }
            AssetCall::Mint { asset, to, amount } => {
                let mut info = tri!(mintable_by(l, asset, &payer));
                let Some(s) = info.supply.checked_add(*amount) else {
                    return Ok(Err(Reason::Overflow));
                };
                info.supply = s;
                l.set_asset(asset, info);
                tri!(l.credit(to, asset, *amount, Cause::Mint, events));
            }
            AssetCall::Burn { asset, amount } => {
                let mut info = tri!(mintable_by(l, asset, &payer));
                tri!(l.debit(&payer, asset, *amount, Cause::Burn, events));
                // The issuer's balance is part of the supply, so this holds.
                info.supply = info.supply.checked_sub(*amount).expect("balance <= supply");
                l.set_asset(asset, info);
            }
        }
        Ok(Ok(()))
    }
}

/// The record of `asset` if `payer` is its issuer and may change its supply.
fn mintable_by(
    l: &mut dyn Ledger,
    asset: &[u8; 32],
    payer: &[u8; 32],
) -> Result<Result<AssetInfo, Reason>, crate::ExecError> {
    let Some(info) = l.asset(asset)? else {
        return Ok(Err(Reason::UnknownAsset));
    };
    if info.issuer != *payer {
        return Ok(Err(Reason::NotIssuer));
    }
    if info.policy != SupplyPolicy::IssuerMintable {
        return Ok(Err(Reason::SupplyFixed));
    }
    Ok(Ok(info))
}
