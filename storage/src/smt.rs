//! The authenticated state tree: a binary sparse Merkle tree over 256-bit
//! keys with single-leaf subtrees collapsed, plus inclusion and
//! non-inclusion proofs a client checks with only the root.
//!
//! Shape (pinned by golden tests, light clients depend on it):
//! - the empty subtree hashes to [`EMPTY_HASH`] (all zero bytes);
//! - a leaf is `H(State, 0x00 || key || value_hash)` with
//!   `value_hash = H(State, 0x02 || value)`;
//! - an inner node is `H(State, 0x01 || left || right)`;
//! - a subtree that holds exactly one key is that key's leaf, placed at
//!   the subtree's position (so the depth is about log2(keys), not 256).
//!
//! The tree is canonical: its shape depends only on the set of keys, so the
//! root is independent of the order of updates. Nodes are stored by
//! position ([`NodePos`]: depth and key prefix) and overwritten in place:
//! storage keeps the current tree only, no history. An update touches the
//! nodes on the paths of the changed keys, so its cost grows with the batch,
//! not the state.

use crate::records::TreeNode;
use crate::{StateKey, StorageError};
use plume_crypto::Digest;
use std::collections::HashMap;

pub use plume_crypto::state_proof::{
    inner_hash, key_bit, leaf_hash, value_hash, ProofEnd, ProofError, StateProof, EMPTY_HASH,
    KEY_BITS, PROOF_SIBLINGS_MAX,
};

/// Position of a node: its depth and the first `depth` bits of any key
/// below it (the other bits are zero).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct NodePos {
    /// Depth from the root (0 = root).
    pub depth: u16,
    /// Key prefix, bits beyond `depth` cleared.
    pub path: [u8; 32],
}

impl NodePos {
    /// The root position.
    pub const ROOT: NodePos = NodePos {
        depth: 0,
        path: [0; 32],
    };

    /// The child on side `bit` (0 left, 1 right).
    pub fn child(&self, bit: u8) -> NodePos {
        assert!(self.depth < KEY_BITS, "no child below a full key path");
        let mut path = self.path;
        if bit == 1 {
            path[(self.depth / 8) as usize] |= 1 << (7 - (self.depth % 8));
        }
        NodePos {
            depth: self.depth + 1,
            path,
        }
    }

    /// Encoding used as the key of the node table, path first so that a
    /// subtree's nodes sit next to each other (an update of one key then
    /// dirties few pages): for depth <= [`SHORT_KEY_DEPTH_MAX`] the first 7
    /// path bytes then the depth (8 bytes); deeper (only when keys share
    /// more than 56 bits) the 32 path bytes, 0xFF, the depth as 2 bytes big
    /// endian (35 bytes). The two forms differ in length, so never collide.
    pub fn encode(&self) -> ([u8; 35], usize) {
        let mut out = [0u8; 35];
        if self.depth <= SHORT_KEY_DEPTH_MAX {
            out[..7].copy_from_slice(&self.path[..7]);
            out[7] = self.depth as u8;
            (out, 8)
        } else {
            out[..32].copy_from_slice(&self.path);
            out[32] = 0xFF;
            out[33..35].copy_from_slice(&self.depth.to_be_bytes());
            (out, 35)
        }
    }

    /// A cheap key that orders positions like [`NodePos::encode`] for the
    /// short form (used to sort writes for locality).
    pub fn locality_key(&self) -> u64 {
        let mut b = [0u8; 8];
        b[..7].copy_from_slice(&self.path[..7]);
        b[7] = self.depth.min(255) as u8;
        u64::from_be_bytes(b)
    }
}

/// Deepest position whose node key uses the short 8-byte form.
pub const SHORT_KEY_DEPTH_MAX: u16 = 56;

/// Hasher for [`NodePos`] maps: positions are prefixes of hashed keys, so
/// their bytes are already uniform; mixing 16 of them with the depth is
/// enough and much cheaper than SipHash.
#[derive(Default, Clone, Copy)]
pub struct PosHasher(u64);

impl std::hash::Hasher for PosHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            self.0 = (self.0 ^ u64::from_le_bytes(w))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(31);
        }
    }
    fn write_u16(&mut self, v: u16) {
        self.0 = (self.0 ^ u64::from(v))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(31);
    }
}

/// A map keyed by node position.
pub type PosMap<V> = HashMap<NodePos, V, std::hash::BuildHasherDefault<PosHasher>>;

/// Read access to stored tree nodes.
pub trait NodeRead {
    /// The node at `pos`, if any.
    fn get_node(&self, pos: &NodePos) -> Result<Option<TreeNode>, StorageError>;
}

