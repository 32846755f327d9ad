//! `plume bench attack --kind K`: honest throughput and finality, and the
//! latency of `/health` on validator 0, during an attack, next to a quiet
//! run of the same network and load (issue 17).
//!
//! Kinds (traffic only to loopback, bounded in count and time):
//! - `peer-flood`: validator 3 is a rogue holding its real keys; it floods
//!   the other three with batch requests naming one batch 256 times, block
//!   sync and catch-up requests, validly signed timeouts replayed, and junk
//!   batches (the quiet run has it connected and silent);
//! - `handshake-flood`: 160 connections from 40 loopback addresses to
//!   validator 0's peer port that never finish a handshake, topped up every
//!   second;
//! - `slowloris`: 500 half-sent request heads to validator 0's API from
//!   127.0.0.2, topped up every second;
//! - `ws-stall`: 64 WebSocket subscribers to every block on validator 0
//!   that never read;
//! - `mempool-squat`: 300 funded accounts keep validator 0's mempool full
//!   with high-tip transactions, 256 each.

use super::bench::{free_base, metric, plume_exe, ClusterOptions};
use crate::{Options, Report};
use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use plume_client::txbuild::{self, Fees};
use plume_node::devnet::rogue::{flood_kit, Consensus, Rogue};
use plume_node::devnet::{self, DevnetOptions, LocalNet, Summary};
use serde_json::json;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The kinds `--kind` takes.
pub const KINDS: &[&str] = &[
    "peer-flood",
    "handshake-flood",
    "slowloris",
    "ws-stall",
    "mempool-squat",
];

/// Accounts of the mempool squat.
const SQUATTERS: usize = 300;

/// `plume bench attack`.
pub fn run_attack(opts: &Options) -> Result<Report> {
    let exe = plume_exe()?;
    let c = &opts.cluster;
    let kind = c.attack.as_str();
    if !KINDS.contains(&kind) {
        bail!("--kind must be one of {}", KINDS.join(", "));
    }
    if c.validators != 4 {
        bail!("bench attack runs 4 validators");
    }
    let quiet = run_phase(&exe, c, kind, false).context("quiet run")?;
    let attacked = run_phase(&exe, c, kind, true).context("attacked run")?;
    let mut r = Report::new("attack");
    r.machine.insert("kind".into(), kind.to_string());
    r.machine
        .insert("offered_rate_tx_per_s".into(), c.rate.to_string());
    r.machine
        .insert("duration_s".into(), c.duration_s.to_string());
    for (name, p) in [("quiet", &quiet), ("attack", &attacked)] {
        r.figure(&format!("{name}_tx_per_s"), p.summary.tx_per_s);
        r.figure(
            &format!("{name}_finality_p50_ms"),
            p.summary.finality_p50_ms,
        );
        r.figure(
            &format!("{name}_finality_p99_ms"),
            p.summary.finality_p99_ms,
        );
        r.figure(&format!("{name}_rejected"), p.summary.rejected as f64);
        r.figure(&format!("{name}_health_p50_ms"), p.health_ms(0.5));
        r.figure(&format!("{name}_health_p99_ms"), p.health_ms(0.99));
        r.figure(&format!("{name}_health_failed"), p.health_failed as f64);
        r.figure(&format!("{name}_victim_peak_rss_mib"), p.peak_rss_mib);
        r.figure(&format!("{name}_shed_total"), p.shed);
        r.figure(
            &format!("{name}_state_roots_equal"),
            if p.summary.roots_equal { 1.0 } else { 0.0 },
        );
    }
    let ratio = 100.0 * attacked.summary.tx_per_s / quiet.summary.tx_per_s.max(1e-9);
    r.figure("throughput_ratio_percent", ratio);
    r.target("throughput_ratio_percent", true, 80.0);
    r.target("attack_health_p99_ms", false, 100.0);
    Ok(r)
}

struct Phase {
    summary: Summary,
    health: Histogram<u64>,
    health_failed: u64,
    peak_rss_mib: f64,
    shed: f64,
}

impl Phase {
    fn health_ms(&self, q: f64) -> f64 {
        self.health.value_at_quantile(q) as f64 / 1000.0
    }
}

