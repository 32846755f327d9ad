//! Shared benchmark reporting: hdrhistogram timing, a table for people and
//! JSON for machines.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Pin the calling thread to `core` if it exists (best effort; reported).
pub fn pin_to_core(core: usize) -> bool {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    match ids.into_iter().find(|c| c.id == core) {
        Some(id) => core_affinity::set_for_current(id),
        None => false,
    }
}

/// Percentiles of one measured operation, in nanoseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    /// Samples recorded.
    pub samples: u64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Maximum.
    pub max_ns: u64,
    /// Mean.
    pub mean_ns: f64,
}

impl Percentiles {
    /// Summarise a histogram of nanoseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        Percentiles {
            samples: h.len(),
            p50_ns: h.value_at_quantile(0.50),
            p90_ns: h.value_at_quantile(0.90),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            mean_ns: h.mean(),
        }
    }
}

/// A new histogram for nanosecond timings up to one minute.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static bounds are valid")
}

/// Time `op` `iters` times, one sample per call; returns the histogram and
/// the wall time of the whole loop.
pub fn time_each<F: FnMut()>(iters: u64, mut op: F) -> (Histogram<u64>, Duration) {
    let mut h = histogram();
    let start = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        op();
        let ns = t.elapsed().as_nanos().max(1) as u64;
        h.record(ns.min(60_000_000_000))
            .expect("value within bounds");
    }
    (h, start.elapsed())
}

/// The result of one suite.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Suite name.
    pub suite: String,
    /// Host facts (CPU model, cores, flags) so figures can be compared.
    pub machine: BTreeMap<String, String>,
    /// Headline figures, named with units last (`sha256_1mib_gb_per_s`).
    pub figures: BTreeMap<String, f64>,
    /// Latency percentiles per operation.
    pub latencies: BTreeMap<String, Percentiles>,
    /// Targets and whether they were met.
    pub targets: Vec<Target>,
    /// What the run could not measure, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// An SVG plot written beside the JSON (same name, `.svg`).
    #[serde(skip)]
    pub plot_svg: Option<String>,
}

/// A target from MISSION.md and whether the run met it.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// Figure name.
    pub figure: String,
    /// ">=" or "<=".
    pub op: String,
    /// Bound.
    pub bound: f64,
    /// Measured value.
    pub measured: f64,
    /// Whether the bound holds.
    pub met: bool,
}

impl Report {
    /// An empty report for `suite`.
    pub fn new(suite: &str) -> Self {
        Report {
            suite: suite.to_string(),
            machine: machine_facts(),
            figures: BTreeMap::new(),
            latencies: BTreeMap::new(),
            targets: Vec::new(),
            notes: Vec::new(),
            plot_svg: None,
        }
    }

    /// Record something the run could not measure.
    pub fn note(&mut self, text: String) {
        self.notes.push(text);
    }

    /// Record a headline figure.
    pub fn figure(&mut self, name: &str, value: f64) {
        self.figures.insert(name.to_string(), value);
    }

    /// Record latency percentiles.
    pub fn latency(&mut self, name: &str, h: &Histogram<u64>) {
        self.latencies.insert(name.to_string(), Percentiles::of(h));
    }

    /// Check a recorded figure against a bound (`at_least` true: >=).
    pub fn target(&mut self, figure: &str, at_least: bool, bound: f64) {
        let measured = self.figures.get(figure).copied().unwrap_or(f64::NAN);
        let met = if at_least {
            measured >= bound
        } else {
            measured <= bound
        };
        self.targets.push(Target {
            figure: figure.to_string(),
            op: if at_least { ">=" } else { "<=" }.to_string(),
            bound,
            measured,
            met,
        });
    }

    /// Human-readable table.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!("== plume bench {} ==\n", self.suite));
        for (k, v) in &self.machine {
            s.push_str(&format!("  {k}: {v}\n"));
        }
        if !self.latencies.is_empty() {
            s.push_str(&format!(
                "\n{:<38} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11}\n",
                "operation", "samples", "p50", "p90", "p99", "p99.9", "max"
            ));
            for (k, p) in &self.latencies {
                s.push_str(&format!(
                    "{:<38} {:>9} {:>11} {:>11} {:>11} {:>11} {:>11}\n",
                    k,
                    p.samples,
                    fmt_ns(p.p50_ns),
                    fmt_ns(p.p90_ns),
                    fmt_ns(p.p99_ns),
                    fmt_ns(p.p999_ns),
                    fmt_ns(p.max_ns)
                ));
            }
        }
        s.push_str(&format!("\n{:<44} {:>16}\n", "figure", "value"));
        for (k, v) in &self.figures {
            s.push_str(&format!("{k:<44} {:>16}\n", fmt_num(*v)));
        }
        if !self.targets.is_empty() {
            s.push_str("\ntargets:\n");
            for t in &self.targets {
                s.push_str(&format!(
                    "  {:<40} {} {:>12}  measured {:>12}  {}\n",
                    t.figure,
                    t.op,
                    fmt_num(t.bound),
                    fmt_num(t.measured),
                    if t.met { "MET" } else { "NOT MET" }
                ));
            }
        }
        for n in &self.notes {
            s.push_str(&format!("\nnote: {n}\n"));
        }
        s
    }

    /// Write the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, path)?;
        if let Some(svg) = &self.plot_svg {
            std::fs::write(path.with_extension("svg"), svg)?;
        }
        Ok(())
    }
}

fn fmt_ns(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{:.2} us", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// Facts about the host that change benchmark results.
pub fn machine_facts() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if let Some(model) = cpuinfo.lines().find(|l| l.starts_with("model name")) {
        m.insert(
            "cpu".into(),
            model.split(':').nth(1).unwrap_or("").trim().to_string(),
        );
    }
    m.insert(
        "logical_cores".into(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .to_string(),
    );
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let interesting = [
        "avx2",
        "avx512f",
        "avx512ifma",
        "sha_ni",
        "adx",
        "bmi2",
        "aes",
        "vaes",
    ];
    let present: Vec<&str> = interesting
        .iter()
        .copied()
        .filter(|f| flags.contains(f))
        .collect();
    m.insert("cpu_flags".into(), present.join(" "));
    m.insert(
        "profile".into(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .into(),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_json_has_figures_and_targets() {
        let mut r = Report::new("unit");
        r.figure("ops_per_s", 10.0);
        r.target("ops_per_s", true, 5.0);
        r.target("ops_per_s", false, 5.0);
        let (h, _) = time_each(10, || {
            std::hint::black_box(1 + 1);
        });
        r.latency("noop", &h);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        r.write_json(&p).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(v["figures"]["ops_per_s"], 10.0);
        assert_eq!(v["targets"][0]["met"], true);
        assert_eq!(v["targets"][1]["met"], false);
        assert_eq!(v["latencies"]["noop"]["samples"], 10);
        assert!(r.to_table().contains("NOT MET"));
    }
}
