//! `plume bench index`: the regulator node's fund-flow index on SQLite.
//! Indexes 1,000,000 transfers (times `--scale`) among 100,000 accounts in
//! blocks of 2,000 (one SQLite transaction each, as the observer's indexer
//! writes them), then times the queries a supervisor runs against the
//! full index: a depth-1 and a depth-3 walk out of an account over 100
//! blocks, top counterparties over the whole range, a transaction trace.
//!
//! The database lives in a temporary directory on the disk that holds the
//! system temp dir (`TMPDIR` to move it).

use crate::report::time_each;
use crate::{Options, Report};
use plume_index::{Direction, Index, IndexedTx, WalkBounds};
use plume_protocol::receipt::{Cause, Event, Reason, Receipt, Status};
use std::hint::black_box;
use std::time::Instant;

/// Transactions indexed (before `--scale`).
const TXS: u64 = 1_000_000;
/// Transactions per block.
const BLOCK_TXS: u64 = 2_000;
/// Accounts the transfers move between.
const ACCOUNTS: u64 = 100_000;

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

fn account(i: u64) -> [u8; 32] {
    let mut a = [0u8; 32];
    a[..8].copy_from_slice(&i.to_be_bytes());
    a[31] = 1;
    a
}

fn tx_hash(n: u64) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&n.to_be_bytes());
    h[8] = 0x7e;
    h
}

/// One transfer's receipt as execution writes it (fee, tip, debit, credit).
fn transfer(n: u64, rng: &mut Rng) -> IndexedTx {
    let (a, b) = (
        account(rng.next() % ACCOUNTS),
        account(rng.next() % ACCOUNTS),
    );
    let amount = u128::from(rng.next() % 1_000_000 + 1);
    let ev = |account, credit, amount, cause| Event {
        account,
        asset: [0; 32],
        credit,
        amount,
        cause,
    };
    IndexedTx {
        receipt: Receipt {
            tx_hash: tx_hash(n),
            status: Status::Success,
            reason: Reason::Ok,
            gas_used: 21_000,
            fee_paid: 21_000,
            fee_burned: 10_500,
            tip: 0,
            events: vec![
                ev(a, false, 21_000, Cause::Fee),
                ev(a, false, amount, Cause::Transfer),
                ev(b, true, amount, Cause::Transfer),
            ],
        },
    }
}

/// Run the suite.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let mut r = Report::new("index");
    let txs = ((TXS as f64 * opts.scale).ceil() as u64).max(BLOCK_TXS);
    let blocks = txs.div_ceil(BLOCK_TXS);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("index.sqlite");
    let mut ix = Index::open(&path)?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut n = 0u64;
    let mut h_block = crate::report::histogram();
    let start = Instant::now();
    for height in 1..=blocks {
        let block: Vec<IndexedTx> = (0..BLOCK_TXS)
            .map(|_| {
                n += 1;
                transfer(n, &mut rng)
            })
            .collect();
        let t = Instant::now();
        ix.index_block(height, &[height as u8; 32], &[0; 32], &block)?;
        h_block
            .record(t.elapsed().as_nanos().max(1) as u64)
            .expect("in bounds");
    }
    let wall = start.elapsed().as_secs_f64();
    let index_secs = h_block.mean() * h_block.len() as f64 / 1e9;
    r.figure("indexed_txs", n as f64);
    r.figure("index_tx_per_s", n as f64 / index_secs.max(1e-9));
    r.figure("index_with_workload_tx_per_s", n as f64 / wall.max(1e-9));
    r.figure(
        "index_db_mib",
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / (1 << 20) as f64,
    );
    r.latency("index_block_2000_transfers", &h_block);

    let reader = Index::open_read(&path)?;
    let iters = ((500.0 * opts.scale).ceil() as u64).max(20);
    let range = |rng: &mut Rng| {
        let h1 = 1 + rng.next() % blocks;
        (h1, (h1 + 99).min(blocks))
    };
    let (h, _) = time_each(iters, || {
        let (h1, h2) = range(&mut rng);
        let a = account(rng.next() % ACCOUNTS);
        let b = WalkBounds {
            from_height: h1,
            to_height: h2,
            depth: 1,
            flows_max: 10_000,
        };
        black_box(reader.walk(&a, Direction::Out, b).expect("walk"));
    });
    r.latency("walk_depth1_100_blocks", &h);
    let (h, _) = time_each(iters / 5 + 1, || {
        let (h1, h2) = range(&mut rng);
        let a = account(rng.next() % ACCOUNTS);
        let b = WalkBounds {
            from_height: h1,
            to_height: h2,
            depth: 3,
            flows_max: 10_000,
        };
        black_box(reader.walk(&a, Direction::Out, b).expect("walk"));
    });
    r.latency("walk_depth3_100_blocks_10k_flows_max", &h);
    let (h, _) = time_each(iters, || {
        let a = account(rng.next() % ACCOUNTS);
        black_box(reader.top_counterparties(&a, 1, blocks, 20).expect("top"));
    });
    r.latency("top_counterparties_all_blocks", &h);
    let (h, _) = time_each(iters, || {
        let t = tx_hash(1 + rng.next() % n);
        black_box(reader.trace(&t).expect("trace").expect("indexed"));
    });
    r.latency("trace", &h);
    Ok(r)
}
