//! Scenario tests of the ledger: one behaviour each, through the public API.

mod common;

use common::*;
use plume_execution::fees::{self, GAS_PER_SIGNER, GAS_TX_BASE};
use plume_execution::modules::transfer::GAS_TRANSFER;
use plume_execution::{
    apply_block, fee_pool_address, precheck, Cause, ExecError, PrecheckError, Reason, Status,
};
use plume_protocol::calls::{Leg, Payment, SupplyPolicy};
use plume_protocol::tx::{asset_id, NATIVE_ASSET};

const RICH: u128 = 1_000_000_000_000;
const TRANSFER_GAS: u64 = GAS_TX_BASE + GAS_PER_SIGNER + GAS_TRANSFER;

fn two() -> (Who, Who, Ledger) {
    let (a, b) = (who(1), who(2));
    let l = Ledger::new(&[(a.addr, RICH), (b.addr, RICH)]);
    (a, b, l)
}

#[test]
fn native_transfer_pays_fee_split_and_conserves_supply() {
    let (a, b, mut l) = two();
    let out = l.block(&[transfer(a, 0, b, 1_000)]);
    let r = &out.receipts[0];
    assert_eq!((r.status, r.reason), (Status::Success, Reason::Ok));
    assert_eq!(r.gas_used, TRANSFER_GAS);
    let fee = TRANSFER_GAS as u128 * 12; // base 10 + tip 2
    assert_eq!(r.fee_paid, fee);
    assert_eq!(r.fee_burned, TRANSFER_GAS as u128 * 10 / 2);
    assert_eq!(r.tip, TRANSFER_GAS as u128 * 2);
    assert_eq!(l.native(a.addr), RICH - 1_000 - fee);
    assert_eq!(l.native(b.addr), RICH + 1_000);
    assert_eq!(l.sequence(a.addr), 1);
    // Base 200_000: burn 100_000, treasury 20% of the rest, pool the remainder.
    assert_eq!(l.native(l.params.treasury), 20_000);
    assert_eq!(l.native(fee_pool_address()), 80_000);
    assert_eq!(l.native(proposer()), 40_000);
    assert_eq!(out.meta.burned, 100_000);
    assert_eq!(l.native_sum(), 2 * RICH - 100_000);
    assert_eq!(l.meta().total_supply(), l.native_sum());
    // Events: fee debit, transfer debit, transfer credit; block credits.
    let causes: Vec<_> = r.events.iter().map(|e| (e.cause, e.credit)).collect();
    assert_eq!(
        causes,
        vec![
            (Cause::Fee, false),
            (Cause::Transfer, false),
            (Cause::Transfer, true)
        ]
    );
    assert_eq!(out.block_events.len(), 3);
    // Writes are sorted, unique.
    assert!(out.writes.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn replay_and_wrong_sequence_are_rejected_without_effect() {
    let (a, b, mut l) = two();
    let tx = transfer(a, 0, b, 5);
    l.block(std::slice::from_ref(&tx));
    let before = (l.native(a.addr), l.state_root());
    let out = l.block(&[tx, transfer(a, 7, b, 5)]);
    for r in &out.receipts {
        assert_eq!(
            (r.status, r.reason),
            (Status::Rejected, Reason::BadSequence)
        );
        assert!(r.events.is_empty());
    }
    assert_eq!(l.native(a.addr), before.0);
    assert_eq!(l.sequence(a.addr), 1);
}

trait Root {
    fn state_root(&self) -> plume_crypto::Digest;
}
impl Root for Ledger {
    fn state_root(&self) -> plume_crypto::Digest {
        use plume_storage::AuthenticatedState;
        self.state.root()
    }
}

#[test]
fn stateless_rejections_have_reason_codes() {
    let (a, b, mut l) = two();
    let mut wrong_chain = body(
        &[a],
        0,
        Payload::Transfer {
            asset: NATIVE_ASSET,
            to: b.addr.0,
            amount: 1,
        },
    );
    wrong_chain.chain_id = "other".into();
    let mut expired = wrong_chain.clone();
    expired.chain_id = CHAIN.into();
    expired.expiry_height = 0;
    let mut cheap = expired.clone();
    cheap.expiry_height = 10;
    cheap.max_fee_per_gas = 9;
    let zero = body(
        &[a],
        0,
        Payload::Transfer {
            asset: NATIVE_ASSET,
            to: b.addr.0,
            amount: 0,
        },
    );
    let unauthorized = body(
        &[a],
        0,
        Payload::Settle {
            legs: vec![Leg {
                asset: NATIVE_ASSET,
                from: b.addr.0,
                to: a.addr.0,
                amount: 1,
            }],
        },
    );
    let dup = body(
        &[a, a],
        0,
        Payload::Transfer {
            asset: NATIVE_ASSET,
            to: b.addr.0,
            amount: 1,
        },
    );
    let mut missing_sig = prep(body(
        &[a],
        0,
        Payload::Transfer {
            asset: NATIVE_ASSET,
            to: b.addr.0,
            amount: 1,
        },
    ));
    missing_sig.tx.signatures.clear();
    let txs = vec![
        prep(wrong_chain),
        prep(expired),
        prep(cheap),
        prep(zero),
        prep(unauthorized),
        prep(dup),
        missing_sig,
    ];
    let root = l.state_root();
    let out = l.block(&txs);
    let reasons: Vec<_> = out.receipts.iter().map(|r| (r.status, r.reason)).collect();
    let want = [
        Reason::WrongChain,
        Reason::Expired,
        Reason::FeeCapBelowBaseFee,
        Reason::ZeroAmount,
        Reason::Unauthorized,
        Reason::DuplicateSigner,
        Reason::SignatureCount,
    ];
    assert_eq!(
        reasons,
        want.iter()
            .map(|r| (Status::Rejected, *r))
            .collect::<Vec<_>>()
    );
    // Only the metadata (height, base fee) changed.
    assert_eq!(out.writes.len(), 1);
    assert_ne!(l.state_root(), root);
    assert_eq!(l.sequence(a.addr), 0);
}

#[test]
fn failed_payload_charges_fee_and_reverts_payload() {
    let (a, b, mut l) = two();
    let out = l.block(&[transfer(a, 0, b, RICH)]); // cannot also pay the fee
    let r = &out.receipts[0];
    assert_eq!(
        (r.status, r.reason),
        (Status::Failed, Reason::InsufficientBalance)
    );
    let fee = TRANSFER_GAS as u128 * 12;
    assert_eq!(l.native(a.addr), RICH - fee);
    assert_eq!(l.native(b.addr), RICH);
    assert_eq!(l.sequence(a.addr), 1);
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].cause, Cause::Fee);
    assert_eq!(l.meta().total_supply(), l.native_sum());
}

