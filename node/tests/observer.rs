//! Observers (`plume start --role observer`) beside four real validators:
//! the observer follows the chain under load through the validators'
//! block stores, verifies every certificate and certified root, holds
//! exactly the validators' certified state, survives kill -9, never speaks
//! to consensus (the validators' counters show only its catch-up
//! requests), and refuses every submission; an observer whose own
//! execution differs from the validators' raises the divergence alarm.

mod support;

use plume_client::rpc;
use plume_node::devnet::{observer_check, LocalNet};
use serde_json::json;
use std::time::{Duration, Instant};
use support::{exe, final_on, free_base, hash_of, metric, submit, transfers, wait_height};

fn observer_net(dir: &std::path::Path) -> LocalNet {
    LocalNet::create_full(exe(), &dir.join("net"), 4, free_base(4), None, None, 1).unwrap()
}

#[test]
fn an_observer_follows_under_load_verifies_everything_survives_kill_9_and_refuses_submissions() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = observer_net(dir.path());
    net.start_all(Duration::from_secs(30)).unwrap();
    net.start_observer(0, Duration::from_secs(30)).unwrap();
    let obs = net.observers[0].api.clone();

    let status = net.observer_status(0).unwrap();
    assert_eq!(status["role"], "observer", "{status}");

    // Load from 300 accounts in three waves, the observer killed -9 after
    // the first and started again after the second.
    let txs = transfers(&net, 0, 300);
    let mut hashes = Vec::new();
    for (wave, chunk) in txs.chunks(100).enumerate() {
        for (i, t) in chunk.iter().enumerate() {
            submit(&net.apis[i % 4], t).expect("a validator accepts it");
            hashes.push(hash_of(t));
        }
        match wave {
            0 => {
                wait_height(&net, 0, 20, Duration::from_secs(60));
                net.kill9_observer(0);
            }
            1 => net.start_observer(0, Duration::from_secs(30)).unwrap(),
            _ => {}
        }
    }
    for h in &hashes {
        assert!(
            final_on(&net.apis[0], h, Duration::from_secs(60)).is_some(),
            "{h} not final on validator 0"
        );
    }
    let top = rpc(&net.apis[0], "plume_status", json!([])).unwrap()["height"]
        .as_u64()
        .unwrap();

    // It reaches the validators' height (STATE_LAG blocks later, on idle
    // heartbeats) with exactly the root they certified there.
    let check = observer_check(&net, 0, top, Duration::from_secs(60)).unwrap();
    assert!(
        check.height >= top,
        "observer stuck at {check:?}, chain at {top}"
    );
    assert!(check.equal(), "{check:?}");
    assert!(check.observed_blocks > 0, "{check:?}");
    assert_eq!(metric(&obs, "plume_catchup_refused_total"), 0);
    assert_eq!(metric(&obs, "plume_state_diverged"), 0);

    // Every transaction is there, at the height the validators give, with
    // a finality proof (after the restart too: nothing lost, nothing twice).
    for h in &hashes {
        let on_v = rpc(&net.apis[0], "plume_getTransaction", json!([h])).unwrap();
        let on_o = rpc(&obs, "plume_getTransaction", json!([h]))
            .unwrap_or_else(|e| panic!("{h} not on the observer: {e:#}"));
        assert_eq!(on_o["height"], on_v["height"], "{h}");
        assert_eq!(on_o["receipt"], on_v["receipt"], "{h}");
    }

    // Its fund-flow index holds every flow exactly once, kill -9 and
    // restart notwithstanding: 300 transfers of 1 into account 1.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&obs, "plume_index_height") < check.height && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let one = net.accounts[1].public_key().address().to_hex();
    let into = rpc(&obs, "plume_flows", json!([one, {"direction": "in"}])).unwrap();
    let flows = into["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 300, "{into}");
    assert!(flows.iter().all(|f| f["to"] == one && f["amount"] == "1"));
    let mut seen: Vec<&str> = flows.iter().map(|f| f["tx"].as_str().unwrap()).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), 300, "a transaction indexed twice");
    let vol = rpc(&obs, "plume_volume", json!([])).unwrap();
    assert_eq!(vol["assets"][0]["transferred"], "300", "{vol}");
    // A walk: out of account 2 to account 1 (hop 1), then account 1's own
    // transfer back to itself reaches nobody new.
    let two = net.accounts[2].public_key().address().to_hex();
    let walk = rpc(&obs, "plume_flows", json!([two, {"depth": 3}])).unwrap();
    assert_eq!(walk["accounts"][&one], 1, "{walk}");
    let trace = rpc(&obs, "plume_trace", json!([hashes[7]])).unwrap();
    assert_eq!(
        trace["index"]["flows"].as_array().unwrap().len(),
        1,
        "{trace}"
    );
    assert_eq!(trace["transaction"]["hash"], hashes[7].as_str());
    // Validators keep no index.
    let e = rpc(&net.apis[0], "plume_flows", json!([one])).unwrap_err();
    assert_eq!(e.rpc().map(|e| e.code), Some(-32601), "{e:#}");

    // It never spoke to consensus: each validator saw only its catch-up
    // requests, and it sent some to every validator.
    for api in &net.apis {
        assert!(metric(api, "plume_observer_requests_total") > 0, "{api}");
        assert_eq!(metric(api, "plume_observer_refused_total"), 0, "{api}");
    }

    // It refuses a submission, with the read-only code, on JSON-RPC.
    let late = transfers(&net, 300, 1).remove(0);
    let err = submit(&obs, &late).expect_err("an observer accepts no transaction");
    assert_eq!(err.code, 1016, "{err:?}");
    assert!(err.message.contains("observer"), "{err:?}");
}

