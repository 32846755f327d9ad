//! Vesting: the release curve (property-tested), claims by block time,
//! clawback of the unvested part only, unvested PLUME neither transferable
//! nor stakable, governance grants from the treasury, supply accounting.

mod common;

use common::*;
use plume_execution::{BlockOutput, PreparedTx, Reason, Status};
use plume_protocol::calls::{EncodedCall, ModuleCall};
use plume_protocol::governance::{
    codes, schedule_id, vested, vesting_escrow, GovCall, GovParams, ProposalKind, StakeCall,
    VestingCall, VoteOption, MODULE_GOVERNANCE, MODULE_STAKE, MODULE_VESTING,
    VESTING_DURATION_MAX_MS,
};
use plume_protocol::tx::NATIVE_ASSET;
use proptest::prelude::*;

const RICH: u128 = 1_000_000_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// 0 before the cliff, floor(total x elapsed / duration) after it,
    /// total at the end, never decreasing.
    #[test]
    fn the_release_curve(
        total in 1u128..=u128::MAX,
        start in 0u64..1u64 << 50,
        duration in 1u64..=VESTING_DURATION_MAX_MS,
        cliff_frac in 0u64..=1_000,
        t1 in 0u64..1u64 << 51,
        dt in 0u64..1u64 << 40,
    ) {
        let cliff = duration / 1_000 * cliff_frac;
        let v1 = vested(total, start, cliff, duration, t1);
        let v2 = vested(total, start, cliff, duration, t1.saturating_add(dt));
        prop_assert!(v2 >= v1, "decreased");
        prop_assert!(v1 <= total);
        let elapsed = t1.saturating_sub(start);
        if t1 < start || elapsed < cliff {
            prop_assert_eq!(v1, 0);
        } else if elapsed >= duration {
            prop_assert_eq!(v1, total);
        } else {
            // floor(total * elapsed / duration), checked in 256 bits.
            let (hi, lo) = mul_wide(total, elapsed as u128);
            let expect = div_wide(hi, lo, duration as u128);
            prop_assert_eq!(v1, expect);
        }
        prop_assert_eq!(vested(total, start, cliff, duration, start + duration), total);
    }
}

/// (high, low) 128-bit halves of a * b.
fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    let (a1, a0) = (a >> 64, a & u64::MAX as u128);
    let (b1, b0) = (b >> 64, b & u64::MAX as u128);
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 64) + (p01 & u64::MAX as u128) + (p10 & u64::MAX as u128);
    let lo = (p00 & u64::MAX as u128) | (mid << 64);
    let hi = p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64);
    (hi, lo)
}

/// (hi * 2^128 + lo) / d for a quotient that fits u128, bit by bit.
fn div_wide(hi: u128, lo: u128, d: u128) -> u128 {
    let mut rem = hi % d;
    let mut q = 0u128;
    for i in (0..128).rev() {
        let carry = rem >> 127;
        rem = (rem << 1) | ((lo >> i) & 1);
        q <<= 1;
        if carry == 1 || rem >= d {
            rem = rem.wrapping_sub(d);
            q |= 1;
        }
    }
    q
}

fn call(module: u16, bytes: Vec<u8>, signer: Who, seq: u64) -> PreparedTx {
    prep(body(&[signer], seq, EncodedCall { module, bytes }))
}

fn outcome(out: &BlockOutput, i: usize) -> (Status, Reason) {
    (out.receipts[i].status, out.receipts[i].reason)
}

const OK: (Status, Reason) = (Status::Success, Reason::Ok);

