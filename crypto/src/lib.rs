//! Plume's cryptography: domain-separated SHA-256, Ed25519 (strict single
//! and SIMD batch verification), BLS12-381 through `blst` with proofs of
//! possession, quorum certificates, and Merkle trees over lists.
//!
//! Start reading at [`qc`] (what consensus needs) and [`ed25519`] (what
//! transactions need). No I/O, no async, no global state beyond lazily built
//! constant tables.
#![forbid(unsafe_code)]

pub mod bls;
pub mod ed25519;
pub mod hash;
pub mod merkle;
pub mod qc;
pub mod state_proof;
pub mod zip215;

pub use hash::{hash, hash_parts, Digest, Domain, Hasher};

/// Errors from parsing or checking cryptographic values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Wrong byte length.
    #[error("{what}: expected {expected} bytes, got {got}")]
    Length {
        /// What was parsed.
        what: &'static str,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// Not hex.
    #[error("{0}: not valid hex")]
    Hex(&'static str),
    /// A key that does not decode or is weak.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A signature that does not decode.
    #[error("invalid signature encoding: {0}")]
    InvalidSignature(&'static str),
    /// A signature that decodes but does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A proof of possession that does not verify.
    #[error("proof of possession does not verify")]
    BadProofOfPossession,
    /// Aggregation over nothing.
    #[error("cannot aggregate an empty list")]
    EmptyAggregate,
    /// A malformed encoding.
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// A Merkle proof that does not check out.
    #[error("bad proof: {0}")]
    BadProof(&'static str),
    /// A validator set that breaks a rule.
    #[error("validator set: {0}")]
    ValidatorSet(String),
}

/// Decode exactly `N` bytes of hex, with an optional `0x` prefix.
pub fn decode_hex_fixed<const N: usize>(
    s: &str,
    what: &'static str,
) -> Result<[u8; N], CryptoError> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.len() != 2 * N {
        return Err(CryptoError::Length {
            what,
            expected: N,
            got: s.len() / 2,
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| CryptoError::Hex(what))?;
    Ok(out)
}
