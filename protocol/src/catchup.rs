//! Catch-up from the block store: how a validator any distance behind
//! checks a run of finalized blocks a peer served from its store before
//! executing them (`NetMsg::CatchUp` in the node).
//!
//! A segment is a run of consecutive block records (block, batch records,
//! executed transaction ids) with the executed transactions' bytes. Nothing
//! in it is trusted; [`verify_segment`] establishes, with the genesis
//! committee alone:
//!
//! 1. the records decode, every block hashes to its id, and the run starts
//!    on our last finalized block and is hash-linked, height by height;
//! 2. **finality**: a block `i` whose child `i+1` is in the next view and
//!    is certified by the justify of `i+2` is directly committed (the
//!    two-chain rule); such a commit point is checked with
//!    [`CommitProof::verify_direct`] (both aggregate signatures) at most
//!    [`COMMIT_POINT_SPACING`] blocks apart, so every block gets a commit
//!    proof whose chain stays short enough for finality proofs; blocks
//!    below a checked commit point are final by the hash links;
//! 3. **state**: only blocks whose certified root is in the run (in a
//!    block proven final) are returned, each with the root block
//!    `h + STATE_LAG` carries (the validators voted for it only if their
//!    own root matched): the executor must arrive at exactly that root
//!    before committing; and only up to a checked commit point among them,
//!    so each returned block's commit proof lies within the returned
//!    blocks (a finality proof never names a block the store lacks);
//! 4. **transactions**: each batch record hashes to the batch digest the
//!    block names, and each executed transaction's bytes hash to its id
//!    and to a leaf of one of the block's batches. Which of them ran is not
//!    re-derived: a server that adds, drops or reorders one that changes
//!    state cannot produce the certified root.
//!
//! Signatures of the executed transactions are checked again (a server
//! could otherwise list a transaction its batch's verifiers refused, whose
//! failure might leave the state alone). The executor also refuses a
//! transaction already in its store (a replay). A segment that fails any
//! check is refused whole (the node asks another peer).

use crate::batch::{digest_from_root, item_leaf, items_root};
use crate::codec::{Reader, Writer};
use crate::consensus::{Block, CommitProof, STATE_LAG};
use crate::proof::{decode_block_record, BatchRecord, ProofError, RECORD_TXS_MAX};
use crate::scheme::BlsScheme;
use crate::tx::{verify_batch, Transaction, TX_BYTES_MAX};
use plume_crypto::qc::ValidatorSet;
use plume_crypto::Digest;
use std::collections::HashSet;

/// Most blocks in one segment.
pub const SEGMENT_BLOCKS_MAX: usize = 512;
/// Most bytes of records and transactions one segment carries (a server
/// stops adding blocks past it; a single larger block still goes alone).
pub const SEGMENT_BYTES_MAX: usize = 8 << 20;
/// Largest block record accepted in a segment.
pub const RECORD_BYTES_MAX: usize = 12 << 20;
/// Most blocks between two checked commit points (each proof's chain then
/// stays within `proof::PROOF_CHAIN_MAX`); each check is two aggregate
/// signature verifications, the main cost of checking a segment.
pub const COMMIT_POINT_SPACING: usize = 60;

/// One block of a segment: its stored record and the bytes of the
/// transactions it executed (in the record's order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentBlock {
    /// `proof::encode_block_record` bytes.
    pub record: Vec<u8>,
    /// Executed transactions' encodings.
    pub txs: Vec<Vec<u8>>,
}

impl SegmentBlock {
    /// Bytes it occupies on the wire (about).
    pub fn size(&self) -> usize {
        8 + self.record.len() + self.txs.iter().map(|t| t.len() + 4).sum::<usize>()
    }

    /// Append to `w`.
    pub fn write(&self, w: &mut Writer) {
        w.bytes(&self.record);
        w.u32(self.txs.len() as u32);
        for t in &self.txs {
            w.bytes(t);
        }
    }

    /// Read what [`SegmentBlock::write`] wrote (bounded before allocating).
    pub fn read(r: &mut Reader<'_>) -> Result<SegmentBlock, crate::codec::CodecError> {
        let record = r.bytes(RECORD_BYTES_MAX)?.to_vec();
        let n = r.count(RECORD_TXS_MAX, "too many transactions in a segment block")?;
        let mut txs = Vec::with_capacity(n.min(r.b.len() / 4));
        for _ in 0..n {
            txs.push(r.bytes(TX_BYTES_MAX)?.to_vec());
        }
        Ok(SegmentBlock { record, txs })
    }
}

