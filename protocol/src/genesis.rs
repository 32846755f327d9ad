//! `genesis.json`: the chain's first state and its rules — chain id,
//! validators (consensus key, proof of possession, network key, address,
//! power), initial PLUME balances and protocol parameters.
//!
//! Parsing is strict (unknown fields are errors) and validation names the
//! field at fault, e.g. `validators[2].proof_of_possession`.

use plume_crypto::ed25519::Address;
use plume_crypto::qc::{Validator, ValidatorSet, VALIDATORS_MAX};
use plume_crypto::{bls, ed25519};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A genesis document (or one of its parts) that breaks a rule; the
/// message names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GenesisError(pub String);

type Result<T, E = GenesisError> = std::result::Result<T, E>;

macro_rules! bail {
    ($($t:tt)*) => {
        return Err(GenesisError(format!($($t)*)))
    };
}

/// Context for errors of other types (the message, then the cause).
trait Ctx<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::fmt::Display> Ctx<T> for std::result::Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| GenesisError(format!("{}: {e}", what())))
    }
}

impl<T> Ctx<T> for Option<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.ok_or_else(|| GenesisError(what()))
    }
}

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

/// Most initial allocations accepted.
pub const ALLOCS_MAX: usize = 100_000;

/// The genesis document.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Network name; part of every signed transaction and handshake.
    pub chain_id: String,
    /// Genesis time, milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// The first validator set, in index order.
    pub validators: Vec<ValidatorInfo>,
    /// Initial PLUME balances.
    pub alloc: Vec<Alloc>,
    /// Protocol parameters.
    pub params: Params,
    /// The compliance engine's genesis registry and rules (the
    /// `plume_compliance::GenesisCompliance` form; the node parses and
    /// validates it: this crate does not depend on the engine). Absent: no
    /// rules, nobody governs compliance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<serde_json::Value>,
    /// Non-voting followers allowed to hold a read-only link to the
    /// validators (regulator nodes, API full nodes): they fetch certified
    /// blocks and never vote, propose or submit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observers: Vec<ObserverInfo>,
}

/// A non-voting follower's public description (`observer.json` of its
/// home, one entry of genesis `observers`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ObserverInfo {
    /// Human name.
    pub moniker: String,
    /// Ed25519 network identity (hex, 32 bytes): the only key it holds.
    pub network_key: String,
}

/// Most observers a genesis may list.
pub const OBSERVERS_MAX: usize = 64;

/// One initial balance.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Alloc {
    /// Account address (hex, 32 bytes).
    pub address: String,
    /// Amount in the smallest PLUME unit, as a decimal string (u128).
    pub amount: String,
}

/// Protocol parameters fixed at genesis (changed later only by governance).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Most transactions in one block.
    pub block_txs_max: u32,
    /// Gas limit of one block.
    pub block_gas_limit: u64,
    /// Gas the base fee steers toward (EIP-1559 target).
    pub block_gas_target: u64,
    /// Base fee per gas of the first block.
    pub base_fee_initial: u64,
    /// Lowest base fee per gas.
    pub base_fee_min: u64,
    /// The base fee moves by at most 1/denominator per block (8: 12.5%).
    pub base_fee_change_denominator: u64,
    /// Percent of the base fee burned.
    pub fee_burn_percent: u8,
    /// Percent of the unburned base fee that goes to the treasury; the rest
    /// goes to the validators' fee pool.
    pub fee_treasury_percent: u8,
    /// Treasury account (hex address).
    pub treasury: String,
    /// Blocks per epoch (validator-set changes take effect at boundaries).
    pub epoch_blocks: u64,
    /// Base view timeout in milliseconds before a view change.
    pub view_timeout_ms: u64,
    /// With nothing to propose or finalize, a leader proposes an empty
    /// block only after this many milliseconds (0: at once). Bounds an idle
    /// chain to about one block per interval.
    #[serde(default = "default_idle_block_interval_ms")]
    pub idle_block_interval_ms: u64,
    /// Governance and stake parameters (governable themselves).
    #[serde(default)]
    pub governance: crate::governance::GovParams,
}

fn default_idle_block_interval_ms() -> u64 {
    1_000
}

