//! Applying a block: prepared transactions in, sorted state writes,
//! receipts, the next base fee and supply accounting out.
//!
//! Steps:
//! 1. Pre-pass, in block order, no state: stateless limits, chain id,
//!    expiry, fee cap against the base fee, and the block gas budget
//!    (intrinsic gas is known without state). Failures here are
//!    `Rejected` receipts.
//! 2. The survivors are planned into conflict-free shards ([`schedule`]) and
//!    each shard runs in block order through its own overlay of the state:
//!    sequence check, fee charge, payload (undone entirely on failure).
//! 3. Shard overlays (disjoint by construction) are merged; the fees'
//!    treasury, fee-pool and tip shares are credited (deferred to the end of
//!    the block so fee recipients are never a conflict); the ledger metadata
//!    gets the new height, base fee and burned total; PLUME and per-asset
//!    conservation are asserted; the writes are sorted.
//!
//! [`apply_block`] runs the shards one after another on the calling thread;
//! [`apply_block_sharded`] runs them on scoped threads. Both give the same
//! output for any shard count (property-tested).

use crate::fees::{self, FeeSplit};
use crate::modules::compliance as cmod;
use crate::modules::{CallRef, Registry, TxInfo};
use crate::schedule;
use crate::state::{self, meta_key, Overlay};
use crate::{fee_pool_address, ExecError, Params};
use plume_compliance::{BlockVerdicts, Policy, VerdictEntry};
use plume_crypto::ed25519::Address;
use plume_crypto::Digest;
use plume_protocol::tx::{PreparedTx, NATIVE_ASSET};
use plume_protocol::{Cause, Event, Reason, Receipt, Status};
use plume_storage::{AuthenticatedState, StateWrite};

/// What execution needs to know about the block besides its transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockContext {
    /// Height (the state's height + 1).
    pub height: u64,
    /// Proposer's account: receives the tips.
    pub proposer: Address,
    /// Block time (ms since the Unix epoch) from the block header, agreed
    /// by the validators (`plume_protocol::consensus::Block::time_ms`).
    pub time_ms: u64,
}

/// Fee totals of a block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeeTotals {
    /// Paid by payers.
    pub paid: u128,
    /// Burned.
    pub burned: u128,
    /// Credited to the treasury.
    pub treasury: u128,
    /// Credited to the fee pool.
    pub pool: u128,
    /// Credited to the proposer.
    pub tips: u128,
}

impl FeeTotals {
    fn add(&mut self, s: &FeeSplit) {
        self.paid += s.paid;
        self.burned += s.burned;
        self.treasury += s.treasury;
        self.pool += s.pool;
        self.tips += s.tip;
    }

    fn merge(&mut self, o: &FeeTotals) {
        self.paid += o.paid;
        self.burned += o.burned;
        self.treasury += o.treasury;
        self.pool += o.pool;
        self.tips += o.tips;
    }
}

/// The result of a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockOutput {
    /// State changes, sorted by key, each key once.
    pub writes: Vec<StateWrite>,
    /// One receipt per transaction, in block order.
    pub receipts: Vec<Receipt>,
    /// Balance changes of the block itself (fee shares credited at the end).
    pub block_events: Vec<Event>,
    /// Gas charged in the block.
    pub gas_used: u64,
    /// Base fee per gas this block charged.
    pub base_fee_per_gas: u64,
    /// Base fee per gas of the next block.
    pub next_base_fee_per_gas: u64,
    /// Fee totals.
    pub fees: FeeTotals,
    /// Ledger metadata after the block (supply accounting included).
    pub meta: state::LedgerMeta,
    /// What the compliance engine did in the block.
    pub compliance: ComplianceTotals,
}

/// Compliance counts of a block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ComplianceTotals {
    /// Value-moving transactions checked against the rules.
    pub checked: u32,
    /// Stopped by a rule (Failed with a 200s code).
    pub stopped: u32,
    /// Flagged (an alert) without being stopped.
    pub flagged: u32,
}