/// Read and write access to stored tree nodes.
pub trait NodeStore: NodeRead {
    /// Store `node` at `pos` (overwrite).
    fn put_node(&mut self, pos: &NodePos, node: TreeNode) -> Result<(), StorageError>;
    /// Remove the node at `pos` (absent: no-op).
    fn delete_node(&mut self, pos: &NodePos) -> Result<(), StorageError>;
}

impl NodeRead for PosMap<TreeNode> {
    fn get_node(&self, pos: &NodePos) -> Result<Option<TreeNode>, StorageError> {
        Ok(self.get(pos).copied())
    }
}

impl NodeStore for PosMap<TreeNode> {
    fn put_node(&mut self, pos: &NodePos, node: TreeNode) -> Result<(), StorageError> {
        self.insert(*pos, node);
        Ok(())
    }
    fn delete_node(&mut self, pos: &NodePos) -> Result<(), StorageError> {
        self.remove(pos);
        Ok(())
    }
}

/// What a subtree became after an update.
#[derive(Clone, Copy)]
enum Sub {
    Empty,
    Leaf(StateKey, Digest),
    Inner(Digest),
    /// Unchanged subtree: its hash is known from the parent, its shape not.
    Unchanged(Digest),
}

impl Sub {
    fn hash(&self) -> Digest {
        match self {
            Sub::Empty => EMPTY_HASH,
            Sub::Leaf(k, vh) => leaf_hash(k, vh),
            Sub::Inner(h) | Sub::Unchanged(h) => *h,
        }
    }
    fn unchanged(h: Digest) -> Sub {
        if h == EMPTY_HASH {
            Sub::Empty
        } else {
            Sub::Unchanged(h)
        }
    }
}

/// A write with the value already hashed (`None` deletes).
pub type HashedWrite = (StateKey, Option<Digest>);

/// Apply `writes` (sorted by key, each key once) to the tree in `store` and
/// return the new root.
pub fn apply_writes<S: NodeStore>(
    store: &mut S,
    writes: &[HashedWrite],
) -> Result<Digest, StorageError> {
    debug_assert!(writes.windows(2).all(|w| w[0].0 < w[1].0));
    if writes.is_empty() {
        return Ok(match store.get_node(&NodePos::ROOT)? {
            None => EMPTY_HASH,
            Some(n) => n.hash(),
        });
    }
    Ok(update(store, NodePos::ROOT, writes)?.hash())
}

/// Invariant kept by `update`, `build` and `combine`: when they return, the
/// node stored at `pos` matches the result (Empty: none, Leaf: that leaf,
/// Inner: that inner node).
fn update<S: NodeStore>(
    s: &mut S,
    pos: NodePos,
    writes: &[HashedWrite],
) -> Result<Sub, StorageError> {
    match s.get_node(&pos)? {
        None => {
            let items: Vec<(StateKey, Digest)> = writes
                .iter()
                .filter_map(|(k, v)| v.map(|vh| (*k, vh)))
                .collect();
            build(s, pos, &items, true)
        }
        Some(TreeNode::Leaf { key, value_hash }) => {
            let mut items: Vec<(StateKey, Digest)> = Vec::with_capacity(writes.len() + 1);
            let mut old = Some((key, Digest(value_hash)));
            for (k, v) in writes {
                if let Some((ok, ovh)) = old {
                    if ok < *k {
                        items.push((ok, ovh));
                        old = None;
                    } else if ok == *k {
                        old = None;
                    }
                }
                if let Some(vh) = v {
                    items.push((*k, *vh));
                }
            }
            if let Some(o) = old {
                items.push(o);
            }
            build(s, pos, &items, false)
        }
        Some(TreeNode::Inner { left, right }) => {
            let split = writes.partition_point(|(k, _)| key_bit(k, pos.depth) == 0);
            let (wl, wr) = writes.split_at(split);
            let sl = if wl.is_empty() {
                Sub::unchanged(Digest(left))
            } else {
                update(s, pos.child(0), wl)?
            };
            let sr = if wr.is_empty() {
                Sub::unchanged(Digest(right))
            } else {
                update(s, pos.child(1), wr)?
            };
            combine(s, pos, sl, sr)
        }
    }
}

