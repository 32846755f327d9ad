//! `plume sim`: long seeded sweeps of the cluster simulator.

/// Arguments of `plume sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Number of seeds to run.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// Validators per simulated cluster.
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Byzantine validators per cluster (at most f).
    #[arg(long, default_value_t = 0)]
    pub byzantine: usize,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    pub start_seed: u64,
}

/// Run the sweep; `Ok(true)` when no violation was found.
pub fn run(_args: &SimArgs) -> anyhow::Result<bool> {
    anyhow::bail!("the cluster simulator is not built yet (issue 4)")
}
