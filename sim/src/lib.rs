//! Deterministic simulation of a whole Plume cluster in one thread: virtual
//! clock, simulated network (latency, jitter, drops, duplicates, reordering,
//! healing partitions), crash/restart from persisted state, Byzantine
//! validators, and checkers run after every step.
//!
//! Start reading at [`world::run`] and [`world::SimConfig::random`]; the
//! checkers are `World::check_finalized`, the commit-proof check in
//! `World::apply`, the root check in `World::executed` and the vote check
//! in `World::outgoing`. [`sweep`] runs many seeds; [`latency`] measures finality
//! latency; [`cli`] is `plume sim`.
//!
//! Epoch changes are simulated (each epoch: same validators, fresh keys).
//! Every validator runs the node's batcher with a workload of signed
//! transfers (`world/batches.rs`), the ledger modules over the node's store
//! on an in-memory KV, and catch-up from peers' stores
//! (`world/catchup.rs`). Restarts recover through the node's rule
//! (`Recovered::after_restart`) from a simulated disk that loses what
//! execution had not committed and what the batch log had not synced.
//! Not simulated yet: the node's core as the effect applier, disk faults beyond a lost safety state and an
//! unsynced batch log, validators joining or leaving the set.
#![forbid(unsafe_code)]

pub mod cli;
pub mod keys;
pub mod latency;
pub mod rng;
pub mod world;

pub use keys::SimScheme;
pub use world::{
    run, Behavior, Outcome, Persist, SimConfig, Violation, ViolationKind, BYZANTINE_BEHAVIORS,
};

/// Virtual time with faults on, per seed, in CI sweeps.
pub const CI_FAULT_WINDOW_US: u64 = 600_000;

/// Summary of a sweep over seeds.
#[derive(Debug, Clone, Default)]
pub struct SweepSummary {
    /// Seeds run.
    pub seeds: u64,
    /// Sum over seeds of the highest finalized height.
    pub blocks_finalized: u64,
    /// Failing seeds with their violations.
    pub failures: Vec<(u64, Vec<Violation>)>,
}

/// Run `seeds` seeds from `start_seed` with scheme `S`; `tweak` may change
/// each seed's config (mutation tests); `progress` is called after each seed.
pub fn sweep<S: SimScheme>(
    start_seed: u64,
    seeds: u64,
    validators: usize,
    byzantine: usize,
    fault_window_us: u64,
    tweak: &dyn Fn(&mut SimConfig),
    progress: &mut dyn FnMut(&Outcome),
) -> SweepSummary {
    let mut s = SweepSummary::default();
    for seed in start_seed..start_seed + seeds {
        let mut cfg = SimConfig::random(seed, validators, byzantine, fault_window_us);
        tweak(&mut cfg);
        let o = run::<S>(&cfg);
        s.seeds += 1;
        s.blocks_finalized += o.blocks_finalized;
        progress(&o);
        if !o.violations.is_empty() {
            s.failures.push((seed, o.violations));
        }
    }
    s
}
