//! Key material for simulated committees, per signature scheme.

use plume_consensus::{BlsScheme, Scheme, TestCert, TestCommittee, TestScheme};
use plume_crypto::bls::SecretKey;
use plume_crypto::qc::{QuorumCertificate, SignerBitmap, Validator, ValidatorSet};
use plume_crypto::{hash_parts, Domain};

/// A scheme the simulator can generate keys for.
pub trait SimScheme: Scheme {
    /// Short name for reports.
    const NAME: &'static str;
    /// A committee of `n` equal-power members and their signers, from `seed`.
    fn generate(n: usize, seed: u64) -> (Self::Committee, Vec<Self::Signer>);
    /// A copy of a signer (twins, restarts).
    fn clone_signer(s: &Self::Signer) -> Self::Signer;
    /// `cert` claiming the signer set `signers` (its signatures unchanged):
    /// a forged certificate.
    fn forge_signers(cert: &Self::Cert, signers: &[usize]) -> Self::Cert;
}

impl SimScheme for TestScheme {
    const NAME: &'static str = "test";
    fn generate(n: usize, seed: u64) -> (TestCommittee, Vec<plume_consensus::TestSigner>) {
        TestCommittee::generate(n, seed)
    }
    fn clone_signer(s: &plume_consensus::TestSigner) -> plume_consensus::TestSigner {
        s.clone()
    }
    fn forge_signers(cert: &TestCert, signers: &[usize]) -> TestCert {
        let sigs = signers
            .iter()
            .enumerate()
            .map(|(k, _)| {
                cert.sigs
                    .get(k % cert.sigs.len().max(1))
                    .copied()
                    .unwrap_or_default()
            })
            .collect();
        TestCert {
            signers: signers.iter().map(|&s| s as u16).collect(),
            sigs,
        }
    }
}

impl SimScheme for BlsScheme {
    const NAME: &'static str = "bls";
    fn generate(n: usize, seed: u64) -> (ValidatorSet, Vec<SecretKey>) {
        let mut keys = Vec::with_capacity(n);
        for i in 0..n as u64 {
            let mut ctr = 0u64;
            let sk = loop {
                let mut b = hash_parts(
                    Domain::Handshake,
                    &[
                        b"sim-bls",
                        &seed.to_le_bytes(),
                        &i.to_le_bytes(),
                        &ctr.to_le_bytes(),
                    ],
                )
                .0;
                b[0] &= 0x3f; // below the group order
                if let Ok(sk) = SecretKey::from_bytes(&b) {
                    break sk;
                }
                ctr += 1;
            };
            keys.push(sk);
        }
        let set = ValidatorSet::new_pop_checked(
            keys.iter()
                .map(|k| Validator {
                    key: k.public_key(),
                    power: 1,
                })
                .collect(),
        )
        .expect("distinct generated keys form a valid set");
        (set, keys)
    }
    fn clone_signer(s: &SecretKey) -> SecretKey {
        SecretKey::from_bytes(&s.to_bytes()).expect("a valid key round-trips")
    }
    fn forge_signers(cert: &QuorumCertificate, signers: &[usize]) -> QuorumCertificate {
        let mut bits = SignerBitmap::new(cert.signers.len());
        for &s in signers {
            bits.set(s);
        }
        QuorumCertificate {
            signers: bits,
            signature: cert.signature,
        }
    }
}
