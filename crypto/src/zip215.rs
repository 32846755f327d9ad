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

/// Most keys whose decoding one thread remembers ([`verify`]); the memo is
/// emptied when full (about 200 bytes per key, so at most ~1 MiB).
pub const KEY_MEMO_MAX: usize = 4096;

std::thread_local! {
    /// Key bytes to the decoded key, or `None` when the key fails the rule
    /// (does not decompress, or has small order).
    static KEY_MEMO: std::cell::RefCell<std::collections::HashMap<[u8; 32], Option<VerificationKey>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The key decoded for verification, if it passes the key precheck. Both
/// are functions of the key bytes alone, so they are memoized per thread:
/// a validator checks the same few keys again and again (the committee's,
/// on every batch vote and certificate; busy senders'), and decoding one
/// costs two point decompressions, each a field square root (measured: a
/// third of a single verification).
fn decoded_key(key: &[u8; 32]) -> Option<VerificationKey> {
    if let Some(hit) = KEY_MEMO.with(|m| m.borrow().get(key).copied()) {
        return hit;
    }
    let vk = if key_acceptable(key) {
        VerificationKey::try_from(*key).ok()
    } else {
        None
    };
    KEY_MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= KEY_MEMO_MAX {
            m.clear();
        }
        m.insert(*key, vk);
    });
    vk
}

/// Verify one signature under the rule.
pub fn verify(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    match decoded_key(key) {
        Some(vk) => vk.verify(&Signature::from_bytes(sig), msg).is_ok(),
        None => false,
    }
}

/// Verify many signatures; `Err(bad)` lists (sorted) exactly the indices
/// that [`verify`] rejects.
pub fn verify_batch(items: &[Item<'_>]) -> Result<(), Vec<usize>> {
    let mut bad = Vec::new();
    for (c, chunk) in items.chunks(BATCH_MAX).enumerate() {
        find_bad(chunk, c * BATCH_MAX, &mut bad);
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad)
    }
}

/// Below this many items a failing batch is checked one by one.
const BISECT_MIN: usize = 8;

/// Push the indices (offset by `base`) of the items of `chunk` that fail.
/// A failing batch is split in halves, each checked as a batch again, so
/// one bad signature among 1,024 costs about 2 log2(1,024) batch checks of
/// shrinking size (about two passes over the batch) rather than 1,024
/// single verifications ([`bisect`] stops at dense failures). The verdict
/// is the same as checking each alone.
fn find_bad(chunk: &[Item<'_>], base: usize, bad: &mut Vec<usize>) {
    if chunk.is_empty() {
        return;
    }
    if chunk.len() <= BISECT_MIN {
        for (i, it) in chunk.iter().enumerate() {
            if !verify(it.key, it.msg, it.sig) {
                bad.push(base + i);
            }
        }
        return;
    }
    if batch_ok_checked(chunk) {
        return;
    }
    bisect(chunk, base, bad);
}

fn batch_ok_checked(chunk: &[Item<'_>]) -> bool {
    chunk.iter().all(|it| decoded_key(it.key).is_some()) && batch_ok(chunk)
}

/// `chunk` failed as a batch: check its halves; when both fail the bad
/// ones are dense and each is checked alone (so a crafted pattern costs
/// at most about twice one-by-one, never a whole bisection tree).
fn bisect(chunk: &[Item<'_>], base: usize, bad: &mut Vec<usize>) {
    let singles = |c: &[Item<'_>], base: usize, bad: &mut Vec<usize>| {
        for (i, it) in c.iter().enumerate() {
            if !verify(it.key, it.msg, it.sig) {
                bad.push(base + i);
            }
        }
    };
    if chunk.len() <= BISECT_MIN {
        return singles(chunk, base, bad);
    }
    let mid = chunk.len() / 2;
    let (l, r) = chunk.split_at(mid);
    match (batch_ok_checked(l), batch_ok_checked(r)) {
        (true, true) => {}
        (false, true) => bisect(l, base, bad),
        (true, false) => bisect(r, base + mid, bad),
        (false, false) => {
            singles(l, base, bad);
            singles(r, base + mid, bad);
        }
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
    fn bisection_finds_exactly_the_bad_signatures_of_a_large_batch() {
        let n = 600;
        let keys: Vec<SigningKey> = (0..n)
            .map(|i: usize| {
                let mut b = [3u8; 32];
                b[..8].copy_from_slice(&(i as u64).to_le_bytes());
                SigningKey::from_bytes(&b)
            })
            .collect();
        let msgs: Vec<Vec<u8>> = (0..n).map(|i: usize| i.to_le_bytes().to_vec()).collect();
        let pks: Vec<[u8; 32]> = keys.iter().map(|k| k.public_key().to_bytes()).collect();
        let mut sigs: Vec<[u8; 64]> = keys
            .iter()
            .zip(&msgs)
            .map(|(k, m)| k.sign(m).to_bytes())
            .collect();
        // Bad ones at the edges, adjacent, and inside a small-order key.
        let bad = [0usize, 1, 299, 300, 511, 512, 599];
        for &i in &bad {
            sigs[i][5] ^= 0x40;
        }
        let mut small = [0u8; 32];
        small[0] = 1;
        let mut keys_of = pks.clone();
        keys_of[17] = small;
        let items: Vec<Item<'_>> = (0..n)
            .map(|i| Item {
                key: &keys_of[i],
                msg: &msgs[i],
                sig: &sigs[i],
            })
            .collect();
        let mut want: Vec<usize> = (0..n)
            .filter(|&i| !verify(items[i].key, items[i].msg, items[i].sig))
            .collect();
        want.sort_unstable();
        assert_eq!(want.len(), bad.len() + 1);
        assert_eq!(verify_batch(&items), Err(want));
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

    #[test]
    fn memoized_keys_give_the_same_verdicts_and_the_memo_stays_bounded() {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let pk = sk.public_key().to_bytes();
        let sig = sk.sign(b"m").to_bytes();
        let mut small = [0u8; 32];
        small[0] = 1;
        let mut bad_sig = sig;
        bad_sig[3] ^= 1;
        for _ in 0..3 {
            assert!(verify(&pk, b"m", &sig));
            assert!(!verify(&pk, b"m", &bad_sig));
            assert!(!verify(&pk, b"other", &sig));
            assert!(!verify(&small, b"any", &{
                let mut s = [0u8; 64];
                s[0] = 1;
                s
            }));
        }
        // Fill well past the bound with distinct keys (most do not even
        // decompress); the memo never holds more than its bound, and a
        // remembered key still verifies afterwards.
        for i in 0..(KEY_MEMO_MAX as u32 + 1000) {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_le_bytes());
            k[31] = 0x55;
            let _ = verify(&k, b"m", &sig);
            assert!(KEY_MEMO.with(|m| m.borrow().len()) <= KEY_MEMO_MAX);
        }
        assert!(verify(&pk, b"m", &sig));
    }
}
