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
use crate::model::{
    window_index, AddressEntry, Attestation, Counter, Identity, KycStatus, Policy, Rule, Scope,
    TRAVEL_TAG,
};
use plume_crypto::ed25519::Address;
use plume_crypto::{hash_parts, Digest, Domain};
use plume_protocol::{Cause, Event, Reason};
use smallvec::SmallVec;

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
    // The common shape, a debit then an equal credit of one asset (a
    // transfer): one flow, without the matching tables.
    if let [d, c] = events {
        if d.cause != Cause::Fee
            && c.cause != Cause::Fee
            && !d.credit
            && c.credit
            && d.asset == c.asset
            && d.amount == c.amount
            && d.amount > 0
        {
            return vec![Flow {
                from: Some(d.account),
                to: Some(c.account),
                asset: d.asset,
                amount: d.amount,
            }];
        }
    }
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
/// stopped or flagged one (the executor computes it only then).
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
    /// An address's registry entry: identity link and list flags
    /// (block-start state).
    fn entry(&self, account: &[u8; 32]) -> Result<AddressEntry, Self::Error>;
    /// An identity's record (block-start state).
    fn identity(&self, identity: &[u8; 32]) -> Result<Option<Identity>, Self::Error>;
    /// The window counters of a sending account or identity: per rule
    /// id, one entry per window (a rolling window keeps one per live
    /// bucket). Through the transaction's own overlay: one record per
    /// owner, whatever the number of rules.
    fn counters(&mut self, owner: &Owner) -> Result<Vec<(u16, Counter)>, Self::Error>;
    /// Set the counters read before.
    fn set_counters(&mut self, owner: &Owner, counters: &[(u16, Counter)]);
}

/// Whose window counters: a sending account's, or (rules with
/// [`Scope::Identity`]) its identity's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    /// An account.
    Account([u8; 32]),
    /// An identity.
    Identity([u8; 32]),
}

/// What one transaction is checked with.
#[derive(Clone, Copy, Debug)]
pub struct TxContext<'a> {
    /// Height of the block.
    pub height: u64,
    /// The block's time (Unix ms, agreed by the validators: the header's
    /// `time_ms`), for expiry and windows by time.
    pub time_ms: u64,
    /// Transaction id.
    pub tx: &'a [u8; 32],
    /// The transaction's memo (travel-rule commitment).
    pub memo: &'a [u8],
    /// Its signers' addresses. A sender counts under its identity
    /// ([`Scope::Identity`]) only if it signed: the executor puts the
    /// signers' identity counters in the transaction's access set, so
    /// parallel shards stay deterministic.
    pub signers: &'a [Address],
}

/// The engine's answer for one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The rule that stopped it and its code; `None`: it passes.
    pub failed: Option<(u16, Reason)>,
    /// Rules that flagged it (alerts) without stopping it.
    pub flagged: Vec<u16>,
}

/// A party's standing at the height.
type Kyc = Result<(u8, [u8; 2]), Reason>;
/// An owner's counters as read, and whether a rule changed them.
type SenderCounters = (Owner, Vec<(u16, Counter)>, bool);
/// Per counting unit: (owner, an account of it, total, count) of one asset.
type Units = SmallVec<[(Owner, [u8; 32], u128, u32); 2]>;

/// Where a rule's counting units are kept in the memo.
#[derive(Clone, Copy)]
enum UnitsAt {
    /// `sent_all[i]`: one unit per sending account.
    Sent(usize),
    /// `units_all[i]`: grouped by identity.
    Units(usize),
}
/// Per sender: (sender, total, count) of one asset. (The memo's lists
/// live on the stack for the common shapes: a check allocates nothing of
/// its own for a transfer.)
type Sent = SmallVec<[([u8; 32], u128, u32); 1]>;

