//! The records the compliance engine keeps in state and the calls that
//! change them. Every record is an rkyv archive validated before use; the
//! JSON form (genesis, queries, the CLI) is the same types through serde.

use crate::codes;
use plume_crypto::{hash_parts, Digest, Domain};
use plume_protocol::Reason;
use rkyv::rancor;
use serde::{Deserialize, Serialize};

/// Module id of the compliance ledger module.
pub const MODULE_COMPLIANCE: u16 = 5;
/// Most rules in force at once.
pub const RULES_MAX: usize = 128;
/// Most registered providers.
pub const PROVIDERS_MAX: usize = 64;
/// Most blocked jurisdiction pairs of one rule.
pub const PAIRS_MAX: usize = 256;
/// Most attestations one identity holds (one per provider).
pub const ATTESTATIONS_MAX: usize = 8;
/// Most addresses one claim links.
pub const CLAIM_ADDRESSES_MAX: usize = 16;
/// Most addresses one list update adds or removes.
pub const LIST_UPDATE_MAX: usize = 256;
/// Longest provider name.
pub const NAME_LEN_MAX: usize = 64;
/// Largest encoded record or call accepted.
pub const RECORD_BYTES_MAX: usize = 64 * 1024;
/// The memo prefix of a travel-rule envelope commitment: the tag, then
/// the 32-byte commitment, then optionally the envelope bytes themselves
/// (whose hash must then equal the commitment).
pub const TRAVEL_TAG: &[u8] = b"plume/tr1";

use crate::json::valid_country;
pub use crate::json::{amount, asset_id, country, hex32, hex32_vec, pairs, parse_country};

/// One rule of the library. A typed enum, not an interpreter: each has a
/// fixed evaluation cost per party (see [`Policy::gas`]).
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Debug,
    PartialEq,
    Eq,
)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// No party (sender or receiver) may be on the deny list.
    Sanctions,
    /// Senders (and receivers when `receivers`) need a valid attestation:
    /// verified, from a provider not revoked at the height, issued at or
    /// before it and expiring after it.
    Kyc {
        /// Check receivers too.
        #[serde(default)]
        receivers: bool,
    },
    /// Parties with a valid attestation must have a risk tier <= `max`
    /// (the worst tier of their valid attestations counts).
    MaxRiskTier {
        /// Highest tier allowed.
        max: u8,
    },
    /// A flow between these jurisdictions (either direction) fails.
    JurisdictionBlock {
        /// Blocked pairs.
        #[serde(with = "pairs")]
        pairs: Vec<[[u8; 2]; 2]>,
    },
    /// Most one sender (an account, or an identity with `scope`
    /// `identity`: all its accounts together) moves of `asset` in one
    /// transaction.
    SingleLimit {
        /// Asset (`"native"` or hex id).
        #[serde(with = "asset_id")]
        asset: [u8; 32],
        /// Limit (inclusive).
        #[serde(with = "amount")]
        max: u128,
        /// Applies to senders whose risk tier is at least this (senders
        /// without a valid attestation count as tier 255); 0: everyone.
        #[serde(default)]
        min_tier: u8,
        /// Who the limit is per.
        #[serde(default, skip_serializing_if = "Scope::is_account")]
        scope: Scope,
    },
    /// Most one sender moves of `asset`, and how many transfers, within a
    /// fixed window: of `window_ms` milliseconds of block time (windows
    /// `k*window_ms .. (k+1)*window_ms` from the Unix epoch, so a window
    /// of 86,400,000 is a UTC day), or of `window_blocks` blocks (heights
    /// `k*window_blocks .. (k+1)*window_blocks`). Exactly one is set.
    Velocity {
        /// Asset.
        #[serde(with = "asset_id")]
        asset: [u8; 32],
        /// Window length in blocks (0: the window is by time).
        #[serde(default, skip_serializing_if = "is_zero")]
        window_blocks: u64,
        /// Window length in milliseconds of block time (0: by blocks).
        #[serde(default, skip_serializing_if = "is_zero")]
        window_ms: u64,
        /// 0 or 1: fixed windows. 2..=24: a rolling window, kept in this
        /// many buckets of `window / buckets` each (which must divide the
        /// window): the limits apply to the current bucket and the
        /// `buckets - 1` before it.
        #[serde(default, skip_serializing_if = "is_zero_u8")]
        buckets: u8,
        /// Who the counts are per: the sending account, or its identity
        /// (all the accounts linked to it, block-start registry; an
        /// account without one counts alone).
        #[serde(default, skip_serializing_if = "Scope::is_account")]
        scope: Scope,
        /// Amount limit per window (inclusive).
        #[serde(with = "amount")]
        max_amount: u128,
        /// Count limit per window (inclusive); 0: no count limit.
        #[serde(default)]
        max_count: u32,
        /// As for [`Rule::SingleLimit`].
        #[serde(default)]
        min_tier: u8,
    },
    /// A flow of `asset` at or above `threshold` must carry a travel-rule
    /// envelope commitment in the memo ([`TRAVEL_TAG`]).
    TravelRule {
        /// Asset.
        #[serde(with = "asset_id")]
        asset: [u8; 32],
        /// Threshold (inclusive).
        #[serde(with = "amount")]
        threshold: u128,
    },
    /// Flows of `asset` within `margin_bps` basis points below `threshold`
    /// count per sender and window; the `count`-th in one window is
    /// flagged (an alert in the block's verdict record), or fails when
    /// `block`.
    Structuring {
        /// Asset.
        #[serde(with = "asset_id")]
        asset: [u8; 32],
        /// The threshold the pattern stays under.
        #[serde(with = "amount")]
        threshold: u128,
        /// How far below counts as "just below", in basis points.
        margin_bps: u16,
        /// How many in one window trip the rule.
        count: u32,
        /// Window length in blocks (0: the window is by time); windows as
        /// for [`Rule::Velocity`].
        #[serde(default, skip_serializing_if = "is_zero")]
        window_blocks: u64,
        /// Window length in milliseconds of block time (0: by blocks).
        #[serde(default, skip_serializing_if = "is_zero")]
        window_ms: u64,
        /// Fail the transaction instead of flagging it.
        #[serde(default)]
        block: bool,
    },
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u8(v: &u8) -> bool {
    *v == 0
}

