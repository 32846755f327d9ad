//! `plume-bench`: the benchmark suites (`plume bench <suite>` runs this
//! binary). Prints hdrhistogram percentiles and writes JSON.

use anyhow::{bail, Context, Result};
use clap::Parser;
use plume_benches::cluster::bench::ClusterOptions;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Run a benchmark suite: crypto, storage, exec, index, net, cluster, sweep, attack.
#[derive(Parser, Debug)]
#[command(name = "plume bench", version)]
struct Args {
    /// Suite name.
    suite: String,
    /// Also write the figures as JSON to this file (sweep: and a plot, .svg).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Core to pin the benchmark thread to.
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// Scale iteration counts (0.1 for a quick smoke run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// attack: peer-flood, handshake-flood, slowloris, ws-stall or
    /// mempool-squat.
    #[arg(long, default_value = "peer-flood")]
    kind: String,
    /// cluster/sweep/attack: validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// cluster: offered tx/s; sweep: first rate (doubled each run).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// cluster/sweep: seconds of load per run.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// cluster/sweep: transaction size in bytes.
    #[arg(long, default_value_t = 512)]
    tx_size: usize,
    /// sweep: p99 finality bound in ms.
    #[arg(long, default_value_t = 100.0)]
    bound_ms: f64,
    /// sweep: node setting to try, name=v1,v2 (repeatable).
    #[arg(long = "param")]
    params: Vec<String>,
    /// net: transports to compare over veth: tcp, udp, af_xdp, dpdk
    /// (repeatable or comma-separated; default: tcp, plus the others when root).
    /// cluster/sweep: the validators' peer transport, tcp (default) or udp.
    #[arg(long = "transport", value_delimiter = ',')]
    transports: Vec<String>,
    /// exec: also measure transfers under this compliance rule set (a
    /// JSON list of rules, as `plume compliance set-rules` takes).
    #[arg(long)]
    compliance: Option<std::path::PathBuf>,
    /// cluster/sweep/attack: how the load is submitted: bin (pre-signed,
    /// pipelined over the binary endpoint; default) or json (JSON-RPC,
    /// signed as it goes).
    #[arg(long, default_value = "bin")]
    submit: plume_node::devnet::Submit,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(a: Args) -> Result<()> {
    if !(a.scale > 0.0 && a.scale <= 100.0) {
        bail!("--scale must be in (0, 100]");
    }
    let cluster_suite = matches!(a.suite.as_str(), "cluster" | "sweep" | "attack");
    let transport = match (cluster_suite, a.transports.as_slice()) {
        (true, []) => "tcp".to_string(),
        (true, [one]) => one.clone(),
        (true, _) => bail!(
            "bench {} runs one --transport at a time (tcp or udp)",
            a.suite
        ),
        _ => "tcp".to_string(),
    };
    let opts = plume_benches::Options {
        core: Some(a.core),
        scale: a.scale,
        cluster: ClusterOptions {
            validators: a.validators,
            rate: a.rate,
            duration_s: a.duration,
            tx_size: a.tx_size,
            bound_ms: a.bound_ms,
            params: a.params,
            dir: None,
            transport,
            attack: a.kind,
            submit: a.submit,
        },
        transports: a.transports,
        compliance: a.compliance,
    };
    let report = plume_benches::run_suite(&a.suite, &opts)?;
    print!("{}", report.to_table());
    if let Some(path) = a.json {
        report
            .write_json(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
