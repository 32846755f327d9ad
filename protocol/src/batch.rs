//! Transaction batches and their certificates: the unit validators
//! disseminate and blocks order.
//!
//! - **Identity binds bytes.** Every item's leaf is the hash of its full
//!   encoding, signatures included ([`item_leaf`]); the digest is
//!   `H(Batch, "plume/batch/v2" ‖ author ‖ count ‖ Merkle root of the
//!   leaves)` ([`batch_digest`]). Two batches that differ in one byte of
//!   one signature have different digests; an item that does not decode is
//!   a leaf like any other and cannot alias a valid one. A finality proof
//!   shows one transaction's membership with a Merkle path.
//! - **Votes.** A validator that stored a batch durably signs a *stored*
//!   vote over `(chain, epoch, digest)`; one that also verified every
//!   signature signs a *verified* vote over `(chain, epoch, digest,
//!   verdict)`, the verdict being which items are invalid. Votes are
//!   Ed25519 signatures by the validators' network keys (docs/adr/0007:
//!   about 20x cheaper to make and to check than BLS at our committee
//!   sizes).
//! - **Certificate.** Votes from a quorum of power (strictly more than two
//!   thirds: the batch is available from at least one honest validator
//!   beyond what f can withhold), of which the verified ones hold the
//!   validity power (more than one third: at least one honest validator
//!   checked the verdict). With at most f Byzantine, two certificates of
//!   one digest carry the same verdict, so execution follows the verdict
//!   and never re-verifies.

use crate::codec::{CodecError, Reader, Writer};
use crate::consensus::TC_ENTRIES_MAX;
use plume_crypto::merkle;
use plume_crypto::qc::SignerBitmap;
use plume_crypto::{hash_parts, zip215, Digest, Domain, Hasher};

/// Most transactions in one batch.
pub const BATCH_TXS_MAX: usize = 4096;
/// Most voters of one certificate (the validator-set bound).
pub const VOTERS_MAX: usize = TC_ENTRIES_MAX;
/// Version tag hashed into every batch digest.
const DIGEST_TAG: &[u8] = b"plume/batch/v2";

/// The leaf of one batch item: the hash of its full encoding.
pub fn item_leaf(raw: &[u8]) -> Digest {
    plume_crypto::hash(Domain::BatchItem, raw)
}

/// Merkle root over the item leaves.
pub fn items_root(leaves: &[Digest]) -> Digest {
    let l: Vec<Digest> = leaves
        .iter()
        .map(|d| merkle::leaf_hash(d.as_bytes()))
        .collect();
    merkle::root_of_leaves(&l)
}

/// The digest from its parts (what a proof recomputes).
pub fn digest_from_root(author: u32, expires: u64, count: u32, root: &Digest) -> Digest {
    hash_parts(
        Domain::Batch,
        &[
            DIGEST_TAG,
            &author.to_le_bytes(),
            &expires.to_le_bytes(),
            &count.to_le_bytes(),
            root.as_bytes(),
        ],
    )
}

/// The digest of `author`'s batch of `items` (raw encodings) that blocks
/// may carry up to height `expires`.
pub fn batch_digest(author: u32, expires: u64, items: &[Vec<u8>]) -> Digest {
    let leaves: Vec<Digest> = items.iter().map(|r| item_leaf(r)).collect();
    digest_from_root(author, expires, items.len() as u32, &items_root(&leaves))
}

/// Which items of a batch are invalid (a bad or missing signature, or an
/// encoding that does not decode): sorted, distinct indices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Verdict {
    invalid: Vec<u32>,
}

impl Verdict {
    /// The verdict with these invalid indices (sorted and deduplicated).
    pub fn new(mut invalid: Vec<u32>) -> Verdict {
        invalid.sort_unstable();
        invalid.dedup();
        Verdict { invalid }
    }

    /// Every item valid.
    pub fn all_valid() -> Verdict {
        Verdict::default()
    }

    /// The invalid indices, ascending.
    pub fn invalid(&self) -> &[u32] {
        &self.invalid
    }