/// Apply the writes of `out` to `state`; returns the new root.
pub fn commit<S: AuthenticatedState>(
    state: &mut S,
    out: &BlockOutput,
) -> Result<Digest, ExecError> {
    state.apply(&out.writes).map_err(ExecError::storage)
}

/// Apply a block on the calling thread (no threads, no clock, no I/O).
/// `registry` holds the ledger modules transactions may call.
pub fn apply_block<S: AuthenticatedState + ?Sized>(
    state: &S,
    params: &Params,
    registry: &Registry,
    ctx: &BlockContext,
    txs: &[PreparedTx],
) -> Result<BlockOutput, ExecError> {
    let params = &crate::modules::governance::effective_params(state, params, ctx.height)?;
    let mut plan = prepare(state, params, registry, ctx, txs, 1)?;
    let lists = std::mem::take(&mut plan.lists);
    let results = lists
        .iter()
        .map(|l| run_shard(state, params, ctx, txs, &plan, l))
        .collect();
    finish(state, params, registry, ctx, plan, results)
}

/// Apply a block with its conflict-free shards run on up to `shards`
/// scoped threads. Equal to [`apply_block`].
pub fn apply_block_sharded<S: AuthenticatedState + Sync + ?Sized>(
    state: &S,
    params: &Params,
    registry: &Registry,
    ctx: &BlockContext,
    txs: &[PreparedTx],
    shards: usize,
) -> Result<BlockOutput, ExecError> {
    apply_block_sharded_with(state, params, registry, ctx, txs, shards, &|_| {})
}

/// [`apply_block_sharded`] with a hook each worker thread calls first with
/// its shard index (1.. ; shard 0 runs on the calling thread): the node and
/// the benchmark pin workers to cores with it (threads inherit the
/// caller's affinity otherwise).
pub fn apply_block_sharded_with<S: AuthenticatedState + Sync + ?Sized>(
    state: &S,
    params: &Params,
    registry: &Registry,
    ctx: &BlockContext,
    txs: &[PreparedTx],
    shards: usize,
    on_worker_start: &(dyn Fn(usize) + Sync),
) -> Result<BlockOutput, ExecError> {
    let params = &crate::modules::governance::effective_params(state, params, ctx.height)?;
    let mut plan = prepare(state, params, registry, ctx, txs, shards)?;
    let lists = std::mem::take(&mut plan.lists);
    let results = if lists.len() <= 1 {
        lists
            .iter()
            .map(|l| run_shard(state, params, ctx, txs, &plan, l))
            .collect()
    } else {
        let plan_ref = &plan;
        std::thread::scope(|scope| {
            let handles: Vec<_> = lists[1..]
                .iter()
                .enumerate()
                .map(|(k, l)| {
                    scope.spawn(move || {
                        on_worker_start(k + 1);
                        run_shard(state, params, ctx, txs, plan_ref, l)
                    })
                })
                .collect();
            let mut results = vec![run_shard(state, params, ctx, txs, plan_ref, &lists[0])];
            for h in handles {
                results.push(h.join().unwrap_or(Err(ExecError::WorkerPanicked)));
            }
            results
        })
    };
    finish(state, params, registry, ctx, plan, results)
}

/// A transaction that passed the pre-pass.
struct Admitted<'a> {
    call: CallRef<'a>,
    /// Gas the transaction needs (envelope + call).
    intrinsic_gas: u64,
    /// Gas charged: the intrinsic gas, capped by the gas limit.
    gas_used: u64,
    tip_per_gas: u64,
    /// Per-account record keys derived when the transaction was prepared.
    party_keys: &'a [crate::modules::PartyKeys],
}

/// The pre-pass result: receipts of rejected transactions, the admitted
/// ones and their shard lists.
struct Plan<'a> {
    meta: state::LedgerMeta,
    /// The compliance policy in force (block-start state), if it has rules.
    policy: Option<Policy>,
    /// The revenue-sharing program in force (block-start state).
    revenue: Option<crate::modules::revenue::Program>,
    receipts: Vec<Option<Receipt>>,
    admitted: Vec<Option<Admitted<'a>>>,
    lists: Vec<Vec<u32>>,
}

