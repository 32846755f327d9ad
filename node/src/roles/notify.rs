//! The notifier: builds subscription notifications off the execution
//! thread and offers them to each subscriber's bounded queue.
//!
//! Execution hands over a [`Note`] per committed block with `try_send`
//! (only when someone subscribed). When the notifier's queue is full the
//! note is dropped (`plume_shed_total{reason="notify_queue_full"}`) and,
//! because a subscriber must never silently miss a block, every
//! subscription is then cut with a reason saying so: the client
//! resubscribes and reads the missed heights with `plume_getBlock`. A
//! subscriber too slow for its own queue is cut alone
//! ([`crate::http::Sink::offer`]).

pub use super::channels::Note;
use super::shared::Shared;
use crate::http::{ws::notification, ws::Offer, Sink, Topic};
use plume_execution::Registry;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Committed blocks queued for the notifier.
pub const NOTIFY_QUEUE_MAX: usize = 256;
/// Most transaction hashes listed in one block notification.
pub const BLOCK_NOTE_HASHES_MAX: usize = 20_000;
/// Most subscriptions on the node (every connection together).
pub const SUBSCRIPTIONS_MAX: usize = 4096;

/// Hand a committed block to the notifier (from execution; never blocks).
pub fn offer(shared: &Shared, note: impl FnOnce() -> Note) {
    if shared.subscriber_count.load(Ordering::Relaxed) == 0 {
        return;
    }
    match shared.notify_tx.try_send(note()) {
        Ok(()) => {}
        Err(flume::TrySendError::Full(_)) => {
            shared.metrics.shed("notify_queue_full");
            shared.notes_lost.store(true, Ordering::Relaxed);
        }
        Err(flume::TrySendError::Disconnected(_)) => {}
    }
}

/// Run until the stop flag is set or execution is gone.
pub fn run(rx: flume::Receiver<Note>, shared: Arc<Shared>, registry: Registry) {
    while !shared.stop.load(Ordering::Relaxed) {
        let note = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(n) => Some(n),
            Err(flume::RecvTimeoutError::Timeout) => None,
            Err(flume::RecvTimeoutError::Disconnected) => return,
        };
        if shared.notes_lost.swap(false, Ordering::Relaxed) {
            let subs = shared.subscribers.lock().unwrap_or_else(|p| p.into_inner());
            for (_, sink) in subs.iter() {
                sink.state.cut(
                    "notifications were lost (the node was overloaded): resubscribe and read the missed heights with plume_getBlock",
                );
            }
        }
        if let Some(note) = note {
            deliver(&shared, &registry, &note);
        }
        let mut subs = shared.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        subs.retain(|(_, s)| !s.is_gone());
        shared.subscriber_count.store(subs.len(), Ordering::Relaxed);
    }
}

fn deliver(shared: &Shared, registry: &Registry, note: &Note) {
    // Snapshot the sinks: the lock is not held while encoding.
    let sinks: Vec<(Topic, Sink)> = shared
        .subscribers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if sinks.is_empty() {
        return;
    }
    let m = &shared.metrics;
    let count = |o: Offer| {
        if o == Offer::Cut {
            m.notifications_dropped.inc();
        }
    };
    let mut by_account: HashMap<String, Vec<&Sink>> = HashMap::new();
    let mut block_sinks = Vec::new();
    let mut bin_sinks = Vec::new();
    for (topic, sink) in &sinks {
        match topic {
            Topic::Blocks => block_sinks.push(sink),
            Topic::BlocksBinary => bin_sinks.push(sink),
            Topic::Receipts(a) => by_account.entry(a.clone()).or_default().push(sink),
            // The indexer delivers alerts (roles/indexer.rs).
            Topic::Alerts => {}
        }
    }
    if !block_sinks.is_empty() {
        let hashes: Vec<String> = note
            .txs
            .iter()
            .take(BLOCK_NOTE_HASHES_MAX)
            .map(|(h, _)| h.to_hex())
            .collect();
        let body = json!({
            "height": note.height, "hash": note.block.to_hex(), "view": note.view,
            "txs": note.txs.len(), "state_root": note.root.to_hex(), "tx_hashes": hashes,
        })
        .to_string();
        for s in block_sinks {
            count(s.offer(notification(s.id, &body)));
        }
    }
    if !bin_sinks.is_empty() {
        let frame = crate::http::bin::block_frame(
            note.height,
            &note.block,
            &note.root,
            note.txs.iter().map(|(h, _)| h),
        );
        for s in bin_sinks {
            count(s.offer(crate::http::ws::Out::Bin(frame.clone())));
        }
    }
    if by_account.is_empty() {
        return;
    }
    for ((hash, signers), r) in note.txs.iter().zip(&note.receipts) {
        // An account is touched when it signed or a balance of it changed
        // (every change is an event of the receipt).
        let mut touched: Vec<String> = signers.iter().map(|a| a.to_hex()).collect();
        touched.extend(r.events.iter().map(|e| hex::encode(e.account)));
        touched.sort();
        touched.dedup();
        let mut body = None;
        for a in &touched {
            let Some(sinks) = by_account.get(a) else {
                continue;
            };
            let body = body.get_or_insert_with(|| {
                json!({"height": note.height, "tx": hash.to_hex(), "receipt": crate::views::receipt_json(registry, r)})
                    .to_string()
            });
            for s in sinks {
                count(s.offer(notification(s.id, body)));
            }
        }
    }
}
