//! `plume sim` (the `plume-sim` binary): long seeded sweeps of the cluster
//! simulator.

use crate::latency;
use plume_consensus::{BlsScheme, TestScheme};
use std::io::Write;
use std::time::Instant;

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
    /// Use real BLS signatures instead of the cheap test scheme.
    #[arg(long)]
    pub bls: bool,
    /// Virtual milliseconds of faults per seed.
    #[arg(long, default_value_t = 600)]
    pub fault_ms: u64,
    /// Instead of a sweep, print finality latency for 4/7/10 validators at
    /// 1 ms and 50 ms one-way latency.
    #[arg(long)]
    pub report_latency: bool,
    /// Self-test of the checkers: run the engine with the deliberately
    /// unsafe one-chain commit rule (violations are expected).
    #[arg(long, hide = true)]
    pub unsafe_one_chain: bool,
}

/// Run the sweep; `Ok(true)` when no violation was found.
pub fn run(args: &SimArgs) -> anyhow::Result<bool> {
    if args.report_latency {
        println!("validators  one-way  mean finality  min  max  message delays");
        for n in [4, 7, 10] {
            for lat in [1_000, 50_000] {
                let r = latency::measure::<TestScheme>(n, lat, 20);
                println!(
                    "{:>10}  {:>5}ms  {:>10.1}ms  {:.1}ms  {:.1}ms  {:.2}",
                    n,
                    lat / 1000,
                    r.mean_us as f64 / 1000.0,
                    r.min_us as f64 / 1000.0,
                    r.max_us as f64 / 1000.0,
                    r.message_delays()
                );
            }
        }
        return Ok(true);
    }
    let n = args.validators;
    anyhow::ensure!(
        (1..=plume_crypto::qc::VALIDATORS_MAX).contains(&n),
        "bad --validators"
    );
    let f = (n - 1) / 3;
    anyhow::ensure!(
        args.byzantine <= f,
        "--byzantine {} exceeds f = {f} for {n} validators",
        args.byzantine
    );
    let started = Instant::now();
    let mut last = Instant::now();
    let mut done = 0u64;
    let mut blocks = 0u64;
    let seeds = args.seeds;
    let mut progress = |o: &crate::Outcome| {
        done += 1;
        blocks += o.blocks_finalized;
        for v in &o.violations {
            println!(
                "VIOLATION seed {}: {:?} at {} us: {}",
                o.seed, v.kind, v.at_us, v.detail
            );
        }
        if last.elapsed().as_secs() >= 1 || done == seeds {
            last = Instant::now();
            eprint!(
                "\r{done}/{seeds} seeds, {blocks} blocks, {:.1}s",
                started.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
    };
    let fault_us = args.fault_ms * 1000;
    let unsafe_one_chain = args.unsafe_one_chain;
    let tweak = move |c: &mut crate::SimConfig| {
        if unsafe_one_chain {
            c.commit_rule = plume_consensus::CommitRule::OneChainUnsafe;
            c.check_commit_proofs = false;
        }
    };
    let s = if args.bls {
        crate::sweep::<BlsScheme>(
            args.start_seed,
            seeds,
            n,
            args.byzantine,
            fault_us,
            &tweak,
            &mut progress,
        )
    } else {
        crate::sweep::<TestScheme>(
            args.start_seed,
            seeds,
            n,
            args.byzantine,
            fault_us,
            &tweak,
            &mut progress,
        )
    };
    eprintln!();
    for (seed, _) in &s.failures {
        println!(
            "replay: plume sim --seeds 1 --validators {n} --byzantine {} --start-seed {seed}{}{}{}",
            args.byzantine,
            if args.unsafe_one_chain {
                " --unsafe-one-chain"
            } else {
                ""
            },
            if args.bls { " --bls" } else { "" },
            if args.fault_ms != 600 {
                format!(" --fault-ms {}", args.fault_ms)
            } else {
                String::new()
            },
        );
    }
    println!(
        "seeds: {}, blocks finalized: {}, violations: {}",
        s.seeds,
        s.blocks_finalized,
        s.failures.len()
    );
    Ok(s.failures.is_empty())
}
