//! Finality latency in virtual time, fault-free network with fixed one-way
//! latency.

use crate::keys::SimScheme;
use crate::world::{run, SimConfig};

/// Latency figures for one cluster size and network latency.
#[derive(Debug, Clone)]
pub struct LatencyReport {
    /// Validators.
    pub validators: usize,
    /// One-way network latency.
    pub one_way_us: u64,
    /// Samples (block x correct validator).
    pub samples: usize,
    /// Mean proposal-to-finality time.
    pub mean_us: u64,
    /// Fastest sample.
    pub min_us: u64,
    /// Slowest sample.
    pub max_us: u64,
}

impl LatencyReport {
    /// Mean latency in one-way message delays.
    pub fn message_delays(&self) -> f64 {
        self.mean_us as f64 / self.one_way_us as f64
    }
}

/// Run a fault-free cluster of `validators` until `blocks` blocks are final
/// everywhere, and report proposal-to-finality latency over all correct
/// validators.
pub fn measure<S: SimScheme>(validators: usize, one_way_us: u64, blocks: u64) -> LatencyReport {
    let cfg = SimConfig::fault_free(7, validators, one_way_us, blocks);
    let o = run::<S>(&cfg);
    assert!(
        o.violations.is_empty(),
        "fault-free latency run failed: {:?}",
        o.violations
    );
    let s = &o.finality_latency_us;
    assert!(!s.is_empty(), "no latency samples");
    LatencyReport {
        validators,
        one_way_us,
        samples: s.len(),
        mean_us: s.iter().sum::<u64>() / s.len() as u64,
        min_us: *s.iter().min().expect("non-empty"),
        max_us: *s.iter().max().expect("non-empty"),
    }
}
