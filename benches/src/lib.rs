//! Plume's benchmarks: micro benchmarks per subsystem, and whole-network
//! benchmarks with an open-loop load generator ([`cluster`]). Every suite prints hdrhistogram percentiles as a table and
//! can write the same figures as JSON (`plume bench <suite> --json FILE`,
//! which runs this crate's `plume-bench` binary).
//!
//! Start at [`run_suite`]; the shared reporting lives in [`report`].

pub mod cluster;
pub mod crypto;
pub mod exec;
pub mod index;
pub mod net;
pub mod net_bypass;
pub mod report;
pub mod storage;

pub use report::Report;

/// Names of the suites `plume bench` knows.
pub const SUITES: &[&str] = &[
    "crypto", "storage", "exec", "index", "net", "cluster", "sweep", "attack",
];

/// Options common to every suite.
#[derive(Clone, Debug)]
pub struct Options {
    /// Core to pin the measuring thread to (None: do not pin).
    pub core: Option<usize>,
    /// Scale factor for iteration counts (1.0 = the recorded defaults; CI
    /// smoke runs use less).
    pub scale: f64,
    /// Settings of `cluster` and `sweep`.
    pub cluster: cluster::bench::ClusterOptions,
    /// `net`: transports to compare (`tcp`, `udp`, `af_xdp`, `dpdk`; items
    /// may be comma-separated). Empty: tcp, plus the others when root.
    pub transports: Vec<String>,
    /// `exec`: a compliance rule set (JSON file) to measure transfers under.
    pub compliance: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            core: Some(0),
            scale: 1.0,
            cluster: Default::default(),
            transports: Vec::new(),
            compliance: None,
        }
    }
}

/// Run one suite by name.
pub fn run_suite(name: &str, opts: &Options) -> anyhow::Result<Report> {
    // Whole-network suites run many processes: never pin the driver.
    if let (Some(core), false) = (opts.core, matches!(name, "cluster" | "sweep" | "attack")) {
        report::pin_to_core(core);
    }
    match name {
        "crypto" => crypto::run(opts),
        "storage" => storage::run(opts),
        "exec" => exec::run(opts),
        "index" => index::run(opts),
        "net" => net::run(opts),
        "cluster" => cluster::bench::run_cluster(opts),
        "sweep" => cluster::bench::run_sweep(opts),
        "attack" => cluster::attack::run_attack(opts),
        other => anyhow::bail!(
            "unknown benchmark suite {other:?}; known: {}",
            SUITES.join(", ")
        ),
    }
}
