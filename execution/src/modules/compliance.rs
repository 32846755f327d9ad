//! The compliance ledger module (id 5): the KYC registry, the lists and
//! the versioned rule set in state, and the executor's interception of
//! every value-moving transaction (`block.rs` calls [`Interceptor`]).
//!
//! Records (keys from [`module_key`] under this module's id):
//! - `policy`: the [`Policy`] in force (admin, list keeper, providers,
//!   rules), and `policy/<version>`: every version ever in force (audits
//!   and `explain` name the rule by id and version);
//! - `gas`: the policy's gas line (base, per party), read by the mempool's
//!   precheck without decoding the policy;
//! - `addr/<account>`: an address's [`AddressEntry`] (its identity link
//!   and deny/exempt flags, one record so a check reads one key per party);
//!   `identity/<id>`: an [`Identity`] (attestations per provider);
//! - `counter/<account>`: the sender's velocity and structuring windows,
//!   one entry per rule;
//! - `verdicts/<height>`: the block's stopped and flagged transactions;
//! - `envelope/<provider>`: the X25519 key a provider (an institution
//!   attesting its customers) receives travel-rule envelopes under.
//!
//! Changes to the policy, lists and identities made in block H apply from
//! H+1: interception reads them from the block-start state.

use super::{module_key, Call, CallResult, Ledger, Module, QueryError, StateRead, TxInfo};
use crate::state::account_key;
use crate::ExecError;
use plume_compliance::{
    codes, decode, encode, AddressEntry, BlockVerdicts, ComplianceCall, Counter, Env, GenesisCompliance,
    Identity, Owner, Policy, MODULE_COMPLIANCE,
};
use plume_protocol::{Event, Reason};
use plume_storage::{StateKey, StateWrite};

/// Gas of an admin or list call (besides the envelope's), and per list entry.
pub const GAS_ADMIN: u64 = 10_000;
/// Gas per list entry added or removed.
pub const GAS_PER_ENTRY: u64 = 2_000;
/// Gas of recording a claim (a signature check and the writes).
pub const GAS_ATTEST: u64 = 40_000;

/// Key of the policy in force.
pub fn policy_key() -> StateKey {
    module_key(MODULE_COMPLIANCE, &[b"policy"])
}

/// Key of one stored policy version.
pub fn policy_version_key(version: u32) -> StateKey {
    module_key(MODULE_COMPLIANCE, &[b"policy", &version.to_le_bytes()])
}

/// Key of the policy's gas line.
pub fn gas_key() -> StateKey {
    module_key(MODULE_COMPLIANCE, &[b"gas"])
}

/// Key of an address's registry entry (identity link, list flags).
pub fn entry_key(account: &[u8; 32]) -> StateKey {
    module_key(MODULE_COMPLIANCE, &[b"addr", &account_key(account)])
}

/// An address's registry entry.
pub fn read_entry<B: StateRead + ?Sized>(
    state: &B,
    account: &[u8; 32],
) -> Result<AddressEntry, ExecError> {
    match state.get(&entry_key(account))? {
        Some(b) => AddressEntry::decode(&b).ok_or(ExecError::CorruptState("address entry")),
        None => Ok(AddressEntry::default()),
    }
}

fn ledger_entry(l: &mut dyn Ledger, account: &[u8; 32]) -> Result<AddressEntry, ExecError> {
    match l.record(&entry_key(account))? {
        Some(b) => AddressEntry::decode(&b).ok_or(ExecError::CorruptState("address entry")),
        None => Ok(AddressEntry::default()),
    }
}

fn set_ledger_entry(l: &mut dyn Ledger, account: &[u8; 32], e: AddressEntry) {
    l.set_record(&entry_key(account), (!e.is_empty()).then(|| e.encode()));
}

/// Key of an identity record.
pub fn identity_key(identity: &[u8; 32]) -> StateKey {
    module_key(MODULE_COMPLIANCE, &[b"identity", identity])
}

/// Key of a sender's window counters (one record for every rule).
/// Derived 1:1 from the sender's account key, which is in the
/// transaction's access set.
pub fn counter_key(account: &[u8; 32]) -> StateKey {
    module_key(MODULE_COMPLIANCE, &[b"counter", &account_key(account)])
}

/// Key of a provider's travel-rule envelope key.
pub fn envelope_key_key(provider: &[u8; 32]) -> StateKey {
    module_key(MODULE_COMPLIANCE, &[b"envelope", provider])
}

