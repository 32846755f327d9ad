//! `plume bench cluster` and `plume bench sweep`.
//!
//! `cluster` starts a local network, drives an open-loop load at a fixed
//! rate and reports counts, sustained tx/s, submit-to-finality percentiles
//! (from the intended send time), per-node CPU and peak RSS, view changes and
//! a per-stage breakdown from the nodes' own `/metrics`.
//!
//! `sweep` raises the rate until p99 finality exceeds a bound (or the network
//! stops keeping up) and reports the highest sustainable rate, with a
//! latency-vs-throughput SVG beside the JSON; `--param name=v1,v2` repeats
//! the sweep for each setting and reports the best.

use crate::{Options, Report};
use anyhow::{bail, Context, Result};
use plume_node::devnet::{self, DevnetOptions, LocalNet, Summary};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Settings of the cluster benchmarks.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Validators.
    pub validators: usize,
    /// Offered load (cluster) or first rate (sweep).
    pub rate: u64,
    /// Seconds of load per run.
    pub duration_s: u64,
    /// Transaction size in bytes (0: plain transfers).
    pub tx_size: usize,
    /// Sweep: p99 bound in ms.
    pub bound_ms: f64,
    /// Sweep: node settings to try, `name=v1,v2,...` (config `[batching]` keys).
    pub params: Vec<String>,
    /// Directory for the network (default: a temporary one).
    pub dir: Option<PathBuf>,
    /// Peer transport of every validator: "tcp" or "udp".
    pub transport: String,
    /// `bench attack`: the attack (`attack::KINDS`).
    pub attack: String,
    /// How the load is submitted.
    pub submit: plume_node::devnet::Submit,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            validators: 4,
            rate: 1000,
            duration_s: 20,
            tx_size: 512,
            bound_ms: 100.0,
            params: Vec::new(),
            dir: None,
            transport: "tcp".into(),
            attack: "peer-flood".into(),
            submit: plume_node::devnet::Submit::Bin,
        }
    }
}

/// One sweep line: its label and (tx/s, p50 ms, p99 ms) points.
pub type Series = (String, Vec<(f64, f64, f64)>);

/// Most runs one sweep makes.
pub const SWEEP_RUNS_MAX: usize = 12;

struct NodeSample {
    cpu_ticks: u64,
    at: Instant,
}

fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// How often resident memory is sampled during a cluster run.
pub const RSS_SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// (resident, resident anonymous) in KiB: anonymous memory is the heap;
/// the rest is mostly LMDB's file-backed map, which grows with the store and
/// is page cache the kernel can reclaim.
fn proc_rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("RssAnon:")?))
}

