//! The catch-up server: answers peers' `CatchUpRequest`s from the block
//! store (an LMDB read transaction per block; never on the core), with
//! runs of finalized block records and the transactions they executed,
//! at most `plume_protocol::catchup::SEGMENT_BLOCKS_MAX` blocks and
//! `SEGMENT_BYTES_MAX` bytes per answer. The core charges the answer's
//! bytes to the peer's serving budget before it leaves; the queue in
//! front of this thread is bounded and drops when full.
//!
//! The client side (when to ask, whom, and what to do with an answer)
//! is in the core and the execution role: see `plume_protocol::catchup`.

use super::channels::{CoreIn, ServeIn};
use crate::metrics::NodeMetrics;
use crate::wire::{self, NetMsg};
use anyhow::{anyhow, Result};
use plume_protocol::catchup::{SegmentBlock, SEGMENT_BLOCKS_MAX, SEGMENT_BYTES_MAX};
use plume_storage::{KvStore, LmdbKv, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Serve until the stop flag is set or the core is gone.
pub fn run(
    kv: LmdbKv,
    rx: flume::Receiver<ServeIn>,
    core_tx: flume::Sender<CoreIn>,
    metrics: &NodeMetrics,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let req = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => r,
            Err(flume::RecvTimeoutError::Timeout) => continue,
            Err(_) => return,
        };
        let seg = match Store::open(kv.clone()).map_err(|e| anyhow!("{e}")) {
            Ok(store) => segment(&store, req.height),
            Err(e) => Err(e),
        };
        match seg {
            Ok(seg) if !seg.is_empty() => {
                metrics.catchup_served.inc();
                let bytes = wire::encode(&NetMsg::CatchUp(seg));
                if core_tx
                    .send(CoreIn::Serve {
                        to: req.from,
                        bytes,
                    })
                    .is_err()
                {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(height = req.height, "catch-up: cannot serve: {e:#}"),
        }
    }
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
        let sb = plume_protocol::proof::decode_block_record(&rec.bytes)
            .map_err(|e| anyhow!("stored block {h}: {e}"))?;
        let mut txs = Vec::with_capacity(sb.txs.len());
        for id in &sb.txs {
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