/// A provider's travel-rule envelope key.
pub fn read_envelope_key<B: StateRead + ?Sized>(
    state: &B,
    provider: &[u8; 32],
) -> Result<Option<[u8; 32]>, ExecError> {
    match state.get(&envelope_key_key(provider))? {
        Some(b) => <[u8; 32]>::try_from(b.as_slice())
            .map(Some)
            .map_err(|_| ExecError::CorruptState("envelope key")),
        None => Ok(None),
    }
}

/// Bytes of one counter entry: rule id u16, window u64, count u32,
/// amount u128 (little-endian).
const COUNTER_LEN: usize = 2 + 8 + 4 + 16;

/// A sender's counters as a fixed-width record (read and written on every
/// checked transfer: no archive, no validation pass): the entries in
/// order, [`COUNTER_LEN`] bytes each.
pub fn encode_counters(cs: &[(u16, Counter)]) -> Vec<u8> {
    let mut v = Vec::with_capacity(cs.len() * COUNTER_LEN);
    for (rule, c) in cs {
        v.extend_from_slice(&rule.to_le_bytes());
        v.extend_from_slice(&c.window.to_le_bytes());
        v.extend_from_slice(&c.count.to_le_bytes());
        v.extend_from_slice(&c.amount.to_le_bytes());
    }
    v
}

/// Decode [`encode_counters`]' bytes; `None` if they are not a whole
/// number of entries or hold more than the rule bound.
pub fn decode_counters(b: &[u8]) -> Option<Vec<(u16, Counter)>> {
    let most = plume_compliance::model::RULES_MAX * usize::from(plume_compliance::model::BUCKETS_MAX);
    if b.len() % COUNTER_LEN != 0 || b.len() / COUNTER_LEN > most {
        return None;
    }
    Some(
        b.chunks_exact(COUNTER_LEN)
            .map(|e| {
                let (rule, rest) = e.split_at(2);
                let (window, rest) = rest.split_at(8);
                let (count, amount) = rest.split_at(4);
                (
                    u16::from_le_bytes(rule.try_into().expect("2 bytes")),
                    Counter {
                        window: u64::from_le_bytes(window.try_into().expect("8 bytes")),
                        count: u32::from_le_bytes(count.try_into().expect("4 bytes")),
                        amount: u128::from_le_bytes(amount.try_into().expect("16 bytes")),
                    },
                )
            })
            .collect(),
    )
}

/// Key of an identity's window counters (rules with an identity scope):
/// in the access set of every transaction one of its accounts signs,
/// when such a rule is in force (`block.rs`).
pub fn identity_counter_key(identity: &[u8; 32]) -> StateKey {
    module_key(MODULE_COMPLIANCE, &[b"icounter", identity])
}

/// Whether any rule of `policy` counts per identity.
pub fn has_identity_scope(policy: &Policy) -> bool {
    policy.rules.iter().any(|r| {
        matches!(
            r.rule,
            plume_compliance::Rule::Velocity {
                scope: plume_compliance::Scope::Identity,
                ..
            }
        )
    })
}

/// Key of a block's verdict record.
pub fn verdicts_key(height: u64) -> StateKey {
    module_key(MODULE_COMPLIANCE, &[b"verdicts", &height.to_le_bytes()])
}

fn corrupt(what: &'static str) -> impl FnOnce(String) -> ExecError {
    move |_| ExecError::CorruptState(what)
}

/// The policy in force in `state`, if compliance is configured.
pub fn read_policy<B: StateRead + ?Sized>(state: &B) -> Result<Option<Policy>, ExecError> {
    match state.get(&policy_key())? {
        Some(b) => decode::<Policy>(&b).map(Some).map_err(corrupt("policy")),
        None => Ok(None),
    }
}

/// A stored policy version.
pub fn read_policy_version<B: StateRead + ?Sized>(
    state: &B,
    version: u32,
) -> Result<Option<Policy>, ExecError> {
    match state.get(&policy_version_key(version))? {
        Some(b) => decode::<Policy>(&b).map(Some).map_err(corrupt("policy")),
        None => Ok(None),
    }
}

