//! The catch-up server: answers peers' `CatchUpRequest`s from the block
//! store (an LMDB read transaction per block; never on the core), with
//! runs of finalized block records and the transactions they executed,
//! at most `plume_protocol::catchup::SEGMENT_BLOCKS_MAX` blocks and
//! `SEGMENT_BYTES_MAX` bytes per answer; and consensus sync requests for
//! finalized blocks the engine no longer holds in memory (after a restart
//! it holds almost none), with the block and its parents. The core charges the answer's
//! bytes to the peer's serving budget before it leaves; the queue in
//! front of this thread is bounded and drops when full.
//!
//! The client side (when to ask, whom, and what to do with an answer)
//! is in the core and the execution role: see `plume_protocol::catchup`.

use super::channels::{CoreIn, ServeIn};
use crate::metrics::NodeMetrics;
use crate::wire::{self, NetMsg};
use anyhow::{anyhow, Result};
use plume_consensus::{Block, BlsScheme, Message};
use plume_protocol::catchup::{SegmentBlock, SEGMENT_BLOCKS_MAX, SEGMENT_BYTES_MAX};
use plume_protocol::consensus::SYNC_BLOCKS_MAX;
use plume_storage::{KvStore, LmdbKv, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Serve until the stop flag is set or the core is gone. Catch-up
/// segments (`seg_rx`) go before block sync (`sync_rx`): a lagging peer's
/// many sync requests never starve its one catch-up request. Observers'
/// requests (`observer_rx`) come last: a validator that must catch up is
/// never kept waiting by a follower.
pub fn run(
    kv: LmdbKv,
    seg_rx: flume::Receiver<ServeIn>,
    sync_rx: flume::Receiver<ServeIn>,
    observer_rx: flume::Receiver<ServeIn>,
    core_tx: flume::Sender<CoreIn>,
    metrics: &NodeMetrics,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let req = match seg_rx
            .try_recv()
            .or_else(|_| sync_rx.try_recv())
            .or_else(|_| observer_rx.try_recv())
        {
            Ok(r) => r,
            Err(_) => match seg_rx.recv_timeout(Duration::from_millis(5)) {
                Ok(r) => r,
                Err(flume::RecvTimeoutError::Timeout) => continue,
                Err(_) => return,
            },
        };
        let store = match Store::open(kv.clone()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("catch-up: cannot open the store: {e}");
                continue;
            }
        };
        let (to, answer) = match req {
            ServeIn::Segment {
                from,
                height,
                answer_empty,
            } => match segment(&store, height) {
                Ok(seg) if !seg.is_empty() || answer_empty => {
                    metrics.catchup_served.inc();
                    (from, NetMsg::CatchUp(seg))
                }
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(height, "catch-up: cannot serve: {e:#}");
                    continue;
                }
            },
            ServeIn::Blocks { from, block, max } => match ancestors(&store, &block, max) {
                Ok(blocks) if !blocks.is_empty() => {
                    (from, NetMsg::Consensus(Message::SyncResponse { blocks }))
                }
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(%block, "sync from the store: {e:#}");
                    continue;
                }
            },
        };
        let bytes = wire::encode(&answer);
        if core_tx.send(CoreIn::Serve { to, bytes }).is_err() {
            return;
        }
    }
}

/// The stored (finalized) block `id` and its parents, highest first, at
/// most `max` (capped at `SYNC_BLOCKS_MAX`), never genesis: what a
/// consensus sync request asks for.
pub fn ancestors<K: KvStore>(
    store: &Store<K>,
    id: &plume_crypto::Digest,
    max: u32,
) -> Result<Vec<Block<BlsScheme>>> {
    let Some(rec) = store.block_by_hash(id).map_err(|e| anyhow!("{e}"))? else {
        return Ok(Vec::new());
    };
    let max = (max as usize).min(SYNC_BLOCKS_MAX) as u64;
    let low = rec.height.saturating_sub(max - 1).max(1);
    let mut out = Vec::new();
    for h in (low..=rec.height).rev() {
        let Some(r) = store.block(h).map_err(|e| anyhow!("block {h}: {e}"))? else {
            break;
        };
        let sb = plume_protocol::proof::decode_block_record(&r.bytes)
            .map_err(|e| anyhow!("stored block {h}: {e}"))?;
        out.push(sb.block);
    }
    Ok(out)
}

/// The finalized blocks from `from` on, as many as fit one answer (at
/// least one, if the store has it).
pub fn segment<K: KvStore>(store: &Store<K>, from: u64) -> Result<Vec<SegmentBlock>> {
    let Some(top) = store.finalized_height() else {
        return Ok(Vec::new());
    };
    let mut seg: Vec<SegmentBlock> = Vec::new();
    let mut bytes = 0usize;
    let mut h = from.max(1);
    while h <= top && seg.len() < SEGMENT_BLOCKS_MAX {
        let Some(rec) = store.block(h).map_err(|e| anyhow!("block {h}: {e}"))? else {
            break;
        };
        let ids = plume_protocol::proof::record_tx_ids(&rec.bytes)
            .map_err(|e| anyhow!("stored block {h}: {e}"))?;
        let mut txs = Vec::with_capacity(ids.len());
        for id in &ids {
            let t = store
                .tx(id)
                .map_err(|e| anyhow!("transaction {id}: {e}"))?
                .ok_or_else(|| anyhow!("block {h} lists transaction {id}, which is not stored"))?;
            txs.push(t.bytes);
        }
        let b = SegmentBlock {
            record: rec.bytes,
            txs,
        };
        if !seg.is_empty() && bytes + b.size() > SEGMENT_BYTES_MAX {
            break;
        }
        bytes += b.size();
        seg.push(b);
        h += 1;
    }
    Ok(seg)
}
