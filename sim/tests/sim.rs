//! Simulation tests: the CI seed sweep, real-BLS seeds, replay, the
//! mutation test, liveness, leader reputation and finality latency.

use plume_consensus::{BlsScheme, CommitRule, TestScheme};
use plume_sim::world::Behavior;
use plume_sim::*;

const BLS_FAULT_WINDOW_US: u64 = 300_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Run a sweep and assert it is clean and actually exercised the faults.
fn clean_sweep<S: SimScheme>(start: u64, seeds: u64, n: usize, k: usize, window_us: u64) {
    let mut rejected = 0u64;
    let mut timeouts = 0u64;
    let mut epoch_changes = 0u64;
    let s = sweep::<S>(start, seeds, n, k, window_us, &|_| {}, &mut |o| {
        rejected += o.rejected_messages;
        timeouts += o.timeouts;
        epoch_changes += o.min_epoch;
    });
    for (seed, v) in &s.failures {
        eprintln!(
            "seed {seed}: {v:?}\nreplay: plume sim --seeds 1 --validators {n} --byzantine {k} --start-seed {seed}{}",
            if S::NAME == "bls" { " --bls" } else { "" }
        );
    }
    assert!(s.failures.is_empty(), "{} failing seeds", s.failures.len());
    assert_eq!(s.seeds, seeds);
    // Every seed finalizes after faults stop, so at least 3 blocks per seed.
    assert!(
        s.blocks_finalized >= 3 * seeds,
        "{} blocks",
        s.blocks_finalized
    );
    if k > 0 {
        assert!(rejected > 0, "Byzantine messages were never rejected");
    }
    assert!(
        timeouts > 0,
        "no view ever timed out: faults were not exercised"
    );
    assert!(epoch_changes > 0, "no seed changed epoch");
}

// The CI sweep: 400 + 350 + 250 = 1,000 seeds with f Byzantine validators
// (plus crashes, partitions, drops and duplicates drawn per seed).
// PLUME_SIM_SEEDS_SCALE multiplies the seed counts for longer runs.

#[test]
fn sweep_n4_f1() {
    let scale = env_u64("PLUME_SIM_SEEDS_SCALE", 1);
    clean_sweep::<TestScheme>(0, 400 * scale, 4, 1, CI_FAULT_WINDOW_US);
}

#[test]
fn sweep_n7_f2() {
    let scale = env_u64("PLUME_SIM_SEEDS_SCALE", 1);
    clean_sweep::<TestScheme>(10_000, 350 * scale, 7, 2, CI_FAULT_WINDOW_US);
}

#[test]
fn sweep_n10_f3() {
    let scale = env_u64("PLUME_SIM_SEEDS_SCALE", 1);
    clean_sweep::<TestScheme>(20_000, 250 * scale, 10, 3, CI_FAULT_WINDOW_US);
}

/// At least 100 seeds with real BLS votes and quorum certificates end to end.
#[test]
fn sweep_bls_100_seeds() {
    // Shorter fault windows: pairings dominate the run time.
    clean_sweep::<BlsScheme>(30_000, 100, 4, 1, BLS_FAULT_WINDOW_US);
}

#[test]
fn replay_is_bit_identical() {
    for seed in [3u64, 77, 1234] {
        let cfg = SimConfig::random(seed, 7, 2, CI_FAULT_WINDOW_US);
        let a = run::<TestScheme>(&cfg);
        let b = run::<TestScheme>(&cfg);
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(a.events, b.events);
        assert_eq!(a.blocks_finalized, b.blocks_finalized);
        let c = run::<TestScheme>(&SimConfig::random(seed + 1, 7, 2, CI_FAULT_WINDOW_US));
        assert_ne!(a.trace_hash, c.trace_hash, "different seeds, same trace");
    }
    let cfg = SimConfig::random(5, 4, 1, 300_000);
    assert_eq!(
        run::<BlsScheme>(&cfg).trace_hash,
        run::<BlsScheme>(&cfg).trace_hash
    );
}

/// The mutation test: with the unsafe one-chain commit rule the agreement
/// and validity checkers find a violation within the CI seed count, even
/// with the commit-proof check switched off.
#[test]
fn mutation_one_chain_commit_is_caught() {
    let mut found = None;
    for seed in 0..1000u64 {
        let mut cfg = SimConfig::random(seed, 4, 1, CI_FAULT_WINDOW_US);
        cfg.commit_rule = CommitRule::OneChainUnsafe;
        cfg.check_commit_proofs = false;
        let o = run::<TestScheme>(&cfg);
        if let Some(v) = o
            .violations
            .iter()
            .find(|v| matches!(v.kind, ViolationKind::Agreement | ViolationKind::Validity))
        {
            found = Some((seed, v.clone()));
            break;
        }
    }
    let (seed, v) = found.expect("the one-chain mutation escaped 1000 seeds");
    eprintln!("one-chain mutation caught at seed {seed}: {v:?}");
    // With commit proofs checked, a client-style check catches it at once.
    let mut cfg = SimConfig::random(0, 4, 0, CI_FAULT_WINDOW_US);
    cfg.commit_rule = CommitRule::OneChainUnsafe;
    let o = run::<TestScheme>(&cfg);
    assert!(
        o.violations
            .iter()
            .any(|v| v.kind == ViolationKind::Certificate),
        "{:?}",
        o.violations
    );
}