#[test]
fn payer_that_cannot_pay_fee_is_rejected() {
    let (a, b, poor) = (who(1), who(2), who(3));
    let mut l = Ledger::new(&[(a.addr, RICH), (poor.addr, 10)]);
    let out = l.block(&[transfer(poor, 0, b, 1)]);
    assert_eq!(out.receipts[0].reason, Reason::InsufficientFeeBalance);
    assert_eq!(out.receipts[0].status, Status::Rejected);
    assert_eq!(l.native(poor.addr), 10);
}

#[test]
fn out_of_gas_charges_the_limit() {
    let (a, b, mut l) = two();
    let mut bd = body(
        &[a],
        0,
        Payload::Transfer {
            asset: NATIVE_ASSET,
            to: b.addr.0,
            amount: 1,
        },
    );
    bd.gas_limit = 100;
    let out = l.block(&[prep(bd)]);
    let r = &out.receipts[0];
    assert_eq!(
        (r.status, r.reason, r.gas_used),
        (Status::Failed, Reason::OutOfGas, 100)
    );
    assert_eq!(l.native(a.addr), RICH - 1_200);
    assert_eq!(l.native(b.addr), RICH);
}

#[test]
fn asset_lifecycle_issuer_only_mint_and_burn() {
    let (a, b, mut l) = two();
    let create = |seq, policy, supply| {
        prep(body(
            &[a],
            seq,
            Payload::CreateAsset {
                symbol: "BOND1".into(),
                decimals: 2,
                policy,
                initial_supply: supply,
            },
        ))
    };
    let mintable = asset_id(&a.addr.0, 0);
    let fixed = asset_id(&a.addr.0, 1);
    let out = l.block(&[
        create(0, SupplyPolicy::IssuerMintable, 500),
        create(1, SupplyPolicy::Fixed, 70),
    ]);
    assert!(
        out.receipts.iter().all(|r| r.status == Status::Success),
        "{:?}",
        out.receipts
    );
    assert_eq!(l.balance(a.addr, &mintable), 500);
    assert_eq!(l.balance(a.addr, &fixed), 70);

    let mint = |signer: Who, seq, asset, amount| {
        prep(body(
            &[signer],
            seq,
            Payload::Mint {
                asset,
                to: b.addr.0,
                amount,
            },
        ))
    };
    let burn = |signer: Who, seq, asset, amount| {
        prep(body(&[signer], seq, Payload::Burn { asset, amount }))
    };
    let out = l.block(&[
        mint(a, 2, mintable, 30),
        mint(b, 0, mintable, 30),
        mint(a, 3, fixed, 1),
        mint(a, 4, [9; 32], 1),
        burn(a, 5, mintable, 100),
        burn(a, 6, mintable, 10_000),
        burn(b, 1, mintable, 1),
        prep(body(
            &[b],
            2,
            Payload::Transfer {
                asset: mintable,
                to: a.addr.0,
                amount: 5,
            },
        )),
    ]);
    let reasons: Vec<_> = out.receipts.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [
            Reason::Ok,
            Reason::NotIssuer,
            Reason::SupplyFixed,
            Reason::UnknownAsset,
            Reason::Ok,
            Reason::InsufficientBalance,
            Reason::NotIssuer,
            Reason::Ok
        ]
    );
    assert_eq!(l.balance(b.addr, &mintable), 25);
    assert_eq!(l.balance(a.addr, &mintable), 405);
    let info = plume_execution::state::read_asset(&l.state, &mintable)
        .unwrap()
        .unwrap();
    assert_eq!(info.supply, 430);
    assert_eq!(l.asset_sum(&mintable), 430);
    assert_eq!(l.meta().total_supply(), l.native_sum());
}

