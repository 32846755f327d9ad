use super::*;
use plume_protocol::receipt::{Event, Reason};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, VecDeque};

/// A fresh, empty index database of either kind (kept alive by the guard).
struct Fresh {
    #[allow(dead_code)]
    server: Option<pg_server::PgServer>,
    dir: tempfile::TempDir,
    at: Location,
}

fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let at = Location::Sqlite(dir.path().join("index.sqlite"));
    Fresh {
        server: None,
        dir,
        at,
    }
}

#[cfg(feature = "postgres")]
fn postgres() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    let server = pg_server::PgServer::start(&dir.path().join("pg")).unwrap();
    let at = Location::Postgres(server.url.clone());
    Fresh {
        server: Some(server),
        dir,
        at,
    }
}

/// `$name` runs `$body(&Location)` on SQLite and on a PostgreSQL server.
macro_rules! on_both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn on_sqlite() {
                let f = super::sqlite();
                super::$body(&f.at);
                drop(f.dir);
            }
            // Built when the `postgres` feature is on, as in every workspace
            // build (the node enables it).
            #[cfg(feature = "postgres")]
            #[test]
            fn on_postgres() {
                let f = super::postgres();
                super::$body(&f.at);
            }
        }
    };
}

on_both!(
    walks_over_100_000_transactions_equal_a_brute_force_pass_over_the_receipts,
    walks_equal_brute_force
);
on_both!(
    counterparties_volume_and_trace_match_the_receipts,
    counterparties_volume_trace
);
on_both!(
    blocks_are_indexed_once_in_order_and_a_reopened_index_resumes,
    indexed_once_and_resumes
);
on_both!(
    alert_rules_fire_once_with_their_block_and_only_when_they_should,
    alert_rules
);
on_both!(
    pages_of_flows_alerts_and_blocks_cover_everything_once_newest_first,
    pages
);
on_both!(
    identities_walks_and_volume_by_jurisdiction_match_the_receipts,
    identities
);

const NATIVE: [u8; 32] = [0; 32];
const BOND: [u8; 32] = [7; 32];

fn acct(i: u32) -> [u8; 32] {
    let mut a = [0u8; 32];
    a[..4].copy_from_slice(&i.to_be_bytes());
    a[31] = 1;
    a
}

fn ev(account: [u8; 32], asset: [u8; 32], credit: bool, amount: u128, cause: Cause) -> Event {
    Event {
        account,
        asset,
        credit,
        amount,
        cause,
    }
}

/// A seeded workload: transfers, two-leg settlements, batch payments,
/// issuance, failed transactions (fee only), every one with fee and tip
/// events that are not flows.
fn workload(seed: u64, txs: usize, accounts: u32, per_block: usize) -> Vec<Vec<IndexedTx>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut blocks = Vec::new();
    let mut n = 0u64;
    while (n as usize) < txs {
        let mut block = Vec::new();
        for _ in 0..per_block.min(txs - n as usize) {
            n += 1;
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&n.to_be_bytes());
            let a = acct(rng.gen_range(0..accounts));
            let b = acct(rng.gen_range(0..accounts));
            let amt = rng.gen_range(1..1_000_000u128);
            let mut events = vec![
                ev(a, NATIVE, false, 21, Cause::Fee),
                ev(acct(9999), NATIVE, true, 3, Cause::Tip),
            ];
            let kind = rng.gen_range(0..20);
            let mut status = Status::Success;
            match kind {
                0 => status = Status::Failed,
                1 => {
                    // DvP: bond from b to a, cash from a to b.
                    events.push(ev(b, BOND, false, amt, Cause::Transfer));
                    events.push(ev(a, BOND, true, amt, Cause::Transfer));
                    events.push(ev(a, NATIVE, false, amt * 3, Cause::Transfer));
                    events.push(ev(b, NATIVE, true, amt * 3, Cause::Transfer));
                }
                2 => {
                    // Batch payment to three payees.
                    let payees: Vec<_> = (0..3).map(|_| acct(rng.gen_range(0..accounts))).collect();
                    events.push(ev(a, NATIVE, false, amt * 3, Cause::Transfer));
                    for p in payees {
                        events.push(ev(p, NATIVE, true, amt, Cause::Transfer));
                    }
                }
                3 => events.push(ev(a, BOND, true, amt, Cause::Mint)),
                _ => {
                    events.push(ev(a, NATIVE, false, amt, Cause::Transfer));
                    events.push(ev(b, NATIVE, true, amt, Cause::Transfer));
                }
            }
            block.push(IndexedTx {
                receipt: Receipt {
                    tx_hash: hash,
                    status,
                    reason: if status == Status::Success {
                        Reason::Ok
                    } else {
                        Reason::InsufficientBalance
                    },
                    gas_used: 21,
                    fee_paid: 21,
                    fee_burned: 10,
                    tip: 3,
                    events,
                },
            });
        }
        blocks.push(block);
    }
    blocks
}

