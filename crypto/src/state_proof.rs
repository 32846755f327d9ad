//! The shape of the authenticated state tree and its proofs, with no
//! storage: what a light client needs to check that a key has a value (or
//! none) under a state root. The tree itself lives in `plume-storage`
//! (`smt`), which uses exactly these functions; `plume-protocol` re-exports
//! them for clients.
//!
//! Shape (pinned by golden tests in `plume-storage`):
//! - the empty subtree hashes to [`EMPTY_HASH`] (all zero bytes);
//! - a leaf is `H(State, 0x00 || key || value_hash)` with
//!   `value_hash = H(State, 0x02 || value)`;
//! - an inner node is `H(State, 0x01 || left || right)`;
//! - a subtree that holds exactly one key is that key's leaf.

use crate::{hash_parts, Digest, Domain};

/// A 256-bit state key.
pub type StateKey = [u8; 32];

/// Hash of the empty subtree (and root of the empty state).
pub const EMPTY_HASH: Digest = Digest::ZERO;

/// Depth of a full key path: the deepest position a leaf can take.
pub const KEY_BITS: u16 = 256;

/// Longest proof accepted (one sibling per level).
pub const PROOF_SIBLINGS_MAX: usize = KEY_BITS as usize;

const TAG_LEAF: u8 = 0x00;
const TAG_INNER: u8 = 0x01;
const TAG_VALUE: u8 = 0x02;

/// Hash of a state value as committed by its leaf.
pub fn value_hash(value: &[u8]) -> Digest {
    hash_parts(Domain::State, &[&[TAG_VALUE], value])
}

/// Hash of the leaf of `key` with value hash `value_hash`.
pub fn leaf_hash(key: &StateKey, value_hash: &Digest) -> Digest {
    hash_parts(Domain::State, &[&[TAG_LEAF], key, &value_hash.0])
}

/// Hash of an inner node.
pub fn inner_hash(left: &Digest, right: &Digest) -> Digest {
    hash_parts(Domain::State, &[&[TAG_INNER], &left.0, &right.0])
}

/// Bit `i` of `key`, most significant bit of byte 0 first.
pub fn key_bit(key: &StateKey, i: u16) -> u8 {
    (key[(i / 8) as usize] >> (7 - (i % 8))) & 1
}

/// Where a proof's path ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProofEnd {
    /// An empty subtree: the key is absent.
    Empty,
    /// A leaf: the key itself (inclusion) or another key whose path shares
    /// the proof's prefix (non-inclusion).
    Leaf {
        /// The leaf's key.
        key: StateKey,
        /// Hash of the leaf's value.
        value_hash: Digest,
    },
}

/// Proof that a key has a given value, or no value, under a root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateProof {
    /// Sibling hashes from the root down: `siblings[i]` is the sibling of
    /// the path's node at depth `i + 1`.
    pub siblings: Vec<Digest>,
    /// What the path ends in.
    pub end: ProofEnd,
}

/// Why a proof did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// More siblings than key bits.
    #[error("proof longer than {PROOF_SIBLINGS_MAX} levels")]
    TooLong,
    /// The proof ends in a leaf that does not match the claim.
    #[error("proof does not support the claimed value: {0}")]
    WrongClaim(&'static str),
    /// The recomputed root differs.
    #[error("proof does not lead to the root")]
    RootMismatch,
    /// Bytes that do not decode as a proof.
    #[error("malformed state proof")]
    Malformed,
}

