//! Evaluating the rules against one transaction's flows.
//!
//! The executor applies a call, derives its flows from the balance events
//! the call emitted ([`flows_of`]: so every module that moves value is
//! checked, including modules added later), and calls [`check`]. A
//! failure undoes the call (the fee stays charged); counters written by a
//! passing check are part of the transaction's writes.
//!
//! Reads of the registry (identities, lists, the policy) come from the
//! state at the start of the block, so an update made in block H applies
//! from H+1 and the verdict never depends on the order of transactions in
//! other shards. Counters are per sender account and rule: the sender's
//! account is in the transaction's access set, so two transactions that
//! update one counter always run in one shard, in block order.

use crate::codes;
use crate::model::{Attestation, Counter, Identity, KycStatus, ListKind, Policy, Rule, TRAVEL_TAG};
use plume_crypto::{hash_parts, Digest, Domain};
use plume_protocol::{Cause, Event, Reason};

/// Value moving from one account to another (`None`: issued or destroyed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Debited account (None: minted).
    pub from: Option<[u8; 32]>,
    /// Credited account (None: burned).
    pub to: Option<[u8; 32]>,
    /// Asset.
    pub asset: [u8; 32],
    /// Amount.
    pub amount: u128,
}

/// The flows of a call's balance events: per asset, debits are matched to
/// the credits that follow them in order (first in, first out), so a
/// transfer is one flow, a settlement one per leg and a batch payment one
/// per payee. A credit with no debit left is issuance; a debit with no
/// credit is a burn. Fee events are not flows.
pub fn flows_of(events: &[Event]) -> Vec<Flow> {
    // Per asset: debits and credits not matched yet (account, amount left).
    type Open = Vec<([u8; 32], u128)>;
    let mut pending: Vec<([u8; 32], Open, Open)> = Vec::new();
    let mut out = Vec::new();
    for e in events {
        if e.cause == Cause::Fee || e.amount == 0 {
            continue;
        }
        let slot = match pending.iter().position(|p| p.0 == e.asset) {
            Some(i) => i,
            None => {
                pending.push((e.asset, Vec::new(), Vec::new()));
                pending.len() - 1
            }
        };
        let (_, debits, credits) = &mut pending[slot];
        let (mine, theirs) = if e.credit {
            (credits, debits)
        } else {
            (debits, credits)
        };
        let mut left = e.amount;
        while left > 0 && !theirs.is_empty() {
            let (acct, amt) = &mut theirs[0];
            let take = left.min(*amt);
            let (from, to) = if e.credit {
                (*acct, e.account)
            } else {
                (e.account, *acct)
            };
            out.push(Flow {
                from: Some(from),
                to: Some(to),
                asset: e.asset,
                amount: take,
            });
            *amt -= take;
            left -= take;
            if *amt == 0 {
                theirs.remove(0);
            }
        }
        if left > 0 {
            mine.push((e.account, left));
        }
    }
    for (asset, debits, credits) in pending {
        for (a, amount) in debits {
            out.push(Flow {
                from: Some(a),
                to: None,
                asset,
                amount,
            });
        }
        for (a, amount) in credits {
            out.push(Flow {
                from: None,
                to: Some(a),
                asset,
                amount,
            });
        }
    }
    out
}

/// The hash of what the rules evaluated for one transaction: its id, the
/// policy version and its flows. Recomputable from a successful receipt's
/// events (the audit report does), stored in the verdict record for a
/// stopped one.
pub fn input_hash(tx: &[u8; 32], policy_version: u32, flows: &[Flow]) -> Digest {
    let mut parts: Vec<Vec<u8>> = Vec::with_capacity(flows.len());
    for f in flows {
        let mut b = Vec::with_capacity(2 + 64 + 32 + 16);
        for side in [f.from, f.to] {
            match side {
                Some(a) => {
                    b.push(1);
                    b.extend_from_slice(&a);
                }
                None => b.push(0),
            }
        }
        b.extend_from_slice(&f.asset);
        b.extend_from_slice(&f.amount.to_le_bytes());
        parts.push(b);
    }
    let version = policy_version.to_le_bytes();
    let mut all: Vec<&[u8]> = vec![b"input/v1", tx, &version];
    all.extend(parts.iter().map(Vec::as_slice));
    hash_parts(Domain::Compliance, &all)
}

/// What the engine reads and writes besides the policy.
pub trait Env {
    /// The state's error.
    type Error;
    /// The identity an account belongs to, with its record (block-start
    /// state).
    fn identity(&self, account: &[u8; 32]) -> Result<Option<Identity>, Self::Error>;
    /// Whether an account is on a list (block-start state).
    fn listed(&self, list: ListKind, account: &[u8; 32]) -> Result<bool, Self::Error>;
    /// The sender's counter for a rule (the transaction's own overlay).
    fn counter(&mut self, account: &[u8; 32], rule_id: u16) -> Result<Counter, Self::Error>;
    /// Set the counter read before.
    fn set_counter(&mut self, account: &[u8; 32], rule_id: u16, c: Counter);
}