fn index_all(ix: &mut Index, blocks: &[Vec<IndexedTx>]) {
    for (i, b) in blocks.iter().enumerate() {
        let h = i as u64 + 1;
        assert!(ix.index_block(h, &[h as u8; 32], &[1; 32], b).unwrap());
    }
}

/// Every flow of the workload, straight from the receipts.
fn all_flows(blocks: &[Vec<IndexedTx>]) -> Vec<FlowRow> {
    let mut out = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        for (k, t) in b.iter().enumerate() {
            for (s, f) in receipt_flows(&t.receipt).into_iter().enumerate() {
                out.push(FlowRow {
                    height: i as u64 + 1,
                    index: k as u32,
                    seq: s as u32,
                    from: f.from,
                    to: f.to,
                    asset: f.asset,
                    amount: f.amount,
                    tx: t.receipt.tx_hash,
                });
            }
        }
    }
    out
}

/// The brute-force answer, by another route: breadth-first distances from
/// the account over the range's flows; the walk's flows are those whose
/// near end is at distance < depth, its accounts those at distance <= depth.
fn brute_walk(all: &[FlowRow], a: [u8; 32], dir: Direction, b: WalkBounds) -> Walk {
    brute_walk_from(all, &[a], dir, b)
}

fn brute_walk_from(all: &[FlowRow], starts: &[[u8; 32]], dir: Direction, b: WalkBounds) -> Walk {
    let in_range: Vec<&FlowRow> = all
        .iter()
        .filter(|f| f.height >= b.from_height && f.height <= b.to_height)
        .collect();
    let ends = |f: &FlowRow| match dir {
        Direction::Out => (f.from, f.to),
        Direction::In => (f.to, f.from),
    };
    let mut adj: BTreeMap<[u8; 32], Vec<[u8; 32]>> = BTreeMap::new();
    for f in &in_range {
        if let (Some(x), Some(y)) = ends(f) {
            adj.entry(x).or_default().push(y);
        }
    }
    let mut dist: BTreeMap<[u8; 32], u32> = BTreeMap::new();
    let mut q = VecDeque::new();
    for a in starts {
        dist.insert(*a, 0);
        q.push_back(*a);
    }
    while let Some(x) = q.pop_front() {
        let d = dist[&x];
        for y in adj.get(&x).into_iter().flatten() {
            if !dist.contains_key(y) {
                dist.insert(*y, d + 1);
                q.push_back(*y);
            }
        }
    }
    let mut flows: Vec<FlowRow> = in_range
        .iter()
        .filter(|f| {
            ends(f)
                .0
                .is_some_and(|x| dist.get(&x).is_some_and(|d| *d < b.depth))
        })
        .map(|f| (*f).clone())
        .collect();
    flows.sort();
    Walk {
        flows,
        accounts: dist
            .into_iter()
            .filter(|(_, d)| *d <= b.depth)
            .map(|(x, d)| (hex::encode(x), d))
            .collect(),
        truncated: false,
    }
}