#[test]
fn settlement_is_all_or_nothing() {
    // DvP: seller delivers a security, buyer pays cash.
    let (seller, buyer) = (who(1), who(2));
    let mut l = Ledger::new(&[(seller.addr, RICH), (buyer.addr, RICH)]);
    l.block(&[prep(body(
        &[seller],
        0,
        Payload::CreateAsset {
            symbol: "SEC".into(),
            decimals: 0,
            policy: SupplyPolicy::Fixed,
            initial_supply: 100,
        },
    ))]);
    let sec = asset_id(&seller.addr.0, 0);
    let dvp = |seq, qty: u128, cash: u128| {
        prep(body(
            &[seller, buyer],
            seq,
            Payload::Settle {
                legs: vec![
                    Leg {
                        asset: sec,
                        from: seller.addr.0,
                        to: buyer.addr.0,
                        amount: qty,
                    },
                    Leg {
                        asset: NATIVE_ASSET,
                        from: buyer.addr.0,
                        to: seller.addr.0,
                        amount: cash,
                    },
                ],
            },
        ))
    };
    let seller_cash = l.native(seller.addr);
    // Second leg fails (buyer lacks cash): the first leg must be undone.
    let out = l.block(&[dvp(1, 10, 10 * RICH)]);
    assert_eq!(out.receipts[0].reason, Reason::InsufficientBalance);
    assert_eq!(l.balance(buyer.addr, &sec), 0);
    assert_eq!(l.balance(seller.addr, &sec), 100);
    let fee = out.receipts[0].fee_paid;
    assert_eq!(l.native(seller.addr), seller_cash - fee);
    assert_eq!(l.native(buyer.addr), RICH);
    // Now a good one.
    let out = l.block(&[dvp(2, 10, 5_000)]);
    assert_eq!(out.receipts[0].status, Status::Success);
    assert_eq!(out.receipts[0].events.len(), 5);
    assert_eq!(l.balance(buyer.addr, &sec), 10);
    assert_eq!(l.native(buyer.addr), RICH - 5_000);
    assert_eq!(l.meta().total_supply(), l.native_sum());
}

