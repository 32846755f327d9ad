//! Secret key files: the one JSON format every Plume key is kept in
//! (`{"type": ..., "secret": hex}`), written atomically with mode 0600 and
//! never overwritten unless asked; reading warns when a key file is
//! readable by group or others.
//!
//! The node keeps its network and consensus keys in this format; clients
//! keep their account keys in it (`plume tx --key FILE`).

use crate::fsutil::write_atomic;
use plume_crypto::ed25519::SigningKey;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Type tag of an Ed25519 key (network identities and accounts).
pub const KIND_ED25519: &str = "ed25519";
/// Type tag of a BLS12-381 (min-pk) consensus key.
pub const KIND_BLS: &str = "bls12-381-min-pk";

/// Why a key file could not be read or written; names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read or written.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        err: std::io::Error,
    },
    /// The file exists and overwriting was not asked for.
    #[error("{0} already exists; pass --force to overwrite it (the old key is then lost)")]
    Exists(String),
    /// The file is not a key file of the expected type.
    #[error("{path}: {why}")]
    Bad {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// On-disk form of a secret key.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretKeyFile {
    /// [`KIND_ED25519`] or [`KIND_BLS`].
    #[serde(rename = "type")]
    kind: String,
    /// Hex of the secret.
    secret: String,
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// Write a secret of type `kind` to `path` (mode 0600, atomically).
/// Refuses to replace an existing file unless `force`.
pub fn write_secret(
    path: &Path,
    kind: &str,
    secret: &[u8; 32],
    force: bool,
) -> Result<(), KeyFileError> {
    if path.exists() && !force {
        return Err(KeyFileError::Exists(shown(path)));
    }
    let body = serde_json::to_vec_pretty(&SecretKeyFile {
        kind: kind.into(),
        secret: hex::encode(secret),
    })
    .expect("a key file serialises");
    write_atomic(path, &body, 0o600).map_err(|err| KeyFileError::Io {
        path: shown(path),
        err,
    })
}

/// Read a secret of type `kind` from `path`.
pub fn read_secret(path: &Path, kind: &str) -> Result<[u8; 32], KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |err| KeyFileError::Io {
        path: shown(path),
        err,
    };
    let bad = |why: String| KeyFileError::Bad {
        path: shown(path),
        why,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(file = %path.display(), "key file is readable by group or others; run chmod 600");
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let f: SecretKeyFile =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a Plume key file: {e}")))?;
    if f.kind != kind {
        return Err(bad(format!("key type is {:?}, expected {kind:?}", f.kind)));
    }
    plume_crypto::decode_hex_fixed::<32>(&f.secret, "secret key")
        .map_err(|e| bad(format!("field `secret`: {e}")))
}

/// Write an account key (refuses to overwrite unless `force`).
pub fn write_account_key(path: &Path, key: &SigningKey, force: bool) -> Result<(), KeyFileError> {
    write_secret(path, KIND_ED25519, &key.to_bytes(), force)
}

/// Read an account key.
pub fn read_account_key(path: &Path) -> Result<SigningKey, KeyFileError> {
    Ok(SigningKey::from_bytes(&read_secret(path, KIND_ED25519)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn account_keys_round_trip_with_mode_0600_and_refuse_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alice.key");
        let k = SigningKey::from_bytes(&[7; 32]);
        write_account_key(&p, &k, false).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_account_key(&p).unwrap().to_bytes(), k.to_bytes());
        assert!(matches!(
            write_account_key(&p, &SigningKey::from_bytes(&[8; 32]), false),
            Err(KeyFileError::Exists(_))
        ));
        write_account_key(&p, &SigningKey::from_bytes(&[8; 32]), true).unwrap();
        assert_eq!(read_account_key(&p).unwrap().to_bytes(), [8u8; 32]);
        // A BLS key file is not an account key, and garbage is refused.
        write_secret(&p, KIND_BLS, &[1; 32], true).unwrap();
        let e = read_account_key(&p).unwrap_err().to_string();
        assert!(e.contains("expected \"ed25519\""), "{e}");
        std::fs::write(&p, b"{}").unwrap();
        assert!(read_account_key(&p).is_err());
        assert!(read_account_key(&dir.path().join("missing")).is_err());
    }
}
