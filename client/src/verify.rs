//! Offline checks a client makes with nothing but the genesis file: a
//! transaction's finality proof against the genesis validator set, and an
//! account's state against a state root the validators certified.

use plume_protocol::genesis::{Genesis, GenesisError};
use plume_protocol::proof::{self, FinalityProof, ProofError};
use std::path::Path;

/// Read and validate a genesis file (errors name the file and the field).
pub fn load_genesis(path: &Path) -> Result<Genesis, GenesisError> {
    let bytes = std::fs::read(path)
        .map_err(|e| GenesisError(format!("{}: cannot read: {e}", path.display())))?;
    Genesis::parse(&bytes, &path.display().to_string())
}

/// Why a proof was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The genesis does not give a usable validator set.
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    /// The proof's JSON is not a finality proof.
    #[error("not a finality proof: {0}")]
    Json(String),
    /// The state proof does not hold.
    #[error("state proof: {0}")]
    State(String),
    /// The proof does not prove finality.
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// Check a finality proof as a node's `plume_getTransaction` returns it
/// (`finality_proof`) against `genesis`. Returns the height of the
/// transaction's block.
pub fn verify_finality(
    proof_json: &serde_json::Value,
    genesis: &Genesis,
) -> Result<u64, VerifyError> {
    let p: FinalityProof =
        serde_json::from_value(proof_json.clone()).map_err(|e| VerifyError::Json(e.to_string()))?;
    let set = genesis.validator_set()?;
    Ok(proof::verify(&p, &set, genesis.consensus_chain())?)
}

/// An account checked against a certified root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAccount {
    /// Next sequence.
    pub sequence: u64,
    /// PLUME balance.
    pub balance: u128,
    /// The height whose state it is.
    pub height: u64,
}

/// Check an account as `plume_getAccount` returns it against the root
/// proof `plume_getStateRoot [height]` returns, and `genesis`: the root is
/// certified by the validators, and the account's value (or its absence)
/// is in the state under it.
pub fn verify_account(
    account_json: &serde_json::Value,
    root_json: &serde_json::Value,
    genesis: &Genesis,
) -> Result<VerifiedAccount, VerifyError> {
    use plume_protocol::state_proof::StateProof;
    let bad = |m: &str| VerifyError::State(m.to_string());
    let rp: proof::RootProof =
        serde_json::from_value(root_json.clone()).map_err(|e| VerifyError::Json(e.to_string()))?;
    let set = genesis.validator_set()?;
    let (height, root) = proof::verify_root(&rp, &set, genesis.consensus_chain())?;
    if account_json["height"].as_u64() != Some(height)
        || account_json["state_root"].as_str() != Some(root.to_hex().as_str())
    {
        return Err(bad("the account was read at another height or root"));
    }
    let address = plume_crypto::ed25519::Address::from_hex(
        account_json["address"]
            .as_str()
            .ok_or_else(|| bad("no address"))?,
    )
    .map_err(|_| bad("address"))?;
    let key = plume_protocol::account::account_key(&address.0);
    let value = match account_json["value"].as_str() {
        Some(h) => Some(hex::decode(h).map_err(|_| bad("value is not hex"))?),
        None => None,
    };
    let proof_bytes = hex::decode(
        account_json["state_proof"]
            .as_str()
            .ok_or_else(|| bad("no state proof"))?,
    )
    .map_err(|_| bad("state proof is not hex"))?;
    let sp = StateProof::from_bytes(&proof_bytes).map_err(|e| VerifyError::State(e.to_string()))?;
    sp.verify(&root, &key, value.as_deref())
        .map_err(|e| VerifyError::State(e.to_string()))?;
    let (sequence, balance) = match &value {
        Some(v) => plume_protocol::account::decode_account_value(v)
            .ok_or_else(|| bad("account value of the wrong length"))?,
        None => (0, 0),
    };
    let claims = account_json["balance"].as_str() == Some(balance.to_string().as_str())
        && account_json["sequence"].as_u64() == Some(sequence);
    if !claims {
        return Err(bad("balance or sequence differ from the proven value"));
    }
    Ok(VerifiedAccount {
        sequence,
        balance,
        height,
    })
}
