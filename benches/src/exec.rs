//! The `exec` benchmark suite. Not built yet (issue 6).

use crate::{Options, Report};

/// Run the suite.
pub fn run(_opts: &Options) -> anyhow::Result<Report> {
    anyhow::bail!("the exec benchmark is not built yet (issue 6)")
}