/// The compliance gas of a transaction declaring `parties()` accounts,
/// from the stored gas line (0 without a policy; `parties` is only called
/// when there is one).
pub fn read_gas<B: StateRead + ?Sized>(
    state: &B,
    parties: impl FnOnce() -> usize,
) -> Result<u64, ExecError> {
    let Some(b) = state.get(&gas_key())? else {
        return Ok(0);
    };
    let b: [u8; 16] = b
        .as_slice()
        .try_into()
        .map_err(|_| ExecError::CorruptState("compliance gas"))?;
    let base = u64::from_le_bytes(b[..8].try_into().expect("8"));
    let per = u64::from_le_bytes(b[8..].try_into().expect("8"));
    Ok(base.saturating_add(per.saturating_mul(parties() as u64)))
}

fn gas_line(p: &Policy) -> Vec<u8> {
    let base = p.gas(0);
    let per = p.gas(1) - base;
    let mut v = base.to_le_bytes().to_vec();
    v.extend_from_slice(&per.to_le_bytes());
    v
}

/// The identity an address belongs to.
pub fn read_identity_of<B: StateRead + ?Sized>(
    state: &B,
    account: &[u8; 32],
) -> Result<Option<([u8; 32], Identity)>, ExecError> {
    let Some(id) = read_entry(state, account)?.identity else {
        return Ok(None);
    };
    Ok(read_identity(state, &id)?.map(|r| (id, r)))
}

/// An identity record.
pub fn read_identity<B: StateRead + ?Sized>(
    state: &B,
    identity: &[u8; 32],
) -> Result<Option<Identity>, ExecError> {
    match state.get(&identity_key(identity))? {
        Some(b) => decode::<Identity>(&b)
            .map(Some)
            .map_err(corrupt("identity")),
        None => Ok(None),
    }
}

/// A block's verdict record.
pub fn read_verdicts<B: StateRead + ?Sized>(
    state: &B,
    height: u64,
) -> Result<Option<BlockVerdicts>, ExecError> {
    match state.get(&verdicts_key(height))? {
        Some(b) => decode::<BlockVerdicts>(&b)
            .map(Some)
            .map_err(corrupt("verdicts")),
        None => Ok(None),
    }
}

/// The genesis writes of a `compliance` section (unsorted).
pub fn genesis_writes(g: &GenesisCompliance) -> Result<Vec<StateWrite>, ExecError> {
    let policy = g.policy();
    let mut w: Vec<StateWrite> = vec![
        (policy_key(), Some(encode(&policy))),
        (policy_version_key(policy.version), Some(encode(&policy))),
        (gas_key(), Some(gas_line(&policy))),
    ];
    let mut entries: std::collections::BTreeMap<StateKey, AddressEntry> = Default::default();
    for a in &g.deny {
        entries.entry(entry_key(a)).or_default().deny = true;
    }
    for a in &g.exempt {
        entries.entry(entry_key(a)).or_default().exempt = true;
    }
    let mut ids: std::collections::BTreeMap<[u8; 32], Identity> = Default::default();
    for gi in &g.identities {
        let rec = ids.entry(gi.identity).or_default();
        if rec.attestations.iter().any(|a| a.provider == gi.provider) {
            return Err(ExecError::BadGenesis(
                "an identity attested twice by one provider",
            ));
        }
        rec.attestations.push(plume_compliance::Attestation {
            provider: gi.provider,
            status: gi.status,
            risk_tier: gi.risk_tier,
            jurisdiction: gi.jurisdiction,
            accreditation: gi.accreditation,
            issued_height: 0,
            expiry_height: gi.expiry_height,
            expires_at_ms: gi.expires_at_ms,
        });
        rec.attestations.sort_by_key(|a| a.provider);
        for a in &gi.addresses {
            entries.entry(entry_key(a)).or_default().identity = Some(gi.identity);
        }
    }
    w.extend(entries.into_iter().map(|(k, e)| (k, Some(e.encode()))));
    for (id, rec) in ids {
        if rec.attestations.len() > plume_compliance::model::ATTESTATIONS_MAX {
            return Err(ExecError::BadGenesis("too many attestations of one identity"));
        }
        w.push((identity_key(&id), Some(encode(&rec))));
    }
    Ok(w)
}

/// How many accounts a call declares (its touched resources and the
/// payer): the party count compliance gas is charged by.
pub fn parties(call: &dyn Call, tx: &TxInfo<'_>) -> usize {
    parties_with(call, tx, &mut Vec::new())
}

