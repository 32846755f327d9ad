//! Finality proofs a client checks offline with nothing but the genesis
//! validator set: transaction bytes -> leaf -> batch (Merkle path, author,
//! count: the batch digest) -> block (payload digest) -> parent links ->
//! the directly committed block -> two certificates (the two-chain commit
//! proof). Also the stored form of a
//! finalized block (the block plus each batch's transaction ids), from
//! which the node builds those proofs.

use crate::batch::{digest_from_root, item_leaf, items_root, BATCH_TXS_MAX};
use crate::codec::{self, CodecError, Reader, Writer};
use crate::consensus::{Block, PAYLOAD_DIGESTS_MAX};
use crate::scheme::BlsScheme;
use plume_crypto::merkle::{self, InclusionProof};
use plume_crypto::qc::ValidatorSet;
use plume_crypto::Digest;
use serde::{Deserialize, Serialize};

/// Most blocks between a transaction's block and its commit proof.
pub const PROOF_CHAIN_MAX: usize = 64;

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

/// One batch of a stored block: its author and the leaves of its items
/// (`batch::item_leaf` of each encoding), so inclusion paths can be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRecord {
    /// The batch's author.
    pub author: u32,
    /// The batch's expiry height (part of its digest).
    pub expires: u64,
    /// Leaves, in batch order.
    pub leaves: Vec<Digest>,
}

/// A finalized block as the node stores it.
#[derive(Clone, Debug)]
pub struct StoredBlock {
    /// The consensus block.
    pub block: Block<BlsScheme>,
    /// Per batch of its payload, the batch record.
    pub batches: Vec<BatchRecord>,
    /// The state root after executing it.
    pub state_root: Digest,
    /// Ids of the transactions it executed, in execution order (what
    /// catch-up serves: the store's transaction table holds their bytes).
    pub txs: Vec<Digest>,
}

/// Most transaction ids one block record lists.
pub const RECORD_TXS_MAX: usize = 1 << 20;

/// The stored form of a finalized block: the consensus block, per batch of
/// its payload the batch record, the state root after it and the ids of
/// the transactions it executed.
pub fn encode_block_record(
    block: &Block<BlsScheme>,
    batches: &[BatchRecord],
    state_root: &Digest,
    txs: &[Digest],
) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(512 + 32 * txs.len()));
    w.bytes(&codec::encode_block(block));
    w.digest(state_root);
    w.u32(batches.len() as u32);
    for b in batches {
        w.u32(b.author);
        w.u64(b.expires);
        w.u32(b.leaves.len() as u32);
        for d in &b.leaves {
            w.digest(d);
        }
    }
    w.u32(txs.len() as u32);
    for d in txs {
        w.digest(d);
    }
    w.0
}

/// The executed transaction ids of an [`encode_block_record`] record,
/// without decoding its block (no signature points are parsed).
pub fn record_tx_ids(raw: &[u8]) -> Result<Vec<Digest>, ProofError> {
    let what = "block record";
    let e = |err| ProofError::Decode { what, err };
    let mut r = Reader { b: raw };
    r.bytes(raw.len()).map_err(e)?;
    r.digest().map_err(e)?;
    let nb = r
        .count(PAYLOAD_DIGESTS_MAX, "too many batches")
        .map_err(e)?;
    for _ in 0..nb {
        r.u32().map_err(e)?;
        r.u64().map_err(e)?;
        let k = r.count(BATCH_TXS_MAX, "batch too large").map_err(e)?;
        for _ in 0..k {
            r.digest().map_err(e)?;
        }
    }
    let nt = r
        .count(RECORD_TXS_MAX, "too many transactions")
        .map_err(e)?;
    let mut txs = Vec::with_capacity(nt.min(r.b.len() / 32));
    for _ in 0..nt {
        txs.push(r.digest().map_err(e)?);
    }
    r.finish().map_err(e)?;
    Ok(txs)
}

/// Decode [`encode_block_record`].
pub fn decode_block_record(raw: &[u8]) -> Result<StoredBlock, ProofError> {
    let what = "block record";
    let e = |err| ProofError::Decode { what, err };
    let mut r = Reader { b: raw };
    let block_bytes = r.bytes(raw.len()).map_err(e)?;
    let block = codec::decode_block(block_bytes).map_err(e)?;
    let state_root = r.digest().map_err(e)?;
    let nb = r
        .count(PAYLOAD_DIGESTS_MAX, "too many batches")
        .map_err(e)?;
    let mut batches = Vec::with_capacity(nb);
    for _ in 0..nb {
        let author = r.u32().map_err(e)?;
        let expires = r.u64().map_err(e)?;
        let k = r.count(BATCH_TXS_MAX, "batch too large").map_err(e)?;
        let mut leaves = Vec::with_capacity(k);
        for _ in 0..k {
            leaves.push(r.digest().map_err(e)?);
        }
        batches.push(BatchRecord {
            author,
            expires,
            leaves,
        });
    }
    let nt = r
        .count(RECORD_TXS_MAX, "too many transactions")
        .map_err(e)?;
    let mut txs = Vec::with_capacity(nt.min(r.b.len() / 32));
    for _ in 0..nt {
        txs.push(r.digest().map_err(e)?);
    }
    r.finish().map_err(e)?;
    Ok(StoredBlock {
        block,
        batches,
        state_root,
        txs,
    })
}