/// Most buckets of a rolling window.
pub const BUCKETS_MAX: u8 = 24;

/// Most counter entries the window rules of one policy keep per owner
/// (a fixed window one, a rolling one a bucket each).
pub const COUNTER_ENTRIES_MAX: usize = 256;

/// Who a limit or a window's counts are per.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The sending account.
    #[default]
    Account,
    /// The sending account's identity: every account linked to it.
    Identity,
}

impl Scope {
    fn is_account(&self) -> bool {
        *self == Scope::Account
    }
}

fn scope_gas(scope: &Scope) -> u64 {
    match scope {
        Scope::Account => 0,
        Scope::Identity => 400,
    }
}

/// The fixed window a block falls in: by block time when `window_ms` is
/// set, else by height. Time windows carry the top bit, so a counter kept
/// under a rule whose window kind changed never matches the new kind.
pub fn window_index(window_blocks: u64, window_ms: u64, height: u64, time_ms: u64) -> u64 {
    match time_ms.checked_div(window_ms) {
        Some(k) => TIME_WINDOW | k,
        None => height / window_blocks.max(1),
    }
}

/// The bit that marks a time window's index.
pub const TIME_WINDOW: u64 = 1 << 63;

/// Exactly one of a window's lengths is set.
fn window_ok(window_blocks: u64, window_ms: u64) -> bool {
    (window_blocks == 0) != (window_ms == 0)
}

