//! Quorum certificates: one aggregate BLS signature plus a bitmap of the
//! validators whose votes it contains.
//!
//! A certificate proves that validators holding strictly more than two thirds
//! of the voting power signed the same message. Votes are aggregated
//! optimistically: add them unchecked, verify the aggregate once, and only if
//! that fails look for the bad votes one by one.

use crate::bls::{PublicKey, Signature, SIGNATURE_LEN};
use crate::CryptoError;
use std::collections::BTreeMap;

/// Most validators a set may hold; bounds bitmap sizes on the wire.
pub const VALIDATORS_MAX: usize = 1024;

/// One member of a validator set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Consensus key (its proof of possession was checked to get here).
    pub key: PublicKey,
    /// Voting power; never zero.
    pub power: u64,
}

/// An ordered validator set. Index `i` in a bitmap means `validators[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total_power: u64,
    quorum_power: u64,
}

impl ValidatorSet {
    /// Build a set from validators and their proofs of possession; every PoP
    /// is checked, duplicates, zero power and an empty set are refused.
    pub fn new_with_pops(members: Vec<(Validator, Signature)>) -> Result<Self, CryptoError> {
        for (i, (v, pop)) in members.iter().enumerate() {
            v.key.verify_possession(pop).map_err(|_| {
                CryptoError::ValidatorSet(format!("validator {i}: bad proof of possession"))
            })?;
        }
        Self::new_pop_checked(members.into_iter().map(|(v, _)| v).collect())
    }

    /// Build a set whose keys' proofs of possession the caller has already
    /// checked (e.g. when genesis was validated).
    pub fn new_pop_checked(validators: Vec<Validator>) -> Result<Self, CryptoError> {
        if validators.is_empty() {
            return Err(CryptoError::ValidatorSet("the set is empty".into()));
        }
        if validators.len() > VALIDATORS_MAX {
            return Err(CryptoError::ValidatorSet(format!(
                "{} validators, at most {VALIDATORS_MAX}",
                validators.len()
            )));
        }
        let mut seen = BTreeMap::new();
        let mut total: u64 = 0;
        for (i, v) in validators.iter().enumerate() {
            if v.power == 0 {
                return Err(CryptoError::ValidatorSet(format!(
                    "validator {i}: zero power"
                )));
            }
            if let Some(j) = seen.insert(v.key.to_bytes(), i) {
                return Err(CryptoError::ValidatorSet(format!(
                    "validators {j} and {i} have the same key"
                )));
            }
            total = total
                .checked_add(v.power)
                .ok_or_else(|| CryptoError::ValidatorSet("total power overflows u64".into()))?;
        }
        Ok(ValidatorSet {
            validators,
            total_power: total,
            quorum_power: quorum_threshold(total),
        })
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Always false (sets are never empty); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// The members in order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// Sum of all power.
    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    /// Smallest power that is strictly more than two thirds of the total.
    pub fn quorum_power(&self) -> u64 {
        self.quorum_power
    }

    /// Index of a key in the set.
    pub fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.validators.iter().position(|v| &v.key == key)
    }

    /// Power of the validators set in `bitmap`.
    pub fn power_of(&self, bitmap: &SignerBitmap) -> u64 {
        bitmap.iter_set().map(|i| self.validators[i].power).sum()
    }
}

/// Smallest power strictly greater than 2/3 of `total`.
pub fn quorum_threshold(total: u64) -> u64 {
    // floor(2 * total / 3) + 1, computed without overflow.
    let t = total as u128;
    ((2 * t) / 3 + 1) as u64
}

/// A bitmap over validator indices, `len` bits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignerBitmap {
    len: u32,
    words: Vec<u64>,
}

