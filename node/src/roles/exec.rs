//! The execution role: executes finalized blocks in order
//! (`plume_execution::apply_block_sharded`, one shard per configured exec
//! core), stages each block's writes (`Store::apply`) and commits every
//! block that is ready in one LMDB write transaction
//! (`Store::commit_blocks`, group commit). Only then are clients told:
//! receipts published, `Executed` fed back to consensus and the mempool's
//! per-sender cursors advanced.
//!
//! A transaction already in a finalized block is never executed twice
//! (batches offered twice, even across a restart): the store's transaction
//! index is the same on every validator, so skipping is deterministic.
//! LMDB commits are blocking syscalls: they run here and never stall the
//! network loop.

use super::channels::{CatchUpOutcome, CoreIn, ExecIn, Refusal};
use super::shared::Shared;
use crate::metrics::table_bytes;
use anyhow::{anyhow, bail, Result};
use plume_consensus::{Block, BlsScheme};
use plume_crypto::ed25519::Address;
use plume_crypto::Digest;
use plume_execution::Registry;
use plume_mempool::batcher::BATCHES_HELD_MAX;
use plume_mempool::ExecJob;
use plume_protocol::genesis::ValidatorInfo;
use plume_protocol::{PreparedTx, Receipt};
use plume_storage::{LmdbKv, Store};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Most finalized blocks committed in one LMDB write transaction when
/// execution falls behind (group commit).
pub const GROUP_COMMIT_MAX: usize = 32;

/// What execution needs besides its queue.
pub struct ExecContext<'a> {
    /// Shared with the other roles.
    pub shared: &'a Shared,
    /// Chain parameters.
    pub params: &'a plume_execution::Params,
    /// The ledger modules.
    pub registry: &'a Registry,
    /// Genesis validators (proposer index to tip account).
    pub validators: &'a [ValidatorInfo],
    /// Shards per block: one per exec core.
    pub shards: usize,
    /// Pin shard worker `k` (1..) to a core.
    pub pin_worker: &'a (dyn Fn(usize) + Sync),
    /// The consensus committee (catch-up segments are checked against it).
    pub committee: &'a plume_crypto::qc::ValidatorSet,
    /// Consensus chain id.
    pub chain: u64,
}

/// One executed block waiting for the group's commit.
struct Executed {
    block: Block<BlsScheme>,
    root: Digest,
    txs: Vec<PreparedTx>,
    raws: Vec<Vec<u8>>,
    receipts: Vec<Receipt>,
    receipt_bytes: Vec<Vec<u8>>,
    block_bytes: Vec<u8>,
    proof_bytes: Vec<u8>,
    digests: Vec<Digest>,
    compliance: plume_execution::ComplianceTotals,
}

/// Batch digests already executed (a re-proposed batch is skipped).
#[derive(Default)]
struct ExecutedBatches {
    order: VecDeque<Digest>,
    set: HashSet<Digest>,
}

