//! `plume`: the operator's command line.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use plume_node::config::{Config, CONFIG_FILE};
use plume_node::fsutil::write_atomic;
use plume_node::genesis::{parse_alloc, Genesis, Params};
use plume_node::keys::{read_validator_info, validator_file, NodeKeys};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "plume",
    version,
    about = "Plume: a permissioned settlement blockchain node"
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    /// Log level filter (overridden by RUST_LOG).
    #[arg(long, default_value = "info", global = true)]
    log_level: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a node home: config.toml, network and consensus keys, validator.json.
    Init {
        /// Node home directory.
        #[arg(long)]
        home: PathBuf,
        /// Human name of the node.
        #[arg(long, default_value = "validator")]
        moniker: String,
        /// Peer listen address (also what genesis records).
        #[arg(long, default_value = "127.0.0.1:26600")]
        listen_addr: String,
        /// API listen address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        api_addr: String,
        /// Overwrite existing keys and config (the old keys are lost).
        #[arg(long)]
        force: bool,
    },
    /// Key commands.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Genesis commands.
    Genesis {
        #[command(subcommand)]
        cmd: GenesisCmd,
    },
    /// Run a benchmark suite: crypto, storage, exec, net.
    Bench {
        /// Suite name.
        suite: String,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Core to pin the benchmark thread to.
        #[arg(long, default_value_t = 0)]
        core: usize,
        /// Scale iteration counts (0.1 for a quick smoke run).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
    /// Run seeded sweeps of the deterministic cluster simulator.
    Sim(plume_sim::cli::SimArgs),
    /// Inspect this host and propose a core placement plan (changes nothing by itself).
    Tune(plume_tuning::cli::TuneArgs),
}

#[derive(Subcommand, Debug)]
enum KeysCmd {
    /// Print the public keys and proof of possession of a home.
    Show {
        /// Node home directory.
        #[arg(long)]
        home: PathBuf,
        /// Print JSON (the validator.json form).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum GenesisCmd {
    /// Write a new genesis file from validator.json files and allocations.
    New {
        /// Chain id (a-z, 0-9, '-', '.').
        #[arg(long)]
        chain_id: String,
        /// A validator.json written by `plume init` (repeat per validator).
        #[arg(long = "validator", required = true)]
        validators: Vec<PathBuf>,
        /// Initial balance ADDRESS=AMOUNT (repeatable).
        #[arg(long = "alloc")]
        allocs: Vec<String>,
        /// Output file.
        #[arg(long, default_value = "genesis.json")]
        out: PathBuf,
        /// Genesis time in ms since the Unix epoch (default: now).
        #[arg(long)]
        genesis_time_ms: Option<u64>,
        /// Overwrite an existing output file.
        #[arg(long)]
        force: bool,
    },
    /// Check a genesis file; exits non-zero with the failing field.
    Validate {
        /// The genesis file.
        file: PathBuf,
    },
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    match run(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Init {
            home,
            moniker,
            listen_addr,
            api_addr,
            force,
        } => {
            cmd_init(home, &moniker, &listen_addr, &api_addr, force)?;
        }
        Cmd::Keys {
            cmd: KeysCmd::Show { home, json },
        } => {
            let cfg = Config::load(&home)?;
            let keys = NodeKeys::load(&home)?;
            let info = keys.validator_info(&cfg.node.moniker, &cfg.node.listen_addr, 1);
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("moniker:             {}", info.moniker);
                println!("network key:         {}", info.network_key);
                println!("consensus key:       {}", info.consensus_key);
                println!("proof of possession: {}", info.proof_of_possession);
                println!("address:             {}", info.address);
                println!(
                    "account address:     {}",
                    keys.network.public_key().address()
                );
            }
        }
        Cmd::Genesis {
            cmd:
                GenesisCmd::New {
                    chain_id,
                    validators,
                    allocs,
                    out,
                    genesis_time_ms,
                    force,
                },
        } => {
            if out.exists() && !force {
                bail!(
                    "{} already exists; pass --force to overwrite it",
                    out.display()
                );
            }
            let validators = validators
                .iter()
                .map(|p| read_validator_info(p))
                .collect::<Result<Vec<_>>>()?;
            let alloc = allocs
                .iter()
                .map(|a| parse_alloc(a))
                .collect::<Result<Vec<_>>>()?;
            let genesis_time_ms = match genesis_time_ms {
                Some(t) => t,
                None => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .context("system clock before 1970")?
                    .as_millis() as u64,
            };
            let g = Genesis {
                chain_id,
                genesis_time_ms,
                validators,
                alloc,
                params: Params::default(),
            };
            g.validate()
                .context("the genesis that would be written is invalid")?;
            write_atomic(&out, &serde_json::to_vec_pretty(&g)?, 0o644)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "wrote {} (chain {}, {} validators, {} allocations, supply {})",
                out.display(),
                g.chain_id,
                g.validators.len(),
                g.alloc.len(),
                g.total_supply()
            );
        }
        Cmd::Genesis {
            cmd: GenesisCmd::Validate { file },
        } => {
            let g = Genesis::load(&file)?;
            let set = g.validator_set()?;
            println!(
                "{}: valid (chain {}, {} validators, quorum power {} of {}, supply {})",
                file.display(),
                g.chain_id,
                set.len(),
                set.quorum_power(),
                set.total_power(),
                g.total_supply()
            );
        }
        Cmd::Bench {
            suite,
            json,
            core,
            scale,
        } => {
            if !(scale > 0.0 && scale <= 100.0) {
                bail!("--scale must be in (0, 100]");
            }
            let opts = plume_benches::Options {
                core: Some(core),
                scale,
            };
            let report = plume_benches::run_suite(&suite, &opts)?;
            print!("{}", report.to_table());
            if let Some(path) = json {
                report
                    .write_json(&path)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
        Cmd::Tune(args) => plume_tuning::cli::run(&args)?,
        Cmd::Sim(args) => {
            if !plume_sim::cli::run(&args)? {
                return Ok(ExitCode::from(2));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_init(
    home: PathBuf,
    moniker: &str,
    listen_addr: &str,
    api_addr: &str,
    force: bool,
) -> Result<()> {
    let cfg = Config::new(moniker, listen_addr, api_addr);
    let cfg_path = home.join(CONFIG_FILE);
    // Check the settings before touching the disk.
    Config::parse(&cfg.to_commented_toml(), &cfg_path)?;
    if cfg_path.exists() && !force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            cfg_path.display()
        );
    }
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let keys = NodeKeys::generate();
    keys.save(&home, force)?;
    write_atomic(&cfg_path, cfg.to_commented_toml().as_bytes(), 0o644)
        .with_context(|| format!("writing {}", cfg_path.display()))?;
    let info = keys.validator_info(moniker, listen_addr, 1);
    let vpath = validator_file(&home);
    write_atomic(&vpath, &serde_json::to_vec_pretty(&info)?, 0o644)
        .with_context(|| format!("writing {}", vpath.display()))?;
    println!("initialised {}", home.display());
    println!("  config:        {}", cfg_path.display());
    println!(
        "  validator:     {} (send this to the genesis coordinator)",
        vpath.display()
    );
    println!("  network key:   {}", info.network_key);
    println!("  consensus key: {}", info.consensus_key);
    Ok(())
}