/// What one transaction is checked with.
#[derive(Clone, Copy, Debug)]
pub struct TxContext<'a> {
    /// Height of the block.
    pub height: u64,
    /// Transaction id.
    pub tx: &'a [u8; 32],
    /// The transaction's memo (travel-rule commitment).
    pub memo: &'a [u8],
}

/// The engine's answer for one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The rule that stopped it and its code; `None`: it passes.
    pub failed: Option<(u16, Reason)>,
    /// Rules that flagged it (alerts) without stopping it.
    pub flagged: Vec<u16>,
    /// [`input_hash`] of the check.
    pub input_hash: Digest,
}

/// A party's standing at the height, derived once per check.
#[derive(Clone, Debug)]
struct Standing {
    account: [u8; 32],
    /// The valid attestations' worst tier and a jurisdiction, or why none
    /// is valid.
    kyc: Result<(u8, [u8; 2]), Reason>,
}

fn standing(policy: &Policy, id: Option<&Identity>, height: u64) -> Result<(u8, [u8; 2]), Reason> {
    let Some(id) = id else {
        return Err(codes::KYC_MISSING);
    };
    // Why the best attestation fails, in order of how close it came.
    let mut why = codes::KYC_MISSING;
    let mut best: Option<&Attestation> = None;
    for a in &id.attestations {
        let Some(p) = policy.provider(&a.provider) else {
            continue;
        };
        if !p.active_at(height) {
            why = codes::KYC_PROVIDER_REVOKED;
            continue;
        }
        if height < a.issued_height {
            continue;
        }
        if height >= a.expiry_height {
            why = codes::KYC_EXPIRED;
            continue;
        }
        if a.status != KycStatus::Verified {
            why = codes::KYC_NOT_VERIFIED;
            continue;
        }
        // Worst tier wins; ties keep the first (attestations are stored
        // sorted by provider key, so the choice is deterministic).
        if best.is_none_or(|b| a.risk_tier > b.risk_tier) {
            best = Some(a);
        }
    }
    match best {
        Some(a) => Ok((a.risk_tier, a.jurisdiction)),
        None => Err(why),
    }
}

