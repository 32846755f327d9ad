//! The chain's transaction signature rule: Ed25519 under ZIP-215
//! (<https://zips.z.cash/zip-0215>), through `ed25519-zebra`, so that batch
//! and single verification accept exactly the same set.
//!
//! Why: with RFC 8032's strict single check and a randomised batch check,
//! keys or `R` values with a small-order component can pass one and fail
//! the other, so validators that verify the same transaction differently
//! (alone, or in a batch with others) could disagree (REVIEW H2). ZIP-215
//! fixes one rule for both:
//! - `A` and `R` are any encodings that decompress to curve points
//!   (non-canonical encodings accepted), `s` must be canonical (`< l`);
//! - the equation is the cofactored one, `[8][s]B = [8]R + [8][k]A`, for a
//!   single signature and for a batch alike (a batch is a random linear
//!   combination of single equations, then multiplied by the cofactor).
//!
//! On top, one deterministic precheck of ours: a key of small order is
//! refused (any signature "verifies" for it; an account under such a key
//! could be spent by anyone). The precheck is a function of the key bytes,
//! applied identically in batches and alone, so verdicts stay a function
//! of the bytes.

use curve25519_dalek::edwards::CompressedEdwardsY;
use ed25519_zebra::{batch, Signature, VerificationKey, VerificationKeyBytes};

/// Largest batch handed to one multiscalar multiplication; larger inputs
/// are split (fixed scratch memory per call).
pub const BATCH_MAX: usize = 1024;

/// One signature to check: raw key, message, raw signature.
#[derive(Clone, Copy, Debug)]
pub struct Item<'a> {
    /// The signer's 32-byte public key, as the transaction carries it.
    pub key: &'a [u8; 32],
    /// The signed message.
    pub msg: &'a [u8],
    /// The 64-byte signature.
    pub sig: &'a [u8; 64],
}

/// Whether `key` decodes to a point that is not of small order (the key
/// precheck of this rule).
pub fn key_acceptable(key: &[u8; 32]) -> bool {
    CompressedEdwardsY(*key)
        .decompress()
        .is_some_and(|p| !p.is_small_order())
}

/// Verify one signature under the rule.
pub fn verify(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    if !key_acceptable(key) {
        return false;
    }
    match VerificationKey::try_from(*key) {
        Ok(vk) => vk.verify(&Signature::from_bytes(sig), msg).is_ok(),
        Err(_) => false,
    }
}

/// Verify many signatures; `Err(bad)` lists (sorted) exactly the indices
/// that [`verify`] rejects.
pub fn verify_batch(items: &[Item<'_>]) -> Result<(), Vec<usize>> {
    let mut bad = Vec::new();
    for (c, chunk) in items.chunks(BATCH_MAX).enumerate() {
        let base = c * BATCH_MAX;
        let keys_ok = chunk.iter().all(|it| key_acceptable(it.key));
        if !keys_ok || !batch_ok(chunk) {
            // Slow path: exactly which ones fail.
            for (i, it) in chunk.iter().enumerate() {
                if !verify(it.key, it.msg, it.sig) {
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

fn batch_ok(chunk: &[Item<'_>]) -> bool {
    let mut v = batch::Verifier::new();
    for it in chunk {
        v.queue((
            VerificationKeyBytes::from(*it.key),
            Signature::from_bytes(it.sig),
            it.msg,
        ));
    }
    v.verify(rand_core::OsRng).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ed25519::SigningKey;

    #[test]
    fn good_and_bad_signatures_alone_and_batched() {
        let keys: Vec<SigningKey> = (1..=5u8)
            .map(|i| SigningKey::from_bytes(&[i; 32]))
            .collect();
        let msgs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10]).collect();
        let pks: Vec<[u8; 32]> = keys.iter().map(|k| k.public_key().to_bytes()).collect();
        let mut sigs: Vec<[u8; 64]> = keys
            .iter()
            .zip(&msgs)
            .map(|(k, m)| k.sign(m).to_bytes())
            .collect();
        sigs[3][0] ^= 1;
        for i in 0..5 {
            assert_eq!(verify(&pks[i], &msgs[i], &sigs[i]), i != 3);
        }
        let items: Vec<Item<'_>> = (0..5)
            .map(|i| Item {
                key: &pks[i],
                msg: &msgs[i],
                sig: &sigs[i],
            })
            .collect();
        assert_eq!(verify_batch(&items), Err(vec![3]));
        assert_eq!(verify_batch(&items[..3]), Ok(()));
    }

    #[test]
    fn a_small_order_key_is_refused() {
        // The identity (y = 1) is of small order.
        let mut id = [0u8; 32];
        id[0] = 1;
        assert!(!key_acceptable(&id));
        // s = 0 and R = identity "verify" for it under plain ZIP-215.
        let mut sig = [0u8; 64];
        sig[0] = 1;
        let vk = VerificationKey::try_from(id).unwrap();
        assert!(vk.verify(&Signature::from_bytes(&sig), b"any").is_ok());
        assert!(!verify(&id, b"any", &sig));
    }
}
