//! The checks a driver makes before it hands a peer's item to the
//! [`crate::Batcher`]: one implementation, used by the node's signature
//! role and by the simulator, so the simulator runs the rules the node
//! runs (no simulator-only shortcut).
//!
//! - [`open_peer_batch`]: decode a peer's batch, compute its digest from the
//!   bytes, refuse it when it does not come from its author (without a
//!   certificate) or when a certificate that comes with it is not for these
//!   bytes or does not verify;
//! - [`verdict_of`]: a verifier's verdict on a batch (which items do not
//!   decode or carry a signature that fails the chain's rule, ZIP-215);
//! - [`vote_is_valid`]: a batch vote signed by its voter's network key.

use crate::cache::Batch;
use plume_crypto::zip215;
use plume_protocol::batch::{BatchCertificate, BatchCommittee, BatchVote, Verdict};
use plume_protocol::{PreparedTx, Transaction};
use std::sync::Arc;

/// How a batch digest is computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DigestRule {
    /// Over the full encoding of every item (`batch_digest`): two
    /// versions of a batch never share a digest. The only rule a node
    /// runs.
    #[default]
    Bound,
    /// DELIBERATELY UNSAFE, for the simulator's mutation test of review
    /// C1: over the signing hashes of the bodies only (signatures outside
    /// the digest), as before batch certification. Two versions of a batch
    /// that differ in a signature share one digest.
    BodyOnly,
}

impl DigestRule {
    /// The digest of `author`'s batch of `raw` items expiring at `expires`.
    pub fn digest(self, author: u32, expires: u64, raw: &[Vec<u8>]) -> plume_crypto::Digest {
        match self {
            DigestRule::Bound => plume_protocol::batch::batch_digest(author, expires, raw),
            DigestRule::BodyOnly => {
                let leaves: Vec<plume_crypto::Digest> = raw
                    .iter()
                    .map(|r| match Transaction::from_bytes(r) {
                        Ok(tx) => tx.body.signing_hash(),
                        Err(_) => plume_protocol::batch::item_leaf(r),
                    })
                    .collect();
                let root = plume_protocol::batch::items_root(&leaves);
                plume_protocol::batch::digest_from_root(author, expires, raw.len() as u32, &root)
            }
        }
    }
}

/// Who sent a batch and what it claims to be.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    /// The peer it came from.
    pub from: u32,
    /// The author it names.
    pub author: u32,
    /// Its expiry height.
    pub expires: u64,
}

/// Why a peer's batch is not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchRefusal {
    /// The author is not a committee member.
    #[error("the batch names an author outside the committee")]
    UnknownAuthor,
    /// Without a certificate only its author may send it (and never under
    /// our own name).
    #[error("a batch without a certificate sent under another validator's name")]
    NotFromAuthor,
    /// The certificate that came with it is for other bytes.
    #[error("the certificate is for another batch")]
    CertMismatch,
    /// The certificate does not verify.
    #[error("the certificate does not verify")]
    BadCert,
}

/// Decode a peer's batch (`prepare` decodes module calls, as the node's
/// registry does) and check a certificate that came with it against the
/// bytes. Nothing is kept on a refusal: the peer lied.
#[allow(clippy::too_many_arguments)]
pub fn open_peer_batch(
    sent: Sent,
    txs: Vec<Vec<u8>>,
    cert: Option<BatchCertificate>,
    me: u32,
    chain: u64,
    committee: &BatchCommittee,
    rule: DigestRule,
    prepare: &dyn Fn(&mut PreparedTx),
) -> Result<(Arc<Batch>, Option<Arc<BatchCertificate>>), BatchRefusal> {
    let author = sent.author;
    if author as usize >= committee.len() {
        return Err(BatchRefusal::UnknownAuthor);
    }
    if cert.is_none() && (author != sent.from || author == me) {
        return Err(BatchRefusal::NotFromAuthor);
    }
    let mut batch = Batch::from_raw(author, sent.expires, txs);
    if rule != DigestRule::Bound {
        batch.digest = rule.digest(author, sent.expires, &batch.raw);
    }
    for t in batch.txs.iter_mut().flatten() {
        prepare(t);
    }
    let cert = match cert {
        None => None,
        Some(c) => {
            let matches = c.digest() == batch.digest
                && c.id.author == author
                && c.id.expires == batch.expires
                && c.id.items as usize == batch.len();
            if !matches {
                return Err(BatchRefusal::CertMismatch);
            }
            if c.verify(chain, committee).is_err() {
                return Err(BatchRefusal::BadCert);
            }
            Some(Arc::new(c))
        }
    };
    Ok((Arc::new(batch), cert))
}

/// A verifier's verdict on a batch: items that do not decode, or whose
/// signatures do not verify under the chain's rule, are invalid. Returns
/// the verdict and how many transactions had their signatures checked.
pub fn verdict_of(b: &Batch) -> (Verdict, usize) {
    let mut invalid: Vec<u32> = Vec::new();
    let mut decoded: Vec<Transaction> = Vec::with_capacity(b.len());
    let mut positions: Vec<u32> = Vec::with_capacity(b.len());
    for (i, t) in b.txs.iter().enumerate() {
        match t {
            Some(p) => {
                decoded.push(p.tx.clone());
                positions.push(i as u32);
            }
            None => invalid.push(i as u32),
        }
    }
    for k in plume_protocol::tx::verify_batch(&decoded) {
        invalid.push(positions[k]);
    }
    (Verdict::new(invalid), decoded.len())
}

/// Whether `v` is signed by its voter's network key for chain `chain`.
pub fn vote_is_valid(v: &BatchVote, chain: u64, committee: &BatchCommittee) -> bool {
    committee
        .key(v.voter as usize)
        .is_some_and(|k| zip215::verify(k, v.message(chain).as_bytes(), &v.sig))
}

/// The transactions a finalized block executes, in block order.
#[derive(Debug, Default)]
pub struct Picked {
    /// Transactions to run.
    pub txs: Vec<PreparedTx>,
    /// Their encodings.
    pub raws: Vec<Vec<u8>>,
    /// Items that failed decoding or signature checks (by the verdict).
    pub skipped: u64,
    /// Batches executed for the first time here.
    pub batches: Vec<plume_crypto::Digest>,
}

/// Pick what a finalized block executes (the node's exec role and the
/// simulator call this): a batch already executed in an earlier block
/// (`already`) or named twice is skipped, as are items its certificate's
/// verdict calls invalid and transactions already final (`fresh` says a
/// transaction id is new: not in this group, not in the store; its first
/// receipt stands). Deterministic: every validator has the same store and
/// the same verdicts.
pub fn pick_transactions<E>(
    batches: &[Option<crate::CertifiedBatch>],
    already: &dyn Fn(&plume_crypto::Digest) -> bool,
    fresh: &mut dyn FnMut(&plume_crypto::Digest) -> Result<bool, E>,
) -> Result<Picked, E> {
    let mut p = Picked::default();
    let mut seen_here = std::collections::BTreeSet::new();
    for cb in batches.iter().flatten() {
        let b = &cb.batch;
        if already(&b.digest) || !seen_here.insert(b.digest) {
            continue;
        }
        p.batches.push(b.digest);
        for (i, t) in b.txs.iter().enumerate() {
            match t {
                Some(tx) if cb.runs(i) => {
                    if fresh(&tx.hash)? {
                        p.txs.push(tx.clone());
                        p.raws.push(b.raw[i].clone());
                    }
                }
                _ => p.skipped += 1,
            }
        }
    }
    Ok(p)
}
