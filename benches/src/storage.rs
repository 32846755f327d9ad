//! The `storage` benchmark suite. Not built yet (issue 3).

use crate::{Options, Report};

/// Run the suite.
pub fn run(_opts: &Options) -> anyhow::Result<Report> {
    anyhow::bail!("the storage benchmark is not built yet (issue 3)")
}
