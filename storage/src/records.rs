//! On-disk record types (rkyv archives) and the record envelope.
//!
//! Every value stored in a table is `payload || checksum` where the checksum
//! is 8 bytes over (table, key, payload). A read checks the checksum, then
//! validates the rkyv archive with bytecheck before the first access, so a
//! flipped byte or a record moved to another key is a
//! [`StorageError::Corrupt`] naming the table and the key, never a panic.
//!
//! LMDB only aligns values to 2 bytes. Archives whose alignment is 1 (tree
//! nodes, raw state values) are always read in place; the others are read
//! in place when the value happens to be aligned and otherwise copied into
//! an aligned buffer first (these are the block, certificate, transaction
//! and receipt records: not on the hot path).

use crate::kv::Table;
use crate::smt::{inner_hash, leaf_hash};
use crate::StorageError;
use plume_crypto::Digest;
use rkyv::rancor;
use rkyv::util::AlignedVec;

/// Bytes of the checksum that ends every stored value.
pub const CHECKSUM_LEN: usize = 8;

/// Schema version this build writes and reads. Bump on any change to a
/// record layout, a table's key encoding or the tree's hash shape (or to
/// the block-record bytes the node stores: 2 = batch expiry heights in
/// block records, issue 14; 3 = state roots in headers and records, and
/// executed transaction ids in records, issue 15; 4 = a transaction and its
/// receipt in one `txs` record, issue 22).
pub const SCHEMA_VERSION: u32 = 4;

/// A node of the authenticated state tree (alignment 1: read in place).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeNode {
    /// A subtree holding exactly one key.
    Leaf {
        /// The key.
        key: [u8; 32],
        /// Hash of its value.
        value_hash: [u8; 32],
    },
    /// An inner node: hashes of its two children (zero: empty).
    Inner {
        /// Left child hash.
        left: [u8; 32],
        /// Right child hash.
        right: [u8; 32],
    },
}

impl TreeNode {
    /// The node's hash.
    pub fn hash(&self) -> Digest {
        match self {
            TreeNode::Leaf { key, value_hash } => leaf_hash(key, &Digest(*value_hash)),
            TreeNode::Inner { left, right } => inner_hash(&Digest(*left), &Digest(*right)),
        }
    }
}

/// Bytes of an archived [`TreeNode`].
pub const TREE_NODE_ARCHIVED_LEN: usize = 65;

impl TreeNode {
    /// The sealed record, written without going through the rkyv
    /// serializer (the hot path of a commit). Produces exactly the bytes of
    /// [`encode`] (tested), which is rkyv's layout for this enum: a 1-byte
    /// tag then the two 32-byte arrays.
    pub fn encode_sealed(&self, key: &[u8]) -> [u8; TREE_NODE_ARCHIVED_LEN + CHECKSUM_LEN] {
        let mut out = [0u8; TREE_NODE_ARCHIVED_LEN + CHECKSUM_LEN];
        let (tag, a, b) = match self {
            TreeNode::Leaf { key, value_hash } => (0u8, key, value_hash),
            TreeNode::Inner { left, right } => (1u8, left, right),
        };
        out[0] = tag;
        out[1..33].copy_from_slice(a);
        out[33..65].copy_from_slice(b);
        let sum = checksum(Table::Nodes, key, &out[..TREE_NODE_ARCHIVED_LEN]);
        out[TREE_NODE_ARCHIVED_LEN..].copy_from_slice(&sum);
        out
    }
}

impl ArchivedTreeNode {
    /// Copy out of the archive.
    pub fn to_node(&self) -> TreeNode {
        match self {
            ArchivedTreeNode::Leaf { key, value_hash } => TreeNode::Leaf {
                key: *key,
                value_hash: *value_hash,
            },
            ArchivedTreeNode::Inner { left, right } => TreeNode::Inner {
                left: *left,
                right: *right,
            },
        }
    }
}

/// A finalized block: its height, hash and the consensus layer's bytes
/// (storage does not interpret them).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BlockRecord {
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: [u8; 32],
    /// Encoded block.
    pub bytes: Vec<u8>,
}

/// The quorum certificate that finalized a block (opaque bytes).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct QcRecord {
    /// Height of the certified block.
    pub height: u64,
    /// Hash of the certified block.
    pub block_hash: [u8; 32],
    /// Encoded certificate.
    pub bytes: Vec<u8>,
}

/// A transaction and its receipt, stored together under the transaction's
/// hash (one random-key insert per transaction at commit, not two).
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TxReceiptRecord {
    /// Height of the block that holds it.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    /// Encoded transaction.
    pub tx: Vec<u8>,
    /// Encoded receipt.
    pub receipt: Vec<u8>,
}

/// A transaction (or its receipt) with where it sits in the chain.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TxRecord {
    /// Height of the block that holds it.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    /// Encoded transaction or receipt.
    pub bytes: Vec<u8>,
}

/// Index from block hash to height.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeightRecord {
    /// Height of the block.
    pub height: u64,
}