/// Everything a client needs to check that a transaction is final.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FinalityProof {
    /// Transaction id (hex).
    pub tx: String,
    /// The transaction's full encoding (hex): its leaf in the batch is the
    /// hash of these bytes, signatures included.
    pub tx_bytes: String,
    /// Author of the transaction's batch (part of the batch digest).
    pub batch_author: u32,
    /// Expiry height of the transaction's batch (part of the batch digest).
    pub batch_expires: u64,
    /// Blocks (hex, wire encoding) from the transaction's block up to the
    /// directly committed block, each the parent of the next.
    pub chain: Vec<String>,
    /// Position of the batch in the first block's payload.
    pub batch_index: u32,
    /// Position of the transaction in its batch.
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

/// Check a proof's chain of blocks (hex) up to a directly committed block
/// and its commit proof (hex) against the committee of consensus chain
/// `chain_id`; returns the blocks, lowest first.
fn verify_chain(
    chain_hex: &[String],
    commit_proof: &str,
    committee: &ValidatorSet,
    chain_id: u64,
) -> Result<Vec<Block<BlsScheme>>, ProofError> {
    if chain_hex.is_empty() || chain_hex.len() > PROOF_CHAIN_MAX {
        return Err(invalid(format!(
            "chain must hold 1 to {PROOF_CHAIN_MAX} blocks"
        )));
    }
    let proof =
        codec::decode_commit_proof(&unhex("commit_proof", commit_proof)?).map_err(|err| {
            ProofError::Decode {
                what: "commit proof",
                err,
            }
        })?;
    let committed = proof
        .verify_direct(committee, chain_id)
        .map_err(|e| invalid(format!("commit proof: {e}")))?;
    let blocks: Vec<Block<BlsScheme>> = chain_hex
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
    Ok(blocks)
}

/// Check a proof offline against the genesis validator set of consensus
/// chain `chain` ([`crate::genesis::Genesis::consensus_chain`]). Returns
/// the height of the transaction's block.
pub fn verify(p: &FinalityProof, committee: &ValidatorSet, chain: u64) -> Result<u64, ProofError> {
    let blocks = verify_chain(&p.chain, &p.commit_proof, committee, chain)?;
    let first = &blocks[0];
    let batch = first
        .payload
        .get(p.batch_index as usize)
        .ok_or_else(|| invalid("batch_index out of range"))?;
    let tx = Digest::from_hex(&p.tx).map_err(|_| ProofError::Hex("tx"))?;
    let raw = unhex("tx_bytes", &p.tx_bytes)?;
    let decoded =
        crate::tx::Transaction::from_bytes(&raw).map_err(|e| invalid(format!("tx_bytes: {e}")))?;
    if decoded.body.signing_hash() != tx {
        return Err(invalid("tx_bytes are not the transaction named by tx"));
    }
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
    let root = incl
        .root_from(&merkle::leaf_hash(item_leaf(&raw).as_bytes()))
        .map_err(|e| invalid(format!("transaction not in batch: {e}")))?;
    if digest_from_root(p.batch_author, p.batch_expires, p.batch_len, &root) != *batch {
        return Err(invalid("transaction not in batch: digest mismatch"));
    }
    Ok(first.height)
}

/// Where a transaction is in a block, for its finality proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// Position of the batch in the block's payload.
    pub batch_index: u32,
    /// The batch's author.
    pub batch_author: u32,
    /// The batch's expiry height.
    pub batch_expires: u64,
    /// Position of the transaction in the batch.
    pub tx_index: u32,
    /// Batch length.
    pub batch_len: u32,
    /// Merkle siblings of its leaf.
    pub siblings: Vec<Digest>,
}

/// Build the inclusion part for the transaction whose encoding hashes to
/// `leaf` (`batch::item_leaf`) from a block record's batches.
pub fn locate(batches: &[BatchRecord], leaf: &Digest) -> Option<Located> {
    for (bi, b) in batches.iter().enumerate() {
        if let Some(ti) = b.leaves.iter().position(|d| d == leaf) {
            let hashed: Vec<Digest> = b
                .leaves
                .iter()
                .map(|d| merkle::leaf_hash(d.as_bytes()))
                .collect();
            debug_assert_eq!(merkle::root_of_leaves(&hashed), items_root(&b.leaves));
            let p = merkle::prove(&hashed, ti)?;
            return Some(Located {
                batch_index: bi as u32,
                batch_author: b.author,
                batch_expires: b.expires,
                tx_index: ti as u32,
                batch_len: b.leaves.len() as u32,
                siblings: p.siblings,
            });
        }
    }
    None
}

/// Proof that the validators certified `root` as the state after block
/// `height`: the block that carries it (at `height + STATE_LAG`) and the
/// blocks above it up to a directly committed one, with its commit proof.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RootProof {
    /// The height whose state it is.
    pub height: u64,
    /// The state root (hex).
    pub root: String,
    /// Blocks (hex, wire encoding) from the one carrying the root up to the
    /// directly committed block, each the parent of the next.
    pub chain: Vec<String>,
    /// The commit proof (hex) of the last one.
    pub commit_proof: String,
}

/// Check a root proof offline against the genesis validator set of
/// consensus chain `chain`. Returns (height, root).
pub fn verify_root(
    p: &RootProof,
    committee: &ValidatorSet,
    chain: u64,
) -> Result<(u64, Digest), ProofError> {
    let blocks = verify_chain(&p.chain, &p.commit_proof, committee, chain)?;
    let carrier = &blocks[0];
    let root = Digest::from_hex(&p.root).map_err(|_| ProofError::Hex("root"))?;
    if crate::consensus::state_height(carrier.height) != p.height || carrier.height <= p.height {
        return Err(invalid(format!(
            "block {} carries the root of height {}, not {}",
            carrier.height,
            crate::consensus::state_height(carrier.height),
            p.height
        )));
    }
    if carrier.state_root != root {
        return Err(invalid("the certified block carries another state root"));
    }
    Ok((p.height, root))
}
