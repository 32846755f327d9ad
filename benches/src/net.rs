//! The `net` benchmark suite. Not built yet (issue 5).

use crate::{Options, Report};

/// Run the suite.
pub fn run(_opts: &Options) -> anyhow::Result<Report> {
    anyhow::bail!("the net benchmark is not built yet (issue 5)")
}