fn walks_equal_brute_force(at: &Location) {
    let mut ix = Index::open_at(at).unwrap();
    let blocks = workload(7, 100_000, 5_000, 500);
    index_all(&mut ix, &blocks);
    let all = all_flows(&blocks);
    assert_eq!(ix.flow_count().unwrap(), all.len() as u64);
    assert_eq!(ix.tx_count().unwrap(), 100_000);
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for case in 0..24 {
        let a = acct(rng.gen_range(0..5_000));
        let h1 = rng.gen_range(1..150);
        let b = WalkBounds {
            from_height: h1,
            to_height: h1 + rng.gen_range(0..60),
            depth: 1 + case % 3,
            flows_max: WALK_FLOWS_MAX,
        };
        for dir in [Direction::Out, Direction::In] {
            let got = ix.walk(&a, dir, b).unwrap();
            let want = brute_walk(&all, a, dir, b);
            assert!(!got.truncated);
            assert_eq!(
                got.flows.len(),
                want.flows.len(),
                "case {case} {dir:?} {b:?}"
            );
            assert_eq!(got, want, "case {case} {dir:?} {b:?}");
            if b.depth == 3 && dir == Direction::Out {
                assert!(
                    got.accounts.len() > 1,
                    "a walk that reaches nobody tests little"
                );
            }
        }
    }
    // Depth 3 over the whole range reaches far; a bound stops it, and says so.
    let bounded = ix
        .walk(
            &acct(1),
            Direction::Out,
            WalkBounds {
                from_height: 1,
                to_height: 200,
                depth: 3,
                flows_max: 1_000,
            },
        )
        .unwrap();
    assert!(bounded.truncated);
    assert_eq!(bounded.flows.len(), 1_000);
}

fn counterparties_volume_trace(at: &Location) {
    let mut ix = Index::open_at(at).unwrap();
    let blocks = workload(3, 5_000, 50, 100);
    index_all(&mut ix, &blocks);
    let all = all_flows(&blocks);
    // Volume of the native asset over blocks 10..=30.
    let (h1, h2) = (10, 30);
    let want: u128 = all
        .iter()
        .filter(|f| f.height >= h1 && f.height <= h2 && f.asset == NATIVE)
        .filter(|f| f.from.is_some() && f.to.is_some())
        .map(|f| f.amount)
        .sum();
    let vol = ix.volume(h1, h2).unwrap();
    let native = vol.iter().find(|v| v.asset == hex::encode(NATIVE)).unwrap();
    assert_eq!(native.transferred, want);
    let issued: u128 = all
        .iter()
        .filter(|f| f.height >= h1 && f.height <= h2 && f.from.is_none())
        .map(|f| f.amount)
        .sum();
    let bond = vol.iter().find(|v| v.asset == hex::encode(BOND)).unwrap();
    assert_eq!(bond.issued, issued);
    assert!(issued > 0);
    // Counterparties of account 3: totals per (counterparty, asset).
    let a = acct(3);
    let top = ix.top_counterparties(&a, 1, 50, 1_000).unwrap();
    for c in &top {
        let sent: u128 = all
            .iter()
            .filter(|f| f.height <= 50 && f.from == Some(a))
            .filter(|f| f.to.map(hex::encode).as_deref() == Some(c.account.as_str()))
            .filter(|f| hex::encode(f.asset) == c.asset)
            .map(|f| f.amount)
            .sum();
        assert_eq!(c.sent, sent, "{c:?}");
    }
    assert!(top
        .windows(2)
        .all(|w| w[0].sent + w[0].received >= w[1].sent + w[1].received));
    // A failed transaction has a record and no flow; a settlement two.
    let failed = blocks
        .iter()
        .flatten()
        .find(|t| t.receipt.status == Status::Failed)
        .unwrap();
    let tr = ix.trace(&failed.receipt.tx_hash).unwrap().unwrap();
    assert_eq!(tr.status, "failed");
    assert_eq!(tr.reason, Reason::InsufficientBalance.0);
    assert!(tr.flows.is_empty());
    let dvp = blocks
        .iter()
        .flatten()
        .find(|t| {
            t.receipt
                .events
                .iter()
                .any(|e| e.asset == BOND && e.cause == Cause::Transfer)
        })
        .unwrap();
    let tr = ix.trace(&dvp.receipt.tx_hash).unwrap().unwrap();
    assert_eq!(tr.flows.len(), 2, "{tr:?}");
    assert!(ix.trace(&[0xee; 32]).unwrap().is_none());
}