fn run_phase(exe: &std::path::Path, c: &ClusterOptions, kind: &str, attack: bool) -> Result<Phase> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("net");
    let base = free_base(c.validators as u16)?;
    let mut net = LocalNet::create(exe, &dir, c.validators, base)?;
    let rogue_flood = kind == "peer-flood";
    let rogue = if rogue_flood {
        for i in 0..3 {
            net.start(i)?;
        }
        let r = Rogue::start(&net.homes[3], Consensus::Silent);
        net.wait_ready(Duration::from_secs(60))?;
        r.wait_connected(3, Duration::from_secs(30));
        Some(r)
    } else {
        net.start_all(Duration::from_secs(60))?;
        None
    };
    if kind == "mempool-squat" {
        fund_squatters(&net)?;
    }
    let victim_pid = net.children[0].as_ref().map(|ch| ch.id()).unwrap_or(0);
    let shed_before = metric(&net.apis[0], "plume_shed_total")
        + metric(&net.apis[0], "plume_peer_budget_shed_total");
    let stop = Arc::new(AtomicBool::new(false));
    // /health on validator 0 every 20 ms, all along.
    let prober = {
        let (api, stop) = (net.apis[0].clone(), stop.clone());
        std::thread::spawn(move || {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static bounds");
            let mut failed = 0u64;
            let mut peak = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                match plume_client::http_get(&api, "/health") {
                    Ok((200, _)) => {
                        let _ = h.record(t0.elapsed().as_micros().max(1) as u64);
                    }
                    _ => failed += 1,
                }
                peak = peak.max(rss_kib(victim_pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            (h, failed, peak)
        })
    };
    let attacker = if attack {
        let until = Instant::now() + Duration::from_secs(c.duration_s + 30);
        Some(spawn_attack(
            kind,
            &net,
            rogue.as_ref(),
            stop.clone(),
            until,
        )?)
    } else {
        None
    };
    if rogue_flood {
        net.apis.truncate(3);
    }
    let dopts = DevnetOptions {
        validators: net.apis.len(),
        dir: dir.clone(),
        duration: Duration::from_secs(c.duration_s),
        rate: c.rate,
        base_port: base,
        settle_every: 0,
        progress: false,
        count: None,
        drain: Duration::from_secs(20),
        tx_size: c.tx_size,
        transport: c.transport.clone(),
        submit: c.submit,
        sanctioned_every: 0,
        compliance: false,
        observer: false,
        hold: false,
    };
    let summary = devnet::drive_load(&net, &dopts, &AtomicBool::new(false));
    stop.store(true, Ordering::Relaxed);
    if let Some(a) = attacker {
        let _ = a.join();
    }
    let (health, health_failed, peak) = prober
        .join()
        .map_err(|_| anyhow::anyhow!("health prober panicked"))?;
    let shed = metric(&net.apis[0], "plume_shed_total")
        + metric(&net.apis[0], "plume_peer_budget_shed_total")
        - shed_before;
    drop(rogue);
    Ok(Phase {
        summary: summary?,
        health,
        health_failed,
        peak_rss_mib: peak as f64 / 1024.0,
        shed,
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn squatter_key(i: usize) -> plume_crypto::ed25519::SigningKey {
    let d = plume_crypto::hash(
        plume_crypto::Domain::Address,
        format!("plume bench squatter {i}").as_bytes(),
    );
    plume_crypto::ed25519::SigningKey::from_bytes(&d.0)
}

/// Fund the squatters in two batch payments from the last devnet account
/// (its first two sequences; the load generator's first two transactions
/// from it are then refused, in both runs alike).
fn fund_squatters(net: &LocalNet) -> Result<()> {
    use plume_protocol::calls::{BatchPay, Payment};
    let payer = net.accounts.last().context("accounts")?;
    let mut last = String::new();
    for (seq, chunk) in (0..SQUATTERS).collect::<Vec<_>>().chunks(150).enumerate() {
        let call = BatchPay {
            asset: plume_protocol::tx::NATIVE_ASSET,
            payments: chunk
                .iter()
                .map(|&i| Payment {
                    to: squatter_key(i).public_key().address().0,
                    amount: 1_000_000_000_000,
                })
                .collect(),
        };
        let fees = Fees {
            gas_limit: 2_000_000,
            ..Fees::default()
        };
        let body = txbuild::body(&net.chain_id, &[payer], seq as u64, fees, u64::MAX, call);
        let tx = plume_protocol::Transaction::sign(body, &[payer]);
        last = tx.body.signing_hash().to_hex();
        plume_client::rpc(
            &net.apis[0],
            "plume_submitTransaction",
            json!([hex::encode(tx.to_bytes())]),
        )
        .context("funding the squatters")?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while plume_client::rpc(&net.apis[0], "plume_getTransaction", json!([last])).is_err() {
        if Instant::now() > deadline {
            bail!("funding the squatters did not finalize");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn spawn_attack(
    kind: &str,
    net: &LocalNet,
    rogue: Option<&Rogue>,
    stop: Arc<AtomicBool>,
    until: Instant,
) -> Result<std::thread::JoinHandle<()>> {
    let api: SocketAddr = net.apis[0].parse()?;
    let peer_port: SocketAddr = {
        let cfg = std::fs::read_to_string(net.homes[0].join("config.toml"))?;
        let v: toml::Value = toml::from_str(&cfg)?;
        v["node"]["listen_addr"]
            .as_str()
            .context("node.listen_addr")?
            .parse()?
    };
    let live = move || !stop.load(Ordering::Relaxed) && Instant::now() < until;
    Ok(match kind {
        "peer-flood" => {
            let rogue = rogue.context("peer-flood needs the rogue")?;
            // A block with batches, once the load has made some.
            let apis = net.apis.clone();
            let home = net.homes[3].clone();
            let sender = rogue.sender();
            std::thread::spawn(move || {
                let Some((head, batch, view, height)) = find_batch_block(&apis[0], &live) else {
                    return;
                };
                let Ok((kinds, timeouts)) = flood_kit(&home, head, batch, view, height + 1000, 60)
                else {
                    return;
                };
                let mut round = 0usize;
                while live() && round < 200_000 {
                    for to in 0..3u32 {
                        for (ch, m) in &kinds {
                            sender.send(to, *ch, m);
                        }
                        sender.send(
                            to,
                            plume_netstack::Channel::Consensus,
                            &timeouts[round % timeouts.len()],
                        );
                    }
                    round += 1;
                    std::thread::sleep(Duration::from_millis(1));
                    sender.drain();
                }
            })
        }
        "handshake-flood" | "slowloris" => {
            let (to, per_ip, ips, head): (SocketAddr, usize, u8, &'static [u8]) =
                if kind == "slowloris" {
                    (api, 500, 1, b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                } else {
                    (peer_port, 4, 40, b"")
                };
            std::thread::spawn(move || {
                let mut held: Vec<TcpStream> = Vec::new();
                while live() {
                    held.retain(|s| s.peer_addr().is_ok());
                    for i in 0..ips {
                        let from = Ipv4Addr::new(127, 0, 0, 2 + i);
                        let want = per_ip;
                        let have = held
                            .iter()
                            .filter(|s| s.local_addr().is_ok_and(|a| a.ip() == from))
                            .count();
                        for _ in have..want {
                            if let Ok(mut s) = plume_netstack::tcp::connect_from(from, to) {
                                std::thread::sleep(Duration::from_micros(200));
                                let _ = s.write_all(head);
                                held.push(s);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        }
        "ws-stall" => {
            let api = net.apis[0].clone();
            std::thread::spawn(move || {
                let mut subs = Vec::new();
                for _ in 0..64 {
                    if let Ok((mut ws, _)) = tungstenite::connect(format!("ws://{api}/ws")) {
                        let _ = ws.send(tungstenite::Message::text(
                            r#"{"jsonrpc":"2.0","id":1,"method":"plume_subscribe","params":["blocks"]}"#,
                        ));
                        subs.push(ws);
                    }
                }
                while live() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                drop(subs);
            })
        }
        "mempool-squat" => {
            let apis = net.apis.clone();
            let chain = net.chain_id.clone();
            std::thread::spawn(move || {
                let keys: Vec<_> = (0..SQUATTERS).map(squatter_key).collect();
                let fees = Fees {
                    max_fee_per_gas: 10_000,
                    priority_fee_per_gas: 5_000,
                    gas_limit: 200_000,
                };
                let mut client = plume_client::RpcClient::new(&apis[0]);
                let mut seq = 0u64;
                while live() && seq < 256 {
                    let params: Vec<serde_json::Value> = keys
                        .iter()
                        .map(|k| {
                            let to = keys[0].public_key().address();
                            let t = txbuild::transfer(&chain, k, seq, &to, 1, None, fees, u64::MAX);
                            json!([hex::encode(t.to_bytes())])
                        })
                        .collect();
                    for chunk in params.chunks(300) {
                        let _ = client.call_batch("plume_submitTransaction", chunk);
                    }
                    seq += 1;
                }
                while live() {
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        }
        other => bail!("unknown attack kind {other}"),
    })
}

/// (block id, a batch digest, the view, the height) of a recent block with
/// batches on `api`.
fn find_batch_block(
    api: &str,
    live: &dyn Fn() -> bool,
) -> Option<(plume_crypto::Digest, plume_crypto::Digest, u64, u64)> {
    while live() {
        let st = plume_client::rpc(api, "plume_status", json!([])).ok()?;
        let (h, view) = (st["height"].as_u64()?, st["view"].as_u64()?);
        for k in (1..=h).rev().take(20) {
            let Ok(b) = plume_client::rpc(api, "plume_getBlock", json!([k])) else {
                continue;
            };
            let first = b["batches"].as_array().and_then(|a| a.first().cloned());
            if let (Some(d), Some(id)) = (first, b["hash"].as_str()) {
                let d = plume_crypto::Digest::from_hex(d.as_str()?).ok()?;
                return Some((plume_crypto::Digest::from_hex(id).ok()?, d, view, h));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}
