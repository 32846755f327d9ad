//! The signature scheme the engine is generic over.
//!
//! Production uses [`BlsScheme`]: BLS12-381 votes aggregated into
//! [`plume_crypto::qc::QuorumCertificate`]s. The simulator runs most seeds on
//! `TestScheme` (feature `test-utils`), a keyed-hash "signature" that is cheap and deterministic
//! but NOT secure against anyone who knows the committee (the committee holds
//! the MAC keys). Both go through the same trait, so the engine code under
//! test is the production code.

use plume_crypto::bls;
use plume_crypto::qc::{QuorumCertificate, ValidatorSet, VoteAggregator};
use std::fmt::Debug;

/// A signature scheme with aggregation into quorum certificates.
///
/// All functions are associated (no `self`): a scheme is a marker type.
pub trait Scheme: Debug + Clone + 'static {
    /// The public description of a validator set (keys and powers).
    type Committee: Debug + Clone;
    /// One validator's secret signing key.
    type Signer: Debug;
    /// One validator's signature.
    type Sig: Debug + Clone + PartialEq + Eq;
    /// An aggregate certificate: signer set plus proof that they signed.
    type Cert: Debug + Clone + PartialEq + Eq;

    /// Number of members.
    fn committee_len(c: &Self::Committee) -> usize;
    /// Do the members at `signers` (distinct, in range) hold a quorum
    /// (strictly more than two thirds of the power)?
    fn has_quorum(c: &Self::Committee, signers: &[usize]) -> bool;
    /// Sign `msg`.
    fn sign(signer: &Self::Signer, msg: &[u8]) -> Self::Sig;
    /// Check one member's signature.
    fn verify(c: &Self::Committee, index: usize, msg: &[u8], sig: &Self::Sig) -> bool;
    /// Aggregate votes on `msg` (optimistically: one check of the aggregate,
    /// per-vote checks only if that fails). `Err` lists the bad voters.
    fn aggregate(
        c: &Self::Committee,
        msg: &[u8],
        votes: &[(usize, Self::Sig)],
    ) -> Result<Self::Cert, Vec<usize>>;
    /// Check a certificate: a quorum of members signed `msg`.
    fn verify_cert(c: &Self::Committee, msg: &[u8], cert: &Self::Cert) -> bool;
    /// Indices of the signers of a certificate (ascending).
    fn cert_signers(cert: &Self::Cert) -> Vec<usize>;
}

/// Real BLS12-381 votes and quorum certificates from `plume_crypto`.
#[derive(Debug, Clone)]
pub struct BlsScheme;

impl Scheme for BlsScheme {
    type Committee = ValidatorSet;
    type Signer = bls::SecretKey;
    type Sig = bls::Signature;
    type Cert = QuorumCertificate;

    fn committee_len(c: &ValidatorSet) -> usize {
        c.len()
    }
    fn has_quorum(c: &ValidatorSet, signers: &[usize]) -> bool {
        let power: u64 = signers
            .iter()
            .filter_map(|&i| c.validators().get(i))
            .map(|v| v.power)
            .sum();
        power >= c.quorum_power()
    }
    fn sign(signer: &bls::SecretKey, msg: &[u8]) -> bls::Signature {
        signer.sign(msg)
    }
    fn verify(c: &ValidatorSet, index: usize, msg: &[u8], sig: &bls::Signature) -> bool {
        c.validators()
            .get(index)
            .is_some_and(|v| v.key.verify(msg, sig).is_ok())
    }
    fn aggregate(
        c: &ValidatorSet,
        msg: &[u8],
        votes: &[(usize, bls::Signature)],
    ) -> Result<QuorumCertificate, Vec<usize>> {
        let mut agg = VoteAggregator::new(c, msg);
        let mut bad = Vec::new();
        for (i, s) in votes {
            if agg.add(*i, *s).is_err() {
                bad.push(*i);
            }
        }
        match agg.finish() {
            Ok(qc) => Ok(qc),
            Err(plume_crypto::qc::FinishError::BadVotes(b)) => {
                bad.extend(b);
                Err(bad)
            }
            Err(plume_crypto::qc::FinishError::NoQuorum) => Err(bad),
        }
    }
    fn verify_cert(c: &ValidatorSet, msg: &[u8], cert: &QuorumCertificate) -> bool {
        cert.verify(c, msg).is_ok()
    }
    fn cert_signers(cert: &QuorumCertificate) -> Vec<usize> {
        cert.signers.iter_set().collect()
    }
}

#[cfg(any(test, feature = "test-utils"))]
pub use test_scheme::{TestCert, TestCommittee, TestScheme, TestSigner};

