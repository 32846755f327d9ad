//! Catch-up from peers' block stores, as the node's core and exec roles do
//! it (`node/src/roles/core.rs` `maybe_catch_up`, `exec.rs` `catch_up`):
//! a validator whose execution is far behind what f+1 validators claim,
//! or whose finalized blocks could not execute for [`CATCHUP_WAITING_US`]
//! (their batches are gone from every peer's memory, e.g. after a
//! restart of every validator), asks one peer at a time for a segment of
//! its store: blocks with their batches, certificates and commit proofs.
//! A block of the segment runs only if it extends our chain, its batches
//! are the ones its payload names (digests recomputed from the bytes,
//! certificates checked), the segment proves it final, and a header of
//! the segment certifies the root it must reach; a refused segment rests
//! its server for [`CATCHUP_PENALTY_US`].

use super::batches::Bulk;
use super::{StoredBlock, ViolationKind, World};
use crate::keys::SimScheme;
use crate::world::{BatchMutation, Behavior};
use plume_consensus::{Input, Message, STATE_LAG};
use plume_mempool::{CertifiedBatch, DigestRule, ExecJob};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Catch up when this many blocks behind what f+1 validators claim.
pub const CATCHUP_LAG: u64 = 32;
/// An unanswered request is given up after this long.
pub const CATCHUP_TIMEOUT_US: u64 = 5_000_000;
/// A server whose segment was refused is not asked again for this long.
pub const CATCHUP_PENALTY_US: u64 = 10_000_000;
/// Execution that made no progress for this long is stuck.
pub const CATCHUP_STALL_US: u64 = 500_000;
/// Finalized blocks that could not execute for this long are taken from
/// the stores too.
pub const CATCHUP_WAITING_US: u64 = 2_000_000;
/// Most blocks in one segment.
pub const SEGMENT_BLOCKS_MAX: usize = 64;

/// The client side of catch-up of one instance (memory only).
#[derive(Debug, Clone)]
pub(super) struct CatchUp {
    /// Highest height each validator's messages mentioned (a claim).
    claims: Vec<u64>,
    /// When the committed height last moved.
    pub(super) progress_at: u64,
    /// The request out: (peer, sent at).
    in_flight: Option<(u32, u64)>,
    /// The last segment helped: ask again at once.
    streaming: bool,
    next: usize,
    penalty: Vec<u64>,
}

impl CatchUp {
    pub(super) fn new(n: usize, now: u64) -> Self {
        CatchUp {
            claims: vec![0; n],
            progress_at: now,
            in_flight: None,
            streaming: false,
            next: 0,
            penalty: vec![0; n],
        }
    }

    /// The (f+1)-th highest claim.
    fn target(&self) -> u64 {
        let mut c = self.claims.clone();
        c.sort_unstable_by(|a, b| b.cmp(a));
        let f = c.len().saturating_sub(1) / 3;
        c.get(f).copied().unwrap_or(0)
    }
}

impl<S: SimScheme> World<S> {
    /// What a consensus message from `from` claims about its height.
    pub(super) fn note_claim(&mut self, to: usize, from: u32, msg: &Message<S>) {
        let h = match msg {
            Message::Proposal(p) => p.block.height.saturating_sub(1),
            Message::Certificates { high_qc, .. } => high_qc.height,
            _ => return,
        };
        if let Some(c) = self.insts[to].catchup.claims.get_mut(from as usize) {
            *c = (*c).max(h);
        }
    }

    /// Ask a peer's store for blocks if execution is behind or stuck.
    pub(super) fn maybe_catch_up(&mut self, inst: usize) {
        let now = self.now;
        let Some(committed) = self.insts[inst]
            .engine
            .as_ref()
            .map(|e| e.committed().height)
        else {
            return;
        };
        let executed = self.insts[inst].disk.committed.height;
        let me = self.insts[inst].index as usize;
        let c = &mut self.insts[inst].catchup;
        if let Some((_, at)) = c.in_flight {
            if now.saturating_sub(at) < CATCHUP_TIMEOUT_US {
                return;
            }
            c.in_flight = None;
            c.streaming = false;
        }
        let target = c.target();
        let stalled = now.saturating_sub(c.progress_at);
        let waiting = committed > executed && stalled > CATCHUP_WAITING_US;
        let (base, lag) = if waiting {
            (executed, STATE_LAG + 3)
        } else {
            (executed.max(committed), CATCHUP_LAG)
        };
        if target <= base.saturating_add(lag) {
            c.streaming = false;
            return;
        }
        let busy = self.insts[inst].exec_busy_until > now;
        let c = &mut self.insts[inst].catchup;
        if busy || (!c.streaming && stalled < CATCHUP_STALL_US) {
            return;
        }
        let n = c.claims.len();
        for k in 0..n {
            let p = (c.next + k) % n;
            if p == me || c.claims[p] < target || c.penalty[p] > now {
                continue;
            }
            c.next = p + 1;
            c.in_flight = Some((p as u32, now));
            self.send_bulk(inst, p as u32, Bulk::CatchUpRequest { from: executed + 1 });
            return;
        }
    }

