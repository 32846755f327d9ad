//! Helpers shared by the multi-process test files: ports, a started local
//! network, heights, submissions, metrics.

#![allow(dead_code)]

use plume_client::{rpc, RpcError};
use plume_node::devnet::LocalNet;
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

pub fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_plume"))
}

/// An exclusive lock on `base` against other test processes (held while
/// the returned file is open), or None if another process holds it.
fn lock(base: u16) -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = std::env::temp_dir().join(format!("plume-test-port-{base}.lock"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    // SAFETY: flock on a file descriptor we own; no pointers.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return None;
    }
    Some(f)
}

/// A base port such that base..base+n and base+100..base+100+n are free,
/// and both reserved against other test processes for the life of this
/// one (so no other test process picks them while our validators are down
/// between a stop and a restart, when the ports look free). Bases stay in
/// 20,000..32,099, below Linux's ephemeral range (32,768-60,999): a port
/// there can be taken by any outgoing connection between our check and
/// the validator's bind. The locks are taken before the ports are probed:
/// probing binds each port for an instant, and a probe of ports another
/// process holds could make its validator's bind fail.
pub fn free_base(n: u16) -> u16 {
    let seed = std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64;
    for attempt in 0..200u64 {
        let base = 20_000
            + ((seed.wrapping_mul(2654435761).wrapping_add(attempt * 7919)) % 120) as u16 * 100;
        // Both hundreds are locked: a network at `base` uses base.. for
        // peers and base+100.. for its API, and one at base+100 would use
        // the same ports for its peers.
        let (Some(a), Some(b)) = (lock(base), lock(base + 100)) else {
            continue;
        };
        let free = (0..n).all(|i| {
            TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && TcpListener::bind(("127.0.0.1", base + 100 + i)).is_ok()
        });
        if free {
            std::mem::forget(a);
            std::mem::forget(b);
            return base;
        }
    }
    panic!("no free port range");
}

pub fn net(n: usize) -> (tempfile::TempDir, LocalNet) {
    with_fresh_ports(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut net = LocalNet::create(exe(), &dir.path().join("net"), n, free_base(n as u16))?;
        net.start_all(Duration::from_secs(30))?;
        Ok((dir, net))
    })
}

/// Run `start` (which takes a fresh [`free_base`] range each call) again,
/// at most three times in all, while a validator fails to bind because
/// another process took one of its ports between the range's check and
/// the validator's bind (the range is free when checked, not reserved
/// against other programs). Any other failure panics at once.
pub fn with_fresh_ports<T>(mut start: impl FnMut() -> anyhow::Result<T>) -> T {
    for attempt in 1.. {
        match start() {
            Ok(t) => return t,
            Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {
                eprintln!("a port of the range was taken meanwhile, another range: {e:#}");
            }
            Err(e) => panic!("starting the network: {e:#}"),
        }
    }
    unreachable!()
}

pub fn height(net: &LocalNet, i: usize) -> u64 {
    net.status(i)
        .map(|s| s["height"].as_u64().unwrap_or(0))
        .unwrap_or(0)
}

pub fn wait_height(net: &LocalNet, i: usize, h: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while height(net, i) < h {
        assert!(
            Instant::now() < deadline,
            "validator {i} did not reach height {h} (at {}): {}",
            height(net, i),
            why_not(net, i)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What validator `i` looks like from outside: its status call's answer
/// or error, whether its process is alive, the end of its log.
pub fn why_not(net: &LocalNet, i: usize) -> String {
    let status = match net.status(i) {
        Ok(v) => v.to_string(),
        Err(e) => format!("status failed: {e:#}"),
    };
    let alive = net.children[i]
        .as_ref()
        .map(|c| std::path::Path::new(&format!("/proc/{}", c.id())).exists());
    let log = std::fs::read_to_string(net.homes[i].join("node.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(8).collect();
    format!(
        "process alive: {alive:?}; {status}; last log lines (newest first):\n  {}",
        tail.join("\n  ")
    )
}

pub fn submit(addr: &str, tx: &plume_protocol::Transaction) -> Result<Value, RpcError> {
    match rpc(
        addr,
        "plume_submitTransaction",
        json!([hex::encode(tx.to_bytes())]),
    ) {
        Ok(v) => Ok(v),
        Err(e) => Err(e
            .rpc()
            .cloned()
            .expect("a node error, not a transport error")),
    }
}

pub fn metric(api: &str, name: &str) -> u64 {
    let (_, body) = plume_client::http_get(api, "/metrics").unwrap();
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Poll `plume_getTransaction` on `api` until the transaction is final.
pub fn final_on(api: &str, hash: &str, timeout: Duration) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(v) = rpc(api, "plume_getTransaction", json!([hash])) {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Selected counters of every running validator, for failure messages.
pub fn diag(net: &LocalNet) -> String {
    const NAMES: &[&str] = &[
        "plume_blocks_finalized_total",
        "plume_txs_finalized_total",
        "plume_view",
        "plume_proposals_refused_total",
        "plume_batch_certs_formed_total",
        "plume_batch_fetches_total",
        "plume_batch_votes_sent_total",
        "plume_malformed_messages_total",
        "plume_peer_budget_shed_total",
        "plume_shed_sig_queue_total",
        "plume_mem_certified",
        "plume_mem_fetching",
        "plume_mem_finalized_waiting",
        "plume_mem_peer_pending",
    ];
    let mut out = String::new();
    for (i, api) in net.apis.iter().enumerate() {
        if net.children[i].is_none() {
            continue;
        }
        let vals: Vec<String> = NAMES
            .iter()
            .map(|n| format!("{}={}", n.trim_start_matches("plume_"), metric(api, n)))
            .collect();
        out.push_str(&format!("\n  validator {i}: {}", vals.join(" ")));
        let log = std::fs::read_to_string(net.homes[i].join("node.log")).unwrap_or_default();
        let notable: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\""))
            .collect();
        for l in notable.iter().rev().take(6).rev() {
            out.push_str(&format!("\n    {}", &l[..l.len().min(400)]));
        }
    }
    out
}

/// Transfers of 1 from accounts `from..from+k` (each its sequence 0).
pub fn transfers(net: &LocalNet, from: usize, k: usize) -> Vec<plume_protocol::Transaction> {
    use plume_client::txbuild::{self, Fees};
    (from..from + k)
        .map(|a| {
            txbuild::transfer(
                &net.chain_id,
                &net.accounts[a],
                0,
                &net.accounts[1].public_key().address(),
                1,
                None,
                Fees::default(),
                u64::MAX,
            )
        })
        .collect()
}

/// A transaction's id, hex.
pub fn hash_of(t: &plume_protocol::Transaction) -> String {
    t.body.signing_hash().to_hex()
}