impl Default for Params {
    fn default() -> Self {
        Params {
            block_txs_max: 10_000,
            block_gas_limit: 300_000_000,
            block_gas_target: 150_000_000,
            base_fee_initial: 10,
            base_fee_min: 1,
            base_fee_change_denominator: 8,
            fee_burn_percent: 50,
            fee_treasury_percent: 20,
            treasury: hex::encode(
                plume_crypto::hash(plume_crypto::Domain::Address, b"plume treasury").0,
            ),
            epoch_blocks: 10_000,
            view_timeout_ms: 1_000,
            idle_block_interval_ms: default_idle_block_interval_ms(),
            governance: crate::governance::GovParams::default(),
        }
    }
}

impl Genesis {
    /// Parse and validate JSON, with errors naming `origin` (the file).
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Self> {
        let g: Genesis =
            serde_json::from_slice(bytes).ctx(|| format!("{origin}: invalid genesis"))?;
        g.validate().ctx(|| format!("{origin}: invalid genesis"))?;
        Ok(g)
    }

    // Long by design: every rule of the document in field order, each with
    // the error naming its field.
    /// Check every rule; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let id = &self.chain_id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            bail!("chain_id {id:?}: must be 1 to 64 characters of a-z, 0-9, '-' or '.'");
        }
        if self.validators.is_empty() {
            bail!("validators: at least one validator is required");
        }
        if self.validators.len() > VALIDATORS_MAX {
            bail!(
                "validators: {} listed, at most {VALIDATORS_MAX}",
                self.validators.len()
            );
        }
        let mut consensus_keys = BTreeSet::new();
        let mut network_keys = BTreeSet::new();
        let mut monikers = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        for (i, v) in self.validators.iter().enumerate() {
            let f = |name: &str| format!("validators[{i}].{name}");
            let key = bls::PublicKey::from_hex(&v.consensus_key).ctx(|| f("consensus_key"))?;
            let pop = bls::Signature::from_hex(&v.proof_of_possession)
                .ctx(|| f("proof_of_possession"))?;
            key.verify_possession(&pop).ctx(|| {
                format!(
                    "{}: does not prove possession of consensus_key",
                    f("proof_of_possession")
                )
            })?;
            let nk = ed25519::PublicKey::from_hex(&v.network_key).ctx(|| f("network_key"))?;
            if !plume_crypto::zip215::key_acceptable(&nk.to_bytes()) {
                bail!(
                    "{}: a small-order point cannot sign batch votes",
                    f("network_key")
                );
            }
            v.address
                .parse::<std::net::SocketAddr>()
                .ctx(|| format!("{}: {:?} is not host:port", f("address"), v.address))?;
            if v.power == 0 {
                bail!("{}: must be at least 1", f("power"));
            }
            if v.moniker.is_empty() || v.moniker.len() > 64 {
                bail!("{}: must be 1 to 64 characters", f("moniker"));
            }
            if !consensus_keys.insert(key.to_bytes()) {
                bail!(
                    "{}: duplicate validator (same consensus key as an earlier entry)",
                    f("consensus_key")
                );
            }
            if !network_keys.insert(nk.to_bytes()) {
                bail!(
                    "{}: duplicate validator (same network key as an earlier entry)",
                    f("network_key")
                );
            }
            if !monikers.insert(v.moniker.clone()) {
                bail!("{}: duplicate moniker {:?}", f("moniker"), v.moniker);
            }
            if !addresses.insert(v.address.clone()) {
                bail!("{}: duplicate address {:?}", f("address"), v.address);
            }
        }
        if self.observers.len() > OBSERVERS_MAX {
            bail!(
                "observers: {} listed, at most {OBSERVERS_MAX}",
                self.observers.len()
            );
        }
        for (i, o) in self.observers.iter().enumerate() {
            let f = |name: &str| format!("observers[{i}].{name}");
            let nk = ed25519::PublicKey::from_hex(&o.network_key).ctx(|| f("network_key"))?;
            if !network_keys.insert(nk.to_bytes()) {
                bail!(
                    "{}: already used by a validator or an earlier observer",
                    f("network_key")
                );
            }
            if o.moniker.is_empty() || o.moniker.len() > 64 {
                bail!("{}: must be 1 to 64 characters", f("moniker"));
            }
            if !monikers.insert(o.moniker.clone()) {
                bail!("{}: duplicate moniker {:?}", f("moniker"), o.moniker);
            }
        }
        let total_power: u128 = self.validators.iter().map(|v| v.power as u128).sum();
        if total_power > u64::MAX as u128 {
            bail!("validators: total power overflows u64");
        }
        if self.alloc.len() > ALLOCS_MAX {
            bail!("alloc: {} entries, at most {ALLOCS_MAX}", self.alloc.len());
        }
        let mut seen = BTreeSet::new();
        let mut supply: u128 = 0;
        for (i, a) in self.alloc.iter().enumerate() {
            let addr = Address::from_hex(&a.address).ctx(|| format!("alloc[{i}].address"))?;
            if !seen.insert(addr) {
                bail!("alloc[{i}].address: duplicate address {}", a.address);
            }
            let amount: u128 = a
                .amount
                .parse()
                .ctx(|| format!("alloc[{i}].amount: {:?} is not a decimal u128", a.amount))?;
            if amount == 0 {
                bail!("alloc[{i}].amount: must be positive");
            }
            supply = supply
                .checked_add(amount)
                .ctx(|| format!("alloc[{i}].amount: total supply overflows u128"))?;
        }
        let p = &self.params;
        if p.block_txs_max == 0 {
            bail!("params.block_txs_max: must be at least 1");
        }
        if p.block_gas_target == 0 || p.block_gas_target > p.block_gas_limit {
            bail!("params.block_gas_target: must be in 1..=block_gas_limit");
        }
        if p.base_fee_change_denominator == 0 {
            bail!("params.base_fee_change_denominator: must be at least 1");
        }
        if p.base_fee_initial < p.base_fee_min {
            bail!("params.base_fee_initial: below params.base_fee_min");
        }
        if p.fee_burn_percent > 100 {
            bail!("params.fee_burn_percent: at most 100");
        }
        if p.fee_treasury_percent > 100 {
            bail!("params.fee_treasury_percent: at most 100");
        }
        Address::from_hex(&p.treasury).ctx(|| "params.treasury".into())?;
        if let Err(e) = p.governance.validate() {
            bail!("params.{e}");
        }
        if p.epoch_blocks == 0 {
            bail!("params.epoch_blocks: must be at least 1");
        }
        if p.view_timeout_ms == 0 {
            bail!("params.view_timeout_ms: must be at least 1");
        }
        if p.idle_block_interval_ms > 3_600_000 {
            bail!("params.idle_block_interval_ms: at most 3,600,000 (one hour)");
        }
        Ok(())
    }

    /// The validator set for consensus (call after [`Genesis::validate`]).
    pub fn validator_set(&self) -> Result<ValidatorSet> {
        let vals = self
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Ok(Validator {
                    key: bls::PublicKey::from_hex(&v.consensus_key)
                        .ctx(|| format!("validators[{i}].consensus_key"))?,
                    power: v.power,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        ValidatorSet::new_pop_checked(vals).ctx(|| "validators".into())
    }

    /// The committee as batch certificates see it: network keys and power,
    /// in committee order.
    pub fn batch_committee(&self) -> Result<crate::batch::BatchCommittee> {
        let members = self
            .validators
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let k = ed25519::PublicKey::from_hex(&v.network_key)
                    .ctx(|| format!("validators[{i}].network_key"))?;
                Ok((k.to_bytes(), v.power))
            })
            .collect::<Result<Vec<_>>>()?;
        crate::batch::BatchCommittee::new(members).ctx(|| "validators".into())
    }

    /// The consensus chain id: the first 8 bytes of the chain id's hash
    /// (every consensus signature binds it).
    pub fn consensus_chain(&self) -> u64 {
        consensus_chain(&self.chain_id)
    }

    /// Total initial supply.
    pub fn total_supply(&self) -> u128 {
        self.alloc
            .iter()
            .filter_map(|a| a.amount.parse::<u128>().ok())
            .sum()
    }
}

/// The consensus chain id of chain id `chain_id` (see
/// [`Genesis::consensus_chain`]).
pub fn consensus_chain(chain_id: &str) -> u64 {
    let d = plume_crypto::hash(plume_crypto::Domain::Block, chain_id.as_bytes());
    u64::from_le_bytes(d.0[..8].try_into().expect("8 bytes"))
}

/// Parse `ADDR=AMOUNT` from the command line.
pub fn parse_alloc(s: &str) -> Result<Alloc> {
    let (addr, amount) = s
        .split_once('=')
        .ctx(|| format!("--alloc {s:?}: expected ADDRESS=AMOUNT"))?;
    Address::from_hex(addr).ctx(|| format!("--alloc {s:?}: bad address"))?;
    amount
        .parse::<u128>()
        .ctx(|| format!("--alloc {s:?}: amount is not a decimal u128"))?;
    Ok(Alloc {
        address: addr.trim_start_matches("0x").to_lowercase(),
        amount: amount.to_string(),
    })
}