/// Check one transaction's flows against `policy` at `ctx.height`.
pub fn check<E: Env>(
    policy: &Policy,
    env: &mut E,
    ctx: &TxContext<'_>,
    flows: &[Flow],
) -> Result<Outcome, E::Error> {
    let input_hash = input_hash(ctx.tx, policy.version, flows);
    let mut out = Outcome {
        failed: None,
        flagged: Vec::new(),
        input_hash,
    };
    if !policy.active() || flows.is_empty() {
        return Ok(out);
    }
    // Parties, each looked up once.
    let mut parties: Vec<Standing> = Vec::new();
    for f in flows {
        for a in [f.from, f.to].into_iter().flatten() {
            if parties.iter().all(|p| p.account != a) {
                let id = env.identity(&a)?;
                parties.push(Standing {
                    account: a,
                    kyc: standing(policy, id.as_ref(), ctx.height),
                });
            }
        }
    }
    let party = |a: &[u8; 32]| {
        parties
            .iter()
            .find(|p| &p.account == a)
            .expect("every flow side is a party")
    };
    let tier_of = |a: &[u8; 32]| party(a).kyc.as_ref().map_or(255, |k| k.0);
    // Flows to exempt counterparties skip the amount rules.
    let mut exempt = Vec::with_capacity(flows.len());
    for f in flows {
        exempt.push(match f.to {
            Some(to) => env.listed(ListKind::Exempt, &to)?,
            None => false,
        });
    }
    // Per sender: total of `asset` in non-exempt flows.
    let sent = |asset: &[u8; 32]| -> Vec<([u8; 32], u128, u32)> {
        let mut v: Vec<([u8; 32], u128, u32)> = Vec::new();
        for (f, ex) in flows.iter().zip(&exempt) {
            let (Some(from), false) = (f.from, *ex) else {
                continue;
            };
            if &f.asset != asset {
                continue;
            }
            match v.iter_mut().find(|s| s.0 == from) {
                Some(s) => {
                    s.1 = s.1.saturating_add(f.amount);
                    s.2 += 1;
                }
                None => v.push((from, f.amount, 1)),
            }
        }
        v
    };
    for entry in &policy.rules {
        let id = entry.id;
        let fail = |r: Reason| Some((id, r));
        let verdict: Option<(u16, Reason)> = match &entry.rule {
            Rule::Sanctions => {
                let mut hit = None;
                for p in &parties {
                    if env.listed(ListKind::Deny, &p.account)? {
                        hit = fail(codes::SANCTIONED);
                        break;
                    }
                }
                hit
            }
            Rule::Kyc { receivers } => {
                let mut hit = None;
                for f in flows {
                    let sides = [f.from, if *receivers { f.to } else { None }];
                    for a in sides.into_iter().flatten() {
                        if let Err(r) = &party(&a).kyc {
                            hit = fail(*r);
                            break;
                        }
                    }
                    if hit.is_some() {
                        break;
                    }
                }
                hit
            }
            Rule::MaxRiskTier { max } => parties
                .iter()
                .find(|p| matches!(p.kyc, Ok((t, _)) if t > *max))
                .and_then(|_| fail(codes::RISK_TIER)),
            Rule::JurisdictionBlock { pairs } => {
                let blocked = flows.iter().any(|f| {
                    let (Some(a), Some(b)) = (f.from, f.to) else {
                        return false;
                    };
                    let (Ok((_, ja)), Ok((_, jb))) = (&party(&a).kyc, &party(&b).kyc) else {
                        return false;
                    };
                    pairs
                        .iter()
                        .any(|p| (p[0] == *ja && p[1] == *jb) || (p[0] == *jb && p[1] == *ja))
                });
                blocked.then_some((id, codes::JURISDICTION_BLOCKED))
            }
            Rule::SingleLimit {
                asset,
                max,
                min_tier,
            } => sent(asset)
                .iter()
                .any(|(s, total, _)| tier_of(s) >= *min_tier && total > max)
                .then_some((id, codes::SINGLE_LIMIT)),
            Rule::Velocity {
                asset,
                window_blocks,
                max_amount,
                max_count,
                min_tier,
            } => {
                let window = ctx.height / window_blocks;
                let mut hit = None;
                for (s, total, n) in sent(asset) {
                    if tier_of(&s) < *min_tier {
                        continue;
                    }
                    let mut c = env.counter(&s, id)?;
                    if c.window != window {
                        c = Counter {
                            window,
                            count: 0,
                            amount: 0,
                        };
                    }
                    let amount = c.amount.saturating_add(total);
                    let count = c.count.saturating_add(n);
                    if amount > *max_amount {
                        hit = fail(codes::VELOCITY_AMOUNT);
                        break;
                    }
                    if *max_count > 0 && count > *max_count {
                        hit = fail(codes::VELOCITY_COUNT);
                        break;
                    }
                    env.set_counter(
                        &s,
                        id,
                        Counter {
                            window,
                            count,
                            amount,
                        },
                    );
                }
                hit
            }
            Rule::TravelRule { asset, threshold } => {
                let needs = flows
                    .iter()
                    .zip(&exempt)
                    .any(|(f, ex)| !ex && &f.asset == asset && f.amount >= *threshold);
                (needs && !travel_commitment_ok(ctx.memo)).then_some((id, codes::TRAVEL_RULE))
            }
            Rule::Structuring {
                asset,
                threshold,
                margin_bps,
                count,
                window_blocks,
                block,
            } => {
                let floor = threshold - threshold * u128::from(*margin_bps) / 10_000;
                let window = ctx.height / window_blocks;
                let mut hit = None;
                let mut senders: Vec<([u8; 32], u32)> = Vec::new();
                for (f, ex) in flows.iter().zip(&exempt) {
                    let (Some(from), false) = (f.from, *ex) else {
                        continue;
                    };
                    if &f.asset == asset && f.amount >= floor && f.amount < *threshold {
                        match senders.iter_mut().find(|s| s.0 == from) {
                            Some(s) => s.1 += 1,
                            None => senders.push((from, 1)),
                        }
                    }
                }
                for (s, n) in senders {
                    let mut c = env.counter(&s, id)?;
                    if c.window != window {
                        c = Counter {
                            window,
                            count: 0,
                            amount: 0,
                        };
                    }
                    c.count = c.count.saturating_add(n);
                    if c.count >= *count {
                        if *block {
                            hit = fail(codes::STRUCTURING);
                            break;
                        }
                        if !out.flagged.contains(&id) {
                            out.flagged.push(id);
                        }
                    }
                    env.set_counter(&s, id, c);
                }
                hit
            }
        };
        if verdict.is_some() {
            out.failed = verdict;
            out.flagged.clear();
            return Ok(out);
        }
    }
    Ok(out)
}

/// Whether a memo carries a well-formed travel-rule commitment: the tag,
/// 32 bytes of commitment, and, if envelope bytes follow, their hash
/// equals the commitment.
pub fn travel_commitment_ok(memo: &[u8]) -> bool {
    let Some(rest) = memo.strip_prefix(TRAVEL_TAG) else {
        return false;
    };
    if rest.len() < 32 {
        return false;
    }
    let (c, envelope) = rest.split_at(32);
    if c == [0u8; 32] {
        return false;
    }
    envelope.is_empty() || envelope_commitment(envelope).0 == c
}

/// The commitment to an envelope's bytes.
pub fn envelope_commitment(envelope: &[u8]) -> Digest {
    hash_parts(Domain::Compliance, &[b"envelope/v1", envelope])
}

/// A memo carrying `envelope` and its commitment (what a client sends).
pub fn travel_memo(envelope: &[u8]) -> Vec<u8> {
    let mut m = TRAVEL_TAG.to_vec();
    m.extend_from_slice(&envelope_commitment(envelope).0);
    m.extend_from_slice(envelope);
    m
}