    /// Whether item `i` is valid.
    pub fn is_valid(&self, i: usize) -> bool {
        self.invalid.binary_search(&(i as u32)).is_err()
    }

    /// The bytes a verified vote commits to.
    pub fn hash(&self) -> Digest {
        let mut h = Hasher::new(Domain::BatchVote);
        h.update(b"verdict").update_u64(self.invalid.len() as u64);
        for i in &self.invalid {
            h.update_u64(u64::from(*i));
        }
        h.finalize()
    }

    /// Append to a writer.
    pub fn write(&self, w: &mut Writer) {
        w.u32(self.invalid.len() as u32);
        for i in &self.invalid {
            w.u32(*i);
        }
    }

    /// Read from a reader.
    pub fn read(r: &mut Reader<'_>) -> Result<Verdict, CodecError> {
        let n = r.count(BATCH_TXS_MAX, "verdict too long")?;
        let mut invalid = Vec::with_capacity(n);
        for _ in 0..n {
            let i = r.u32()?;
            if i as usize >= BATCH_TXS_MAX || invalid.last().is_some_and(|p| *p >= i) {
                return Err(CodecError("verdict indices not ascending"));
            }
            invalid.push(i);
        }
        Ok(Verdict { invalid })
    }
}

/// What every vote on a batch names: the chain, the epoch, and the batch
/// (its digest, author and item count, so a certificate proves them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BatchId {
    /// Epoch of the committee.
    pub epoch: u64,
    /// The digest.
    pub digest: Digest,
    /// Its author.
    pub author: u32,
    /// Its item count.
    pub items: u32,
    /// The last block height that may carry it (part of the digest).
    pub expires: u64,
}

impl BatchId {
    fn hash_into(&self, h: &mut Hasher, chain: u64) {
        h.update_u64(chain)
            .update_u64(self.epoch)
            .update(self.digest.as_bytes())
            .update_u64(u64::from(self.author))
            .update_u64(u64::from(self.items))
            .update_u64(self.expires);
    }

    fn write(&self, w: &mut Writer) {
        w.u64(self.epoch);
        w.digest(&self.digest);
        w.u32(self.author);
        w.u32(self.items);
        w.u64(self.expires);
    }

    fn read(r: &mut Reader<'_>) -> Result<BatchId, CodecError> {
        let epoch = r.u64()?;
        let digest = r.digest()?;
        let author = r.u32()?;
        let items = r.u32()?;
        if items as usize > BATCH_TXS_MAX {
            return Err(CodecError("batch item count over the limit"));
        }
        let expires = r.u64()?;
        Ok(BatchId {
            epoch,
            digest,
            author,
            items,
            expires,
        })
    }
}

/// What a stored vote signs.
pub fn stored_message(chain: u64, id: &BatchId) -> Digest {
    let mut h = Hasher::new(Domain::BatchVote);
    h.update(b"stored");
    id.hash_into(&mut h, chain);
    h.finalize()
}

/// What a verified vote signs.
pub fn verified_message(chain: u64, id: &BatchId, verdict: &Verdict) -> Digest {
    let mut h = Hasher::new(Domain::BatchVote);
    h.update(b"verified");
    id.hash_into(&mut h, chain);
    h.update(verdict.hash().as_bytes());
    h.finalize()
}

/// One validator's vote on a batch, sent to its author.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchVote {
    /// The batch voted on.
    pub id: BatchId,
    /// Voter's committee index.
    pub voter: u32,
    /// `Some(verdict)` for a verified vote, `None` for a stored one.
    pub verdict: Option<Verdict>,
    /// Ed25519 signature by the voter's network key over
    /// [`stored_message`] or [`verified_message`].
    pub sig: [u8; 64],
}

impl BatchVote {
    /// The message this vote signs.
    pub fn message(&self, chain: u64) -> Digest {
        match &self.verdict {
            None => stored_message(chain, &self.id),
            Some(v) => verified_message(chain, &self.id, v),
        }
    }

