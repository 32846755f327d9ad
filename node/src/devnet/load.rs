//! The pre-signed load generator over the binary endpoint (`/bin`): every
//! transaction of the run is built and signed before the timed window
//! (on every core), then sent open-loop, pipelined, one connection per
//! validator; acknowledgements are read on their own threads and finality
//! comes from validator 0's binary block stream. Latency is measured in
//! microseconds from each transaction's intended send time. The
//! generator's own CPU per transaction over the window is reported, so a
//! figure it limits is seen as such.

use super::{final_roots, issue_bond, report_missing, DevnetOptions, Summary, Workload};
use super::{LocalNet, SigningKey};
use anyhow::{anyhow, Context, Result};
use hdrhistogram::Histogram;
use plume_client::bin::{self, BinWriter, Event};
use plume_client::txbuild::Fees;
use plume_crypto::Digest;
use plume_protocol::tx::asset_id;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most transactions one run pre-signs (about 0.5 KB each in memory).
pub const PRESIGN_MAX: u64 = 2_000_000;

struct Live {
    /// Sent, not yet seen final nor refused: when each was meant to go.
    sent: HashMap<Digest, Instant>,
    hist: Histogram<u64>,
    finalized: u64,
    height: u64,
    rejected: u64,
    errors: Vec<String>,
}

/// Process CPU time (user + system) so far.
pub(super) fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One planned transaction: the validator it goes to, and its bytes and id.
struct Planned {
    node: usize,
    bytes: Vec<u8>,
    hash: Digest,
}