impl StateProof {
    /// Check that under `root`, `key` has `value` (`None`: is absent).
    pub fn verify(
        &self,
        root: &Digest,
        key: &StateKey,
        value: Option<&[u8]>,
    ) -> Result<(), ProofError> {
        if self.siblings.len() > PROOF_SIBLINGS_MAX {
            return Err(ProofError::TooLong);
        }
        let depth = self.siblings.len() as u16;
        let end_hash = match (&self.end, value) {
            (ProofEnd::Empty, None) => EMPTY_HASH,
            (ProofEnd::Empty, Some(_)) => {
                return Err(ProofError::WrongClaim("path ends empty"));
            }
            (
                ProofEnd::Leaf {
                    key: leaf_key,
                    value_hash: vh,
                },
                claim,
            ) => {
                match claim {
                    Some(v) => {
                        if leaf_key != key {
                            return Err(ProofError::WrongClaim("leaf holds another key"));
                        }
                        if *vh != value_hash(v) {
                            return Err(ProofError::WrongClaim("leaf holds another value"));
                        }
                    }
                    None => {
                        if leaf_key == key {
                            return Err(ProofError::WrongClaim("key is present"));
                        }
                        if (0..depth).any(|i| key_bit(leaf_key, i) != key_bit(key, i)) {
                            return Err(ProofError::WrongClaim("leaf is off the key's path"));
                        }
                    }
                }
                leaf_hash(leaf_key, vh)
            }
        };
        let mut acc = end_hash;
        for i in (0..depth).rev() {
            let sib = &self.siblings[i as usize];
            acc = if key_bit(key, i) == 0 {
                inner_hash(&acc, sib)
            } else {
                inner_hash(sib, &acc)
            };
        }
        if acc == *root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        }
    }
}

impl StateProof {
    /// The proof as bytes: `count u16 | siblings (32 each) | end` where
    /// `end` is `0` (empty) or `1 | key | value_hash`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(2 + 32 * self.siblings.len() + 65);
        b.extend_from_slice(&(self.siblings.len() as u16).to_le_bytes());
        for s in &self.siblings {
            b.extend_from_slice(&s.0);
        }
        match &self.end {
            ProofEnd::Empty => b.push(0),
            ProofEnd::Leaf { key, value_hash } => {
                b.push(1);
                b.extend_from_slice(key);
                b.extend_from_slice(&value_hash.0);
            }
        }
        b
    }

    /// Decode [`StateProof::to_bytes`] (bounded, canonical).
    pub fn from_bytes(b: &[u8]) -> Result<StateProof, ProofError> {
        let n = u16::from_le_bytes(
            b.get(..2)
                .ok_or(ProofError::Malformed)?
                .try_into()
                .map_err(|_| ProofError::Malformed)?,
        ) as usize;
        if n > PROOF_SIBLINGS_MAX {
            return Err(ProofError::TooLong);
        }
        let mut pos = 2;
        let mut siblings = Vec::with_capacity(n);
        for _ in 0..n {
            let d = b.get(pos..pos + 32).ok_or(ProofError::Malformed)?;
            siblings.push(Digest(d.try_into().map_err(|_| ProofError::Malformed)?));
            pos += 32;
        }
        let end = match b.get(pos) {
            Some(0) if b.len() == pos + 1 => ProofEnd::Empty,
            Some(1) if b.len() == pos + 65 => ProofEnd::Leaf {
                key: b[pos + 1..pos + 33]
                    .try_into()
                    .map_err(|_| ProofError::Malformed)?,
                value_hash: Digest(
                    b[pos + 33..pos + 65]
                        .try_into()
                        .map_err(|_| ProofError::Malformed)?,
                ),
            },
            _ => return Err(ProofError::Malformed),
        };
        Ok(StateProof { siblings, end })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_round_trip_as_bytes_and_malformed_bytes_are_errors() {
        for p in [
            StateProof {
                siblings: vec![Digest([1; 32]), Digest([2; 32])],
                end: ProofEnd::Leaf {
                    key: [3; 32],
                    value_hash: Digest([4; 32]),
                },
            },
            StateProof {
                siblings: vec![],
                end: ProofEnd::Empty,
            },
        ] {
            let b = p.to_bytes();
            assert_eq!(StateProof::from_bytes(&b), Ok(p.clone()));
            for cut in 0..b.len() {
                assert!(StateProof::from_bytes(&b[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert!(StateProof::from_bytes(&longer).is_err());
        }
        let mut huge = (PROOF_SIBLINGS_MAX as u16 + 1).to_le_bytes().to_vec();
        huge.push(0);
        assert_eq!(StateProof::from_bytes(&huge), Err(ProofError::TooLong));
    }
}
