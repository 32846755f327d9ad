//! `plume tune`: inspect the host, print findings and a placement plan,
//! and with `--write --home DIR` put the plan into DIR/config.toml.

use crate::config_edit::{self, CONFIG_FILE};
use crate::{host, report};
use anyhow::Context;
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

/// Run the advisor. Reads the host; writes nothing but, with `--write`,
/// the `[placement]` section of `HOME/config.toml`.
pub fn run(args: &TuneArgs) -> anyhow::Result<()> {
    run_with_probes(args, Vec::new())
}

/// [`run`], with results of live attempts per transport (`(transport,
/// Ok(what worked) | Err(why not))`) added to the transport reports. The
/// node passes what its own transports found when they tried.
pub fn run_with_probes(
    args: &TuneArgs,
    probes: Vec<(String, Result<String, String>)>,
) -> anyhow::Result<()> {
    if args.write && args.home.is_none() {
        anyhow::bail!(
            "--write needs --home DIR: the plan goes into DIR/{CONFIG_FILE} (plume tune never changes the system itself)"
        );
    }
    let mut rep = report::build(host::inspect_this_host());
    for (t, res) in probes {
        crate::advice::add_probe(&mut rep.transports, &t, res);
    }
    if let Some(home) = &args.home {
        let path = home.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let cur =
            config_edit::current_placement(&text).with_context(|| format!("{}", path.display()))?;
        rep.current_placement = Some(cur.into_iter().collect());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print!("{}", report::render_text(&rep));
    }
    if let (true, Some(home)) = (args.write, &args.home) {
        let path = config_edit::write_placement(home, &rep.plan)?;
        let msg = format!("wrote the plan into [placement] of {}", path.display());
        if args.json {
            eprintln!("{msg}");
        } else {
            println!("\n{msg}");
        }
    } else if !args.json {
        println!("\napply with: plume tune --home DIR --write");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_without_home_is_refused() {
        let args = TuneArgs {
            home: None,
            write: true,
            json: false,
        };
        let err = run(&args).unwrap_err().to_string();
        assert!(err.contains("--write needs --home"), "{err}");
    }

    #[test]
    fn write_into_a_home() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join(CONFIG_FILE);
        std::fs::write(&path, "[node]\nmoniker = \"v\"\nlisten_addr = \"127.0.0.1:1\"\n\n[placement]\nconsensus_cores = []\n").unwrap();
        let args = TuneArgs {
            home: Some(home.path().to_path_buf()),
            write: true,
            json: true,
        };
        run(&args).unwrap();
        let cur = config_edit::current_placement(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let want = report::build(host::inspect_this_host()).plan;
        assert_eq!(cur[0].1.as_ref(), Some(&want.consensus_cores));
        assert_eq!(cur[1].1.as_ref(), Some(&want.sigverify_cores));
        assert_eq!(cur[2].1.as_ref(), Some(&want.exec_cores));
    }
}