/// Build and sign `total` transactions (the same workload as the JSON-RPC
/// generator: account `a` is served by validator `a % n`, so its
/// sequences arrive in order), on every core.
fn presign(net: &LocalNet, opts: &DevnetOptions, total: u64, seq0: &[u64]) -> Vec<Planned> {
    let n = net.apis.len();
    let accounts: &[SigningKey] = &net.accounts;
    let issuer = accounts[0].public_key().address();
    let w = Workload {
        chain: &net.chain_id,
        accounts,
        bond: asset_id(&issuer.0, 0),
        fees: Fees::default(),
        opts,
    };
    // The plan first (sequences depend on order), then the signatures.
    let per_node = (accounts.len() - 1) / n;
    let mut seqs = seq0.to_vec();
    let mut node_of = 0usize;
    let plan: Vec<(u64, usize, usize, u64, usize)> = (0..total)
        .map(|k| {
            let node = node_of % n;
            node_of += 1;
            let a = 1 + node + n * (k as usize % per_node.max(1));
            let b = 1 + ((k as usize * 7 + 3) % (accounts.len() - 1));
            let seq = seqs[a];
            seqs[a] += 1;
            (k, a, b, seq, node)
        })
        .collect();
    let threads = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    let chunk = plan.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = plan
            .chunks(chunk)
            .map(|part| {
                let w = &w;
                s.spawn(move || {
                    part.iter()
                        .map(|&(k, a, b, seq, node)| {
                            let tx = w.transaction(k, a, b, seq);
                            Planned {
                                node,
                                hash: tx.body.signing_hash(),
                                bytes: tx.to_bytes(),
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().expect("signing thread"))
            .collect()
    })
}

/// Drive the pre-signed open-loop workload over `/bin` and summarise.
pub fn drive_bin(net: &LocalNet, opts: &DevnetOptions, stop: &AtomicBool) -> Result<Summary> {
    let n = net.apis.len();
    let mut seq0 = vec![0u64; net.accounts.len()];
    if opts.settle_every > 0 {
        issue_bond(net, &net.chain_id, Fees::default())?;
        seq0[0] = 1;
    }
    let total = opts
        .count
        .unwrap_or_else(|| opts.rate.saturating_mul(opts.duration.as_secs().max(1)))
        .min(PRESIGN_MAX);
    let t_sign = Instant::now();
    let plan = presign(net, opts, total, &seq0);
    let presign_secs = t_sign.elapsed().as_secs_f64();
    if opts.progress {
        println!(
            "devnet: {} transactions signed in {presign_secs:.1} s (before the timed window)",
            plan.len()
        );
    }
    // Which global transaction each validator's n-th submission is.
    let mut order: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (i, p) in plan.iter().enumerate() {
        order[p.node].push(i as u32);
    }
    let plan = Arc::new(plan);
    let live = Arc::new(Mutex::new(Live {
        sent: HashMap::with_capacity(plan.len().min(1 << 20)),
        hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds"),
        finalized: 0,
        height: 0,
        rejected: 0,
        errors: Vec::new(),
    }));
    // Finality: validator 0's block stream, on a connection of its own.
    let (mut fin_w, mut fin_r) = bin::connect(&net.apis[0], true)
        .with_context(|| format!("devnet: binary finality stream from {}", net.apis[0]))?;
    let watcher = {
        let live = live.clone();
        std::thread::spawn(move || {
            while let Ok(Some(ev)) = fin_r.next_event() {
                if let Event::Closing { code, message } = &ev {
                    // Counted as not final from here on: say why.
                    let mut l = live.lock().expect("not poisoned");
                    l.errors.push(format!(
                        "validator 0 closed the finality stream: {code}: {message}"
                    ));
                    return;
                }
                if let Event::Block { height, txs, .. } = ev {
                    let now = Instant::now();
                    let mut l = live.lock().expect("not poisoned");
                    l.height = l.height.max(height);
                    for h in &txs {
                        if let Some(t) = l.sent.remove(h) {
                            let us = now.saturating_duration_since(t).as_micros().max(1) as u64;
                            let _ = l.hist.record(us.min(3_600_000_000));
                            l.finalized += 1;
                        }
                    }
                }
            }
        })
    };
    // One submitting connection per validator, its acknowledgements read
    // on a thread of their own.
    let mut writers: Vec<BinWriter> = Vec::with_capacity(n);
    let mut ackers = Vec::with_capacity(n);
    for (v, order) in order.into_iter().enumerate() {
        let (w, mut r) = bin::connect(&net.apis[v], false)
            .with_context(|| format!("devnet: binary endpoint of validator {v}"))?;
        writers.push(w);
        let (live, plan) = (live.clone(), plan.clone());
        ackers.push(std::thread::spawn(move || {
            while let Ok(Some(ev)) = r.next_event() {
                match ev {
                    // Already known: a transaction the node has.
                    Event::Ack {
                        outcome: Err((code, _)),
                        ..
                    } if code == crate::http::codes::DUPLICATE => {}
                    Event::Ack {
                        index,
                        outcome: Err((code, msg)),
                    } => {
                        let Some(p) = order.get(index as usize).map(|g| &plan[*g as usize]) else {
                            continue;
                        };
                        let mut l = live.lock().expect("not poisoned");
                        l.sent.remove(&p.hash);
                        l.rejected += 1;
                        if l.errors.len() < 6 {
                            l.errors
                                .push(format!("tx {} at validator {v}: {code}: {msg}", p.hash));
                        }
                    }
                    Event::Closing { code, message } => {
                        let mut l = live.lock().expect("not poisoned");
                        if l.errors.len() < 6 {
                            l.errors.push(format!(
                                "validator {v} closed the stream: {code}: {message}"
                            ));
                        }
                        return;
                    }
                    _ => {}
                }
            }
        }));
    }
    let progress_sent = AtomicU64::new(0);
    let start = Instant::now();
    let cpu0 = cpu_time();
    let rate = opts.rate.max(1) as f64;
    let mut sent = 0usize;
    let mut next_print = start + Duration::from_secs(1);
    let mut touched = vec![false; n];
    while sent < plan.len() && start.elapsed() < opts.duration && !stop.load(Ordering::Relaxed) {
        let due = ((start.elapsed().as_secs_f64() * rate) as usize).min(plan.len());
        if due <= sent {
            std::thread::sleep(Duration::from_micros(500));
            continue;
        }
        {
            let mut l = live.lock().expect("not poisoned");
            for i in sent..due {
                let t = start + Duration::from_secs_f64(i as f64 / rate);
                l.sent.insert(plan[i].hash, t);
            }
        }
        for p in &plan[sent..due] {
            writers[p.node]
                .submit(&p.bytes)
                .map_err(|e| anyhow!("devnet: submitting to validator {}: {e}", p.node))?;
            touched[p.node] = true;
        }
        for (v, t) in touched.iter_mut().enumerate() {
            if *t {
                writers[v]
                    .flush()
                    .map_err(|e| anyhow!("devnet: submitting to validator {v}: {e}"))?;
                *t = false;
            }
        }
        sent = due;
        progress_sent.store(sent as u64, Ordering::Relaxed);
        if opts.progress && Instant::now() >= next_print {
            next_print += Duration::from_secs(1);
            let l = live.lock().expect("not poisoned");
            println!(
                "  t={:>4.0}s  sent {:>8}  finalized {:>8}  rejected {:>6}  height {:>6}  p50 {:>6.1} ms  p99 {:>7.1} ms",
                start.elapsed().as_secs_f64(),
                sent,
                l.finalized,
                l.rejected,
                l.height,
                l.hist.value_at_quantile(0.5) as f64 / 1000.0,
                l.hist.value_at_quantile(0.99) as f64 / 1000.0
            );
        }
    }
    let load_secs = start.elapsed().as_secs_f64();
    let harness_cpu = cpu_time().saturating_sub(cpu0);
    // Let the tail finalize.
    // Ping every connection now and then while waiting: a node closes a
    // connection it hears nothing from for `ws_idle` (60 s), and a slow
    // tail (a starved host) can take longer than that to finalize.
    let drain_deadline = Instant::now() + opts.drain;
    let mut next_ping = Instant::now() + Duration::from_secs(10);
    while Instant::now() < drain_deadline && !stop.load(Ordering::Relaxed) {
        if live.lock().expect("not poisoned").sent.is_empty() {
            break;
        }
        if Instant::now() >= next_ping {
            next_ping += Duration::from_secs(10);
            for w in writers.iter_mut().chain(std::iter::once(&mut fin_w)) {
                // A failure shows on the connection's reader.
                let _ = w.ping().and_then(|()| w.flush());
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for w in writers {
        w.close();
    }
    fin_w.close();
    for a in ackers {
        let _ = a.join();
    }
    let _ = watcher.join();
    let missing: Vec<String> = {
        let l = live.lock().expect("not poisoned");
        l.sent.keys().take(5).map(|h| h.to_hex()).collect()
    };
    report_missing(net, &missing);
    let (h, roots, roots_equal) = final_roots(net)?;
    let l = live.lock().expect("not poisoned");
    let bytes: usize = plan.iter().map(|p| p.bytes.len()).sum();
    let ms = |q: f64| l.hist.value_at_quantile(q) as f64 / 1000.0;
    let (checked, stopped, flagged) = super::compliance_counts(net);
    Ok(Summary {
        compliance_checked: checked,
        compliance_stopped: stopped,
        compliance_flagged: flagged,
        submitted: sent as u64 - l.rejected,
        rejected: l.rejected,
        finalized: l.finalized,
        blocks: h,
        tx_per_s: l.finalized as f64 / load_secs.max(1e-9),
        finality_p50_ms: ms(0.5),
        finality_p99_ms: ms(0.99),
        finality_max_ms: l.hist.max() as f64 / 1000.0,
        finality_p90_ms: ms(0.90),
        finality_p999_ms: ms(0.999),
        tx_bytes_mean: bytes as f64 / plan.len().max(1) as f64,
        load_secs,
        submit_errors: l.errors.clone(),
        compared_height: h,
        roots_equal,
        roots,
        submit_path: "bin".into(),
        presign_secs,
        harness_cpu_us_per_tx: harness_cpu.as_secs_f64() * 1e6 / sent.max(1) as f64,
        observer: None,
    })
}
