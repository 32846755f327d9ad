//! `plume tune`: inspect the host and propose a placement plan.

use std::path::PathBuf;

/// Arguments of `plume tune`.
#[derive(clap::Args, Debug, Clone)]
pub struct TuneArgs {
    /// Node home whose config.toml the plan is written to with --write.
    #[arg(long)]
    pub home: Option<PathBuf>,
    /// Write the proposed placement plan into HOME/config.toml.
    #[arg(long)]
    pub write: bool,
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the advisor.
pub fn run(_args: &TuneArgs) -> anyhow::Result<()> {
    anyhow::bail!("plume tune is not built yet (issue 8)")
}
