//! Whole-network restarts with real `plume start` processes: every
//! validator stopped (SIGTERM, which must exit cleanly and fast) or killed
//! (SIGKILL, at random moments under load) and started again from its
//! home. The chain must move on, nothing reported final may be lost, and
//! every validator must end with the same state root. Also: a validator
//! whose safety state is unreadable refuses to start, and the recovery
//! command it names works.

mod support;

use plume_client::rpc;
use plume_client::txbuild::{self, Fees};
use plume_node::devnet::LocalNet;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{height, net, submit, wait_height};

/// Submit, ignoring a validator that is down.
fn try_submit(api: &str, t: &plume_protocol::Transaction) -> bool {
    rpc(
        api,
        "plume_submitTransaction",
        json!([hex::encode(t.to_bytes())]),
    )
    .is_ok()
}

/// Submits transfers from accounts `from..from+k` in turn (each its own
/// sequence, only advanced when a submission is accepted) until stopped;
/// remembers every accepted transaction.
struct Load {
    stop: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(net: &LocalNet, from: usize, k: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted: Arc<Mutex<Vec<String>>> = Default::default();
        let (chain, apis) = (net.chain_id.clone(), net.apis.clone());
        let keys: Vec<_> = (from..from + k)
            .map(plume_node::devnet::account_key)
            .collect();
        let to = net.accounts[1].public_key().address();
        let (s2, a2) = (stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            let mut seqs = vec![0u64; keys.len()];
            let mut n = 0usize;
            // Bounded: at most 5,000 submissions, about 200 a second.
            while !s2.load(Ordering::Relaxed) && n < 5_000 {
                let a = n % keys.len();
                let t = txbuild::transfer(
                    &chain,
                    &keys[a],
                    seqs[a],
                    &to,
                    1,
                    None,
                    Fees::default(),
                    u64::MAX,
                );
                // Each account talks to one validator (its sequences in order).
                if try_submit(&apis[a % apis.len()], &t) {
                    seqs[a] += 1;
                    a2.lock().unwrap().push(t.body.signing_hash().to_hex());
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Load {
            stop,
            accepted,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.accepted.lock().unwrap().clone()
    }
}

/// Which of `hashes` validator `i` reports final, with their heights.
fn final_set(net: &LocalNet, i: usize, hashes: &[String]) -> BTreeMap<String, u64> {
    hashes
        .iter()
        .filter_map(|h| {
            let v = rpc(&net.apis[i], "plume_getTransaction", json!([h])).ok()?;
            Some((h.clone(), v["height"].as_u64()?))
        })
        .collect()
}

/// Restart every validator, check the chain moves on within 10 s, that
/// `reported` (final before the outage) is final everywhere at the same
/// heights, and that the roots agree.
fn restart_and_check(net: &mut LocalNet, reported: &BTreeMap<String, u64>, what: &str) {
    let t_start = Instant::now();
    for i in 0..net.homes.len() {
        net.start(i).unwrap();
    }
    net.wait_ready(Duration::from_secs(30)).unwrap();
    let h = height(net, 0);
    let t0 = Instant::now();
    wait_height(net, 0, h + 1, Duration::from_secs(10));
    eprintln!(
        "{what}: APIs up after {:?}, next block {:?} later",
        t0 - t_start,
        t0.elapsed()
    );
    for i in 0..net.homes.len() {
        let keys: Vec<String> = reported.keys().cloned().collect();
        let now = final_set(net, i, &keys);
        for (tx, height) in reported {
            assert_eq!(
                now.get(tx),
                Some(height),
                "{what}: transaction {tx} reported final at height {height} is not final on validator {i} after the restart"
            );
        }
    }
    let (_, roots) = net
        .converge(h + 1, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(roots.windows(2).all(|w| w[0] == w[1]), "{what}: {roots:?}");
}

#[test]
fn stopping_every_validator_then_starting_them_again_loses_nothing_final() {
    let (_d, mut net) = net(4);
    wait_height(&net, 0, 1, Duration::from_secs(30));
    let load = Load::start(&net, 100, 40);
    std::thread::sleep(Duration::from_secs(3));
    // Stop all four under load: each exits cleanly (code 0) and fast.
    let accepted = load.accepted.lock().unwrap().clone();
    let reported = final_set(&net, 0, &accepted);
    assert!(
        !reported.is_empty(),
        "some transactions were final before the stop"
    );
    let mut took = Vec::new();
    for i in 0..4 {
        let (status, t) = net
            .stop(i, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("validator {i} did not exit within 30 s of SIGTERM"));
        assert!(status.success(), "validator {i} exited with {status}");
        took.push(t);
    }
    eprintln!("SIGTERM to exit under load: {took:?}");
    load.finish();
    restart_and_check(&mut net, &reported, "after SIGTERM of all");
}

#[test]
fn killing_every_validator_at_random_moments_ten_times_loses_nothing_final() {
    let (_d, mut net) = net(4);
    wait_height(&net, 0, 1, Duration::from_secs(30));
    // Seeded moments, printed so a failure can be replayed by hand.
    let seed = std::process::id() as u64;
    eprintln!("kill -9 moments seed {seed}");
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut all: BTreeMap<String, u64> = BTreeMap::new();
    for round in 0..10 {
        let load = Load::start(&net, 150 + 25 * round, 25);
        let ms = 300 + next() % 2_000;
        std::thread::sleep(Duration::from_millis(ms));
        // What any validator reports final now must survive.
        let accepted = load.accepted.lock().unwrap().clone();
        let mut reported = BTreeMap::new();
        for i in 0..4 {
            reported.extend(final_set(&net, i, &accepted));
        }
        for i in 0..4 {
            net.kill9(i);
        }
        load.finish();
        restart_and_check(
            &mut net,
            &reported,
            &format!("round {round} ({ms} ms of load)"),
        );
        all.extend(reported);
    }
    assert!(
        all.len() > 50,
        "the rounds carried real load: {}",
        all.len()
    );
    // Everything reported final in any round is still final everywhere.
    for i in 0..4 {
        let keys: Vec<String> = all.keys().cloned().collect();
        assert_eq!(final_set(&net, i, &keys), all, "validator {i}");
    }
}

#[test]
fn unreadable_safety_slots_refuse_to_start_and_the_named_reset_recovers() {
    let (_d, mut net) = net(4);
    wait_height(&net, 0, 3, Duration::from_secs(30));
    let home = net.homes[3].clone();
    net.stop(3, Duration::from_secs(30)).expect("stopped");
    for slot in ["safety-a.bin", "safety-b.bin"] {
        let p = home.join("data").join(slot);
        let mut raw = std::fs::read(&p).unwrap();
        for b in raw.iter_mut().skip(8).take(64) {
            *b ^= 0x5a;
        }
        std::fs::write(&p, raw).unwrap();
    }
    let out = std::process::Command::new(support::exe())
        .args(["start", "--home"])
        .arg(&home)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with no safety state");
    assert!(
        err.contains("refusing to start") && err.contains("plume safety reset"),
        "{err}"
    );
    // The operator follows the message: the network's view plus a margin.
    let view = net.status(0).unwrap()["view"].as_u64().unwrap();
    let out = std::process::Command::new(support::exe())
        .args(["safety", "reset", "--home"])
        .arg(&home)
        .args(["--above-view", &(view + 1000).to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    net.start(3).unwrap();
    net.wait_ready(Duration::from_secs(30)).unwrap();
    // It rejoins: caught up with the others and following the chain.
    let h = height(&net, 0);
    wait_height(&net, 3, h, Duration::from_secs(60));
    let t = txbuild::transfer(
        &net.chain_id,
        &net.accounts[400],
        0,
        &net.accounts[1].public_key().address(),
        1,
        None,
        Fees::default(),
        u64::MAX,
    );
    submit(&net.apis[3], &t).unwrap();
    let hash = t.body.signing_hash().to_hex();
    assert!(support::final_on(&net.apis[0], &hash, Duration::from_secs(60)).is_some());
}

#[test]
fn a_validator_whose_state_was_tampered_with_stops_with_the_divergence_error_and_the_others_go_on()
{
    use plume_storage::kv::{KvRead, KvStore, KvWrite, Table};
    let (_d, mut net) = net(4);
    wait_height(&net, 0, 2, Duration::from_secs(30));
    let victim = net.accounts[300].public_key().address();
    let home = net.homes[3].clone();
    net.stop(3, Duration::from_secs(30)).expect("stopped");
    // One account value changed under a valid checksum, tree untouched.
    {
        let kv = plume_storage::LmdbKv::open(
            &home.join("data").join("store"),
            &plume_storage::LmdbOptions::with_map_size_gib(1),
        )
        .unwrap();
        let key = plume_execution::state::account_key(&victim.0);
        let raw = {
            let r = kv.read_txn().unwrap();
            r.get(Table::Accounts, &key).unwrap().unwrap().to_vec()
        };
        let payload = &raw[..raw.len() - plume_storage::records::CHECKSUM_LEN];
        let mut rec = plume_execution::state::AccountRecord::decode(payload).unwrap();
        rec.balance += 1_000_000;
        let sealed = plume_storage::records::seal(Table::Accounts, &key, &rec.encode().unwrap());
        let mut w = kv.write_txn().unwrap();
        w.put(Table::Accounts, &key, &sealed).unwrap();
        w.commit().unwrap();
    }
    net.start(3).unwrap();
    net.wait_ready(Duration::from_secs(30)).unwrap();
    // A transfer from that account: validator 3 computes another state.
    let t = txbuild::transfer(
        &net.chain_id,
        &net.accounts[300],
        0,
        &net.accounts[1].public_key().address(),
        5,
        None,
        Fees::default(),
        u64::MAX,
    );
    submit(&net.apis[0], &t).unwrap();
    let hash = t.body.signing_hash().to_hex();
    let at = support::final_on(&net.apis[0], &hash, Duration::from_secs(60))
        .expect("final on the honest ones")["height"]
        .as_u64()
        .unwrap();
    // At the header that carries that height's root it stops, loudly.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let s = net.status(3).unwrap();
        if s["state"] == "diverged" {
            break s;
        }
        assert!(Instant::now() < deadline, "validator 3 did not notice: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["diverged"]["height"].as_u64(), Some(at), "{status}");
    assert_eq!(
        support::metric(&net.apis[3], "plume_state_diverged"),
        1,
        "exported as a metric"
    );
    let log = std::fs::read_to_string(home.join("node.log")).unwrap();
    assert!(
        log.contains("DIVERGED") && log.contains(&format!("after block {at}")),
        "the log names the height"
    );
    // The other three go on.
    for i in 0..3 {
        assert_eq!(net.status(i).unwrap()["state"], "ok");
    }
    let h = height(&net, 0);
    let t2 = txbuild::transfer(
        &net.chain_id,
        &net.accounts[301],
        0,
        &net.accounts[1].public_key().address(),
        1,
        None,
        Fees::default(),
        u64::MAX,
    );
    submit(&net.apis[0], &t2).unwrap();
    for i in 0..3 {
        support::final_on(
            &net.apis[i],
            &t2.body.signing_hash().to_hex(),
            Duration::from_secs(60),
        )
        .expect("the chain goes on without it");
    }
    assert!(height(&net, 1) > h);
}