    /// Serve a segment of our store from height `from`.
    pub(super) fn serve_segment(&mut self, inst: usize, to: u32, from: u64) {
        if self.insts[inst].behavior == Behavior::WithholdBatches && self.attacking() {
            return;
        }
        let seg: Vec<Arc<StoredBlock<S>>> = self.insts[inst]
            .disk
            .store
            .range(from..)
            .take(SEGMENT_BLOCKS_MAX)
            .map(|(_, b)| b.clone())
            .collect();
        if !seg.is_empty() {
            self.send_bulk(inst, to, Bulk::CatchUp(seg));
        }
    }

    /// A segment arrived: check it, execute what it certifies, tell the
    /// engine and the batcher.
    pub(super) fn on_segment(&mut self, inst: usize, from: u32, seg: Vec<Arc<StoredBlock<S>>>) {
        match self.insts[inst].catchup.in_flight {
            Some((p, _)) if p == from => {}
            _ => return, // unrequested
        }
        self.insts[inst].catchup.in_flight = None;
        match self.check_segment(inst, &seg) {
            Err(_) => {
                let now = self.now;
                let c = &mut self.insts[inst].catchup;
                c.streaming = false;
                c.penalty[from as usize] = now + CATCHUP_PENALTY_US;
                self.refused_segments += 1;
            }
            Ok(run) => {
                let mut payloads = Vec::new();
                let mut done = 0usize;
                for (sb, certified) in run {
                    let job = ExecJob {
                        block: sb.block.clone(),
                        proof: sb.proof.clone(),
                        batches: sb.batches.clone(),
                    };
                    let executed = self.insts[inst].executed_batches.clone();
                    let Some((root, entries)) = self.execute(inst, &job) else {
                        return;
                    };
                    if root != certified {
                        // Not the root the validators certified: undo, and
                        // keep what ran before it.
                        if let Some(st) = self.insts[inst].store.as_mut() {
                            st.discard_staged();
                        }
                        self.insts[inst].executed_batches = executed;
                        let c = &mut self.insts[inst].catchup;
                        c.penalty[from as usize] = self.now + CATCHUP_PENALTY_US;
                        break;
                    }
                    payloads.push((sb.block.height, sb.block.payload.clone()));
                    self.commit(inst, job, root, entries);
                    done += 1;
                    if self.insts[inst].engine.is_none() {
                        return;
                    }
                }
                self.catchups += u64::from(done > 0);
                self.insts[inst].catchup.streaming = done > 0;
                if done == 0 {
                    return;
                }
                let height = self.insts[inst].disk.committed.height;
                if let Some(b) = self.insts[inst].batcher.as_mut() {
                    b.on_caught_up(height, payloads);
                }
                let blocks: Vec<_> = self.insts[inst].disk.chain.iter().cloned().collect();
                self.step(inst, Input::CaughtUp { blocks });
            }
        }
    }

