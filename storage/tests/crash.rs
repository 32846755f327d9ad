//! Crash safety and corruption detection of the LMDB store.
//!
//! `sigkill_never_loses_a_committed_block` runs a writer in a child process
//! (this test binary re-invoked on the ignored test `crash_child`), kills it
//! with SIGKILL at random points and checks the reopened store. Iterations:
//! 50 by default, `PLUME_CRASH_ITERS` for more; the seed is printed and
//! `PLUME_CRASH_SEED` replays it.

use plume_crypto::{hash, Digest, Domain};
use plume_storage::{
    AuthenticatedState, BlockCommit, LmdbKv, LmdbOptions, MemoryState, StateKey, StateWrite,
    StorageError, Store, TxEntry,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHILD_DIR_ENV: &str = "PLUME_CRASH_CHILD_DIR";
/// Distinct state keys the writer touches (small, so updates and deletes
/// hit existing keys).
const KEY_SPACE: u64 = 400;
/// Heights one child writes at most before exiting by itself.
const CHILD_BLOCKS_MAX: u64 = 100_000;
const ITERS_DEFAULT: u64 = 50;
/// Longest wait between the child's first commit and the kill.
const KILL_DELAY_MAX_US: u64 = 25_000;

fn key(i: u64) -> StateKey {
    hash(Domain::State, &i.to_le_bytes()).0
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Deterministic content of block `h`.
struct Block {
    hash: Digest,
    bytes: Vec<u8>,
    qc: Vec<u8>,
    txs: Vec<(Digest, Vec<u8>, Vec<u8>)>,
    writes: Vec<StateWrite>,
}

fn block(h: u64) -> Block {
    let r = mix(h);
    let n_writes = 1 + r % 60;
    let mut writes: BTreeMap<StateKey, Option<Vec<u8>>> = BTreeMap::new();
    for i in 0..n_writes {
        let x = mix(r ^ i);
        let v = if x % 7 == 0 {
            None
        } else {
            Some(format!("h{h}i{i}").into_bytes())
        };
        writes.insert(key(x % KEY_SPACE), v);
    }
    // Some blocks are large enough for LMDB overflow pages.
    let size = if r % 5 == 0 { 9000 } else { 200 };
    let bytes: Vec<u8> = (0..size).map(|i| (mix(h + i) & 0xff) as u8).collect();
    let txs = (0..(r % 4))
        .map(|i| {
            let th = hash(Domain::Tx, &[h.to_le_bytes(), i.to_le_bytes()].concat());
            (
                th,
                format!("tx{h}.{i}").into_bytes(),
                format!("rc{h}.{i}").into_bytes(),
            )
        })
        .collect();
    Block {
        hash: hash(Domain::Block, &bytes),
        qc: format!("qc{h}").into_bytes(),
        bytes,
        txs,
        writes: writes.into_iter().collect(),
    }
}

fn commit(store: &mut Store<LmdbKv>, h: u64) -> Result<Digest, StorageError> {
    let b = block(h);
    let txs: Vec<TxEntry<'_>> = b
        .txs
        .iter()
        .map(|(hash, tx, rc)| TxEntry {
            hash: *hash,
            tx,
            receipt: rc,
        })
        .collect();
    store.commit_block_with_writes(
        &BlockCommit {
            height: h,
            hash: b.hash,
            block: &b.bytes,
            qc: &b.qc,
            txs: &txs,
        },
        &b.writes,
    )
}

fn open(dir: &Path) -> Store<LmdbKv> {
    let kv = LmdbKv::open(dir, &LmdbOptions::with_map_size_gib(1)).expect("open lmdb");
    Store::open(kv).expect("open store")
}

/// The writer run in the child: commits blocks and reports each one after
/// `commit_block` returned.
#[test]
#[ignore = "child process of sigkill_never_loses_a_committed_block"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let mut store = open(Path::new(&dir));
    let next = store.finalized_height().map_or(0, |h| h + 1);
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {next}").unwrap();
    out.flush().unwrap();
    for h in next..next + CHILD_BLOCKS_MAX {
        let root = commit(&mut store, h).expect("commit");
        writeln!(out, "COMMITTED {h} {root}").unwrap();
        out.flush().unwrap();
    }
}

struct Replay {
    state: MemoryState,
    roots: Vec<Digest>,
}

impl Replay {
    fn advance_to(&mut self, height: u64) {
        while (self.roots.len() as u64) <= height {
            let h = self.roots.len() as u64;
            self.roots
                .push(self.state.apply(&block(h).writes).expect("replay"));
        }
    }
}

fn check_store(store: &Store<LmdbKv>, replay: &mut Replay, from: u64, fin: u64) {
    replay.advance_to(fin);
    assert_eq!(store.root(), replay.roots[fin as usize], "root at {fin}");
    for h in from..=fin {
        let b = block(h);
        let rec = store
            .block(h)
            .unwrap()
            .unwrap_or_else(|| panic!("block {h} missing"));
        assert_eq!(
            (rec.height, rec.hash, &rec.bytes),
            (h, b.hash.0, &b.bytes),
            "block {h}"
        );
        assert_eq!(store.block_by_hash(&b.hash).unwrap().unwrap().height, h);
        assert_eq!(store.qc(h).unwrap().unwrap().bytes, b.qc, "qc {h}");
        for (i, (th, tx, rc)) in b.txs.iter().enumerate() {
            let t = store.tx(th).unwrap().unwrap();
            assert_eq!((t.height, t.index as usize, &t.bytes), (h, i, tx));
            assert_eq!(&store.receipt(th).unwrap().unwrap().bytes, rc);
        }
    }
    assert!(
        store.block(fin + 1).unwrap().is_none(),
        "block past the head"
    );
    let root = store.root();
    for i in 0..KEY_SPACE {
        let k = key(i);
        let v = store.get(&k).unwrap();
        assert_eq!(v, replay.state.get(&k).unwrap(), "value of key {i}");
        store
            .prove(&k)
            .unwrap()
            .verify(&root, &k, v.as_deref())
            .unwrap();
    }
}

#[test]
fn sigkill_never_loses_a_committed_block() {
    let iters: u64 = std::env::var("PLUME_CRASH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ITERS_DEFAULT);
    let seed: u64 = std::env::var("PLUME_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test: {iters} iterations, PLUME_CRASH_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut replay = Replay {
        state: MemoryState::new(),
        roots: Vec::new(),
    };
    let mut prev_fin: Option<u64> = None;
    let mut kills_mid_run = 0;
    let mut durable_unreported = 0;
    for iter in 0..iters {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lines = Vec::new();
        // Wait for the first commit, then kill after a random delay.
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("seed {seed} iter {iter}: child never committed"));
            let first_commit = line.starts_with("COMMITTED");
            lines.push(line);
            if first_commit {
                break;
            }
        }
        let delay = mix(seed ^ iter) % KILL_DELAY_MAX_US;
        std::thread::sleep(Duration::from_micros(delay));
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        if !status.success() {
            kills_mid_run += 1;
        }
        reader.join().unwrap();
        lines.extend(rx.try_iter());

        let mut reported: Vec<(u64, String)> = Vec::new();
        for l in &lines {
            let mut parts = l.split_whitespace();
            if parts.next() == Some("COMMITTED") {
                let h: u64 = parts.next().unwrap().parse().unwrap();
                reported.push((h, parts.next().unwrap().to_string()));
            }
        }
        let last_reported = reported.last().map(|r| r.0).expect("one commit reported");

        let store = open(dir.path());
        let fin = store
            .finalized_height()
            .unwrap_or_else(|| panic!("seed {seed} iter {iter}: nothing finalized"));
        assert!(
            prev_fin.is_none_or(|p| fin >= p),
            "seed {seed} iter {iter}: finalized height went back from {prev_fin:?} to {fin}"
        );
        assert!(
            fin >= last_reported,
            "seed {seed} iter {iter}: block {last_reported} was reported committed, store holds up to {fin}"
        );
        assert!(
            fin <= last_reported + 1,
            "seed {seed} iter {iter}: more than one unreported commit ({fin} vs {last_reported})"
        );
        if fin == last_reported + 1 {
            durable_unreported += 1;
        }
        replay.advance_to(fin);
        for (h, root) in &reported {
            assert_eq!(
                *root,
                replay.roots[*h as usize].to_hex(),
                "seed {seed} iter {iter}: reported root of {h} differs from replay"
            );
        }
        let from = prev_fin.map_or(0, |p| p + 1).min(fin);
        check_store(&store, &mut replay, from, fin);
        prev_fin = Some(fin);
    }
    assert!(
        kills_mid_run * 2 >= iters,
        "most children should die by SIGKILL, not exit: {kills_mid_run}/{iters}"
    );
    // A full check of every block at the end.
    let store = open(dir.path());
    check_store(&store, &mut replay, 0, store.finalized_height().unwrap());
    println!(
        "crash test: {iters} kills, final height {}, {durable_unreported} kills between a durable commit and its report",
        store.finalized_height().unwrap()
    );
}

