//! Receipts: what happened to each transaction, with every balance change,
//! so a client or a regulator can follow funds. rkyv-archivable: the node
//! stores them beside the block.

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

/// Why a transaction failed or was rejected (stable codes: `as u16`).
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
#[repr(u16)]
pub enum Reason {
    /// No error.
    Ok = 0,
    /// Chain id differs from the chain's.
    WrongChain = 1,
    /// Block height above the transaction's expiry height.
    Expired = 2,
    /// Sequence differs from the payer's next sequence.
    BadSequence = 3,
    /// Max fee per gas below the block's base fee.
    FeeCapBelowBaseFee = 4,
    /// The payer cannot pay the fee.
    InsufficientFeeBalance = 5,
    /// The block's gas limit is used up.
    BlockGasLimit = 6,
    /// No signer or more than SIGNERS_MAX.
    SignerCount = 7,
    /// Signature count differs from signer count.
    SignatureCount = 8,
    /// A signer listed twice.
    DuplicateSigner = 9,
    /// A zero amount.
    ZeroAmount = 10,
    /// Bad asset symbol.
    BadSymbol = 11,
    /// Too many decimals.
    BadDecimals = 12,
    /// Settlement without legs or with more than LEGS_MAX.
    LegCount = 13,
    /// Batch payment without payees or with more than PAYEES_MAX.
    PayeeCount = 14,
    /// A debited account did not sign.
    Unauthorized = 15,
    /// Gas limit below the gas the transaction needs.
    OutOfGas = 16,
    /// A debited balance is too small.
    InsufficientBalance = 17,
    /// An amount or balance would overflow u128.
    Overflow = 18,
    /// The asset does not exist.
    UnknownAsset = 19,
    /// Only the asset's issuer may do this.
    NotIssuer = 20,
    /// The asset's supply is fixed.
    SupplyFixed = 21,
    /// The asset id is taken.
    AssetExists = 22,
    /// The payer's sequence cannot advance (u64::MAX reached).
    SequenceExhausted = 23,
}

/// Why a balance changed.
#[derive(
    rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash,
)]
pub enum Cause {
    /// The payer paid its fee (base + tip).
    Fee,
    /// Transfer, settlement leg or batch payment.
    Transfer,
    /// Issuance (create asset or mint).
    Mint,
    /// Asset burn by its issuer.
    Burn,
    /// Tip credited to the block proposer.
    Tip,
    /// Treasury share of the base fee.
    Treasury,
    /// Fee-pool share of the base fee.
    FeePool,
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
}