impl Rule {
    /// The rule's kind, as `kind` names it in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::Sanctions => "sanctions",
            Rule::Kyc { .. } => "kyc",
            Rule::MaxRiskTier { .. } => "max_risk_tier",
            Rule::JurisdictionBlock { .. } => "jurisdiction_block",
            Rule::SingleLimit { .. } => "single_limit",
            Rule::Velocity { .. } => "velocity",
            Rule::TravelRule { .. } => "travel_rule",
            Rule::Structuring { .. } => "structuring",
        }
    }

    /// Counter entries it keeps per owner: one per live window.
    pub fn counter_entries(&self) -> usize {
        match self {
            Rule::Velocity { buckets, .. } => usize::from((*buckets).max(1)),
            Rule::Structuring { .. } => 1,
            _ => 0,
        }
    }

    /// What its counters mean (kind, window, buckets), for a rule that
    /// keeps counters: a rule id keeps this across rule-set versions, as
    /// its stored counters would otherwise be read under another meaning.
    pub fn counter_signature(&self) -> Option<(&'static str, u64, u64, u8)> {
        match self {
            Rule::Velocity {
                window_blocks,
                window_ms,
                buckets,
                ..
            } => Some(("velocity", *window_blocks, *window_ms, (*buckets).max(1))),
            Rule::Structuring {
                window_blocks,
                window_ms,
                ..
            } => Some(("structuring", *window_blocks, *window_ms, 1)),
            _ => None,
        }
    }

    /// Gas per party this rule costs (fixed by kind).
    pub fn gas_per_party(&self) -> u64 {
        match self {
            Rule::Sanctions | Rule::Kyc { .. } => 400,
            Rule::MaxRiskTier { .. } | Rule::TravelRule { .. } => 100,
            // An identity scope reads the sender's registry entry.
            Rule::SingleLimit { scope, .. } => 100 + scope_gas(scope),
            Rule::JurisdictionBlock { pairs } => 100 + 2 * pairs.len() as u64,
            // A counter read and write per sender, a bucket each.
            Rule::Velocity { scope, buckets, .. } => {
                800 + scope_gas(scope) + 30 * u64::from((*buckets).max(1))
            }
            Rule::Structuring { .. } => 800,
        }
    }

    fn check(&self) -> Result<(), &'static str> {
        match self {
            Rule::JurisdictionBlock { pairs } => {
                if pairs.is_empty() || pairs.len() > PAIRS_MAX {
                    return Err("jurisdiction_block needs 1..=256 pairs");
                }
                if !pairs.iter().flatten().all(valid_country) {
                    return Err("jurisdiction_block: a code is not two upper-case letters");
                }
            }
            Rule::SingleLimit { max, .. } if *max == 0 => {
                return Err("single_limit: max is 0 (use sanctions to stop everything)")
            }
            Rule::Velocity {
                window_blocks,
                window_ms,
                buckets,
                max_amount,
                ..
            } => {
                if !window_ok(*window_blocks, *window_ms) {
                    return Err("velocity: set exactly one of window_blocks and window_ms");
                }
                if *buckets > BUCKETS_MAX {
                    return Err("velocity: at most 24 buckets");
                }
                if *buckets > 1 && (*window_blocks + *window_ms) % u64::from(*buckets) != 0 {
                    return Err("velocity: buckets must divide the window");
                }
                if *max_amount == 0 {
                    return Err("velocity: max_amount is 0");
                }
            }
            Rule::TravelRule { threshold, .. } if *threshold == 0 => {
                return Err("travel_rule: threshold is 0")
            }
            Rule::Structuring {
                threshold,
                margin_bps,
                count,
                window_blocks,
                window_ms,
                ..
            } => {
                if *threshold == 0 || *count == 0 {
                    return Err("structuring: threshold and count must be > 0");
                }
                if !window_ok(*window_blocks, *window_ms) {
                    return Err("structuring: set exactly one of window_blocks and window_ms");
                }
                if *margin_bps == 0 || *margin_bps > 10_000 {
                    return Err("structuring: margin_bps must be 1..=10000");
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A rule with its id (stable across versions: audits name it).
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Debug,
    PartialEq,
    Eq,
)]
// (No deny_unknown_fields here: serde cannot combine it with `flatten`;
// the flattened rule denies unknown fields itself.)
pub struct RuleEntry {
    /// Id chosen by the admin; unique within a rule set.
    pub id: u16,
    /// The rule.
    #[serde(flatten)]
    pub rule: Rule,
}

/// A KYC provider allowed to attest identities.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Debug,
    PartialEq,
    Eq,
)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Ed25519 public key that signs its claims.
    #[serde(with = "hex32")]
    pub key: [u8; 32],
    /// Display name.
    pub name: String,
    /// From this height on, its attestations no longer count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_from: Option<u64>,
}