fn indexed_once_and_resumes(at: &Location) {
    let blocks = workload(5, 300, 20, 100);
    {
        let mut ix = Index::open_at(at).unwrap();
        assert_eq!(ix.height().unwrap(), 0);
        assert!(ix.index_block(1, &[1; 32], &[1; 32], &blocks[0]).unwrap());
        // Again: skipped, no duplicate row.
        let n = ix.flow_count().unwrap();
        assert!(!ix.index_block(1, &[1; 32], &[1; 32], &blocks[0]).unwrap());
        assert_eq!(ix.flow_count().unwrap(), n);
        // A gap is refused.
        assert!(matches!(
            ix.index_block(3, &[3; 32], &[1; 32], &blocks[2]),
            Err(IndexError::Gap { have: 1, got: 3 })
        ));
    }
    let mut ix = Index::open_at(at).unwrap();
    assert_eq!(
        ix.height().unwrap(),
        1,
        "resumes after the last whole block"
    );
    ix.index_block(2, &[2; 32], &[1; 32], &blocks[1]).unwrap();
    ix.index_block(3, &[3; 32], &[1; 32], &blocks[2]).unwrap();
    assert_eq!(ix.flow_count().unwrap(), all_flows(&blocks).len() as u64);
    // A reader sees what the writer committed.
    let r = Index::open_read_at(at).unwrap();
    assert_eq!(r.height().unwrap(), 3);
}

fn one_tx(hash: u8, events: Vec<Event>, status: Status, reason: u16) -> IndexedTx {
    IndexedTx {
        receipt: Receipt {
            tx_hash: [hash; 32],
            status,
            reason: Reason(reason),
            gas_used: 1,
            fee_paid: 1,
            fee_burned: 0,
            tip: 0,
            events,
        },
    }
}

fn pay(hash: u8, a: [u8; 32], b: [u8; 32], amount: u128) -> IndexedTx {
    one_tx(
        hash,
        vec![
            ev(a, NATIVE, false, 1, Cause::Fee),
            ev(a, NATIVE, false, amount, Cause::Transfer),
            ev(b, NATIVE, true, amount, Cause::Transfer),
        ],
        Status::Success,
        0,
    )
}