struct ShardResult<'s, S: ?Sized> {
    overlay: Overlay<'s, S>,
    receipts: Vec<(u32, Receipt)>,
    gas_used: u64,
    fees: FeeTotals,
    verdicts: Vec<VerdictEntry>,
    checked: u32,
    /// Counted institution fees (revenue sharing).
    counted: Vec<([u8; 32], u128)>,
}

fn prepare<'a, S: AuthenticatedState + ?Sized>(
    state: &S,
    params: &Params,
    registry: &Registry,
    ctx: &BlockContext,
    txs: &'a [PreparedTx],
    shards: usize,
) -> Result<Plan<'a>, ExecError> {
    params.validate()?;
    if txs.len() > params.block_txs_max as usize {
        return Err(ExecError::TooManyTxs {
            got: txs.len(),
            max: params.block_txs_max,
        });
    }
    let meta = state::read_ledger_meta(state)?;
    let expected = meta
        .height
        .checked_add(1)
        .ok_or(ExecError::CorruptState("height"))?;
    if ctx.height != expected {
        return Err(ExecError::WrongHeight {
            got: ctx.height,
            expected,
        });
    }
    let base_fee = meta.base_fee_per_gas;
    let policy = cmod::read_policy(state)?.filter(Policy::active);
    let revenue = crate::modules::revenue::read_program(state)?;
    let mut receipts: Vec<Option<Receipt>> = vec![None; txs.len()];
    let mut admitted: Vec<Option<Admitted<'a>>> = Vec::with_capacity(txs.len());
    let mut items: Vec<u32> = Vec::with_capacity(txs.len());
    let mut block_gas: u64 = 0;
    let mut scratch = Vec::new();
    for (i, ptx) in txs.iter().enumerate() {
        if items.len() >= params.block_txs_limit as usize {
            admitted.push(None);
            receipts[i] = Some(Receipt::rejected(ptx.hash.0, Reason::BlockTxLimit));
            continue;
        }
        match prepass(
            ptx,
            params,
            registry,
            ctx,
            base_fee,
            policy.as_ref(),
            &mut block_gas,
            &mut scratch,
        ) {
            Ok(a) => {
                admitted.push(Some(a));
                items.push(i as u32);
            }
            Err(reason) => {
                admitted.push(None);
                receipts[i] = Some(Receipt::rejected(ptx.hash.0, reason));
            }
        }
    }
    // With a rule counting per identity, the window counters of each
    // signer's identity (block-start registry) are a resource too: two
    // accounts of one identity run in one shard, in block order.
    let mut identity_counters: Vec<Vec<[u8; 32]>> = Vec::new();
    if policy.as_ref().is_some_and(cmod::has_identity_scope) {
        identity_counters.reserve(items.len());
        for &i in &items {
            let mut v = Vec::new();
            for s in &txs[i as usize].signer_addresses {
                if let Some(id) = cmod::read_entry(state, &s.0)?.identity {
                    let k = cmod::identity_counter_key(&id);
                    if !v.contains(&k) {
                        v.push(k);
                    }
                }
            }
            identity_counters.push(v);
        }
    }
    // A transaction's resources: its payer's account and what its call
    // touches (fee recipients are credited after the shards, never here).
    let touched = |pos: usize, out: &mut Vec<[u8; 32]>| {
        let i = items[pos] as usize;
        let info = tx_info(&txs[i], ctx, params);
        out.push(state::account_key(info.payer));
        if let Some(a) = &admitted[i] {
            a.call.touched(&info, out);
        }
        if let Some(ks) = identity_counters.get(pos) {
            out.extend_from_slice(ks);
        }
    };
    let lists = schedule::plan(&items, shards, &touched);
    Ok(Plan {
        meta,
        policy,
        revenue,
        receipts,
        admitted,
        lists,
    })
}

