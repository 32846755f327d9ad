//! Finality proofs a client checks offline with nothing but the genesis
//! validator set: transaction -> batch (Merkle path) -> block (payload
//! digest) -> parent links -> the directly committed block -> two
//! certificates (the two-chain commit proof).

use crate::runtime::{batch_root, decode_proof};
use crate::wire;
use anyhow::{anyhow, bail, Context, Result};
use plume_consensus::{Block, BlsScheme};
use plume_crypto::merkle::{self, InclusionProof};
use plume_crypto::qc::ValidatorSet;
use plume_crypto::Digest;
use serde::{Deserialize, Serialize};

/// Most blocks between a transaction's block and its commit proof.
pub const PROOF_CHAIN_MAX: usize = 64;

/// The stored form of a finalized block: the consensus block and the
/// transaction ids of each of its batches (so inclusion paths can be built).
pub fn encode_block_record(block: &Block<BlsScheme>, batches: &[Vec<Digest>]) -> Vec<u8> {
    let b = wire::encode_block(block);
    let mut out = Vec::with_capacity(b.len() + 64);
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(&b);
    out.extend_from_slice(&(batches.len() as u32).to_le_bytes());
    for ids in batches {
        out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for d in ids {
            out.extend_from_slice(d.as_bytes());
        }
    }
    out
}

/// Decode [`encode_block_record`].
pub fn decode_block_record(raw: &[u8]) -> Result<(Block<BlsScheme>, Vec<Vec<Digest>>)> {
    let mut pos = 0usize;
    let u32_at = |raw: &[u8], pos: &mut usize| -> Result<usize> {
        let v = raw
            .get(*pos..*pos + 4)
            .ok_or_else(|| anyhow!("block record truncated"))?;
        *pos += 4;
        Ok(u32::from_le_bytes(v.try_into().expect("4")) as usize)
    };
    let n = u32_at(raw, &mut pos)?;
    let block = wire::decode_block(
        raw.get(pos..pos + n)
            .ok_or_else(|| anyhow!("block record truncated"))?,
    )?;
    pos += n;
    let nb = u32_at(raw, &mut pos)?;
    if nb > plume_consensus::PAYLOAD_DIGESTS_MAX {
        bail!("block record: too many batches");
    }
    let mut batches = Vec::with_capacity(nb);
    for _ in 0..nb {
        let k = u32_at(raw, &mut pos)?;
        if k > wire::BATCH_TXS_MAX {
            bail!("block record: batch too large");
        }
        let mut ids = Vec::with_capacity(k);
        for _ in 0..k {
            let d = raw
                .get(pos..pos + 32)
                .ok_or_else(|| anyhow!("block record truncated"))?;
            ids.push(Digest(d.try_into().expect("32")));
            pos += 32;
        }
        batches.push(ids);
    }
    if pos != raw.len() {
        bail!("block record: trailing bytes");
    }
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
    /// The commit proof (hex): the committed block's child and its certificate.
    pub commit_proof: String,
}

/// Check a proof offline against the genesis validator set. Returns the
/// height of the transaction's block.
pub fn verify(p: &FinalityProof, committee: &ValidatorSet) -> Result<u64> {
    if p.chain.is_empty() || p.chain.len() > PROOF_CHAIN_MAX {
        bail!("chain must hold 1 to {PROOF_CHAIN_MAX} blocks");
    }
    let proof = decode_proof(&hex::decode(&p.commit_proof).context("commit_proof hex")?)?;
    let committed = proof
        .verify_direct(committee)
        .map_err(|e| anyhow!("commit proof: {e}"))?;
    let blocks: Vec<Block<BlsScheme>> = p
        .chain
        .iter()
        .map(|h| Ok(wire::decode_block(&hex::decode(h).context("chain hex")?)?))
        .collect::<Result<_>>()?;
    for b in &blocks {
        if b.compute_id() != b.id {
            bail!("block at height {} does not hash to its id", b.height);
        }
    }
    for w in blocks.windows(2) {
        if w[1].parent != w[0].id || w[1].height != w[0].height + 1 {
            bail!(
                "chain broken between heights {} and {}",
                w[0].height,
                w[1].height
            );
        }
    }
    if blocks.last().expect("non-empty").id != committed {
        bail!("chain does not end at the committed block");
    }
    let first = &blocks[0];
    let batch = first
        .payload
        .get(p.batch_index as usize)
        .ok_or_else(|| anyhow!("batch_index out of range"))?;
    let tx = Digest::from_hex(&p.tx)?;
    let siblings = p
        .siblings
        .iter()
        .map(|s| Digest::from_hex(s))
        .collect::<Result<Vec<_>, _>>()?;
    let incl = InclusionProof {
        index: p.tx_index,
        leaf_count: p.batch_len,
        siblings,
    };
    incl.verify(batch, &merkle::leaf_hash(tx.as_bytes()))
        .map_err(|e| anyhow!("transaction not in batch: {e}"))?;
    Ok(first.height)
}

/// Build the inclusion part for `tx` from a block record's batches.
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