/// The chain's head as of the last committed block.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainMeta {
    /// Latest finalized height.
    pub finalized_height: u64,
    /// Hash of that block.
    pub block_hash: [u8; 32],
    /// State root after that block.
    pub state_root: [u8; 32],
}

/// Schema version of the store.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemaRecord {
    /// Version (see [`SCHEMA_VERSION`]).
    pub version: u32,
}

/// 64-bit checksum of (table, key, payload): a multiply-xor chain over
/// 8-byte words. Each step is a bijection of the running state, so any
/// change confined to one word always changes the result; it guards
/// against media corruption, not against an adversary.
pub fn checksum(table: Table, key: &[u8], payload: &[u8]) -> [u8; CHECKSUM_LEN] {
    const P: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = 0xA076_1D64_78BD_642F ^ u64::from(table as u8);
    let mut feed = |data: &[u8]| {
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8-byte chunk"));
            h = (h ^ w).wrapping_mul(P).rotate_left(29);
        }
        let rest = chunks.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(last))
            .wrapping_mul(P)
            .rotate_left(29);
        h = (h ^ data.len() as u64).wrapping_mul(P);
    };
    feed(key);
    feed(payload);
    (h ^ (h >> 32)).to_le_bytes()
}

/// `payload || checksum` for storing under `key` in `table`.
pub fn seal(table: Table, key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + CHECKSUM_LEN);
    out.extend_from_slice(payload);
    out.extend_from_slice(&checksum(table, key, payload));
    out
}

/// Check the envelope of a stored value and return its payload.
pub fn unseal<'a>(table: Table, key: &[u8], raw: &'a [u8]) -> Result<&'a [u8], StorageError> {
    if raw.len() < CHECKSUM_LEN {
        return Err(corrupt(table, key, "value shorter than its checksum"));
    }
    let (payload, sum) = raw.split_at(raw.len() - CHECKSUM_LEN);
    if sum != checksum(table, key, payload) {
        return Err(corrupt(table, key, "checksum mismatch"));
    }
    Ok(payload)
}

/// Serialize a record and seal it.
pub fn encode<T>(table: Table, key: &[u8], value: &T) -> Vec<u8>
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<
            AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rancor::Error,
        >,
    >,
{
    let bytes = rkyv::to_bytes::<rancor::Error>(value).expect("serializing to memory cannot fail");
    seal(table, key, &bytes)
}

pub(crate) fn corrupt(table: Table, key: &[u8], reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        table: table.name(),
        key: crate::smt::hex_key(key),
        reason: reason.into(),
    }
}

/// Validate and deserialize a stored record (the envelope is checked
/// first, then the archive with bytecheck).
pub fn decode<T>(table: Table, key: &[u8], raw: &[u8]) -> Result<T, StorageError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    let payload = unseal(table, key, raw)?;
    with_archived::<T, _, _>(table, key, payload, |a| {
        rkyv::deserialize::<T, rancor::Error>(a).map_err(|e| corrupt(table, key, e.to_string()))
    })?
}