impl Provider {
    /// Whether its attestations count at `height`.
    pub fn active_at(&self, height: u64) -> bool {
        self.revoked_from.is_none_or(|r| height < r)
    }
}

/// The compliance configuration in force: who governs it, the providers
/// and the rules. Versioned: every change stores a new version, effective
/// from the block after the one that made it.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Debug,
    PartialEq,
    Eq,
)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Version (1 at genesis; +1 per change).
    #[serde(default)]
    pub version: u32,
    /// First height this version applies to.
    #[serde(default)]
    pub effective_height: u64,
    /// Account that may change rules, providers and roles.
    #[serde(with = "hex32")]
    pub admin: [u8; 32],
    /// Account that may update the deny and exempt lists.
    #[serde(with = "hex32")]
    pub list_keeper: [u8; 32],
    /// Registered providers.
    #[serde(default)]
    pub providers: Vec<Provider>,
    /// Rules, evaluated in this order (the first failure decides).
    #[serde(default)]
    pub rules: Vec<RuleEntry>,
}

/// Gas every checked transaction pays per rule, besides the per-party cost.
pub const GAS_PER_RULE: u64 = 200;

impl Policy {
    /// Check the bounds: counts, distinct rule ids, rule parameters,
    /// provider names.
    pub fn validate(&self) -> Result<(), String> {
        if self.rules.len() > RULES_MAX {
            return Err(format!("{} rules, at most {RULES_MAX}", self.rules.len()));
        }
        // One owner's counter record holds an entry per live window of
        // every window rule, and each such rule scans it: bounded here so
        // the per-rule gas bounds the work.
        let entries: usize = self.rules.iter().map(|r| r.rule.counter_entries()).sum();
        if entries > COUNTER_ENTRIES_MAX {
            return Err(format!(
                "the window rules keep {entries} counter entries per sender, at most {COUNTER_ENTRIES_MAX} (fewer buckets or rules)"
            ));
        }
        for (i, r) in self.rules.iter().enumerate() {
            if self.rules[..i].iter().any(|o| o.id == r.id) {
                return Err(format!("rule id {} used twice", r.id));
            }
            r.rule.check().map_err(|e| format!("rule {}: {e}", r.id))?;
        }
        if self.providers.len() > PROVIDERS_MAX {
            return Err(format!(
                "{} providers, at most {PROVIDERS_MAX}",
                self.providers.len()
            ));
        }
        for (i, p) in self.providers.iter().enumerate() {
            if p.name.is_empty() || p.name.len() > NAME_LEN_MAX {
                return Err(format!("provider name must be 1..={NAME_LEN_MAX} bytes"));
            }
            if self.providers[..i].iter().any(|o| o.key == p.key) {
                return Err(format!("provider {} listed twice", hex::encode(p.key)));
            }
        }
        Ok(())
    }

    /// The provider with this key.
    pub fn provider(&self, key: &[u8; 32]) -> Option<&Provider> {
        self.providers.iter().find(|p| &p.key == key)
    }

    /// Gas of checking one transaction with `parties` parties (an upper
    /// bound the executor knows before any state is read: the accounts
    /// the call declares).
    pub fn gas(&self, parties: usize) -> u64 {
        self.rules.iter().fold(0u64, |g, r| {
            g.saturating_add(GAS_PER_RULE)
                .saturating_add(r.rule.gas_per_party().saturating_mul(parties as u64))
        })
    }

    /// Whether any rule is in force.
    pub fn active(&self) -> bool {
        !self.rules.is_empty()
    }
}

/// KYC status in an attestation.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
)]
#[serde(rename_all = "snake_case")]
pub enum KycStatus {
    /// Checks under way: does not count as verified.
    Pending,
    /// Verified.
    Verified,
    /// Suspended by the provider.
    Suspended,
}