/// [`parties`] with a caller's scratch list (no allocation per call).
pub(crate) fn parties_with(call: &dyn Call, tx: &TxInfo<'_>, scratch: &mut Vec<[u8; 32]>) -> usize {
    scratch.clear();
    call.touched(tx, scratch);
    scratch.len() + 1
}

/// The whole genesis state: [`crate::genesis_writes`] plus, with a
/// `compliance` section, its registry and rules. Sorted by key.
pub fn genesis_writes_with(
    params: &crate::Params,
    allocs: &[(plume_crypto::ed25519::Address, u128)],
    compliance: Option<&GenesisCompliance>,
) -> Result<Vec<StateWrite>, ExecError> {
    let mut writes = crate::state::genesis_writes(params, allocs)?;
    if let Some(c) = compliance {
        c.validate()
            .map_err(|_| ExecError::BadGenesis("compliance section"))?;
        writes.extend(genesis_writes(c)?);
        writes.sort_by_key(|w| w.0);
        if writes.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(ExecError::BadGenesis("compliance section repeats an entry"));
        }
    }
    Ok(writes)
}

/// The compliance module (id [`MODULE_COMPLIANCE`]).
#[derive(Debug, Clone, Copy)]
pub struct Compliance;

impl Module for Compliance {
    fn id(&self) -> u16 {
        MODULE_COMPLIANCE
    }
    fn name(&self) -> &'static str {
        "compliance"
    }
    fn decode(&self, call: &[u8]) -> Result<Box<dyn Call>, Reason> {
        Ok(Box::new(ComplianceCall::decode(call)?))
    }
    fn reason_name(&self, r: Reason) -> Option<&'static str> {
        codes::name(r)
    }
    fn queries(&self) -> &'static [&'static str] {
        &["policy", "identity", "listed", "verdicts", "codes", "envelope-keys"]
    }
    fn query(
        &self,
        state: &dyn StateRead,
        method: &str,
        args: &[String],
    ) -> Result<serde_json::Value, QueryError> {
        match method {
            // policy [version]: the policy in force, or a stored version.
            "policy" => {
                let p = match args.first() {
                    Some(v) => {
                        let v: u32 = v
                            .parse()
                            .map_err(|_| QueryError::BadArgs("version is not a number".into()))?;
                        read_policy_version(state, v)?
                    }
                    None => read_policy(state)?,
                };
                Ok(p.map_or(serde_json::Value::Null, |p| plume_compliance::to_json(&p)))
            }
            // identity ADDRESS|ID: an address's identity, or an identity by id.
            "identity" => {
                let a = super::hex32_arg(args, 0, "address or identity")?;
                let found = match read_identity_of(state, &a)? {
                    Some(x) => Some(x),
                    None => read_identity(state, &a)?.map(|r| (a, r)),
                };
                Ok(match found {
                    Some((id, rec)) => serde_json::json!({
                        "identity": hex::encode(id),
                        "attestations": plume_compliance::to_json(&rec.attestations),
                        "revoked_before": rec.revoked.iter().map(|(p, h)| serde_json::json!({
                            "provider": hex::encode(p), "issued_height": h})).collect::<Vec<_>>(),
                    }),
                    None => serde_json::Value::Null,
                })
            }
            // listed ADDRESS: on the deny and exempt lists?
            "listed" => {
                let a = super::hex32_arg(args, 0, "address")?;
                let e = read_entry(state, &a)?;
                Ok(serde_json::json!({
                    "deny": e.deny,
                    "exempt": e.exempt,
                    "identity": e.identity.map(hex::encode),
                }))
            }
            // verdicts HEIGHT: the block's stopped and flagged transactions.
            "verdicts" => {
                let h: u64 = args
                    .first()
                    .ok_or_else(|| QueryError::BadArgs("missing height".into()))?
                    .parse()
                    .map_err(|_| QueryError::BadArgs("height is not a number".into()))?;
                Ok(read_verdicts(state, h)?.map_or(serde_json::Value::Null, |v| plume_compliance::to_json(&v)))
            }
            // envelope-keys ADDRESS|PROVIDER: the envelope keys of the
            // institutions attesting the address's identity (where a
            // travel-rule envelope to it is sealed), or one provider's.
            "envelope-keys" => {
                let a = super::hex32_arg(args, 0, "address or provider")?;
                let policy = read_policy(state)?;
                let name = |p: &[u8; 32]| {
                    policy
                        .as_ref()
                        .and_then(|pol| pol.provider(p))
                        .map(|p| p.name.clone())
                };
                let revoked_from = |p: &[u8; 32]| {
                    policy
                        .as_ref()
                        .and_then(|pol| pol.provider(p))
                        .and_then(|p| p.revoked_from)
                };
                let mut out = Vec::new();
                let attested: Vec<([u8; 32], Option<plume_compliance::Attestation>)> =
                    match read_identity_of(state, &a)? {
                        Some((_, rec)) => rec
                            .attestations
                            .into_iter()
                            .map(|x| (x.provider, Some(x)))
                            .collect(),
                        None => vec![(a, None)],
                    };
                for (p, att) in attested {
                    let Some(key) = read_envelope_key(state, &p)? else {
                        continue;
                    };
                    out.push(serde_json::json!({
                        "provider": hex::encode(p),
                        "name": name(&p),
                        "registered": name(&p).is_some(),
                        "revoked_from": revoked_from(&p),
                        "envelope_key": hex::encode(key),
                        "attestation": att.map(|x| plume_compliance::to_json(&x)),
                    }));
                }
                Ok(serde_json::Value::Array(out))
            }
            "codes" => Ok(serde_json::Value::Array(
                codes::ALL
                    .iter()
                    .map(|(r, n, d)| serde_json::json!({"code": r.0, "name": n, "meaning": d}))
                    .collect(),
            )),
            _ => Err(QueryError::Unknown(format!("compliance.{method}"))),
        }
    }
}