impl ExecutedBatches {
    fn remember(&mut self, d: Digest) {
        if self.set.insert(d) {
            self.order.push_back(d);
            if self.order.len() > BATCHES_HELD_MAX {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// Execute until every sender is gone or the stop flag is set. On stop the
/// group in progress is finished and committed, and what is still queued
/// is abandoned: those blocks are final, and after a restart consensus
/// hands them over again (they are persisted with the safety state).
/// Queue policy: `core_tx` is the core's report queue, which never makes
/// this thread wait (channels.rs).
pub fn run(
    mut store: Store<LmdbKv>,
    rx: flume::Receiver<ExecIn>,
    core_tx: flume::Sender<CoreIn>,
    cx: &ExecContext<'_>,
) -> Result<()> {
    let mut executed = ExecutedBatches::default();
    loop {
        if cx.shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let first = match rx.recv_timeout(std::time::Duration::from_millis(50)) {
            Ok(j) => j,
            Err(flume::RecvTimeoutError::Timeout) => continue,
            Err(flume::RecvTimeoutError::Disconnected) => break,
        };
        let t0 = Instant::now();
        let mut items = vec![first];
        while items.len() < GROUP_COMMIT_MAX {
            match rx.try_recv() {
                Ok(j) => items.push(j),
                Err(_) => break,
            }
        }
        let mut jobs = Vec::with_capacity(items.len());
        for item in items {
            match item {
                ExecIn::Block(j) => jobs.push(j),
                ExecIn::CatchUp { from, segment } => {
                    // Blocks queued before it first.
                    run_group(
                        &mut store,
                        std::mem::take(&mut jobs),
                        cx,
                        &mut executed,
                        &core_tx,
                    )?;
                    let outcome = catch_up(&mut store, &segment, cx, &mut executed, &core_tx)?;
                    if core_tx.send(CoreIn::CaughtUp { from, outcome }).is_err() {
                        break;
                    }
                }
            }
        }
        run_group(&mut store, jobs, cx, &mut executed, &core_tx)?;
        let m = &cx.shared.metrics;
        m.mem.executed_batches.set(executed.order.len() as u64);
        m.mem
            .executed_set_bytes
            .set(table_bytes::<Digest, ()>(executed.set.capacity()));
        m.add_busy("exec", t0.elapsed().as_micros() as u64);
    }
    Ok(())
}

/// Execute, commit and announce a group of finalized blocks.
fn run_group(
    store: &mut Store<LmdbKv>,
    jobs: Vec<ExecJob<BlsScheme>>,
    cx: &ExecContext<'_>,
    executed: &mut ExecutedBatches,
    core_tx: &flume::Sender<CoreIn>,
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let (group, halt) = execute_group(store, jobs, cx, executed)?;
    if !group.is_empty() {
        commit_group(store, &group)?;
        // Durable: now tell consensus, subscribers and clients.
        for e in &group {
            for d in &e.digests {
                executed.remember(*d);
            }
            announce(store, e, cx, core_tx)?;
        }
    }
    match halt {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Check a segment served from a peer's store, execute its blocks that
/// may be executed, and commit each group only if every block of it
/// arrived at the root the validators certified for it. A refusal is not
/// an error of this node (`Ok(Err(why))`); a failing store is.
fn catch_up(
    store: &mut Store<LmdbKv>,
    segment: &[plume_protocol::catchup::SegmentBlock],
    cx: &ExecContext<'_>,
    executed: &mut ExecutedBatches,
    core_tx: &flume::Sender<CoreIn>,
) -> Result<CatchUpOutcome> {
    let Some(head) = store.head() else {
        bail!("store without a head");
    };
    let t0 = Instant::now();
    let verified = match plume_protocol::catchup::verify_segment(
        segment,
        head.finalized_height,
        &Digest(head.block_hash),
        cx.committee,
        cx.chain,
    ) {
        Ok(v) => v,
        Err(e) => return Ok(Err(format!("refused: {e}").into())),
    };
    if verified.is_empty() {
        return Ok(Err(Refusal {
            why: format!(
                "nothing to execute yet in {} blocks from height {}",
                segment.len(),
                head.finalized_height + 1
            ),
            mismatch: None,
            nothing_yet: true,
        }));
    }
    let checked_us = t0.elapsed().as_micros() as u64;
    let (mut exec_us, mut commit_us) = (0u64, 0u64);
    let mut last: std::collections::VecDeque<Block<BlsScheme>> = Default::default();
    let mut payloads = Vec::new();
    let mut seen: HashSet<Digest> = HashSet::new();
    let mut rest = verified.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<_> = rest.by_ref().take(GROUP_COMMIT_MAX).collect();
        let chunk_len = chunk.len();
        let mut group = Vec::with_capacity(chunk_len);
        let te = Instant::now();
        for vb in chunk {
            match execute_verified(store, vb, cx, &mut seen)? {
                Ok(e) => group.push(e),
                Err(why) => {
                    store.discard_staged();
                    if group.is_empty() && last.is_empty() {
                        return Ok(Err(why));
                    }
                    tracing::warn!("catch-up: {why}; keeping the blocks before it");
                    break;
                }
            }
        }
        if group.is_empty() {
            break;
        }
        let complete = group.len() == chunk_len;
        let tc = Instant::now();
        exec_us += tc.duration_since(te).as_micros() as u64;
        commit_group(store, &group)?;
        commit_us += tc.elapsed().as_micros() as u64;
        for e in &group {
            for d in &e.digests {
                executed.remember(*d);
            }
            announce(store, e, cx, core_tx)?;
            payloads.push((e.block.height, e.block.payload.clone()));
            if last.len() == plume_consensus::engine::REPUTATION_WINDOW {
                last.pop_front();
            }
            last.push_back(e.block.clone());
        }
        cx.shared.metrics.catchup_blocks.inc_by(group.len() as u64);
        if !complete {
            break;
        }
    }
    tracing::debug!(
        blocks = payloads.len(),
        checked_us,
        exec_us,
        commit_us,
        total_us = t0.elapsed().as_micros() as u64,
        "catch-up segment executed"
    );
    if last.is_empty() {
        return Ok(Err("no block executed".to_string().into()));
    }
    Ok(Ok((last.into(), payloads)))
}

/// Execute one checked block of a segment (staged): `Ok(Err(why))` when
/// it replays a transaction or misses its certified root.
fn execute_verified(
    store: &mut Store<LmdbKv>,
    vb: plume_protocol::catchup::VerifiedBlock,
    cx: &ExecContext<'_>,
    seen: &mut HashSet<Digest>,
) -> Result<std::result::Result<Executed, Refusal>> {
    let height = vb.block.height;
    check_upgrade(store, height)?;
    let mut txs = Vec::with_capacity(vb.txs.len());
    let mut raws = Vec::with_capacity(vb.txs.len());
    for (id, raw, tx) in vb.txs {
        let known = store
            .has_tx(&id)
            .map_err(|e| anyhow!("reading tx index: {e}"))?;
        if known || !seen.insert(id) {
            return Ok(Err(format!(
                "block {height} replays transaction {id}, already final"
            )
            .into()));
        }
        let mut ptx = PreparedTx::new(tx);
        cx.registry.prepare(&mut ptx);
        txs.push(ptx);
        raws.push(raw);
    }
    let digests = vb
        .block
        .payload
        .iter()
        .zip(&vb.batches)
        .filter(|(_, r)| r.author != plume_protocol::catchup::PLACEHOLDER_AUTHOR)
        .map(|(d, _)| *d)
        .collect();
    let e = run_block(
        store,
        cx,
        vb.block,
        plume_protocol::codec::encode_commit_proof(&vb.proof),
        &vb.batches,
        txs,
        raws,
        digests,
    )?;
    if e.root != vb.certified_root {
        return Ok(Err(Refusal {
            why: format!(
                "state root after block {height} is {}, the validators certified {}",
                e.root, vb.certified_root
            ),
            mismatch: Some((height, e.root, vb.certified_root)),
            nothing_yet: false,
        }));
    }
    Ok(Ok(e))
}

/// Governance passed a software upgrade this node's version does not
/// satisfy, due at the block about to execute: the node stops before it.
#[derive(Debug)]
pub struct UpgradeNeeded {
    /// Required version.
    pub version: String,
    /// The upgrade's height (the block not executed).
    pub height: u64,
    /// The proposal that passed it.
    pub proposal: [u8; 32],
}

impl std::fmt::Display for UpgradeNeeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UPGRADE NEEDED: governance proposal {} requires plume {} from height {}; this is plume {}. \
             Every block below {} is executed and committed; install plume {} (or later) and start again",
            hex::encode(self.proposal),
            self.version,
            self.height,
            crate::software_version(),
            self.height,
            self.version
        )
    }
}

impl std::error::Error for UpgradeNeeded {}

/// `Err(UpgradeNeeded)` when block `height` must not execute on this
/// software (one state read).
fn check_upgrade(store: &Store<LmdbKv>, height: u64) -> Result<()> {
    let plan = plume_execution::modules::governance::upgrade_plan(store)
        .map_err(|e| anyhow!("reading the upgrade plan: {e}"))?;
    if let Some(p) = plan {
        if height >= p.height
            && !plume_protocol::governance::version_satisfies(crate::software_version(), &p.version)
        {
            return Err(UpgradeNeeded {
                version: p.version,
                height: p.height,
                proposal: p.proposal,
            }
            .into());
        }
    }
    Ok(())
}

/// Execute the jobs at the store's next heights, staging each. Stops
/// before a block a software upgrade forbids this node to execute: the
/// blocks before it are returned (to be committed) with the reason.
fn execute_group(
    store: &mut Store<LmdbKv>,
    jobs: Vec<ExecJob<BlsScheme>>,
    cx: &ExecContext<'_>,
    executed: &mut ExecutedBatches,
) -> Result<(Vec<Executed>, Option<anyhow::Error>)> {
    let mut next_height = store.finalized_height().map_or(0, |h| h + 1);
    let mut group: Vec<Executed> = Vec::with_capacity(jobs.len());
    let mut group_txs: HashSet<Digest> = HashSet::new();
    // Batches executed by earlier blocks of this group (not yet remembered).
    let mut group_batches: HashSet<Digest> = HashSet::new();
    for job in jobs {
        let height = job.block.height;
        if height < next_height {
            continue; // already committed (replay after a restart)
        }
        if height != next_height {
            bail!("finalized block at height {height} but the store expects {next_height}");
        }
        if let Err(e) = check_upgrade(store, height) {
            return Ok((group, Some(e)));
        }
        let e = execute_one(
            store,
            job,
            cx,
            &|d| executed.set.contains(d) || group_batches.contains(d),
            &mut group_txs,
        )?;
        group_batches.extend(e.digests.iter().copied());
        group.push(e);
        next_height += 1;
    }
    Ok((group, None))
}

/// Commit a group of executed blocks in one write transaction.
fn commit_group(store: &mut Store<LmdbKv>, group: &[Executed]) -> Result<()> {
    let entries: Vec<Vec<plume_storage::TxEntry<'_>>> = group
        .iter()
        .map(|e| {
            e.txs
                .iter()
                .zip(&e.raws)
                .zip(&e.receipt_bytes)
                .map(|((p, raw), rc)| plume_storage::TxEntry {
                    hash: p.hash,
                    tx: raw,
                    receipt: rc,
                })
                .collect()
        })
        .collect();
    let commits: Vec<plume_storage::BlockCommit<'_>> = group
        .iter()
        .zip(&entries)
        .map(|(e, ent)| plume_storage::BlockCommit {
            height: e.block.height,
            hash: e.block.id,
            block: &e.block_bytes,
            qc: &e.proof_bytes,
            txs: ent,
        })
        .collect();
    store
        .commit_blocks(&commits)
        .map_err(|e| anyhow!("committing blocks: {e}"))?;
    Ok(())
}

/// After the commit: metrics, latency, notifications, and consensus.
fn announce(
    store: &Store<LmdbKv>,
    e: &Executed,
    cx: &ExecContext<'_>,
    core_tx: &flume::Sender<CoreIn>,
) -> Result<()> {
    let shared = cx.shared;
    let m = &shared.metrics;
    let height = e.block.height;
    m.blocks_finalized.inc();
    m.txs_finalized.inc_by(e.txs.len() as u64);
    m.compliance_checked.inc_by(e.compliance.checked.into());
    m.compliance_stopped.inc_by(e.compliance.stopped.into());
    m.compliance_flagged.inc_by(e.compliance.flagged.into());
    m.height.set(height);
    *shared.state_root.lock().expect("not poisoned") = (height, e.root);
    {
        let mut sub = shared.submitted.lock().expect("not poisoned");
        for p in &e.txs {
            if let Some(t) = sub.remove(&p.hash) {
                m.observe_finality_ms(t.elapsed().as_millis() as u64);
            }
        }
    }
    super::notify::offer(shared, || super::notify::Note {
        height,
        block: e.block.id,
        view: e.block.view,
        root: e.root,
        txs: e
            .txs
            .iter()
            .map(|p| (p.hash, p.signer_addresses.clone()))
            .collect(),
        receipts: e.receipts.clone(),
    });
    let mut payers: Vec<Address> = e.txs.iter().filter_map(|p| p.payer().copied()).collect();
    payers.sort();
    payers.dedup();
    let mut sequences = Vec::with_capacity(payers.len());
    for a in payers {
        let acct = plume_execution::state::read_account(store, &a)
            .map_err(|err| anyhow!("reading account {a}: {err}"))?;
        sequences.push((a, acct.sequence));
    }
    let _ = core_tx.send(CoreIn::Executed {
        height,
        block: e.block.id,
        root: e.root,
        sequences,
        digests: e.block.payload.clone(),
    });
    Ok(())
}

/// What `block` executes (`plume_mempool::pick_transactions`, the rule
/// the simulator runs too): batches and transactions already final are
/// skipped, as are items the verdict calls invalid.
fn block_transactions(
    store: &Store<LmdbKv>,
    batches: &[Option<plume_mempool::CertifiedBatch>],
    already: &dyn Fn(&Digest) -> bool,
    group_txs: &mut HashSet<Digest>,
) -> Result<plume_mempool::Picked> {
    plume_mempool::pick_transactions(batches, already, &mut |h| {
        let dup = !group_txs.insert(*h)
            || store
                .has_tx(h)
                .map_err(|e| anyhow!("reading tx index: {e}"))?;
        Ok(!dup)
    })
}

/// Execute one finalized block against the (staged) state; its writes are
/// staged and its root returned, nothing is durable yet. `already` says
/// which batch digests were executed before.
fn execute_one(
    store: &mut Store<LmdbKv>,
    job: ExecJob<BlsScheme>,
    cx: &ExecContext<'_>,
    already: &dyn Fn(&Digest) -> bool,
    group_txs: &mut HashSet<Digest>,
) -> Result<Executed> {
    let height = job.block.height;
    let picked = block_transactions(store, &job.batches, already, group_txs)?;
    let (txs, raws, skipped, newly_executed) =
        (picked.txs, picked.raws, picked.skipped, picked.batches);
    if skipped > 0 {
        tracing::warn!(
            height,
            skipped,
            "transactions with bad encodings or signatures skipped"
        );
    }
    let records: Vec<plume_protocol::proof::BatchRecord> = job
        .batches
        .iter()
        .map(|cb| match cb {
            Some(cb) => plume_protocol::proof::BatchRecord {
                author: cb.batch.author,
                expires: cb.batch.expires,
                leaves: cb
                    .batch
                    .raw
                    .iter()
                    .map(|r| plume_protocol::batch::item_leaf(r))
                    .collect(),
            },
            // Final in an earlier block (its record and proofs are there).
            None => plume_protocol::proof::BatchRecord {
                author: plume_protocol::catchup::PLACEHOLDER_AUTHOR,
                expires: 0,
                leaves: Vec::new(),
            },
        })
        .collect();
    run_block(
        store,
        cx,
        job.block,
        plume_protocol::codec::encode_commit_proof(&job.proof),
        &records,
        txs,
        raws,
        newly_executed,
    )
}

/// Execute `txs` as block `block` (staged) and build its record.
#[allow(clippy::too_many_arguments)]
fn run_block(
    store: &mut Store<LmdbKv>,
    cx: &ExecContext<'_>,
    block: Block<BlsScheme>,
    proof_bytes: Vec<u8>,
    records: &[plume_protocol::proof::BatchRecord],
    txs: Vec<PreparedTx>,
    raws: Vec<Vec<u8>>,
    digests: Vec<Digest>,
) -> Result<Executed> {
    let height = block.height;
    let proposer = cx
        .validators
        .get(block.proposer as usize)
        .and_then(|v| plume_crypto::ed25519::PublicKey::from_hex(&v.network_key).ok())
        .map(|k| k.address())
        .unwrap_or_default();
    let ctx = plume_execution::BlockContext {
        height,
        proposer,
        time_ms: block.time_ms,
    };
    let max = cx.params.block_txs_max as usize;
    if txs.len() > max {
        // Unreachable with at most f faulty validators: no honest one
        // votes for a block whose certified counts exceed the limit
        // (`Batcher::check_proposal`). Cutting it here would depend on
        // how blocks were grouped, so stop instead.
        bail!(
            "finalized block {height} carries {} transactions, more than block_txs_max = {max}: more than f validators are faulty",
            txs.len()
        );
    }
    let out = plume_execution::apply_block_sharded_with(
        &*store,
        cx.params,
        cx.registry,
        &ctx,
        &txs,
        cx.shards,
        cx.pin_worker,
    )
    .map_err(|e| anyhow!("executing block {height}: {e}"))?;
    let root = plume_storage::AuthenticatedState::apply(store, &out.writes)
        .map_err(|e| anyhow!("staging block {height}: {e}"))?;
    let receipt_bytes = out.receipts.iter().map(Receipt::to_bytes).collect();
    let ids: Vec<Digest> = txs.iter().map(|t| t.hash).collect();
    Ok(Executed {
        block_bytes: plume_protocol::proof::encode_block_record(&block, records, &root, &ids),
        proof_bytes,
        digests,
        block,
        root,
        txs,
        raws,
        receipts: out.receipts,
        receipt_bytes,
        compliance: out.compliance,
    })
}