/// What a provider states about an identity, signed by it. Binds the
/// chain id, so a claim for one chain is refused on another.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Debug,
    PartialEq,
    Eq,
)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// Chain this claim is for.
    pub chain_id: String,
    /// The identity (an opaque id chosen by the provider, e.g. the hash
    /// of its customer reference).
    #[serde(with = "hex32")]
    pub identity: [u8; 32],
    /// Addresses that belong to the identity.
    #[serde(with = "hex32_vec")]
    pub addresses: Vec<[u8; 32]>,
    /// The provider's key.
    #[serde(with = "hex32")]
    pub provider: [u8; 32],
    /// Status.
    pub status: KycStatus,
    /// Risk tier (0 lowest).
    pub risk_tier: u8,
    /// ISO 3166-1 alpha-2 jurisdiction.
    #[serde(with = "country")]
    pub jurisdiction: [u8; 2],
    /// Accreditation flags (bit meanings are the network's convention).
    #[serde(default)]
    pub accreditation: u32,
    /// First height the attestation counts.
    pub issued_height: u64,
    /// First height it no longer counts (absent: no height expiry).
    #[serde(default = "no_expiry", skip_serializing_if = "is_no_expiry")]
    pub expiry_height: u64,
    /// First block time (Unix milliseconds) it no longer counts (absent:
    /// no time expiry). A claim expires by height, by time or both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// `expiry_height` when a claim expires by time only.
pub fn no_expiry() -> u64 {
    u64::MAX
}

fn is_no_expiry(v: &u64) -> bool {
    *v == u64::MAX
}

impl Claim {
    /// What the provider signs.
    pub fn signing_hash(&self) -> Digest {
        hash_parts(Domain::Compliance, &[b"claim/v1", &encode(self)])
    }

    /// Stateless rules.
    pub fn check(&self) -> Result<(), Reason> {
        if self.addresses.is_empty() || self.addresses.len() > CLAIM_ADDRESSES_MAX {
            return Err(codes::TOO_MANY);
        }
        if self.chain_id.is_empty() || self.chain_id.len() > plume_protocol::tx::CHAIN_ID_LEN_MAX {
            return Err(codes::CLAIM_WRONG_CHAIN);
        }
        if !valid_country(&self.jurisdiction)
            || self.expiry_height <= self.issued_height
            || (self.expiry_height == u64::MAX && self.expires_at_ms.is_none())
            || self.expires_at_ms == Some(0)
        {
            return Err(Reason::MalformedCall);
        }
        Ok(())
    }

    /// The attestation this claim becomes.
    pub fn attestation(&self) -> Attestation {
        Attestation {
            provider: self.provider,
            status: self.status,
            risk_tier: self.risk_tier,
            jurisdiction: self.jurisdiction,
            accreditation: self.accreditation,
            issued_height: self.issued_height,
            expiry_height: self.expiry_height,
            expires_at_ms: self.expires_at_ms,
        }
    }
}

/// One provider's current statement about an identity.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Debug,
    PartialEq,
    Eq,
)]
pub struct Attestation {
    /// Provider key.
    #[serde(with = "hex32")]
    pub provider: [u8; 32],
    /// Status.
    pub status: KycStatus,
    /// Risk tier.
    pub risk_tier: u8,
    /// Jurisdiction.
    #[serde(with = "country")]
    pub jurisdiction: [u8; 2],
    /// Accreditation flags.
    pub accreditation: u32,
    /// First height it counts.
    pub issued_height: u64,
    /// First height it no longer counts.
    #[serde(default = "no_expiry", skip_serializing_if = "is_no_expiry")]
    pub expiry_height: u64,
    /// First block time (Unix ms) it no longer counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

impl Attestation {
    /// Whether it has expired at `height` and block time `time_ms`.
    pub fn expired_at(&self, height: u64, time_ms: u64) -> bool {
        height >= self.expiry_height || self.expires_at_ms.is_some_and(|t| time_ms >= t)
    }
}

/// An identity's record: its attestations and, per provider, the issue
/// height up to which claims are refused (after a revocation, a replay of
/// the revoked claim must not bring it back).
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
)]
pub struct Identity {
    /// Current attestations, one per provider.
    pub attestations: Vec<Attestation>,
    /// (provider, issued height): claims of that provider issued at or
    /// before it are stale.
    #[serde(skip)]
    pub revoked: Vec<([u8; 32], u64)>,
}

