//! Property tests: signatures bind message and key; certificates need a
//! quorum of members.

use plume_crypto::bls;
use plume_crypto::ed25519;
use plume_crypto::qc::{
    QcError, QuorumCertificate, SignerBitmap, Validator, ValidatorSet, VoteAggregator,
};
use proptest::prelude::*;
use rand::SeedableRng;

fn ed_key(seed: u64) -> ed25519::SigningKey {
    ed25519::SigningKey::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}

fn bls_key(seed: u64) -> bls::SecretKey {
    bls::SecretKey::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ed25519_signature_never_verifies_under_other_message_or_key(
        k1 in any::<u64>(), k2 in any::<u64>(),
        m1 in proptest::collection::vec(any::<u8>(), 0..200),
        m2 in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let a = ed_key(k1);
        let sig = a.sign(&m1);
        prop_assert!(a.public_key().verify(&m1, &sig).is_ok());
        if m1 != m2 {
            prop_assert!(a.public_key().verify(&m2, &sig).is_err());
        }
        if k1 != k2 {
            prop_assert!(ed_key(k2).public_key().verify(&m1, &sig).is_err());
        }
    }

    #[test]
    fn bls_signature_never_verifies_under_other_message_or_key(
        k1 in any::<u64>(), k2 in any::<u64>(),
        m1 in proptest::collection::vec(any::<u8>(), 0..100),
        m2 in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let a = bls_key(k1);
        let sig = a.sign(&m1);
        prop_assert!(a.public_key().verify(&m1, &sig).is_ok());
        if m1 != m2 {
            prop_assert!(a.public_key().verify(&m2, &sig).is_err());
        }
        if k1 != k2 {
            prop_assert!(bls_key(k2).public_key().verify(&m1, &sig).is_err());
        }
    }
}

struct Committee {
    keys: Vec<bls::SecretKey>,
    set: ValidatorSet,
}

fn committee(n: usize, seed: u64) -> Committee {
    let keys: Vec<bls::SecretKey> = (0..n as u64)
        .map(|i| bls_key(seed.wrapping_mul(1000) + i))
        .collect();
    let set = ValidatorSet::new_with_pops(
        keys.iter()
            .map(|k| {
                (
                    Validator {
                        key: k.public_key(),
                        power: 1,
                    },
                    k.prove_possession(),
                )
            })
            .collect(),
    )
    .unwrap();
    Committee { keys, set }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn qc_fails_below_quorum_or_with_non_member(n in 4usize..14, seed in any::<u64>()) {
        let c = committee(n, seed);
        let msg = b"block at view 9";
        let q = c.set.quorum_power() as usize;
        // Exactly a quorum: valid.
        let mut agg = VoteAggregator::new(&c.set, msg);
        for i in 0..q {
            agg.add(i, c.keys[i].sign(msg)).unwrap();
        }
        let qc = agg.finish().unwrap();
        prop_assert!(qc.verify(&c.set, msg).is_ok());

        // Remove one signer's share (bit and signature): below quorum.
        let sigs: Vec<bls::Signature> = (1..q).map(|i| c.keys[i].sign(msg)).collect();
        let mut bm = SignerBitmap::new(n);
        for i in 1..q { bm.set(i); }
        let short = QuorumCertificate {
            signers: bm.clone(),
            signature: bls::Signature::aggregate(&sigs.iter().collect::<Vec<_>>()).unwrap(),
        };
        let is_no_quorum = matches!(short.verify(&c.set, msg), Err(QcError::NoQuorum { .. }));
        prop_assert!(is_no_quorum);

        // Keep the bit but drop the share: signature check fails.
        let mut missing_share = qc.clone();
        missing_share.signature = short.signature;
        prop_assert_eq!(missing_share.verify(&c.set, msg), Err(QcError::BadSignature));

        // A non-member's signature in place of a member's.
        let outsider = bls_key(seed ^ 0xdead_beef);
        let mut sigs: Vec<bls::Signature> = (1..q).map(|i| c.keys[i].sign(msg)).collect();
        sigs.push(outsider.sign(msg));
        let mut bm = SignerBitmap::new(n);
        for i in 0..q { bm.set(i); }
        let forged = QuorumCertificate {
            signers: bm,
            signature: bls::Signature::aggregate(&sigs.iter().collect::<Vec<_>>()).unwrap(),
        };
        prop_assert_eq!(forged.verify(&c.set, msg), Err(QcError::BadSignature));

        // A bitmap with a bit beyond the set (a non-member index) is refused.
        let mut wide = qc.clone();
        wide.signers = SignerBitmap::new(n + 1);
        for i in 0..q { wide.signers.set(i); }
        wide.signers.set(n);
        let is_len_err = matches!(wide.verify(&c.set, msg), Err(QcError::BitmapLength { .. }));
        prop_assert!(is_len_err);
    }
}