/// The simulator's scheme, compiled only with the `test-utils` feature.
#[cfg(any(test, feature = "test-utils"))]
mod test_scheme {
    use super::Scheme;
    use plume_crypto::{hash_parts, Digest, Domain};

    /// Cheap deterministic test scheme: a signature is
    /// `SHA-256(key || msg)` with a per-validator 32-byte key that the committee
    /// also knows. Insecure by construction; for simulation only.
    #[derive(Debug, Clone)]
    pub struct TestScheme;

    /// Committee of the [`TestScheme`]: every member's key, equal power.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TestCommittee {
        /// Member keys in index order.
        pub keys: Vec<[u8; 32]>,
    }

    /// Signing key of the [`TestScheme`].
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TestSigner {
        /// The member's key.
        pub key: [u8; 32],
    }

    /// Certificate of the [`TestScheme`]: the signers and their signatures.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TestCert {
        /// Signer indices, ascending, distinct.
        pub signers: Vec<u16>,
        /// Their signatures, same order.
        pub sigs: Vec<Digest>,
    }

    impl TestCommittee {
        /// A committee of `n` members with keys derived from `seed`; returns the
        /// committee and each member's signer.
        pub fn generate(n: usize, seed: u64) -> (TestCommittee, Vec<TestSigner>) {
            let keys: Vec<[u8; 32]> = (0..n as u64)
                .map(|i| {
                    hash_parts(
                        Domain::Handshake,
                        &[b"test-key", &seed.to_le_bytes(), &i.to_le_bytes()],
                    )
                    .0
                })
                .collect();
            let signers = keys.iter().map(|k| TestSigner { key: *k }).collect();
            (TestCommittee { keys }, signers)
        }
    }

    fn test_sig(key: &[u8; 32], msg: &[u8]) -> Digest {
        hash_parts(Domain::Vote, &[key, msg])
    }

    fn equal_power_quorum(n: usize, count: usize) -> bool {
        // Strictly more than two thirds: count > 2n/3  <=>  3*count > 2n.
        3 * count > 2 * n
    }

    impl Scheme for TestScheme {
        type Committee = TestCommittee;
        type Signer = TestSigner;
        type Sig = Digest;
        type Cert = TestCert;

        fn committee_len(c: &TestCommittee) -> usize {
            c.keys.len()
        }
        fn has_quorum(c: &TestCommittee, signers: &[usize]) -> bool {
            equal_power_quorum(
                c.keys.len(),
                signers.iter().filter(|&&i| i < c.keys.len()).count(),
            )
        }
        fn sign(signer: &TestSigner, msg: &[u8]) -> Digest {
            test_sig(&signer.key, msg)
        }
        fn verify(c: &TestCommittee, index: usize, msg: &[u8], sig: &Digest) -> bool {
            c.keys.get(index).is_some_and(|k| test_sig(k, msg) == *sig)
        }
        fn aggregate(
            c: &TestCommittee,
            msg: &[u8],
            votes: &[(usize, Digest)],
        ) -> Result<TestCert, Vec<usize>> {
            let mut good: Vec<(usize, Digest)> = Vec::new();
            let mut bad = Vec::new();
            for (i, s) in votes {
                if Self::verify(c, *i, msg, s) && !good.iter().any(|(j, _)| j == i) {
                    good.push((*i, *s));
                } else {
                    bad.push(*i);
                }
            }
            good.sort_by_key(|(i, _)| *i);
            let idx: Vec<usize> = good.iter().map(|(i, _)| *i).collect();
            if !Self::has_quorum(c, &idx) {
                return Err(bad);
            }
            Ok(TestCert {
                signers: good.iter().map(|(i, _)| *i as u16).collect(),
                sigs: good.iter().map(|(_, s)| *s).collect(),
            })
        }
        fn verify_cert(c: &TestCommittee, msg: &[u8], cert: &TestCert) -> bool {
            if cert.signers.len() != cert.sigs.len() {
                return false;
            }
            if !cert.signers.windows(2).all(|w| w[0] < w[1]) {
                return false;
            }
            let idx: Vec<usize> = cert.signers.iter().map(|&i| i as usize).collect();
            Self::has_quorum(c, &idx)
                && idx
                    .iter()
                    .zip(&cert.sigs)
                    .all(|(&i, s)| Self::verify(c, i, msg, s))
        }
        fn cert_signers(cert: &TestCert) -> Vec<usize> {
            cert.signers.iter().map(|&i| i as usize).collect()
        }
    }
}
