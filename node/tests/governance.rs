//! Governance on a running 4-validator network, the way token holders use
//! it: bond with `plume tx stake`, propose a burn-share change with `plume
//! tx propose`, vote with `plume tx vote`, and see the change take effect
//! exactly at its activation height on every validator (the receipts
//! before and after show it); a vote after the period is refused.

mod support;

use plume_client::rpc;
use plume_node::devnet::LocalNet;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{exe, final_on, free_base, height, wait_height, with_fresh_ports};

const VOTING_BLOCKS: u64 = 80;
const DEPOSIT_BLOCKS: u64 = 20;

fn plume_ok(args: &[&str]) -> String {
    let out = Command::new(exe())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plume {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON lines a `--json` command printed, merged into one object.
fn json_lines(out: &str) -> Value {
    let mut all = serde_json::Map::new();
    for l in out.lines().filter(|l| l.starts_with('{')) {
        if let Value::Object(m) = serde_json::from_str(l).unwrap() {
            all.extend(m);
        }
    }
    Value::Object(all)
}

/// A network whose genesis has short governance periods and a fast idle
/// heartbeat (10 blocks/s), so a voting period passes in seconds.
fn governed_net() -> (tempfile::TempDir, LocalNet) {
    with_fresh_ports(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut net = LocalNet::create(exe(), &dir.path().join("net"), 4, free_base(4))?;
        let mut g: Value = serde_json::from_slice(&std::fs::read(&net.genesis_path)?)?;
        g["params"]["idle_block_interval_ms"] = json!(100);
        g["params"]["governance"] = json!({
            "min_deposit": 1_000_000,
            "deposit_period_blocks": DEPOSIT_BLOCKS,
            "voting_period_blocks": VOTING_BLOCKS,
            "quorum_percent": 33,
            "threshold_percent": 50,
            "veto_percent": 33,
            "unbonding_blocks": 100,
        });
        let bytes = serde_json::to_vec_pretty(&g)?;
        std::fs::write(&net.genesis_path, &bytes)?;
        for h in &net.homes {
            std::fs::write(h.join("genesis.json"), &bytes)?;
        }
        net.start_all(Duration::from_secs(30))?;
        Ok((dir, net))
    })
}

/// Account `i`'s key file of the devnet.
fn key_file(net: &LocalNet, i: usize) -> String {
    net.genesis_path
        .parent()
        .unwrap()
        .join("accounts")
        .join(format!("{i}.key"))
        .display()
        .to_string()
}

fn final_everywhere(net: &LocalNet, hash: &str) -> Vec<Value> {
    net.apis
        .iter()
        .map(|a| final_on(a, hash, Duration::from_secs(30)).expect("final on every validator"))
        .collect()
}

fn hash_of(out: &str) -> String {
    json_lines(out)["hash"]
        .as_str()
        .expect("a hash")
        .to_string()
}

/// `fee_burned` over the receipt's base part, and whether it is exactly
/// `percent` of it (rounded down as execution does).
fn burns(receipt: &Value, percent: u128) -> bool {
    let n = |k: &str| receipt[k].as_str().unwrap().parse::<u128>().unwrap();
    let base = n("fee_paid") - n("tip");
    n("fee_burned") == base / 100 * percent + base % 100 * percent / 100
}

#[test]
fn a_burn_share_change_passes_and_takes_effect_exactly_at_its_height_on_every_validator() {
    let (dir, net) = governed_net();
    let _keep = dir;
    wait_height(&net, 0, 2, Duration::from_secs(30));
    let api = net.apis[0].clone();
    let key = |i: usize| key_file(&net, i);
    // Accounts 0, 1, 2 bond 6, 3 and 1 million.
    for (i, amount) in [(0usize, "6000000"), (1, "3000000"), (2, "1000000")] {
        let k = key(i);
        let out = plume_ok(&[
            "tx", "stake", "--node", &api, "--key", &k, "--amount", amount, "--json",
        ]);
        for t in final_everywhere(&net, &hash_of(&out)) {
            assert_eq!(t["receipt"]["status"], "Success", "{t}");
        }
    }
    let addr0 = net.accounts[0].public_key().address().to_hex();
    let s = plume_ok(&["query", "stake", &addr0, "--node", &api]);
    assert!(s.contains("\"bonded\": \"6000000\""), "{s}");

    // Propose: burn 40 % from a height after the latest possible end of
    // voting (with room for the proposal to land).
    let activation = height(&net, 0) + DEPOSIT_BLOCKS + VOTING_BLOCKS + 100;
    let act = activation.to_string();
    let k0 = key(0);
    let out = plume_ok(&[
        "tx",
        "propose",
        "--node",
        &api,
        "--key",
        &k0,
        "--title",
        "burn 40 percent",
        "--deposit",
        "1000000",
        "--set",
        "fee_burn_percent=40",
        "--activation-height",
        &act,
        "--json",
    ]);
    let v = json_lines(&out);
    let proposal = v["proposal"].as_str().unwrap().to_string();
    for t in final_everywhere(&net, v["hash"].as_str().unwrap()) {
        assert_eq!(t["receipt"]["status"], "Success", "{t}");
    }
    // Votes: yes 6 + 3 million, no 1 million.
    for (i, option) in [(0usize, "yes"), (1, "yes"), (2, "no")] {
        let k = key(i);
        let out = plume_ok(&[
            "tx",
            "vote",
            "--node",
            &api,
            "--key",
            &k,
            "--proposal",
            &proposal,
            "--option",
            option,
            "--json",
        ]);
        for t in final_everywhere(&net, &hash_of(&out)) {
            assert_eq!(t["receipt"]["status"], "Success", "vote {i}: {t}");
        }
    }
    let p: Value =
        serde_json::from_str(&plume_ok(&["query", "proposal", &proposal, "--node", &api])).unwrap();
    assert_eq!(p["status"], "voting", "{p}");
    assert_eq!(p["tally"]["yes"], "9000000", "{p}");
    let voting_end = p["voting_end"].as_u64().unwrap();
    assert!(voting_end < activation, "{p}");

    // After the period: passed on every validator; a late vote is refused.
    for i in 0..4 {
        wait_height(&net, i, voting_end + 1, Duration::from_secs(60));
    }
    for a in &net.apis {
        let p: Value =
            serde_json::from_str(&plume_ok(&["query", "proposal", &proposal, "--node", a]))
                .unwrap();
        assert_eq!(p["status"], "passed", "{a}: {p}");
        assert_eq!(p["decided_height"], voting_end, "{a}: {p}");
    }
    let k2 = key(2);
    let out = plume_ok(&[
        "tx",
        "vote",
        "--node",
        &api,
        "--key",
        &k2,
        "--proposal",
        &proposal,
        "--option",
        "yes",
        "--json",
    ]);
    for t in final_everywhere(&net, &hash_of(&out)) {
        assert_eq!(t["receipt"]["status"], "Failed", "{t}");
        assert_eq!(t["receipt"]["reason"], "NOT_IN_VOTING", "{t}");
    }
    // Every validator reports the change scheduled at its height.
    for a in &net.apis {
        let before = rpc(a, "plume_getParams", json!([activation - 1])).unwrap();
        let after = rpc(a, "plume_getParams", json!([activation])).unwrap();
        assert_eq!(before["fee_burn_percent"], 50, "{before}");
        assert_eq!(after["fee_burn_percent"], 40, "{after}");
    }

    // A transfer before the activation height burns 50 %, one at or after
    // it 40 %, with the same receipt on every validator.
    let to = net.accounts[5].public_key().address().to_hex();
    let k3 = key(3);
    let transfer = || {
        let out = plume_ok(&[
            "tx", "transfer", "--node", &api, "--key", &k3, "--to", &to, "--amount", "7", "--json",
        ]);
        let ts = final_everywhere(&net, &hash_of(&out));
        for t in &ts[1..] {
            assert_eq!(t["receipt"], ts[0]["receipt"]);
            assert_eq!(t["height"], ts[0]["height"]);
        }
        ts[0].clone()
    };
    let t = transfer();
    let h = t["height"].as_u64().unwrap();
    assert!(
        h < activation,
        "the transfer landed at {h}, after {activation}"
    );
    assert!(burns(&t["receipt"], 50), "{t}");
    let deadline = Instant::now() + Duration::from_secs(90);
    while height(&net, 0) < activation {
        assert!(Instant::now() < deadline, "activation height not reached");
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = transfer();
    assert!(t["height"].as_u64().unwrap() >= activation, "{t}");
    assert!(burns(&t["receipt"], 40), "{t}");

    // And the validators agree on the state.
    let h = t["height"].as_u64().unwrap();
    let roots: Vec<Value> = net
        .apis
        .iter()
        .map(|a| {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match rpc(a, "plume_getStateRoot", json!([h])) {
                    Ok(r) => break r["root"].clone(),
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(100))
                    }
                    Err(e) => panic!("root of {h} on {a}: {e}"),
                }
            }
        })
        .collect();
    assert!(roots.windows(2).all(|w| w[0] == w[1]), "{roots:?}");

    // Block times: the validators' clocks, never going back, equal on
    // every validator.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut last = 0;
    for height in (h - 20)..=h {
        let b = rpc(&api, "plume_getBlock", json!([height])).unwrap();
        let t = b["time_ms"].as_u64().unwrap();
        assert!(
            t >= last,
            "block {height} at {t} before its parent at {last}"
        );
        assert!(
            t <= now_ms + 2_000 && t + 600_000 > now_ms,
            "block {height} at {t}, now {now_ms}"
        );
        for a in &net.apis[1..] {
            assert_eq!(
                rpc(a, "plume_getBlock", json!([height])).unwrap()["time_ms"],
                t
            );
        }
        last = t;
    }
}

