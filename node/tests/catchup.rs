//! Catch-up from any distance with real `plume start` processes: a
//! validator stopped while the others finalize more than four times the
//! engine's in-memory block window starts again, fetches the finalized
//! blocks from the others' block stores, checks and executes them, and
//! ends with the same blocks, roots and transactions; then it votes on.

mod support;

use plume_client::rpc;
use plume_client::txbuild::{self, Fees};
use plume_consensus::engine::RETAIN_BLOCKS;
use plume_node::devnet::LocalNet;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{exe, free_base, height, metric, submit, wait_height};

fn block(api: &str, h: u64) -> serde_json::Value {
    rpc(api, "plume_getBlock", json!([h])).expect("getBlock")
}

#[test]
fn a_validator_far_behind_catches_up_from_the_block_stores_and_votes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = LocalNet::create(exe(), &dir.path().join("net"), 4, free_base(4)).unwrap();
    // Blocks back to back (no idle heartbeat), so the gap grows fast.
    let text = std::fs::read_to_string(&net.genesis_path).unwrap();
    let mut g: serde_json::Value = serde_json::from_str(&text).unwrap();
    g["params"]["idle_block_interval_ms"] = json!(0);
    let text = serde_json::to_string_pretty(&g).unwrap();
    std::fs::write(&net.genesis_path, &text).unwrap();
    for h in &net.homes {
        std::fs::write(h.join("genesis.json"), &text).unwrap();
    }
    net.start_all(Duration::from_secs(30)).unwrap();
    wait_height(&net, 3, 5, Duration::from_secs(60));
    net.stop(3, Duration::from_secs(30)).expect("stopped");
    let left_at = height(&net, 0);
    // Transfers while it is away: they must reach it through catch-up.
    let mut hashes = Vec::new();
    for k in 0..20 {
        let t = txbuild::transfer(
            &net.chain_id,
            &net.accounts[k],
            0,
            &net.accounts[100 + k].public_key().address(),
            1_000 + k as u128,
            None,
            Fees::default(),
            u64::MAX,
        );
        submit(&net.apis[k % 3], &t).expect("accepted");
        hashes.push(t.body.signing_hash().to_hex());
    }
    let gap = 4 * RETAIN_BLOCKS + 200;
    wait_height(&net, 0, left_at + gap, Duration::from_secs(600));
    for h in &hashes {
        support::final_on(&net.apis[0], h, Duration::from_secs(60)).expect("final on the others");
    }
    let target = height(&net, 0);
    let t0 = Instant::now();
    net.start(3).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while height(&net, 3) < target {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(net.homes[3].join("node.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "validator 3 stuck at {} (target {target}):{}\n{}",
                height(&net, 3),
                support::diag(&net),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = t0.elapsed();
    let caught = metric(&net.apis[3], "plume_catchup_blocks_total");
    eprintln!(
        "validator 3: {} blocks behind, caught up in {took:?} ({caught} from the block stores)",
        target - left_at
    );
    let log = std::fs::read_to_string(net.homes[3].join("node.log")).unwrap_or_default();
    let story: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("catch-up") || l.contains("caught up") || l.contains("sync"))
        .take(60)
        .collect();
    // The far part comes as catch-up segments; the near part may come by
    // block sync (answered from the stores too), which walks back from the
    // tip while the first segments are on their way: CI once saw 921 of
    // 1,248 blocks by segments, the rest by sync.
    assert!(
        caught >= RETAIN_BLOCKS,
        "the gap came from the block stores ({caught} blocks):\n{}",
        story.join("\n")
    );
    assert_eq!(metric(&net.apis[3], "plume_state_diverged"), 0);
    // Same blocks and roots; the transfers made while away are there.
    for h in [left_at + 1, left_at + gap / 2, target] {
        let (a, b) = (block(&net.apis[0], h), block(&net.apis[3], h));
        assert_eq!(a["hash"], b["hash"], "block {h}");
        assert_eq!(a["state_root"], b["state_root"], "root after {h}");
    }
    let genesis = plume_client::verify::load_genesis(&net.genesis_path).unwrap();
    let committee = genesis.validator_set().unwrap();
    for h in &hashes {
        let r3 = rpc(&net.apis[3], "plume_getTransaction", json!([h])).expect("known");
        let r0 = rpc(&net.apis[0], "plume_getTransaction", json!([h])).unwrap();
        assert_eq!(r3["receipt"], r0["receipt"], "{r3}");
        assert_eq!(r3["height"], r0["height"]);
        // Its finality proof, built from the caught-up records, checks out.
        let p: plume_protocol::proof::FinalityProof =
            serde_json::from_value(r3["finality_proof"].clone()).unwrap();
        let at = plume_protocol::proof::verify(&p, &committee, genesis.consensus_chain())
            .expect("finality proof of a caught-up block");
        assert_eq!(Some(at), r0["height"].as_u64());
    }
    // It takes part again: the chain moves on without validator 0 (three
    // of four are needed, so validator 3 must vote).
    net.stop(0, Duration::from_secs(30)).expect("stopped");
    let h3 = height(&net, 3);
    wait_height(&net, 3, h3 + 20, Duration::from_secs(120));
    let h = height(&net, 1).min(height(&net, 3));
    assert_eq!(
        block(&net.apis[1], h)["state_root"],
        block(&net.apis[3], h)["state_root"]
    );
}
