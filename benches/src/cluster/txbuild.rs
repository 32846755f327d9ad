//! Building and signing client transactions (for `plume tx` and the devnet
//! load generator).

use anyhow::{Context, Result};
use plume_crypto::ed25519::{Address, SigningKey};
use plume_execution::tx::{Leg, Payload, SupplyPolicy, Transaction, TxBody, NATIVE_ASSET};

/// Fee settings every generated transaction uses.
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

fn body(
    chain_id: &str,
    signers: &[&SigningKey],
    sequence: u64,
    fees: Fees,
    expiry_height: u64,
    payload: Payload,
) -> TxBody {
    TxBody {
        chain_id: chain_id.to_string(),
        signers: signers.iter().map(|k| k.public_key().to_bytes()).collect(),
        sequence,
        max_fee_per_gas: fees.max_fee_per_gas,
        priority_fee_per_gas: fees.priority_fee_per_gas,
        gas_limit: fees.gas_limit,
        expiry_height,
        payload,
    }
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
    let p = Payload::Transfer {
        asset: asset.unwrap_or(NATIVE_ASSET),
        to: to.0,
        amount,
    };
    Transaction::sign(
        body(chain_id, &[key], sequence, fees, expiry_height, p),
        &[key],
    )
}

/// A payment of 1 unit to `to` repeated over enough payees that the
/// encoded transaction is at least `size` bytes (at most
/// `PAYEES_MAX` payees): a stand-in for "a transfer of `size` bytes".
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
            .map(|_| plume_execution::tx::Payment {
                to: to.0,
                amount: 1,
            })
            .collect();
        let p = Payload::BatchPay {
            asset: NATIVE_ASSET,
            payments,
        };
        let t = Transaction::sign(
            body(chain_id, &[key], sequence, fees, expiry_height, p),
            &[key],
        );
        if t.to_bytes().len() >= size || payees >= plume_execution::tx::PAYEES_MAX {
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
            Payload::Settle { legs },
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
    let p = Payload::CreateAsset {
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
        body(chain_id, &[key], sequence, fees, expiry_height, p),
        &[key],
    )
}

/// Parse `ASSET:FROM:TO:AMOUNT` (ASSET `plume` or 64 hex).
pub fn parse_leg(s: &str) -> Result<Leg> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 4 {
        anyhow::bail!("--leg {s:?}: expected ASSET:FROM:TO:AMOUNT");
    }
    let asset = parse_asset(parts[0])?;
    let from = Address::from_hex(parts[1]).with_context(|| format!("--leg {s:?}: FROM"))?;
    let to = Address::from_hex(parts[2]).with_context(|| format!("--leg {s:?}: TO"))?;
    let amount = parts[3]
        .parse()
        .with_context(|| format!("--leg {s:?}: AMOUNT"))?;
    Ok(Leg {
        asset,
        from: from.0,
        to: to.0,
        amount,
    })
}

/// `plume` for the native token, else 64 hex characters.
pub fn parse_asset(s: &str) -> Result<[u8; 32]> {
    if s.eq_ignore_ascii_case("plume") {
        return Ok(NATIVE_ASSET);
    }
    Ok(plume_crypto::decode_hex_fixed::<32>(s, "asset id")?)
}

/// Write a client account key (mode 0600) in the node's key-file format.
pub fn write_account_key(path: &std::path::Path, key: &SigningKey) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let body = serde_json::json!({"type": "ed25519", "secret": hex::encode(key.to_bytes())});
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(serde_json::to_string_pretty(&body)?.as_bytes())?;
    f.sync_all()
        .with_context(|| format!("writing {}", path.display()))
}

/// Read a client account key.
pub fn read_account_key(path: &std::path::Path) -> Result<SigningKey> {
    let raw = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&raw)
        .with_context(|| format!("{}: not a key file", path.display()))?;
    if v["type"] != "ed25519" {
        anyhow::bail!("{}: not an ed25519 key file", path.display());
    }
    let secret = v["secret"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("{}: no `secret`", path.display()))?;
    let b = plume_crypto::decode_hex_fixed::<32>(secret, "secret key")
        .with_context(|| format!("{}: field `secret`", path.display()))?;
    Ok(SigningKey::from_bytes(&b))
}