fn admin_of(l: &mut dyn Ledger) -> Result<Result<Policy, Reason>, ExecError> {
    match l.record(&policy_key())? {
        Some(b) => Ok(Ok(decode::<Policy>(&b).map_err(corrupt("policy"))?)),
        // Compliance never configured: nobody governs it.
        None => Ok(Err(codes::NOT_AUTHORITY)),
    }
}

fn store_policy(l: &mut dyn Ledger, p: &mut Policy, height: u64) -> Result<(), ExecError> {
    p.version = p.version.saturating_add(1);
    p.effective_height = height.saturating_add(1);
    let bytes = encode(&*p);
    l.set_record(&policy_key(), Some(bytes.clone()));
    // Fresh keys: read first (the overlay's rule), then write.
    let vk = policy_version_key(p.version);
    l.record(&vk)?;
    l.set_record(&vk, Some(bytes));
    let gk = gas_key();
    l.record(&gk)?;
    l.set_record(&gk, Some(gas_line(p)));
    Ok(())
}

impl Call for ComplianceCall {
    fn gas(&self) -> u64 {
        match self {
            ComplianceCall::Attest { claim, .. } => {
                GAS_ATTEST + GAS_PER_ENTRY * claim.addresses.len() as u64
            }
            ComplianceCall::UpdateList { add, remove, .. } => {
                GAS_ADMIN + GAS_PER_ENTRY * (add.len() + remove.len()) as u64
            }
            ComplianceCall::SetRules { rules } => GAS_ADMIN + GAS_PER_ENTRY * rules.len() as u64,
            _ => GAS_ADMIN,
        }
    }

    fn touched(&self, _tx: &TxInfo<'_>, out: &mut Vec<[u8; 32]>) {
        // Every call reads the policy (authority, providers); the policy's
        // own writers write it.
        out.push(policy_key());
        match self {
            ComplianceCall::SetRules { .. }
            | ComplianceCall::AddProvider { .. }
            | ComplianceCall::RevokeProvider { .. }
            | ComplianceCall::SetRoles { .. } => {
                out.push(gas_key());
            }
            ComplianceCall::UpdateList { add, remove, .. } => {
                out.extend(add.iter().chain(remove).map(entry_key));
            }
            ComplianceCall::Attest { claim, .. } => {
                out.push(identity_key(&claim.identity));
                out.extend(claim.addresses.iter().map(entry_key));
            }
            ComplianceCall::RevokeAttestation { identity, .. } => {
                out.push(identity_key(identity));
            }
            ComplianceCall::SetEnvelopeKey { provider, .. } => {
                out.push(envelope_key_key(provider));
            }
        }
    }

    fn authorize(&self, tx: &TxInfo<'_>) -> Result<(), Reason> {
        if let ComplianceCall::RevokeAttestation { provider, .. }
        | ComplianceCall::SetEnvelopeKey { provider, .. } = self
        {
            let addr = plume_protocol::tx::address_of_key(provider);
            if !tx.signed_by(&addr.0) {
                return Err(codes::NOT_AUTHORITY);
            }
        }
        Ok(())
    }