/// Which list.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// Sanctions / deny list: no flow to or from a listed address.
    Deny,
    /// Whitelisted counterparties: flows *to* them skip the amount rules
    /// (limits, velocity, travel rule, structuring).
    Exempt,
}

/// What the registry holds about one address, in one record (so a check
/// reads one key per party): its identity link and list entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressEntry {
    /// The identity it belongs to.
    pub identity: Option<[u8; 32]>,
    /// On the deny (sanctions) list.
    pub deny: bool,
    /// On the exempt (whitelisted counterparty) list.
    pub exempt: bool,
}

impl AddressEntry {
    /// Whether it holds nothing (the record is then deleted).
    pub fn is_empty(&self) -> bool {
        *self == AddressEntry::default()
    }

    /// Set or clear a list flag.
    pub fn set(&mut self, list: ListKind, on: bool) {
        match list {
            ListKind::Deny => self.deny = on,
            ListKind::Exempt => self.exempt = on,
        }
    }

    /// Fixed encoding: a flags byte (1 deny, 2 exempt, 4 identity), then
    /// the 32-byte identity when flagged.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![u8::from(self.deny) | u8::from(self.exempt) << 1];
        if let Some(id) = &self.identity {
            v[0] |= 4;
            v.extend_from_slice(id);
        }
        v
    }

    /// Decode; `None` for bytes that are not an entry.
    pub fn decode(b: &[u8]) -> Option<AddressEntry> {
        let (&flags, rest) = b.split_first()?;
        if flags & !7 != 0 {
            return None;
        }
        let identity = match (flags & 4 != 0, rest.len()) {
            (true, 32) => Some(rest.try_into().expect("32 bytes")),
            (false, 0) => None,
            _ => return None,
        };
        Some(AddressEntry {
            identity,
            deny: flags & 1 != 0,
            exempt: flags & 2 != 0,
        })
    }
}

/// A per-sender, per-rule window counter.
#[derive(
    rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub struct Counter {
    /// Window index the counts are for ([`window_index`]).
    pub window: u64,
    /// Transfers counted.
    pub count: u32,
    /// Amount counted.
    pub amount: u128,
}

/// One line of a block's verdict record: a transaction the engine stopped
/// or flagged. Stored in state under the block's height, so it is covered
/// by the certified state root.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Debug,
    PartialEq,
    Eq,
)]
pub struct VerdictEntry {
    /// Position in the block.
    pub index: u32,
    /// Transaction id.
    #[serde(with = "hex32")]
    pub tx: [u8; 32],
    /// Rule id that decided.
    pub rule_id: u16,
    /// Reason code (0 for a flag that did not fail the transaction).
    pub code: u16,
    /// Flagged (alert) rather than failed.
    pub flagged: bool,
    /// Hash of what the rules evaluated (see [`crate::input_hash`]).
    #[serde(with = "hex32")]
    pub input_hash: [u8; 32],
}

/// The verdict record of one block.
#[derive(
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
    Serialize,
    Deserialize,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
)]
pub struct BlockVerdicts {
    /// Policy version the block was checked under.
    pub policy_version: u32,
    /// Stopped or flagged transactions, in block order.
    pub entries: Vec<VerdictEntry>,
}