fn alert_rules(at: &Location) {
    let mut ix = Index::open_at(at).unwrap();
    ix.set_rules(AlertRules {
        large_transfer: Some(1_000),
        new_counterparty: Some(100),
        rapid_in_out: Some(500),
        rapid_in_out_blocks: 5,
        compliance_stops: true,
        compliance_flags: true,
        webhook: None,
    });
    let (a, b, c, d) = (acct(1), acct(2), acct(3), acct(4));
    // Block 1: a->b 150 (new counterparty), a->b 150 again (known now),
    // a->c 50 (new, but below its amount).
    ix.index_block(
        1,
        &[1; 32],
        &[0; 32],
        &[pay(1, a, b, 150), pay(2, a, b, 150), pay(3, a, c, 50)],
    )
    .unwrap();
    let kinds = |ix: &Index, h: u64| -> Vec<(String, u8)> {
        ix.alerts(h, h, 100)
            .unwrap()
            .into_iter()
            .map(|al| (al.kind, hex::decode(&al.tx).unwrap()[0]))
            .collect()
    };
    assert_eq!(kinds(&ix, 1), vec![("new_counterparty".to_string(), 1)]);
    // Block 2: b receives 2,000 from c (large, new); block 4: b sends
    // 2,200 on to d (rapid in-out: at least 90 % of the 2,300 it got;
    // large; new); a transfer the compliance rules stopped.
    ix.index_block(2, &[2; 32], &[0; 32], &[pay(4, c, b, 2_000)])
        .unwrap();
    let mut k2 = kinds(&ix, 2);
    k2.sort();
    assert_eq!(
        k2,
        vec![
            ("large_transfer".to_string(), 4),
            ("new_counterparty".to_string(), 4)
        ]
    );
    ix.index_block(3, &[3; 32], &[0; 32], &[]).unwrap();
    let stopped = one_tx(
        9,
        vec![ev(c, NATIVE, false, 1, Cause::Fee)],
        Status::Failed,
        200,
    );
    let failed_other = one_tx(
        10,
        vec![ev(c, NATIVE, false, 1, Cause::Fee)],
        Status::Failed,
        17,
    );
    ix.index_block(
        4,
        &[4; 32],
        &[0; 32],
        &[pay(5, b, d, 2_200), stopped, failed_other],
    )
    .unwrap();
    let al = ix.alerts(4, 4, 100).unwrap();
    let mut k4: Vec<&str> = al.iter().map(|a| a.kind.as_str()).collect();
    k4.sort();
    assert_eq!(
        k4,
        vec![
            "compliance_stop",
            "large_transfer",
            "new_counterparty",
            "rapid_in_out"
        ]
    );
    let stop = al.iter().find(|a| a.kind == "compliance_stop").unwrap();
    assert_eq!(stop.account, hex::encode(c));
    assert!(stop.detail.contains("200"));
    // What d received is outside the window by block 11: no rapid in-out.
    for h in 5..=10 {
        ix.index_block(h, &[h as u8; 32], &[0; 32], &[]).unwrap();
    }
    ix.index_block(11, &[11; 32], &[0; 32], &[pay(6, d, a, 1_800)])
        .unwrap();
    assert!(
        !kinds(&ix, 11).iter().any(|k| k.0 == "rapid_in_out"),
        "{:?}",
        kinds(&ix, 11)
    );
    // Reindexing a block (after a restart) stores nothing twice.
    assert!(!ix
        .index_block(4, &[4; 32], &[0; 32], &[pay(5, b, d, 2_200)])
        .unwrap());
    assert_eq!(ix.alerts(1, 20, 100).unwrap().len(), 1 + 2 + 4 + 2);
    // A transaction the compliance engine flagged (from the verdict
    // record) raises compliance_flag with the rule id; an unflagged one
    // beside it does not.
    let extras = BlockExtras {
        parties: Vec::new(),
        flags: vec![(1, 7)],
    };
    ix.index_block_with(
        12,
        &[12; 32],
        &[0; 32],
        &[pay(70, a, b, 5), pay(71, b, a, 900)],
        &extras,
    )
    .unwrap();
    let flagged: Vec<Alert> = ix
        .alerts(12, 12, 100)
        .unwrap()
        .into_iter()
        .filter(|x| x.kind == "compliance_flag")
        .collect();
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(flagged[0].index, 1);
    assert_eq!(flagged[0].account, hex::encode(b));
    assert_eq!(flagged[0].amount, 900);
    assert!(
        flagged[0].detail.contains("rule 7"),
        "{}",
        flagged[0].detail
    );
    // Switched off, nothing.
    let mut off = ix.rules().clone();
    off.compliance_flags = false;
    ix.set_rules(off);
    ix.index_block_with(
        13,
        &[13; 32],
        &[0; 32],
        &[pay(72, b, a, 1)],
        &BlockExtras {
            parties: Vec::new(),
            flags: vec![(0, 7)],
        },
    )
    .unwrap();
    assert!(ix.alerts(13, 13, 100).unwrap().is_empty());
}

