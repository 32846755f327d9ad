//! `plume bench storage`: durable block commits on LMDB (one write
//! transaction and one fsync per block) for blocks of 1, 100 and 5,000
//! state writes; batched state writes per second; zero-copy point reads;
//! proof generation and verification; and how the cost of a commit grows
//! with the number of accounts (10 K, 100 K, 1 M, times `--scale`).
//!
//! The store lives in a temporary directory on the disk that holds the
//! system temp dir (`TMPDIR` to move it), so the fsyncs are real.

use crate::report::{histogram, time_each};
use crate::{Options, Report};
use plume_crypto::{hash, Domain};
use plume_storage::{
    AuthenticatedState, BlockCommit, LmdbKv, LmdbOptions, StateKey, StateWrite, Store,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Accounts at the three growth checkpoints (before `--scale`).
const CHECKPOINTS: [(&str, u64); 3] = [("10k", 10_000), ("100k", 100_000), ("1m", 1_000_000)];
/// State writes per commit while filling the store (the batched figure).
const FILL_BATCH: u64 = 50_000;
/// Bytes of each account value.
const VALUE_BYTES: usize = 64;
/// Map size for the benchmark store.
const MAP_GIB: u64 = 32;

fn scaled(n: u64, opts: &Options) -> u64 {
    ((n as f64 * opts.scale).ceil() as u64).max(1)
}

fn account(i: u64) -> StateKey {
    hash(Domain::State, &i.to_le_bytes()).0
}

fn value(i: u64, version: u64) -> Vec<u8> {
    let mut v = vec![0u8; VALUE_BYTES];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v[8..16].copy_from_slice(&version.to_le_bytes());
    v
}

/// xorshift64*: a fixed sequence so runs are comparable.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

struct Bench {
    store: Store<LmdbKv>,
    height: u64,
    accounts: u64,
    version: u64,
    rng: Rng,
}

impl Bench {
    /// Commit one block holding `writes`; returns the time spent staging
    /// the writes (tree update, CPU) and writing the block (LMDB + fsync).
    fn commit(&mut self, writes: &[StateWrite]) -> anyhow::Result<(Duration, Duration)> {
        let h = self.height;
        let block = h.to_le_bytes();
        let t = Instant::now();
        self.store.apply(writes)?;
        let staged = t.elapsed();
        self.store.commit_block(&BlockCommit {
            height: h,
            hash: hash(Domain::Block, &block),
            block: &block,
            qc: &[0u8; 144],
            txs: &[],
        })?;
        self.height += 1;
        Ok((staged, t.elapsed() - staged))
    }

    /// `n` writes to random existing accounts (updates).
    fn updates(&mut self, n: u64) -> Vec<StateWrite> {
        self.version += 1;
        let mut w: Vec<StateWrite> = (0..n)
            .map(|_| {
                let i = self.rng.next() % self.accounts;
                (account(i), Some(value(i, self.version)))
            })
            .collect();
        w.sort_unstable_by_key(|x| x.0);
        w.dedup_by_key(|x| x.0);
        w
    }

    /// Create accounts until there are `target`; returns (writes, seconds).
    fn fill_to(&mut self, target: u64) -> anyhow::Result<(u64, f64)> {
        let start = Instant::now();
        let mut written = 0;
        while self.accounts < target {
            let end = (self.accounts + FILL_BATCH).min(target);
            let writes: Vec<StateWrite> = (self.accounts..end)
                .map(|i| (account(i), Some(value(i, 0))))
                .collect();
            self.commit(&writes)?;
            written += end - self.accounts;
            self.accounts = end;
        }
        Ok((written, start.elapsed().as_secs_f64()))
    }
}

/// Run the suite.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let mut r = Report::new("storage");
    let dir = tempfile::tempdir()?;
    let kv = LmdbKv::open(dir.path(), &LmdbOptions::with_map_size_gib(MAP_GIB))?;
    let mut b = Bench {
        store: Store::open(kv)?,
        height: 0,
        accounts: 0,
        version: 0,
        rng: Rng(0x9E37_79B9_7F4A_7C15),
    };
    r.machine
        .insert("store_dir".into(), dir.path().display().to_string());

    // Growth: fill to each checkpoint, then time 100-write commits there.
    let mut fill_writes = 0;
    let mut fill_secs = 0.0;
    let growth_blocks = scaled(200, opts).max(20);
    for (label, n) in CHECKPOINTS {
        let n = scaled(n, opts).max(1_000);
        let (w, s) = b.fill_to(n)?;
        fill_writes += w;
        fill_secs += s;
        let mut h = histogram();
        for _ in 0..growth_blocks {
            let writes = b.updates(100);
            let (stage, write) = b.commit(&writes)?;
            h.record((stage + write).as_nanos().max(1) as u64)?;
        }
        r.latency(&format!("commit_100w_at_{label}_accounts"), &h);
        r.figure(
            &format!("commit_100w_p50_us_at_{label}_accounts"),
            h.value_at_quantile(0.5) as f64 / 1e3,
        );
        r.figure(&format!("accounts_at_{label}"), n as f64);
    }
    r.figure("state_writes_per_s_batched", fill_writes as f64 / fill_secs);
    r.figure("state_writes_batch_size", FILL_BATCH as f64);
    r.target("state_writes_per_s_batched", true, 150_000.0);

    // Durable commits of blocks of 1, 100 and 5,000 writes at full size.
    for (n, blocks) in [(1u64, 300u64), (100, 200), (5_000, 30)] {
        let blocks = scaled(blocks, opts).max(10);
        let mut h = histogram();
        let mut h_stage = histogram();
        let mut h_write = histogram();
        let start = Instant::now();
        let mut writes_done = 0;
        for _ in 0..blocks {
            let writes = b.updates(n);
            writes_done += writes.len() as u64;
            let (stage, write) = b.commit(&writes)?;
            h.record((stage + write).as_nanos().max(1) as u64)?;
            h_stage.record(stage.as_nanos().max(1) as u64)?;
            h_write.record(write.as_nanos().max(1) as u64)?;
        }
        let wall = start.elapsed().as_secs_f64();
        r.latency(&format!("commit_block_{n}w"), &h);
        r.latency(&format!("commit_block_{n}w_stage_cpu"), &h_stage);
        r.latency(&format!("commit_block_{n}w_write_fsync"), &h_write);
        r.figure(&format!("commits_per_s_{n}w"), blocks as f64 / wall);
        r.figure(
            &format!("state_writes_per_s_{n}w_blocks"),
            writes_done as f64 / wall,
        );
    }

    // Zero-copy point reads of committed values.
    let reads = scaled(1_000_000, opts);
    let keys: Vec<StateKey> = (0..4096)
        .map(|_| account(b.rng.next() % b.accounts))
        .collect();
    {
        let reader = b.store.state_reader()?;
        let start = Instant::now();
        let mut found = 0u64;
        for i in 0..reads {
            let k = &keys[(i % 4096) as usize];
            if let Some(x) = reader.get_with(k, |v| v[0])? {
                black_box(x);
                found += 1;
            }
        }
        let wall = start.elapsed().as_secs_f64();
        anyhow::ensure!(found == reads, "every read key exists");
        r.figure("point_reads_per_s_one_txn", reads as f64 / wall);
    }
    {
        let iters = scaled(200_000, opts);
        let mut i = 0usize;
        let (h, wall) = time_each(iters, || {
            let k = &keys[i % 4096];
            i += 1;
            black_box(b.store.with_committed_value(k, |v| v[0]).ok());
        });
        r.latency("point_read_own_txn", &h);
        r.figure(
            "point_reads_per_s_own_txn",
            iters as f64 / wall.as_secs_f64(),
        );
    }

    // Proofs at full size.
    let root = b.store.root();
    let proofs: Vec<_> = keys[..256]
        .iter()
        .map(|k| b.store.prove(k))
        .collect::<Result<_, _>>()?;
    {
        let iters = scaled(50_000, opts);
        let mut i = 0usize;
        let (h, _) = time_each(iters, || {
            black_box(b.store.prove(&keys[i % 4096]).ok());
            i += 1;
        });
        r.latency("proof_generate", &h);
        let values: Vec<Vec<u8>> = keys[..256]
            .iter()
            .map(|k| b.store.get(k).map(|v| v.unwrap_or_default()))
            .collect::<Result<_, _>>()?;
        let mut i = 0usize;
        let (h, _) = time_each(iters, || {
            let j = i % 256;
            i += 1;
            assert!(proofs[j].verify(&root, &keys[j], Some(&values[j])).is_ok());
        });
        r.latency("proof_verify", &h);
        let depth: usize = proofs.iter().map(|p| p.siblings.len()).sum();
        r.figure("proof_mean_siblings", depth as f64 / proofs.len() as f64);
    }
    r.figure("accounts_final", b.accounts as f64);
    r.figure(
        "store_mib",
        b.store.kv().used_bytes() as f64 / (1u64 << 20) as f64,
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_suite_runs_and_reports_every_figure() {
        let r = run(&Options {
            core: None,
            scale: 0.001,
            ..Options::default()
        })
        .unwrap();
        for f in [
            "commits_per_s_1w",
            "commits_per_s_100w",
            "commits_per_s_5000w",
            "state_writes_per_s_batched",
            "point_reads_per_s_one_txn",
            "commit_100w_p50_us_at_1m_accounts",
            "proof_mean_siblings",
        ] {
            let v = r.figures[f];
            assert!(v.is_finite() && v > 0.0, "{f} = {v}");
        }
        for l in ["commit_block_5000w", "proof_generate", "proof_verify"] {
            assert!(r.latencies[l].samples > 0, "{l}");
        }
        assert_eq!(r.targets.len(), 1);
    }
}