/// The compliance module's calls.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ComplianceCall {
    /// Admin: replace the rule set.
    SetRules {
        /// The new rules.
        rules: Vec<RuleEntry>,
    },
    /// Admin: register a provider.
    AddProvider {
        /// Its claim-signing key.
        key: [u8; 32],
        /// Display name.
        name: String,
    },
    /// Admin: its attestations stop counting from `from_height` (at the
    /// earliest the next block).
    RevokeProvider {
        /// The provider.
        key: [u8; 32],
        /// First height its attestations no longer count.
        from_height: u64,
    },
    /// Admin: hand over the admin and list-keeper roles.
    SetRoles {
        /// New admin.
        admin: [u8; 32],
        /// New list keeper.
        list_keeper: [u8; 32],
    },
    /// List keeper: add and remove addresses (effective next block).
    UpdateList {
        /// Which list.
        list: ListKind,
        /// Added.
        add: Vec<[u8; 32]>,
        /// Removed.
        remove: Vec<[u8; 32]>,
    },
    /// Anyone: record a provider-signed claim.
    Attest {
        /// The claim.
        claim: Claim,
        /// The provider's Ed25519 signature over [`Claim::signing_hash`].
        signature: [u8; 64],
    },
    /// The provider (a signer of the transaction): withdraw its
    /// attestation of `identity`; its older claims stay refused.
    RevokeAttestation {
        /// The identity.
        identity: [u8; 32],
        /// The provider's key.
        provider: [u8; 32],
    },
    /// The provider (a signer of the transaction), an institution that
    /// attests its own customers: publish the X25519 key travel-rule
    /// envelopes for its customers are sealed to (`None` withdraws it).
    /// Effective at once (clients read it; no rule does).
    SetEnvelopeKey {
        /// The provider's key.
        provider: [u8; 32],
        /// Its X25519 public key.
        key: Option<[u8; 32]>,
    },
}

impl ComplianceCall {
    /// Encode (the transaction's call bytes).
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decode untrusted call bytes and check the stateless rules.
    pub fn decode(bytes: &[u8]) -> Result<Self, Reason> {
        let c: ComplianceCall = decode(bytes).map_err(|_| Reason::MalformedCall)?;
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), Reason> {
        match self {
            ComplianceCall::SetRules { rules } => {
                let p = Policy {
                    version: 0,
                    effective_height: 0,
                    admin: [0; 32],
                    list_keeper: [0; 32],
                    providers: Vec::new(),
                    rules: rules.clone(),
                };
                p.validate().map_err(|_| codes::BAD_RULES)
            }
            ComplianceCall::AddProvider { name, .. } => {
                if name.is_empty() || name.len() > NAME_LEN_MAX {
                    Err(Reason::MalformedCall)
                } else {
                    Ok(())
                }
            }
            ComplianceCall::UpdateList { add, remove, .. } => {
                if add.len() + remove.len() == 0
                    || add.len() > LIST_UPDATE_MAX
                    || remove.len() > LIST_UPDATE_MAX
                {
                    Err(codes::TOO_MANY)
                } else {
                    Ok(())
                }
            }
            ComplianceCall::Attest { claim, .. } => claim.check(),
            ComplianceCall::SetEnvelopeKey { key: Some(k), .. } if k == &[0; 32] => {
                Err(Reason::MalformedCall)
            }
            ComplianceCall::RevokeProvider { .. }
            | ComplianceCall::SetRoles { .. }
            | ComplianceCall::RevokeAttestation { .. }
            | ComplianceCall::SetEnvelopeKey { .. } => Ok(()),
        }
    }
}

/// The rkyv bytes of a record or call.
pub fn encode<T>(v: &T) -> Vec<u8>
where
    T: for<'a> rkyv::Serialize<
        rkyv::api::high::HighSerializer<
            rkyv::util::AlignedVec,
            rkyv::ser::allocator::ArenaHandle<'a>,
            rancor::Error,
        >,
    >,
{
    rkyv::to_bytes::<rancor::Error>(v)
        .expect("serialising an owned value into memory cannot fail")
        .into_vec()
}

/// Decode untrusted record bytes (size bound, archive validation).
pub fn decode<T>(bytes: &[u8]) -> Result<T, String>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rancor::Error>>,
{
    if bytes.len() > RECORD_BYTES_MAX {
        return Err(format!("{} bytes, at most {RECORD_BYTES_MAX}", bytes.len()));
    }
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    rkyv::from_bytes::<T, rancor::Error>(&aligned).map_err(|e| e.to_string())
}
