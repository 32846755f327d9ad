//! A binary Merkle tree over an ordered list (a block's transactions or
//! receipts) with inclusion proofs.
//!
//! Our own, ~100 lines, because the shape must be pinned for light clients:
//! leaves are `H(MerkleLeaf, item)`, inner nodes `H(MerkleNode, left ||
//! right)`; a level with an odd count carries its last node up unchanged
//! (never duplicated, so two different lists cannot share a root as in
//! CVE-2012-2459); the empty list has root `H(MerkleNode, "")`. A proof
//! names the leaf index and the list length, so the path shape is fixed.

use crate::hash::{hash, hash_parts, Digest, Domain};
use crate::CryptoError;

/// Longest proof accepted: lists are at most 2^32 items.
pub const PROOF_DEPTH_MAX: usize = 32;

/// Hash of one list item as a leaf.
pub fn leaf_hash(item: &[u8]) -> Digest {
    hash(Domain::MerkleLeaf, item)
}

fn node_hash(l: &Digest, r: &Digest) -> Digest {
    hash_parts(Domain::MerkleNode, &[&l.0, &r.0])
}

/// Root of the empty list.
pub fn empty_root() -> Digest {
    hash(Domain::MerkleNode, b"")
}

/// Root over already-hashed leaves.
pub fn root_of_leaves(leaves: &[Digest]) -> Digest {
    if leaves.is_empty() {
        return empty_root();
    }
    let mut level: Vec<Digest> = leaves.to_vec();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

/// Root over raw items.
pub fn root<T: AsRef<[u8]>>(items: &[T]) -> Digest {
    let leaves: Vec<Digest> = items.iter().map(|i| leaf_hash(i.as_ref())).collect();
    root_of_leaves(&leaves)
}

fn next_level(level: &[Digest]) -> Vec<Digest> {
    level
        .chunks(2)
        .map(|c| {
            if c.len() == 2 {
                node_hash(&c[0], &c[1])
            } else {
                c[0]
            }
        })
        .collect()
}

/// Proof that the leaf at `index` is in a list of `leaf_count` items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// Position of the leaf.
    pub index: u32,
    /// Length of the list.
    pub leaf_count: u32,
    /// Sibling hashes from the leaf level up (levels where the node was
    /// carried up alone contribute nothing).
    pub siblings: Vec<Digest>,
}

/// Build the proof for `index` over `leaves`.
pub fn prove(leaves: &[Digest], index: usize) -> Option<InclusionProof> {
    if index >= leaves.len() || leaves.len() > u32::MAX as usize {
        return None;
    }
    let mut siblings = Vec::new();
    let mut level: Vec<Digest> = leaves.to_vec();
    let mut i = index;
    while level.len() > 1 {
        let sib = i ^ 1;
        if sib < level.len() {
            siblings.push(level[sib]);
        }
        level = next_level(&level);
        i /= 2;
    }
    Some(InclusionProof {
        index: index as u32,
        leaf_count: leaves.len() as u32,
        siblings,
    })
}

impl InclusionProof {
    /// Check that `leaf` sits at `self.index` under `root`.
    pub fn verify(&self, root: &Digest, leaf: &Digest) -> Result<(), CryptoError> {
        if &self.root_from(leaf)? == root {
            Ok(())
        } else {
            Err(CryptoError::BadProof("root mismatch"))
        }
    }

    /// The root this proof leads to from `leaf` (for roots that are
    /// themselves hashed into something else, such as a batch digest).
    pub fn root_from(&self, leaf: &Digest) -> Result<Digest, CryptoError> {
        if self.index >= self.leaf_count || self.siblings.len() > PROOF_DEPTH_MAX {
            return Err(CryptoError::BadProof("index or depth out of range"));
        }
        let mut acc = *leaf;
        let mut i = self.index as usize;
        let mut width = self.leaf_count as usize;
        let mut sibs = self.siblings.iter();
        while width > 1 {
            let sib = i ^ 1;
            if sib < width {
                let s = sibs
                    .next()
                    .ok_or(CryptoError::BadProof("too few siblings"))?;
                acc = if i % 2 == 0 {
                    node_hash(&acc, s)
                } else {
                    node_hash(s, &acc)
                };
            }
            i /= 2;
            width = width.div_ceil(2);
        }
        if sibs.next().is_some() {
            return Err(CryptoError::BadProof("too many siblings"));
        }
        Ok(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn items(n: usize) -> Vec<Vec<u8>> {
        (0..n as u32).map(|i| i.to_le_bytes().to_vec()).collect()
    }

    #[test]
    fn small_trees_have_expected_shape() {
        let l: Vec<Digest> = items(3).iter().map(|i| leaf_hash(i)).collect();
        assert_eq!(root_of_leaves(&l[..1]), l[0]);
        assert_eq!(root_of_leaves(&l[..2]), node_hash(&l[0], &l[1]));
        // Odd last node is carried up, not duplicated.
        assert_eq!(
            root_of_leaves(&l),
            node_hash(&node_hash(&l[0], &l[1]), &l[2])
        );
        assert_ne!(root_of_leaves(&[]), l[0]);
    }

    #[test]
    fn duplicated_last_leaf_changes_root() {
        let a = root(&items(3));
        let mut dup = items(3);
        dup.push(dup[2].clone());
        assert_ne!(a, root(&dup));
    }

    proptest! {
        #[test]
        fn every_proof_verifies_and_only_for_its_leaf(n in 1usize..70, seed in any::<u64>()) {
            let its = items(n);
            let leaves: Vec<Digest> = its.iter().map(|i| leaf_hash(i)).collect();
            let r = root_of_leaves(&leaves);
            let idx = (seed as usize) % n;
            let p = prove(&leaves, idx).unwrap();
            prop_assert!(p.verify(&r, &leaves[idx]).is_ok());
            let other = leaf_hash(b"not in the list");
            prop_assert!(p.verify(&r, &other).is_err());
            let wrong_root = leaf_hash(b"other root");
            prop_assert!(p.verify(&wrong_root, &leaves[idx]).is_err());
            if n > 1 {
                let mut moved = p.clone();
                moved.index = ((idx + 1) % n) as u32;
                prop_assert!(moved.verify(&r, &leaves[idx]).is_err());
            }
        }
    }
}
