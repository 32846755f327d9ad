//! `plume devnet`: a local network (see [`localnet`]) under the open-loop
//! load generator. The load is open-loop: latency is measured from each
//! transaction's *intended* send time, so a stalled system cannot hide its
//! delays.

pub mod compliance;
pub mod load;
pub mod localnet;
pub mod rogue;

pub use localnet::{account_key, set_transport, LocalNet, NsLayout, DEVNET_ACCOUNTS};

use anyhow::{anyhow, Context, Result};
use hdrhistogram::Histogram;
use plume_client::txbuild::{self, Fees};
use plume_client::RpcClient;
use plume_crypto::ed25519::{Address, SigningKey};
use plume_protocol::calls::Leg;
use plume_protocol::tx::{asset_id, NATIVE_ASSET};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Transactions per JSON-RPC batch of the load generator.
const SUBMIT_BATCH_MAX: usize = 500;

/// Options of `plume devnet`.
#[derive(Clone, Debug)]
pub struct DevnetOptions {
    /// Validators.
    pub validators: usize,
    /// Directory for homes, genesis and logs.
    pub dir: PathBuf,
    /// Load duration.
    pub duration: Duration,
    /// Offered load, transactions per second.
    pub rate: u64,
    /// First port (peers: base+i, API: base+100+i).
    pub base_port: u16,
    /// Every n-th transaction is a DvP settlement (0: none).
    pub settle_every: u64,
    /// Print progress lines.
    pub progress: bool,
    /// Stop after this many transactions (None: run for `duration`).
    pub count: Option<u64>,
    /// How long to wait for the tail to finalize after the load.
    pub drain: Duration,
    /// Pad transfers to about this many bytes (0: plain transfers), with a
    /// memo (one payee, one signature).
    pub tx_size: usize,
    /// Peer transport of every validator: "tcp" or "udp" (the datagram
    /// transport over kernel sockets; AF_XDP and DPDK need network
    /// namespaces, see node/tests/bypass.rs).
    pub transport: String,
    /// How the load reaches the validators.
    pub submit: Submit,
    /// Every n-th transaction is a transfer to the devnet's sanctioned
    /// address, which the compliance rules stop (0: none; needs the
    /// default rule set, see `compliance`).
    pub sanctioned_every: u64,
    /// Run with the default compliance rule set ([`compliance`]).
    pub compliance: bool,
    /// Run one observer beside the validators (genesis `observers`) and
    /// check its certified state against theirs at the end.
    pub observer: bool,
    /// After the load and the checks, print the summary and keep the
    /// network (and the observer's dashboard) up until `stop` is set.
    pub hold: bool,
}

/// How the load generator submits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Submit {
    /// Pre-signed, pipelined over the binary endpoint (`/bin`), finality
    /// from its binary block stream ([`load`]).
    Bin,
    /// Signed as it goes, JSON-RPC batches, finality from a WebSocket
    /// block subscription.
    Json,
}

impl std::str::FromStr for Submit {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Submit, String> {
        match s {
            "bin" => Ok(Submit::Bin),
            "json" => Ok(Submit::Json),
            other => Err(format!("--submit must be bin or json, not {other:?}")),
        }
    }
}

/// The summary of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    /// Transactions submitted and accepted by a node.
    pub submitted: u64,
    /// Submissions refused.
    pub rejected: u64,
    /// Transactions seen final.
    pub finalized: u64,
    /// Blocks finalized (height reached).
    pub blocks: u64,
    /// Finalized transactions per second over the load window.
    pub tx_per_s: f64,
    /// Finality latency percentiles (ms) from the intended send time.
    pub finality_p50_ms: f64,
    /// 99th percentile.
    pub finality_p99_ms: f64,
    /// 90th percentile.
    pub finality_p90_ms: f64,
    /// 99.9th percentile.
    pub finality_p999_ms: f64,
    /// Max.
    pub finality_max_ms: f64,
    /// Mean encoded transaction size in bytes.
    pub tx_bytes_mean: f64,
    /// Seconds the load ran.
    pub load_secs: f64,
    /// The first few submissions that failed (whole calls or single ones).
    pub submit_errors: Vec<String>,
    /// Height at which state roots were compared.
    pub compared_height: u64,
    /// Whether all validators have the same state root there.
    pub roots_equal: bool,
    /// Each validator's (height, root).
    pub roots: Vec<(u64, String)>,
    /// How the load was submitted: "bin" or "json".
    pub submit_path: String,
    /// Seconds spent signing the workload before the timed window (0 when
    /// it was signed as it went).
    pub presign_secs: f64,
    /// The load generator's own CPU (user + system) per transaction sent,
    /// over the timed window, in microseconds.
    pub harness_cpu_us_per_tx: f64,
    /// Compliance on validator 0: value-moving transactions checked.
    pub compliance_checked: u64,
    /// Stopped by a rule (Failed with a 200s code).
    pub compliance_stopped: u64,
    /// Flagged by a rule without being stopped.
    pub compliance_flagged: u64,
    /// The observer's state against the validators' (with `observer`).
    pub observer: Option<ObserverCheck>,
}

