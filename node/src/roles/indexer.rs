//! The observer's indexer: feeds the fund-flow index (`plume_index`,
//! SQLite in `HOME/data/index.sqlite` or a PostgreSQL database) from the
//! store's receipts, block by block in height order, each block in one
//! database transaction with the indexed height and the identities of the
//! accounts it touched (from the compliance registry). It reads only what execution committed (so only
//! certified state), never re-executes, and after a kill -9 resumes at
//! the block after the last whole one: no gap, no duplicate row.

use super::shared::Shared;
use crate::http::{ws::notification, Topic};
use anyhow::{anyhow, Context, Result};
use plume_index::{Index, IndexedTx};
use plume_protocol::Receipt;
use plume_storage::{LmdbKv, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the indexer looks for newly committed blocks.
pub const POLL: Duration = Duration::from_millis(20);
/// Most blocks indexed between two looks at the stop flag.
const RUN_MAX: u64 = 256;

/// Index committed blocks until the stop flag is set, evaluating `rules`
/// on each and pushing its alerts to the `["alerts"]` subscribers.
pub fn run(
    kv: LmdbKv,
    path: &plume_index::Location,
    rules: plume_index::AlertRules,
    webhook: Option<flume::Sender<String>>,
    shared: &Shared,
    stop: &AtomicBool,
) -> Result<()> {
    let metrics = &shared.metrics;
    let mut ix = Index::open_at(path).with_context(|| format!("opening the index ({path})"))?;
    ix.set_rules(rules);
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
            let alerts = ix.alerts(h, h, usize::MAX)?;
            if !alerts.is_empty() {
                metrics.alerts.inc_by(alerts.len() as u64);
                publish(shared, &alerts, webhook.as_ref());
            }
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
    let flags = plume_execution::modules::compliance::read_verdicts(store, h)
        .map_err(|e| anyhow!("the compliance verdicts of block {h}: {e}"))?
        .map(|v| {
            v.entries
                .iter()
                .filter(|e| e.flagged)
                .map(|e| (e.index, e.rule_id))
                .collect()
        })
        .unwrap_or_default();
    let extras = plume_index::BlockExtras {
        parties: parties(store, h, sb.block.time_ms, &txs)?,
        flags,
    };
    ix.index_block_with(h, &sb.block.id.0, &sb.state_root.0, &txs, &extras)?;
    Ok(())
}

/// The registered identity and jurisdiction of every account the block's
/// balance events touch, from the compliance registry in the store's
/// (certified) state: the jurisdiction of the attestation issued last
/// among those still valid at `h` and block time `time_ms` (an account
/// without one is left out).
/// The state is the latest the observer committed, at or above `h`.
fn parties(
    store: &Store<LmdbKv>,
    h: u64,
    time_ms: u64,
    txs: &[IndexedTx],
) -> Result<Vec<plume_index::PartyOf>> {
    let accounts: std::collections::BTreeSet<[u8; 32]> = txs
        .iter()
        .flat_map(|t| t.receipt.events.iter().map(|e| e.account))
        .collect();
    let mut out = Vec::new();
    for a in accounts {
        let found = plume_execution::modules::compliance::read_identity_of(store, &a)
            .map_err(|e| anyhow!("the identity of {}: {e}", hex::encode(a)))?;
        let Some((id, rec)) = found else { continue };
        let current = rec
            .attestations
            .iter()
            .filter(|x| x.issued_height <= h && !x.expired_at(h, time_ms))
            .max_by_key(|x| x.issued_height)
            .or_else(|| rec.attestations.iter().max_by_key(|x| x.issued_height));
        if let Some(x) = current {
            out.push((a, id, x.jurisdiction));
        }
    }
    Ok(out)
}

/// Offer each alert to every `["alerts"]` subscriber (a slow one is cut
/// by its own bounded queue, never waited for) and to the webhook's queue
/// (full: counted, never waited for).
fn publish(
    shared: &Shared,
    alerts: &[plume_index::Alert],
    webhook: Option<&flume::Sender<String>>,
) {
    let sinks: Vec<crate::http::Sink> = shared
        .subscribers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(t, _)| *t == Topic::Alerts)
        .map(|(_, s)| s.clone())
        .collect();
    for a in alerts {
        tracing::info!(height = a.height, kind = %a.kind, account = %a.account, tx = %a.tx, "alert: {}", a.detail);
        let body = serde_json::to_string(a).unwrap_or_default();
        if let Some(w) = webhook {
            if w.try_send(body.clone()).is_err() {
                shared.metrics.alert_webhook_failed.inc();
            }
        }
        for s in &sinks {
            if s.offer(notification(s.id, &body)) == crate::http::ws::Offer::Cut {
                shared.metrics.notifications_dropped.inc();
            }
        }
    }
}