fn proc_peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub(crate) fn metric(api: &str, name: &str) -> f64 {
    let Ok((_, body)) = plume_client::http_get(api, "/metrics") else {
        return 0.0;
    };
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn role_busy(api: &str, role: &str) -> f64 {
    let Ok((_, body)) = plume_client::http_get(api, "/metrics") else {
        return 0.0;
    };
    let key = format!("plume_role_busy_seconds_total{{role=\"{role}\"}}");
    body.lines()
        .find(|l| l.starts_with(&key))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Transaction signatures a node verified (under the name nodes before
/// issue 14 used too, so `PLUME_BIN` can point at an older `plume`).
fn sig_verified(api: &str) -> f64 {
    let now = metric(api, "plume_sig_verified_total");
    if now > 0.0 {
        now
    } else {
        metric(api, "plume_sigs_verified_total")
    }
}

/// Cumulative bucket counts of histogram `name` (`le` upper bound, count),
/// summed over `apis`, in bound order.
fn histogram_buckets(apis: &[String], name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for api in apis {
        let Ok((_, body)) = plume_client::http_get(api, "/metrics") else {
            continue;
        };
        for l in body.lines().filter(|l| l.starts_with(&prefix)) {
            let rest = &l[prefix.len()..];
            let Some((le, count)) = rest.split_once("\"} ") else {
                continue;
            };
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                match le.parse::<f64>() {
                    Ok(v) => v,
                    Err(_) => continue,
                }
            };
            let Ok(count) = count.trim().parse::<f64>() else {
                continue;
            };
            match sums.iter_mut().find(|(b, _)| *b == le) {
                Some(e) => e.1 += count,
                None => sums.push((le, count)),
            }
        }
    }
    sums.sort_by(|a, b| a.0.total_cmp(&b.0));
    sums
}

/// Quantile `q` of the observations between two snapshots of cumulative
/// buckets, interpolated linearly inside a bucket (as Prometheus'
/// `histogram_quantile` does); `None` without observations.
pub fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| {
            let b = before
                .iter()
                .find(|(l, _)| l == le)
                .map(|x| x.1)
                .unwrap_or(0.0);
            (*le, c - b)
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = 0.0;
    let mut below = 0.0;
    for (le, c) in &delta {
        if *c >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = (c - below).max(1e-12);
            return Some(lower + (le - lower) * ((rank - below) / inside).clamp(0.0, 1.0));
        }
        lower = *le;
        below = *c;
    }
    Some(lower)
}

/// One network, one rate: the figures of `plume bench cluster`.
pub fn run_once(
    exe: &Path,
    opts: &ClusterOptions,
    rate: u64,
    settings: &[(String, String)],
) -> Result<Report> {
    let tmp;
    let dir = match &opts.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("net")
        }
    };
    let base = free_base(opts.validators as u16)?;
    let mut net = LocalNet::create(exe, &dir, opts.validators, base)?;
    devnet::set_transport(&net, &opts.transport)?;
    for (k, v) in settings {
        for h in &net.homes {
            set_config_value(&h.join("config.toml"), k, v)?;
        }
    }
    net.start_all(Duration::from_secs(60))?;
    let pids: Vec<u32> = net.children.iter().flatten().map(|c| c.id()).collect();
    let before: Vec<NodeSample> = pids
        .iter()
        .map(|p| NodeSample {
            cpu_ticks: proc_cpu_ticks(*p).unwrap_or(0),
            at: Instant::now(),
        })
        .collect();
    let busy_before: Vec<[f64; 3]> = net
        .apis
        .iter()
        .map(|a| {
            [
                role_busy(a, "core"),
                role_busy(a, "sigverify"),
                role_busy(a, "exec"),
            ]
        })
        .collect();
    let sigs_before: f64 = net.apis.iter().map(|a| sig_verified(a)).sum();
    let cert_before = histogram_buckets(&net.apis, "plume_tx_certified_seconds");
    let dopts = DevnetOptions {
        validators: opts.validators,
        dir: dir.clone(),
        duration: Duration::from_secs(opts.duration_s),
        rate,
        base_port: base,
        settle_every: 0,
        progress: false,
        count: None,
        drain: Duration::from_secs(20),
        tx_size: opts.tx_size,
        transport: opts.transport.clone(),
        submit: opts.submit,
        sanctioned_every: 0,
        compliance: false,
        observer: false,
        hold: false,
    };
    // Resident memory over the run: sampled every RSS_SAMPLE_EVERY, so a
    // long run shows whether it stays flat.
    let sampling = std::sync::Arc::new(AtomicBool::new(true));
    let sampler = {
        let pids = pids.clone();
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut samples: Vec<Vec<(u64, u64)>> = vec![Vec::new(); pids.len()];
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                for (i, p) in pids.iter().enumerate() {
                    samples[i].push(proc_rss_kib(*p).unwrap_or((0, 0)));
                }
                let until = Instant::now() + RSS_SAMPLE_EVERY;
                while Instant::now() < until && sampling.load(std::sync::atomic::Ordering::Relaxed)
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            samples
        })
    };
    let s = devnet::drive_load(&net, &dopts, &AtomicBool::new(false))?;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let rss = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("rss sampler panicked"))?;
    let mut r = Report::new("cluster");
    for (i, v) in rss.iter().enumerate() {
        // After a warm-up of a quarter of the run: first and last sample.
        let warm = v.len() / 4;
        if let (Some(first), Some(last)) = (v.get(warm), v.last()) {
            let mib = |k: u64| k as f64 / 1024.0;
            r.figure(&format!("node{i}_rss_after_warmup_mib"), mib(first.0));
            r.figure(&format!("node{i}_rss_end_mib"), mib(last.0));
            r.figure(
                &format!("node{i}_rss_growth_percent"),
                100.0 * (mib(last.0) - mib(first.0)) / mib(first.0).max(1e-9),
            );
            r.figure(&format!("node{i}_rss_anon_after_warmup_mib"), mib(first.1));
            r.figure(&format!("node{i}_rss_anon_end_mib"), mib(last.1));
        }
    }
    let tick = unsafe_free_clk_tck() as f64;
    for (i, p) in pids.iter().enumerate() {
        let secs = before[i].at.elapsed().as_secs_f64();
        let ticks = proc_cpu_ticks(*p)
            .unwrap_or(0)
            .saturating_sub(before[i].cpu_ticks) as f64;
        r.figure(
            &format!("node{i}_cpu_percent"),
            100.0 * ticks / tick / secs.max(1e-9),
        );
        r.figure(
            &format!("node{i}_peak_rss_mib"),
            proc_peak_rss_kib(*p).unwrap_or(0) as f64 / 1024.0,
        );
    }
    let wall = s.load_secs.max(1e-9);
    for (j, role) in ["core", "sigverify", "exec"].iter().enumerate() {
        let mut total = 0.0;
        for (i, a) in net.apis.iter().enumerate() {
            total += role_busy(a, role) - busy_before[i][j];
        }
        r.figure(
            &format!("stage_{role}_busy_percent_per_node"),
            100.0 * total / net.apis.len() as f64 / wall,
        );
    }
    let sigs: f64 = net.apis.iter().map(|a| sig_verified(a)).sum::<f64>() - sigs_before;
    r.figure("sig_verified_total", sigs);
    r.figure(
        "sig_verified_per_finalized_tx",
        sigs / (s.finalized as f64).max(1.0),
    );
    let cert_after = histogram_buckets(&net.apis, "plume_tx_certified_seconds");
    for (q, name) in [
        (0.5, "submit_to_cert_p50_ms"),
        (0.99, "submit_to_cert_p99_ms"),
    ] {
        if let Some(v) = bucket_quantile(&cert_before, &cert_after, q) {
            r.figure(name, v * 1000.0);
        }
    }
    for (name, figure) in [
        ("plume_view_changes_total", "view_changes"),
        ("plume_batch_fetches_total", "batch_fetches"),
        ("plume_batch_verify_requests_total", "batch_verify_requests"),
        ("plume_proposals_refused_total", "proposals_refused"),
        ("plume_shed_sig_queue_total", "shed_sig_queue"),
        ("plume_batch_certs_formed_total", "batch_certs_formed"),
    ] {
        let total: f64 = net.apis.iter().map(|a| metric(a, name)).sum();
        r.figure(figure, total);
    }
    fill_summary(&mut r, &s, rate, opts);
    Ok(r)
}