/// Replace every occurrence of `pattern` in `file` by itself with one byte
/// flipped; returns how many were changed.
fn flip_all(file: &Path, pattern: &[u8]) -> usize {
    let mut data = std::fs::read(file).unwrap();
    let mut n = 0;
    let mut i = 0;
    while i + pattern.len() <= data.len() {
        if &data[i..i + pattern.len()] == pattern {
            data[i + pattern.len() / 2] ^= 0x40;
            n += 1;
            i += pattern.len();
        } else {
            i += 1;
        }
    }
    std::fs::write(file, data).unwrap();
    n
}

#[test]
fn flipped_bytes_on_disk_are_a_corruption_error() {
    let dir = tempfile::tempdir().unwrap();
    let block_bytes = b"BLOCK-PAYLOAD-distinctive-0123456789".repeat(20);
    let value = b"ACCOUNT-VALUE-distinctive-9876543210".to_vec();
    let k = key(1);
    {
        let mut store = open(dir.path());
        for h in 0..3 {
            let payload = if h == 1 {
                block_bytes.clone()
            } else {
                vec![h as u8; 10]
            };
            let writes = if h == 1 {
                vec![(k, Some(value.clone()))]
            } else {
                vec![]
            };
            store
                .commit_block_with_writes(
                    &BlockCommit {
                        height: h,
                        hash: hash(Domain::Block, &[h as u8]),
                        block: &payload,
                        qc: b"qc",
                        txs: &[],
                    },
                    &writes,
                )
                .unwrap();
        }
        assert_eq!(store.block(1).unwrap().unwrap().bytes, block_bytes);
    }
    let file = dir.path().join("data.mdb");
    assert!(flip_all(&file, &block_bytes[..36]) >= 1);
    assert!(flip_all(&file, &value) >= 1);
    let store = open(dir.path());
    let e = store.block(1).unwrap_err();
    assert!(
        matches!(
            e,
            StorageError::Corrupt {
                table: "blocks",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("table blocks, key 0000000000000001"),
        "{e}"
    );
    let e = store.get(&k).unwrap_err();
    assert!(
        matches!(
            e,
            StorageError::Corrupt {
                table: "accounts",
                ..
            }
        ),
        "{e}"
    );
    // Other records are untouched.
    assert_eq!(store.block(2).unwrap().unwrap().bytes, vec![2u8; 10]);
}

#[test]
fn flipped_chain_head_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let block_hash = hash(Domain::Block, b"head");
    {
        let mut store = open(dir.path());
        store
            .commit_block(&BlockCommit {
                height: 0,
                hash: block_hash,
                block: b"b",
                qc: b"q",
                txs: &[],
            })
            .unwrap();
    }
    // The chain head record holds the block hash.
    assert!(flip_all(&dir.path().join("data.mdb"), &block_hash.0) >= 1);
    let kv = LmdbKv::open(dir.path(), &LmdbOptions::with_map_size_gib(1)).unwrap();
    let e = Store::open(kv).unwrap_err();
    assert!(e.to_string().contains("corrupt record"), "{e}");
}