/// A block of a segment that passed [`verify_segment`].
#[derive(Clone, Debug)]
pub struct VerifiedBlock {
    /// The block (final).
    pub block: Block<BlsScheme>,
    /// Its batch records (each checked against its payload digest, or a
    /// placeholder for a batch final in an earlier block).
    pub batches: Vec<BatchRecord>,
    /// The root the validators certified for the state after it.
    pub certified_root: Digest,
    /// Executed transactions: (id, encoding, decoded).
    pub txs: Vec<(Digest, Vec<u8>, Transaction)>,
    /// A checked commit proof for it (of it or of a descendant at most
    /// [`COMMIT_POINT_SPACING`] blocks up in the common case).
    pub proof: CommitProof<BlsScheme>,
}

fn invalid(s: impl Into<String>) -> ProofError {
    ProofError::Invalid(s.into())
}

/// Batch records for a placeholder: a batch final in an earlier block.
pub const PLACEHOLDER_AUTHOR: u32 = u32::MAX;

/// Check `seg` against our last finalized block (`tip_height`, `tip_id`)
/// and the committee of consensus chain `chain`; returns the blocks that
/// may be executed, lowest first (possibly none: a run too short to
/// certify the state after its first block). Leading blocks at or below
/// our tip are skipped unchecked (we committed them meanwhile). See the
/// module docs.
pub fn verify_segment(
    seg: &[SegmentBlock],
    tip_height: u64,
    tip_id: &Digest,
    committee: &ValidatorSet,
    chain: u64,
) -> Result<Vec<VerifiedBlock>, ProofError> {
    if seg.len() > SEGMENT_BLOCKS_MAX {
        return Err(invalid("segment too long"));
    }
    let mut recs = Vec::with_capacity(seg.len());
    let mut first = 0;
    for (i, sb) in seg.iter().enumerate() {
        let r = decode_block_record(&sb.record)?;
        if recs.is_empty() && r.block.height <= tip_height {
            // Committed here meanwhile (asked before our tip moved).
            first = i + 1;
            continue;
        }
        let b = &r.block;
        if b.compute_id() != b.id {
            return Err(invalid(format!(
                "block at height {} does not hash to its id",
                b.height
            )));
        }
        let (want_h, want_parent) = match recs.last() {
            None => (tip_height.checked_add(1), *tip_id),
            Some(prev) => {
                let p: &crate::proof::StoredBlock = prev;
                (p.block.height.checked_add(1), p.block.id)
            }
        };
        if Some(b.height) != want_h
            || b.parent != want_parent
            || b.justify.block != b.parent
            || b.justify.height.checked_add(1) != Some(b.height)
        {
            return Err(invalid(format!(
                "segment block {i} (height {}) does not extend the previous one",
                b.height
            )));
        }
        if r.txs.len() != sb.txs.len() {
            return Err(invalid(format!(
                "block {} lists {} transactions but {} came",
                b.height,
                r.txs.len(),
                sb.txs.len()
            )));
        }
        recs.push(r);
    }
    // Commit points: i with child i+1 in the next view, certified by i+2.
    let is_point = |i: usize| {
        i + 2 < recs.len()
            && recs[i + 1].block.epoch == recs[i].block.epoch
            && recs[i + 1].block.view == recs[i].block.view.wrapping_add(1)
            && recs[i + 2].block.justify.block == recs[i + 1].block.id
    };
    let mut proofs: Vec<CommitProof<BlsScheme>> = Vec::new();
    // The commit point each block's proof names (index in `recs`).
    let mut points: Vec<usize> = Vec::new();
    let check = |c: usize| -> Result<CommitProof<BlsScheme>, ProofError> {
        let proof = CommitProof {
            child: recs[c + 1].block.clone(),
            child_qc: recs[c + 2].block.justify.clone(),
        };
        let committed = proof.verify_direct(committee, chain).map_err(|e| {
            invalid(format!(
                "commit point at height {}: {e}",
                recs[c].block.height
            ))
        })?;
        if committed != recs[c].block.id {
            return Err(invalid("commit proof names another block"));
        }
        Ok(proof)
    };
    let mut start = 0;
    while start < recs.len() {
        let window_end = (start + COMMIT_POINT_SPACING).min(recs.len());
        let c = (start..window_end)
            .rev()
            .find(|&i| is_point(i))
            .or_else(|| (window_end..recs.len()).find(|&i| is_point(i)));
        let Some(c) = c else { break };
        let proof = check(c)?;
        proofs.extend(std::iter::repeat_n(proof, c + 1 - start));
        points.extend(std::iter::repeat_n(c, c + 1 - start));
        start = c + 1;
    }
    let lag = STATE_LAG as usize;
    let mut exec_len = proofs.len().saturating_sub(lag);
    // The executable blocks' roots are certified by final blocks (those
    // proofs reach up to `lag` blocks above them). Their own proofs must
    // stay within the executed blocks (the store then holds every block a
    // finality proof names): where the last window's commit point is above
    // them, check one more commit point among them and stop there.
    if exec_len > 0 && points[exec_len - 1] >= exec_len {
        let window_start = points
            .iter()
            .take(exec_len)
            .rposition(|&c| c < exec_len)
            .map_or(0, |k| points[k] + 1);
        match (window_start..exec_len).rev().find(|&i| is_point(i)) {
            Some(c) => {
                let proof = check(c)?;
                for p in &mut proofs[window_start..=c] {
                    *p = proof.clone();
                }
                exec_len = c + 1;
            }
            None => exec_len = window_start,
        }
    }
    let roots: Vec<Digest> = recs.iter().map(|r| r.block.state_root).collect();
    let mut out = Vec::with_capacity(exec_len);
    for (i, (r, proof)) in recs.into_iter().zip(proofs).take(exec_len).enumerate() {
        let certified_root = roots[i + lag];
        let b = r.block;
        if r.batches.len() != b.payload.len() {
            return Err(invalid(format!(
                "block {}: {} batch records for {} batches",
                b.height,
                r.batches.len(),
                b.payload.len()
            )));
        }
        let mut leaves: HashSet<Digest> = HashSet::new();
        for (rec, d) in r.batches.iter().zip(&b.payload) {
            if rec.author == PLACEHOLDER_AUTHOR && rec.leaves.is_empty() {
                continue;
            }
            let n = u32::try_from(rec.leaves.len()).map_err(|_| invalid("batch too large"))?;
            if digest_from_root(rec.author, rec.expires, n, &items_root(&rec.leaves)) != *d {
                return Err(invalid(format!(
                    "block {}: a batch record does not match its digest",
                    b.height
                )));
            }
            leaves.extend(rec.leaves.iter().copied());
        }
        let mut decoded = Vec::with_capacity(r.txs.len());
        for (id, raw) in r.txs.iter().zip(&seg[first + i].txs) {
            if !leaves.contains(&item_leaf(raw)) {
                return Err(invalid(format!(
                    "block {}: transaction {id} is in none of its batches",
                    b.height
                )));
            }
            let tx = Transaction::from_bytes(raw)
                .map_err(|e| invalid(format!("block {}: transaction {id}: {e}", b.height)))?;
            if tx.body.signing_hash() != *id {
                return Err(invalid(format!(
                    "block {}: transaction bytes are not {id}",
                    b.height
                )));
            }
            decoded.push(tx);
        }
        if let Some(&k) = verify_batch(&decoded).first() {
            return Err(invalid(format!(
                "block {}: transaction {} has a bad signature (it never ran)",
                b.height, r.txs[k]
            )));
        }
        let txs = r
            .txs
            .iter()
            .copied()
            .zip(seg[first + i].txs.iter().cloned())
            .zip(decoded)
            .map(|((id, raw), tx)| (id, raw, tx))
            .collect();
        out.push(VerifiedBlock {
            block: b,
            batches: r.batches,
            certified_root,
            txs,
            proof,
        });
    }
    Ok(out)
}

/// Encode a segment (after its tag).
pub fn write_segment(w: &mut Writer, seg: &[SegmentBlock]) {
    w.u32(seg.len() as u32);
    for b in seg {
        b.write(w);
    }
}

/// Decode [`write_segment`].
pub fn read_segment(r: &mut Reader<'_>) -> Result<Vec<SegmentBlock>, crate::codec::CodecError> {
    let n = r.count(SEGMENT_BLOCKS_MAX, "too many blocks in a segment")?;
    let mut seg = Vec::with_capacity(n);
    for _ in 0..n {
        seg.push(SegmentBlock::read(r)?);
    }
    Ok(seg)
}
