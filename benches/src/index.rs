//! `plume bench index`: the regulator node's fund-flow index, on SQLite and
//! then (figures prefixed `pg_`) on a private PostgreSQL server started from
//! the Debian package's binaries (skipped, with a note, when there are none).
//! Indexes 1,000,000 transfers (times `--scale`) among 100,000 accounts in
//! blocks of 2,000 (one SQLite transaction each, as the observer's indexer
//! writes them), then times the queries a supervisor runs against the
//! full index: a depth-1 and a depth-3 walk out of an account over 100
//! blocks, top counterparties over the whole range, a transaction trace,
//! and pages of 50 through a busy account's 100,000 flows and the blocks.
//!
//! The databases live in a temporary directory on the disk that holds the
//! system temp dir (`TMPDIR` to move it); PostgreSQL runs with its default
//! settings (fsync on, as SQLite's WAL commits are synchronous).

use crate::report::time_each;
use crate::{Options, Report};
use plume_index::{pg_server::PgServer, Direction, Index, IndexedTx, Location, WalkBounds};
use plume_protocol::receipt::{Cause, Event, Reason, Receipt, Status};
use std::hint::black_box;
use std::time::Instant;

/// Transactions indexed (before `--scale`).
const TXS: u64 = 1_000_000;
/// Transactions per block.
const BLOCK_TXS: u64 = 2_000;
/// Accounts the transfers move between.
const ACCOUNTS: u64 = 100_000;
/// A busy account (a clearing member): the source of every
/// `HOT_EVERY`-th transfer, 100,000 flows at the default scale, which the
/// paging figures page through.
const HOT: u64 = ACCOUNTS;
const HOT_EVERY: u64 = 10;

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
    let (mut a, b) = (
        account(rng.next() % ACCOUNTS),
        account(rng.next() % ACCOUNTS),
    );
    if n % HOT_EVERY == 0 {
        a = account(HOT);
    }
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

/// Bytes under `p` (a file or a directory tree).
fn disk_bytes(p: &std::path::Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    std::fs::read_dir(p)
        .map(|d| d.flatten().map(|e| disk_bytes(&e.path())).sum())
        .unwrap_or(0)
}

/// Run the suite.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let mut r = Report::new("index");
    let dir = tempfile::tempdir()?;
    let sqlite = dir.path().join("sqlite");
    std::fs::create_dir_all(&sqlite)?;
    run_on(
        opts,
        &mut r,
        "",
        &Location::Sqlite(sqlite.join("index.sqlite")),
        &sqlite,
    )?;
    let pg_dir = dir.path().join("pg");
    match PgServer::start(&pg_dir) {
        Ok(server) => {
            run_on(
                opts,
                &mut r,
                "pg_",
                &Location::Postgres(server.url.clone()),
                &pg_dir,
            )?;
        }
        Err(e) => r.note(format!("PostgreSQL not measured: {e}")),
    }
    Ok(r)
}

/// Index and query on one database; figures named `{prefix}...`.
fn run_on(
    opts: &Options,
    r: &mut Report,
    prefix: &str,
    at: &Location,
    disk: &std::path::Path,
) -> anyhow::Result<()> {
    let txs = ((TXS as f64 * opts.scale).ceil() as u64).max(BLOCK_TXS);
    let blocks = txs.div_ceil(BLOCK_TXS);
    let mut ix = Index::open_at(at)?;
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
    drop(ix);
    let name = |s: &str| format!("{prefix}{s}");
    r.figure(&name("indexed_txs"), n as f64);
    r.figure(&name("index_tx_per_s"), n as f64 / index_secs.max(1e-9));
    r.figure(
        &name("index_with_workload_tx_per_s"),
        n as f64 / wall.max(1e-9),
    );
    r.figure(
        &name("index_db_mib"),
        disk_bytes(disk) as f64 / (1 << 20) as f64,
    );
    r.latency(&name("index_block_2000_transfers"), &h_block);

    let reader = Index::open_read_at(at)?;
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
    r.latency(&name("walk_depth1_100_blocks"), &h);
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
    r.latency(&name("walk_depth3_100_blocks_10k_flows_max"), &h);
    let (h, _) = time_each(iters, || {
        let a = account(rng.next() % ACCOUNTS);
        black_box(reader.top_counterparties(&a, 1, blocks, 20).expect("top"));
    });
    r.latency(&name("top_counterparties_all_blocks"), &h);
    let (h, _) = time_each(iters, || {
        let t = tx_hash(1 + rng.next() % n);
        black_box(reader.trace(&t).expect("trace").expect("indexed"));
    });
    r.latency(&name("trace"), &h);
    // Pages of 50, as the dashboard reads them: the busy account's flows
    // from a random point of its history (keyset cursor), and the block
    // list from a random height.
    let hot = account(HOT);
    let (h, _) = time_each(iters, || {
        let before = (1 + rng.next() % blocks, 0, 0);
        black_box(reader.account_flows(&hot, Some(before), 50).expect("page"));
    });
    r.latency(&name("page_50_of_100k_account_flows"), &h);
    let (h, _) = time_each(iters, || {
        let before = 1 + rng.next() % blocks;
        black_box(reader.recent_blocks(Some(before), 50).expect("page"));
    });
    r.latency(&name("page_50_blocks"), &h);
    Ok(())
}
