//! BLS12-381 signatures (min_pk: 48-byte public keys in G1, 96-byte
//! signatures in G2) through `blst`, with the proof-of-possession scheme of
//! draft-irtf-cfrg-bls-signature (the Ethereum consensus ciphersuite):
//! aggregating votes on one message is safe only between keys whose PoP was
//! checked, which is what `ValidatorSet` requires.
//!
//! Parsing validates: a public key must be a G1 point of the prime-order
//! subgroup and not the identity; a signature must be a G2 point of the
//! subgroup (the identity is allowed at parse time, as the standard allows it
//! in aggregation; it never verifies under a valid key).

use crate::{decode_hex_fixed, CryptoError};
use blst::min_pk as b;
use blst::BLST_ERROR;
use rand_core::{CryptoRng, RngCore};
use std::fmt;
use zeroize::Zeroize;

/// Ciphersuite for signatures (hash-to-G2, proof-of-possession scheme).
pub const DST_SIG: &[u8] = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
/// Ciphersuite for proofs of possession.
pub const DST_POP: &[u8] = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";

/// Compressed public key length.
pub const PUBLIC_KEY_LEN: usize = 48;
/// Compressed signature length.
pub const SIGNATURE_LEN: usize = 96;
/// Secret key length.
pub const SECRET_KEY_LEN: usize = 32;

/// A BLS secret key. Zeroized on drop by blst.
pub struct SecretKey(b::SecretKey);

impl SecretKey {
    /// A fresh key (IETF KeyGen over 32 random bytes).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut ikm = [0u8; 32];
        rng.fill_bytes(&mut ikm);
        let sk = b::SecretKey::key_gen(&ikm, &[]).expect("32-byte ikm is always accepted");
        ikm.zeroize();
        SecretKey(sk)
    }

    /// From 32 big-endian bytes; rejects zero and values >= the group order.
    pub fn from_bytes(bytes: &[u8; SECRET_KEY_LEN]) -> Result<Self, CryptoError> {
        b::SecretKey::from_bytes(bytes)
            .map(SecretKey)
            .map_err(|_| CryptoError::InvalidKey("bls secret key out of range"))
    }

    /// 32 big-endian bytes. Handle with care.
    pub fn to_bytes(&self) -> [u8; SECRET_KEY_LEN] {
        self.0.to_bytes()
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.sk_to_pk())
    }

    /// Sign `msg` under [`DST_SIG`].
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg, DST_SIG, &[]))
    }

    /// The proof of possession: a signature over the compressed public key
    /// under [`DST_POP`].
    pub fn prove_possession(&self) -> Signature {
        let pk = self.public_key().to_bytes();
        Signature(self.0.sign(&pk, DST_POP, &[]))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsSecretKey(pub={})", self.public_key())
    }
}

/// A validated BLS public key (subgroup-checked, not the identity).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(b::PublicKey);

