//! Ed25519 signatures for transactions and peer identities.
//!
//! Single verification is strict (`verify_strict`: non-canonical `S`,
//! non-canonical or small-order `R` and small-order keys are rejected).
//! Batch verification runs the random-linear-combination check of
//! `ed25519-dalek` (SIMD backend) after cheap prechecks that reject what the
//! strict rule rejects; if the batch fails, every signature is checked alone
//! so the caller learns exactly which ones are bad.

use crate::hash::{hash_parts, Digest, Domain};
use crate::{decode_hex_fixed, CryptoError};
use curve25519_dalek::constants::EIGHT_TORSION;
use ed25519_dalek::Signer as _;
use rand_core::{CryptoRng, RngCore};
use std::fmt;
use std::sync::OnceLock;
use zeroize::Zeroize;

/// Public key length.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Secret seed length.
pub const SECRET_KEY_LEN: usize = 32;
/// Signature length.
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 signing key (32-byte seed). Zeroized on drop.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A fresh key from a cryptographic RNG.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut seed = [0u8; SECRET_KEY_LEN];
        rng.fill_bytes(&mut seed);
        let k = SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed));
        seed.zeroize();
        k
    }

    /// From the 32-byte seed.
    pub fn from_bytes(seed: &[u8; SECRET_KEY_LEN]) -> Self {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed. Handle with care.
    pub fn to_bytes(&self) -> [u8; SECRET_KEY_LEN] {
        self.0.to_bytes()
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Sign `msg`.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(pub={})", self.public_key())
    }
}

/// An Ed25519 public key, decompressed and checked at parse time.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    /// Parse 32 bytes. Rejects encodings that are not points and
    /// small-order (weak) keys.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, CryptoError> {
        let vk = ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map_err(|_| CryptoError::InvalidKey("ed25519 public key is not a curve point"))?;
        if vk.is_weak() {
            return Err(CryptoError::InvalidKey(
                "ed25519 public key has small order",
            ));
        }
        Ok(PublicKey(vk))
    }

    /// Parse a slice that must be exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: &[u8; PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::Length {
            what: "ed25519 public key",
            expected: PUBLIC_KEY_LEN,
            got: bytes.len(),
        })?;
        Self::from_bytes(arr)
    }

    /// Parse hex (64 characters, optional `0x`).
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        Self::from_bytes(&decode_hex_fixed::<PUBLIC_KEY_LEN>(
            s,
            "ed25519 public key",
        )?)
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.to_bytes()
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// Strict verification (see module docs).
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), CryptoError> {
        self.0
            .verify_strict(msg, &sig.0)
            .map_err(|_| CryptoError::BadSignature)
    }

    /// The account address owned by this key.
    pub fn address(&self) -> Address {
        Address::from_ed25519(self)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519PublicKey({})", self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An Ed25519 signature (64 bytes, `R || S`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(ed25519_dalek::Signature);

impl Signature {
    /// From 64 bytes. Range checks on `S` happen at verification.
    pub fn from_bytes(bytes: &[u8; SIGNATURE_LEN]) -> Self {
        Signature(ed25519_dalek::Signature::from_bytes(bytes))
    }

    /// From a slice that must be exactly 64 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: &[u8; SIGNATURE_LEN] = bytes.try_into().map_err(|_| CryptoError::Length {
            what: "ed25519 signature",
            expected: SIGNATURE_LEN,
            got: bytes.len(),
        })?;
        Ok(Self::from_bytes(arr))
    }

    /// The 64-byte encoding.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0.to_bytes()
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Ed25519Signature({}..)",
            &hex::encode(self.to_bytes())[..16]
        )
    }
}

/// A 32-byte account address: the domain-separated hash of a scheme tag and
/// the public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 32]);

/// Scheme tag of Ed25519 keys inside address derivation.
const ADDRESS_SCHEME_ED25519: u8 = 0;

impl Address {
    /// The address of an Ed25519 key.
    pub fn from_ed25519(pk: &PublicKey) -> Self {
        let Digest(d) = hash_parts(
            Domain::Address,
            &[&[ADDRESS_SCHEME_ED25519], &pk.to_bytes()],
        );
        Address(d)
    }

    /// Parse 64 hex characters (optional `0x`).
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        Ok(Address(decode_hex_fixed::<32>(s, "address")?))
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// One item of a batch: a message, its signature and the signer's key.
#[derive(Clone, Copy, Debug)]
pub struct BatchItem<'a> {
    /// The signed message.
    pub msg: &'a [u8],
    /// The signature.
    pub sig: &'a Signature,
    /// The signer.
    pub key: &'a PublicKey,
}

/// Largest batch handed to one multiscalar multiplication. Larger inputs are
/// split; the bound keeps scratch memory per call fixed.
pub const BATCH_MAX: usize = 1024;

