//! The devnet's default compliance rule set: what `plume devnet` runs with
//! unless `--no-compliance`. Account 0 governs it (admin and list keeper);
//! one devnet KYC provider is registered; one address is sanctioned, and
//! the workload sends a transfer to it now and then, so the summary shows
//! the engine intercepting on every validator.

use plume_compliance::{GenesisCompliance, Provider, Rule, RuleEntry};
use plume_crypto::ed25519::{Address, SigningKey};

/// The sanctioned address of the devnet's deny list (no key: nobody can
/// sign for it).
pub fn sanctioned_address() -> Address {
    Address(plume_crypto::hash(plume_crypto::Domain::Address, b"plume devnet sanctioned").0)
}

/// The devnet KYC provider's claim-signing key.
pub fn provider_key() -> SigningKey {
    let d = plume_crypto::hash(plume_crypto::Domain::Address, b"plume devnet kyc provider");
    SigningKey::from_bytes(&d.0)
}

/// The default rule set, governed by `admin` (the devnet's account 0).
/// Rules: sanctions; a single-transfer limit and a travel-rule threshold
/// far above the workload's amounts; structuring of just-below-threshold
/// native transfers (flagged, not stopped).
pub fn default_section(admin: &Address) -> GenesisCompliance {
    let native = [0u8; 32];
    let rules = vec![
        Rule::Sanctions,
        Rule::SingleLimit {
            asset: native,
            max: 1_000_000_000_000_000,
            min_tier: 0,
            scope: plume_compliance::Scope::Account,
        },
        Rule::TravelRule {
            asset: native,
            threshold: 100_000_000_000_000,
        },
        Rule::Structuring {
            asset: native,
            threshold: 10_000_000_000_000,
            margin_bps: 1_000,
            count: 3,
            window_blocks: 1_000,
            window_ms: 0,
            block: false,
        },
    ];
    GenesisCompliance {
        admin: admin.0,
        list_keeper: admin.0,
        providers: vec![Provider {
            key: provider_key().public_key().to_bytes(),
            name: "devnet-kyc".into(),
            revoked_from: None,
        }],
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| RuleEntry {
                id: i as u16 + 1,
                rule,
            })
            .collect(),
        deny: vec![sanctioned_address().0],
        exempt: Vec::new(),
        identities: Vec::new(),
    }
}
