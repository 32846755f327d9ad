//! Plume's benchmarks: micro benchmarks per subsystem and (later) the cluster
//! load generator. Every suite prints hdrhistogram percentiles as a table and
//! can write the same figures as JSON (`plume bench <suite> --json FILE`).
//!
//! Start at [`run_suite`]; the shared reporting lives in [`report`].

pub mod crypto;
pub mod exec;
pub mod net;
pub mod report;
pub mod storage;

pub use report::Report;

/// Names of the suites `plume bench` knows.
pub const SUITES: &[&str] = &["crypto", "storage", "exec", "net"];

/// Options common to every suite.
#[derive(Clone, Debug)]
pub struct Options {
    /// Core to pin the measuring thread to (None: do not pin).
    pub core: Option<usize>,
    /// Scale factor for iteration counts (1.0 = the recorded defaults; CI
    /// smoke runs use less).
    pub scale: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            core: Some(0),
            scale: 1.0,
        }
    }
}

/// Run one suite by name.
pub fn run_suite(name: &str, opts: &Options) -> anyhow::Result<Report> {
    if let Some(core) = opts.core {
        report::pin_to_core(core);
    }
    match name {
        "crypto" => crypto::run(opts),
        "storage" => storage::run(opts),
        "exec" => exec::run(opts),
        "net" => net::run(opts),
        other => anyhow::bail!(
            "unknown benchmark suite {other:?}; known: {}",
            SUITES.join(", ")
        ),
    }
}
