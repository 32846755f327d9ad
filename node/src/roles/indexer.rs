//! The observer's indexer: feeds the fund-flow index (`plume_index`,
//! SQLite in `HOME/data/index.sqlite`) from the store's receipts, block by
//! block in height order, each block in one SQLite transaction with the
//! indexed height. It reads only what execution committed (so only
//! certified state), never re-executes, and after a kill -9 resumes at
//! the block after the last whole one: no gap, no duplicate row.

use crate::metrics::NodeMetrics;
use anyhow::{anyhow, Context, Result};
use plume_index::{Index, IndexedTx};
use plume_protocol::Receipt;
use plume_storage::{LmdbKv, Store};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the indexer looks for newly committed blocks.
pub const POLL: Duration = Duration::from_millis(20);
/// Most blocks indexed between two looks at the stop flag.
const RUN_MAX: u64 = 256;

/// Index committed blocks until the stop flag is set.
pub fn run(kv: LmdbKv, path: &Path, metrics: &NodeMetrics, stop: &AtomicBool) -> Result<()> {
    let mut ix = Index::open(path).with_context(|| format!("opening {}", path.display()))?;
    metrics.index_height.set(ix.height()?);
    while !stop.load(Ordering::Relaxed) {
        let store = Store::open(kv.clone()).map_err(|e| anyhow!("store: {e}"))?;
        let head = store.finalized_height().unwrap_or(0);
        let mut h = ix.height()? + 1;
        if h > head {
            drop(store);
            std::thread::sleep(POLL);
            continue;
        }
        let last = head.min(h + RUN_MAX - 1);
        while h <= last {
            index_one(&store, &mut ix, h)?;
            metrics.index_height.set(h);
            h += 1;
        }
    }
    Ok(())
}

/// Index block `h` from the store.
fn index_one(store: &Store<LmdbKv>, ix: &mut Index, h: u64) -> Result<()> {
    let rec = store
        .block(h)
        .map_err(|e| anyhow!("block {h}: {e}"))?
        .ok_or_else(|| anyhow!("block {h} is not in the store"))?;
    let sb = plume_protocol::proof::decode_block_record(&rec.bytes)
        .map_err(|e| anyhow!("stored block {h}: {e}"))?;
    let mut txs = Vec::with_capacity(sb.txs.len());
    for id in &sb.txs {
        let e = store
            .tx_entry(id)
            .map_err(|e| anyhow!("transaction {id}: {e}"))?
            .ok_or_else(|| anyhow!("block {h} lists transaction {id}, which is not stored"))?;
        let receipt =
            Receipt::from_bytes(&e.receipt).map_err(|e| anyhow!("receipt of {id}: {e}"))?;
        txs.push(IndexedTx { receipt });
    }
    ix.index_block(h, &sb.block.id.0, &sb.state_root.0, &txs)?;
    Ok(())
}
