//! The signature role: every signature check and every decode that would
//! otherwise cost the core time, on its own pinned thread.
//!
//! - Client submissions (prechecked by the API): one Ed25519 batch under
//!   the chain's rule (ZIP-215) per round; each gets its reply (bad
//!   signature) or goes on to the core's pool. This is the author's
//!   verification of every transaction it batches.
//! - Peers' batches: decoded (module calls included), their digest computed
//!   from the bytes; a certificate that comes with one is checked.
//! - Batches this validator must verify (it is one of the batch's
//!   verifiers): every signature checked, the verdict reported.
//! - Batch votes and certificates, and the certificates a proposal carries.
//!
//! With the author and f verifiers per batch, each transaction's
//! signatures are checked f+1 times across the network (2 with 4
//! validators), never by everyone.

use super::channels::{CoreIn, Reply, SigIn};
use crate::http::{codes, ApiError};
use crate::metrics::NodeMetrics;
use plume_execution::Registry;
use plume_mempool::{Batch, Sent};
use plume_protocol::batch::{BatchCertificate, BatchCommittee, Verdict};
use plume_protocol::tx::TxError;
use plume_protocol::{PreparedTx, Transaction};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest signature-verification batch of submissions.
pub const SIG_BATCH_MAX: usize = 1024;

/// What the role needs besides its queues.
pub struct SigContext<'a> {
    /// Every role's counters.
    pub metrics: &'a NodeMetrics,
    /// The ledger modules (calls are decoded here, once).
    pub registry: &'a Registry,
    /// The committee as batch certificates see it.
    pub committee: &'a BatchCommittee,
    /// Consensus chain id (votes and certificates bind it).
    pub chain: u64,
    /// Our committee index.
    pub me: u32,
}

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
    cx: &SigContext<'_>,
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
        let mut submits: Vec<(PreparedTx, Vec<u8>, plume_mempool::StateView, Reply)> = Vec::new();
        for it in items {
            let out = match it {
                SigIn::Submit {
                    bytes,
                    state_seq,
                    reply,
                } => {
                    match Transaction::from_bytes(&bytes) {
                        Ok(tx) => {
                            let mut ptx = PreparedTx::new(tx);
                            cx.registry.prepare(&mut ptx);
                            submits.push((ptx, bytes, state_seq, reply));
                        }
                        Err(e) => {
                            cx.metrics.txs_rejected.inc();
                            let code = match e {
                                TxError::TooLarge(_) => codes::OVERSIZED,
                                _ => codes::MALFORMED_TX,
                            };
                            let _ = reply.send(Err(reject(code, e.to_string())));
                        }
                    }
                    None
                }
                SigIn::DecodeBatch {
                    from,
                    author,
                    expires,
                    verdict,
                    txs,
                    cert,
                } => decode_batch(
                    Sent {
                        from,
                        author,
                        expires,
                    },
                    verdict,
                    txs,
                    cert,
                    cx,
                ),
                SigIn::VerifyBatch(b) => {
                    let verdict = verify_batch(&b, cx.metrics);
                    Some(CoreIn::BatchVerified {
                        digest: b.digest,
                        verdict,
                    })
                }
                SigIn::Vote(v) => {
                    if plume_mempool::vote_is_valid(&v, cx.chain, cx.committee) {
                        Some(CoreIn::Vote(v))
                    } else {
                        cx.metrics.malformed_msgs.inc();
                        None
                    }
                }
                SigIn::Cert(c) => match c.verify(cx.chain, cx.committee) {
                    Ok(()) => Some(CoreIn::Cert(Arc::new(c))),
                    Err(e) => {
                        tracing::debug!("dropping a certificate: {e}");
                        cx.metrics.malformed_msgs.inc();
                        None
                    }
                },
                SigIn::Proposal { from, msg, certs } => {
                    let good = certs
                        .into_iter()
                        .filter(|c| c.verify(cx.chain, cx.committee).is_ok())
                        .map(Arc::new)
                        .collect();
                    Some(CoreIn::Proposal {
                        from,
                        msg,
                        certs: good,
                    })
                }
            };
            if let Some(o) = out {
                if core_tx.send(o).is_err() {
                    return;
                }
            }
        }
        if !submits.is_empty() {
            verify_submissions(submits, &core_tx, cx.metrics);
        }
        cx.metrics
            .add_busy("sigverify", t0.elapsed().as_micros() as u64);
    }
}

fn verify_submissions(
    submits: Vec<(PreparedTx, Vec<u8>, plume_mempool::StateView, Reply)>,
    core_tx: &flume::Sender<CoreIn>,
    m: &NodeMetrics,
) {
    let txs: Vec<Transaction> = submits.iter().map(|(p, _, _, _)| p.tx.clone()).collect();
    let bad: HashSet<usize> = plume_protocol::tx::verify_batch(&txs).into_iter().collect();
    m.sig_batches.inc();
    m.sig_verified.inc_by(txs.len() as u64);
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

/// Decode a peer's batch (calls included) and check a certificate that came
/// with it against the batch's bytes (`plume_mempool::open_peer_batch`, the
/// rule the simulator runs too). `None` when the peer lied: nothing is
/// kept.
fn decode_batch(
    sent: Sent,
    verdict: Verdict,
    txs: Vec<Vec<u8>>,
    cert: Option<BatchCertificate>,
    cx: &SigContext<'_>,
) -> Option<CoreIn> {
    match plume_mempool::open_peer_batch(
        sent,
        txs,
        cert,
        cx.me,
        cx.chain,
        cx.committee,
        plume_mempool::DigestRule::Bound,
        &|t| cx.registry.prepare(t),
    ) {
        Ok((batch, cert)) => Some(CoreIn::Batch {
            batch,
            verdict,
            cert,
        }),
        Err(e) => {
            cx.metrics.malformed_msgs.inc();
            tracing::debug!(from = sent.from, "dropping a batch: {e}");
            None
        }
    }
}

/// Our verdict on a batch (`plume_mempool::verdict_of`): items that do not
/// decode, or whose signatures do not verify under the chain's rule, are
/// invalid.
pub fn verify_batch(b: &Batch, m: &NodeMetrics) -> Verdict {
    let (verdict, checked) = plume_mempool::verdict_of(b);
    m.sig_batches.inc();
    m.sig_verified.inc_by(checked as u64);
    verdict
}
