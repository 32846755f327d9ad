//! The signature role: Ed25519 batch verification of client submissions
//! and of peers' batches, on its own pinned thread.
//!
//! Each transaction is decoded once here, its module call included (the
//! decoding travels with it to execution).
//!
//! Client submissions arrive prechecked from the API; each gets its reply
//! here (bad signature) or goes on to the core's mempool. A peer's batch is
//! decoded, its digest checked against its contents (a mismatch: the peer
//! lied; dropped and counted), and every signature verified; the verdicts
//! travel with the batch, so execution skips badly signed transactions
//! identically everywhere.

use super::channels::{CoreIn, Reply, SigIn};
use crate::http::{codes, ApiError};
use crate::metrics::NodeMetrics;
use plume_crypto::Digest;
use plume_execution::Registry;
use plume_mempool::VerifiedBatch;
use plume_protocol::tx::TxError;
use plume_protocol::{PreparedTx, Transaction};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest signature-verification batch.
pub const SIG_BATCH_MAX: usize = 1024;

fn reject(code: i64, msg: impl Into<String>) -> ApiError {
    ApiError::new(code, msg)
}

/// Verify until `stop` is set or every sender is gone. Queue policy: the
/// core's queue is bounded; a full one blocks this thread (back-pressure
/// to the API, whose `try_send` into this role's queue then fails with
/// "mempool full").
pub fn run(
    rx: flume::Receiver<SigIn>,
    core_tx: flume::Sender<CoreIn>,
    m: &NodeMetrics,
    registry: &Registry,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let first = match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(x) => x,
            Err(flume::RecvTimeoutError::Timeout) => continue,
            Err(_) => return,
        };
        let t0 = Instant::now();
        let mut items = vec![first];
        while items.len() < SIG_BATCH_MAX {
            match rx.try_recv() {
                Ok(x) => items.push(x),
                Err(_) => break,
            }
        }
        let mut submits: Vec<(PreparedTx, Vec<u8>, u64, Reply)> = Vec::new();
        for it in items {
            match it {
                SigIn::Submit {
                    bytes,
                    state_seq,
                    reply,
                } => match Transaction::from_bytes(&bytes) {
                    Ok(tx) => {
                        let mut ptx = PreparedTx::new(tx);
                        registry.prepare(&mut ptx);
                        submits.push((ptx, bytes, state_seq, reply));
                    }
                    Err(e) => {
                        m.txs_rejected.inc();
                        let code = match e {
                            TxError::TooLarge(_) => codes::OVERSIZED,
                            _ => codes::MALFORMED_TX,
                        };
                        let _ = reply.send(Err(reject(code, e.to_string())));
                    }
                },
                SigIn::PeerBatch { digest, txs } => {
                    match verify_peer_batch(digest, txs, registry, m) {
                        Some(b) => {
                            let _ = core_tx.send(CoreIn::Batch(Arc::new(b)));
                        }
                        None => {
                            m.malformed_msgs.inc();
                        }
                    }
                }
            }
        }
        if !submits.is_empty() {
            verify_submissions(submits, &core_tx, m);
        }
        m.add_busy("sigverify", t0.elapsed().as_micros() as u64);
    }
}

fn verify_submissions(
    submits: Vec<(PreparedTx, Vec<u8>, u64, Reply)>,
    core_tx: &flume::Sender<CoreIn>,
    m: &NodeMetrics,
) {
    let txs: Vec<Transaction> = submits.iter().map(|(p, _, _, _)| p.tx.clone()).collect();
    let bad: HashSet<usize> = plume_protocol::tx::verify_batch(&txs).into_iter().collect();
    m.sig_batches.inc();
    m.sigs_verified.inc_by(txs.len() as u64);
    for (i, (ptx, bytes, state_seq, reply)) in submits.into_iter().enumerate() {
        if bad.contains(&i) {
            m.txs_rejected.inc();
            let _ = reply.send(Err(reject(
                codes::BAD_SIGNATURE,
                "a signature does not verify",
            )));
        } else if core_tx
            .send(CoreIn::Verified {
                ptx,
                bytes,
                state_seq,
                reply: reply.clone(),
            })
            .is_err()
        {
            let _ = reply.send(Err(reject(codes::UNAVAILABLE, "node shutting down")));
        }
    }
}

/// Decode a peer's batch, check its digest and every signature. `None` when
/// the digest does not match its contents (the peer lied; nothing is kept).
pub fn verify_peer_batch(
    digest: Digest,
    raw: Vec<Vec<u8>>,
    registry: &Registry,
    m: &NodeMetrics,
) -> Option<VerifiedBatch> {
    let mut txs = Vec::with_capacity(raw.len());
    let mut ids = Vec::with_capacity(raw.len());
    for r in &raw {
        match Transaction::from_bytes(r) {
            Ok(t) => {
                let mut p = PreparedTx::new(t);
                registry.prepare(&mut p);
                ids.push(p.hash);
                txs.push(Some(p));
            }
            Err(_) => {
                ids.push(plume_crypto::hash(plume_crypto::Domain::Tx, r));
                txs.push(None);
            }
        }
    }
    if plume_protocol::batch_root(&ids) != digest {
        return None;
    }
    let decoded: Vec<Transaction> = txs.iter().flatten().map(|p| p.tx.clone()).collect();
    let bad: HashSet<usize> = plume_protocol::tx::verify_batch(&decoded)
        .into_iter()
        .collect();
    m.sig_batches.inc();
    m.sigs_verified.inc_by(decoded.len() as u64);
    let mut valid = Vec::with_capacity(txs.len());
    let mut k = 0;
    for t in &txs {
        if t.is_some() {
            valid.push(!bad.contains(&k));
            k += 1;
        } else {
            valid.push(false);
        }
    }
    Some(VerifiedBatch {
        digest,
        txs,
        raw,
        valid,
    })
}
