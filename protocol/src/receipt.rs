//! Receipts: what happened to each transaction, with every balance change,
//! so a client or a regulator can follow funds. rkyv-archivable: the node
//! stores them beside the block.
//!
//! Reason and cause codes are open `u16` spaces, not closed enums, so a
//! ledger module adds its own without editing this file. Ranges: reasons
//! 0-99 core and built-in modules, 100s staking, 200s compliance, 300s
//! privacy, 400s applications, 500s bridge; causes likewise by hundreds.
//! The codes below are stable: never renumber one.

use rkyv::rancor;

/// Outcome class of a transaction.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
pub enum Status {
    /// Payload applied; fee charged.
    Success,
    /// Fee charged and sequence used, payload reverted entirely.
    Failed,
    /// No effect at all (no fee, sequence unchanged).
    Rejected,
}

/// Why a transaction failed or was rejected (a stable code).
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
pub struct Reason(pub u16);

/// Defines a code type's core constants and their names in one table.
macro_rules! codes {
    ($ty:ident, $what:literal; $($name:ident = $code:expr, $doc:expr;)*) => {
        #[allow(non_upper_case_globals)]
        impl $ty {
            $(#[doc = $doc] pub const $name: $ty = $ty($code);)*
            #[doc = concat!("The name of a core ", $what, " code (modules name theirs: see the")]
            /// execution crate's registry).
            pub fn core_name(self) -> Option<&'static str> {
                match self.0 {
                    $($code => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                match self.core_name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($ty), self.0),
                }
            }
        }
    };
}

codes! {
    Reason, "reason";
    Ok = 0, "No error.";
    WrongChain = 1, "Chain id differs from the chain's.";
    Expired = 2, "Block height above the transaction's expiry height.";
    BadSequence = 3, "Sequence differs from the payer's next sequence.";
    FeeCapBelowBaseFee = 4, "Max fee per gas below the block's base fee.";
    InsufficientFeeBalance = 5, "The payer cannot pay the fee.";
    BlockGasLimit = 6, "The block's gas limit is used up.";
    SignerCount = 7, "No signer or more than SIGNERS_MAX.";
    SignatureCount = 8, "Signature count differs from signer count.";
    DuplicateSigner = 9, "A signer listed twice.";
    ZeroAmount = 10, "A zero amount.";
    BadSymbol = 11, "Bad asset symbol.";
    BadDecimals = 12, "Too many decimals.";
    LegCount = 13, "Settlement without legs or with more than LEGS_MAX.";
    PayeeCount = 14, "Batch payment without payees or with more than PAYEES_MAX.";
    Unauthorized = 15, "A debited account did not sign.";
    OutOfGas = 16, "Gas limit below the gas the transaction needs.";
    InsufficientBalance = 17, "A debited balance is too small.";
    Overflow = 18, "An amount or balance would overflow u128.";
    UnknownAsset = 19, "The asset does not exist.";
    NotIssuer = 20, "Only the asset's issuer may do this.";
    SupplyFixed = 21, "The asset's supply is fixed.";
    AssetExists = 22, "The asset id is taken.";
    SequenceExhausted = 23, "The payer's sequence cannot advance (u64::MAX reached).";
    UnknownModule = 24, "No ledger module has the transaction's module id.";
    MalformedCall = 25, "The module call does not decode or is too long.";
    MemoTooLong = 26, "The memo is longer than MEMO_BYTES_MAX.";
    BlockTxLimit = 27, "The block's (governed) transaction limit is used up.";
}

/// Why a balance changed (a stable code).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cause(pub u16);

codes! {
    Cause, "cause";
    Fee = 0, "The payer paid its fee (base + tip).";
    Transfer = 1, "Transfer, settlement leg or batch payment.";
    Mint = 2, "Issuance (create asset or mint).";
    Burn = 3, "Asset burn by its issuer.";
    Tip = 4, "Tip credited to the block proposer.";
    Treasury = 5, "Treasury share of the base fee.";
    FeePool = 6, "Fee-pool share of the base fee.";
}

/// One balance change.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Event {
    /// Account whose balance changed.
    pub account: [u8; 32],
    /// Asset (NATIVE_ASSET for PLUME).
    pub asset: [u8; 32],
    /// True for a credit, false for a debit.
    pub credit: bool,
    /// Amount.
    pub amount: u128,
    /// Why.
    pub cause: Cause,
}

/// What happened to one transaction.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Receipt {
    /// Transaction id.
    pub tx_hash: [u8; 32],
    /// Outcome.
    pub status: Status,
    /// Reason (Ok on success).
    pub reason: Reason,
    /// Gas charged.
    pub gas_used: u64,
    /// Fee paid by the payer (gas_used x (base fee + tip)).
    pub fee_paid: u128,
    /// Part of the fee burned.
    pub fee_burned: u128,
    /// Part of the fee tipped to the proposer.
    pub tip: u128,
    /// Every balance change, in order.
    pub events: Vec<Event>,
}

/// A stored receipt that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt receipt: {0}")]
pub struct ReceiptError(pub String);

impl Receipt {
    /// A receipt of a transaction that had no effect.
    pub fn rejected(tx_hash: [u8; 32], reason: Reason) -> Receipt {
        Receipt {
            tx_hash,
            status: Status::Rejected,
            reason,
            gas_used: 0,
            fee_paid: 0,
            fee_burned: 0,
            tip: 0,
            events: Vec::new(),
        }
    }

    /// The rkyv bytes (what the store keeps).
    pub fn to_bytes(&self) -> Vec<u8> {
        rkyv::to_bytes::<rancor::Error>(self)
            .expect("in-memory serialisation cannot fail")
            .into_vec()
    }

    /// Decode stored bytes (validated before access).
    pub fn from_bytes(b: &[u8]) -> Result<Receipt, ReceiptError> {
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(b.len());
        aligned.extend_from_slice(b);
        rkyv::from_bytes::<Receipt, rancor::Error>(&aligned)
            .map_err(|e| ReceiptError(e.to_string()))
    }
}
