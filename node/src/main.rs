//! `plume`: the operator's command line.

#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use plume_client::fsutil::write_atomic;
use plume_client::txbuild::{self, Fees};
use plume_client::verify::load_genesis;
use plume_node::cli::compliance::{ComplianceCmd, Format};
use plume_node::cli::tx::{submit_or_dry_run, tx_prelude, TxCommon};
use plume_node::commands;
use plume_node::config::Config;
use plume_node::keys::{read_validator_info, NodeKeys};
use plume_protocol::genesis::{parse_alloc, Genesis, Params};
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
enum RoleArg {
    Validator,
    Observer,
}

impl From<RoleArg> for plume_node::config::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Validator => plume_node::config::Role::Validator,
            RoleArg::Observer => plume_node::config::Role::Observer,
        }
    }
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
        /// LMDB map size in GiB.
        #[arg(long, default_value_t = 64)]
        map_size_gib: u32,
        /// Core placement CONSENSUS,SIGVERIFY,EXEC (default: chosen at start).
        #[arg(long)]
        placement: Option<String>,
        /// Overwrite existing keys and config (the old keys are lost).
        #[arg(long)]
        force: bool,
        /// validator (network and consensus keys, validator.json) or
        /// observer (a network key alone, observer.json).
        #[arg(long, value_enum, default_value = "validator")]
        role: RoleArg,
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
    /// Run a benchmark suite (`plume-bench`, installed beside `plume`):
    /// crypto, storage, exec, net, cluster, sweep. `plume bench --help`
    /// lists the options.
    #[command(disable_help_flag = true)]
    Bench {
        /// Suite and options, passed to `plume-bench`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Run seeded sweeps of the deterministic cluster simulator
    /// (`plume-sim`, installed beside `plume`). `plume sim --help` lists
    /// the options.
    #[command(disable_help_flag = true)]
    Sim {
        /// Options, passed to `plume-sim`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Run a validator from its home until Ctrl-C / SIGTERM.
    Start {
        /// Node home directory.
        #[arg(long)]
        home: PathBuf,
        /// Genesis file (default HOME/genesis.json).
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Run as this role (default: `node.role` in HOME/config.toml).
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
    /// Start a local multi-validator network with a workload and report.
    Devnet(DevnetArgs),
    /// Build, sign and submit a transaction to a running node.
    Tx {
        #[command(subcommand)]
        cmd: TxCmd,
    },
    /// Query a running node.
    Query {
        #[command(subcommand)]
        cmd: QueryCmd,
    },
    /// The compliance engine: rules, identities, explanations, and the
    /// governed changes (rules, providers, lists, attestations).
    Compliance {
        #[command(subcommand)]
        cmd: ComplianceCmd,
    },
    /// Audit reports.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Inspect this host and propose a core placement plan (changes nothing by itself).
    Tune(plume_tuning::cli::TuneArgs),
    /// Safety-state commands (recovery after a lost disk).
    Safety {
        #[command(subcommand)]
        cmd: SafetyCmd,
    },
}

#[derive(Subcommand, Debug)]
enum SafetyCmd {
    /// Write a fresh safety state that votes only above VIEW, when both
    /// safety slots are unreadable (plume start refuses and names this).
    /// Pick the network's current view plus a margin.
    Reset {
        /// Node home directory.
        #[arg(long)]
        home: PathBuf,
        /// This validator will vote only in views above this.
        #[arg(long)]
        above_view: u64,
        /// Replace a valid safety state too.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Every transaction the compliance rules checked in a height range,
    /// with rule id and version, verdict, code and input hash, anchored to
    /// the state root after the last height. Same range, same bytes.
    Report {
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
        /// First height.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last height.
        #[arg(long)]
        to: u64,
        /// Output format.
        #[arg(long, value_enum, default_value = "json")]
        format: Format,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum TxCmd {
    /// Transfer PLUME or an asset.
    Transfer {
        #[command(flatten)]
        common: TxCommon,
        /// Recipient address.
        #[arg(long)]
        to: String,
        /// Amount (smallest unit).
        #[arg(long)]
        amount: u128,
        /// Asset id (`plume` or 64 hex).
        #[arg(long, default_value = "plume")]
        asset: String,
        /// Travel-rule information (JSON: originator, beneficiary,
        /// originating_vasp, beneficiary_vasp), sealed to the beneficiary
        /// institution's envelope key (the one it published in the
        /// registry, or --beneficiary-key) and carried in the memo with
        /// its commitment.
        #[arg(long)]
        travel_info: Option<PathBuf>,
        /// The beneficiary institution's X25519 public key (64 hex; see
        /// `plume compliance envelope-key`), instead of the registry's.
        #[arg(long, requires = "travel_info")]
        beneficiary_key: Option<String>,
    },
    /// Atomic multi-leg settlement (DvP / PvP).
    Settle {
        #[command(flatten)]
        common: TxCommon,
        /// Other signers' key files (every debited account must sign).
        #[arg(long = "cosigner")]
        cosigners: Vec<PathBuf>,
        /// A leg ASSET:FROM:TO:AMOUNT (repeat).
        #[arg(long = "leg", required = true)]
        legs: Vec<String>,
    },
    /// Create an asset issued by the payer.
    CreateAsset {
        #[command(flatten)]
        common: TxCommon,
        /// Ticker (A-Z0-9).
        #[arg(long)]
        symbol: String,
        /// Decimals.
        #[arg(long, default_value_t = 2)]
        decimals: u8,
        /// Initial supply.
        #[arg(long)]
        supply: u128,
        /// Issuer may mint and burn later.
        #[arg(long)]
        mintable: bool,
    },
    #[command(flatten)]
    Gov(plume_node::cli::governance::GovTxCmd),
}

#[derive(Subcommand, Debug)]
enum QueryCmd {
    #[command(flatten)]
    Gov(plume_node::cli::governance::GovQueryCmd),
    /// An account's balance and sequence.
    Account {
        /// Address (64 hex).
        address: String,
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
        /// Check the account offline against a state root the validators
        /// certified (waits for the block that certifies it).
        #[arg(long)]
        verify_with: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A transaction, its receipt and finality proof.
    Tx {
        /// Transaction id (64 hex).
        hash: String,
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
        /// Genesis file: check the finality proof offline against its validators.
        #[arg(long)]
        verify_with: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A finalized block.
    Block {
        /// Height.
        height: u64,
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Node status.
    Status {
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
    },
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
    New(GenesisNewArgs),
    /// Check a genesis file; exits non-zero with the failing field.
    Validate {
        /// The genesis file.
        file: PathBuf,
    },
}

// The options of `plume devnet` (its help text is the variant's).
#[derive(clap::Args, Debug)]
struct DevnetArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Directory for homes, genesis and logs (wiped first).
    #[arg(long, default_value = "devnet")]
    dir: PathBuf,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Offered load in transactions per second.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// First port (peers use base+i, APIs base+100+i).
    #[arg(long, default_value_t = 26600)]
    base_port: u16,
    /// Every n-th transaction is a DvP settlement (0 = none).
    #[arg(long, default_value_t = 10)]
    settle_every: u64,
    /// Peer transport: tcp, or udp (Plume's reliability layer over
    /// kernel UDP sockets).
    #[arg(long, default_value = "tcp")]
    transport: String,
    /// How the load is submitted: bin (pre-signed, pipelined over the
    /// binary endpoint) or json (JSON-RPC, signed as it goes).
    #[arg(long, default_value = "bin")]
    submit: plume_node::devnet::Submit,
    /// Every n-th transaction goes to the devnet's sanctioned address and
    /// is stopped by the compliance rules (0 = none).
    #[arg(long, default_value_t = 1000)]
    sanctioned_every: u64,
    /// Run without the default compliance rule set.
    #[arg(long)]
    no_compliance: bool,
    /// Also run an observer (a non-voting follower that verifies every
    /// certificate and root and serves a read-only API) and compare its
    /// state with the validators' at the end; prints (and, on a desktop,
    /// opens) the observer's dashboard URL.
    #[arg(long)]
    observer: bool,
    /// Keep the network up after the load and its summary, until Ctrl-C
    /// (to browse the dashboard or the APIs).
    #[arg(long)]
    hold: bool,
    /// Also write the summary as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

// The options of `plume genesis new`.
#[derive(clap::Args, Debug)]
struct GenesisNewArgs {
    /// Chain id (a-z, 0-9, '-', '.').
    #[arg(long)]
    chain_id: String,
    /// A validator.json written by `plume init` (repeat per validator).
    #[arg(long = "validator", required = true)]
    validators: Vec<PathBuf>,
    /// An observer.json written by `plume init --role observer` (repeat per
    /// observer): a non-voting follower the validators serve blocks to.
    #[arg(long = "observer")]
    observers: Vec<PathBuf>,
    /// Initial balance ADDRESS=AMOUNT (repeatable).
    #[arg(long = "alloc")]
    allocs: Vec<String>,
    /// Output file.
    #[arg(long, default_value = "genesis.json")]
    out: PathBuf,
    /// Genesis time in ms since the Unix epoch (default: now).
    #[arg(long)]
    genesis_time_ms: Option<u64>,
    /// Base view timeout in milliseconds (protocol parameter).
    #[arg(long)]
    view_timeout_ms: Option<u64>,
    /// The compliance section (JSON: admin, list_keeper, providers, rules,
    /// deny, exempt, identities; see docs/compliance.md).
    #[arg(long)]
    compliance: Option<PathBuf>,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
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
    plume_node::roles::disable_transparent_huge_pages();
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
            map_size_gib,
            placement,
            force,
            role,
        } => {
            let mut cfg = Config::new(&moniker, &listen_addr, &api_addr);
            cfg.node.role = role.into();
            cfg.storage.map_size_gib = map_size_gib;
            if let Some(p) = placement {
                let cores: Vec<u32> = p
                    .split(',')
                    .map(|c| c.trim().parse::<u32>())
                    .collect::<std::result::Result<_, _>>()
                    .with_context(|| {
                        format!("--placement {p:?}: expected CONSENSUS,SIGVERIFY,EXEC core numbers")
                    })?;
                if cores.len() != 3 {
                    bail!("--placement {p:?}: expected three core numbers");
                }
                cfg.placement.consensus_cores = vec![cores[0]];
                cfg.placement.sigverify_cores = vec![cores[1]];
                cfg.placement.exec_cores = vec![cores[2]];
            }
            commands::init(home, cfg, force)?;
        }
        Cmd::Keys {
            cmd: KeysCmd::Show { home, json },
        } => cmd_keys_show(&home, json)?,
        Cmd::Genesis {
            cmd: GenesisCmd::New(args),
        } => cmd_genesis_new(args)?,
        Cmd::Genesis {
            cmd: GenesisCmd::Validate { file },
        } => {
            let g = load_genesis(&file)?;
            let set = g.validator_set()?;
            let compliance =
                plume_node::setup::compliance_of(&g).with_context(|| file.display().to_string())?;
            println!(
                "{}: valid (chain {}, {} validators, quorum power {} of {}, supply {})",
                file.display(),
                g.chain_id,
                set.len(),
                set.quorum_power(),
                set.total_power(),
                g.total_supply()
            );
            if let Some(c) = compliance {
                println!(
                    "  compliance: {} rules, {} providers, {} denied, {} exempt, {} identities",
                    c.rules.len(),
                    c.providers.len(),
                    c.deny.len(),
                    c.exempt.len(),
                    c.identities.len()
                );
            }
        }
        Cmd::Bench { args } => return commands::run_sibling("plume-bench", &args),
        Cmd::Sim { args } => return commands::run_sibling("plume-sim", &args),
        Cmd::Tune(args) => plume_tuning::cli::run_with_probes(&args, commands::transport_probes())?,
        Cmd::Start {
            home,
            genesis,
            role,
        } => plume_node::roles::start(&home, genesis.as_deref(), role.map(Into::into))?,
        Cmd::Devnet(args) => return cmd_devnet(args),
        Cmd::Tx { cmd } => cmd_tx(cmd)?,
        Cmd::Query { cmd } => cmd_query(cmd)?,
        Cmd::Compliance { cmd } => plume_node::cli::compliance::run(cmd)?,
        Cmd::Audit {
            cmd:
                AuditCmd::Report {
                    node,
                    from,
                    to,
                    format,
                    out,
                },
        } => plume_node::cli::compliance::report(&node, from, to, format, out.as_deref())?,
        Cmd::Safety {
            cmd:
                SafetyCmd::Reset {
                    home,
                    above_view,
                    force,
                },
        } => {
            let setup = plume_node::setup::NodeSetup::load(&home, None)?;
            plume_node::safety::SafetyFile::reset(
                &home.join("data"),
                setup.chain_u64,
                above_view,
                force,
            )?;
            println!(
                "{}: safety state reset; this validator votes only above view {above_view}",
                home.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_keys_show(home: &std::path::Path, json: bool) -> Result<()> {
    let cfg = Config::load(home)?;
    let keys = NodeKeys::load(home)?;
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
    Ok(())
}

fn cmd_genesis_new(args: GenesisNewArgs) -> Result<()> {
    let GenesisNewArgs {
        chain_id,
        validators,
        observers,
        allocs,
        out,
        genesis_time_ms,
        view_timeout_ms,
        compliance,
        force,
    } = args;
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
    let observers = observers
        .iter()
        .map(|p| plume_node::keys::read_observer_info(p))
        .collect::<Result<Vec<_>>>()?;
    let alloc = allocs
        .iter()
        .map(|a| parse_alloc(a))
        .collect::<Result<Vec<_>, _>>()?;
    let genesis_time_ms = match genesis_time_ms {
        Some(t) => t,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_millis() as u64,
    };
    let mut params = Params::default();
    if let Some(t) = view_timeout_ms {
        params.view_timeout_ms = t;
    }
    let compliance = match compliance {
        Some(p) => {
            let text = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            Some(
                serde_json::from_slice::<serde_json::Value>(&text)
                    .with_context(|| format!("{}: not JSON", p.display()))?,
            )
        }
        None => None,
    };
    let g = Genesis {
        chain_id,
        genesis_time_ms,
        validators,
        alloc,
        params,
        compliance,
        observers,
    };
    g.validate()
        .context("the genesis that would be written is invalid")?;
    plume_node::setup::compliance_of(&g).context("the genesis that would be written is invalid")?;
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
    Ok(())
}

fn cmd_devnet(args: DevnetArgs) -> Result<ExitCode> {
    let DevnetArgs {
        validators,
        dir,
        duration,
        rate,
        base_port,
        settle_every,
        transport,
        submit,
        sanctioned_every,
        no_compliance,
        observer,
        hold,
        json,
    } = args;
    if rate == 0 {
        bail!("--rate must be at least 1");
    }
    plume_node::roles::install_signal_handlers();
    let opts = plume_node::devnet::DevnetOptions {
        validators,
        dir,
        duration: std::time::Duration::from_secs(duration),
        rate,
        base_port,
        settle_every,
        progress: true,
        count: None,
        drain: std::time::Duration::from_secs(30),
        tx_size: 0,
        transport,
        submit,
        sanctioned_every: if no_compliance { 0 } else { sanctioned_every },
        compliance: !no_compliance,
        observer,
        hold,
    };
    let s = plume_node::devnet::run(&opts, plume_node::roles::stop_flag())?;
    if !hold {
        plume_node::devnet::print_summary(&s);
    }
    if let Some(p) = json {
        write_atomic(&p, &serde_json::to_vec_pretty(&s)?, 0o644)?;
    }
    if !s.roots_equal || s.finalized == 0 || s.observer.as_ref().is_some_and(|o| !o.equal()) {
        return Ok(ExitCode::from(3));
    }
    if s.finalized < s.submitted {
        return Ok(ExitCode::from(4));
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_tx(cmd: TxCmd) -> Result<()> {
    match cmd {
        TxCmd::Gov(cmd) => plume_node::cli::governance::run_tx(cmd),
        TxCmd::Transfer {
            common,
            to,
            amount,
            asset,
            travel_info,
            beneficiary_key,
        } => {
            let (key, chain, seq) = tx_prelude(&common)?;
            let to = plume_crypto::ed25519::Address::from_hex(&to).context("--to")?;
            let fees = Fees {
                max_fee_per_gas: common.max_fee,
                ..Fees::default()
            };
            let tx = txbuild::transfer(
                &chain,
                &key,
                seq,
                &to,
                amount,
                Some(txbuild::parse_asset(&asset)?),
                fees,
                u64::MAX,
            );
            let tx = match (travel_info, beneficiary_key) {
                (Some(info), bk) => {
                    let bk = match bk {
                        Some(k) => k,
                        None => plume_node::cli::compliance::beneficiary_envelope_key(
                            &common.node,
                            &to.0,
                        )?,
                    };
                    let memo = plume_node::cli::compliance::travel_memo_from(&info, &bk)?;
                    let mut body = tx.body;
                    body.memo = memo;
                    plume_protocol::Transaction::sign(body, &[&key])
                }
                _ => tx,
            };
            submit_or_dry_run(&common, tx)
        }
        TxCmd::Settle {
            common,
            cosigners,
            legs,
        } => {
            let (key, chain, seq) = tx_prelude(&common)?;
            let others = cosigners
                .iter()
                .map(|p| plume_client::keyfile::read_account_key(p))
                .collect::<Result<Vec<_>, _>>()?;
            let mut keys = vec![&key];
            keys.extend(others.iter());
            let legs = legs
                .iter()
                .map(|l| txbuild::parse_leg(l))
                .collect::<Result<Vec<_>, _>>()?;
            let fees = Fees {
                max_fee_per_gas: common.max_fee,
                ..Fees::default()
            };
            let tx = txbuild::settle(&chain, &keys, seq, legs, fees, u64::MAX);
            submit_or_dry_run(&common, tx)
        }
        TxCmd::CreateAsset {
            common,
            symbol,
            decimals,
            supply,
            mintable,
        } => {
            let (key, chain, seq) = tx_prelude(&common)?;
            let fees = Fees {
                max_fee_per_gas: common.max_fee,
                ..Fees::default()
            };
            let tx = txbuild::create_asset(
                &chain,
                &key,
                seq,
                &symbol,
                decimals,
                mintable,
                supply,
                fees,
                u64::MAX,
            );
            let id = plume_protocol::tx::asset_id(&key.public_key().address().0, seq);
            if !common.json {
                println!("asset id {}", hex::encode(id));
            }
            submit_or_dry_run(&common, tx)
        }
    }
}

fn cmd_query(cmd: QueryCmd) -> Result<()> {
    use plume_client::rpc;
    use serde_json::json;
    match cmd {
        QueryCmd::Gov(cmd) => plume_node::cli::governance::run_query(cmd)?,
        QueryCmd::Account {
            address,
            node,
            verify_with,
            json: as_json,
        } => {
            let v = rpc(&node, "plume_getAccount", json!([address]))?;
            if let Some(g) = verify_with {
                let genesis = load_genesis(&g)?;
                let h = v["height"].as_u64().unwrap_or(0);
                // The block that certifies this root is STATE_LAG above it.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                let root = loop {
                    match rpc(&node, "plume_getStateRoot", json!([h])) {
                        Ok(r) => break r,
                        Err(e) if std::time::Instant::now() < deadline => {
                            let _ = e;
                            std::thread::sleep(std::time::Duration::from_millis(200));
                        }
                        Err(e) => bail!("the root of height {h} was not certified in time: {e}"),
                    }
                };
                let a = plume_client::verify::verify_account(&v, &root, &genesis)?;
                println!(
                    "VERIFIED: balance {} sequence {} at height {} (root certified by the validators of {})",
                    a.balance,
                    a.sequence,
                    a.height,
                    g.display()
                );
            }
            if as_json {
                println!("{v}");
            } else {
                println!("address   {}", v["address"].as_str().unwrap_or(""));
                println!("balance   {}", v["balance"].as_str().unwrap_or(""));
                println!("sequence  {}", v["sequence"]);
                println!(
                    "at height {} (state root {})",
                    v["height"],
                    v["state_root"].as_str().unwrap_or("")
                );
            }
        }
        QueryCmd::Tx {
            hash,
            node,
            verify_with,
            json: as_json,
        } => {
            let v = rpc(&node, "plume_getTransaction", json!([hash]))?;
            if as_json {
                println!("{v}");
            } else {
                println!("tx       {}", v["hash"].as_str().unwrap_or(""));
                println!("height   {} index {}", v["height"], v["index"]);
                println!(
                    "status   {} ({})",
                    v["receipt"]["status"].as_str().unwrap_or(""),
                    v["receipt"]["reason"].as_str().unwrap_or("")
                );
                println!(
                    "gas      {}  fee {}  burned {}",
                    v["receipt"]["gas_used"],
                    v["receipt"]["fee_paid"].as_str().unwrap_or(""),
                    v["receipt"]["fee_burned"].as_str().unwrap_or("")
                );
            }
            if let Some(g) = verify_with {
                let genesis = load_genesis(&g)?;
                let h = plume_client::verify::verify_finality(&v["finality_proof"], &genesis)?;
                println!(
                    "finality proof VERIFIED offline against {} (block {h})",
                    g.display()
                );
            }
        }
        QueryCmd::Block {
            height,
            node,
            json: as_json,
        } => {
            let v = rpc(&node, "plume_getBlock", json!([height]))?;
            if as_json {
                println!("{v}");
            } else {
                println!("height   {}", v["height"]);
                println!("hash     {}", v["hash"].as_str().unwrap_or(""));
                println!("view     {}  proposer {}", v["view"], v["proposer"]);
                println!(
                    "batches  {}",
                    v["batches"].as_array().map(|a| a.len()).unwrap_or(0)
                );
            }
        }
        QueryCmd::Status { node } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&rpc(&node, "plume_status", json!([]))?)?
            );
        }
    }
    Ok(())
}