fn standing(policy: &Policy, id: Option<&Identity>, height: u64, time_ms: u64) -> Kyc {
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
        if a.expired_at(height, time_ms) {
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

/// Per-transaction memo of every state read: each party's standing and
/// deny-list entry, each flow's exemption and each sender's counters are
/// read at most once, however many rules ask.
struct Memo<'p, 'e, E> {
    policy: &'p Policy,
    env: &'e mut E,
    height: u64,
    time_ms: u64,
    flows: &'p [Flow],
    signers: &'p [Address],
    parties: SmallVec<[[u8; 32]; 2]>,
    kyc: SmallVec<[Option<Kyc>; 2]>,
    entries: SmallVec<[Option<AddressEntry>; 2]>,
    exempt: Option<SmallVec<[bool; 2]>>,
    /// Per asset, [`Memo::sent`] over all amounts (several rules ask).
    sent_all: SmallVec<[([u8; 32], Sent); 1]>,
    /// Per asset and scope, [`Memo::units`].
    /// (A plain list: empty, unallocated, unless a rule counts per
    /// identity.)
    units_all: Vec<([u8; 32], Scope, Units)>,
    /// (sender, counters, changed).
    counters: SmallVec<[SenderCounters; 1]>,
}

impl<E: Env> Memo<'_, '_, E> {
    fn party(&self, a: &[u8; 32]) -> usize {
        self.parties
            .iter()
            .position(|p| p == a)
            .expect("every flow side is a party")
    }

    fn entry(&mut self, i: usize) -> Result<AddressEntry, E::Error> {
        if let Some(e) = self.entries[i] {
            return Ok(e);
        }
        let e = self.env.entry(&self.parties[i])?;
        self.entries[i] = Some(e);
        Ok(e)
    }

    fn kyc(&mut self, i: usize) -> Result<Kyc, E::Error> {
        if let Some(k) = &self.kyc[i] {
            return Ok(*k);
        }
        let id = match self.entry(i)?.identity {
            Some(id) => self.env.identity(&id)?,
            None => None,
        };
        let k = standing(self.policy, id.as_ref(), self.height, self.time_ms);
        self.kyc[i] = Some(k);
        Ok(k)
    }

    fn tier(&mut self, a: &[u8; 32]) -> Result<u8, E::Error> {
        let i = self.party(a);
        Ok(self.kyc(i)?.map_or(255, |k| k.0))
    }

    fn denied(&mut self, i: usize) -> Result<bool, E::Error> {
        Ok(self.entry(i)?.deny)
    }

    fn exempt(&mut self) -> Result<&[bool], E::Error> {
        if self.exempt.is_none() {
            let mut v = SmallVec::with_capacity(self.flows.len());
            for f in self.flows {
                v.push(match f.to {
                    Some(to) => {
                        let i = self.party(&to);
                        self.entry(i)?.exempt
                    }
                    None => false,
                });
            }
            self.exempt = Some(v);
        }
        Ok(self.exempt.as_deref().expect("set above"))
    }

    /// Per sender: (sender, total, count) of `asset` in non-exempt flows,
    /// optionally only flows in `band` (inclusive low, exclusive high).
    fn sent(&mut self, asset: &[u8; 32], band: Option<(u128, u128)>) -> Result<Sent, E::Error> {
        let flows = self.flows;
        let exempt = self.exempt()?;
        let mut v: Sent = SmallVec::new();
        for (f, ex) in flows.iter().zip(exempt) {
            let (Some(from), false) = (f.from, *ex) else {
                continue;
            };
            if &f.asset != asset || band.is_some_and(|(lo, hi)| f.amount < lo || f.amount >= hi) {
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
        Ok(v)
    }

    /// Where [`Memo::sent`] over all amounts of `asset` is kept in
    /// `sent_all` (computed once per asset, however many rules ask).
    fn sent_index(&mut self, asset: &[u8; 32]) -> Result<usize, E::Error> {
        if let Some(i) = self.sent_all.iter().position(|s| &s.0 == asset) {
            return Ok(i);
        }
        let v = self.sent(asset, None)?;
        self.sent_all.push((*asset, v));
        Ok(self.sent_all.len() - 1)
    }

    /// The `j`-th sender's (sender, total, count) at `sent_all[i]`.
    fn sent_at(&self, i: usize, j: usize) -> Option<([u8; 32], u128, u32)> {
        self.sent_all[i].1.get(j).copied()
    }

    fn counter_slot(&mut self, owner: &Owner) -> Result<usize, E::Error> {
        Ok(match self.counters.iter().position(|c| &c.0 == owner) {
            Some(i) => i,
            None => {
                let c = self.env.counters(owner)?;
                self.counters.push((*owner, c, false));
                self.counters.len() - 1
            }
        })
    }

    /// The counter of `rule` for `owner` in `window`, zero when the window
    /// moved on.
    fn counter(&mut self, owner: &Owner, rule: u16, window: u64) -> Result<Counter, E::Error> {
        let slot = self.counter_slot(owner)?;
        let c = self.counters[slot]
            .1
            .iter()
            .find(|c| c.0 == rule && c.1.window == window)
            .map(|c| c.1);
        Ok(c.unwrap_or(Counter {
            window,
            count: 0,
            amount: 0,
        }))
    }

    /// (count, amount) of `rule` for `owner` in the windows
    /// `from..window` (a rolling window's earlier live buckets).
    fn earlier(
        &mut self,
        owner: &Owner,
        rule: u16,
        from: u64,
        window: u64,
    ) -> Result<(u32, u128), E::Error> {
        let slot = self.counter_slot(owner)?;
        Ok(self.counters[slot]
            .1
            .iter()
            .filter(|c| c.0 == rule && (from..window).contains(&c.1.window))
            .fold((0u32, 0u128), |(n, a), c| {
                (n.saturating_add(c.1.count), a.saturating_add(c.1.amount))
            }))
    }

    /// Set `rule`'s counter for `c.window`, dropping its entries for
    /// windows before `keep_from` (and any not in `keep_from..=c.window`:
    /// a window of another kind). Fixed windows keep only the current one.
    fn set_counter(&mut self, owner: &Owner, rule: u16, c: Counter, keep_from: u64) {
        let slot = self
            .counters
            .iter_mut()
            .find(|s| &s.0 == owner)
            .expect("read before written");
        slot.2 = true;
        // A fixed window with its one entry: replace it in place.
        if keep_from == c.window {
            let mut of_rule = slot.1.iter().enumerate().filter(|(_, e)| e.0 == rule);
            if let (Some((i, _)), None) = (of_rule.next(), of_rule.next()) {
                slot.1[i].1 = c;
                return;
            }
        }
        slot.1
            .retain(|e| e.0 != rule || (keep_from..c.window).contains(&e.1.window));
        slot.1.push((rule, c));
    }

    /// The unit a sender counts under for `scope`: its identity if the
    /// scope asks for it, it signed and it has one (block-start
    /// registry); else the account itself.
    fn owner(&mut self, sender: &[u8; 32], scope: Scope) -> Result<Owner, E::Error> {
        if scope == Scope::Identity && signed(self.signers, sender) {
            let i = self.party(sender);
            if let Some(id) = self.entry(i)?.identity {
                return Ok(Owner::Identity(id));
            }
        }
        Ok(Owner::Account(*sender))
    }

    /// Where [`Memo::sent`] of `asset` grouped by the unit each sender
    /// counts under for `scope` is kept in `units_all` (computed once per
    /// asset and scope).
    fn units_index(&mut self, asset: &[u8; 32], scope: Scope) -> Result<usize, E::Error> {
        if let Some(i) = self
            .units_all
            .iter()
            .position(|u| u.1 == scope && &u.0 == asset)
        {
            return Ok(i);
        }
        let v = self.units(asset, scope)?;
        self.units_all.push((*asset, scope, v));
        Ok(self.units_all.len() - 1)
    }

    /// Where the units of `asset` for `scope` are: per account, the
    /// senders' sums themselves; per identity, their grouping.
    fn units_at(&mut self, asset: &[u8; 32], scope: Scope) -> Result<UnitsAt, E::Error> {
        Ok(match scope {
            Scope::Account => UnitsAt::Sent(self.sent_index(asset)?),
            Scope::Identity => UnitsAt::Units(self.units_index(asset, scope)?),
        })
    }

    /// The `j`-th unit: (owner, an account of it, total, count).
    fn unit_at(&self, at: UnitsAt, j: usize) -> Option<(Owner, [u8; 32], u128, u32)> {
        match at {
            UnitsAt::Sent(i) => self
                .sent_at(i, j)
                .map(|(s, total, k)| (Owner::Account(s), s, total, k)),
            UnitsAt::Units(i) => self.units_all[i].2.get(j).copied(),
        }
    }

    /// [`Memo::sent`] of `asset` grouped by the unit each sender counts
    /// under.
    fn units(&mut self, asset: &[u8; 32], scope: Scope) -> Result<Units, E::Error> {
        let at = self.sent_index(asset)?;
        let mut out: Units = SmallVec::new();
        let mut j = 0;
        while let Some((s, total, k)) = self.sent_at(at, j) {
            j += 1;
            let o = self.owner(&s, scope)?;
            match out.iter_mut().find(|u| u.0 == o) {
                Some(u) => {
                    u.2 = u.2.saturating_add(total);
                    u.3 = u.3.saturating_add(k);
                }
                None => out.push((o, s, total, k)),
            }
        }
        Ok(out)
    }

    /// Write the changed counters back, keeping only rules in force
    /// (bounded by RULES_MAX, and BUCKETS_MAX entries a rule), sorted by
    /// rule id and window.
    fn flush(&mut self) {
        for (owner, cs, changed) in &mut self.counters {
            if !*changed {
                continue;
            }
            cs.retain(|c| self.policy.rules.iter().any(|r| r.id == c.0));
            cs.sort_by_key(|c| (c.0, c.1.window));
            self.env.set_counters(owner, cs);
        }
    }
}

/// Check one transaction's flows against `policy` at `ctx.height` and
/// block time `ctx.time_ms`.
pub fn check<E: Env>(
    policy: &Policy,
    env: &mut E,
    ctx: &TxContext<'_>,
    flows: &[Flow],
) -> Result<Outcome, E::Error> {
    let mut out = Outcome {
        failed: None,
        flagged: Vec::new(),
    };
    if !policy.active() || flows.is_empty() {
        return Ok(out);
    }
    let mut parties: SmallVec<[[u8; 32]; 2]> = SmallVec::with_capacity(2 * flows.len());
    for f in flows {
        for a in [f.from, f.to].into_iter().flatten() {
            if !parties.contains(&a) {
                parties.push(a);
            }
        }
    }
    let n = parties.len();
    let mut m = Memo {
        policy,
        env,
        height: ctx.height,
        time_ms: ctx.time_ms,
        flows,
        signers: ctx.signers,
        parties,
        kyc: smallvec::smallvec![None; n],
        entries: smallvec::smallvec![None; n],
        exempt: None,
        sent_all: SmallVec::new(),
        units_all: Vec::new(),
        counters: SmallVec::new(),
    };
    for entry in &policy.rules {
        let id = entry.id;
        let hit: Option<Reason> = match &entry.rule {
            Rule::Sanctions => {
                let mut hit = None;
                for i in 0..n {
                    if m.denied(i)? {
                        hit = Some(codes::SANCTIONED);
                        break;
                    }
                }
                hit
            }
            Rule::Kyc { receivers } => {
                let mut hit = None;
                'flows: for f in flows {
                    let sides = [f.from, if *receivers { f.to } else { None }];
                    for a in sides.into_iter().flatten() {
                        let i = m.party(&a);
                        if let Err(r) = m.kyc(i)? {
                            hit = Some(r);
                            break 'flows;
                        }
                    }
                }
                hit
            }
            Rule::MaxRiskTier { max } => {
                let mut hit = None;
                for i in 0..n {
                    if matches!(m.kyc(i)?, Ok((t, _)) if t > *max) {
                        hit = Some(codes::RISK_TIER);
                        break;
                    }
                }
                hit
            }
            Rule::JurisdictionBlock { pairs } => {
                let mut hit = None;
                for f in flows {
                    let (Some(a), Some(b)) = (f.from, f.to) else {
                        continue;
                    };
                    let (ia, ib) = (m.party(&a), m.party(&b));
                    let (Ok((_, ja)), Ok((_, jb))) = (m.kyc(ia)?, m.kyc(ib)?) else {
                        continue;
                    };
                    if pairs
                        .iter()
                        .any(|p| (p[0] == ja && p[1] == jb) || (p[0] == jb && p[1] == ja))
                    {
                        hit = Some(codes::JURISDICTION_BLOCKED);
                        break;
                    }
                }
                hit
            }
            Rule::SingleLimit {
                asset,
                max,
                min_tier,
                scope,
            } => {
                let mut hit = None;
                let at = m.units_at(asset, *scope)?;
                let mut j = 0;
                while let Some((_, s, total, _)) = m.unit_at(at, j) {
                    j += 1;
                    if total > *max && (*min_tier == 0 || m.tier(&s)? >= *min_tier) {
                        hit = Some(codes::SINGLE_LIMIT);
                        break;
                    }
                }
                hit
            }
            Rule::Velocity {
                asset,
                window_blocks,
                window_ms,
                buckets,
                scope,
                max_amount,
                max_count,
                min_tier,
            } => {
                // A rolling window counts in buckets of window / buckets:
                // the current one and the buckets - 1 before it.
                let b = u64::from((*buckets).max(1));
                let window =
                    window_index(*window_blocks / b, *window_ms / b, ctx.height, ctx.time_ms);
                // First live bucket (same kind: the time bit is kept).
                let from = window
                    .saturating_sub(b - 1)
                    .max(window & crate::model::TIME_WINDOW);
                let mut hit = None;
                let at = m.units_at(asset, *scope)?;
                let mut j = 0;
                while let Some((o, s, total, k)) = m.unit_at(at, j) {
                    j += 1;
                    if *min_tier > 0 && m.tier(&s)? < *min_tier {
                        continue;
                    }
                    let c = m.counter(&o, id, window)?;
                    let (n0, a0) = if b > 1 {
                        m.earlier(&o, id, from, window)?
                    } else {
                        (0, 0)
                    };
                    let amount = c.amount.saturating_add(total);
                    let count = c.count.saturating_add(k);
                    if amount.saturating_add(a0) > *max_amount {
                        hit = Some(codes::VELOCITY_AMOUNT);
                        break;
                    }
                    if *max_count > 0 && count.saturating_add(n0) > *max_count {
                        hit = Some(codes::VELOCITY_COUNT);
                        break;
                    }
                    m.set_counter(
                        &o,
                        id,
                        Counter {
                            window,
                            count,
                            amount,
                        },
                        from,
                    );
                }
                hit
            }
            Rule::TravelRule { asset, threshold } => {
                let exempt = m.exempt()?;
                let needs = flows
                    .iter()
                    .zip(exempt)
                    // A transfer between two parties: issuance, burns and
                    // the protocol's escrows carry no originator/beneficiary pair.
                    .any(|(f, ex)| {
                        !ex && f.from.is_some()
                            && f.to.is_some()
                            && &f.asset == asset
                            && f.amount >= *threshold
                    });
                (needs && !travel_commitment_ok(ctx.memo)).then_some(codes::TRAVEL_RULE)
            }
            Rule::Structuring {
                asset,
                threshold,
                margin_bps,
                count,
                window_blocks,
                window_ms,
                block,
            } => {
                let floor = threshold - threshold * u128::from(*margin_bps) / 10_000;
                let window = window_index(*window_blocks, *window_ms, ctx.height, ctx.time_ms);
                let mut hit = None;
                for (s, _, k) in m.sent(asset, Some((floor, *threshold)))? {
                    let o = Owner::Account(s);
                    let mut c = m.counter(&o, id, window)?;
                    c.count = c.count.saturating_add(k);
                    if c.count >= *count {
                        if *block {
                            hit = Some(codes::STRUCTURING);
                            break;
                        }
                        if !out.flagged.contains(&id) {
                            out.flagged.push(id);
                        }
                    }
                    m.set_counter(&o, id, c, window);
                }
                hit
            }
        };
        if let Some(code) = hit {
            // Nothing written: the executor undoes the call anyway.
            out.failed = Some((id, code));
            out.flagged.clear();
            return Ok(out);
        }
    }
    m.flush();
    Ok(out)
}

/// Whether `a` is one of the signers (compared as account keys: the top
/// bit of the first byte cleared, as the ledger keys accounts).
fn signed(signers: &[Address], a: &[u8; 32]) -> bool {
    signers
        .iter()
        .any(|s| s.0[0] & 0x7f == a[0] & 0x7f && s.0[1..] == a[1..])
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
