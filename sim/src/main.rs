//! `plume-sim`: seeded sweeps of the deterministic cluster simulator
//! (`plume sim` runs this binary). Exit code 2 when a violation was found.

#![forbid(unsafe_code)]

use clap::Parser;
use std::process::ExitCode;

/// Run seeded sweeps of the deterministic cluster simulator.
#[derive(Parser, Debug)]
#[command(name = "plume sim", version)]
struct Cli {
    #[command(flatten)]
    args: plume_sim::cli::SimArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match plume_sim::cli::run(&cli.args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