impl SignerBitmap {
    /// All clear, `len` bits.
    pub fn new(len: usize) -> Self {
        SignerBitmap {
            len: len as u32,
            words: vec![0; len.div_ceil(64)],
        }
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True if the bitmap has no bits at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Set bit `i`; returns false if it was already set. Panics if out of
    /// range (a bug in the caller: indices come from the validator set).
    pub fn set(&mut self, i: usize) -> bool {
        assert!(i < self.len(), "bit {i} out of range {}", self.len);
        let (w, b) = (i / 64, i % 64);
        let was = self.words[w] & (1 << b) != 0;
        self.words[w] |= 1 << b;
        !was
    }

    /// Is bit `i` set (false when out of range)?
    pub fn get(&self, i: usize) -> bool {
        i < self.len() && self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// Clear bit `i`.
    pub fn clear(&mut self, i: usize) {
        if i < self.len() {
            self.words[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Number of bits set.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Indices of set bits, ascending.
    pub fn iter_set(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(move |&i| self.get(i))
    }

    /// Encoding: `len` as u32 LE, then ceil(len/8) bytes, bit i of byte j is
    /// validator 8j+i. Bits past `len` must be zero.
    pub fn to_bytes(&self) -> Vec<u8> {
        let nbytes = self.len().div_ceil(8);
        let mut out = Vec::with_capacity(4 + nbytes);
        out.extend_from_slice(&self.len.to_le_bytes());
        for j in 0..nbytes {
            let w = self.words[j / 8];
            out.push((w >> ((j % 8) * 8)) as u8);
        }
        out
    }

    /// Decode; returns the bitmap and the bytes consumed. Rejects lengths over
    /// [`VALIDATORS_MAX`], truncated input and stray bits past `len`.
    pub fn from_bytes(bytes: &[u8]) -> Result<(Self, usize), CryptoError> {
        let len_bytes: [u8; 4] = bytes
            .get(..4)
            .and_then(|s| s.try_into().ok())
            .ok_or(CryptoError::Malformed("bitmap: truncated length"))?;
        let len = u32::from_le_bytes(len_bytes) as usize;
        if len > VALIDATORS_MAX {
            return Err(CryptoError::Malformed("bitmap: longer than VALIDATORS_MAX"));
        }
        let nbytes = len.div_ceil(8);
        let body = bytes
            .get(4..4 + nbytes)
            .ok_or(CryptoError::Malformed("bitmap: truncated body"))?;
        let mut bm = SignerBitmap::new(len);
        for (j, &byte) in body.iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    let i = j * 8 + bit;
                    if i >= len {
                        return Err(CryptoError::Malformed("bitmap: bit set past its length"));
                    }
                    bm.set(i);
                }
            }
        }
        Ok((bm, 4 + nbytes))
    }
}

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QcError {
    /// The bitmap is for a set of another size.
    #[error("signer bitmap has {got} bits, the validator set has {expected}")]
    BitmapLength {
        /// Set size.
        expected: usize,
        /// Bitmap size.
        got: usize,
    },
    /// Not enough power signed.
    #[error("signers hold {got} of {total} power; a quorum needs {needed}")]
    NoQuorum {
        /// Power of the signers.
        got: u64,
        /// Power needed.
        needed: u64,
        /// Total power.
        total: u64,
    },
    /// The aggregate signature does not verify.
    #[error("aggregate signature does not verify")]
    BadSignature,
}

/// A quorum certificate over some message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumCertificate {
    /// Who signed.
    pub signers: SignerBitmap,
    /// Aggregate of their signatures.
    pub signature: Signature,
}

impl QuorumCertificate {
    /// Check that validators with more than 2/3 of the power of `set` signed
    /// `msg`.
    pub fn verify(&self, set: &ValidatorSet, msg: &[u8]) -> Result<(), QcError> {
        if self.signers.len() != set.len() {
            return Err(QcError::BitmapLength {
                expected: set.len(),
                got: self.signers.len(),
            });
        }
        let power = set.power_of(&self.signers);
        if power < set.quorum_power() {
            return Err(QcError::NoQuorum {
                got: power,
                needed: set.quorum_power(),
                total: set.total_power(),
            });
        }
        let keys: Vec<&PublicKey> = self
            .signers
            .iter_set()
            .map(|i| &set.validators()[i].key)
            .collect();
        self.signature
            .fast_aggregate_verify(msg, &keys)
            .map_err(|_| QcError::BadSignature)
    }

    /// Encoding: bitmap (see [`SignerBitmap::to_bytes`]) then the 96-byte
    /// compressed signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.signers.to_bytes();
        out.extend_from_slice(&self.signature.to_bytes());
        out
    }