fn run_shard<'s, S: AuthenticatedState + ?Sized>(
    state: &'s S,
    params: &Params,
    ctx: &BlockContext,
    txs: &[PreparedTx],
    plan: &Plan<'_>,
    list: &[u32],
) -> Result<ShardResult<'s, S>, ExecError> {
    let mut sh = ShardResult {
        overlay: Overlay::new(state, 2 * list.len()),
        receipts: Vec::with_capacity(list.len()),
        gas_used: 0,
        fees: FeeTotals::default(),
        verdicts: Vec::new(),
        checked: 0,
        counted: Vec::new(),
    };
    let base_fee = plan.meta.base_fee_per_gas;
    for &i in list {
        let a = plan.admitted[i as usize]
            .as_ref()
            .expect("planned txs are admitted");
        let mut seen = Seen {
            index: i,
            checked: false,
            verdict: None,
            counted: None,
        };
        let (r, split) = exec_tx(
            &mut sh.overlay,
            params,
            ctx,
            &txs[i as usize],
            a,
            base_fee,
            plan.policy.as_ref(),
            plan.revenue.as_ref(),
            &mut seen,
        )?;
        sh.checked += u32::from(seen.checked);
        sh.counted.extend(seen.counted);
        sh.verdicts.extend(seen.verdict);
        sh.gas_used += r.gas_used;
        sh.fees.add(&split);
        sh.receipts.push((i, r));
    }
    Ok(sh)
}

fn finish<'s, S: AuthenticatedState + ?Sized>(
    state: &'s S,
    params: &Params,
    registry: &Registry,
    ctx: &BlockContext,
    plan: Plan<'_>,
    results: Vec<Result<ShardResult<'s, S>, ExecError>>,
) -> Result<BlockOutput, ExecError> {
    let Plan {
        meta,
        mut receipts,
        policy: plan_policy,
        revenue,
        ..
    } = plan;
    let base_fee = meta.base_fee_per_gas;
    let mut results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    // The largest shard's overlay is the base the others merge into.
    let largest =
        (0..results.len()).max_by_key(|&i| (results[i].overlay.accounts.len(), usize::MAX - i));
    let mut overlay = match largest {
        Some(i) => std::mem::replace(&mut results[i].overlay, Overlay::new(state, 0)),
        None => Overlay::new(state, 0),
    };
    let mut gas_used: u64 = 0;
    let mut fees = FeeTotals::default();
    let mut verdicts: Vec<VerdictEntry> = Vec::new();
    let mut compliance = ComplianceTotals::default();
    let mut counted: Vec<([u8; 32], u128)> = Vec::new();
    for r in results {
        counted.extend(r.counted.iter().copied());
        overlay.absorb(r.overlay);
        gas_used += r.gas_used;
        fees.merge(&r.fees);
        compliance.checked += r.checked;
        verdicts.extend(r.verdicts);
        for (i, rec) in r.receipts {
            receipts[i as usize] = Some(rec);
        }
    }
    let mut block_events = Vec::new();
    for (who, amount, cause) in [
        (params.treasury, fees.treasury, Cause::Treasury),
        (fee_pool_address(), fees.pool, Cause::FeePool),
        (ctx.proposer, fees.tips, Cause::Tip),
    ] {
        if amount == 0 {
            continue;
        }
        let mut rec = overlay.account(&who.0)?;
        // Cannot overflow: every balance is part of a supply that fits u128.
        rec.balance = rec.balance.checked_add(amount).expect("supply fits u128");
        overlay.set_account(&who.0, rec);
        block_events.push(Event {
            account: who.0,
            asset: NATIVE_ASSET,
            credit: true,
            amount,
            cause,
        });
    }
    // Governance decides the proposals whose period ends in this block,
    // after every transaction of it.
    let gov_burned = {
        crate::modules::governance::end_block(
            &mut overlay,
            registry,
            params,
            ctx.height,
            ctx.time_ms,
            &mut block_events,
        )?
    };
    if let Some(program) = &revenue {
        // Shard order is not block order: sum per identity first.
        counted.sort_by_key(|c| c.0);
        let mut per: Vec<([u8; 32], u128)> = Vec::new();
        for (id, f) in counted {
            match per.last_mut() {
                Some(last) if last.0 == id => last.1 += f,
                _ => per.push((id, f)),
            }
        }
        let ledger: &mut dyn crate::modules::Ledger = &mut overlay;
        crate::modules::revenue::end_block(
            ledger,
            program,
            ctx.height,
            &per,
            fees.paid,
            fees.pool,
            &fee_pool_address().0,
            &params.treasury.0,
            &mut block_events,
        )?;
    }
    overlay.clear_journal();

    let burned = fees.burned + gov_burned;
    assert_conserved(&overlay, burned);

    let next_base_fee = fees::next_base_fee(params, base_fee, gas_used);
    let new_meta = state::LedgerMeta {
        height: ctx.height,
        base_fee_per_gas: next_base_fee,
        genesis_supply: meta.genesis_supply,
        minted: meta.minted,
        burned: meta.burned + burned,
    };
    assert!(new_meta.burned <= new_meta.genesis_supply + new_meta.minted);
    let mut writes = overlay.into_writes();
    let mk = meta_key();
    let pos = writes
        .binary_search_by(|w| w.0.cmp(&mk))
        .expect_err("meta is not an overlay key");
    writes.insert(pos, (mk, Some(new_meta.encode())));
    if let (Some(policy), false) = (&plan_policy, verdicts.is_empty()) {
        verdicts.sort_by_key(|v| v.index);
        compliance.stopped = verdicts.iter().filter(|v| !v.flagged).count() as u32;
        compliance.flagged = verdicts.len() as u32 - compliance.stopped;
        let vk = cmod::verdicts_key(ctx.height);
        let rec = BlockVerdicts {
            policy_version: policy.version,
            entries: verdicts,
        };
        // A fresh key each block (heights only grow): never an overlay key.
        let pos = writes
            .binary_search_by(|w| w.0.cmp(&vk))
            .expect_err("verdicts are not an overlay key");
        writes.insert(pos, (vk, Some(plume_compliance::encode(&rec))));
    }

    Ok(BlockOutput {
        writes,
        receipts: receipts
            .into_iter()
            .map(|r| r.expect("every transaction has a receipt"))
            .collect(),
        block_events,
        gas_used,
        base_fee_per_gas: base_fee,
        next_base_fee_per_gas: next_base_fee,
        fees,
        meta: new_meta,
        compliance,
    })
}