    fn apply(&self, tx: &TxInfo<'_>, l: &mut dyn Ledger, _events: &mut Vec<Event>) -> CallResult {
        let mut policy = tri!(admin_of(l));
        let admin_signed = tx.signed_by(&policy.admin);
        match self {
            ComplianceCall::SetRules { rules } => {
                if !admin_signed {
                    return Ok(Err(codes::NOT_AUTHORITY));
                }
                // A window rule keeps its id's counter meaning (kind,
                // window, buckets): a changed window needs a new id, or
                // stale counters would count under the new one.
                let changed_meaning = rules.iter().any(|r| {
                    policy.rules.iter().any(|o| {
                        o.id == r.id
                            && o.rule.counter_signature().is_some()
                            && r.rule.counter_signature().is_some()
                            && o.rule.counter_signature() != r.rule.counter_signature()
                    })
                });
                policy.rules = rules.clone();
                if changed_meaning || policy.validate().is_err() {
                    return Ok(Err(codes::BAD_RULES));
                }
                store_policy(l, &mut policy, tx.height)?;
            }
            ComplianceCall::AddProvider { key, name } => {
                if !admin_signed {
                    return Ok(Err(codes::NOT_AUTHORITY));
                }
                match policy.providers.iter_mut().find(|p| &p.key == key) {
                    // Re-adding a revoked provider reinstates it.
                    Some(p) => {
                        p.revoked_from = None;
                        p.name = name.clone();
                    }
                    None => {
                        if policy.providers.len() >= plume_compliance::model::PROVIDERS_MAX {
                            return Ok(Err(codes::TOO_MANY));
                        }
                        policy.providers.push(plume_compliance::Provider {
                            key: *key,
                            name: name.clone(),
                            revoked_from: None,
                        });
                    }
                }
                store_policy(l, &mut policy, tx.height)?;
            }
            ComplianceCall::RevokeProvider { key, from_height } => {
                if !admin_signed {
                    return Ok(Err(codes::NOT_AUTHORITY));
                }
                let Some(p) = policy.providers.iter_mut().find(|p| &p.key == key) else {
                    return Ok(Err(codes::UNKNOWN_PROVIDER));
                };
                // Never retroactive: at the earliest the next block.
                p.revoked_from = Some((*from_height).max(tx.height.saturating_add(1)));
                store_policy(l, &mut policy, tx.height)?;
            }
            ComplianceCall::SetRoles { admin, list_keeper } => {
                if !admin_signed {
                    return Ok(Err(codes::NOT_AUTHORITY));
                }
                policy.admin = *admin;
                policy.list_keeper = *list_keeper;
                store_policy(l, &mut policy, tx.height)?;
            }
            ComplianceCall::UpdateList { list, add, remove } => {
                if !tx.signed_by(&policy.list_keeper) {
                    return Ok(Err(codes::NOT_AUTHORITY));
                }
                for (a, on) in remove
                    .iter()
                    .map(|a| (a, false))
                    .chain(add.iter().map(|a| (a, true)))
                {
                    let mut e = ledger_entry(l, a)?;
                    e.set(*list, on);
                    set_ledger_entry(l, a, e);
                }
            }
            ComplianceCall::Attest { claim, signature } => {
                if claim.chain_id != tx.chain_id {
                    return Ok(Err(codes::CLAIM_WRONG_CHAIN));
                }
                if !policy
                    .provider(&claim.provider)
                    .is_some_and(|p| p.active_at(tx.height))
                {
                    return Ok(Err(codes::UNKNOWN_PROVIDER));
                }
                if !plume_crypto::zip215::verify(
                    &claim.provider,
                    &claim.signing_hash().0,
                    signature,
                ) {
                    return Ok(Err(codes::CLAIM_BAD_SIGNATURE));
                }
                let ik = identity_key(&claim.identity);
                let mut rec = match l.record(&ik)? {
                    Some(b) => decode::<Identity>(&b).map_err(corrupt("identity"))?,
                    None => Identity::default(),
                };
                if rec
                    .revoked
                    .iter()
                    .any(|(p, h)| p == &claim.provider && claim.issued_height <= *h)
                    || rec.attestations.iter().any(|a| {
                        a.provider == claim.provider && a.issued_height > claim.issued_height
                    })
                {
                    return Ok(Err(codes::CLAIM_STALE));
                }
                for a in &claim.addresses {
                    let mut e = ledger_entry(l, a)?;
                    match e.identity {
                        Some(id) if id != claim.identity => {
                            return Ok(Err(codes::ADDRESS_LINKED));
                        }
                        Some(_) => {}
                        None => {
                            e.identity = Some(claim.identity);
                            set_ledger_entry(l, a, e);
                        }
                    }
                }
                rec.attestations.retain(|a| a.provider != claim.provider);
                if rec.attestations.len() >= plume_compliance::model::ATTESTATIONS_MAX {
                    return Ok(Err(codes::TOO_MANY));
                }
                rec.attestations.push(claim.attestation());
                rec.attestations.sort_by_key(|a| a.provider);
                l.set_record(&ik, Some(encode(&rec)));
            }
            ComplianceCall::RevokeAttestation { identity, provider } => {
                // The provider signed (authorize); it need not be active.
                let ik = identity_key(identity);
                let Some(b) = l.record(&ik)? else {
                    return Ok(Err(codes::KYC_MISSING));
                };
                let mut rec = decode::<Identity>(&b).map_err(corrupt("identity"))?;
                let Some(pos) = rec
                    .attestations
                    .iter()
                    .position(|a| &a.provider == provider)
                else {
                    return Ok(Err(codes::KYC_MISSING));
                };
                let gone = rec.attestations.remove(pos);
                rec.revoked.retain(|(p, _)| p != provider);
                rec.revoked.push((*provider, gone.issued_height));
                rec.revoked.sort();
                l.set_record(&ik, Some(encode(&rec)));
            }
            ComplianceCall::SetEnvelopeKey { provider, key } => {
                // The provider signed (authorize); it must be one in force.
                if !policy
                    .provider(provider)
                    .is_some_and(|p| p.active_at(tx.height))
                {
                    return Ok(Err(codes::UNKNOWN_PROVIDER));
                }
                let k = envelope_key_key(provider);
                l.record(&k)?;
                l.set_record(&k, key.map(|k| k.to_vec()));
            }
        }
        Ok(Ok(()))
    }
}

