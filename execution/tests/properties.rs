//! Property tests: determinism across shard counts, supply conservation,
//! all-or-nothing settlement, unauthorized legs rejected.
//!
//! `PLUME_EXEC_CASES` raises the number of cases (default 48).

mod common;

use common::*;
use plume_crypto::ed25519::Address;
use plume_execution::{apply_block, apply_block_sharded, commit, PreparedTx, Reason, Status};
use plume_protocol::calls::{Leg, ModuleCall, Payment, Settle, SupplyPolicy};
use plume_protocol::tx::{asset_id, NATIVE_ASSET};
use plume_storage::AuthenticatedState;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

fn cases() -> u32 {
    std::env::var("PLUME_EXEC_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

/// Generates random blocks over `n` accounts; `hot_pct` percent of
/// transactions touch account 0.
struct Gen {
    rng: ChaCha8Rng,
    people: Vec<Who>,
    seq: Vec<u64>,
    assets: Vec<([u8; 32], usize)>, // (id, issuer index)
    hot_pct: u32,
}

impl Gen {
    fn pick(&mut self) -> usize {
        if self.rng.gen_range(0..100) < self.hot_pct {
            0
        } else {
            self.rng.gen_range(0..self.people.len())
        }
    }

    fn addr_of_pick(&mut self) -> [u8; 32] {
        let i = self.pick();
        self.people[i].addr.0
    }

    fn amount(&mut self) -> u128 {
        match self.rng.gen_range(0..10) {
            0 => 1u128 << 100, // far more than anyone has
            1..=3 => self.rng.gen_range(1..1_000_000_000u128),
            _ => self.rng.gen_range(1..1_000u128),
        }
    }

    fn asset(&mut self) -> [u8; 32] {
        if self.assets.is_empty() || self.rng.gen_bool(0.5) {
            NATIVE_ASSET
        } else {
            self.assets[self.rng.gen_range(0..self.assets.len())].0
        }
    }

    fn next_seq(&mut self, i: usize) -> u64 {
        let s = self.seq[i];
        if self.rng.gen_range(0..20) == 0 {
            return s + self.rng.gen_range(1..3); // a gap: BadSequence
        }
        self.seq[i] += 1;
        s
    }

    fn tx(&mut self) -> PreparedTx {
        let p = self.pick();
        let payer = self.people[p];
        let kind = self.rng.gen_range(0..100);
        let (signers, payload) = if kind < 50 {
            let to = self.addr_of_pick();
            let (asset, amount) = (self.asset(), self.amount());
            (vec![payer], Payload::Transfer { asset, to, amount })
        } else if kind < 58 {
            let seq = self.seq[p];
            self.assets.push((asset_id(&payer.addr.0, seq), p));
            let policy = if self.rng.gen_bool(0.7) {
                SupplyPolicy::IssuerMintable
            } else {
                SupplyPolicy::Fixed
            };
            (
                vec![payer],
                Payload::CreateAsset {
                    symbol: "X1".into(),
                    decimals: 6,
                    policy,
                    initial_supply: self.rng.gen_range(1..1u128 << 80),
                },
            )
        } else if kind < 68 && !self.assets.is_empty() {
            let (asset, issuer) = self.assets[self.rng.gen_range(0..self.assets.len())];
            // Mostly the issuer; sometimes someone else (NotIssuer).
            let signer = if self.rng.gen_bool(0.8) { issuer } else { p };
            let payer = self.people[signer];
            let to = self.addr_of_pick();
            let amount = self.amount();
            let payload = if self.rng.gen_bool(0.6) {
                Payload::Mint { asset, to, amount }
            } else {
                Payload::Burn { asset, amount }
            };
            let seq = self.next_seq(signer);
            return prep(body(&[payer], seq, payload));
        } else if kind < 88 {
            let n_legs = self.rng.gen_range(1..4);
            let mut signers = vec![payer];
            let mut legs = Vec::new();
            for _ in 0..n_legs {
                let f = self.pick();
                let t = self.pick();
                let from = self.people[f];
                if !signers.iter().any(|s| s.pk == from.pk) && self.rng.gen_range(0..10) != 0 {
                    signers.push(from); // sometimes forgotten: Unauthorized
                }
                let (asset, amount) = (self.asset(), self.amount());
                legs.push(Leg {
                    asset,
                    from: from.addr.0,
                    to: self.people[t].addr.0,
                    amount,
                });
            }
            (signers, Payload::Settle { legs })
        } else {
            let n = self.rng.gen_range(1..6);
            let asset = self.asset();
            let payments = (0..n)
                .map(|_| {
                    let to = self.addr_of_pick();
                    Payment {
                        to,
                        amount: self.rng.gen_range(1..10_000),
                    }
                })
                .collect();
            (vec![payer], Payload::BatchPay { asset, payments })
        };
        let seq = self.next_seq(p);
        prep(body(&signers, seq, payload))
    }
}

fn genesis(g: &mut Gen) -> Vec<(Address, u128)> {
    g.people
        .iter()
        .map(|w| (w.addr, g.rng.gen_range(100_000_000..10_000_000_000u128)))
        .collect()
}

/// Runs `blocks` random blocks in every mode and checks they agree.
fn check_determinism(
    seed: u64,
    n_people: usize,
    hot_pct: u32,
    blocks: usize,
    txs_per_block: usize,
) -> BTreeMap<(Status, Reason), usize> {
    let mut seen = BTreeMap::new();
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(seed),
        people: (0..n_people as u64).map(who).collect(),
        seq: vec![0; n_people],
        assets: Vec::new(),
        hot_pct,
    };
    let allocs = genesis(&mut g);
    let mut ledger = Ledger::new(&allocs);
    let modes = [0usize, 1, 2, 4, 8]; // 0: plain sequential apply_block
    let mut states: Vec<_> = modes.iter().map(|_| ledger.state.clone()).collect();
    for _ in 0..blocks {
        // Resynchronise sequences (rejected transactions used none).
        g.seq = g.people.iter().map(|w| ledger.sequence(w.addr)).collect();
        let txs: Vec<PreparedTx> = (0..txs_per_block).map(|_| g.tx()).collect();
        let ctx = ledger.ctx();
        let mut outs = Vec::new();
        for (m, st) in modes.iter().zip(&mut states) {
            let out = if *m == 0 {
                apply_block(st, &ledger.params, &registry(), &ctx, &txs).unwrap()
            } else {
                apply_block_sharded(st, &ledger.params, &registry(), &ctx, &txs, *m).unwrap()
            };
            let root = commit(st, &out).unwrap();
            outs.push((out, root));
        }
        for (m, (out, root)) in modes.iter().zip(&outs).skip(1) {
            assert_eq!(
                out.receipts, outs[0].0.receipts,
                "seed {seed}: receipts differ with {m} shards"
            );
            assert_eq!(
                out.writes, outs[0].0.writes,
                "seed {seed}: writes differ with {m} shards"
            );
            assert_eq!(
                *root, outs[0].1,
                "seed {seed}: root differs with {m} shards"
            );
        }
        ledger.commit(&outs[0].0);
        assert_eq!(ledger.state.root(), outs[0].1);
        // Supply conservation, PLUME and every asset.
        assert_eq!(
            ledger.native_sum(),
            ledger.meta().total_supply(),
            "seed {seed}: PLUME supply"
        );
        for (id, _) in &g.assets {
            let info = plume_execution::state::read_asset(&ledger.state, id).unwrap();
            let supply = info.map_or(0, |i| i.supply);
            assert_eq!(ledger.asset_sum(id), supply, "seed {seed}: asset supply");
        }
        // Every settlement is all or nothing in its events.
        for (tx, r) in txs.iter().zip(&outs[0].0.receipts) {
            *seen.entry((r.status, r.reason)).or_insert(0) += 1;
            let settle = (tx.tx.body.module == plume_protocol::calls::MODULE_SETTLEMENT)
                .then(|| <Settle as ModuleCall>::decode(&tx.tx.body.call).ok())
                .flatten();
            if let Some(Settle { legs }) = &settle {
                let moved = r
                    .events
                    .iter()
                    .filter(|e| e.cause == plume_execution::Cause::Transfer)
                    .count();
                match r.status {
                    Status::Success => assert_eq!(moved, 2 * legs.len()),
                    _ => assert_eq!(moved, 0),
                }
            }
        }
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn shard_counts_give_identical_roots_and_receipts(
        seed in any::<u64>(),
        n_people in 2usize..60,
        hot_pct in prop_oneof![Just(0u32), Just(10), Just(50), 0u32..100],
    ) {
        check_determinism(seed, n_people, hot_pct, 3, 80);
    }

    #[test]
    fn settlement_is_all_or_nothing_against_a_model(
        legs in prop::collection::vec((0usize..4, 0usize..4, 0usize..2, 1u128..3_000), 1..8),
    ) {
        let people: Vec<Who> = (100..104).map(who).collect();
        let mut l = Ledger::new(&people.iter().map(|w| (w.addr, 1_000_000_000u128)).collect::<Vec<_>>());
        // Asset 1: created by person 0, 5_000 units, handed out 1_000 each.
        let issuer = people[0];
        let coin = asset_id(&issuer.addr.0, 0);
        let mut setup = vec![prep(body(&[issuer], 0, Payload::CreateAsset {
            symbol: "COIN".into(), decimals: 0, policy: SupplyPolicy::Fixed, initial_supply: 5_000 }))];
        setup.push(prep(body(&[issuer], 1, Payload::BatchPay {
            asset: coin,
            payments: people[1..].iter().map(|p| Payment { to: p.addr.0, amount: 1_000 }).collect() })));
        let out = l.block(&setup);
        prop_assert!(out.receipts.iter().all(|r| r.status == Status::Success));

        let assets = [NATIVE_ASSET, coin];
        let payer = people[3];
        let legs: Vec<Leg> = legs.iter().map(|&(f, t, a, amt)| Leg {
            asset: assets[a], from: people[f].addr.0, to: people[t].addr.0,
            amount: if a == 0 { amt * 1_000_000 } else { amt },
        }).collect();
        let mut signers = vec![payer];
        for lg in &legs {
            if let Some(p) = people.iter().find(|p| p.addr.0 == lg.from) {
                if !signers.iter().any(|s| s.pk == p.pk) { signers.push(*p); }
            }
        }
        let before: BTreeMap<(usize, usize), u128> = (0..4).flat_map(|p| (0..2).map(move |a| (p, a)))
            .map(|(p, a)| ((p, a), l.balance(people[p].addr, &assets[a]))).collect();
        let seq = l.sequence(payer.addr);
        let out = l.block(&[prep(body(&signers, seq, Payload::Settle { legs: legs.clone() }))]);
        let r = &out.receipts[0];

        // Model: apply legs in order on the balances after the fee.
        let mut model = before.clone();
        *model.get_mut(&(3, 0)).unwrap() -= r.fee_paid;
        let after_fee = model.clone();
        let idx = |a: &[u8; 32]| people.iter().position(|p| &p.addr.0 == a).unwrap();
        let mut ok = true;
        for lg in &legs {
            let a = if lg.asset == NATIVE_ASSET { 0 } else { 1 };
            let from = model.get_mut(&(idx(&lg.from), a)).unwrap();
            if *from < lg.amount { ok = false; break; }
            *from -= lg.amount;
            *model.get_mut(&(idx(&lg.to), a)).unwrap() += lg.amount;
        }
        let expect = if ok { model } else { after_fee };
        prop_assert_eq!(r.status, if ok { Status::Success } else { Status::Failed });
        for ((p, a), v) in expect {
            prop_assert_eq!(l.balance(people[p].addr, &assets[a]), v, "person {} asset {}", p, a);
        }
        prop_assert_eq!(l.native_sum(), l.meta().total_supply());
    }

    #[test]
    fn unauthorized_leg_is_rejected_without_effect(
        signed in prop::collection::vec(any::<bool>(), 3),
        froms in prop::collection::vec(0usize..3, 1..5),
    ) {
        let people: Vec<Who> = (200..203).map(who).collect();
        let mut l = Ledger::new(&people.iter().map(|w| (w.addr, 1_000_000_000u128)).collect::<Vec<_>>());
        let payer = who(300);
        l = {
            let mut allocs: Vec<_> = people.iter().map(|w| (w.addr, 1_000_000_000u128)).collect();
            allocs.push((payer.addr, 1_000_000_000));
            let _ = l;
            Ledger::new(&allocs)
        };
        let mut signers = vec![payer];
        signers.extend(people.iter().zip(&signed).filter(|(_, s)| **s).map(|(p, _)| *p));
        let legs: Vec<Leg> = froms.iter().map(|&f| Leg {
            asset: NATIVE_ASSET, from: people[f].addr.0, to: payer.addr.0, amount: 1 }).collect();
        let authorized = froms.iter().all(|&f| signed[f]);
        let root_meta_only = l.state.root();
        let out = l.block(&[prep(body(&signers, 0, Payload::Settle { legs }))]);
        let r = &out.receipts[0];
        if authorized {
            prop_assert_eq!(r.status, Status::Success);
        } else {
            prop_assert_eq!((r.status, r.reason), (Status::Rejected, Reason::Unauthorized));
            prop_assert!(r.events.is_empty());
            prop_assert_eq!(out.writes.len(), 1, "only the ledger metadata changes");
            prop_assert_ne!(l.state.root(), root_meta_only);
            for p in &people { prop_assert_eq!(l.native(p.addr), 1_000_000_000); }
        }
    }
}

#[test]
fn heavy_conflict_and_conflict_free_blocks_agree_across_shards() {
    // Fixed seeds at the extremes: everyone touches one account; nobody
    // shares one.
    let mut union = BTreeMap::new();
    for (seed, people, hot) in [(1, 50, 100), (2, 2_000, 0), (3, 3, 0), (4, 40, 10)] {
        let seen = check_determinism(seed, people, hot, 3, 300);
        union.extend(seen.clone());
        // The generator reaches success, payload failure and rejection.
        let count = |st: Status| {
            seen.iter()
                .filter(|((s, _), _)| *s == st)
                .map(|(_, n)| n)
                .sum::<usize>()
        };
        assert!(count(Status::Success) > 100, "seed {seed}: {seen:?}");
        assert!(count(Status::Failed) > 0, "seed {seed}: {seen:?}");
        assert!(count(Status::Rejected) > 0, "seed {seed}: {seen:?}");
    }
    for reason in [
        Reason::InsufficientBalance,
        Reason::BadSequence,
        Reason::Unauthorized,
        Reason::NotIssuer,
        Reason::SupplyFixed,
    ] {
        assert!(
            union.keys().any(|(_, r)| *r == reason),
            "no {reason:?} in {union:?}"
        );
    }
}