#[test]
fn an_observer_whose_execution_differs_raises_the_divergence_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = observer_net(dir.path());
    // The observer's genesis gives account 0 one unit more: its state
    // differs from the first block on, whatever the validators serve.
    let path = net.observers[0].home.join("genesis.json");
    let mut g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let amount: u128 = g["alloc"][0]["amount"].as_str().unwrap().parse().unwrap();
    g["alloc"][0]["amount"] = json!((amount + 1).to_string());
    std::fs::write(&path, serde_json::to_vec_pretty(&g).unwrap()).unwrap();

    net.start_all(Duration::from_secs(30)).unwrap();
    net.start_observer(0, Duration::from_secs(30)).unwrap();
    let txs = transfers(&net, 0, 20);
    for (i, t) in txs.iter().enumerate() {
        submit(&net.apis[i % 4], t).unwrap();
    }
    wait_height(&net, 0, 20, Duration::from_secs(60));

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let s = net.observer_status(0).unwrap();
        if s["state"] == "diverged" || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["state"], "diverged", "{status}");
    let d = &status["diverged"];
    assert_ne!(d["ours"], d["certified"], "{status}");
    assert_eq!(metric(&net.observers[0].api, "plume_state_diverged"), 1);
    // It serves no state the validators did not certify: nothing past
    // its genesis was committed.
    assert_eq!(status["height"], 0, "{status}");
    let log = std::fs::read_to_string(net.observers[0].home.join("node.log")).unwrap();
    assert!(log.contains("DIVERGED"), "no alarm in the log");
}