    /// Encode.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.write(&mut w);
        w.0
    }

    /// Append to a writer.
    pub fn write(&self, w: &mut Writer) {
        self.id.write(w);
        w.u32(self.voter);
        match &self.verdict {
            None => w.u8(0),
            Some(v) => {
                w.u8(1);
                v.write(w);
            }
        }
        w.0.extend_from_slice(&self.sig);
    }

    /// Read from a reader.
    pub fn read(r: &mut Reader<'_>) -> Result<BatchVote, CodecError> {
        let id = BatchId::read(r)?;
        let voter = r.u32()?;
        let verdict = if r.opt()? {
            Some(Verdict::read(r)?)
        } else {
            None
        };
        let sig: [u8; 64] = r.take(64)?.try_into().expect("64 bytes");
        Ok(BatchVote {
            id,
            voter,
            verdict,
            sig,
        })
    }
}

/// The validators as batch certificates see them: network keys and power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchCommittee {
    keys: Vec<[u8; 32]>,
    powers: Vec<u64>,
    total: u64,
    quorum: u64,
    validity: u64,
}

/// Why a committee or a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchCertError {
    /// The committee is empty, too large, or has a zero power.
    #[error("bad committee: {0}")]
    Committee(&'static str),
    /// The certificate does not fit the committee or breaks a rule.
    #[error("bad certificate: {0}")]
    Invalid(&'static str),
    /// A signature does not verify.
    #[error("bad certificate: signature of validator {0} does not verify")]
    BadSignature(u32),
}

impl BatchCommittee {
    /// The committee with these members, in committee order.
    pub fn new(members: Vec<([u8; 32], u64)>) -> Result<BatchCommittee, BatchCertError> {
        if members.is_empty() || members.len() > VOTERS_MAX {
            return Err(BatchCertError::Committee("size"));
        }
        if members.iter().any(|(_, p)| *p == 0) {
            return Err(BatchCertError::Committee("zero power"));
        }
        let total: u64 = members
            .iter()
            .try_fold(0u64, |a, (_, p)| a.checked_add(*p))
            .ok_or(BatchCertError::Committee("power overflows"))?;
        let quorum = plume_crypto::qc::quorum_threshold(total);
        Ok(BatchCommittee {
            keys: members.iter().map(|m| m.0).collect(),
            powers: members.iter().map(|m| m.1).collect(),
            total,
            quorum,
            validity: total - quorum + 1,
        })
    }

    /// Members.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when empty (never, for a built committee).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Network key of member `i`.
    pub fn key(&self, i: usize) -> Option<&[u8; 32]> {
        self.keys.get(i)
    }

    /// Power strictly above two thirds.
    pub fn quorum_power(&self) -> u64 {
        self.quorum
    }

    /// Power strictly above one third (holds an honest member when at most
    /// `total - quorum` is Byzantine).
    pub fn validity_power(&self) -> u64 {
        self.validity
    }

    /// Power of the members in `bits`.
    pub fn power_of(&self, bits: &SignerBitmap) -> u64 {
        bits.iter_set().filter_map(|i| self.powers.get(i)).sum()
    }

    /// Power of these members.
    pub fn power_of_members(&self, members: impl IntoIterator<Item = u32>) -> u64 {
        members
            .into_iter()
            .filter_map(|i| self.powers.get(i as usize))
            .sum()
    }

    /// Everyone but `author`, in the batch's verification order: ranked by
    /// `H(BatchVote, "rank" ‖ digest ‖ index)`, so verification work spreads
    /// over the validators deterministically.
    pub fn ranking(&self, digest: &Digest, author: u32) -> Vec<u32> {
        let mut others: Vec<(Digest, u32)> = (0..self.keys.len() as u32)
            .filter(|i| *i != author)
            .map(|i| {
                (
                    hash_parts(
                        Domain::BatchVote,
                        &[b"rank", digest.as_bytes(), &i.to_le_bytes()],
                    ),
                    i,
                )
            })
            .collect();
        others.sort();
        others.into_iter().map(|(_, i)| i).collect()
    }

    /// The validators asked to verify the batch first: the author, then the
    /// ranking until the validity power is reached.
    pub fn designated(&self, digest: &Digest, author: u32) -> Vec<u32> {
        let mut out = vec![author];
        let mut power = self.powers.get(author as usize).copied().unwrap_or(0);
        for i in self.ranking(digest, author) {
            if power >= self.validity {
                break;
            }
            power += self.powers[i as usize];
            out.push(i);
        }
        out
    }
}

/// Longest encoded verdict.
pub const VERDICT_BYTES_MAX: usize = 4 + 4 * BATCH_TXS_MAX;
/// Longest encoded certificate (every bound at its maximum).
pub const CERT_BYTES_MAX: usize = (8 + 32 + 4 + 4 + 8)
    + VERDICT_BYTES_MAX
    + 2 * (4 + VOTERS_MAX.div_ceil(8))
    + 4
    + 64 * VOTERS_MAX;

/// A batch certificate: the batch is available and its verdict checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchCertificate {
    /// The batch (epoch, digest, author, item count, expiry).
    pub id: BatchId,
    /// Which items are invalid.
    pub verdict: Verdict,
    /// Voters that stored the batch (without checking signatures).
    pub stored: SignerBitmap,
    /// Voters that stored it and verified every signature.
    pub verified: SignerBitmap,
    /// One signature per voter, in voter order (stored or verified).
    pub sigs: Vec<[u8; 64]>,
}