/// Validate `payload` as an archived `T` and call `f` on it, in place when
/// aligned, else from an aligned copy.
pub fn with_archived<T, R, F>(
    table: Table,
    key: &[u8],
    payload: &[u8],
    f: F,
) -> Result<R, StorageError>
where
    T: rkyv::Archive,
    T::Archived:
        for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>,
    F: FnOnce(&T::Archived) -> R,
{
    let align = std::mem::align_of::<T::Archived>();
    if (payload.as_ptr() as usize) % align == 0 {
        let a = rkyv::access::<T::Archived, rancor::Error>(payload)
            .map_err(|e| corrupt(table, key, format!("invalid archive: {e}")))?;
        Ok(f(a))
    } else {
        let mut copy = AlignedVec::<16>::with_capacity(payload.len());
        copy.extend_from_slice(payload);
        let a = rkyv::access::<T::Archived, rancor::Error>(&copy)
            .map_err(|e| corrupt(table, key, format!("invalid archive: {e}")))?;
        Ok(f(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden bytes: the exact sealed encoding of every record type. A
    /// change here is a schema change: bump [`SCHEMA_VERSION`].
    fn check<T>(table: Table, key: &[u8], value: &T, expected_hex: &str)
    where
        T: PartialEq
            + std::fmt::Debug
            + rkyv::Archive
            + for<'a> rkyv::Serialize<
                rkyv::api::high::HighSerializer<
                    AlignedVec,
                    rkyv::ser::allocator::ArenaHandle<'a>,
                    rancor::Error,
                >,
            >,
        T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
            + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
    {
        let bytes = encode(table, key, value);
        assert_eq!(hex::encode(&bytes), expected_hex, "{table:?} {value:?}");
        let back: T = decode(table, key, &bytes).unwrap();
        assert_eq!(&back, value);
    }

    #[test]
    fn golden_tree_nodes() {
        check(
            Table::Nodes,
            &[0, 0],
            &TreeNode::Leaf {
                key: [1; 32],
                value_hash: [2; 32],
            },
            "000101010101010101010101010101010101010101010101010101010101010101020202020202020202020202020202020202020202020202020202020202020290b5d94c8f428806",
        );
        check(
            Table::Nodes,
            &[0, 1, 0x80],
            &TreeNode::Inner {
                left: [3; 32],
                right: [4; 32],
            },
            "0103030303030303030303030303030303030303030303030303030303030303030404040404040404040404040404040404040404040404040404040404040404e75a5516d4dfb0e6",
        );
    }

    #[test]
    fn fast_node_encoding_equals_rkyv() {
        for n in [
            TreeNode::Leaf {
                key: [1; 32],
                value_hash: [2; 32],
            },
            TreeNode::Inner {
                left: [3; 32],
                right: [0; 32],
            },
        ] {
            assert_eq!(
                n.encode_sealed(b"k").to_vec(),
                encode(Table::Nodes, b"k", &n)
            );
        }
    }

    #[test]
    fn golden_block_qc_tx_records() {
        check(
            Table::Blocks,
            &7u64.to_be_bytes(),
            &BlockRecord {
                height: 7,
                hash: [9; 32],
                bytes: b"block".to_vec(),
            },
            "626c6f636b00000007000000000000000909090909090909090909090909090909090909090909090909090909090909d0ffffff05000000e153f89a42b31aff",
        );
        check(
            Table::Qcs,
            &7u64.to_be_bytes(),
            &QcRecord {
                height: 7,
                block_hash: [9; 32],
                bytes: b"qc".to_vec(),
            },
            "716300000000000007000000000000000909090909090909090909090909090909090909090909090909090909090909d0ffffff020000001e100d342207e1c9",
        );
        check(
            Table::Txs,
            &[5; 32],
            &TxReceiptRecord {
                height: 7,
                index: 3,
                tx: b"tx".to_vec(),
                receipt: b"ok".to_vec(),
            },
            "74786f6b00000000070000000000000003000000ecffffff02000000e6ffffff0200000000000000bd62f0d93614256b",
        );
    }

    #[test]
    fn golden_meta_records() {
        check(
            Table::BlockHashes,
            &[9; 32],
            &HeightRecord { height: 7 },
            "07000000000000004a54ff17a4c11c7a",
        );
        check(
            Table::Meta,
            b"chain",
            &ChainMeta {
                finalized_height: 7,
                block_hash: [9; 32],
                state_root: [8; 32],
            },
            "070000000000000009090909090909090909090909090909090909090909090909090909090909090808080808080808080808080808080808080808080808080808080808080808957de9e1c877b5d6",
        );
        check(
            Table::Meta,
            b"schema",
            &SchemaRecord { version: 1 },
            "01000000637bd683186eeec1",
        );
    }

    #[test]
    fn golden_state_value() {
        // State values are stored raw (execution's bytes) in the envelope.
        assert_eq!(
            hex::encode(seal(Table::Accounts, &[1; 32], b"value")),
            "76616c7565849b2134584e4ac5"
        );
    }

    #[test]
    fn checksum_catches_flips_and_moved_records() {
        let sealed = encode(Table::Blocks, b"k1", &HeightRecord { height: 1 });
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut b = sealed.clone();
                b[i] ^= 1 << bit;
                let e = decode::<HeightRecord>(Table::Blocks, b"k1", &b).unwrap_err();
                assert!(e.to_string().contains("blocks"), "{e}");
            }
        }
        assert!(decode::<HeightRecord>(Table::Blocks, b"k2", &sealed).is_err());
        assert!(decode::<HeightRecord>(Table::Qcs, b"k1", &sealed).is_err());
        assert!(decode::<HeightRecord>(Table::Blocks, b"k1", &sealed[..4]).is_err());
    }

    #[test]
    fn bad_archive_with_good_checksum_is_corrupt_not_panic() {
        // A vector whose length points past the end, re-sealed so only
        // bytecheck can catch it.
        let mut bytes = rkyv::to_bytes::<rancor::Error>(&BlockRecord {
            height: 1,
            hash: [0; 32],
            bytes: vec![1, 2, 3],
        })
        .unwrap()
        .to_vec();
        let n = bytes.len();
        bytes[n - 4..].copy_from_slice(&1000u32.to_le_bytes());
        let sealed = seal(Table::Blocks, b"k", &bytes);
        let e = decode::<BlockRecord>(Table::Blocks, b"k", &sealed).unwrap_err();
        assert!(
            matches!(
                e,
                StorageError::Corrupt {
                    table: "blocks",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn misaligned_payload_is_read_through_a_copy() {
        let sealed = encode(
            Table::Blocks,
            b"k",
            &BlockRecord {
                height: 3,
                hash: [1; 32],
                bytes: vec![5; 10],
            },
        );
        let mut buf = AlignedVec::<16>::new();
        buf.extend_from_slice(&[0]);
        buf.extend_from_slice(&sealed);
        let r: BlockRecord = decode(Table::Blocks, b"k", &buf[1..]).unwrap();
        assert_eq!(r.height, 3);
    }
}