/// Build the subtree at `pos` from `items` (sorted, unique). `vacant`: no
/// node is stored at or below `pos`.
fn build<S: NodeStore>(
    s: &mut S,
    pos: NodePos,
    items: &[(StateKey, Digest)],
    vacant: bool,
) -> Result<Sub, StorageError> {
    match items {
        [] => {
            if !vacant {
                s.delete_node(&pos)?;
            }
            Ok(Sub::Empty)
        }
        [(k, vh)] => {
            s.put_node(
                &pos,
                TreeNode::Leaf {
                    key: *k,
                    value_hash: vh.0,
                },
            )?;
            Ok(Sub::Leaf(*k, *vh))
        }
        _ => {
            assert!(pos.depth < KEY_BITS, "two distinct keys share all 256 bits");
            let split = items.partition_point(|(k, _)| key_bit(k, pos.depth) == 0);
            let l = build(s, pos.child(0), &items[..split], true)?.hash();
            let r = build(s, pos.child(1), &items[split..], true)?.hash();
            s.put_node(
                &pos,
                TreeNode::Inner {
                    left: l.0,
                    right: r.0,
                },
            )?;
            Ok(Sub::Inner(inner_hash(&l, &r)))
        }
    }
}

/// Join two updated children at `pos`, collapsing a lone leaf upward.
fn combine<S: NodeStore>(s: &mut S, pos: NodePos, l: Sub, r: Sub) -> Result<Sub, StorageError> {
    let lone = match (&l, &r) {
        (Sub::Empty, Sub::Empty) => {
            s.delete_node(&pos)?;
            return Ok(Sub::Empty);
        }
        (Sub::Empty, other) => Some((1u8, *other)),
        (other, Sub::Empty) => Some((0u8, *other)),
        _ => None,
    };
    if let Some((side, child)) = lone {
        let child_pos = pos.child(side);
        let leaf = match child {
            Sub::Leaf(k, vh) => Some((k, vh)),
            Sub::Unchanged(_) => match s.get_node(&child_pos)? {
                Some(TreeNode::Leaf { key, value_hash }) => Some((key, Digest(value_hash))),
                Some(TreeNode::Inner { .. }) => None,
                None => {
                    return Err(StorageError::TreeInconsistent(format!(
                        "node at depth {} names a child that is not stored",
                        pos.depth
                    )))
                }
            },
            _ => None,
        };
        if let Some((k, vh)) = leaf {
            s.delete_node(&child_pos)?;
            s.put_node(
                &pos,
                TreeNode::Leaf {
                    key: k,
                    value_hash: vh.0,
                },
            )?;
            return Ok(Sub::Leaf(k, vh));
        }
    }
    let (lh, rh) = (l.hash(), r.hash());
    s.put_node(
        &pos,
        TreeNode::Inner {
            left: lh.0,
            right: rh.0,
        },
    )?;
    Ok(Sub::Inner(inner_hash(&lh, &rh)))
}

/// Build the proof for `key` from the stored tree.
pub fn prove<S: NodeRead>(store: &S, key: &StateKey) -> Result<StateProof, StorageError> {
    let mut pos = NodePos::ROOT;
    let mut siblings = Vec::new();
    loop {
        match store.get_node(&pos)? {
            None => {
                return Ok(StateProof {
                    siblings,
                    end: ProofEnd::Empty,
                })
            }
            Some(TreeNode::Leaf { key: k, value_hash }) => {
                return Ok(StateProof {
                    siblings,
                    end: ProofEnd::Leaf {
                        key: k,
                        value_hash: Digest(value_hash),
                    },
                })
            }
            Some(TreeNode::Inner { left, right }) => {
                let bit = key_bit(key, pos.depth);
                let (next, sib) = if bit == 0 {
                    (left, right)
                } else {
                    (right, left)
                };
                siblings.push(Digest(sib));
                if next == EMPTY_HASH.0 {
                    return Ok(StateProof {
                        siblings,
                        end: ProofEnd::Empty,
                    });
                }
                pos = pos.child(bit);
            }
        }
    }
}

/// Check a batch of writes (any order, each key at most once), hash the
/// values, and return it sorted by key.
pub fn prepare_writes(writes: &[crate::StateWrite]) -> Result<Vec<HashedWrite>, StorageError> {
    let mut hashed: Vec<HashedWrite> = writes
        .iter()
        .map(|(k, v)| (*k, v.as_deref().map(value_hash)))
        .collect();
    if !hashed.windows(2).all(|w| w[0].0 < w[1].0) {
        hashed.sort_unstable_by_key(|w| w.0);
        if let Some(w) = hashed.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(StorageError::InvalidBatch(format!(
                "key {} written twice in one batch",
                hex_key(&w[0].0)
            )));
        }
    }
    Ok(hashed)
}