fn unsafe_free_clk_tck() -> i64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t
    } else {
        100
    }
}

fn fill_summary(r: &mut Report, s: &Summary, rate: u64, opts: &ClusterOptions) {
    r.machine
        .insert("validators".into(), opts.validators.to_string());
    r.machine.insert("transport".into(), opts.transport.clone());
    r.machine
        .insert("offered_rate_tx_per_s".into(), rate.to_string());
    r.machine
        .insert("duration_s".into(), opts.duration_s.to_string());
    r.figure("offered_tx_per_s", rate as f64);
    r.figure("submitted", s.submitted as f64);
    r.figure("finalized", s.finalized as f64);
    r.figure("rejected", s.rejected as f64);
    r.figure("sustained_tx_per_s", s.tx_per_s);
    r.figure("finality_p50_ms", s.finality_p50_ms);
    r.figure("finality_p90_ms", s.finality_p90_ms);
    r.figure("finality_p99_ms", s.finality_p99_ms);
    r.figure("finality_p999_ms", s.finality_p999_ms);
    r.figure("finality_max_ms", s.finality_max_ms);
    r.figure("tx_bytes_mean", s.tx_bytes_mean);
    r.figure("blocks", s.blocks as f64);
    r.figure("state_roots_equal", if s.roots_equal { 1.0 } else { 0.0 });
    r.machine.insert("submit".into(), s.submit_path.clone());
    r.figure("harness_presign_s", s.presign_secs);
    r.figure("harness_cpu_us_per_tx", s.harness_cpu_us_per_tx);
    r.target("harness_cpu_us_per_tx", false, 2.0);
    r.target("sustained_tx_per_s", true, 30_000.0);
    r.target("finality_p50_ms", false, 25.0);
    r.target("finality_p99_ms", false, 60.0);
}