impl BatchCertificate {
    /// Build from votes (distinct voters, all for `digest` in `epoch`,
    /// every verified vote with `verdict`), for a committee of `n`.
    pub fn from_votes(
        id: BatchId,
        verdict: Verdict,
        n: usize,
        votes: &[(u32, bool, [u8; 64])],
    ) -> BatchCertificate {
        let mut order: Vec<&(u32, bool, [u8; 64])> = votes.iter().collect();
        order.sort_by_key(|v| v.0);
        let mut stored = SignerBitmap::new(n);
        let mut verified = SignerBitmap::new(n);
        let mut sigs = Vec::with_capacity(order.len());
        for (voter, is_verified, sig) in order {
            let bits = if *is_verified {
                &mut verified
            } else {
                &mut stored
            };
            if bits.set(*voter as usize) {
                sigs.push(*sig);
            }
        }
        BatchCertificate {
            id,
            verdict,
            stored,
            verified,
            sigs,
        }
    }

    /// The batch's digest.
    pub fn digest(&self) -> Digest {
        self.id.digest
    }

    /// Every voter (stored or verified), ascending.
    pub fn voters(&self) -> Vec<u32> {
        (0..self.stored.len())
            .filter(|&i| self.stored.get(i) || self.verified.get(i))
            .map(|i| i as u32)
            .collect()
    }

    /// Check against `committee` on chain `chain`: shape, the quorum and
    /// validity powers, and every signature (one ZIP-215 batch).
    pub fn verify(&self, chain: u64, committee: &BatchCommittee) -> Result<(), BatchCertError> {
        let bad = BatchCertError::Invalid;
        let n = committee.len();
        if self.stored.len() != n || self.verified.len() != n {
            return Err(bad("bitmap size"));
        }
        if (0..n).any(|i| self.stored.get(i) && self.verified.get(i)) {
            return Err(bad("a voter is both stored and verified"));
        }
        let voters = self.voters();
        if self.sigs.len() != voters.len() {
            return Err(bad("signature count"));
        }
        if committee.power_of_members(voters.iter().copied()) < committee.quorum_power() {
            return Err(bad("no quorum of stored votes"));
        }
        if committee.power_of(&self.verified) < committee.validity_power() {
            return Err(bad("not enough verified votes"));
        }
        if self
            .verdict
            .invalid()
            .last()
            .is_some_and(|i| *i >= self.id.items)
        {
            return Err(bad("verdict names an item past the batch"));
        }
        let m_stored = stored_message(chain, &self.id);
        let m_verified = verified_message(chain, &self.id, &self.verdict);
        let items: Vec<zip215::Item<'_>> = voters
            .iter()
            .zip(&self.sigs)
            .map(|(&v, sig)| zip215::Item {
                key: committee.key(v as usize).expect("voter in range"),
                msg: if self.verified.get(v as usize) {
                    m_verified.as_bytes()
                } else {
                    m_stored.as_bytes()
                },
                sig,
            })
            .collect();
        zip215::verify_batch(&items)
            .map_err(|failed| BatchCertError::BadSignature(voters[failed[0]]))
    }