/// Blocks every 1,000 ms: block h has time h x 1,000.
#[test]
fn claims_follow_block_time_clawback_takes_only_the_unvested_part_and_unvested_plume_is_locked() {
    let (funder, ben, authority) = (who(1), who(2), who(3));
    let mut l = Ledger::new(&[
        (funder.addr, RICH),
        (ben.addr, RICH),
        (authority.addr, RICH),
    ]);
    // Block 1 (time 1,000): 1,000,000 over 100 s from time 10,000, cliff 20 s.
    let create = VestingCall::Create {
        beneficiary: ben.addr.0,
        total: 1_000_000,
        start_ms: 10_000,
        cliff_ms: 20_000,
        duration_ms: 100_000,
        clawback: Some(authority.addr.0),
    };
    let id = schedule_id(&funder.addr.0, 0);
    let out = l.block(&[call(MODULE_VESTING, create.encode(), funder, 0)]);
    assert_eq!(outcome(&out, 0), OK);
    assert_eq!(
        l.native(plume_crypto::ed25519::Address(vesting_escrow())),
        1_000_000
    );
    let claim = |seq| {
        call(
            MODULE_VESTING,
            VestingCall::Claim { schedule: id }.encode(),
            ben,
            seq,
        )
    };
    // Block 2 (time 2,000): before the cliff nothing can be claimed; the
    // beneficiary cannot move or stake the locked PLUME either (its own
    // balance is all it has).
    let out = l.block(&[claim(0)]);
    assert_eq!(outcome(&out, 0), (Status::Failed, codes::NOTHING_VESTED));
    // Up to block 35 (time 35,000): 25 % vested.
    while l.height < 34 {
        l.block(&[]);
    }
    let before = l.native(ben.addr);
    let out = l.block(&[claim(1)]);
    assert_eq!(outcome(&out, 0), OK);
    let fee = out.receipts[0].fee_paid;
    assert_eq!(l.native(ben.addr), before + 250_000 - fee);
    // One block later (36 s): 1 % more.
    let before = l.native(ben.addr);
    let out = l.block(&[claim(2)]);
    assert_eq!(outcome(&out, 0), OK);
    assert_eq!(
        l.native(ben.addr),
        before + 10_000 - out.receipts[0].fee_paid
    );
    // Block 60 (time 60,000): the authority claws back the unvested 50 %.
    while l.height < 59 {
        l.block(&[]);
    }
    let other = who(9);
    let not_auth = call(
        MODULE_VESTING,
        VestingCall::Clawback { schedule: id }.encode(),
        ben,
        3,
    );
    let clawback = call(
        MODULE_VESTING,
        VestingCall::Clawback { schedule: id }.encode(),
        authority,
        0,
    );
    let before = l.native(authority.addr);
    let out = l.block(&[not_auth, clawback]);
    assert_eq!(
        outcome(&out, 0),
        (Status::Failed, codes::NOT_CLAWBACK_AUTHORITY)
    );
    assert_eq!(outcome(&out, 1), OK);
    assert_eq!(
        l.native(authority.addr),
        before + 500_000 - out.receipts[1].fee_paid
    );
    // What vested stays claimable, nothing vests later: at time 200,000
    // the beneficiary gets exactly the rest of the vested 500,000.
    while l.height < 199 {
        l.block(&[]);
    }
    let before = l.native(ben.addr);
    let out = l.block(&[claim(4)]);
    assert_eq!(outcome(&out, 0), OK);
    assert_eq!(
        l.native(ben.addr),
        before + 240_000 - out.receipts[0].fee_paid
    );
    assert_eq!(
        l.native(plume_crypto::ed25519::Address(vesting_escrow())),
        0
    );
    let out = l.block(&[
        claim(5),
        call(
            MODULE_VESTING,
            VestingCall::Clawback { schedule: id }.encode(),
            authority,
            1,
        ),
        call(
            MODULE_VESTING,
            VestingCall::Claim { schedule: [5; 32] }.encode(),
            other,
            0,
        ),
    ]);
    assert_eq!(outcome(&out, 0), (Status::Failed, codes::NOTHING_VESTED));
    assert_eq!(
        outcome(&out, 1),
        (Status::Failed, codes::NOTHING_TO_CLAW_BACK)
    );
    // `other` has no PLUME: rejected for the fee before anything else.
    assert_eq!(out.receipts[2].status, Status::Rejected);
    // Supply accounting holds.
    assert_eq!(l.meta().total_supply(), l.native_sum());
    // Bad shapes are refused before execution.
    for (cliff, duration) in [(0, 0), (10, 5), (0, VESTING_DURATION_MAX_MS + 1)] {
        let bad = VestingCall::Create {
            beneficiary: ben.addr.0,
            total: 1,
            start_ms: 0,
            cliff_ms: cliff,
            duration_ms: duration,
            clawback: None,
        };
        assert_eq!(VestingCall::decode(&bad.encode()), Err(codes::BAD_SCHEDULE));
    }
}