/// Rewrite `key = ...` in a node's config.toml (keys of `[batching]`).
pub fn set_config_value(path: &Path, key: &str, value: &str) -> Result<()> {
    const ALLOWED: &[&str] = &["batch_max_bytes", "batch_max_txs", "batch_delay_ms"];
    if !ALLOWED.contains(&key) {
        bail!("--param {key}: unknown; one of {}", ALLOWED.join(", "));
    }
    value
        .parse::<u64>()
        .with_context(|| format!("--param {key}={value}: not a number"))?;
    let text = std::fs::read_to_string(path)?;
    let mut found = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with(&format!("{key} =")) {
                found = true;
                format!("{key} = {value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        bail!("{}: no `{key}` line", path.display());
    }
    std::fs::write(path, out.join("\n") + "\n")?;
    Ok(())
}

/// A free loopback port range for a benchmark network: bases in
/// 10,000..19,799, below both the test suite's ranges and Linux's
/// ephemeral range (32,768+), where any outgoing connection could take a
/// port between this check and the validator's bind.
pub(crate) fn free_base(n: u16) -> Result<u16> {
    let seed = std::process::id() as u64
        ^ (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64);
    for attempt in 0..200u64 {
        let base = 10_000
            + ((seed.wrapping_mul(2654435761).wrapping_add(attempt * 7919)) % 98) as u16 * 100;
        let ok = (0..n).all(|i| {
            std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", base + 100 + i)).is_ok()
        });
        if ok {
            return Ok(base);
        }
    }
    bail!("no free port range found on loopback")
}

/// The `plume` binary the networks run: `$PLUME_BIN`, else the `plume`
/// beside this executable (where cargo and `scripts/devnet.sh` put it).
pub fn plume_exe() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("PLUME_BIN") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()?;
    let beside = me.parent().map(|d| d.join("plume"));
    match beside {
        Some(p) if p.is_file() => Ok(p),
        _ => bail!(
            "cluster benchmarks run the `plume` binary, and there is none beside {}; \
             build it (`cargo build --release -p plume-node`) or set PLUME_BIN",
            me.display()
        ),
    }
}

/// `plume bench cluster`.
pub fn run_cluster(opts: &Options) -> Result<Report> {
    let exe = plume_exe()?;
    let c = &opts.cluster;
    if c.rate == 0 || c.duration_s == 0 {
        bail!("--rate and --duration must be positive");
    }
    run_once(&exe, c, c.rate, &[])
}