#[test]
fn batch_payment_pays_everyone_or_no_one() {
    let (a, b, mut l) = two();
    let payees: Vec<Who> = (10..20).map(who).collect();
    let pay = |seq, amount| {
        prep(body(
            &[a],
            seq,
            Payload::BatchPay {
                asset: NATIVE_ASSET,
                payments: payees
                    .iter()
                    .map(|p| Payment {
                        to: p.addr.0,
                        amount,
                    })
                    .collect(),
            },
        ))
    };
    let out = l.block(&[pay(0, 7), pay(1, RICH / 5), pay(2, u128::MAX / 4)]);
    let reasons: Vec<_> = out.receipts.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [Reason::Ok, Reason::InsufficientBalance, Reason::Overflow]
    );
    for p in &payees {
        assert_eq!(l.native(p.addr), 7);
    }
    assert_eq!(l.native(b.addr), RICH);
    assert_eq!(l.meta().total_supply(), l.native_sum());
}

#[test]
fn block_gas_limit_rejects_the_overflowing_tail() {
    let a = who(1);
    let mut p = params();
    p.block_gas_limit = 3 * TRANSFER_GAS;
    p.block_gas_target = TRANSFER_GAS;
    let mut l = Ledger::with_params(p, &[(a.addr, RICH)]);
    let txs: Vec<_> = (0..5).map(|s| transfer(a, s, who(9), 1)).collect();
    let out = l.block(&txs);
    let reasons: Vec<_> = out.receipts.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [
            Reason::Ok,
            Reason::Ok,
            Reason::Ok,
            Reason::BlockGasLimit,
            Reason::BlockGasLimit
        ]
    );
    assert_eq!(out.gas_used, 3 * TRANSFER_GAS);
    // Three times the target: the base fee rises by the full 1/8 (10 -> 11, rounded down then >= 1).
    assert_eq!(
        out.next_base_fee_per_gas,
        fees::next_base_fee(&l.params, 10, 3 * TRANSFER_GAS)
    );
    assert!(out.next_base_fee_per_gas > 10);
    assert_eq!(l.meta().base_fee_per_gas, out.next_base_fee_per_gas);
}

#[test]
fn base_fee_falls_on_empty_blocks_to_the_minimum() {
    let mut l = Ledger::new(&[(who(1).addr, 1)]);
    let mut fees_seen = vec![];
    for _ in 0..30 {
        fees_seen.push(l.block(&[]).next_base_fee_per_gas);
    }
    assert_eq!(fees_seen[0], 9); // 10 - 10/8
    assert!(fees_seen.windows(2).all(|w| w[1] <= w[0]));
    assert_eq!(*fees_seen.last().unwrap(), l.params.base_fee_min);
}

#[test]
fn block_level_errors() {
    let (a, b, l) = two();
    let mut ctx = l.ctx();
    ctx.height = 5;
    assert!(matches!(
        apply_block(&l.state, &l.params, &registry(), &ctx, &[]),
        Err(ExecError::WrongHeight {
            got: 5,
            expected: 1
        })
    ));
    let mut p = l.params.clone();
    p.block_txs_max = 1;
    p.block_txs_limit = 1;
    let txs = [transfer(a, 0, b, 1), transfer(a, 1, b, 1)];
    assert!(matches!(
        apply_block(&l.state, &p, &registry(), &l.ctx(), &txs),
        Err(ExecError::TooManyTxs { got: 2, max: 1 })
    ));
    let empty = plume_storage::MemoryState::new();
    assert!(matches!(
        apply_block(&empty, &l.params, &registry(), &l.ctx(), &[]),
        Err(ExecError::NoGenesis)
    ));
}

