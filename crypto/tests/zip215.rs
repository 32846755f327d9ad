//! The transaction signature rule (`plume_crypto::zip215`): batch and
//! single verification accept exactly the same set, on the ZIP-215 edge
//! cases (every small-order encoding as key and as `R`), on mixed-order
//! keys and `R` values, on the Wycheproof Ed25519 set, and on random
//! mixtures of all of them with good and bad signatures.

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use plume_crypto::zip215::{self, Item};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest as _, Sha512};

/// Every 32-byte string that decodes to a point of small order: the
/// canonical encodings of the eight torsion points, with the sign bit
/// flipped, and with `y + p` where that still fits (non-canonical).
fn small_order_encodings() -> Vec<[u8; 32]> {
    // p = 2^255 - 19, little endian.
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    let mut cands = Vec::new();
    for t in EIGHT_TORSION.iter() {
        let c = t.compress().to_bytes();
        for sign in [false, true] {
            let mut e = c;
            if sign {
                e[31] ^= 0x80;
            }
            cands.push(e);
            // y + p (the sign bit kept apart), when y + p < 2^255.
            let mut y = c;
            y[31] &= 0x7f;
            let mut sum = [0u8; 32];
            let mut carry = 0u16;
            for i in 0..32 {
                let v = y[i] as u16 + p[i] as u16 + carry;
                sum[i] = v as u8;
                carry = v >> 8;
            }
            if carry == 0 && sum[31] & 0x80 == 0 {
                if sign || c[31] & 0x80 != 0 {
                    sum[31] |= 0x80;
                }
                cands.push(sum);
            }
        }
    }
    cands.sort();
    cands.dedup();
    cands
        .into_iter()
        .filter(|e| {
            CompressedEdwardsY(*e)
                .decompress()
                .is_some_and(|q| q.is_small_order())
        })
        .collect()
}

#[test]
fn zip215_small_order_vectors_are_one_verdict_alone_and_batched() {
    let encs = small_order_encodings();
    // ZIP-215 counts 14 such encodings (8 canonical, 6 non-canonical).
    assert_eq!(encs.len(), 14, "{encs:?}");
    let mut cases = Vec::new();
    for a in &encs {
        for r in &encs {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(r);
            cases.push((*a, sig));
        }
    }
    assert_eq!(cases.len(), 196);
    let msg = b"Zcash";
    for (a, sig) in &cases {
        // Plain ZIP-215 (the crate) accepts every one...
        let vk = ed25519_zebra::VerificationKey::try_from(*a).unwrap();
        assert!(vk
            .verify(&ed25519_zebra::Signature::from_bytes(sig), msg)
            .is_ok());
        // ...our rule refuses each (small-order key), alone and batched.
        assert!(!zip215::verify(a, msg, sig));
    }
    let items: Vec<Item<'_>> = cases
        .iter()
        .map(|(a, s)| Item {
            key: a,
            msg,
            sig: s,
        })
        .collect();
    assert_eq!(
        zip215::verify_batch(&items),
        Err((0..196).collect::<Vec<_>>())
    );
}

/// A signature under key `a·B + T` (a mixed-order key when `T` is a
/// torsion point) with nonce point `r·B + Tr`, made by hand.
fn mixed_sig(
    a: Scalar,
    t: EdwardsPoint,
    r: Scalar,
    tr: EdwardsPoint,
    msg: &[u8],
) -> ([u8; 32], [u8; 64]) {
    let key = (a * B + t).compress().to_bytes();
    let big_r = (r * B + tr).compress().to_bytes();
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(big_r)
            .chain_update(key)
            .chain_update(msg),
    );
    let s = r + k * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&big_r);
    sig[32..].copy_from_slice(s.as_bytes());
    (key, sig)
}

struct Case {
    key: [u8; 32],
    msg: Vec<u8>,
    sig: [u8; 64],
    /// What the rule must say.
    valid: bool,
}