/// Verify many signatures at once.
///
/// Returns `Ok(())` if all are valid, otherwise `Err(bad)` with the sorted
/// indices of exactly the signatures that fail strict verification.
pub fn verify_batch(items: &[BatchItem<'_>]) -> Result<(), Vec<usize>> {
    let mut bad = Vec::new();
    for (chunk_index, chunk) in items.chunks(BATCH_MAX).enumerate() {
        let base = chunk_index * BATCH_MAX;
        if !chunk_prechecks_pass(chunk) || !dalek_batch(chunk) {
            // Slow path: find exactly which ones fail.
            for (i, it) in chunk.iter().enumerate() {
                if it.key.verify(it.msg, it.sig).is_err() {
                    bad.push(base + i);
                }
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad)
    }
}

fn dalek_batch(chunk: &[BatchItem<'_>]) -> bool {
    let msgs: Vec<&[u8]> = chunk.iter().map(|i| i.msg).collect();
    let sigs: Vec<ed25519_dalek::Signature> = chunk.iter().map(|i| i.sig.0).collect();
    let keys: Vec<ed25519_dalek::VerifyingKey> = chunk.iter().map(|i| i.key.0).collect();
    ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok()
}

/// The cheap parts of `verify_strict` that the batch equation does not
/// enforce: `R` must be a canonical encoding and not a small-order point.
/// (Small-order keys are refused when a `PublicKey` is parsed.)
fn chunk_prechecks_pass(chunk: &[BatchItem<'_>]) -> bool {
    chunk.iter().all(|it| r_is_acceptable(&it.sig.to_bytes()))
}

/// The y coordinates (sign bit cleared) of the eight small-order points.
fn small_order_ys() -> &'static [[u8; 32]] {
    static YS: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    YS.get_or_init(|| {
        let mut ys: Vec<[u8; 32]> = EIGHT_TORSION
            .iter()
            .map(|p| {
                let mut b = p.compress().to_bytes();
                b[31] &= 0x7f;
                b
            })
            .collect();
        ys.sort();
        ys.dedup();
        ys
    })
}

fn r_is_acceptable(sig: &[u8; SIGNATURE_LEN]) -> bool {
    let mut y = [0u8; 32];
    y.copy_from_slice(&sig[..32]);
    y[31] &= 0x7f;
    // Canonical: y < p = 2^255 - 19, i.e. not in [p, 2^255).
    let non_canonical = y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed;
    !non_canonical && !small_order_ys().contains(&y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn keys(n: usize) -> Vec<SigningKey> {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        (0..n).map(|_| SigningKey::generate(&mut rng)).collect()
    }

    #[test]
    fn sign_verify_and_reject_other_message() {
        let k = &keys(1)[0];
        let sig = k.sign(b"pay 10");
        assert!(k.public_key().verify(b"pay 10", &sig).is_ok());
        assert_eq!(
            k.public_key().verify(b"pay 11", &sig),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn batch_finds_exactly_the_bad_signatures() {
        let ks = keys(300);
        let msgs: Vec<Vec<u8>> = (0..300u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let mut sigs: Vec<Signature> = ks.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
        let pks: Vec<PublicKey> = ks.iter().map(|k| k.public_key()).collect();
        let items = |sigs: &Vec<Signature>| -> Vec<(usize, Signature)> {
            sigs.iter().copied().enumerate().collect()
        };
        {
            let v = items(&sigs);
            let batch: Vec<BatchItem<'_>> = v
                .iter()
                .map(|(i, s)| BatchItem {
                    msg: &msgs[*i],
                    sig: s,
                    key: &pks[*i],
                })
                .collect();
            assert_eq!(verify_batch(&batch), Ok(()));
        }
        // Corrupt two: one with a wrong message signature, one swapped.
        sigs[17] = ks[17].sign(b"other");
        sigs[250] = sigs[249];
        let v = items(&sigs);
        let batch: Vec<BatchItem<'_>> = v
            .iter()
            .map(|(i, s)| BatchItem {
                msg: &msgs[*i],
                sig: s,
                key: &pks[*i],
            })
            .collect();
        assert_eq!(verify_batch(&batch), Err(vec![17, 250]));
    }

    #[test]
    fn batch_larger_than_one_chunk_reports_global_indices() {
        let ks = keys(4);
        let pk: Vec<PublicKey> = ks.iter().map(|k| k.public_key()).collect();
        let good = ks[0].sign(b"m");
        let badsig = ks[1].sign(b"m");
        let n = BATCH_MAX + 5;
        let mut sigs = vec![good; n];
        sigs[BATCH_MAX + 2] = badsig;
        let batch: Vec<BatchItem<'_>> = sigs
            .iter()
            .map(|s| BatchItem {
                msg: b"m",
                sig: s,
                key: &pk[0],
            })
            .collect();
        assert_eq!(verify_batch(&batch), Err(vec![BATCH_MAX + 2]));
    }

    #[test]
    fn small_order_key_is_refused_at_parse() {
        // The identity point (y = 1) has order 1.
        let mut id = [0u8; 32];
        id[0] = 1;
        assert!(PublicKey::from_bytes(&id).is_err());
    }

    #[test]
    fn small_order_r_is_caught_by_precheck() {
        let mut sig = [0u8; 64];
        sig[0] = 1; // R = identity
        assert!(!r_is_acceptable(&sig));
        let mut ok = [0u8; 64];
        ok[0] = 9;
        assert!(r_is_acceptable(&ok));
        let mut noncanon = [0xffu8; 64];
        noncanon[31] = 0x7f;
        assert!(!r_is_acceptable(&noncanon));
    }

    #[test]
    fn address_is_stable() {
        let k = &keys(1)[0];
        let a = k.public_key().address();
        assert_eq!(Address::from_hex(&a.to_hex()).unwrap(), a);
        assert_ne!(a.0, k.public_key().to_bytes());
    }
}