impl PublicKey {
    /// Parse a 48-byte compressed key, with full validation.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != PUBLIC_KEY_LEN {
            return Err(CryptoError::Length {
                what: "bls public key",
                expected: PUBLIC_KEY_LEN,
                got: bytes.len(),
            });
        }
        b::PublicKey::key_validate(bytes)
            .map(PublicKey)
            .map_err(|e| CryptoError::InvalidKey(blst_error_str(e)))
    }

    /// Parse hex (96 characters, optional `0x`).
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        Self::from_bytes(&decode_hex_fixed::<PUBLIC_KEY_LEN>(s, "bls public key")?)
    }

    /// The compressed 48-byte encoding.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0.compress()
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// Verify a signature on `msg`.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), CryptoError> {
        // Both points were validated when parsed.
        match sig.0.verify(false, msg, DST_SIG, &[], &self.0, false) {
            BLST_ERROR::BLST_SUCCESS => Ok(()),
            _ => Err(CryptoError::BadSignature),
        }
    }

    /// Check a proof of possession of this key.
    pub fn verify_possession(&self, pop: &Signature) -> Result<(), CryptoError> {
        let msg = self.to_bytes();
        match pop.0.verify(false, &msg, DST_POP, &[], &self.0, false) {
            BLST_ERROR::BLST_SUCCESS => Ok(()),
            _ => Err(CryptoError::BadProofOfPossession),
        }
    }

    /// Sum of public keys (for a fast aggregate verification). Empty input is
    /// an error.
    pub fn aggregate(keys: &[&PublicKey]) -> Result<PublicKey, CryptoError> {
        if keys.is_empty() {
            return Err(CryptoError::EmptyAggregate);
        }
        let raw: Vec<&b::PublicKey> = keys.iter().map(|k| &k.0).collect();
        let agg = b::AggregatePublicKey::aggregate(&raw, false)
            .map_err(|e| CryptoError::InvalidKey(blst_error_str(e)))?;
        Ok(PublicKey(agg.to_public_key()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsPublicKey({}..)", &self.to_hex()[..16])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A BLS signature (subgroup-checked when parsed).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(b::Signature);

impl Signature {
    /// Parse a 96-byte compressed signature: on the curve and in the G2
    /// subgroup. The identity (infinity) parses; it never verifies.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != SIGNATURE_LEN {
            return Err(CryptoError::Length {
                what: "bls signature",
                expected: SIGNATURE_LEN,
                got: bytes.len(),
            });
        }
        b::Signature::sig_validate(bytes, false)
            .map(Signature)
            .map_err(|e| CryptoError::InvalidSignature(blst_error_str(e)))
    }

    /// Parse hex (192 characters, optional `0x`).
    pub fn from_hex(s: &str) -> Result<Self, CryptoError> {
        Self::from_bytes(&decode_hex_fixed::<SIGNATURE_LEN>(s, "bls signature")?)
    }

    /// The compressed 96-byte encoding.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0.compress()
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    /// Sum of signatures. Empty input is an error.
    pub fn aggregate(sigs: &[&Signature]) -> Result<Signature, CryptoError> {
        if sigs.is_empty() {
            return Err(CryptoError::EmptyAggregate);
        }
        let raw: Vec<&b::Signature> = sigs.iter().map(|s| &s.0).collect();
        let agg = b::AggregateSignature::aggregate(&raw, false)
            .map_err(|e| CryptoError::InvalidSignature(blst_error_str(e)))?;
        Ok(Signature(agg.to_signature()))
    }

    /// Verify an aggregate of signatures by `keys` on one message. The keys
    /// must have proven possession. Empty `keys` never verifies.
    pub fn fast_aggregate_verify(
        &self,
        msg: &[u8],
        keys: &[&PublicKey],
    ) -> Result<(), CryptoError> {
        if keys.is_empty() {
            return Err(CryptoError::EmptyAggregate);
        }
        let raw: Vec<&b::PublicKey> = keys.iter().map(|k| &k.0).collect();
        match self.0.fast_aggregate_verify(false, msg, DST_SIG, &raw) {
            BLST_ERROR::BLST_SUCCESS => Ok(()),
            _ => Err(CryptoError::BadSignature),
        }
    }

    /// Verify an aggregate of signatures by `keys[i]` on `msgs[i]`. Messages
    /// must be distinct (as the basic scheme requires); empty input never
    /// verifies.
    pub fn aggregate_verify(&self, msgs: &[&[u8]], keys: &[&PublicKey]) -> Result<(), CryptoError> {
        if keys.is_empty() || msgs.len() != keys.len() {
            return Err(CryptoError::EmptyAggregate);
        }
        let raw: Vec<&b::PublicKey> = keys.iter().map(|k| &k.0).collect();
        match self.0.aggregate_verify(false, msgs, DST_SIG, &raw, false) {
            BLST_ERROR::BLST_SUCCESS => Ok(()),
            _ => Err(CryptoError::BadSignature),
        }
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlsSignature({}..)", &self.to_hex()[..16])
    }
}

fn blst_error_str(e: BLST_ERROR) -> &'static str {
    match e {
        BLST_ERROR::BLST_SUCCESS => "success",
        BLST_ERROR::BLST_BAD_ENCODING => "bad point encoding",
        BLST_ERROR::BLST_POINT_NOT_ON_CURVE => "point not on the curve",
        BLST_ERROR::BLST_POINT_NOT_IN_GROUP => "point not in the prime-order subgroup",
        BLST_ERROR::BLST_AGGR_TYPE_MISMATCH => "aggregate type mismatch",
        BLST_ERROR::BLST_VERIFY_FAIL => "verification failed",
        BLST_ERROR::BLST_PK_IS_INFINITY => "public key is the identity point",
        BLST_ERROR::BLST_BAD_SCALAR => "bad scalar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn keys(n: usize) -> Vec<SecretKey> {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        (0..n).map(|_| SecretKey::generate(&mut rng)).collect()
    }

    #[test]
    fn sign_verify_round_trip_through_bytes() {
        let sk = &keys(1)[0];
        let pk = PublicKey::from_bytes(&sk.public_key().to_bytes()).unwrap();
        let sig = Signature::from_bytes(&sk.sign(b"block 7").to_bytes()).unwrap();
        assert!(pk.verify(b"block 7", &sig).is_ok());
        assert!(pk.verify(b"block 8", &sig).is_err());
        let sk2 = SecretKey::from_bytes(&sk.to_bytes()).unwrap();
        assert_eq!(sk2.public_key(), pk);
    }

    #[test]
    fn pop_binds_the_key() {
        let ks = keys(2);
        let pk0 = ks[0].public_key();
        assert!(pk0.verify_possession(&ks[0].prove_possession()).is_ok());
        assert_eq!(
            pk0.verify_possession(&ks[1].prove_possession()),
            Err(CryptoError::BadProofOfPossession)
        );
        // A signature over the key bytes under the signing DST is no PoP.
        let wrong_dst = ks[0].sign(&pk0.to_bytes());
        assert!(pk0.verify_possession(&wrong_dst).is_err());
    }

    #[test]
    fn aggregate_and_fast_verify() {
        let ks = keys(5);
        let sigs: Vec<Signature> = ks.iter().map(|k| k.sign(b"m")).collect();
        let pks: Vec<PublicKey> = ks.iter().map(|k| k.public_key()).collect();
        let agg = Signature::aggregate(&sigs.iter().collect::<Vec<_>>()).unwrap();
        let pk_refs: Vec<&PublicKey> = pks.iter().collect();
        assert!(agg.fast_aggregate_verify(b"m", &pk_refs).is_ok());
        assert!(agg.fast_aggregate_verify(b"m", &pk_refs[..4]).is_err());
        let apk = PublicKey::aggregate(&pk_refs).unwrap();
        assert!(apk.verify(b"m", &agg).is_ok());
        assert_eq!(Signature::aggregate(&[]), Err(CryptoError::EmptyAggregate));
    }

    #[test]
    fn identity_key_and_garbage_are_rejected() {
        let mut inf = [0u8; 48];
        inf[0] = 0xc0;
        assert!(PublicKey::from_bytes(&inf).is_err());
        assert!(PublicKey::from_bytes(&[0x11; 48]).is_err());
        assert!(PublicKey::from_bytes(&[0x11; 47]).is_err());
        assert!(Signature::from_bytes(&[0x11; 96]).is_err());
    }
}