#[test]
fn a_large_transfer_alert_reaches_a_websocket_subscriber_the_webhook_and_a_postgresql_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = observer_net(dir.path());
    // The observer's index on a private PostgreSQL server (Debian's
    // package, installed by scripts/setup.sh).
    let pg = plume_index::pg_server::PgServer::start(&dir.path().join("pg")).unwrap();
    let cfg = net.observers[0].home.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("# large_transfer = "), "{text}");
    // A webhook receiver: takes one POST, answers 204.
    let hook = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_addr = hook.local_addr().unwrap();
    let received = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = hook.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        let mut n = 0;
        while !buf[..n].ends_with(b"}") {
            let k = s.read(&mut buf[n..]).unwrap();
            assert!(k > 0, "webhook request cut short");
            n += k;
        }
        s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let text = text
        .replace("# large_transfer = 1000000000", "large_transfer = 1000")
        .replace(
            "# webhook = \"http://127.0.0.1:9000/alerts\"",
            &format!("webhook = \"http://{hook_addr}/alerts\""),
        );
    let text = text.replace(
        "# postgres = \"host=127.0.0.1 port=5432 user=plume dbname=plume\"",
        &format!("postgres = {:?}", pg.url),
    );
    assert!(text.contains("webhook = \"http://127.0.0.1:"), "{text}");
    assert!(text.contains("\npostgres = \"host=127.0.0.1"), "{text}");
    std::fs::write(&cfg, text).unwrap();
    net.start_all(Duration::from_secs(30)).unwrap();
    net.start_observer(0, Duration::from_secs(30)).unwrap();
    let obs = net.observers[0].api.clone();

    let (mut ws, _) = tungstenite::connect(format!("ws://{obs}/ws")).unwrap();
    ws.send(tungstenite::Message::text(
        r#"{"jsonrpc":"2.0","id":1,"method":"plume_subscribe","params":["alerts"]}"#,
    ))
    .unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
    }
    use plume_client::txbuild::{self, Fees};
    let to = net.accounts[4].public_key().address();
    let small = txbuild::transfer(
        &net.chain_id,
        &net.accounts[3],
        0,
        &to,
        1,
        None,
        Fees::default(),
        u64::MAX,
    );
    let large = txbuild::transfer(
        &net.chain_id,
        &net.accounts[3],
        1,
        &to,
        5_000,
        None,
        Fees::default(),
        u64::MAX,
    );
    submit(&net.apis[0], &small).unwrap();
    submit(&net.apis[0], &large).unwrap();
    let large_hash = hash_of(&large);
    let fin = final_on(&net.apis[0], &large_hash, Duration::from_secs(60)).expect("final");
    let height = fin["height"].as_u64().unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut alert = None;
    while alert.is_none() && Instant::now() < deadline {
        match ws.read() {
            Ok(tungstenite::Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["method"] == "plume_subscription" {
                    alert = Some(v["params"]["result"].clone());
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("websocket: {e}"),
        }
    }
    let alert = alert.expect("no alert over the WebSocket within 60 s");
    assert_eq!(alert["kind"], "large_transfer", "{alert}");
    assert_eq!(alert["tx"], large_hash.as_str(), "{alert}");
    assert_eq!(alert["height"], height, "{alert}");
    assert_eq!(alert["amount"], "5000", "{alert}");
    // Stored too, and only for the large one.
    let stored = rpc(&obs, "plume_alerts", json!([])).unwrap();
    let list = stored["alerts"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{stored}");
    assert_eq!(list[0]["tx"], large_hash.as_str());
    assert_eq!(metric(&obs, "plume_alerts_total"), 1);
    // And POSTed to the webhook.
    let req = received.join().unwrap();
    assert!(req.starts_with("POST /alerts HTTP/1.1"), "{req}");
    let body: serde_json::Value =
        serde_json::from_str(&req[req.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["tx"], large_hash.as_str(), "{body}");
    assert_eq!(body["kind"], "large_transfer");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&obs, "plume_alert_webhook_sent_total") < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&obs, "plume_alert_webhook_sent_total"), 1);
    // The rows are in PostgreSQL, not in an SQLite file.
    let index =
        plume_index::Index::open_read_at(&plume_index::Location::Postgres(pg.url.clone())).unwrap();
    assert_eq!(index.alert_count().unwrap(), 1);
    assert!(index.height().unwrap() >= height);
    // And the API reads them from there: both transfers out of account 3.
    let from = net.accounts[3].public_key().address().to_hex();
    let flows = rpc(&obs, "plume_flows", json!([from, {"direction": "out"}])).unwrap();
    let txs: Vec<&str> = flows["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["tx"].as_str())
        .collect();
    assert!(txs.contains(&large_hash.as_str()), "{flows}");
    assert!(txs.contains(&hash_of(&small).as_str()), "{flows}");
    assert!(
        !net.observers[0]
            .home
            .join("data")
            .join(plume_node::roles::INDEX_FILE)
            .exists(),
        "an SQLite index beside the PostgreSQL one"
    );
}

/// One HTTP/1.1 request with `Connection: close`; returns the status line's
/// code, the header block and the body.
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

/// A JSON-RPC call with the bearer token.
fn rpc_with(addr: &str, token: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
    use std::io::{Read, Write};
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let v: serde_json::Value = serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert!(v["error"].is_null(), "{method}: {v}");
    v["result"].clone()
}

/// Headless Chromium (Debian's package, installed by scripts/setup.sh):
/// `--dump-dom` of `url` after its scripts ran, and a screenshot.
fn chromium(profile: &std::path::Path, url: &str, shot: Option<&std::path::Path>) -> String {
    let mut cmd = std::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1100",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .stdin(std::process::Stdio::null());
    match shot {
        Some(p) => cmd.arg(format!("--screenshot={}", p.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd
        .arg(url)
        .output()
        .expect("chromium (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_dashboard_in_headless_chromium_shows_the_alert_and_the_flow_graph_behind_a_token() {
    use plume_node::devnet::{account_key, compliance};
    let dir = tempfile::tempdir().unwrap();
    // Accounts 3 and 4 are registered identities (DE and CH); a structuring
    // rule flags (does not stop) the third transfer just below 10,000.
    let addr = |i: usize| account_key(i).public_key().address();
    let mut section = compliance::default_section(&addr(0));
    let provider = compliance::provider_key().public_key().to_bytes();
    let (id_de, id_ch) = ([0xd3u8; 32], [0xc4u8; 32]);
    for (id, a, j) in [(id_de, 3, *b"DE"), (id_ch, 4, *b"CH")] {
        section.identities.push(plume_compliance::GenesisIdentity {
            identity: id,
            addresses: vec![addr(a).0],
            provider,
            status: plume_compliance::KycStatus::Verified,
            risk_tier: 1,
            jurisdiction: j,
            accreditation: 0,
            expiry_height: 1_000_000,
            expires_at_ms: None,
        });
    }
    section.rules.push(plume_compliance::RuleEntry {
        id: 42,
        rule: plume_compliance::Rule::Structuring {
            asset: [0; 32],
            threshold: 10_000,
            margin_bps: 1_000,
            count: 3,
            window_blocks: 1_000,
            window_ms: 0,
            block: false,
        },
    });
    let mut net = LocalNet::create_full(
        exe(),
        &dir.path().join("net"),
        4,
        free_base(4),
        None,
        Some(&section),
        1,
    )
    .unwrap();
    let home = net.observers[0].home.clone();
    let token = "dashboard-test-token-0123456789";
    std::fs::write(home.join("api.token"), format!("{token}\n")).unwrap();
    let cfg = home.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("# token_file = \"api.token\""), "{text}");
    let text = text
        .replace("# large_transfer = 1000000000", "large_transfer = 1000")
        .replace("# token_file = \"api.token\"", "token_file = \"api.token\"");
    std::fs::write(&cfg, text).unwrap();
    net.start_all(Duration::from_secs(30)).unwrap();
    net.start_observer(0, Duration::from_secs(30)).unwrap();
    let obs = net.observers[0].api.clone();

    use plume_client::txbuild::{self, Fees};
    let from = net.accounts[3].public_key().address().to_hex();
    let to = net.accounts[4].public_key().address().to_hex();
    let mut hashes = Vec::new();
    for (nonce, amount) in [(0, 7), (1, 5_000), (2, 9_500), (3, 9_500), (4, 9_500)] {
        let t = txbuild::transfer(
            &net.chain_id,
            &net.accounts[3],
            nonce,
            &net.accounts[4].public_key().address(),
            amount,
            None,
            Fees::default(),
            u64::MAX,
        );
        submit(&net.apis[0], &t).unwrap();
        hashes.push(hash_of(&t));
    }
    let large = hashes[1].clone();
    let flagged = hashes[4].clone();
    let fin = final_on(&net.apis[0], &flagged, Duration::from_secs(60)).expect("final");
    assert_eq!(
        fin["receipt"]["status"], "Success",
        "a flag does not stop: {fin}"
    );

    // Without the token: refused, as JSON for the API and as a page for
    // the dashboard; /health stays open for probes.
    let (code, _, body) = http(&obs, "GET", "/metrics", &[]);
    assert_eq!(code, 401, "{body}");
    let (code, _, body) = http(&obs, "GET", "/dashboard/alerts", &[]);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("<html"), "{body}");
    assert_eq!(http(&obs, "GET", "/health", &[]).0, 200);
    let wrong = "Bearer dashboard-test-token-0123456780";
    assert_eq!(
        http(&obs, "GET", "/dashboard", &[("Authorization", wrong)]).0,
        401
    );
    let (code, _, _) = http(
        &obs,
        "GET",
        &format!("/dashboard/login?token={}x", token),
        &[],
    );
    assert_eq!(code, 401, "a wrong token logs in");

    // The SDK and the CLI send the token from PLUME_API_TOKEN (or given).
    let st = plume_client::RpcClient::new(&obs)
        .with_token(token)
        .call("plume_status", json!([]))
        .unwrap();
    assert_eq!(st["role"], "observer", "{st}");
    let cli = |env: Option<&str>| {
        let mut c = std::process::Command::new(exe());
        c.args(["query", "status", "--node", &obs])
            .env_remove("PLUME_API_TOKEN");
        if let Some(t) = env {
            c.env("PLUME_API_TOKEN", t);
        }
        c.output().unwrap()
    };
    let out = cli(Some(token));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("observer"),
        "{out:?}"
    );
    let out = cli(None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") && err.contains("PLUME_API_TOKEN"),
        "{err}"
    );

    // The observer indexes the alerts (it commits at certified roots):
    // a large transfer for each of the four at or above 1,000, and the
    // structuring flag on the third just below 10,000.
    let deadline = Instant::now() + Duration::from_secs(60);
    let alerts = loop {
        let a = rpc_with(&obs, token, "plume_recentAlerts", json!([]));
        let list = a["alerts"].as_array().cloned().unwrap_or_default();
        if list.iter().any(|x| x["kind"] == "compliance_flag") {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "no compliance flag indexed in 60 s: {a}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let of = |kind: &str| -> Vec<&str> {
        alerts
            .iter()
            .filter(|x| x["kind"] == kind)
            .filter_map(|x| x["tx"].as_str())
            .collect()
    };
    assert_eq!(of("compliance_flag"), vec![flagged.as_str()], "{alerts:?}");
    let mut large_txs = of("large_transfer");
    large_txs.sort_unstable();
    let mut want: Vec<&str> = hashes[1..].iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(large_txs, want, "{alerts:?}");
    // Identities and jurisdictions from the compliance registry.
    let p = rpc_with(&obs, token, "plume_party", json!([from]));
    assert_eq!(p["identity"], hex::encode(id_de), "{p}");
    assert_eq!(p["party"]["jurisdiction"], "DE", "{p}");
    let v = rpc_with(&obs, token, "plume_jurisdictionVolume", json!([]));
    let de_ch: Vec<&serde_json::Value> = v["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["from"] == "DE" && x["to"] == "CH")
        .collect();
    assert_eq!(de_ch.len(), 1, "{v}");
    assert_eq!(
        de_ch[0]["transferred"],
        (7 + 5_000 + 3 * 9_500).to_string(),
        "{v}"
    );
    assert_eq!(de_ch[0]["flows"], 5, "{v}");
    let w = rpc_with(
        &obs,
        token,
        "plume_identityFlows",
        json!([hex::encode(id_de)]),
    );
    assert_eq!(w["flows"].as_array().unwrap().len(), 5, "{w}");
    let t = rpc_with(&obs, token, "plume_trace", json!([flagged]));
    assert_eq!(t["compliance"][0]["rule_id"], 42, "{t}");
    assert_eq!(t["compliance"][0]["flagged"], true, "{t}");
    assert_eq!(t["parties"][&to]["jurisdiction"], "CH", "{t}");

    // The browser logs in once (the cookie), then the pages render.
    let profile = dir.path().join("chromium");
    let login = |next: &str| format!("http://{obs}/dashboard/login?token={token}&next={next}");
    let dom = chromium(&profile, &login("/dashboard/alerts"), None);
    assert!(
        dom.contains(&format!("data-tx=\"{large}\"")),
        "alert feed lacks the alert:\n{dom}"
    );
    assert!(dom.contains("data-kind=\"large_transfer\""), "{dom}");
    assert!(
        dom.contains(&format!(
            "data-kind=\"compliance_flag\" data-tx=\"{flagged}\""
        )),
        "{dom}"
    );
    assert!(
        !dom.contains(&format!("data-tx=\"{}\"", hashes[0])),
        "the small transfer alerted"
    );
    let dom = chromium(&profile, &login("/dashboard"), None);
    assert!(dom.contains("id=\"alerts\""), "{dom}");
    assert!(
        dom.contains(&format!("data-tx=\"{large}\"")),
        "overview lacks the alert:\n{dom}"
    );
    assert!(dom.contains("id=\"blocks\""), "{dom}");
    let account = format!("/dashboard/account/{from}");
    let dom = chromium(&profile, &login(&account), None);
    assert!(dom.contains("id=\"flow-graph\""), "no flow graph:\n{dom}");
    assert!(
        dom.contains(&format!("class=\"counterparty\" data-account=\"{to}\"")),
        "the graph lacks the counterparty {to}:\n{dom}"
    );
    assert!(
        dom.contains(&large),
        "the account's flows lack the transfer:\n{dom}"
    );
    assert!(
        dom.contains("id=\"jurisdiction\">DE<"),
        "no jurisdiction on the account page:\n{dom}"
    );
    let dom = chromium(&profile, &login("/dashboard/volume"), None);
    assert!(
        dom.contains("data-from=\"DE\" data-to=\"CH\""),
        "no DE to CH volume:\n{dom}"
    );
    let dom = chromium(&profile, &login(&format!("/dashboard/tx/{flagged}")), None);
    assert!(
        dom.contains("<td>flagged</td>"),
        "the tx page lacks the flag:\n{dom}"
    );
    let dom = chromium(&profile, &login(&format!("/dashboard/tx/{large}")), None);
    assert!(
        dom.contains("id=\"finality-proof\""),
        "no proof on the tx page:\n{dom}"
    );
    // The screenshot is kept as a CI artefact.
    let artefacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ci-artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("dashboard-account.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&profile, &login(&account), Some(&shot));
    let png = std::fs::read(&shot).expect("no screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot of {} bytes",
        png.len()
    );
    chromium(
        &profile,
        &login("/dashboard"),
        Some(&artefacts.join("dashboard-overview.png")),
    );

    // No mutating route: every dashboard route answers POST, PUT and
    // DELETE with 405 and names GET as allowed.
    let auth = format!("Bearer {token}");
    let routes = [
        "/dashboard".to_string(),
        "/dashboard/blocks".into(),
        "/dashboard/block/1".into(),
        "/dashboard/alerts".into(),
        account.clone(),
        format!("/dashboard/tx/{large}"),
        "/dashboard/volume".into(),
        format!("/dashboard/search?q={to}"),
        format!("/dashboard/login?token={token}"),
    ];
    for r in &routes {
        let (code, _, body) = http(&obs, "GET", r, &[("Authorization", &auth)]);
        assert!(code == 200 || code == 303, "GET {r}: {code} {body}");
        for m in ["POST", "PUT", "DELETE"] {
            let (code, head, body) = http(&obs, m, r, &[("Authorization", &auth)]);
            assert_eq!(code, 405, "{m} {r}: {body}");
            assert!(
                head.to_ascii_lowercase().contains("allow: get"),
                "{m} {r}: {head}"
            );
        }
    }
}