/// The executor's view for [`plume_compliance::check`]: registry reads
/// from the block-start state, counters through the transaction's
/// overlay.
pub(crate) struct Interceptor<'a, 'l, B: ?Sized> {
    pub(crate) base: &'a B,
    pub(crate) ledger: &'a mut (dyn Ledger + 'l),
    /// Keys derived when the transaction was prepared.
    pub(crate) keys: &'a [super::PartyKeys],
}

impl<B: ?Sized> Interceptor<'_, '_, B> {
    fn keys_of(&self, account: &[u8; 32]) -> Option<&super::PartyKeys> {
        let k = account_key(account);
        self.keys.iter().find(|p| p.account == k)
    }

    fn owner_key(&self, owner: &Owner) -> StateKey {
        match owner {
            Owner::Account(a) => self.keys_of(a).map_or_else(|| counter_key(a), |p| p.counter),
            Owner::Identity(id) => identity_counter_key(id),
        }
    }
}

impl<B: StateRead + ?Sized> Env for Interceptor<'_, '_, B> {
    type Error = ExecError;
    fn entry(&self, account: &[u8; 32]) -> Result<AddressEntry, ExecError> {
        let key = self
            .keys_of(account)
            .map_or_else(|| entry_key(account), |p| p.entry);
        match self.base.get(&key)? {
            Some(b) => AddressEntry::decode(&b).ok_or(ExecError::CorruptState("address entry")),
            None => Ok(AddressEntry::default()),
        }
    }
    fn identity(&self, identity: &[u8; 32]) -> Result<Option<Identity>, ExecError> {
        read_identity(self.base, identity)
    }
    fn counters(&mut self, owner: &Owner) -> Result<Vec<(u16, Counter)>, ExecError> {
        let key = self.owner_key(owner);
        match self.ledger.record(&key)? {
            Some(b) => decode_counters(&b).ok_or(ExecError::CorruptState("compliance counters")),
            None => Ok(Vec::new()),
        }
    }
    fn set_counters(&mut self, owner: &Owner, counters: &[(u16, Counter)]) {
        let key = self.owner_key(owner);
        self.ledger.set_record(&key, Some(encode_counters(counters)));
    }
}
