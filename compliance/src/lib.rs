//! Plume's compliance engine, pure: the KYC registry's records, the
//! declarative rule library (a typed enum versioned in state, every rule
//! with bounded gas), and the deterministic check every value-moving
//! transaction passes before it applies.
//!
//! Where to start reading:
//! - [`model`]: [`Policy`] (admin, list keeper, providers, rules),
//!   [`Rule`], [`Claim`] (what a provider signs: it binds the chain id),
//!   [`Identity`], [`ComplianceCall`] (the module's transactions) and the
//!   block's [`BlockVerdicts`];
//! - [`check`]: [`flows_of`] (a call's balance events to flows, module
//!   agnostic) and [`check::check`] (the rules in order; the first failure
//!   decides, with one reason code per rule kind, [`codes`]);
//! - [`GenesisCompliance`]: the `compliance` section of `genesis.json`.
//!
//! The ledger module that stores these records and the executor's
//! interception are in `plume-execution` (`modules::compliance`). No I/O,
//! no clock of its own: expiry and windows count block heights or the
//! block time in the header (`Block::time_ms`, agreed by the validators:
//! at least the parent's, at most 2 s ahead of each voter's clock), never
//! a node's own clock.
#![forbid(unsafe_code)]

pub mod check;
pub mod codes;
mod json;
pub mod model;
pub mod travel;

pub use check::{
    check, envelope_commitment, flows_of, input_hash, travel_commitment_ok, travel_memo, Env, Flow,
    Outcome, Owner, TxContext,
};
pub use model::{
    decode, encode, AddressEntry, Attestation, BlockVerdicts, Claim, ComplianceCall, Counter,
    Identity, KycStatus, ListKind, Policy, Provider, Rule, RuleEntry, Scope, VerdictEntry,
    MODULE_COMPLIANCE,
};

use serde::{Deserialize, Serialize};

/// The JSON form of a record (queries, the CLI, audit reports).
pub fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// An identity registered at genesis (trusted like the allocations: no
/// provider signature; the provider must be in `providers`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GenesisIdentity {
    /// Identity id.
    #[serde(with = "model::hex32")]
    pub identity: [u8; 32],
    /// Its addresses.
    #[serde(with = "model::hex32_vec")]
    pub addresses: Vec<[u8; 32]>,
    /// Attesting provider (key).
    #[serde(with = "model::hex32")]
    pub provider: [u8; 32],
    /// Status.
    pub status: KycStatus,
    /// Risk tier.
    #[serde(default)]
    pub risk_tier: u8,
    /// Jurisdiction.
    #[serde(with = "model::country")]
    pub jurisdiction: [u8; 2],
    /// Accreditation flags.
    #[serde(default)]
    pub accreditation: u32,
    /// First height it no longer counts (absent: no height expiry).
    #[serde(default = "model::no_expiry")]
    pub expiry_height: u64,
    /// First block time (Unix ms) it no longer counts (absent: none).
    #[serde(default)]
    pub expires_at_ms: Option<u64>,
}

/// Most deny/exempt entries and identities at genesis.
pub const GENESIS_ENTRIES_MAX: usize = 100_000;

/// The `compliance` section of `genesis.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GenesisCompliance {
    /// Account that governs rules, providers and roles.
    #[serde(with = "model::hex32")]
    pub admin: [u8; 32],
    /// Account that updates the lists.
    #[serde(with = "model::hex32")]
    pub list_keeper: [u8; 32],
    /// Registered providers.
    #[serde(default)]
    pub providers: Vec<Provider>,
    /// Rules in force from block 1.
    #[serde(default)]
    pub rules: Vec<RuleEntry>,
    /// Deny (sanctions) list.
    #[serde(default, with = "model::hex32_vec")]
    pub deny: Vec<[u8; 32]>,
    /// Exempt (whitelisted counterparty) list.
    #[serde(default, with = "model::hex32_vec")]
    pub exempt: Vec<[u8; 32]>,
    /// Identities attested at genesis.
    #[serde(default)]
    pub identities: Vec<GenesisIdentity>,
}

impl GenesisCompliance {
    /// The genesis policy (version 1, effective from block 1).
    pub fn policy(&self) -> Policy {
        Policy {
            version: 1,
            effective_height: 1,
            admin: self.admin,
            list_keeper: self.list_keeper,
            providers: self.providers.clone(),
            rules: self.rules.clone(),
        }
    }

    /// Check every bound; the message names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let p = self.policy();
        p.validate()?;
        if self.providers.iter().any(|p| p.revoked_from.is_some()) {
            return Err("a genesis provider cannot be revoked".into());
        }
        for (n, what) in [
            (self.deny.len(), "deny"),
            (self.exempt.len(), "exempt"),
            (self.identities.len(), "identities"),
        ] {
            if n > GENESIS_ENTRIES_MAX {
                return Err(format!(
                    "{what}: {n} entries, at most {GENESIS_ENTRIES_MAX}"
                ));
            }
        }
        let mut seen = std::collections::BTreeMap::new();
        for id in &self.identities {
            if p.provider(&id.provider).is_none() {
                return Err(format!(
                    "identity {}: provider {} is not in providers",
                    hex::encode(id.identity),
                    hex::encode(id.provider)
                ));
            }
            if id.addresses.is_empty() || id.addresses.len() > model::CLAIM_ADDRESSES_MAX {
                return Err(format!(
                    "identity {}: 1..={} addresses",
                    hex::encode(id.identity),
                    model::CLAIM_ADDRESSES_MAX
                ));
            }
            if id.expiry_height <= 1
                || id.expires_at_ms == Some(0)
                || (id.expiry_height == u64::MAX && id.expires_at_ms.is_none())
            {
                return Err(format!(
                    "identity {}: set expiry_height (above 1), expires_at_ms (above 0) or both",
                    hex::encode(id.identity)
                ));
            }
            for a in &id.addresses {
                if let Some(other) = seen.insert(*a, id.identity) {
                    if other != id.identity {
                        return Err(format!(
                            "address {} belongs to two identities",
                            hex::encode(a)
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