/// Conservation: PLUME balances fell by exactly what was burned; every
/// asset's balances moved by exactly its supply change. A failure is a bug
/// in a module or the executor, never bad input: it panics.
fn assert_conserved<S: AuthenticatedState + ?Sized>(overlay: &Overlay<'_, S>, burned: u128) {
    let net = overlay.net_deltas();
    let supply = overlay.supply_deltas();
    assert_eq!(
        net.get(&NATIVE_ASSET).copied().unwrap_or(0),
        0u128.wrapping_sub(burned),
        "PLUME conservation broken"
    );
    for (asset, d) in &net {
        if asset != &NATIVE_ASSET {
            assert_eq!(
                *d,
                supply.get(asset).copied().unwrap_or(0),
                "asset conservation broken"
            );
        }
    }
    for (asset, d) in &supply {
        assert_eq!(
            *d,
            net.get(asset).copied().unwrap_or(0),
            "asset supply conservation broken"
        );
    }
}

/// The institution a transaction's fee counts for: its payer's identity,
/// if registered, unless every party of its balance movements belongs to
/// that identity (reads the block-start registry).
fn counted_for<S: AuthenticatedState + ?Sized>(
    program: &crate::modules::revenue::Program,
    base: &S,
    payer: &[u8; 32],
    events: &[Event],
) -> Result<Option<[u8; 32]>, ExecError> {
    let Some(id) = cmod::read_entry(base, payer)?.identity else {
        return Ok(None);
    };
    if !program.has(&id) {
        return Ok(None);
    }
    let flows = plume_compliance::flows_of(events);
    if flows.is_empty() {
        return Ok(Some(id));
    }
    for f in &flows {
        for a in [f.from, f.to].into_iter().flatten() {
            if cmod::read_entry(base, &a)?.identity != Some(id) {
                return Ok(Some(id));
            }
        }
    }
    Ok(None) // between its own accounts only
}