fn pages(at: &Location) {
    let mut ix = Index::open_at(at).unwrap();
    ix.set_rules(AlertRules {
        large_transfer: Some(900_000),
        ..AlertRules::default()
    });
    let blocks = workload(13, 3_000, 20, 100);
    index_all(&mut ix, &blocks);
    let all = all_flows(&blocks);
    // Every flow of an account, page by page, newest first, exactly once.
    let a = acct(4);
    let mut want: Vec<FlowRow> = all
        .iter()
        .filter(|f| f.from == Some(a) || f.to == Some(a))
        .cloned()
        .collect();
    want.sort_by(|x, y| y.cmp(x));
    assert!(want.len() > 120, "{}", want.len());
    let mut got = Vec::new();
    let mut before = None;
    loop {
        let page = ix.account_flows(&a, before, 37).unwrap();
        assert!(page.len() <= 37);
        let Some(last) = page.last() else { break };
        before = Some((last.height, last.index, last.seq));
        got.extend(page);
    }
    assert_eq!(got, want);
    // The alert feed, with a page size that splits blocks.
    let mut feed = Vec::new();
    let mut cur: Option<(Cursor, String)> = None;
    loop {
        let page = ix
            .recent_alerts(cur.as_ref().map(|(c, k)| (*c, k.as_str())), 7)
            .unwrap();
        let Some(l) = page.last() else { break };
        cur = Some(((l.height, l.index, l.seq), l.kind.clone()));
        feed.extend(page);
    }
    let mut oldest_first = ix.alerts(1, u64::MAX, usize::MAX).unwrap();
    assert!(oldest_first.len() > 10, "{}", oldest_first.len());
    assert_eq!(ix.alert_count().unwrap(), oldest_first.len() as u64);
    oldest_first.reverse();
    assert_eq!(feed, oldest_first);
    // Blocks, newest first, with their transaction counts.
    let top = ix.recent_blocks(None, 5).unwrap();
    assert_eq!(
        top.iter().map(|b| b.height).collect::<Vec<_>>(),
        vec![30, 29, 28, 27, 26]
    );
    assert!(top.iter().all(|b| b.txs == 100 && b.seen_ms > 0));
    let older = ix.recent_blocks(Some(26), 100).unwrap();
    assert_eq!(older.len(), 25);
    assert_eq!(older[0].height, 25);
    let txs = ix.block_txs(30, 1_000).unwrap();
    assert_eq!(txs.len(), 100);
    assert_eq!(txs[0].1, hex::encode(blocks[29][0].receipt.tx_hash));
}

#[test]
fn an_index_of_another_schema_version_is_refused_with_the_way_out() {
    let f = sqlite();
    drop(Index::open_at(&f.at).unwrap());
    let Location::Sqlite(p) = &f.at else {
        unreachable!()
    };
    let c = Connection::open(p).unwrap();
    c.execute("UPDATE meta SET v = 1 WHERE k = 'schema'", [])
        .unwrap();
    drop(c);
    let e = Index::open_at(&f.at).unwrap_err();
    assert!(matches!(e, IndexError::Schema(1)), "{e}");
    assert!(e.to_string().contains("rebuilt"), "{e}");
}

#[test]
fn a_postgres_location_never_prints_its_password() {
    let l = Location::Postgres("host=db port=5432 user=plume password=hunter2 dbname=x".into());
    assert!(!format!("{l} {l:?}").contains("hunter2"));
    let l = Location::Postgres("postgresql://plume:hunter2@db:5432/x".into());
    assert!(!format!("{l}").contains("hunter2"), "{l}");
    assert!(format!("{l}").contains("db:5432/x"));
}

