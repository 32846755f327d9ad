//! What every `plume tx ...` and governed `plume compliance ...` command
//! shares: the node, the payer's key, chain id and sequence, fees, and
//! submitting (or a dry run: the verdict inclusion would give).

use anyhow::Result;
use plume_client::txbuild::Fees;
use serde_json::json;
use std::path::PathBuf;

/// Options of a command that signs and submits a transaction.
#[derive(clap::Args, Debug)]
pub struct TxCommon {
    /// Node API address.
    #[arg(long, default_value = "127.0.0.1:26700")]
    pub node: String,
    /// Payer's account key file.
    #[arg(long)]
    pub key: PathBuf,
    /// Chain id (default: asked from the node).
    #[arg(long)]
    pub chain_id: Option<String>,
    /// Sequence (default: asked from the node).
    #[arg(long)]
    pub sequence: Option<u64>,
    /// Max fee per gas.
    #[arg(long, default_value_t = 1000)]
    pub max_fee: u64,
    /// Do not submit: print the receipt and compliance verdict the
    /// transaction would get in the next block (`plume_checkCompliance`).
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// `plume compliance` changes only: instead of submitting the call,
    /// propose it to governance with this deposit (for a compliance engine
    /// whose admin is the governance account; it runs when the proposal
    /// passes).
    #[arg(long)]
    pub via_governance: Option<u128>,
}

impl TxCommon {
    /// The fees these options ask for.
    pub fn fees(&self) -> Fees {
        Fees {
            max_fee_per_gas: self.max_fee,
            ..Fees::default()
        }
    }
}

/// The payer's key, the chain id and the payer's next sequence.
pub fn tx_prelude(c: &TxCommon) -> Result<(plume_crypto::ed25519::SigningKey, String, u64)> {
    let key = plume_client::keyfile::read_account_key(&c.key)?;
    let mut node = plume_client::Node::new(&c.node);
    let chain = match &c.chain_id {
        Some(c) => c.clone(),
        None => node.chain_id()?,
    };
    let seq = match c.sequence {
        Some(s) => s,
        None => node.next_sequence(&key.public_key().address())?,
    };
    Ok((key, chain, seq))
}

/// Submit `tx` and print its id, or with `--dry-run` print what inclusion
/// would give.
pub fn submit_or_dry_run(c: &TxCommon, tx: plume_protocol::Transaction) -> Result<()> {
    if c.dry_run {
        let v = plume_client::rpc(
            &c.node,
            "plume_checkCompliance",
            json!([hex::encode(tx.to_bytes())]),
        )?;
        if c.json {
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!(
                "dry run at height {}: {} ({}, code {}); compliance verdict: {}{}",
                v["height"],
                v["receipt"]["status"].as_str().unwrap_or("?"),
                v["code_name"].as_str().unwrap_or("?"),
                v["code"],
                v["verdict"].as_str().unwrap_or("?"),
                v["rule_id"]
                    .as_u64()
                    .map(|r| format!(" by rule {r}"))
                    .unwrap_or_default()
            );
        }
        return Ok(());
    }
    let h = plume_client::Node::new(&c.node).submit(&tx)?;
    if c.json {
        println!("{}", json!({"hash": h.to_hex()}));
    } else {
        println!("submitted {h}");
    }
    Ok(())
}
