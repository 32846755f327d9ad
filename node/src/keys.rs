//! A node's key files and its public validator description.
//!
//! `HOME/keys/network.key` holds the Ed25519 identity used for peer links,
//! `HOME/keys/consensus.key` the BLS key that signs votes; both mode 0600.
//! `HOME/validator.json` is the public part an operator sends to whoever
//! assembles genesis.

use anyhow::{Context, Result};
use plume_client::keyfile::{read_secret, write_secret, KIND_BLS, KIND_ED25519};
use plume_crypto::{bls, ed25519};
use std::path::{Path, PathBuf};

/// Network key file, relative to the home.
pub const NETWORK_KEY_FILE: &str = "keys/network.key";
/// Consensus key file, relative to the home.
pub const CONSENSUS_KEY_FILE: &str = "keys/consensus.key";
/// Public validator description, relative to the home.
pub const VALIDATOR_FILE: &str = "validator.json";
/// Public observer description, relative to an observer's home.
pub const OBSERVER_FILE: &str = "observer.json";

pub use plume_protocol::genesis::{ObserverInfo, ValidatorInfo};

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
            (NETWORK_KEY_FILE, KIND_ED25519, self.network.to_bytes()),
            (CONSENSUS_KEY_FILE, KIND_BLS, self.consensus.to_bytes()),
        ] {
            write_secret(&home.join(file), kind, &secret, force)?;
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

/// An observer's only secret: its network identity (it holds no voting
/// key). Written mode 0600; refuses to overwrite unless `force`.
pub fn save_network_key(home: &Path, key: &ed25519::SigningKey, force: bool) -> Result<()> {
    let dir = home.join("keys");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    set_mode(&dir, 0o700)?;
    write_secret(
        &home.join(NETWORK_KEY_FILE),
        KIND_ED25519,
        &key.to_bytes(),
        force,
    )?;
    Ok(())
}

/// Load the network key alone (what an observer holds).
pub fn load_network_key(home: &Path) -> Result<ed25519::SigningKey> {
    let net = read_secret(&home.join(NETWORK_KEY_FILE), KIND_ED25519)?;
    Ok(ed25519::SigningKey::from_bytes(&net))
}

/// Read an `observer.json`, with errors naming the file.
pub fn read_observer_info(path: &Path) -> Result<ObserverInfo> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not an observer description", path.display()))
}