pub(crate) fn hex_key(k: &[u8]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

/// Authenticated state held in memory: values and tree nodes in hash maps.
/// For tests, the simulator and execution's unit tests; gives the same
/// roots and proofs as the LMDB-backed [`crate::Store`].
#[derive(Default, Clone)]
pub struct MemoryState {
    values: HashMap<StateKey, Vec<u8>, std::hash::BuildHasherDefault<PosHasher>>,
    nodes: PosMap<TreeNode>,
    root: Digest,
}

impl MemoryState {
    /// The empty state (root [`EMPTY_HASH`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Proof for `key` against [`crate::AuthenticatedState::root`].
    pub fn prove(&self, key: &StateKey) -> StateProof {
        prove(&self.nodes, key).expect("in-memory node reads cannot fail")
    }

    /// Number of keys with a value.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Number of stored tree nodes (for tests and benchmarks).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

impl crate::AuthenticatedState for MemoryState {
    type Error = StorageError;

    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.values.get(key).cloned())
    }

    fn apply(&mut self, writes: &[crate::StateWrite]) -> Result<Digest, StorageError> {
        let hashed = prepare_writes(writes)?;
        self.root = apply_writes(&mut self.nodes, &hashed)?;
        for (k, v) in writes {
            match v {
                Some(v) => {
                    self.values.insert(*k, v.clone());
                }
                None => {
                    self.values.remove(k);
                }
            }
        }
        Ok(self.root)
    }

    fn root(&self) -> Digest {
        self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthenticatedState;
    use proptest::prelude::*;

    fn k(n: u64) -> StateKey {
        plume_crypto::hash(plume_crypto::Domain::State, &n.to_le_bytes()).0
    }

    #[test]
    fn empty_state_root_is_zero_and_proves_absence() {
        let s = MemoryState::new();
        assert_eq!(s.root(), EMPTY_HASH);
        let p = s.prove(&k(1));
        assert_eq!(p.end, ProofEnd::Empty);
        p.verify(&s.root(), &k(1), None).unwrap();
        assert!(p.verify(&s.root(), &k(1), Some(b"x")).is_err());
    }

    #[test]
    fn golden_node_keys() {
        let mut key = [0u8; 32];
        key[0] = 0b1010_0000;
        key[31] = 1;
        let mut pos = NodePos::ROOT;
        assert_eq!(
            hex_key(&pos.encode().0[..pos.encode().1]),
            "0000000000000000"
        );
        for i in 0..3 {
            pos = pos.child(key_bit(&key, i));
        }
        assert_eq!(
            hex_key(&pos.encode().0[..pos.encode().1]),
            "a000000000000003"
        );
        for i in 3..256 {
            pos = pos.child(key_bit(&key, i));
        }
        let (b, n) = pos.encode();
        assert_eq!(n, 35);
        assert_eq!(
            hex_key(&b[..n]),
            "a000000000000000000000000000000000000000000000000000000000000001ff0100"
        );
    }

    #[test]
    fn single_key_root_is_its_leaf() {
        let mut s = MemoryState::new();
        let r = s.apply(&[(k(1), Some(b"v".to_vec()))]).unwrap();
        assert_eq!(r, leaf_hash(&k(1), &value_hash(b"v")));
        assert_eq!(s.node_count(), 1);
    }

    #[test]
    fn golden_root_of_three_keys() {
        // Pins the hash shape: a change here breaks every light client.
        let mut s = MemoryState::new();
        let r = s
            .apply(&[
                ([0x00; 32], Some(b"a".to_vec())),
                ([0x80; 32], Some(b"b".to_vec())),
                ([0x40; 32], Some(b"c".to_vec())),
            ])
            .unwrap();
        // Shape: root = inner(inner(leaf 00.., leaf 40..), leaf 80..).
        let l00 = leaf_hash(&[0x00; 32], &value_hash(b"a"));
        let l40 = leaf_hash(&[0x40; 32], &value_hash(b"c"));
        let l80 = leaf_hash(&[0x80; 32], &value_hash(b"b"));
        assert_eq!(r, inner_hash(&inner_hash(&l00, &l40), &l80));
        assert_eq!(
            r.to_hex(),
            "787ecf391dc6e9d1acdaf9c046a9a7629362e7e7b22b592326984131de6c3f61"
        );
    }

    #[test]
    fn delete_collapses_back_to_the_smaller_tree() {
        let mut a = MemoryState::new();
        let r1 = a.apply(&[(k(1), Some(vec![1]))]).unwrap();
        a.apply(&[(k(2), Some(vec![2])), (k(3), Some(vec![3]))])
            .unwrap();
        let r = a.apply(&[(k(2), None), (k(3), None)]).unwrap();
        assert_eq!(r, r1);
        assert_eq!(a.node_count(), 1);
        assert_eq!(a.apply(&[(k(1), None)]).unwrap(), EMPTY_HASH);
        assert_eq!(a.node_count(), 0);
    }

    #[test]
    fn duplicate_key_in_batch_is_rejected() {
        let mut s = MemoryState::new();
        let e = s.apply(&[(k(1), Some(vec![1])), (k(1), None)]).unwrap_err();
        assert!(matches!(e, StorageError::InvalidBatch(_)), "{e}");
        assert_eq!(s.root(), EMPTY_HASH);
    }

    #[test]
    fn non_inclusion_proof_ending_in_a_neighbour_leaf() {
        let mut s = MemoryState::new();
        s.apply(&[([0x00; 32], Some(b"a".to_vec()))]).unwrap();
        s.apply(&[([0xff; 32], Some(b"b".to_vec()))]).unwrap();
        let mut absent = [0x00; 32];
        absent[31] = 1;
        let p = s.prove(&absent);
        assert!(matches!(p.end, ProofEnd::Leaf { .. }));
        p.verify(&s.root(), &absent, None).unwrap();
        // The same proof cannot claim the neighbour's key is absent.
        assert!(p.verify(&s.root(), &[0x00; 32], None).is_err());
        p.verify(&s.root(), &[0x00; 32], Some(b"a")).unwrap();
    }

    fn arb_writes() -> impl Strategy<Value = Vec<(u8, Option<u8>)>> {
        prop::collection::vec((any::<u8>(), prop::option::of(any::<u8>())), 1..60)
    }

    /// Keys from a small space so that updates and deletes collide.
    fn small_key(i: u8) -> StateKey {
        let mut key = k(u64::from(i % 48));
        // Some keys share a long prefix to exercise deep paths.
        if i % 5 == 0 {
            key = [0xAA; 32];
            key[31] = i;
        }
        key
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn root_independent_of_update_order(writes in arb_writes(), seed in any::<u64>()) {
            // Final contents: last write per key wins.
            let mut last: std::collections::BTreeMap<StateKey, Option<Vec<u8>>> = Default::default();
            let mut seq = MemoryState::new();
            for (i, v) in &writes {
                let w = (small_key(*i), v.map(|b| vec![b; 3]));
                seq.apply(std::slice::from_ref(&w)).unwrap();
                last.insert(w.0, w.1);
            }
            // One batch with the final contents, in a shuffled order.
            let mut batch: Vec<crate::StateWrite> = last.iter().filter(|(_, v)| v.is_some()).map(|(k, v)| (*k, v.clone())).collect();
            let mut x = seed | 1;
            for i in (1..batch.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                batch.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut once = MemoryState::new();
            once.apply(&batch).unwrap();
            prop_assert_eq!(seq.root(), once.root());
            prop_assert_eq!(seq.node_count(), once.node_count());
        }

        #[test]
        fn proofs_verify_against_their_root_only(writes in arb_writes(), probe in any::<u8>(), other in arb_writes()) {
            let mut s = MemoryState::new();
            let mut roots = vec![s.root()];
            for chunk in writes.chunks(7) {
                let mut m: std::collections::BTreeMap<StateKey, Option<Vec<u8>>> = Default::default();
                for (i, v) in chunk { m.insert(small_key(*i), v.map(|b| vec![b])); }
                let batch: Vec<crate::StateWrite> = m.into_iter().collect();
                roots.push(s.apply(&batch).unwrap());
            }
            let root = s.root();
            let mut t = MemoryState::new();
            for (i, v) in &other { t.apply(&[(small_key(i.wrapping_add(1)), v.map(|b| vec![b, 9]))]).unwrap(); }
            for key in [small_key(probe), k(1000 + u64::from(probe))] {
                let value = s.get(&key).unwrap();
                let p = s.prove(&key);
                prop_assert!(p.verify(&root, &key, value.as_deref()).is_ok());
                // A wrong claim fails.
                let wrong: Option<Vec<u8>> = match &value { Some(_) => None, None => Some(vec![7]) };
                prop_assert!(p.verify(&root, &key, wrong.as_deref()).is_err());
                // Any other root fails.
                for r in roots.iter().chain([&t.root(), &Digest([1; 32])]) {
                    if *r != root {
                        prop_assert!(p.verify(r, &key, value.as_deref()).is_err());
                    }
                }
            }
        }
    }
}
