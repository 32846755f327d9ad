//! Travel-rule envelopes (FATF Recommendation 16): the originator and
//! beneficiary information (a subset of IVMS101's fields), sealed to the
//! beneficiary institution's X25519 key so only it reads them, and carried
//! in the transaction's memo after the commitment the travel rule checks
//! ([`crate::travel_memo`]).
//!
//! Sealing: an ephemeral X25519 key agreement with the institution's key;
//! the key is `H(Compliance, "envelope-key/v1" ‖ shared ‖ ephemeral public
//! ‖ institution public)`, and ChaCha20-Poly1305 with a zero nonce (the key
//! is used once) encrypts the JSON of [`TravelInfo`]. Sealed bytes:
//! ephemeral public key (32) ‖ ciphertext and tag. The caller supplies the
//! ephemeral secret (32 random bytes): this crate has no randomness.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use curve25519_dalek::montgomery::MontgomeryPoint;
use plume_crypto::{hash_parts, Domain};
use serde::{Deserialize, Serialize};

/// A natural or legal person (IVMS101 subset).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Legal or full name (IVMS101 `name`).
    pub name: String,
    /// Account number at the institution (IVMS101 `accountNumber`).
    pub account_number: String,
    /// Country of residence / registration (ISO 3166-1 alpha-2).
    #[serde(default)]
    pub country: String,
    /// National identifier or LEI (IVMS101 `nationalIdentification`).
    #[serde(default)]
    pub national_id: String,
    /// Geographic address, one line.
    #[serde(default)]
    pub address: String,
}

/// What the travel rule asks the originator's institution to send.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TravelInfo {
    /// The originator.
    pub originator: Person,
    /// The beneficiary.
    pub beneficiary: Person,
    /// The originating institution (name or LEI).
    pub originating_vasp: String,
    /// The beneficiary institution (name or LEI).
    pub beneficiary_vasp: String,
}

/// The X25519 public key of a secret (clamped as X25519 does).
pub fn public_key(secret: &[u8; 32]) -> [u8; 32] {
    MontgomeryPoint::mul_base_clamped(*secret).to_bytes()
}

fn key(shared: &[u8; 32], eph: &[u8; 32], recipient: &[u8; 32]) -> [u8; 32] {
    hash_parts(
        Domain::Compliance,
        &[b"envelope-key/v1", shared, eph, recipient],
    )
    .0
}

/// Seal `info` to `recipient` (the beneficiary institution's X25519
/// public key) with a fresh `ephemeral` secret.
pub fn seal(info: &TravelInfo, recipient: &[u8; 32], ephemeral: &[u8; 32]) -> Vec<u8> {
    let eph_pub = public_key(ephemeral);
    let shared = MontgomeryPoint(*recipient)
        .mul_clamped(*ephemeral)
        .to_bytes();
    let k = key(&shared, &eph_pub, recipient);
    let plain = serde_json::to_vec(info).expect("plain data serializes");
    let ct = ChaCha20Poly1305::new(Key::from_slice(&k))
        .encrypt(Nonce::from_slice(&[0; 12]), plain.as_slice())
        .expect("in-memory encryption cannot fail");
    let mut out = eph_pub.to_vec();
    out.extend_from_slice(&ct);
    out
}

/// Why an envelope does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shorter than a key and a tag.
    #[error("envelope too short")]
    Short,
    /// Not sealed to this key, or altered.
    #[error("envelope does not open with this key (not ours, or altered)")]
    Auth,
    /// Opens, but is not a travel-rule record.
    #[error("envelope contents are not a travel-rule record: {0}")]
    Contents(String),
}

/// Open an envelope sealed to the public key of `secret`.
pub fn open(sealed: &[u8], secret: &[u8; 32]) -> Result<TravelInfo, OpenError> {
    if sealed.len() < 32 + 16 {
        return Err(OpenError::Short);
    }
    let (eph, ct) = sealed.split_at(32);
    let eph: [u8; 32] = eph.try_into().expect("32 bytes");
    let me = public_key(secret);
    let shared = MontgomeryPoint(eph).mul_clamped(*secret).to_bytes();
    let k = key(&shared, &eph, &me);
    let plain = ChaCha20Poly1305::new(Key::from_slice(&k))
        .decrypt(Nonce::from_slice(&[0; 12]), ct)
        .map_err(|_| OpenError::Auth)?;
    serde_json::from_slice(&plain).map_err(|e| OpenError::Contents(e.to_string()))
}

/// The envelope a travel-rule memo carries (after the tag and the
/// commitment), if any.
pub fn envelope_of(memo: &[u8]) -> Option<&[u8]> {
    let rest = memo.strip_prefix(crate::model::TRAVEL_TAG)?;
    let env = rest.get(32..)?;
    (!env.is_empty()).then_some(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> TravelInfo {
        let p = |n: &str| Person {
            name: n.into(),
            account_number: format!("{n}-001"),
            country: "DE".into(),
            national_id: String::new(),
            address: String::new(),
        };
        TravelInfo {
            originator: p("Alice Example"),
            beneficiary: p("Bob Example"),
            originating_vasp: "Bank A".into(),
            beneficiary_vasp: "Bank B".into(),
        }
    }

    #[test]
    fn only_the_beneficiary_institution_opens_it_and_alterations_are_caught() {
        let bank_b = [7u8; 32];
        let other = [8u8; 32];
        let sealed = seal(&info(), &public_key(&bank_b), &[9u8; 32]);
        assert_eq!(open(&sealed, &bank_b).unwrap(), info());
        assert_eq!(open(&sealed, &other), Err(OpenError::Auth));
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(open(&bad, &bank_b), Err(OpenError::Auth));
        assert_eq!(open(&sealed[..40], &bank_b), Err(OpenError::Short));
        // It fits a memo with its commitment, and the memo gives it back.
        let memo = crate::travel_memo(&sealed);
        assert!(
            memo.len() <= plume_protocol::tx::MEMO_BYTES_MAX,
            "{}",
            memo.len()
        );
        assert!(crate::travel_commitment_ok(&memo));
        assert_eq!(envelope_of(&memo), Some(sealed.as_slice()));
        // The plaintext is not in the memo.
        assert!(!memo.windows(5).any(|w| w == b"Alice"));
    }
}
