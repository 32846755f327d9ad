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
    /// Every Byzantine validator follows this strategy (default: each draws
    /// one from the seed). One of: equivocate, double-vote, twins,
    /// unknown-votes, bad-signatures, withhold, forged-cert,
    /// forged-signers, cross-chain, far-future-view, sync-flood,
    /// epoch-proof-replay, wrong-root, two-batches, withhold-batches,
    /// uncertified-digest, lying-verdict.
    #[arg(long)]
    pub strategy: Option<String>,
    /// Run this one seed and print its outcome and trace hash (the same
    /// hash on every run and machine).
    #[arg(long)]
    pub replay: Option<u64>,
    /// Self-test of the checkers: run the engine with the deliberately
    /// unsafe one-chain commit rule (violations are expected).
    #[arg(long, hide = true)]
    pub unsafe_one_chain: bool,
    /// Self-test of the checkers: a deliberately broken rule
    /// (skip-cert-check, skip-root-check, persist-nothing,
    /// committed-only-restart, skip-vote-rule, body-only-digest);
    /// violations are expected.
    #[arg(long, hide = true)]
    pub mutation: Option<String>,
}

/// A named mutation applied to a config (the checkers' self-tests).
pub fn apply_mutation(name: &str, c: &mut crate::SimConfig) -> anyhow::Result<()> {
    match name {
        "one-chain" => {
            c.commit_rule = plume_consensus::CommitRule::OneChainUnsafe;
            c.check_commit_proofs = false;
        }
        "skip-cert-check" => c.mutation = plume_consensus::Mutation::SkipCertCheck,
        "skip-root-check" => c.mutation = plume_consensus::Mutation::SkipRootCheck,
        "persist-nothing" => c.persist = crate::Persist::Nothing,
        "committed-only-restart" => c.persist = crate::Persist::CommittedOnly,
        "skip-vote-rule" => c.batch_mutation = crate::world::BatchMutation::SkipVoteRule,
        "body-only-digest" => c.batch_mutation = crate::world::BatchMutation::BodyOnlyDigest,
        other => anyhow::bail!("unknown mutation {other:?}"),
    }
    Ok(())
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
    let strategy = match args.strategy.as_deref() {
        None | Some("random") => None,
        Some(name) => Some(crate::Behavior::from_name(name).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown --strategy {name:?}; one of: {}",
                crate::BYZANTINE_BEHAVIORS
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?),
    };
    anyhow::ensure!(
        strategy.is_none() || args.byzantine > 0,
        "--strategy needs --byzantine 1 or more"
    );
    let mut mutations: Vec<String> = args.mutation.iter().cloned().collect();
    if args.unsafe_one_chain {
        mutations.push("one-chain".into());
    }
    for m in &mutations {
        apply_mutation(m, &mut crate::SimConfig::fault_free(0, 4, 1000, 1))?;
    }
    let fault_us = args.fault_ms * 1000;
    let make = |seed: u64| {
        let mut c = crate::SimConfig::random_with(seed, n, args.byzantine, fault_us, strategy);
        for m in &mutations {
            apply_mutation(m, &mut c).expect("checked above");
        }
        c
    };
    if let Some(seed) = args.replay {
        let cfg = make(seed);
        let o = if args.bls {
            crate::run::<BlsScheme>(&cfg)
        } else {
            crate::run::<TestScheme>(&cfg)
        };
        println!("{cfg:#?}");
        println!(
            "seed {seed}: {} blocks finalized, {} events, end {} us, {} rejected messages, trace {:016x}",
            o.blocks_finalized, o.events, o.end_us, o.rejected_messages, o.trace_hash
        );
        println!(
            "seed {seed}: {} transactions executed ({} successful receipts over all validators), {} submissions refused, {} proposals refused by the vote rule, {} peer batch items refused, {} evidence, {} catch-ups ({} segments refused)",
            o.txs_executed,
            o.txs_succeeded,
            o.rejected_txs,
            o.proposals_refused,
            o.refused_bulk,
            o.evidence,
            o.catch_ups,
            o.refused_segments
        );
        for v in &o.violations {
            println!("VIOLATION {:?} at {} us: {}", v.kind, v.at_us, v.detail);
        }
        return Ok(o.violations.is_empty());
    }
    let started = Instant::now();
    let mut last = Instant::now();
    let mut done = 0u64;
    let mut blocks = 0u64;
    let mut txs = 0u64;
    let seeds = args.seeds;
    let mut progress = |o: &crate::Outcome| {
        done += 1;
        blocks += o.blocks_finalized;
        txs += o.txs_executed;
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
    let mut s = crate::SweepSummary::default();
    for seed in args.start_seed..args.start_seed + seeds {
        let cfg = make(seed);
        let o = if args.bls {
            crate::run::<BlsScheme>(&cfg)
        } else {
            crate::run::<TestScheme>(&cfg)
        };
        s.seeds += 1;
        s.blocks_finalized += o.blocks_finalized;
        progress(&o);
        if !o.violations.is_empty() {
            s.failures.push((seed, o.violations));
        }
    }
    eprintln!();
    let mut flags = String::new();
    if let Some(st) = &args.strategy {
        flags += &format!(" --strategy {st}");
    }
    if let Some(m) = &args.mutation {
        flags += &format!(" --mutation {m}");
    }
    if args.unsafe_one_chain {
        flags += " --unsafe-one-chain";
    }
    if args.bls {
        flags += " --bls";
    }
    if args.fault_ms != 600 {
        flags += &format!(" --fault-ms {}", args.fault_ms);
    }
    for (seed, _) in &s.failures {
        println!(
            "replay: plume sim --validators {n} --byzantine {}{flags} --replay {seed}",
            args.byzantine
        );
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} seeds in {secs:.1} s ({:.1} seeds/s)",
        s.seeds,
        s.seeds as f64 / secs.max(1e-9)
    );
    println!(
        "seeds: {}, blocks finalized: {}, transactions executed: {txs}, violations: {}",
        s.seeds,
        s.blocks_finalized,
        s.failures.len()
    );
    Ok(s.failures.is_empty())
}