/// An observer's state compared with the validators' certified state.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ObserverCheck {
    /// The observer's height.
    pub height: u64,
    /// Its state root there.
    pub root: String,
    /// The root validator 0 proves certified at that height.
    pub certified_root: String,
    /// Blocks it verified and executed.
    pub observed_blocks: u64,
}

impl ObserverCheck {
    /// The observer holds exactly the certified state.
    pub fn equal(&self) -> bool {
        self.root == self.certified_root
    }
}

/// Wait until observer `k` reached at least `min_height` (or `timeout`
/// passed), then compare its root with the one validator 0 proves
/// certified at the observer's height.
pub fn observer_check(
    net: &LocalNet,
    k: usize,
    min_height: u64,
    timeout: Duration,
) -> Result<ObserverCheck> {
    let deadline = Instant::now() + timeout;
    let status = loop {
        let s = net.observer_status(k)?;
        if s["height"].as_u64().unwrap_or(0) >= min_height || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let height = status["height"].as_u64().unwrap_or(0);
    let proof = plume_client::rpc(&net.apis[0], "plume_getStateRoot", json!([height]))?;
    let metrics = plume_client::http_get(&net.observers[k].api, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default();
    Ok(ObserverCheck {
        height,
        root: status["state_root"].as_str().unwrap_or("").to_string(),
        certified_root: proof["root"].as_str().unwrap_or("").to_string(),
        observed_blocks: metric_value(&metrics, "plume_observed_blocks_total"),
    })
}

/// The value of counter `name` in an OpenMetrics text (0 when absent).
pub fn metric_value(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Validator 0's compliance counts (checked, stopped, flagged) since it
/// started.
pub(crate) fn compliance_counts(net: &LocalNet) -> (u64, u64, u64) {
    match net.status(0) {
        Ok(s) => {
            let c = &s["compliance"];
            let g = |k: &str| c[k].as_u64().unwrap_or(0);
            (g("checked"), g("stopped"), g("flagged"))
        }
        Err(_) => (0, 0, 0),
    }
}

/// Run `plume devnet`.
pub fn run(opts: &DevnetOptions, stop: &AtomicBool) -> Result<Summary> {
    let exe = std::env::current_exe()?;
    let section = opts
        .compliance
        .then(|| compliance::default_section(&account_key(0).public_key().address()));
    let mut net = LocalNet::create_full(
        &exe,
        &opts.dir,
        opts.validators,
        opts.base_port,
        None,
        section.as_ref(),
        usize::from(opts.observer),
    )?;
    set_transport(&net, &opts.transport)?;
    println!(
        "devnet: {} validators in {} (peer transport {})",
        opts.validators,
        opts.dir.display(),
        opts.transport
    );
    net.start_all(Duration::from_secs(30))?;
    println!("devnet: validators up (APIs {})", net.apis.join(", "));
    if opts.observer {
        net.start_observer(0, Duration::from_secs(30))?;
        println!(
            "devnet: observer up (read-only API http://{}, home {})",
            net.observers[0].api,
            net.observers[0].home.display()
        );
        let url = format!("http://{}/dashboard", net.observers[0].api);
        println!("devnet: dashboard {url}");
        open_in_browser(&url);
    }
    let mut s = drive_load(&net, opts, stop)?;
    if opts.observer {
        // The certified root of the last block arrives STATE_LAG blocks
        // later (idle heartbeats: about one a second).
        s.observer = Some(observer_check(
            &net,
            0,
            s.compared_height,
            Duration::from_secs(30),
        )?);
    }
    if opts.hold {
        print_summary(&s);
        println!("devnet: load done; the network stays up until Ctrl-C");
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(s)
}

/// Open `url` in the desktop's browser when there is a desktop
/// (`xdg-open` with DISPLAY or WAYLAND_DISPLAY set); otherwise the printed
/// URL is all. Never waits for the browser.
fn open_in_browser(url: &str) {
    let desktop = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    if !desktop || std::env::var_os("CI").is_some() {
        return;
    }
    let _ = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

struct Pending {
    sent: HashMap<String, Instant>,
    hist: Histogram<u64>,
    finalized: u64,
    height: u64,
}

/// Drive the open-loop workload against a running network and summarise
/// (pre-signed over `/bin`, or signed as it goes over JSON-RPC).
pub fn drive_load(net: &LocalNet, opts: &DevnetOptions, stop: &AtomicBool) -> Result<Summary> {
    if opts.submit == Submit::Bin {
        return load::drive_bin(net, opts, stop);
    }
    drive_json(net, opts, stop)
}

// Long by design: the open-loop loop keeps the clock, the pacing and the
// counters in one place.
fn drive_json(net: &LocalNet, opts: &DevnetOptions, stop: &AtomicBool) -> Result<Summary> {
    let chain = net.chain_id.clone();
    let fees = Fees::default();
    let n = net.apis.len();
    // Account 0 issues a security for the DvP settlements.
    let issuer = &net.accounts[0];
    let mut seqs: Vec<u64> = vec![0; net.accounts.len()];
    let bond = asset_id(&issuer.public_key().address().0, 0);
    if opts.settle_every > 0 {
        issue_bond(net, &chain, fees)?;
        seqs[0] = 1;
    }
    let pending = Arc::new(Mutex::new(Pending {
        sent: HashMap::new(),
        hist: Histogram::new_with_bounds(1, 3_600_000, 3).expect("static bounds"),
        finalized: 0,
        height: 0,
    }));
    // Finality watcher: a block subscription on validator 0.
    let watcher_stop = Arc::new(AtomicBool::new(false));
    let watcher = spawn_watcher(net.apis[0].clone(), pending.clone(), watcher_stop.clone());
    std::thread::sleep(Duration::from_millis(200));

    let start = Instant::now();
    let cpu0 = load::cpu_time();
    let mut sent_total: u64 = 0;
    let mut tx_bytes_total: u64 = 0;
    let mut submit_errors: Vec<String> = Vec::new();
    let mut rejected: u64 = 0;
    let mut clients: Vec<RpcClient> = net.apis.iter().map(|a| RpcClient::new(a)).collect();
    let mut next_print = start + Duration::from_secs(1);
    let mut target = 0usize;
    let mut k: u64 = 0;
    while start.elapsed() < opts.duration
        && !stop.load(Ordering::Relaxed)
        && opts.count.is_none_or(|c| sent_total < c)
    {
        let mut due = (start.elapsed().as_secs_f64() * opts.rate as f64) as u64;
        if let Some(c) = opts.count {
            due = due.min(c);
        }
        let want = due.saturating_sub(sent_total).min(SUBMIT_BATCH_MAX as u64) as usize;
        if want == 0 {
            std::thread::sleep(Duration::from_millis(1));
        } else {
            let node = target % n;
            target += 1;
            let mut params = Vec::with_capacity(want);
            let mut intended = Vec::with_capacity(want);
            let mut hashes: Vec<String> = Vec::with_capacity(want);
            for j in 0..want {
                // Intended send time of this transaction under the fixed rate.
                let idx = sent_total + j as u64;
                intended.push(start + Duration::from_secs_f64(idx as f64 / opts.rate as f64));
                // A client talks to one validator: account a is served by
                // validator a % n (so its sequences arrive in order).
                let per_node = (net.accounts.len() - 1) / n;
                let a = 1 + node + n * (k as usize % per_node.max(1));
                let b = 1 + ((k as usize * 7 + 3) % (net.accounts.len() - 1));
                let w = Workload {
                    chain: &chain,
                    accounts: &net.accounts,
                    bond,
                    fees,
                    opts,
                };
                let tx = w.transaction(k, a, b, seqs[a]);
                seqs[a] += 1;
                k += 1;
                let bytes = tx.to_bytes();
                tx_bytes_total += bytes.len() as u64;
                hashes.push(tx.body.signing_hash().to_hex());
                params.push(json!([hex::encode(bytes)]));
            }
            // Recorded before sending: a transaction can be final before the
            // batch call returns.
            {
                let mut p = pending.lock().expect("not poisoned");
                for (h, t) in hashes.iter().zip(&intended) {
                    p.sent.insert(h.clone(), *t);
                }
            }
            rejected += submit_batch(
                &mut clients[node],
                node,
                &params,
                &hashes,
                &pending,
                &mut submit_errors,
            );
            sent_total += want as u64;
        }
        if opts.progress && Instant::now() >= next_print {
            next_print += Duration::from_secs(1);
            print_progress(start, sent_total - rejected, rejected, &pending);
        }
    }
    let load_secs = start.elapsed().as_secs_f64();
    let harness_cpu = load::cpu_time().saturating_sub(cpu0);
    // Let the tail finalize.
    let drain_deadline = Instant::now() + opts.drain;
    while Instant::now() < drain_deadline && !stop.load(Ordering::Relaxed) {
        if pending.lock().expect("not poisoned").sent.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    watcher_stop.store(true, Ordering::Relaxed);
    let watcher_result = watcher
        .join()
        .map_err(|_| anyhow!("finality watcher panicked"))?;
    if let Err(e) = watcher_result {
        tracing::warn!("finality watcher: {e:#}");
    }
    let missing: Vec<String> = {
        let p = pending.lock().expect("not poisoned");
        p.sent.keys().take(5).cloned().collect()
    };
    report_missing(net, &missing);
    let (h, roots, roots_equal) = final_roots(net)?;
    let (checked, stopped, flagged) = compliance_counts(net);
    let p = pending.lock().expect("not poisoned");
    Ok(Summary {
        compliance_checked: checked,
        compliance_stopped: stopped,
        compliance_flagged: flagged,
        submitted: sent_total - rejected,
        rejected,
        finalized: p.finalized,
        blocks: h,
        tx_per_s: p.finalized as f64 / load_secs.max(1e-9),
        finality_p50_ms: p.hist.value_at_quantile(0.5) as f64,
        finality_p99_ms: p.hist.value_at_quantile(0.99) as f64,
        finality_max_ms: p.hist.max() as f64,
        finality_p90_ms: p.hist.value_at_quantile(0.90) as f64,
        finality_p999_ms: p.hist.value_at_quantile(0.999) as f64,
        tx_bytes_mean: if sent_total > 0 {
            tx_bytes_total as f64 / sent_total as f64
        } else {
            0.0
        },
        load_secs,
        submit_errors,
        compared_height: h,
        roots_equal,
        roots,
        submit_path: "json".into(),
        presign_secs: 0.0,
        harness_cpu_us_per_tx: harness_cpu.as_secs_f64() * 1e6 / sent_total.max(1) as f64,
        observer: None,
    })
}

/// Create the BOND asset the DvP settlements deliver (account 0 issues it)
/// and wait until it is final.
fn issue_bond(net: &LocalNet, chain: &str, fees: Fees) -> Result<()> {
    let t = txbuild::create_asset(
        chain,
        &net.accounts[0],
        0,
        "BOND",
        0,
        false,
        1_000_000_000_000,
        fees,
        u64::MAX,
    );
    plume_client::rpc(
        &net.apis[0],
        "plume_submitTransaction",
        json!([hex::encode(t.to_bytes())]),
    )
    .context("creating the BOND asset")?;
    // Wait for it to be final before settlements use it.
    let h = plume_client::rpc(&net.apis[0], "plume_status", json!([]))?["height"]
        .as_u64()
        .unwrap_or(0);
    net.converge(h + 2, Duration::from_secs(30))?;
    Ok(())
}

/// A thread that subscribes to validator `api`'s blocks and marks the
/// transactions it sees as final, until `stop`.
fn spawn_watcher(
    api: String,
    pending: Arc<Mutex<Pending>>,
    ws_stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Result<()>> {
    std::thread::spawn(move || -> Result<()> {
        let (mut ws, _) =
            tungstenite::connect(format!("ws://{api}/ws")).context("devnet: websocket")?;
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
        }
        ws.send(tungstenite::Message::text(
            json!({"jsonrpc":"2.0","id":1,"method":"plume_subscribe","params":["blocks"]})
                .to_string(),
        ))?;
        while !ws_stop.load(Ordering::Relaxed) {
            let m = match ws.read() {
                Ok(m) => m,
                Err(tungstenite::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            };
            let Ok(v) = serde_json::from_str::<Value>(&m.to_string()) else {
                continue;
            };
            let r = &v["params"]["result"];
            if let Some(hashes) = r["tx_hashes"].as_array() {
                let now = Instant::now();
                let mut p = pending.lock().expect("not poisoned");
                p.height = p.height.max(r["height"].as_u64().unwrap_or(0));
                for h in hashes {
                    if let Some(t) = h.as_str().and_then(|h| p.sent.remove(h)) {
                        let ms = now.saturating_duration_since(t).as_millis().max(1) as u64;
                        let _ = p.hist.record(ms.min(3_600_000));
                        p.finalized += 1;
                    }
                }
            }
        }
        Ok(())
    })
}

/// What the load generator sends.
struct Workload<'a> {
    chain: &'a str,
    accounts: &'a [SigningKey],
    bond: [u8; 32],
    fees: Fees,
    opts: &'a DevnetOptions,
}

impl Workload<'_> {
    /// Transaction number `k`: from account `a` (its next sequence `seq`)
    /// to account `b`; every `settle_every`-th a DvP settlement against the
    /// issuer (account 0), the others transfers (padded to `tx_size`).
    fn transaction(&self, k: u64, a: usize, b: usize, seq: u64) -> plume_protocol::Transaction {
        let (chain, fees, opts) = (self.chain, self.fees, self.opts);
        let issuer = &self.accounts[0];
        let payer = &self.accounts[a];
        let every = opts.sanctioned_every;
        if every > 0 && k % every == every - 1 {
            // Stopped by the sanctions rule: Failed (code 200), fee charged.
            let to = compliance::sanctioned_address();
            return txbuild::transfer(chain, payer, seq, &to, 1, None, fees, u64::MAX);
        }
        if opts.settle_every > 0 && k % opts.settle_every == 0 {
            // DvP: the issuer delivers 1 BOND, the buyer pays 100 PLUME.
            let legs = vec![
                Leg {
                    asset: self.bond,
                    from: issuer.public_key().address().0,
                    to: payer.public_key().address().0,
                    amount: 1,
                },
                Leg {
                    asset: NATIVE_ASSET,
                    from: payer.public_key().address().0,
                    to: issuer.public_key().address().0,
                    amount: 100,
                },
            ];
            return txbuild::settle(chain, &[payer, issuer], seq, legs, fees, u64::MAX);
        }
        let to: Address = self.accounts[b].public_key().address();
        if opts.tx_size > 0 {
            // Padded with a memo: one payee, one signature, whatever the size.
            txbuild::memo_transfer(chain, payer, seq, &to, 1, opts.tx_size, fees, u64::MAX)
        } else {
            txbuild::transfer(chain, payer, seq, &to, 1, None, fees, u64::MAX)
        }
    }
}

/// Ask validator 0 about the first few transactions the watcher did not
/// see: final anyway (a missed notification) or really not final?
fn report_missing(net: &LocalNet, missing: &[String]) {
    for h in missing {
        let r = plume_client::rpc(&net.apis[0], "plume_getTransaction", json!([h]));
        tracing::warn!(tx = %h, final_on_node0 = r.is_ok(), "transaction not seen final by the load generator");
        eprintln!(
            "not seen final: {h}: {}",
            match r {
                Ok(v) => format!("final at height {}", v["height"]),
                Err(e) => format!("{e:#}"),
            }
        );
    }
}

/// Each validator's (height, state root).
type Roots = Vec<(u64, String)>;

/// Wait until every validator is at validator 0's height; that height,
/// each validator's (height, root), and whether the roots are equal.
fn final_roots(net: &LocalNet) -> Result<(u64, Roots, bool)> {
    let status0 = net.status(0)?;
    let (h, roots) = net.converge(
        status0["height"].as_u64().unwrap_or(0),
        Duration::from_secs(20),
    )?;
    let equal = roots.iter().all(|r| r.1 == roots[0].1);
    Ok((h, roots, equal))
}

/// Submit one JSON-RPC batch to validator `node`; returns how many were
/// refused (they are no longer awaited).
fn submit_batch(
    client: &mut RpcClient,
    node: usize,
    params: &[Value],
    hashes: &[String],
    pending: &Mutex<Pending>,
    errors: &mut Vec<String>,
) -> u64 {
    let mut refused = 0u64;
    match client.call_batch("plume_submitTransaction", params) {
        Ok(results) => {
            let mut p = pending.lock().expect("not poisoned");
            for (r, h) in results.into_iter().zip(hashes) {
                match r {
                    Ok(_) => {}
                    // Already known to the node: a retried call whose
                    // first attempt got through.
                    Err(e) if e.code == 1011 => {}
                    Err(e) => {
                        p.sent.remove(h);
                        refused += 1;
                        if errors.len() < 6 {
                            errors.push(format!("tx {h} at validator {node}: {e}"));
                        }
                    }
                }
            }
        }
        Err(e) => {
            tracing::warn!("submission to validator {node} failed: {e:#}");
            if errors.len() < 3 {
                errors.push(format!("validator {node}: {e:#}"));
            }
            let mut p = pending.lock().expect("not poisoned");
            for h in hashes {
                p.sent.remove(h);
            }
            refused += hashes.len() as u64;
        }
    }
    refused
}

/// One progress line.
fn print_progress(start: Instant, submitted: u64, rejected: u64, pending: &Mutex<Pending>) {
    let p = pending.lock().expect("not poisoned");
    println!(
        "  t={:>4.0}s  submitted {:>8}  finalized {:>8}  rejected {:>6}  height {:>6}  p50 {:>4} ms  p99 {:>5} ms",
        start.elapsed().as_secs_f64(),
        submitted,
        p.finalized,
        rejected,
        p.height,
        p.hist.value_at_quantile(0.5),
        p.hist.value_at_quantile(0.99)
    );
}

/// Print a summary for people.
pub fn print_summary(s: &Summary) {
    println!("devnet summary");
    println!("  submitted            {}", s.submitted);
    println!("  rejected             {}", s.rejected);
    println!("  finalized            {}", s.finalized);
    println!("  blocks               {}", s.blocks);
    println!("  throughput           {:.0} tx/s", s.tx_per_s);
    println!(
        "  finality p50 / p99   {:.0} ms / {:.0} ms (max {:.0} ms)",
        s.finality_p50_ms, s.finality_p99_ms, s.finality_max_ms
    );
    println!(
        "  load generator       {} submissions, {:.1} us CPU per transaction",
        s.submit_path, s.harness_cpu_us_per_tx
    );
    println!(
        "  compliance           {} checked, {} stopped by a rule, {} flagged",
        s.compliance_checked, s.compliance_stopped, s.compliance_flagged
    );
    println!(
        "  state roots          {} at height {} ({})",
        if s.roots_equal { "EQUAL" } else { "DIFFERENT" },
        s.compared_height,
        s.roots.first().map(|r| r.1.as_str()).unwrap_or("-")
    );
    if let Some(o) = &s.observer {
        println!(
            "  observer             height {}, {} blocks verified, root {} the certified one ({})",
            o.height,
            o.observed_blocks,
            if o.equal() {
                "EQUAL to"
            } else {
                "DIFFERENT from"
            },
            o.root
        );
    }
    if s.finalized < s.submitted {
        println!(
            "  NOT FINAL            {} accepted transactions were not final when the run ended (a known bug: see README)",
            s.submitted - s.finalized
        );
    }
}