#[test]
fn fee_recipients_are_credited_after_their_own_transactions() {
    // The treasury spends in the same block it earns: it sees its balance
    // from before the block's fee credits, in every execution mode.
    let a = who(1);
    let (tk, treasury) = (who(50), who(50));
    let mut p = params();
    p.treasury = treasury.addr;
    let _ = tk;
    let mut l = Ledger::with_params(p, &[(a.addr, RICH), (treasury.addr, RICH)]);
    let txs = [
        transfer(a, 0, who(3), 1),
        transfer(treasury, 0, who(4), RICH - 240_000),
    ];
    let out = l.block(&txs);
    assert!(out.receipts.iter().all(|r| r.status == Status::Success));
    assert_eq!(l.native(treasury.addr), 2 * 20_000);
}

#[test]
fn precheck_admits_good_and_refuses_bad() {
    let (a, b, l) = two();
    let refused =
        |ptx: &plume_execution::PreparedTx| match precheck(&l.state, &l.params, &l.registry, ptx) {
            Err(PrecheckError::Refused(r)) => Some(r),
            Ok(_) => None,
            Err(e) => panic!("{e}"),
        };
    assert_eq!(refused(&transfer(a, 0, b, 1)), None);
    let w = plume_execution::SEQUENCE_WINDOW;
    assert_eq!(refused(&transfer(a, w - 1, b, 1)), None);
    assert_eq!(refused(&transfer(a, w, b, 1)), Some(Reason::BadSequence));
    let poor = who(77);
    assert_eq!(
        refused(&transfer(poor, 0, b, 1)),
        Some(Reason::InsufficientFeeBalance)
    );
    let mut bd = body(
        &[a],
        0,
        Payload::Transfer {
            asset: NATIVE_ASSET,
            to: b.addr.0,
            amount: 1,
        },
    );
    bd.expiry_height = 0;
    assert_eq!(refused(&prep(bd.clone())), Some(Reason::Expired));
    bd.expiry_height = 5;
    bd.max_fee_per_gas = 1;
    assert_eq!(refused(&prep(bd.clone())), Some(Reason::FeeCapBelowBaseFee));
    bd.max_fee_per_gas = 100;
    bd.gas_limit = 1;
    assert_eq!(refused(&prep(bd.clone())), Some(Reason::OutOfGas));
    bd.gas_limit = u64::MAX;
    assert_eq!(refused(&prep(bd)), Some(Reason::BlockGasLimit));
}

#[test]
fn recipients_named_after_ledger_keys_cannot_touch_ledger_records() {
    // A client may name any 32 bytes as a recipient, including the keys of
    // the ledger's own records; those must stay intact and decodable.
    use plume_execution::state::{asset_key, balance_key, meta_key};
    let (a, b, mut l) = two();
    l.block(&[prep(body(
        &[a],
        0,
        Payload::CreateAsset {
            symbol: "T".into(),
            decimals: 0,
            policy: SupplyPolicy::IssuerMintable,
            initial_supply: 10,
        },
    ))]);
    let t = asset_id(&a.addr.0, 0);
    let targets = [meta_key(), asset_key(&t), balance_key(&a.addr.0, &t)];
    let txs: Vec<_> = targets
        .iter()
        .enumerate()
        .map(|(i, k)| {
            prep(body(
                &[a],
                1 + i as u64,
                Payload::Transfer {
                    asset: NATIVE_ASSET,
                    to: *k,
                    amount: 3,
                },
            ))
        })
        .collect();
    let out = l.block(&txs);
    assert!(out.receipts.iter().all(|r| r.status == Status::Success));
    // The ledger still reads and applies blocks; the asset is unharmed.
    assert_eq!(l.meta().height, 2);
    let info = plume_execution::state::read_asset(&l.state, &t)
        .unwrap()
        .unwrap();
    assert_eq!(info.supply, 10);
    assert_eq!(l.balance(a.addr, &t), 10);
    let out = l.block(&[transfer(b, 0, a, 1)]);
    assert_eq!(out.receipts[0].status, Status::Success);
    assert_eq!(l.meta().total_supply(), l.native_sum());
}
