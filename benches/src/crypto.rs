//! `plume bench crypto`: SHA-256, Ed25519 single and batched verification,
//! BLS sign/verify/aggregate and quorum-certificate verification, on one
//! pinned core.

use crate::report::{histogram, time_each};
use crate::{Options, Report};
use plume_crypto::bls;
use plume_crypto::ed25519::{self, BatchItem};
use plume_crypto::hash::sha256_raw;
use plume_crypto::qc::{Validator, ValidatorSet, VoteAggregator};
use rand::SeedableRng;
use std::hint::black_box;
use std::time::Instant;

fn scaled(n: u64, opts: &Options) -> u64 {
    ((n as f64 * opts.scale).ceil() as u64).max(1)
}

/// Run the suite.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let mut r = Report::new("crypto");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);

    // SHA-256.
    for (name, size, iters) in [("64b", 64usize, 2_000_000u64), ("1mib", 1 << 20, 2_000)] {
        let data = vec![0xa5u8; size];
        let iters = scaled(iters, opts);
        // 64-byte hashes take ~100 ns: time them in groups of 64 so the
        // clock read does not dominate the sample.
        let group = if size < 4096 { 64 } else { 1 };
        let (h, wall) = time_each(iters / group, || {
            for _ in 0..group {
                black_box(sha256_raw(black_box(&data)));
            }
        });
        let bytes = (iters / group * group) as f64 * size as f64;
        r.figure(
            &format!("sha256_{name}_gb_per_s"),
            bytes / wall.as_secs_f64() / 1e9,
        );
        r.latency(&format!("sha256_{name}_x{group}"), &h);
    }

    // Ed25519.
    let n_keys = 1024;
    let keys: Vec<ed25519::SigningKey> = (0..n_keys)
        .map(|_| ed25519::SigningKey::generate(&mut rng))
        .collect();
    let pks: Vec<ed25519::PublicKey> = keys.iter().map(|k| k.public_key()).collect();
    let msgs: Vec<Vec<u8>> = (0..n_keys as u32)
        .map(|i| {
            let mut m = vec![0u8; 512];
            m[..4].copy_from_slice(&i.to_le_bytes());
            m
        })
        .collect();
    let sigs: Vec<ed25519::Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    {
        let iters = scaled(20_000, opts);
        let mut i = 0usize;
        let (h, wall) = time_each(iters, || {
            let j = i % n_keys;
            i += 1;
            black_box(pks[j].verify(&msgs[j], &sigs[j]).is_ok());
        });
        r.figure("ed25519_verify_per_s", iters as f64 / wall.as_secs_f64());
        r.latency("ed25519_verify", &h);
    }
    for batch in [64usize, 256, 1024] {
        let items: Vec<BatchItem<'_>> = (0..batch)
            .map(|j| BatchItem {
                msg: &msgs[j],
                sig: &sigs[j],
                key: &pks[j],
            })
            .collect();
        let rounds = scaled((40_000 / batch) as u64, opts);
        let (h, wall) = time_each(rounds, || {
            assert!(ed25519::verify_batch(black_box(&items)).is_ok());
        });
        r.figure(
            &format!("ed25519_batch{batch}_verify_per_s"),
            (rounds * batch as u64) as f64 / wall.as_secs_f64(),
        );
        r.latency(&format!("ed25519_batch{batch}"), &h);
    }

    // BLS.
    let n_val = 100;
    let sks: Vec<bls::SecretKey> = (0..n_val)
        .map(|_| bls::SecretKey::generate(&mut rng))
        .collect();
    let msg = b"plume/bench vote: view 12345 block 0xabcdef";
    {
        let iters = scaled(1_000, opts);
        let (h, _) = time_each(iters, || {
            black_box(sks[0].sign(black_box(msg)));
        });
        r.figure("bls_sign_us", h.mean() / 1e3);
        r.latency("bls_sign", &h);
        let sig = sks[0].sign(msg);
        let pk = sks[0].public_key();
        let (h, _) = time_each(scaled(500, opts), || {
            assert!(pk.verify(black_box(msg), &sig).is_ok());
        });
        r.figure("bls_verify_us", h.mean() / 1e3);
        r.latency("bls_verify", &h);
    }
    let votes: Vec<bls::Signature> = sks.iter().map(|k| k.sign(msg)).collect();
    for n in [4usize, 16, 100] {
        let set = ValidatorSet::new_with_pops(
            sks[..n]
                .iter()
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
        )?;
        // Aggregation of n votes (unchecked, as the leader does first).
        let (h, _) = time_each(scaled(1_000, opts), || {
            let refs: Vec<&bls::Signature> = votes[..n].iter().collect();
            black_box(bls::Signature::aggregate(&refs).unwrap());
        });
        r.figure(&format!("bls_aggregate_{n}_us"), h.mean() / 1e3);
        r.latency(&format!("bls_aggregate_{n}"), &h);

        // Build a certificate of all n votes, then time its verification
        // from bytes (decode + subgroup check + aggregate keys + pairing):
        // what a validator does with a certificate from the wire.
        let mut agg = VoteAggregator::new(&set, msg);
        for (i, v) in votes[..n].iter().enumerate() {
            agg.add(i, *v)?;
        }
        let qc = agg.finish().map_err(|e| anyhow::anyhow!("{e}"))?;
        let bytes = qc.to_bytes();
        let mut h = histogram();
        for _ in 0..scaled(300, opts) {
            let t = Instant::now();
            let qc = plume_crypto::qc::QuorumCertificate::from_bytes(black_box(&bytes))?;
            qc.verify(&set, msg).map_err(|e| anyhow::anyhow!("{e}"))?;
            h.record(t.elapsed().as_nanos() as u64)?;
        }
        r.figure(&format!("bls_qc_verify_{n}_us"), h.mean() / 1e3);
        r.latency(&format!("bls_qc_verify_{n}"), &h);
    }

    r.target("sha256_1mib_gb_per_s", true, 1.7);
    r.target("ed25519_batch256_verify_per_s", true, 75_000.0);
    r.target("bls_qc_verify_100_us", false, 1_200.0);
    Ok(r)
}
