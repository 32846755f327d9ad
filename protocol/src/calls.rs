//! The call formats of the built-in ledger modules: what a client puts in
//! [`crate::tx::TxBody::call`] for each of them, and their stateless rules.
//!
//! A module is named by a [`ModuleId`]; its call is the rkyv archive of the
//! module's call type, validated before access. The execution crate's
//! module for each id decodes these types and runs them; clients (the SDK,
//! relayers, the CLI) build them from here without any execution or
//! storage code. A module whose calls no outside client builds may define
//! its call type next to its implementation instead.
//!
//! | id | module | call type |
//! | --- | --- | --- |
//! | 1 | transfer | [`Transfer`] |
//! | 2 | asset | [`AssetCall`] |
//! | 3 | settlement | [`Settle`] |
//! | 4 | batch payment | [`BatchPay`] |

use crate::receipt::Reason;

/// Identifies a ledger module in a transaction.
pub type ModuleId = u16;

/// Module id of [`Transfer`].
pub const MODULE_TRANSFER: ModuleId = 1;
/// Module id of [`AssetCall`].
pub const MODULE_ASSET: ModuleId = 2;
/// Module id of [`Settle`].
pub const MODULE_SETTLEMENT: ModuleId = 3;
/// Module id of [`BatchPay`].
pub const MODULE_BATCH_PAY: ModuleId = 4;

/// Most legs of one settlement.
pub const LEGS_MAX: usize = 32;
/// Most payees of one batch payment.
pub const PAYEES_MAX: usize = 256;
/// Longest asset symbol (ASCII upper-case letters and digits).
pub const SYMBOL_LEN_MAX: usize = 12;
/// Most decimals of an asset.
pub const DECIMALS_MAX: u8 = 18;

/// A call of one module: its id and its own encoding.
pub trait ModuleCall: Sized {
    /// The module this call belongs to.
    const MODULE: ModuleId;
    /// The call's bytes (what goes into `TxBody::call`).
    fn encode(&self) -> Vec<u8>;
    /// Decode untrusted bytes (archive validation, then [`ModuleCall::check`]).
    fn decode(bytes: &[u8]) -> Result<Self, Reason>;
    /// Stateless rules: counts, non-zero amounts, symbols.
    fn check(&self) -> Result<(), Reason>;
}

/// rkyv encode/decode for a call type (also used by `governance`).
macro_rules! rkyv_call {
    ($t:ty, $module:expr) => {
        impl $crate::calls::ModuleCall for $t {
            const MODULE: $crate::calls::ModuleId = $module;
            fn encode(&self) -> Vec<u8> {
                rkyv::to_bytes::<rkyv::rancor::Error>(self)
                    .expect("serialising an owned call into memory cannot fail")
                    .into_vec()
            }
            fn decode(bytes: &[u8]) -> Result<Self, $crate::receipt::Reason> {
                let c = $crate::archive::with_aligned(bytes, |b| {
                    rkyv::from_bytes::<$t, rkyv::rancor::Error>(b)
                        .map_err(|_| $crate::receipt::Reason::MalformedCall)
                })?;
                <$t as $crate::calls::ModuleCall>::check(&c)?;
                Ok(c)
            }
            fn check(&self) -> Result<(), $crate::receipt::Reason> {
                self.check_rules()
            }
        }
    };
}
pub(crate) use rkyv_call;

/// Move `amount` of `asset` (the native asset for PLUME) from the payer to `to`.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Asset id.
    pub asset: [u8; 32],
    /// Recipient address.
    pub to: [u8; 32],
    /// Amount in the asset's smallest unit.
    pub amount: u128,
}

impl Transfer {
    fn check_rules(&self) -> Result<(), Reason> {
        if self.amount == 0 {
            return Err(Reason::ZeroAmount);
        }
        Ok(())
    }
}
rkyv_call!(Transfer, MODULE_TRANSFER);

/// Supply rule of an asset.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupplyPolicy {
    /// The initial supply, forever.
    Fixed,
    /// The issuer mints and burns.
    IssuerMintable,
}

