//! A node's key files and its public validator description.
//!
//! `HOME/keys/network.key` holds the Ed25519 identity used for peer links,
//! `HOME/keys/consensus.key` the BLS key that signs votes; both mode 0600.
//! `HOME/validator.json` is the public part an operator sends to whoever
//! assembles genesis.

use crate::fsutil::write_atomic;
use anyhow::{bail, Context, Result};
use plume_crypto::{bls, ed25519};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Network key file, relative to the home.
pub const NETWORK_KEY_FILE: &str = "keys/network.key";
/// Consensus key file, relative to the home.
pub const CONSENSUS_KEY_FILE: &str = "keys/consensus.key";
/// Public validator description, relative to the home.
pub const VALIDATOR_FILE: &str = "validator.json";

/// On-disk form of a secret key.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretKeyFile {
    /// `ed25519` or `bls12-381-min-pk`.
    #[serde(rename = "type")]
    kind: String,
    /// Hex of the secret.
    secret: String,
}

const KIND_ED25519: &str = "ed25519";
const KIND_BLS: &str = "bls12-381-min-pk";

/// The public description of a validator, as `validator.json` and as an
/// entry of genesis.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ValidatorInfo {
    /// Human name.
    pub moniker: String,
    /// BLS public key (hex, 48 bytes).
    pub consensus_key: String,
    /// BLS proof of possession of `consensus_key` (hex, 96 bytes).
    pub proof_of_possession: String,
    /// Ed25519 network identity (hex, 32 bytes).
    pub network_key: String,
    /// Where peers reach this validator (`host:port`).
    pub address: String,
    /// Voting power.
    #[serde(default = "default_power")]
    pub power: u64,
}

fn default_power() -> u64 {
    1
}

/// A node's secret keys.
pub struct NodeKeys {
    /// Peer identity.
    pub network: ed25519::SigningKey,
    /// Consensus vote key.
    pub consensus: bls::SecretKey,
}

impl std::fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKeys")
            .field("network", &self.network.public_key())
            .field("consensus", &self.consensus.public_key())
            .finish()
    }
}

impl NodeKeys {
    /// Fresh keys from the OS RNG.
    pub fn generate() -> Self {
        let mut rng = rand::rngs::OsRng;
        NodeKeys {
            network: ed25519::SigningKey::generate(&mut rng),
            consensus: bls::SecretKey::generate(&mut rng),
        }
    }

    /// Write both key files (mode 0600). Refuses to overwrite an existing key
    /// unless `force`.
    pub fn save(&self, home: &Path, force: bool) -> Result<()> {
        let dir = home.join("keys");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        set_mode(&dir, 0o700)?;
        for (file, kind, secret) in [
            (
                NETWORK_KEY_FILE,
                KIND_ED25519,
                hex::encode(self.network.to_bytes()),
            ),
            (
                CONSENSUS_KEY_FILE,
                KIND_BLS,
                hex::encode(self.consensus.to_bytes()),
            ),
        ] {
            let path = home.join(file);
            if path.exists() && !force {
                bail!(
                    "{} already exists; pass --force to overwrite it (the old key is then lost)",
                    path.display()
                );
            }
            let body = serde_json::to_vec_pretty(&SecretKeyFile {
                kind: kind.into(),
                secret,
            })?;
            write_atomic(&path, &body, 0o600)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// Load both key files from a home, with errors naming the file.
    pub fn load(home: &Path) -> Result<Self> {
        let net = read_secret(&home.join(NETWORK_KEY_FILE), KIND_ED25519)?;
        let cons = read_secret(&home.join(CONSENSUS_KEY_FILE), KIND_BLS)?;
        let cons_path = home.join(CONSENSUS_KEY_FILE);
        Ok(NodeKeys {
            network: ed25519::SigningKey::from_bytes(&net),
            consensus: bls::SecretKey::from_bytes(&cons)
                .with_context(|| format!("{}: invalid BLS secret key", cons_path.display()))?,
        })
    }

    /// The public description with the given moniker, address and power.
    pub fn validator_info(&self, moniker: &str, address: &str, power: u64) -> ValidatorInfo {
        ValidatorInfo {
            moniker: moniker.to_string(),
            consensus_key: self.consensus.public_key().to_hex(),
            proof_of_possession: self.consensus.prove_possession().to_hex(),
            network_key: self.network.public_key().to_hex(),
            address: address.to_string(),
            power,
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting permissions of {}", path.display()))
}

fn read_secret(path: &Path, kind: &str) -> Result<[u8; 32]> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .with_context(|| format!("{}: cannot read key file", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(file = %path.display(), "key file is readable by group or others; run chmod 600");
    }
    let bytes =
        std::fs::read(path).with_context(|| format!("{}: cannot read key file", path.display()))?;
    let f: SecretKeyFile = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a Plume key file", path.display()))?;
    if f.kind != kind {
        bail!(
            "{}: key type is {:?}, expected {:?}",
            path.display(),
            f.kind,
            kind
        );
    }
    plume_crypto::decode_hex_fixed::<32>(&f.secret, "secret key")
        .with_context(|| format!("{}: field `secret`", path.display()))
}

/// Read a `validator.json`, with errors naming the file.
pub fn read_validator_info(path: &Path) -> Result<ValidatorInfo> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a validator description", path.display()))
}

/// `HOME/validator.json`.
pub fn validator_file(home: &Path) -> PathBuf {
    home.join(VALIDATOR_FILE)
}
