//! Finality proofs a client checks offline with nothing but the genesis
//! validator set: transaction -> batch (Merkle path) -> block (payload
//! digest) -> parent links -> the directly committed block -> two
//! certificates (the two-chain commit proof). Also the stored form of a
//! finalized block (the block plus each batch's transaction ids), from
//! which the node builds those proofs.

use crate::batch::batch_root;
use crate::codec::{self, CodecError, Reader, Writer};
use crate::consensus::{Block, PAYLOAD_DIGESTS_MAX};
use crate::scheme::BlsScheme;
use plume_crypto::merkle::{self, InclusionProof};
use plume_crypto::qc::ValidatorSet;
use plume_crypto::Digest;
use serde::{Deserialize, Serialize};

/// Most blocks between a transaction's block and its commit proof.
pub const PROOF_CHAIN_MAX: usize = 64;
/// Most transactions in one batch.
pub const BATCH_TXS_MAX: usize = 4096;

/// Why a proof or a block record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// Bytes that do not decode.
    #[error("{what}: {err}")]
    Decode {
        /// Which part.
        what: &'static str,
        /// Why.
        err: CodecError,
    },
    /// Not hex.
    #[error("{0}: not hex")]
    Hex(&'static str),
    /// Decodes, but does not prove what it claims.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(s: impl Into<String>) -> ProofError {
    ProofError::Invalid(s.into())
}

/// The stored form of a finalized block: the consensus block and the
/// transaction ids of each of its batches (so inclusion paths can be built).
pub fn encode_block_record(block: &Block<BlsScheme>, batches: &[Vec<Digest>]) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(512));
    w.bytes(&codec::encode_block(block));
    w.u32(batches.len() as u32);
    for ids in batches {
        w.u32(ids.len() as u32);
        for d in ids {
            w.digest(d);
        }
    }
    w.0
}

/// Decode [`encode_block_record`].
pub fn decode_block_record(raw: &[u8]) -> Result<(Block<BlsScheme>, Vec<Vec<Digest>>), ProofError> {
    let what = "block record";
    let e = |err| ProofError::Decode { what, err };
    let mut r = Reader { b: raw };
    let block_bytes = r.bytes(raw.len()).map_err(e)?;
    let block = codec::decode_block(block_bytes).map_err(e)?;
    let nb = r
        .count(PAYLOAD_DIGESTS_MAX, "too many batches")
        .map_err(e)?;
    let mut batches = Vec::with_capacity(nb);
    for _ in 0..nb {
        let k = r.count(BATCH_TXS_MAX, "batch too large").map_err(e)?;
        let mut ids = Vec::with_capacity(k);
        for _ in 0..k {
            ids.push(r.digest().map_err(e)?);
        }
        batches.push(ids);
    }
    r.finish().map_err(e)?;
    Ok((block, batches))
}

/// Everything a client needs to check that a transaction is final.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FinalityProof {
    /// Transaction id (hex).
    pub tx: String,
    /// Blocks (hex, wire encoding) from the transaction's block up to the
    /// directly committed block, each the parent of the next.
    pub chain: Vec<String>,
    /// Position of the batch in the first block's payload.
    pub batch_index: u32,
    /// Merkle path of the transaction id in its batch.
    pub tx_index: u32,
    /// Batch length.
    pub batch_len: u32,
    /// Sibling hashes (hex).
    pub siblings: Vec<String>,
    /// The commit proof (hex, [`codec::encode_commit_proof`]): the committed
    /// block's child and its certificate.
    pub commit_proof: String,
}

fn unhex(what: &'static str, s: &str) -> Result<Vec<u8>, ProofError> {
    hex::decode(s).map_err(|_| ProofError::Hex(what))
}

/// Check a proof offline against the genesis validator set. Returns the
/// height of the transaction's block.
pub fn verify(p: &FinalityProof, committee: &ValidatorSet) -> Result<u64, ProofError> {
    if p.chain.is_empty() || p.chain.len() > PROOF_CHAIN_MAX {
        return Err(invalid(format!(
            "chain must hold 1 to {PROOF_CHAIN_MAX} blocks"
        )));
    }
    let proof =
        codec::decode_commit_proof(&unhex("commit_proof", &p.commit_proof)?).map_err(|err| {
            ProofError::Decode {
                what: "commit proof",
                err,
            }
        })?;
    let committed = proof
        .verify_direct(committee)
        .map_err(|e| invalid(format!("commit proof: {e}")))?;
    let blocks: Vec<Block<BlsScheme>> = p
        .chain
        .iter()
        .map(|h| {
            codec::decode_block(&unhex("chain", h)?).map_err(|err| ProofError::Decode {
                what: "chain block",
                err,
            })
        })
        .collect::<Result<_, _>>()?;
    for b in &blocks {
        if b.compute_id() != b.id {
            return Err(invalid(format!(
                "block at height {} does not hash to its id",
                b.height
            )));
        }
    }
    for w in blocks.windows(2) {
        if w[1].parent != w[0].id || Some(w[1].height) != w[0].height.checked_add(1) {
            return Err(invalid(format!(
                "chain broken between heights {} and {}",
                w[0].height, w[1].height
            )));
        }
    }
    if blocks.last().expect("non-empty").id != committed {
        return Err(invalid("chain does not end at the committed block"));
    }
    let first = &blocks[0];
    let batch = first
        .payload
        .get(p.batch_index as usize)
        .ok_or_else(|| invalid("batch_index out of range"))?;
    let tx = Digest::from_hex(&p.tx).map_err(|_| ProofError::Hex("tx"))?;
    let siblings = p
        .siblings
        .iter()
        .map(|s| Digest::from_hex(s).map_err(|_| ProofError::Hex("siblings")))
        .collect::<Result<Vec<_>, _>>()?;
    let incl = InclusionProof {
        index: p.tx_index,
        leaf_count: p.batch_len,
        siblings,
    };
    incl.verify(batch, &merkle::leaf_hash(tx.as_bytes()))
        .map_err(|e| invalid(format!("transaction not in batch: {e}")))?;
    Ok(first.height)
}

/// Build the inclusion part for `tx` from a block record's batches:
/// (batch index, index in the batch, batch length, Merkle siblings).
pub fn locate(batches: &[Vec<Digest>], tx: &Digest) -> Option<(u32, u32, u32, Vec<Digest>)> {
    for (bi, ids) in batches.iter().enumerate() {
        if let Some(ti) = ids.iter().position(|d| d == tx) {
            let leaves: Vec<Digest> = ids
                .iter()
                .map(|d| merkle::leaf_hash(d.as_bytes()))
                .collect();
            debug_assert_eq!(merkle::root_of_leaves(&leaves), batch_root(ids));
            let p = merkle::prove(&leaves, ti)?;
            return Some((bi as u32, ti as u32, ids.len() as u32, p.siblings));
        }
    }
    None
}