/// Issued assets: create, mint, burn.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AssetCall {
    /// Create an asset issued by the payer; the id is
    /// [`crate::tx::asset_id`]`(payer, sequence)` and `initial_supply` goes
    /// to the payer.
    Create {
        /// Ticker, 1..=SYMBOL_LEN_MAX of `A-Z0-9`.
        symbol: String,
        /// Display decimals, at most DECIMALS_MAX.
        decimals: u8,
        /// Whether the issuer may mint and burn later.
        policy: SupplyPolicy,
        /// Supply created now (a fixed asset needs a positive one).
        initial_supply: u128,
    },
    /// Issuer only: create `amount` of a mintable `asset` for `to`.
    Mint {
        /// Asset id.
        asset: [u8; 32],
        /// Recipient.
        to: [u8; 32],
        /// Amount.
        amount: u128,
    },
    /// Issuer only: destroy `amount` of a mintable `asset` from its balance.
    Burn {
        /// Asset id.
        asset: [u8; 32],
        /// Amount.
        amount: u128,
    },
}

impl AssetCall {
    fn check_rules(&self) -> Result<(), Reason> {
        match self {
            AssetCall::Create {
                symbol,
                decimals,
                policy,
                initial_supply,
            } => {
                if symbol.is_empty()
                    || symbol.len() > SYMBOL_LEN_MAX
                    || !symbol
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                {
                    return Err(Reason::BadSymbol);
                }
                if *decimals > DECIMALS_MAX {
                    return Err(Reason::BadDecimals);
                }
                if *policy == SupplyPolicy::Fixed && *initial_supply == 0 {
                    return Err(Reason::ZeroAmount);
                }
            }
            AssetCall::Mint { amount, .. } | AssetCall::Burn { amount, .. } => {
                if *amount == 0 {
                    return Err(Reason::ZeroAmount);
                }
            }
        }
        Ok(())
    }
}
rkyv_call!(AssetCall, MODULE_ASSET);

/// One leg of a settlement.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Leg {
    /// Asset id.
    pub asset: [u8; 32],
    /// Debited account (must sign).
    pub from: [u8; 32],
    /// Credited account.
    pub to: [u8; 32],
    /// Amount.
    pub amount: u128,
}

/// Atomic multi-leg settlement (DvP, PvP): every leg or none; each debited
/// account must be a signer.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Settle {
    /// The legs, applied in order.
    pub legs: Vec<Leg>,
}

impl Settle {
    fn check_rules(&self) -> Result<(), Reason> {
        if self.legs.is_empty() || self.legs.len() > LEGS_MAX {
            return Err(Reason::LegCount);
        }
        if self.legs.iter().any(|l| l.amount == 0) {
            return Err(Reason::ZeroAmount);
        }
        Ok(())
    }
}
rkyv_call!(Settle, MODULE_SETTLEMENT);

/// One payee of a batch payment.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// Recipient.
    pub to: [u8; 32],
    /// Amount.
    pub amount: u128,
}

/// One payer, many payees, one asset; all or none.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BatchPay {
    /// Asset id.
    pub asset: [u8; 32],
    /// Payees.
    pub payments: Vec<Payment>,
}

impl BatchPay {
    fn check_rules(&self) -> Result<(), Reason> {
        if self.payments.is_empty() || self.payments.len() > PAYEES_MAX {
            return Err(Reason::PayeeCount);
        }
        if self.payments.iter().any(|p| p.amount == 0) {
            return Err(Reason::ZeroAmount);
        }
        Ok(())
    }
}
rkyv_call!(BatchPay, MODULE_BATCH_PAY);

/// A call of any module in its encoded form (what a body carries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedCall {
    /// The module called.
    pub module: ModuleId,
    /// Its encoding of the call.
    pub bytes: Vec<u8>,
}

impl<C: ModuleCall> From<C> for EncodedCall {
    fn from(c: C) -> Self {
        EncodedCall {
            module: C::MODULE,
            bytes: c.encode(),
        }
    }
}