    /// Decode, validating the bitmap and the signature point. The whole input
    /// must be consumed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let (signers, used) = SignerBitmap::from_bytes(bytes)?;
        let rest = &bytes[used..];
        if rest.len() != SIGNATURE_LEN {
            return Err(CryptoError::Malformed("qc: signature is not 96 bytes"));
        }
        Ok(QuorumCertificate {
            signers,
            signature: Signature::from_bytes(rest)?,
        })
    }
}

/// Why a vote was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteError {
    /// Index outside the set.
    #[error("voter index {0} is not in the validator set")]
    UnknownVoter(usize),
    /// Already have a vote from this validator.
    #[error("duplicate vote from validator {0}")]
    Duplicate(usize),
}

/// Collects votes on one message and builds a certificate.
#[derive(Debug)]
pub struct VoteAggregator<'s> {
    set: &'s ValidatorSet,
    msg: Vec<u8>,
    votes: BTreeMap<usize, Signature>,
    power: u64,
}

impl<'s> VoteAggregator<'s> {
    /// Start collecting votes on `msg`.
    pub fn new(set: &'s ValidatorSet, msg: &[u8]) -> Self {
        VoteAggregator {
            set,
            msg: msg.to_vec(),
            votes: BTreeMap::new(),
            power: 0,
        }
    }

    /// Add a vote without checking it (optimistic aggregation).
    pub fn add(&mut self, index: usize, sig: Signature) -> Result<(), VoteError> {
        if index >= self.set.len() {
            return Err(VoteError::UnknownVoter(index));
        }
        if self.votes.contains_key(&index) {
            return Err(VoteError::Duplicate(index));
        }
        self.votes.insert(index, sig);
        self.power += self.set.validators()[index].power;
        Ok(())
    }

    /// Power of the votes held.
    pub fn power(&self) -> u64 {
        self.power
    }

    /// Whether the votes held reach a quorum (before checking them).
    pub fn has_quorum(&self) -> bool {
        self.power >= self.set.quorum_power()
    }

    /// Aggregate and verify once. If the aggregate is bad, every vote is
    /// checked alone, bad ones are dropped and returned in `Err`; the caller
    /// may add more votes and try again.
    pub fn finish(&mut self) -> Result<QuorumCertificate, FinishError> {
        if !self.has_quorum() {
            return Err(FinishError::NoQuorum);
        }
        let qc = self.aggregate();
        if qc.verify(self.set, &self.msg).is_ok() {
            return Ok(qc);
        }
        let bad: Vec<usize> = self
            .votes
            .iter()
            .filter(|(i, sig)| {
                self.set.validators()[**i]
                    .key
                    .verify(&self.msg, sig)
                    .is_err()
            })
            .map(|(i, _)| *i)
            .collect();
        for i in &bad {
            self.votes.remove(i);
            self.power -= self.set.validators()[*i].power;
        }
        if self.has_quorum() {
            let qc = self.aggregate();
            qc.verify(self.set, &self.msg)
                .expect("aggregate of individually valid votes verifies");
            return Ok(qc);
        }
        Err(FinishError::BadVotes(bad))
    }

    fn aggregate(&self) -> QuorumCertificate {
        let mut signers = SignerBitmap::new(self.set.len());
        for i in self.votes.keys() {
            signers.set(*i);
        }
        let sigs: Vec<&Signature> = self.votes.values().collect();
        let signature = Signature::aggregate(&sigs).expect("at least one vote when quorum is held");
        QuorumCertificate { signers, signature }
    }
}