    /// Identity of the certificate's bytes (cache key: a cached check is
    /// for these exact bytes, never for another certificate of the digest).
    pub fn id(&self) -> Digest {
        plume_crypto::hash(Domain::BatchVote, &self.to_bytes())
    }

    /// Encode.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.write(&mut w);
        w.0
    }

    /// Append to a writer.
    pub fn write(&self, w: &mut Writer) {
        self.id.write(w);
        self.verdict.write(w);
        w.0.extend_from_slice(&self.stored.to_bytes());
        w.0.extend_from_slice(&self.verified.to_bytes());
        w.u32(self.sigs.len() as u32);
        for s in &self.sigs {
            w.0.extend_from_slice(s);
        }
    }

    /// Read from a reader (shape only; [`BatchCertificate::verify`] checks
    /// the rest).
    pub fn read(r: &mut Reader<'_>) -> Result<BatchCertificate, CodecError> {
        let id = BatchId::read(r)?;
        let verdict = Verdict::read(r)?;
        let bitmap = |r: &mut Reader<'_>| -> Result<SignerBitmap, CodecError> {
            let (bm, used) =
                SignerBitmap::from_bytes(r.b).map_err(|_| CodecError("bad voter bitmap"))?;
            r.take(used)?;
            Ok(bm)
        };
        let stored = bitmap(r)?;
        let verified = bitmap(r)?;
        let n = r.count(VOTERS_MAX, "too many certificate signatures")?;
        let mut sigs = Vec::with_capacity(n);
        for _ in 0..n {
            sigs.push(r.take(64)?.try_into().expect("64 bytes"));
        }
        Ok(BatchCertificate {
            id,
            verdict,
            stored,
            verified,
            sigs,
        })
    }

    /// Decode a whole buffer.
    pub fn from_bytes(b: &[u8]) -> Result<BatchCertificate, CodecError> {
        let mut r = Reader { b };
        let c = Self::read(&mut r)?;
        r.finish()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plume_crypto::ed25519::SigningKey;

    fn committee(n: usize) -> (BatchCommittee, Vec<SigningKey>) {
        let keys: Vec<SigningKey> = (0..n)
            .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
            .collect();
        let c = BatchCommittee::new(
            keys.iter()
                .map(|k| (k.public_key().to_bytes(), 1))
                .collect(),
        )
        .unwrap();
        (c, keys)
    }

    fn vote(k: &SigningKey, chain: u64, id: &BatchId, verdict: Option<&Verdict>) -> [u8; 64] {
        let m = match verdict {
            None => stored_message(chain, id),
            Some(v) => verified_message(chain, id, v),
        };
        k.sign(m.as_bytes()).to_bytes()
    }

    #[test]
    fn digests_bind_every_byte_the_author_and_the_expiry() {
        let items = vec![vec![1u8, 2, 3], vec![4u8; 70]];
        let d = batch_digest(2, 9, &items);
        let mut flipped = items.clone();
        flipped[1][69] ^= 1;
        assert_ne!(batch_digest(2, 9, &flipped), d, "a signature byte");
        assert_ne!(batch_digest(3, 9, &items), d, "the author");
        assert_ne!(batch_digest(2, 10, &items), d, "the expiry");
        assert_ne!(batch_digest(2, 9, &items[..1]), d, "an item");
        let leaves: Vec<Digest> = items.iter().map(|r| item_leaf(r)).collect();
        assert_eq!(digest_from_root(2, 9, 2, &items_root(&leaves)), d);
        // Pinned: a change of the digest's shape changes every block.
        assert_eq!(d.to_hex(), PINNED_DIGEST);
    }

    const PINNED_DIGEST: &str = "5b86c794e747d411f59a13201ee9fa79515ed140ee1e3c183418613d789fc810";

    #[test]
    fn the_largest_certificate_fits_its_bound() {
        let n = VOTERS_MAX;
        let id = BatchId {
            epoch: u64::MAX,
            digest: Digest([1; 32]),
            author: 0,
            items: BATCH_TXS_MAX as u32,
            expires: u64::MAX,
        };
        let votes: Vec<(u32, bool, [u8; 64])> =
            (0..n as u32).map(|i| (i, i % 2 == 0, [7; 64])).collect();
        let verdict = Verdict::new((0..BATCH_TXS_MAX as u32).collect());
        let c = BatchCertificate::from_votes(id, verdict, n, &votes);
        assert!(c.to_bytes().len() <= CERT_BYTES_MAX);
        assert_eq!(BatchCertificate::from_bytes(&c.to_bytes()).unwrap(), c);
    }

    #[test]
    fn designated_verifiers_reach_the_validity_power() {
        let (c4, _) = committee(4);
        let d = Digest([9; 32]);
        assert_eq!(c4.validity_power(), 2);
        let des = c4.designated(&d, 1);
        assert_eq!(des.len(), 2, "the author and one other");
        assert_eq!(des[0], 1);
        let (c7, _) = committee(7);
        assert_eq!(c7.designated(&d, 0).len(), 3);
        assert_eq!(c7.ranking(&d, 0).len(), 6);
        // Spread: over many digests every validator is designated.
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..64u8 {
            seen.extend(c4.designated(&Digest([i; 32]), 0));
        }
        assert_eq!(seen.len(), 4);
    }

    #[test]
    fn certificates_need_a_quorum_and_the_validity_power_and_good_signatures() {
        let (c, keys) = committee(4);
        let chain = 77;
        let id = BatchId {
            epoch: 0,
            digest: Digest([5; 32]),
            author: 0,
            items: 10,
            expires: 100,
        };
        let verdict = Verdict::new(vec![3, 1, 3]);
        assert_eq!(verdict.invalid(), &[1, 3]);
        let v = |i: usize, verified: bool| {
            (
                i as u32,
                verified,
                vote(&keys[i], chain, &id, verified.then_some(&verdict)),
            )
        };
        let good = BatchCertificate::from_votes(
            id,
            verdict.clone(),
            4,
            &[v(0, true), v(2, true), v(3, false)],
        );
        good.verify(chain, &c).unwrap();
        assert_eq!(good.voters(), vec![0, 2, 3]);
        assert_eq!(
            BatchCertificate::from_bytes(&good.to_bytes()).unwrap(),
            good
        );
        // Another chain id: the signatures do not verify.
        assert!(good.verify(chain + 1, &c).is_err());
        // Two stored and one verified: not enough verified power.
        let weak = BatchCertificate::from_votes(
            id,
            verdict.clone(),
            4,
            &[v(0, true), v(2, false), v(3, false)],
        );
        assert_eq!(
            weak.verify(chain, &c),
            Err(BatchCertError::Invalid("not enough verified votes"))
        );
        // Two votes: no quorum.
        let few = BatchCertificate::from_votes(id, verdict.clone(), 4, &[v(0, true), v(2, true)]);
        assert!(few.verify(chain, &c).is_err());
        // A different verdict than the verifiers signed.
        let mut lie = good.clone();
        lie.verdict = Verdict::all_valid();
        assert!(matches!(
            lie.verify(chain, &c),
            Err(BatchCertError::BadSignature(_))
        ));
        // A stored voter relabelled as verified.
        let mut relabel = good.clone();
        relabel.stored.clear(3);
        relabel.verified.set(3);
        assert!(relabel.verify(chain, &c).is_err());
        // Another item count than the voters signed.
        let mut count = good.clone();
        count.id.items = 11;
        assert!(count.verify(chain, &c).is_err());
        // A verdict past the batch.
        let mut past = good.clone();
        past.id.items = 2;
        assert!(past.verify(chain, &c).is_err());
        // Truncations are errors, never panics.
        let bytes = good.to_bytes();
        for cut in 0..bytes.len() {
            assert!(BatchCertificate::from_bytes(&bytes[..cut]).is_err());
        }
        assert_ne!(good.id(), weak.id());
    }
}
