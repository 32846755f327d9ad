//! Where an account lives in the authenticated state and how its value is
//! laid out, so a client can check an account against a certified state
//! root (`plume_crypto::state_proof`) without the execution crate, which
//! uses these same definitions.

/// Key of an account record: the address with the top bit of its first
/// byte cleared (derived records have it set).
pub fn account_key(address: &[u8; 32]) -> [u8; 32] {
    let mut k = *address;
    k[0] &= 0x7f;
    k
}

/// Bytes of an account record: sequence u64 LE || PLUME balance u128 LE.
pub const ACCOUNT_VALUE_LEN: usize = 24;

/// (sequence, PLUME balance) of an account record's bytes.
pub fn decode_account_value(b: &[u8]) -> Option<(u64, u128)> {
    if b.len() != ACCOUNT_VALUE_LEN {
        return None;
    }
    Some((
        u64::from_le_bytes(b[..8].try_into().ok()?),
        u128::from_le_bytes(b[8..].try_into().ok()?),
    ))
}

/// The bytes of (sequence, balance) (`None`: both zero, the record is
/// absent from the state).
pub fn encode_account_value(sequence: u64, balance: u128) -> Option<Vec<u8>> {
    if sequence == 0 && balance == 0 {
        return None;
    }
    let mut v = Vec::with_capacity(ACCOUNT_VALUE_LEN);
    v.extend_from_slice(&sequence.to_le_bytes());
    v.extend_from_slice(&balance.to_le_bytes());
    Some(v)
}
