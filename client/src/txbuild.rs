//! Building and signing transactions of the built-in modules (for
//! `plume tx`, the devnet load generator and any Rust client).

use plume_crypto::ed25519::{Address, SigningKey};
use plume_protocol::calls::{
    AssetCall, BatchPay, EncodedCall, Leg, Payment, Settle, SupplyPolicy, Transfer, PAYEES_MAX,
};
use plume_protocol::tx::{Transaction, TxBody, NATIVE_ASSET};

/// Fee settings of a transaction.
#[derive(Clone, Copy, Debug)]
pub struct Fees {
    /// Max fee per gas.
    pub max_fee_per_gas: u64,
    /// Tip per gas.
    pub priority_fee_per_gas: u64,
    /// Gas limit.
    pub gas_limit: u64,
}

impl Default for Fees {
    fn default() -> Self {
        Fees {
            max_fee_per_gas: 1_000,
            priority_fee_per_gas: 1,
            gas_limit: 200_000,
        }
    }
}

/// A command-line argument that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// An unsigned body calling `call`, signed by `signers` (payer first).
pub fn body(
    chain_id: &str,
    signers: &[&SigningKey],
    sequence: u64,
    fees: Fees,
    expiry_height: u64,
    call: impl Into<EncodedCall>,
) -> TxBody {
    let mut b = TxBody::for_call(call);
    b.chain_id = chain_id.to_string();
    b.signers = signers.iter().map(|k| k.public_key().to_bytes()).collect();
    b.sequence = sequence;
    b.max_fee_per_gas = fees.max_fee_per_gas;
    b.priority_fee_per_gas = fees.priority_fee_per_gas;
    b.gas_limit = fees.gas_limit;
    b.expiry_height = expiry_height;
    b
}

/// A signed transfer of `amount` of `asset` (native when `None`).
pub fn transfer(
    chain_id: &str,
    key: &SigningKey,
    sequence: u64,
    to: &Address,
    amount: u128,
    asset: Option<[u8; 32]>,
    fees: Fees,
    expiry_height: u64,
) -> Transaction {
    let call = Transfer {
        asset: asset.unwrap_or(NATIVE_ASSET),
        to: to.0,
        amount,
    };
    Transaction::sign(
        body(chain_id, &[key], sequence, fees, expiry_height, call),
        &[key],
    )
}

/// A transfer of `amount` to `to` whose memo pads the encoded transaction
/// to about `size` bytes (the memo holds at most
/// [`plume_protocol::tx::MEMO_BYTES_MAX`]): one signature and one payee
/// whatever the size, so a benchmark's "512-byte payment" costs what a
/// real one does.
pub fn memo_transfer(
    chain_id: &str,
    key: &SigningKey,
    sequence: u64,
    to: &Address,
    amount: u128,
    size: usize,
    fees: Fees,
    expiry_height: u64,
) -> Transaction {
    let call = Transfer {
        asset: NATIVE_ASSET,
        to: to.0,
        amount,
    };
    let mut b = body(chain_id, &[key], sequence, fees, expiry_height, call);
    // The encoding without a memo, plus a signature: what the memo adds to.
    let bare = Transaction {
        body: b.clone(),
        signatures: vec![[0u8; 64]],
    }
    .to_bytes()
    .len();
    b.memo = vec![
        0x2e;
        size.saturating_sub(bare)
            .min(plume_protocol::tx::MEMO_BYTES_MAX)
    ];
    Transaction::sign(b, &[key])
}