#[test]
fn locked_plume_can_neither_be_transferred_nor_bonded_and_a_governance_grant_vests_from_the_treasury(
) {
    let (a, ben) = (who(1), who(2));
    let mut p = params();
    p.gov = GovParams {
        min_deposit: 1_000,
        deposit_period_blocks: 5,
        voting_period_blocks: 3,
        quorum_percent: 33,
        threshold_percent: 50,
        veto_percent: 33,
        unbonding_blocks: 4,
    };
    let treasury = p.treasury;
    // The beneficiary holds just enough for fees.
    let mut l = Ledger::with_params(
        p,
        &[
            (a.addr, RICH),
            (ben.addr, 10_000_000),
            (treasury, 2_000_000),
        ],
    );
    let bond = call(
        MODULE_STAKE,
        StakeCall::Bond { amount: 5_000 }.encode(),
        a,
        0,
    );
    let grant = ProposalKind::VestedGrant {
        to: ben.addr.0,
        amount: 1_000_000,
        cliff_ms: 0,
        duration_ms: 10_000,
    };
    let id = plume_protocol::governance::proposal_id(&a.addr.0, 1);
    let propose = call(
        MODULE_GOVERNANCE,
        GovCall::Propose {
            title: "grant".into(),
            kind: grant,
            deposit: 1_000,
        }
        .encode(),
        a,
        1,
    );
    let out = l.block(&[bond]);
    assert_eq!(outcome(&out, 0), OK);
    let out = l.block(&[propose]); // block 2: voting 2..=4
    assert_eq!(outcome(&out, 0), OK);
    let vote = call(
        MODULE_GOVERNANCE,
        GovCall::Vote {
            proposal: id,
            option: VoteOption::Yes,
        }
        .encode(),
        a,
        2,
    );
    l.block(&[vote]);
    let treasury_before = l.native(treasury);
    let out = l.block(&[]); // block 4 (time 4,000) decides it
    assert!(out
        .block_events
        .iter()
        .any(|e| e.cause == codes::VESTING_LOCK && e.account == treasury.0 && !e.credit));
    assert_eq!(l.native(treasury), treasury_before - 1_000_000);
    l.accounts
        .insert(plume_crypto::ed25519::Address(vesting_escrow()));
    // Block 5 (time 5,000): 10 % vested. The beneficiary's locked PLUME is
    // not its balance: a transfer or a bond of more than it holds fails.
    let bal = l.native(ben.addr);
    let out = l.block(&[
        transfer(ben, 0, a, bal + 1),
        call(
            MODULE_STAKE,
            StakeCall::Bond { amount: bal + 1 }.encode(),
            ben,
            1,
        ),
        call(
            MODULE_VESTING,
            VestingCall::Claim { schedule: id }.encode(),
            ben,
            2,
        ),
    ]);
    assert_eq!(
        outcome(&out, 0),
        (Status::Failed, Reason::InsufficientBalance)
    );
    assert_eq!(
        outcome(&out, 1),
        (Status::Failed, Reason::InsufficientBalance)
    );
    assert_eq!(outcome(&out, 2), OK);
    let fees: u128 = out.receipts.iter().map(|r| r.fee_paid).sum();
    // The grant started at the deciding block's time (4,000): 1,000 ms of
    // 10,000 have passed.
    assert_eq!(l.native(ben.addr), bal + 100_000 - fees);
    let s = l
        .registry
        .query(
            &l.state,
            "vesting",
            "schedule",
            &[hex::encode(id), "14000".into()],
        )
        .unwrap();
    assert_eq!(s["vested"], "1000000", "{s}");
    assert_eq!(s["claimable"], "900000", "{s}");
    assert_eq!(s["funder"], hex::encode(treasury.0));
    assert_eq!(l.meta().total_supply(), l.native_sum());
    let _ = NATIVE_ASSET;
}
