//! SHA-256 with domain separation.
//!
//! Every hash Plume computes names what it is for: a block hash can never
//! collide with a transaction hash or a vote message even when the bytes
//! hashed are equal, because each use prefixes its own tag. `sha2` 0.10 picks
//! the SHA-NI instructions at run time on CPUs that have them.

use sha2::{Digest as _, Sha256};
use std::fmt;

/// Length of a SHA-256 digest in bytes.
pub const DIGEST_LEN: usize = 32;

/// What a hash is for. The tag of each domain is hashed before the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    /// Block headers.
    Block,
    /// Transactions (the signed hash and the transaction id).
    Tx,
    /// Consensus votes (the message a BLS vote signs).
    Vote,
    /// Consensus timeouts.
    Timeout,
    /// Account state keys and values in the authenticated state tree.
    State,
    /// Leaves of a Merkle tree over a list (transactions, receipts).
    MerkleLeaf,
    /// Inner nodes of a Merkle tree over a list.
    MerkleNode,
    /// Account addresses derived from public keys.
    Address,
    /// Transaction batches disseminated between validators.
    Batch,
    /// Peer handshakes.
    Handshake,
    /// One item of a batch: its full encoding (signatures included).
    BatchItem,
    /// What a batch vote (availability or validity) signs.
    BatchVote,
    /// Compliance claims (what a KYC provider signs) and the input hashes
    /// of compliance verdicts.
    Compliance,
}

impl Domain {
    /// The tag hashed before the data. Fixed forever: changing one changes
    /// every hash of that domain (golden tests pin them).
    pub const fn tag(self) -> &'static [u8] {
        match self {
            Domain::Block => b"plume/v1/block\0",
            Domain::Tx => b"plume/v1/tx\0",
            Domain::Vote => b"plume/v1/vote\0",
            Domain::Timeout => b"plume/v1/timeout\0",
            Domain::State => b"plume/v1/state\0",
            Domain::MerkleLeaf => b"plume/v1/merkle-leaf\0",
            Domain::MerkleNode => b"plume/v1/merkle-node\0",
            Domain::Address => b"plume/v1/address\0",
            Domain::Batch => b"plume/v1/batch\0",
            Domain::Compliance => b"plume/v1/compliance\0",
            Domain::Handshake => b"plume/v1/handshake\0",
            Domain::BatchItem => b"plume/v1/batch-item\0",
            Domain::BatchVote => b"plume/v1/batch-vote\0",
        }
    }
}

/// A 32-byte SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; DIGEST_LEN]);

impl Digest {
    /// The all-zero digest, used as "no parent" for the genesis block.
    pub const ZERO: Digest = Digest([0; DIGEST_LEN]);

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; DIGEST_LEN] {
        &self.0
    }

    /// Lower-case hex of the 32 bytes.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse 64 hex characters (an optional `0x` prefix is accepted).
    pub fn from_hex(s: &str) -> Result<Self, crate::CryptoError> {
        let bytes = crate::decode_hex_fixed::<DIGEST_LEN>(s, "digest")?;
        Ok(Digest(bytes))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Hash `data` in `domain`.
pub fn hash(domain: Domain, data: &[u8]) -> Digest {
    let mut h = Hasher::new(domain);
    h.update(data);
    h.finalize()
}

/// Hash several parts in `domain`, as if concatenated.
pub fn hash_parts(domain: Domain, parts: &[&[u8]]) -> Digest {
    let mut h = Hasher::new(domain);
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// Plain SHA-256 with no domain tag, for interoperability and benchmarks.
pub fn sha256_raw(data: &[u8]) -> [u8; DIGEST_LEN] {
    Sha256::digest(data).into()
}

/// Incremental domain-separated hasher.
#[derive(Clone)]
pub struct Hasher(Sha256);

impl Hasher {
    /// Start a hash in `domain`.
    pub fn new(domain: Domain) -> Self {
        let mut h = Sha256::new();
        h.update(domain.tag());
        Hasher(h)
    }

    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        self.0.update(data);
        self
    }

    /// Feed a little-endian u64 (fixed width, so encodings are unambiguous).
    pub fn update_u64(&mut self, v: u64) -> &mut Self {
        self.0.update(v.to_le_bytes());
        self
    }

    /// Finish.
    pub fn finalize(self) -> Digest {
        Digest(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_sha256_matches_fips_180_vector() {
        // FIPS 180-2 appendix B.1: SHA-256("abc").
        assert_eq!(
            hex::encode(sha256_raw(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn domains_separate_equal_inputs() {
        let all = [
            Domain::Block,
            Domain::Tx,
            Domain::Vote,
            Domain::Timeout,
            Domain::State,
            Domain::MerkleLeaf,
            Domain::MerkleNode,
            Domain::Address,
            Domain::Batch,
            Domain::Handshake,
        ];
        let mut seen = std::collections::HashSet::new();
        for d in all {
            assert!(seen.insert(hash(d, b"same bytes")), "{d:?} collides");
        }
    }

    #[test]
    fn parts_equal_concatenation() {
        assert_eq!(
            hash_parts(Domain::Tx, &[b"ab", b"cd"]),
            hash(Domain::Tx, b"abcd")
        );
    }

    #[test]
    fn golden_block_domain_hash() {
        // Pins the tag: if it changes, every stored block hash changes.
        assert_eq!(hash(Domain::Block, b"").0, sha256_raw(b"plume/v1/block\0"),);
    }

    #[test]
    fn hex_round_trip_and_errors() {
        let d = hash(Domain::State, b"x");
        assert_eq!(Digest::from_hex(&d.to_hex()).unwrap(), d);
        assert_eq!(Digest::from_hex(&format!("0x{}", d.to_hex())).unwrap(), d);
        assert!(Digest::from_hex("abcd").is_err());
        assert!(Digest::from_hex(&"zz".repeat(32)).is_err());
    }
}