/// Why a certificate could not be finished.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinishError {
    /// Not enough power yet.
    #[error("not enough voting power for a quorum")]
    NoQuorum,
    /// These votes were bad and were dropped; quorum is no longer held.
    #[error("bad votes from validators {0:?}")]
    BadVotes(Vec<usize>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bls::SecretKey;
    use rand::SeedableRng;

    fn setup(n: usize) -> (Vec<SecretKey>, ValidatorSet) {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let sks: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate(&mut rng)).collect();
        let set = ValidatorSet::new_with_pops(
            sks.iter()
                .map(|k| {
                    (
                        Validator {
                            key: k.public_key(),
                            power: 1,
                        },
                        k.prove_possession(),
                    )
                })
                .collect(),
        )
        .unwrap();
        (sks, set)
    }

    #[test]
    fn threshold_is_strictly_more_than_two_thirds() {
        assert_eq!(quorum_threshold(4), 3);
        assert_eq!(quorum_threshold(3), 3);
        assert_eq!(quorum_threshold(6), 5);
        assert_eq!(quorum_threshold(7), 5);
        assert_eq!(quorum_threshold(10), 7);
        assert_eq!(quorum_threshold(100), 67);
        assert_eq!(
            quorum_threshold(u64::MAX),
            ((u64::MAX as u128 * 2) / 3 + 1) as u64
        );
    }

    #[test]
    fn qc_from_quorum_verifies_and_round_trips() {
        let (sks, set) = setup(7);
        let mut agg = VoteAggregator::new(&set, b"vote v=3");
        for i in 0..5 {
            agg.add(i, sks[i].sign(b"vote v=3")).unwrap();
        }
        let qc = agg.finish().unwrap();
        assert!(qc.verify(&set, b"vote v=3").is_ok());
        assert_eq!(qc.verify(&set, b"vote v=4"), Err(QcError::BadSignature));
        let back = QuorumCertificate::from_bytes(&qc.to_bytes()).unwrap();
        assert_eq!(back, qc);
    }

    #[test]
    fn optimistic_aggregation_drops_bad_votes() {
        let (sks, set) = setup(7);
        let mut agg = VoteAggregator::new(&set, b"m");
        for i in 0..6 {
            let msg: &[u8] = if i == 2 { b"other" } else { b"m" };
            agg.add(i, sks[i].sign(msg)).unwrap();
        }
        // 5 good of 7 still form a quorum; the bad vote is left out.
        let qc = agg.finish().unwrap();
        assert!(!qc.signers.get(2));
        assert_eq!(qc.signers.count(), 5);

        let mut agg = VoteAggregator::new(&set, b"m");
        for i in 0..5 {
            let msg: &[u8] = if i == 0 { b"other" } else { b"m" };
            agg.add(i, sks[i].sign(msg)).unwrap();
        }
        assert_eq!(agg.finish(), Err(FinishError::BadVotes(vec![0])));
        assert_eq!(agg.add(1, sks[1].sign(b"m")), Err(VoteError::Duplicate(1)));
        assert_eq!(
            agg.add(7, sks[1].sign(b"m")),
            Err(VoteError::UnknownVoter(7))
        );
        agg.add(5, sks[5].sign(b"m")).unwrap();
        assert!(agg.finish().is_ok());
    }

    #[test]
    fn set_rejects_duplicates_zero_power_and_bad_pop() {
        let (sks, _) = setup(2);
        let v = |k: &SecretKey, p| Validator {
            key: k.public_key(),
            power: p,
        };
        assert!(ValidatorSet::new_pop_checked(vec![]).is_err());
        assert!(ValidatorSet::new_pop_checked(vec![v(&sks[0], 1), v(&sks[0], 1)]).is_err());
        assert!(ValidatorSet::new_pop_checked(vec![v(&sks[0], 0)]).is_err());
        assert!(
            ValidatorSet::new_with_pops(vec![(v(&sks[0], 1), sks[1].prove_possession())]).is_err()
        );
    }

    #[test]
    fn bitmap_decoding_rejects_bad_input() {
        let mut bm = SignerBitmap::new(10);
        bm.set(0);
        bm.set(9);
        let bytes = bm.to_bytes();
        assert_eq!(SignerBitmap::from_bytes(&bytes).unwrap(), (bm, bytes.len()));
        let mut stray = bytes.clone();
        stray[5] |= 0x80; // bit 15 of a 10-bit map
        assert!(SignerBitmap::from_bytes(&stray).is_err());
        assert!(SignerBitmap::from_bytes(&bytes[..5]).is_err());
        assert!(SignerBitmap::from_bytes(&(5000u32).to_le_bytes()).is_err());
    }
}