/// Flows with the protocol's own escrows (stake, governance deposits,
/// vesting) have that side removed: bonding, a deposit or a vesting lock
/// is checked as value leaving its sender, a withdrawal, refund or claim as
/// value reaching its receiver; the escrow is never a party the rules
/// judge (it has no identity, and its outflows are not one sender's).
fn protocol_sides_removed(flows: Vec<plume_compliance::Flow>) -> Vec<plume_compliance::Flow> {
    use plume_protocol::governance::{deposit_escrow, stake_escrow, vesting_escrow};
    // Derived (hashed) once per process, not per transaction.
    static PROTOCOL: std::sync::LazyLock<[[u8; 32]; 3]> =
        std::sync::LazyLock::new(|| [stake_escrow(), deposit_escrow(), vesting_escrow()]);
    let protocol = &*PROTOCOL;
    let is_protocol = |a: &Option<[u8; 32]>| a.as_ref().is_some_and(|a| protocol.contains(a));
    if !flows
        .iter()
        .any(|f| is_protocol(&f.from) || is_protocol(&f.to))
    {
        return flows;
    }
    let side = |a: Option<[u8; 32]>| a.filter(|a| !protocol.contains(a));
    flows
        .into_iter()
        .map(|f| plume_compliance::Flow {
            from: side(f.from),
            to: side(f.to),
            ..f
        })
        .filter(|f| f.from.is_some() || f.to.is_some())
        .collect()
}

/// What a call sees of transaction `ptx` (admitted: it has a payer).
fn tx_info<'a>(ptx: &'a PreparedTx, ctx: &BlockContext, params: &'a Params) -> TxInfo<'a> {
    TxInfo {
        params,
        hash: &ptx.hash,
        payer: &ptx.signer_addresses[0].0,
        signers: &ptx.signer_addresses,
        sequence: ptx.tx.body.sequence,
        height: ctx.height,
        time_ms: ctx.time_ms,
        chain_id: &ptx.tx.body.chain_id,
    }
}

fn prepass<'a>(
    ptx: &'a PreparedTx,
    params: &Params,
    registry: &Registry,
    ctx: &BlockContext,
    base_fee: u64,
    policy: Option<&Policy>,
    block_gas: &mut u64,
    scratch: &mut Vec<[u8; 32]>,
) -> Result<Admitted<'a>, Reason> {
    let body = &ptx.tx.body;
    ptx.tx.check_limits()?;
    if ptx.signer_addresses.len() != body.signers.len() {
        return Err(Reason::SignerCount);
    }
    if body.chain_id != params.chain_id {
        return Err(Reason::WrongChain);
    }
    let call = registry.call_of(ptx)?;
    call.authorize(&tx_info(ptx, ctx, params))?;
    if ctx.height > body.expiry_height {
        return Err(Reason::Expired);
    }
    let tip_per_gas =
        fees::effective_tip(body.max_fee_per_gas, body.priority_fee_per_gas, base_fee)
            .ok_or(Reason::FeeCapBelowBaseFee)?;
    // Compliance gas by the number of accounts the call declares (known
    // without state; the policy is the block's).
    let compliance_gas = policy.map_or(0, |p| {
        p.gas(cmod::parties_with(
            &*call,
            &tx_info(ptx, ctx, params),
            scratch,
        ))
    });
    let intrinsic_gas = fees::intrinsic_gas(body, call.gas().saturating_add(compliance_gas));
    let gas_used = intrinsic_gas.min(body.gas_limit);
    let total = block_gas
        .checked_add(gas_used)
        .filter(|t| *t <= params.block_gas_limit)
        .ok_or(Reason::BlockGasLimit)?;
    *block_gas = total;
    Ok(Admitted {
        call,
        intrinsic_gas,
        gas_used,
        tip_per_gas,
        party_keys: registry.party_keys(ptx),
    })
}

/// What the compliance engine saw of one transaction.
struct Seen {
    index: u32,
    checked: bool,
    verdict: Option<VerdictEntry>,
    /// The institution this transaction's fee counts for, and the fee.
    counted: Option<([u8; 32], u128)>,
}

