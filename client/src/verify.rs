//! Offline checks a client makes with nothing but the genesis file: a
//! transaction's finality proof against the genesis validator set.

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