/// `plume bench sweep`.
pub fn run_sweep(opts: &Options) -> Result<Report> {
    let exe = plume_exe()?;
    let c = &opts.cluster;
    // Settings grid: the product of every --param's values.
    let mut grid: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for p in &c.params {
        let (k, vs) = p
            .split_once('=')
            .with_context(|| format!("--param {p:?}: expected name=v1,v2"))?;
        let mut next = Vec::new();
        for g in &grid {
            for v in vs.split(',') {
                let mut g2 = g.clone();
                g2.push((k.to_string(), v.trim().to_string()));
                next.push(g2);
            }
        }
        grid = next;
    }
    if grid.len() > 8 {
        bail!("--param grid has {} settings; at most 8", grid.len());
    }
    let mut report = Report::new("sweep");
    let mut best: Option<(f64, String)> = None;
    let mut series: Vec<Series> = Vec::new();
    for settings in &grid {
        let label = if settings.is_empty() {
            "defaults".to_string()
        } else {
            settings
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut rate = c.rate.max(1);
        let mut sustainable = 0.0;
        let mut points = Vec::new();
        for run in 0..SWEEP_RUNS_MAX {
            let r = run_once(&exe, c, rate, settings)?;
            let f = |k: &str| r.figures.get(k).copied().unwrap_or(f64::NAN);
            let (tps, p50, p99) = (
                f("sustained_tx_per_s"),
                f("finality_p50_ms"),
                f("finality_p99_ms"),
            );
            let kept_up = f("finalized") >= 0.95 * f("submitted") && tps >= 0.9 * rate as f64;
            println!("  [{label}] run {run}: offered {rate} tx/s -> {tps:.0} tx/s, p50 {p50:.0} ms, p99 {p99:.0} ms");
            points.push((tps, p50, p99));
            report.figure(&format!("{label}/offered_{rate}/sustained_tx_per_s"), tps);
            report.figure(&format!("{label}/offered_{rate}/finality_p99_ms"), p99);
            if p99 > c.bound_ms || !kept_up {
                break;
            }
            sustainable = tps;
            rate = rate.saturating_mul(2);
        }
        report.figure(&format!("{label}/max_sustainable_tx_per_s"), sustainable);
        if best.as_ref().is_none_or(|b| sustainable > b.0) {
            best = Some((sustainable, label.clone()));
        }
        series.push((label, points));
    }
    if let Some((tps, label)) = &best {
        report.figure("max_sustainable_tx_per_s", *tps);
        report.machine.insert("best_settings".into(), label.clone());
    }
    report
        .machine
        .insert("p99_bound_ms".into(), c.bound_ms.to_string());
    report
        .machine
        .insert("validators".into(), c.validators.to_string());
    report.plot_svg = Some(svg_plot(&series, c.bound_ms));
    Ok(report)
}

/// A latency-vs-throughput plot (p50 dashed, p99 solid) as SVG text.
pub fn svg_plot(series: &[Series], bound_ms: f64) -> String {
    let (w, h, m) = (720.0, 440.0, 60.0);
    let xmax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(1.0f64, f64::max)
        * 1.1;
    let ymax = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.2))
        .fold(bound_ms, f64::max)
        * 1.1;
    let x = |v: f64| m + v / xmax * (w - 2.0 * m);
    let y = |v: f64| h - m - v / ymax * (h - 2.0 * m);
    let colours = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
    ];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"15\">Plume: finality latency vs throughput</text>\n\
         <line x1=\"{m}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">finalized tx/s</text>\n\
         <text x=\"15\" y=\"{}\" transform=\"rotate(-90 15 {})\" text-anchor=\"middle\">finality latency (ms)</text>\n",
        w / 2.0,
        h - m,
        w - m,
        h - m,
        h - m,
        w / 2.0,
        h - 15.0,
        h / 2.0,
        h / 2.0
    );
    for i in 0..=5 {
        let xv = xmax * i as f64 / 5.0;
        let yv = ymax * i as f64 / 5.0;
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:.0}</text>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text>\n",
            x(xv),
            h - m + 16.0,
            xv,
            m - 6.0,
            y(yv) + 4.0,
            yv
        ));
    }
    s.push_str(&format!(
        "<line x1=\"{m}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"grey\" stroke-dasharray=\"2,4\"/>\n<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"grey\">p99 bound {bound_ms} ms</text>\n",
        y(bound_ms),
        w - m,
        y(bound_ms),
        w - m,
        y(bound_ms) - 4.0
    ));
    for (k, (label, pts)) in series.iter().enumerate() {
        let c = colours[k % colours.len()];
        for (idx, dash) in [(1usize, "5,4"), (2, "")] {
            let path: Vec<String> = pts
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.0), y(if idx == 1 { p.1 } else { p.2 })))
                .collect();
            s.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>\n",
                path.join(" ")
            ));
        }
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" fill=\"{c}\">{label} (p99 solid, p50 dashed)</text>\n",
            m + 10.0,
            m + 16.0 * (k as f64 + 1.0)
        ));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_quantiles_interpolate_between_snapshots() {
        let before = vec![(0.001, 10.0), (0.002, 10.0), (f64::INFINITY, 10.0)];
        // 100 new observations: 50 in (0.001, 0.002], 50 in (0.002, +Inf).
        let after = vec![(0.001, 10.0), (0.002, 60.0), (f64::INFINITY, 110.0)];
        let p50 = bucket_quantile(&before, &after, 0.5).unwrap();
        assert!((p50 - 0.002).abs() < 1e-9, "{p50}");
        let p25 = bucket_quantile(&before, &after, 0.25).unwrap();
        assert!((p25 - 0.0015).abs() < 1e-9, "{p25}");
        assert_eq!(
            bucket_quantile(&after, &after, 0.5),
            None,
            "no observations"
        );
    }

    #[test]
    fn svg_has_one_line_per_series_and_percentile() {
        let svg = svg_plot(
            &[("a".into(), vec![(100.0, 5.0, 9.0), (200.0, 7.0, 30.0)])],
            100.0,
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn config_values_are_rewritten_and_unknown_keys_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config.toml");
        std::fs::write(
            &p,
            "[batching]\nbatch_max_bytes = 4194304\nbatch_delay_ms = 2\n",
        )
        .unwrap();
        set_config_value(&p, "batch_delay_ms", "5").unwrap();
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .contains("batch_delay_ms = 5"));
        assert!(set_config_value(&p, "colour", "5").is_err());
        assert!(
            set_config_value(&p, "batch_max_txs", "5").is_err(),
            "line absent"
        );
        assert!(set_config_value(&p, "batch_delay_ms", "soon").is_err());
    }
}