/// Accounts 0-9 belong to identity A (DE), 10-19 to B (US), 20-29 to B
/// until block 20 and then to C (CH), the rest to none.
fn identities(at: &Location) {
    let mut ix = Index::open_at(at).unwrap();
    let blocks = workload(11, 6_000, 50, 100);
    let (id_a, id_b, id_c) = ([0xa; 32], [0xb; 32], [0xc; 32]);
    let whose = |i: u32, h: u64| match i {
        0..=9 => Some((id_a, *b"DE")),
        10..=19 => Some((id_b, *b"US")),
        20..=29 if h < 20 => Some((id_b, *b"US")),
        20..=29 => Some((id_c, *b"CH")),
        _ => None,
    };
    for (k, b) in blocks.iter().enumerate() {
        let h = k as u64 + 1;
        // The parties of this block's flows, as the indexer looks them up.
        let mut parties = Vec::new();
        for i in 0..50u32 {
            let a = acct(i);
            let touched = b
                .iter()
                .any(|t| t.receipt.events.iter().any(|e| e.account == a));
            if let (true, Some((id, j))) = (touched, whose(i, h)) {
                parties.push((a, id, j));
            }
        }
        let extras = BlockExtras {
            parties,
            flags: Vec::new(),
        };
        assert!(ix
            .index_block_with(h, &[h as u8; 32], &[1; 32], b, &extras)
            .unwrap());
    }
    let top = blocks.len() as u64;
    // Each account's party is the last one recorded.
    let p = ix.party(&acct(3)).unwrap().unwrap();
    assert_eq!((p.identity, p.jurisdiction.as_str()), (id_a, "DE"));
    assert_eq!(ix.party(&acct(25)).unwrap().unwrap().jurisdiction, "CH");
    assert_eq!(ix.party(&acct(40)).unwrap(), None);
    let of_a: Vec<[u8; 32]> = ix
        .identity_accounts(&id_a, 100)
        .unwrap()
        .iter()
        .map(|p| p.account)
        .collect();
    assert_eq!(of_a, (0..10).map(acct).collect::<Vec<_>>());
    assert_eq!(ix.identity_accounts(&id_b, 100).unwrap().len(), 10);
    assert_eq!(ix.identity_accounts(&id_c, 100).unwrap().len(), 10);
    // A walk out of (into) an identity is the walk from all its accounts.
    let all = all_flows(&blocks);
    for dir in [Direction::Out, Direction::In] {
        for depth in 1..=2 {
            let b = WalkBounds {
                from_height: 5,
                to_height: 40,
                depth,
                flows_max: 100_000,
            };
            let got = ix.walk_identity(&id_a, dir, b).unwrap();
            let want = brute_walk_from(&all, &of_a, dir, b);
            assert_eq!(got.flows, want.flows, "{dir:?} depth {depth}");
            assert_eq!(got.accounts, want.accounts, "{dir:?} depth {depth}");
            assert!(!got.flows.is_empty());
        }
    }
    // An account's party as of a height: accounts 20-29 moved from B
    // (US) to C (CH) at block 20 (recorded when first touched after it).
    let moved = acct(25);
    let first_ch = (20..=top)
        .find(|&h| {
            blocks[h as usize - 1]
                .iter()
                .any(|t| t.receipt.events.iter().any(|e| e.account == moved))
        })
        .unwrap();
    assert_eq!(ix.party_at(&moved, 19).unwrap().unwrap().jurisdiction, "US");
    let p = ix.party_at(&moved, first_ch).unwrap().unwrap();
    assert_eq!((p.jurisdiction.as_str(), p.height), ("CH", first_ch));
    assert_eq!(ix.party_at(&moved, 0).unwrap(), None);
    assert_eq!(ix.party_at(&acct(40), top).unwrap(), None);
    // Volume by jurisdiction: the flows' amounts by the jurisdictions
    // their accounts had at each flow's height.
    let at = |a: Option<[u8; 32]>, h: u64| {
        let i = (0..50u32).find(|i| Some(acct(*i)) == a).unwrap();
        whose(i, h).map_or(String::new(), |(_, j)| {
            String::from_utf8(j.to_vec()).unwrap()
        })
    };
    let mut want: BTreeMap<(String, String, String), (u128, u64)> = BTreeMap::new();
    for f in all.iter().filter(|f| f.height >= 10 && f.height <= 50) {
        if f.from.is_none() || f.to.is_none() {
            continue;
        }
        let e = want
            .entry((
                hex::encode(f.asset),
                at(f.from, f.height),
                at(f.to, f.height),
            ))
            .or_default();
        e.0 += f.amount;
        e.1 += 1;
    }
    let got: BTreeMap<(String, String, String), (u128, u64)> = ix
        .jurisdiction_volume(10, 50)
        .unwrap()
        .into_iter()
        .map(|v| ((v.asset, v.from, v.to), (v.transferred, v.flows)))
        .collect();
    assert_eq!(got, want);
    assert!(got.keys().any(|(_, f, t)| f == "DE" && t == "CH"));
    assert!(got.keys().any(|(_, f, _)| f.is_empty()));
    // Both of accounts 20-29's jurisdictions carry volume in the range.
    assert!(got.keys().any(|(_, f, _)| f == "US") && got.keys().any(|(_, f, _)| f == "CH"));
}