    /// The blocks of `seg` that may execute here, each with the root a
    /// header of the segment certifies for it; `Err` when the server lied.
    #[allow(clippy::type_complexity)]
    fn check_segment(
        &mut self,
        inst: usize,
        seg: &[Arc<StoredBlock<S>>],
    ) -> Result<Vec<(Arc<StoredBlock<S>>, plume_crypto::Digest)>, &'static str> {
        let rule = if self.cfg.batch_mutation == BatchMutation::BodyOnlyDigest {
            DigestRule::BodyOnly
        } else {
            DigestRule::Bound
        };
        let chain = self.cfg.seed;
        let tip = (
            self.insts[inst].disk.committed.height,
            self.insts[inst].disk.committed.id,
        );
        let blocks: Vec<Arc<StoredBlock<S>>> = seg
            .iter()
            .filter(|b| b.block.height > tip.0)
            .cloned()
            .collect();
        let mut prev = tip;
        for sb in &blocks {
            let b = &sb.block;
            if b.compute_id() != b.id || b.height != prev.0 + 1 || b.parent != prev.1 {
                return Err("a block does not extend the previous one");
            }
            if sb.batches.len() != b.payload.len() {
                return Err("batches do not match the payload");
            }
            for (d, cb) in b.payload.iter().zip(&sb.batches) {
                let Some(cb) = cb else { continue };
                let digest = rule.digest(cb.batch.author, cb.batch.expires, &cb.batch.raw);
                if digest != *d
                    || cb.batch.digest != *d
                    || cb.cert.digest() != *d
                    || cb.cert.verify(chain, &self.batch_committee).is_err()
                {
                    return Err("a batch is not the one its block names");
                }
            }
            prev = (b.height, b.id);
        }
        // Final: the highest block some commit proof of the segment proves.
        let mut final_height = tip.0;
        for sb in &blocks {
            let committee = self.epoch_keys(sb.proof.child.epoch).0.clone();
            if let Ok(id) = sb.proof.verify_direct(&committee, chain) {
                if let Some(p) = blocks.iter().find(|x| x.block.id == id) {
                    final_height = final_height.max(p.block.height);
                }
            }
        }
        // Certified roots: a final header at H carries the root after
        // H - STATE_LAG.
        let mut certified = BTreeMap::new();
        for sb in blocks.iter().filter(|x| x.block.height <= final_height) {
            let h = sb.block.height;
            if h >= STATE_LAG {
                certified.insert(h - STATE_LAG, sb.block.state_root);
            }
        }
        let mut run = Vec::new();
        for sb in blocks {
            match certified.get(&sb.block.height) {
                Some(r) if sb.block.height <= final_height => run.push((sb, *r)),
                _ => break,
            }
        }
        Ok(run)
    }

    /// Execution committed `job` at `root` (from a finalized block or a
    /// segment): on the disk with its proof and root, the checkers, the
    /// batcher, and the engine hears `Executed` (as the exec role reports).
    #[allow(clippy::type_complexity)]
    pub(super) fn commit(
        &mut self,
        inst: usize,
        job: ExecJob<S>,
        root: plume_crypto::Digest,
        entries: Vec<(plume_crypto::Digest, Vec<u8>, Vec<u8>)>,
    ) {
        let now = self.now;
        let block = job.block.clone();
        // The node's commit: the staged state with the block's
        // transactions and receipts, in one store transaction.
        let txs: Vec<plume_storage::TxEntry<'_>> = entries
            .iter()
            .map(|(h, raw, rc)| plume_storage::TxEntry {
                hash: *h,
                tx: raw,
                receipt: rc,
            })
            .collect();
        let who = self.insts[inst].index;
        let committed = self.insts[inst].store.as_mut().map(|st| {
            st.commit_block(&plume_storage::BlockCommit {
                height: block.height,
                hash: block.id,
                block: block.id.as_bytes(),
                qc: &[],
                txs: &txs,
            })
        });
        match committed {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                self.violation(
                    ViolationKind::Validity,
                    format!("validator {who}: committing block {}: {e}", block.height),
                );
                return;
            }
            None => return,
        }
        let mut buf = Vec::new();
        // What the node stores and proves: every transaction's full
        // encoding (the block record's leaves) and its receipt.
        for (h, raw, rc) in &entries {
            buf.extend_from_slice(h.as_bytes());
            buf.extend_from_slice(plume_protocol::batch::item_leaf(raw).as_bytes());
            buf.extend_from_slice(rc);
        }
        let receipts =
            plume_crypto::hash_parts(plume_crypto::Domain::Handshake, &[b"sim-receipts", &buf]);
        let x = &mut self.insts[inst];
        x.disk.txs_committed += entries.len() as u64;
        x.catchup.progress_at = now;
        x.disk.root = root;
        x.disk.recent_roots.insert(block.height, (block.id, root));
        let floor = block.height.saturating_sub(2 * STATE_LAG);
        x.disk.recent_roots = x.disk.recent_roots.split_off(&floor);
        let (height, id) = (block.height, block.id);
        if x.disk.chain.len() == plume_consensus::engine::REPUTATION_WINDOW {
            x.disk.chain.pop_front();
        }
        x.disk.chain.push_back(block.clone());
        x.disk.committed = block;
        x.disk.proof = Some(job.proof.clone());
        // What the store serves: batches final in an earlier block are
        // placeholders (as the node's block record).
        let batches: Vec<Option<CertifiedBatch>> = job.batches;
        x.disk.store.insert(
            height,
            Arc::new(StoredBlock {
                block: job.block,
                proof: job.proof,
                batches,
            }),
        );
        if self.correct(inst) {
            if let Some(r) = first_or_same(&mut self.roots_at, height, root) {
                let detail =
                    format!("validator {who}: state root {root} after height {height}, others {r}");
                self.violation(ViolationKind::StateRoot, detail);
            }
            if first_or_same(&mut self.receipts_at, height, receipts).is_some() {
                let detail = format!(
                    "validator {who}: transactions or receipts of height {height} differ from the others'"
                );
                self.violation(ViolationKind::StateRoot, detail);
            }
        }
        let payload = self.insts[inst].disk.committed.payload.clone();
        self.after_commit(inst, &payload);
        self.step(
            inst,
            Input::Executed {
                height,
                block: id,
                state_root: root,
            },
        );
    }
}

/// Record `value` as what height `height` must have, or return the value
/// recorded first when `value` differs from it.
fn first_or_same(
    seen: &mut BTreeMap<u64, plume_crypto::Digest>,
    height: u64,
    value: plume_crypto::Digest,
) -> Option<plume_crypto::Digest> {
    match seen.get(&height) {
        Some(r) if *r != value => Some(*r),
        Some(_) => None,
        None => {
            seen.insert(height, value);
            None
        }
    }
}