/// Execute one admitted transaction.
fn exec_tx<S: AuthenticatedState + ?Sized>(
    ov: &mut Overlay<'_, S>,
    params: &Params,
    ctx: &BlockContext,
    ptx: &PreparedTx,
    a: &Admitted<'_>,
    base_fee: u64,
    policy: Option<&Policy>,
    revenue: Option<&crate::modules::revenue::Program>,
    seen: &mut Seen,
) -> Result<(Receipt, FeeSplit), ExecError> {
    ov.clear_journal();
    let body = &ptx.tx.body;
    let payer = ptx.signer_addresses[0].0;
    let mut acct = ov.account(&payer)?;
    if acct.sequence != body.sequence {
        return Ok((
            Receipt::rejected(ptx.hash.0, Reason::BadSequence),
            FeeSplit::default(),
        ));
    }
    let Some(next_seq) = acct.sequence.checked_add(1) else {
        return Ok((
            Receipt::rejected(ptx.hash.0, Reason::SequenceExhausted),
            FeeSplit::default(),
        ));
    };
    let split = fees::split_fee(params, a.gas_used, base_fee, a.tip_per_gas);
    if acct.balance < split.paid {
        return Ok((
            Receipt::rejected(ptx.hash.0, Reason::InsufficientFeeBalance),
            FeeSplit::default(),
        ));
    }
    acct.balance -= split.paid;
    acct.sequence = next_seq;
    ov.set_account(&payer, acct);
    let mut events = Vec::with_capacity(3);
    if split.paid > 0 {
        events.push(Event {
            account: payer,
            asset: NATIVE_ASSET,
            credit: false,
            amount: split.paid,
            cause: Cause::Fee,
        });
    }
    let mut receipt = Receipt {
        tx_hash: ptx.hash.0,
        status: Status::Success,
        reason: Reason::Ok,
        gas_used: a.gas_used,
        fee_paid: split.paid,
        fee_burned: split.burned,
        tip: split.tip,
        events: Vec::new(),
    };
    if body.gas_limit < a.intrinsic_gas {
        receipt.status = Status::Failed;
        receipt.reason = Reason::OutOfGas;
        receipt.events = events;
        return Ok((receipt, split));
    }
    let mark = ov.mark();
    let fee_events = events.len();
    let base = ov.base();
    let ledger: &mut dyn crate::modules::Ledger = ov;
    let mut result = a
        .call
        .apply(&tx_info(ptx, ctx, params), ledger, &mut events)?;
    // Interception: a call that moved value passes the rules before it
    // stands (the flows come from its balance events, whatever module).
    if let (Some(policy), Ok(())) = (policy, &result) {
        let flows = protocol_sides_removed(plume_compliance::flows_of(&events[fee_events..]));
        if !flows.is_empty() {
            seen.checked = true;
            let mut env = cmod::Interceptor {
                base,
                ledger,
                keys: a.party_keys,
            };
            let o = plume_compliance::check(
                policy,
                &mut env,
                &plume_compliance::TxContext {
                    height: ctx.height,
                    time_ms: ctx.time_ms,
                    tx: &ptx.hash.0,
                    memo: &body.memo,
                    signers: &ptx.signer_addresses,
                },
                &flows,
            )?;
            let entry = |rule_id, code: Reason, flagged| VerdictEntry {
                index: seen.index,
                tx: ptx.hash.0,
                rule_id,
                code: code.0,
                flagged,
                input_hash: plume_compliance::input_hash(&ptx.hash.0, policy.version, &flows).0,
            };
            if let Some((rule_id, code)) = o.failed {
                seen.verdict = Some(entry(rule_id, code, false));
                result = Err(code);
            } else if let Some(&rule_id) = o.flagged.first() {
                seen.verdict = Some(entry(rule_id, Reason::Ok, true));
            }
        }
    }
    match result {
        Ok(()) => {}
        Err(reason) => {
            ov.rollback(mark);
            events.truncate(fee_events);
            receipt.status = Status::Failed;
            receipt.reason = reason;
        }
    }
    if let (Some(program), true) = (revenue, split.paid > 0) {
        seen.counted =
            counted_for(program, base, &payer, &events[fee_events..])?.map(|id| (id, split.paid));
    }
    receipt.events = events;
    Ok((receipt, split))
}