fn mixed_cases(rng: &mut ChaCha20Rng) -> Vec<Case> {
    let mut out = Vec::new();
    for i in 0..64u32 {
        let a = Scalar::from(rng.gen::<u64>() + 1);
        let r = Scalar::from(rng.gen::<u64>() + 1);
        // Torsion components for the key and for R (index 0 is the
        // identity: an ordinary prime-order key or R).
        let t = EIGHT_TORSION[(i % 8) as usize];
        let tr = EIGHT_TORSION[((i / 8) % 8) as usize];
        let msg = format!("mixed {i}").into_bytes();
        let (key, mut sig) = mixed_sig(a, t, r, tr, &msg);
        // Cofactored: valid whatever the torsion parts.
        out.push(Case {
            key,
            msg: msg.clone(),
            sig,
            valid: true,
        });
        // The same with s off by one: invalid.
        let s = Scalar::from_canonical_bytes(sig[32..].try_into().unwrap()).unwrap() + Scalar::ONE;
        sig[32..].copy_from_slice(s.as_bytes());
        out.push(Case {
            key,
            msg,
            sig,
            valid: false,
        });
    }
    // A non-canonical s (s + l) is refused.
    let (key, mut sig) = mixed_sig(
        Scalar::from(7u64),
        EIGHT_TORSION[0],
        Scalar::from(9u64),
        EIGHT_TORSION[0],
        b"x",
    );
    let l: [u8; 32] = {
        let mut l = [0u8; 32];
        l.copy_from_slice(&hex_decode(
            "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010",
        ));
        l
    };
    let mut carry = 0u16;
    for i in 0..32 {
        let v = sig[32 + i] as u16 + l[i] as u16 + carry;
        sig[32 + i] = v as u8;
        carry = v >> 8;
    }
    out.push(Case {
        key,
        msg: b"x".to_vec(),
        sig,
        valid: false,
    });
    out
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn wycheproof_cases() -> Vec<Case> {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).expect("wycheproof ed25519 set");
    let mut out = Vec::new();
    for g in &set.test_groups {
        let Ok(key) = <[u8; 32]>::try_from(&g.key.pk[..]) else {
            continue;
        };
        for t in &g.tests {
            let Ok(sig) = <[u8; 64]>::try_from(&t.sig[..]) else {
                continue; // wrong length: refused before any verification
            };
            let valid = zip215::verify(&key, &t.msg, &sig);
            out.push(Case {
                key,
                msg: t.msg.to_vec(),
                sig,
                valid,
            });
        }
    }
    out
}

#[test]
fn mixed_order_keys_and_r_verify_under_the_cofactored_rule() {
    let mut rng = ChaCha20Rng::seed_from_u64(215);
    for c in mixed_cases(&mut rng) {
        assert_eq!(zip215::verify(&c.key, &c.msg, &c.sig), c.valid);
    }
}

#[test]
fn wycheproof_valid_vectors_stay_valid() {
    use wycheproof::eddsa::{TestName, TestSet};
    use wycheproof::TestResult;
    let set = TestSet::load(TestName::Ed25519).expect("wycheproof ed25519 set");
    let mut valid = 0;
    for g in &set.test_groups {
        for t in &g.tests {
            if t.result == TestResult::Valid {
                let key: [u8; 32] = g.key.pk[..].try_into().unwrap();
                let sig: [u8; 64] = t.sig[..].try_into().unwrap();
                assert!(zip215::verify(&key, &t.msg, &sig), "tc {}", t.tc_id);
                valid += 1;
            }
        }
    }
    assert!(valid >= 50, "only {valid} valid cases");
}

/// The property: for random subsets of every case above, shuffled, the
/// batch verdict lists exactly the items single verification refuses.
#[test]
fn batch_equals_single_on_random_mixtures() {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let mut cases = mixed_cases(&mut rng);
    cases.extend(wycheproof_cases());
    for a in small_order_encodings().iter().take(4) {
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(a);
        cases.push(Case {
            key: *a,
            msg: b"Zcash".to_vec(),
            sig,
            valid: false,
        });
    }
    for round in 0..1000 {
        let n = rng.gen_range(1..48);
        let picked: Vec<&Case> = (0..n)
            .map(|_| &cases[rng.gen_range(0..cases.len())])
            .collect();
        let items: Vec<Item<'_>> = picked
            .iter()
            .map(|c| Item {
                key: &c.key,
                msg: &c.msg,
                sig: &c.sig,
            })
            .collect();
        let want: Vec<usize> = picked
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.valid)
            .map(|(i, _)| i)
            .collect();
        let got = zip215::verify_batch(&items).err().unwrap_or_default();
        assert_eq!(got, want, "round {round}");
    }
}