/// The liveness checker bites: with f + 1 silent validators nothing is final.
#[test]
fn liveness_checker_catches_too_many_faults() {
    let mut cfg = SimConfig::fault_free(1, 4, 1_000, 3);
    cfg.behaviors[1] = Behavior::Withhold;
    cfg.behaviors[2] = Behavior::Withhold;
    let o = run::<TestScheme>(&cfg);
    assert!(
        o.violations
            .iter()
            .any(|v| v.kind == ViolationKind::Liveness),
        "{:?}",
        o.violations
    );
}

/// Leader reputation: a silent validator stops being chosen, so it costs a
/// few timeouts instead of one every n views.
#[test]
fn leader_reputation_skips_a_crashed_validator() {
    let timeouts = |reputation: bool| {
        let mut cfg = SimConfig::fault_free(2, 4, 1_000, 60);
        cfg.behaviors[3] = Behavior::Withhold; // silent from time 0
        cfg.leader_reputation = reputation;
        let o = run::<TestScheme>(&cfg);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        o.timeouts
    };
    let with = timeouts(true);
    let without = timeouts(false);
    eprintln!("timeouts with reputation {with}, without {without}");
    assert!(with * 3 < without, "with {with}, without {without}");
}

/// Finality latency in virtual time; the README quotes these numbers
/// (`cargo test -p plume-sim --test sim finality_latency -- --nocapture`).
#[test]
fn finality_latency() {
    for n in [4, 7, 10] {
        for one_way_us in [1_000, 50_000] {
            let r = latency::measure::<TestScheme>(n, one_way_us, 20);
            println!(
                "n={n} one-way={}ms mean={:.1}ms min={:.1}ms max={:.1}ms delays={:.2}",
                one_way_us / 1000,
                r.mean_us as f64 / 1000.0,
                r.min_us as f64 / 1000.0,
                r.max_us as f64 / 1000.0,
                r.message_delays()
            );
            // Two-chain commit with leader-collected votes: the next leader
            // finalizes after 4 delays, everyone else after 5.
            assert!(r.min_us >= 4 * one_way_us, "{r:?}");
            assert!(r.max_us <= 5 * one_way_us, "{r:?}");
        }
    }
}

/// Validator-set changes: every epoch has new keys; the chain stays one
/// chain across boundaries.
#[test]
fn epoch_changes_keep_one_chain() {
    let mut cfg = SimConfig::fault_free(4, 4, 1_000, 60);
    cfg.epoch_length = 5;
    let o = run::<TestScheme>(&cfg);
    assert!(o.violations.is_empty(), "{:?}", o.violations);
    assert!(o.blocks_finalized >= 60);
    assert!(o.min_epoch >= 10, "epoch {}", o.min_epoch);
}

/// A validator cut off for several epochs catches up (epoch proofs + block
/// sync) and finalizes again once the partition heals. (Catching up from
/// further behind than `RETAIN_BLOCKS` blocks or `EPOCH_PROOFS_MAX` epochs
/// needs state sync, which is not built.)
#[test]
fn lagging_validator_catches_up_across_epochs() {
    let mut cfg = SimConfig::fault_free(5, 4, 1_000, 150);
    cfg.epoch_length = 30;
    cfg.fault_end_us = 300_000;
    cfg.partitions.push(world::Partition {
        from_us: 0,
        until_us: 300_000,
        group: vec![0, 0, 0, 1],
    });
    let o = run::<TestScheme>(&cfg);
    assert!(o.violations.is_empty(), "{:?}", o.violations);
    assert!(o.min_epoch >= 3, "epoch {}", o.min_epoch);
}

/// Replay one seed without building the node binary:
/// `PLUME_SIM_REPLAY=n,k,seed cargo test -p plume-sim --test sim replay -- --ignored --nocapture`
#[test]
#[ignore = "manual: set PLUME_SIM_REPLAY=n,k,seed"]
fn replay() {
    let spec = std::env::var("PLUME_SIM_REPLAY").expect("PLUME_SIM_REPLAY=n,k,seed");
    let v: Vec<u64> = spec
        .split(',')
        .map(|x| x.trim().parse().expect("number"))
        .collect();
    let cfg = SimConfig::random(v[2], v[0] as usize, v[1] as usize, CI_FAULT_WINDOW_US);
    println!("{cfg:?}");
    let o = run::<TestScheme>(&cfg);
    println!(
        "blocks {} events {} trace {:016x} violations {:?}",
        o.blocks_finalized, o.events, o.trace_hash, o.violations
    );
    assert!(o.violations.is_empty());
}