#[test]
fn a_software_upgrade_halts_every_validator_at_its_height_naming_the_version_and_the_new_version_continues(
) {
    let (dir, mut net) = governed_net();
    let _keep = dir;
    wait_height(&net, 0, 2, Duration::from_secs(30));
    let api = net.apis[0].clone();
    let k0 = key_file(&net, 0);
    let out = plume_ok(&[
        "tx", "stake", "--node", &api, "--key", &k0, "--amount", "5000000", "--json",
    ]);
    final_everywhere(&net, &hash_of(&out));
    let up = height(&net, 0) + DEPOSIT_BLOCKS + VOTING_BLOCKS + 40;
    let up_s = up.to_string();
    let out = plume_ok(&[
        "tx",
        "propose",
        "--node",
        &api,
        "--key",
        &k0,
        "--title",
        "plume 9",
        "--deposit",
        "1000000",
        "--upgrade-version",
        "9.0.0",
        "--upgrade-height",
        &up_s,
        "--json",
    ]);
    let v = json_lines(&out);
    let proposal = v["proposal"].as_str().unwrap().to_string();
    for t in final_everywhere(&net, v["hash"].as_str().unwrap()) {
        assert_eq!(t["receipt"]["status"], "Success", "{t}");
    }
    let out = plume_ok(&[
        "tx",
        "vote",
        "--node",
        &api,
        "--key",
        &k0,
        "--proposal",
        &proposal,
        "--option",
        "yes",
        "--json",
    ]);
    final_everywhere(&net, &hash_of(&out));

    // Every validator stops by itself before executing `up`, and says why.
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..4 {
        let status = loop {
            if let Some(st) = net.children[i].as_mut().unwrap().try_wait().unwrap() {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "validator {i} did not halt for the upgrade: {}",
                support::why_not(&net, i)
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(!status.success(), "validator {i} exited with {status}");
        let log = std::fs::read_to_string(net.homes[i].join("node.log")).unwrap();
        assert!(
            log.contains("UPGRADE NEEDED")
                && log.contains("requires plume 9.0.0")
                && log.contains(&format!("from height {up}")),
            "validator {i}'s log does not name the upgrade"
        );
    }

    // Started again as 9.0.0 they execute `up` and go on.
    // SAFETY (set_var): this test process runs this test alone (nextest),
    // and no other thread reads the environment meanwhile.
    std::env::set_var("PLUME_UPGRADE_DRILL_VERSION", "9.0.0");
    for i in 0..4 {
        net.start(i).unwrap();
    }
    net.wait_ready(Duration::from_secs(60)).unwrap();
    for i in 0..4 {
        wait_height(&net, i, up + 2, Duration::from_secs(60));
    }
    let to = net.accounts[5].public_key().address().to_hex();
    let k3 = key_file(&net, 3);
    let out = plume_ok(&[
        "tx", "transfer", "--node", &api, "--key", &k3, "--to", &to, "--amount", "7", "--json",
    ]);
    for t in final_everywhere(&net, &hash_of(&out)) {
        assert_eq!(t["receipt"]["status"], "Success", "{t}");
        assert!(t["height"].as_u64().unwrap() > up, "{t}");
    }

    // Vesting by block time through the CLI: 1,000,000 over 2 s from now,
    // claimed once the block times passed the end.
    let ben = net.accounts[6].public_key().address().to_hex();
    let k6 = key_file(&net, 6);
    let out = plume_ok(&[
        "tx",
        "vest",
        "--node",
        &api,
        "--key",
        &k3,
        "--beneficiary",
        &ben,
        "--total",
        "1000000",
        "--duration-ms",
        "2000",
        "--json",
    ]);
    let v = json_lines(&out);
    let schedule = v["schedule"].as_str().unwrap().to_string();
    final_everywhere(&net, v["hash"].as_str().unwrap());
    std::thread::sleep(Duration::from_millis(2_500));
    let before: u128 = rpc(&api, "plume_getAccount", json!([ben])).unwrap()["balance"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let out = plume_ok(&[
        "tx",
        "claim-vested",
        "--node",
        &api,
        "--key",
        &k6,
        "--schedule",
        &schedule,
        "--json",
    ]);
    let t = &final_everywhere(&net, &hash_of(&out))[0];
    assert_eq!(t["receipt"]["status"], "Success", "{t}");
    let fee: u128 = t["receipt"]["fee_paid"].as_str().unwrap().parse().unwrap();
    let after: u128 = rpc(&api, "plume_getAccount", json!([ben])).unwrap()["balance"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(after, before + 1_000_000 - fee);
    let q = plume_ok(&["query", "vesting", &schedule, "--node", &api]);
    assert!(q.contains("\"released\": \"1000000\""), "{q}");
}