/// A payment of 1 unit to `to` repeated over enough payees that the
/// encoded transaction is at least `size` bytes (at most `PAYEES_MAX`
/// payees): a stand-in for "a payment of `size` bytes".
pub fn padded_payment(
    chain_id: &str,
    key: &SigningKey,
    sequence: u64,
    to: &Address,
    size: usize,
    fees: Fees,
    expiry_height: u64,
) -> Transaction {
    let mut payees = 1usize;
    loop {
        let payments = (0..payees)
            .map(|_| Payment {
                to: to.0,
                amount: 1,
            })
            .collect();
        let call = BatchPay {
            asset: NATIVE_ASSET,
            payments,
        };
        let t = Transaction::sign(
            body(chain_id, &[key], sequence, fees, expiry_height, call),
            &[key],
        );
        if t.to_bytes().len() >= size || payees >= PAYEES_MAX {
            return t;
        }
        payees += 1;
    }
}

/// A signed atomic settlement; `keys[0]` pays the fee and every debited
/// account's key must be in `keys`.
pub fn settle(
    chain_id: &str,
    keys: &[&SigningKey],
    sequence: u64,
    legs: Vec<Leg>,
    fees: Fees,
    expiry_height: u64,
) -> Transaction {
    Transaction::sign(
        body(
            chain_id,
            keys,
            sequence,
            fees,
            expiry_height,
            Settle { legs },
        ),
        keys,
    )
}

/// A signed asset creation.
pub fn create_asset(
    chain_id: &str,
    key: &SigningKey,
    sequence: u64,
    symbol: &str,
    decimals: u8,
    mintable: bool,
    initial_supply: u128,
    fees: Fees,
    expiry_height: u64,
) -> Transaction {
    let call = AssetCall::Create {
        symbol: symbol.to_string(),
        decimals,
        policy: if mintable {
            SupplyPolicy::IssuerMintable
        } else {
            SupplyPolicy::Fixed
        },
        initial_supply,
    };
    Transaction::sign(
        body(chain_id, &[key], sequence, fees, expiry_height, call),
        &[key],
    )
}

/// Parse `ASSET:FROM:TO:AMOUNT` (ASSET `plume` or 64 hex).
pub fn parse_leg(s: &str) -> Result<Leg, ParseError> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 4 {
        return Err(ParseError(format!(
            "--leg {s:?}: expected ASSET:FROM:TO:AMOUNT"
        )));
    }
    let asset = parse_asset(parts[0])?;
    let from =
        Address::from_hex(parts[1]).map_err(|e| ParseError(format!("--leg {s:?}: FROM: {e}")))?;
    let to =
        Address::from_hex(parts[2]).map_err(|e| ParseError(format!("--leg {s:?}: TO: {e}")))?;
    let amount = parts[3]
        .parse()
        .map_err(|e| ParseError(format!("--leg {s:?}: AMOUNT: {e}")))?;
    Ok(Leg {
        asset,
        from: from.0,
        to: to.0,
        amount,
    })
}

/// `plume` for the native token, else 64 hex characters.
pub fn parse_asset(s: &str) -> Result<[u8; 32], ParseError> {
    if s.eq_ignore_ascii_case("plume") {
        return Ok(NATIVE_ASSET);
    }
    plume_crypto::decode_hex_fixed::<32>(s, "asset id").map_err(|e| ParseError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_transactions_verify_and_decode() {
        let k = SigningKey::from_bytes(&[3; 32]);
        let to = Address([9; 32]);
        let t = transfer("c", &k, 4, &to, 10, None, Fees::default(), 100);
        t.verify_signatures().unwrap();
        assert_eq!(Transaction::from_bytes(&t.to_bytes()).unwrap(), t);
        assert_eq!(t.body.sequence, 4);
        let p = padded_payment("c", &k, 0, &to, 512, Fees::default(), 100);
        assert!(p.to_bytes().len() >= 512);
        p.verify_signatures().unwrap();
        let leg = parse_leg(&format!("plume:{}:{}:5", to.to_hex(), to.to_hex())).unwrap();
        assert_eq!(leg.amount, 5);
        assert!(parse_leg("plume:x:y").is_err());
        assert!(parse_asset("zz").is_err());
        assert_eq!(parse_asset("PLUME").unwrap(), NATIVE_ASSET);
    }
}
