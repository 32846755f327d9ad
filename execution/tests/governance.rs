//! Governance and stake: proposals, deposits, stake-weighted votes from a
//! snapshot, tallies at the end of the voting period, parameter changes at
//! their height, burned deposits, treasury spends.

mod common;

use common::*;
use plume_execution::modules::governance::effective_params;
use plume_execution::{BlockOutput, Params, PreparedTx, Reason, Status};
use plume_protocol::calls::{EncodedCall, ModuleCall};
use plume_protocol::governance::{
    codes, deposit_escrow, proposal_id, stake_escrow, GovCall, GovParams, ParamChange,
    ProposalKind, StakeCall, VoteOption, MODULE_GOVERNANCE, MODULE_STAKE,
};
use plume_protocol::tx::NATIVE_ASSET;

const RICH: u128 = 1_000_000_000_000;

fn gov_params() -> Params {
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
    p
}

fn gov(signer: Who, seq: u64, c: GovCall) -> PreparedTx {
    prep(body(
        &[signer],
        seq,
        EncodedCall {
            module: MODULE_GOVERNANCE,
            bytes: c.encode(),
        },
    ))
}

fn stake(signer: Who, seq: u64, c: StakeCall) -> PreparedTx {
    prep(body(
        &[signer],
        seq,
        EncodedCall {
            module: MODULE_STAKE,
            bytes: c.encode(),
        },
    ))
}

fn outcome(out: &BlockOutput, i: usize) -> (Status, Reason) {
    (out.receipts[i].status, out.receipts[i].reason)
}

const OK: (Status, Reason) = (Status::Success, Reason::Ok);

fn failed(r: Reason) -> (Status, Reason) {
    (Status::Failed, r)
}

fn status_of(l: &Ledger, id: &[u8; 32]) -> String {
    let v = l
        .registry
        .query(&l.state, "governance", "proposal", &[hex::encode(id)])
        .unwrap();
    v["status"].as_str().unwrap().to_string()
}

struct World {
    l: Ledger,
    users: Vec<Who>,
    seq: Vec<u64>,
}

impl World {
    /// Users 0..n, each rich; users 0, 1, 2 bond 600, 300, 100 in block 1.
    fn new(n: u64) -> World {
        let users: Vec<Who> = (1..=n).map(who).collect();
        let mut allocs: Vec<_> = users.iter().map(|u| (u.addr, RICH)).collect();
        let p = gov_params();
        allocs.push((p.treasury, 10_000));
        let mut w = World {
            l: Ledger::with_params(p, &allocs),
            seq: vec![0; users.len()],
            users,
        };
        let bonds = [600u128, 300, 100];
        let txs: Vec<_> = bonds
            .iter()
            .enumerate()
            .map(|(i, b)| w.stake(i, StakeCall::Bond { amount: *b }))
            .collect();
        let out = w.l.block(&txs);
        for i in 0..3 {
            assert_eq!(outcome(&out, i), OK);
        }
        w
    }

    fn next(&mut self, i: usize) -> u64 {
        self.seq[i] += 1;
        self.seq[i] - 1
    }

    fn gov(&mut self, i: usize, c: GovCall) -> PreparedTx {
        let s = self.next(i);
        gov(self.users[i], s, c)
    }

    fn stake(&mut self, i: usize, c: StakeCall) -> PreparedTx {
        let s = self.next(i);
        stake(self.users[i], s, c)
    }

    fn transfer(&mut self, i: usize, to: usize, amount: u128) -> PreparedTx {
        let s = self.next(i);
        transfer(self.users[i], s, self.users[to], amount)
    }

    /// A proposal by user `i` with `deposit`; returns (tx, id).
    fn propose(&mut self, i: usize, kind: ProposalKind, deposit: u128) -> (PreparedTx, [u8; 32]) {
        let id = proposal_id(&self.users[i].addr.0, self.seq[i]);
        let tx = self.gov(
            i,
            GovCall::Propose {
                title: "a proposal".into(),
                kind,
                deposit,
            },
        );
        (tx, id)
    }

    fn vote(&mut self, i: usize, id: [u8; 32], option: VoteOption) -> PreparedTx {
        self.gov(
            i,
            GovCall::Vote {
                proposal: id,
                option,
            },
        )
    }
}

fn burn_share(change: u8) -> ProposalKind {
    ProposalKind::ParamChange {
        change: ParamChange {
            fee_burn_percent: Some(change),
            ..Default::default()
        },
        activation_height: 9,
    }
}

/// The burn share of a block's single transfer receipt at index `i`.
fn burned_percent(out: &BlockOutput, i: usize) -> u128 {
    let r = &out.receipts[i];
    assert_eq!(r.status, Status::Success);
    let base = r.gas_used as u128 * out.base_fee_per_gas as u128;
    r.fee_burned * 100 / base
}

fn run_burn_change(shards: usize) -> (Ledger, Vec<BlockOutput>) {
    let mut w = World::new(5);
    let mut outs = Vec::new();
    let mut block = |w: &mut World, txs: &[PreparedTx]| {
        let out = if shards == 1 {
            w.l.block(txs)
        } else {
            w.l.block_sharded(txs, shards)
        };
        outs.push(out.clone());
        out
    };
    // Block 2: an activation height inside the possible voting window is
    // refused; a good proposal enters voting at once (deposit = minimum).
    // User 3 bonds in the voting's first block: too late to count.
    let (early, _) = w.propose(
        0,
        ProposalKind::ParamChange {
            change: ParamChange {
                fee_burn_percent: Some(40),
                ..Default::default()
            },
            activation_height: 8,
        },
        1_000,
    );
    let (tx, id) = w.propose(0, burn_share(40), 1_000);
    let late_bond = w.stake(3, StakeCall::Bond { amount: 5_000 });
    let t = w.transfer(4, 3, 1);
    let out = block(&mut w, &[early, tx, late_bond, t]);
    assert_eq!(outcome(&out, 0), failed(codes::ACTIVATION_TOO_EARLY));
    assert_eq!(outcome(&out, 1), OK);
    assert_eq!(outcome(&out, 2), OK);
    assert_eq!(burned_percent(&out, 3), 50);
    assert_eq!(status_of(&w.l, &id), "voting");
    // Block 3: yes 600, no 300; the late bonder has no weight; user 0
    // unbonds after voting and keeps its snapshot weight.
    let txs = [
        w.vote(0, id, VoteOption::Yes),
        w.vote(1, id, VoteOption::No),
        w.vote(3, id, VoteOption::Yes),
        w.stake(0, StakeCall::Unbond { amount: 600 }),
    ];
    let out = block(&mut w, &txs);
    assert_eq!(outcome(&out, 0), OK);
    assert_eq!(outcome(&out, 1), OK);
    assert_eq!(outcome(&out, 2), failed(codes::NO_STAKE));
    assert_eq!(outcome(&out, 3), OK);
    // Block 4 (the last voting block): user 1 changes its mind; user 2 yes.
    let txs = [
        w.vote(1, id, VoteOption::Abstain),
        w.vote(2, id, VoteOption::Yes),
    ];
    let out = block(&mut w, &txs);
    assert_eq!(outcome(&out, 0), OK);
    assert_eq!(outcome(&out, 1), OK);
    let p =
        w.l.registry
            .query(&w.l.state, "governance", "proposal", &[hex::encode(id)])
            .unwrap();
    assert_eq!(p["status"], "passed", "{p}");
    assert_eq!(p["tally"]["yes"], "700");
    assert_eq!(p["tally"]["abstain"], "300");
    assert_eq!(p["tally"]["no"], "0");
    assert_eq!(p["bonded_at_start"], "1000");
    // The deposit came back to the proposer in the deciding block.
    assert!(out
        .block_events
        .iter()
        .any(|e| e.cause == codes::DEPOSIT_REFUND && e.credit && e.account == w.users[0].addr.0));
    assert_eq!(
        w.l.native(plume_crypto::ed25519::Address(deposit_escrow())),
        0
    );
    // Block 5: a late vote is refused. Blocks 5..=8 still burn 50 %.
    let txs = [w.vote(2, id, VoteOption::No), w.transfer(4, 3, 1)];
    let out = block(&mut w, &txs);
    assert_eq!(outcome(&out, 0), failed(codes::NOT_IN_VOTING));
    assert_eq!(burned_percent(&out, 1), 50);
    for _ in 6..=8 {
        let t = w.transfer(4, 3, 1);
        let out = block(&mut w, &[t]);
        assert_eq!(burned_percent(&out, 0), 50);
    }
    assert_eq!(
        effective_params(&w.l.state, &w.l.params, 8)
            .unwrap()
            .fee_burn_percent,
        50
    );
    assert_eq!(
        effective_params(&w.l.state, &w.l.params, 9)
            .unwrap()
            .fee_burn_percent,
        40
    );
    // Block 9, the activation height: 40 % from here on.
    for _ in 9..=10 {
        let t = w.transfer(4, 3, 1);
        let out = block(&mut w, &[t]);
        assert_eq!(burned_percent(&out, 0), 40);
    }
    // Supply accounting still adds up.
    assert_eq!(w.l.meta().total_supply(), w.l.native_sum());
    (w.l, outs)
}

#[test]
fn a_burn_share_change_passes_with_quorum_and_threshold_and_applies_exactly_at_its_height() {
    let (seq, seq_outs) = run_burn_change(1);
    let (par, par_outs) = run_burn_change(4);
    assert_eq!(seq.root(), par.root());
    for (a, b) in seq_outs.iter().zip(&par_outs) {
        assert_eq!(a.receipts, b.receipts);
        assert_eq!(a.block_events, b.block_events);
    }
}

#[test]
fn below_quorum_and_expired_proposals_burn_their_deposits_late_deposits_are_refused() {
    let mut w = World::new(4);
    let burned_before = w.l.meta().burned;
    // Block 2: a proposal in voting (deposit 1,000) and one that never
    // reaches the minimum (deposit 400, then 100 more).
    let (a, low_quorum) = w.propose(0, ProposalKind::Text { text: "t".into() }, 1_000);
    let (b, never) = w.propose(1, ProposalKind::Text { text: "u".into() }, 400);
    let out = w.l.block(&[a, b]);
    assert_eq!((outcome(&out, 0), outcome(&out, 1)), (OK, OK));
    assert_eq!(status_of(&w.l, &never), "deposit_period");
    let mut outs = vec![out];
    let txs = [
        w.vote(2, low_quorum, VoteOption::Yes), // 100 of 1,000 bonded: 10 %
        w.gov(
            3,
            GovCall::Deposit {
                proposal: never,
                amount: 100,
            },
        ),
        w.vote(0, never, VoteOption::Yes),
    ];
    let out = w.l.block(&txs);
    assert_eq!(outcome(&out, 0), OK);
    assert_eq!(outcome(&out, 1), OK);
    assert_eq!(outcome(&out, 2), failed(codes::NOT_IN_VOTING));
    // Blocks 4..=6: voting ends at 4, the deposit period at 6.
    let fees_burned = |outs: &[BlockOutput]| outs.iter().map(|o| o.fees.burned).sum::<u128>();
    outs.push(out);
    for _ in 4..=6 {
        outs.push(w.l.block(&[]));
    }
    assert_eq!(status_of(&w.l, &low_quorum), "rejected_no_quorum");
    assert_eq!(status_of(&w.l, &never), "expired");
    // 1,000 + 500 burned on top of the fees' burn.
    assert_eq!(
        w.l.meta().burned - burned_before,
        fees_burned(&outs) + 1_500
    );
    assert!(outs
        .iter()
        .flat_map(|o| &o.block_events)
        .any(|e| e.cause == codes::DEPOSIT_BURN && e.amount == 1_000));
    assert!(outs
        .iter()
        .flat_map(|o| &o.block_events)
        .any(|e| e.cause == codes::DEPOSIT_BURN && e.amount == 500));
    assert_eq!(
        w.l.native(plume_crypto::ed25519::Address(deposit_escrow())),
        0
    );
    assert_eq!(w.l.meta().total_supply(), w.l.native_sum());
    // Deposits to a decided proposal, and votes on an unknown one.
    let txs = [
        w.gov(
            3,
            GovCall::Deposit {
                proposal: never,
                amount: 100,
            },
        ),
        w.vote(0, [7; 32], VoteOption::Yes),
    ];
    let out = w.l.block(&txs);
    assert_eq!(outcome(&out, 0), failed(codes::PROPOSAL_CLOSED));
    assert_eq!(outcome(&out, 1), failed(codes::UNKNOWN_PROPOSAL));
}

#[test]
fn treasury_spends_pay_when_passed_vetoes_burn_and_unbonded_stake_withdraws_after_its_period() {
    let mut w = World::new(5);
    let grantee = w.users[4].addr;
    let before = w.l.native(grantee);
    let (a, grant) = w.propose(
        0,
        ProposalKind::TreasurySpend {
            to: grantee.0,
            amount: 5_000,
        },
        1_000,
    );
    let (b, vetoed) = w.propose(1, ProposalKind::Text { text: "v".into() }, 1_000);
    let (c, too_big) = w.propose(
        2,
        ProposalKind::TreasurySpend {
            to: grantee.0,
            amount: 1_000_000_000,
        },
        1_000,
    );
    let out = w.l.block(&[a, b, c]);
    assert_eq!(
        (outcome(&out, 0), outcome(&out, 1), outcome(&out, 2)),
        (OK, OK, OK)
    );
    let txs = [
        w.vote(0, grant, VoteOption::Yes),
        w.vote(0, vetoed, VoteOption::Yes),
        w.vote(1, vetoed, VoteOption::Veto),
        w.vote(0, too_big, VoteOption::Yes),
        w.vote(2, vetoed, VoteOption::Veto), // veto 400 of 1,000: above 33 %
        w.stake(2, StakeCall::Unbond { amount: 100 }),
        w.stake(2, StakeCall::Unbond { amount: 1 }),
    ];
    let out = w.l.block(&txs);
    for i in 0..5 {
        assert_eq!(outcome(&out, i), OK, "tx {i}");
    }
    assert_eq!(outcome(&out, 5), OK);
    assert_eq!(outcome(&out, 6), failed(codes::BOND_TOO_SMALL));
    let treasury = w.l.params.treasury;
    let treasury_before = w.l.native(treasury);
    let out = w.l.block(&[]); // block 4: voting ends
    assert_eq!(status_of(&w.l, &grant), "passed");
    assert_eq!(status_of(&w.l, &vetoed), "vetoed");
    assert_eq!(status_of(&w.l, &too_big), "passed_not_executed");
    assert_eq!(w.l.native(grantee), before + 5_000);
    // The treasury paid 5,000 and earned this block's fee share (none).
    assert_eq!(w.l.native(treasury), treasury_before - 5_000);
    assert!(out
        .block_events
        .iter()
        .any(|e| e.cause == codes::TREASURY_SPEND && e.credit && e.account == grantee.0));
    w.l.accounts.insert(grantee);
    assert_eq!(w.l.meta().total_supply(), w.l.native_sum());
    // Unbonded in block 3 with a 4-block period: withdrawable from 7.
    let early = w.stake(2, StakeCall::Withdraw);
    let out = w.l.block(&[early]); // 5
    assert_eq!(outcome(&out, 0), failed(codes::NOTHING_TO_WITHDRAW));
    w.l.block(&[]); // 6
    let user2 = w.users[2].addr;
    let before = w.l.native(user2);
    let t = w.stake(2, StakeCall::Withdraw);
    let out = w.l.block(&[t]); // 7
    assert_eq!(outcome(&out, 0), OK);
    let fee = out.receipts[0].fee_paid;
    assert_eq!(w.l.native(user2), before + 100 - fee);
    assert_eq!(
        w.l.native(plume_crypto::ed25519::Address(stake_escrow())),
        900
    );
    let s =
        w.l.registry
            .query(&w.l.state, "stake", "total", &[])
            .unwrap();
    assert_eq!(s["bonded"], "900");
    // Bonding needs the balance.
    let poor = who(99);
    let t = stake(poor, 0, StakeCall::Bond { amount: 1 });
    let out = w.l.block(&[t]);
    assert_eq!(out.receipts[0].status, Status::Rejected);
    assert_eq!(w.l.balance(poor.addr, &NATIVE_ASSET), 0);
}

/// Institutions A (two accounts) and B share 50 % of what the fee pool
/// receives per 10-block epoch, by the fees their transactions paid: A
/// pays 60 % of the epoch's fees and gets floor(60 % of the pool); its
/// transfer between its own two accounts does not count.
#[test]
fn an_institution_with_60_percent_of_the_fees_gets_60_percent_of_the_pool_and_self_dealing_is_excluded(
) {
    use plume_compliance::{GenesisCompliance, GenesisIdentity, KycStatus, Provider};
    let (a1, a2, b1, c, voter) = (who(1), who(2), who(3), who(4), who(5));
    let (ia, ib) = ([0xa1; 32], [0xb1; 32]);
    let (pay_a, pay_b) = (who(50).addr, who(51).addr);
    let provider = [9u8; 32];
    let ident = |identity: [u8; 32], addrs: Vec<[u8; 32]>| GenesisIdentity {
        identity,
        addresses: addrs,
        provider,
        status: KycStatus::Verified,
        risk_tier: 1,
        jurisdiction: *b"CH",
        accreditation: 0,
        expiry_height: 1_000_000,
        expires_at_ms: None,
    };
    let registry = GenesisCompliance {
        admin: voter.addr.0,
        list_keeper: voter.addr.0,
        providers: vec![Provider {
            key: provider,
            name: "kyc".into(),
            revoked_from: None,
        }],
        rules: Vec::new(),
        deny: Vec::new(),
        exempt: Vec::new(),
        identities: vec![
            ident(ia, vec![a1.addr.0, a2.addr.0]),
            ident(ib, vec![b1.addr.0]),
        ],
    };
    let allocs: Vec<_> = [a1, a2, b1, c, voter]
        .iter()
        .map(|w| (w.addr, RICH))
        .collect();
    let mut l = Ledger::with_compliance(gov_params(), &allocs, Some(&registry));
    // Blocks 1-4: the program passes (voter bonds, proposes, votes).
    l.block(&[stake(voter, 0, StakeCall::Bond { amount: 1_000 })]);
    let id = proposal_id(&voter.addr.0, 1);
    let kind = ProposalKind::RevenueProgram {
        share_percent: 50,
        epoch_blocks: 10,
        institutions: vec![(ia, pay_a.0), (ib, pay_b.0)],
    };
    let out = l.block(&[gov(
        voter,
        1,
        GovCall::Propose {
            title: "revenue".into(),
            kind,
            deposit: 1_000,
        },
    )]);
    assert_eq!(outcome(&out, 0), OK);
    l.block(&[gov(
        voter,
        2,
        GovCall::Vote {
            proposal: id,
            option: VoteOption::Yes,
        },
    )]);
    l.block(&[]); // 4: decided
    assert_eq!(status_of(&l, &id), "passed");
    // Blocks 5-10 close the first epoch (nothing counted); block 11 holds
    // the second epoch's only transactions, five equal-fee transfers.
    while l.height < 10 {
        l.block(&[]);
    }
    let txs = [
        transfer(a1, 0, c, 10),
        transfer(a1, 1, c, 10),
        transfer(a2, 0, c, 10),
        transfer(a1, 2, a2, 10), // self-dealing: not counted for A
        transfer(b1, 0, c, 10),
    ];
    let out = l.block_sharded(&txs, 3);
    let fees: Vec<u128> = out.receipts.iter().map(|r| r.fee_paid).collect();
    assert!(fees.iter().all(|f| *f == fees[0] && *f > 0), "{fees:?}");
    let pool = out.fees.pool;
    assert!(pool > 1_000, "pool {pool}");
    let v = l
        .registry
        .query(&l.state, "governance", "revenue", &[])
        .unwrap();
    assert_eq!(v["epoch"]["total_fees"], (5 * fees[0]).to_string(), "{v}");
    while l.height < 19 {
        l.block(&[]);
    }
    let out = l.block(&[]); // 20: the epoch ends
    let share = pool / 2;
    // A paid 3 of the 5 counted-or-not fees (its self-dealing one is in
    // the total, not in its count), B 1.
    assert!(share * 3 / 5 > 0);
    assert_eq!(l.native(pay_a), share * 3 / 5);
    assert_eq!(l.native(pay_b), share / 5);
    let dust = share * 4 / 5 - share * 3 / 5 - share / 5;
    assert!(out
        .block_events
        .iter()
        .any(|e| e.cause == codes::REVENUE_SHARE && e.account == pay_a.0 && e.credit));
    let dust_paid: u128 = out
        .block_events
        .iter()
        .filter(|e| e.cause == codes::REVENUE_DUST && e.credit)
        .map(|e| e.amount)
        .sum();
    assert_eq!(dust_paid, dust);
    l.accounts.insert(pay_a);
    l.accounts.insert(pay_b);
    assert_eq!(l.meta().total_supply(), l.native_sum());
    // A new epoch starts from zero.
    let v = l
        .registry
        .query(&l.state, "governance", "revenue", &[])
        .unwrap();
    assert_eq!(v["epoch"]["total_fees"], "0", "{v}");
}

/// Milestone grants (reserve, tranches by their own votes, cancel), a
/// governed block gas limit, and the supply invariant after every block
/// with stake, deposits, grants and vesting all holding PLUME in escrows.
#[test]
fn milestone_grants_pay_tranche_by_tranche_the_gas_limit_is_governed_and_supply_holds_every_block()
{
    use plume_protocol::governance::grant_escrow;
    let mut w = World::new(5);
    for a in [stake_escrow(), deposit_escrow(), grant_escrow()] {
        w.l.accounts.insert(plume_crypto::ed25519::Address(a));
    }
    let grantee = w.users[4].addr;
    let treasury = w.l.params.treasury;
    let supply_ok = |l: &Ledger| assert_eq!(l.meta().total_supply(), l.native_sum());
    let yes = |w: &mut World, ids: &[[u8; 32]]| -> Vec<PreparedTx> {
        let mut v = Vec::new();
        for id in ids {
            v.push(w.vote(0, *id, VoteOption::Yes));
            v.push(w.vote(1, *id, VoteOption::Yes));
        }
        v
    };
    // Block 2: a grant of three tranches; the block gas limit down to
    // 200,000 (target 100,000) from height 9.
    let (a, grant) = w.propose(
        0,
        ProposalKind::MilestoneGrant {
            to: grantee.0,
            tranches: vec![1_000, 2_000, 3_000],
        },
        1_000,
    );
    let (b, limit) = w.propose(
        1,
        ProposalKind::ParamChange {
            change: ParamChange {
                block_gas_limit: Some(200_000),
                block_gas_target: Some(100_000),
                block_txs_limit: Some(11),
                ..Default::default()
            },
            activation_height: 9,
        },
        1_000,
    );
    let out = w.l.block(&[a, b]);
    assert_eq!((outcome(&out, 0), outcome(&out, 1)), (OK, OK));
    supply_ok(&w.l);
    let txs = yes(&mut w, &[grant, limit]);
    w.l.block(&txs);
    supply_ok(&w.l);
    let before = w.l.native(treasury);
    w.l.block(&[]); // 4: both pass; 6,000 reserved
    assert_eq!(status_of(&w.l, &grant), "passed");
    assert_eq!(status_of(&w.l, &limit), "passed");
    assert_eq!(w.l.native(treasury), before - 6_000);
    assert_eq!(
        w.l.native(plume_crypto::ed25519::Address(grant_escrow())),
        6_000
    );
    supply_ok(&w.l);
    // Blocks 5-7: release the first tranche by its own vote.
    let (r1, release1) = w.propose(2, ProposalKind::ReleaseTranche { grant }, 1_000);
    w.l.block(&[r1]);
    let txs = yes(&mut w, &[release1]);
    w.l.block(&txs);
    let g0 = w.l.native(grantee);
    w.l.block(&[]); // 7
    assert_eq!(status_of(&w.l, &release1), "passed");
    assert_eq!(w.l.native(grantee), g0 + 1_000);
    w.l.accounts.insert(grantee);
    supply_ok(&w.l);
    // Block 8: from height 9 the gas limit is 200,000: a transaction
    // asking for more is refused by precheck and by the block.
    let p9 = effective_params(&w.l.state, &w.l.params, 9).unwrap();
    assert_eq!(
        (p9.block_gas_limit, p9.block_gas_target),
        (200_000, 100_000)
    );
    assert_eq!(p9.block_txs_limit, 11);
    w.l.block(&[]); // 8
    let big = w.transfer(3, 2, 5);
    assert!(matches!(
        plume_execution::precheck(&w.l.state, &w.l.params, &w.l.registry, &big),
        Err(plume_execution::PrecheckError::Refused(
            Reason::BlockGasLimit
        ))
    ));
    w.seq[3] -= 1; // refused: its sequence is still free
                   // Twelve 20,000-gas transfers: ten fit the block's 200,000, the last
                   // two are rejected for the block gas limit.
    let txs: Vec<_> = (0..12)
        .map(|_| {
            let s = w.next(3);
            let mut b = body(
                &[w.users[3]],
                s,
                EncodedCall::from(plume_protocol::calls::Transfer {
                    asset: NATIVE_ASSET,
                    to: w.users[2].addr.0,
                    amount: 5,
                }),
            );
            b.gas_limit = 100_000;
            prep(b)
        })
        .collect();
    let out = w.l.block(&txs); // 9
    w.seq[3] -= 2;
    assert!(out.gas_used <= 200_000, "{}", out.gas_used);
    for (i, r) in out.receipts.iter().enumerate() {
        if i < 10 {
            assert_eq!((r.status, r.reason), OK, "tx {i}");
        } else {
            assert_eq!(
                (r.status, r.reason),
                (Status::Rejected, Reason::BlockGasLimit)
            );
        }
    }
    supply_ok(&w.l);
    // Blocks 10-12: cancel: the two unpaid tranches go back; a release
    // after that pays nothing.
    let (c, cancel) = w.propose(2, ProposalKind::CancelGrant { grant }, 1_000);
    w.l.block(&[c]);
    let txs = yes(&mut w, &[cancel]);
    w.l.block(&txs);
    let t0 = w.l.native(treasury);
    let out = w.l.block(&[]); // 12
    assert_eq!(status_of(&w.l, &cancel), "passed");
    assert_eq!(w.l.native(treasury), t0 + 5_000 + out.fees.treasury);
    assert_eq!(
        w.l.native(plume_crypto::ed25519::Address(grant_escrow())),
        0
    );
    supply_ok(&w.l);
    let g =
        w.l.registry
            .query(&w.l.state, "governance", "grant", &[hex::encode(grant)])
            .unwrap();
    assert_eq!(
        (g["paid"].as_u64(), g["cancelled"].as_bool()),
        (Some(1), Some(true))
    );
}

/// Token holders govern the compliance engine when its admin is the
/// governance account: a passed `Execute` proposal adds an address to the
/// deny list, and from the next block a transfer to it fails SANCTIONED; a
/// call the governance account may not make passes without effect.
#[test]
fn a_passed_execute_proposal_runs_a_compliance_call_as_the_governance_account() {
    use plume_compliance::{ComplianceCall, GenesisCompliance, ListKind, Rule, RuleEntry};
    use plume_protocol::governance::governance_account;
    let governance = governance_account();
    let registry = GenesisCompliance {
        admin: governance,
        list_keeper: governance,
        providers: Vec::new(),
        rules: vec![RuleEntry {
            id: 1,
            rule: Rule::Sanctions,
        }],
        deny: Vec::new(),
        exempt: Vec::new(),
        identities: Vec::new(),
    };
    let users: Vec<Who> = (1..=4).map(who).collect();
    let victim = users[3];
    let mut allocs: Vec<_> = users.iter().map(|u| (u.addr, RICH)).collect();
    let p = gov_params();
    allocs.push((p.treasury, 10_000));
    let mut l = Ledger::with_compliance(p, &allocs, Some(&registry));
    l.block(&[stake(users[0], 0, StakeCall::Bond { amount: 1_000 })]);
    let list = ComplianceCall::UpdateList {
        list: ListKind::Deny,
        add: vec![victim.addr.0],
        remove: Vec::new(),
    };
    let exec = |module: u16, call: Vec<u8>| ProposalKind::Execute { module, call };
    let good = proposal_id(&users[0].addr.0, 1);
    let bad = proposal_id(&users[0].addr.0, 2);
    let out = l.block(&[
        gov(
            users[0],
            1,
            GovCall::Propose {
                title: "deny".into(),
                kind: exec(plume_compliance::MODULE_COMPLIANCE, list.encode()),
                deposit: 1_000,
            },
        ),
        gov(
            users[0],
            2,
            GovCall::Propose {
                title: "withdraw as governance".into(),
                kind: exec(MODULE_STAKE, StakeCall::Withdraw.encode()),
                deposit: 1_000,
            },
        ),
    ]);
    assert_eq!((outcome(&out, 0), outcome(&out, 1)), (OK, OK));
    // Before: the victim can be paid.
    let t = transfer(users[1], 0, victim, 5);
    let vote = |id, seq| {
        gov(
            users[0],
            seq,
            GovCall::Vote {
                proposal: id,
                option: VoteOption::Yes,
            },
        )
    };
    let out = l.block(&[t, vote(good, 3), vote(bad, 4)]);
    assert_eq!(outcome(&out, 0), OK);
    l.block(&[]); // 4: decided
    assert_eq!(status_of(&l, &good), "passed");
    assert_eq!(status_of(&l, &bad), "passed_not_executed");
    let out = l.block(&[transfer(users[1], 1, victim, 5)]);
    assert_eq!(
        outcome(&out, 0),
        (Status::Failed, plume_compliance::codes::SANCTIONED)
    );
    assert_eq!(l.meta().total_supply(), l.native_sum());
}

/// A governed transaction limit below what consensus carries rejects the
/// rest of a block with `BlockTxLimit` (no fee, no sequence used), the same
/// on any shard count.
#[test]
fn the_governed_transaction_limit_rejects_the_tail_of_a_block() {
    let mut p = params();
    p.block_txs_limit = 3;
    let users: Vec<Who> = (1..=5).map(who).collect();
    let allocs: Vec<_> = users.iter().map(|u| (u.addr, RICH)).collect();
    let mut seq = Ledger::with_params(p.clone(), &allocs);
    let mut par = Ledger::with_params(p, &allocs);
    let txs: Vec<_> = (0..5)
        .map(|i| transfer(users[i], 0, users[(i + 1) % 5], 1))
        .collect();
    let a = seq.block(&txs);
    let b = par.block_sharded(&txs, 3);
    assert_eq!(a.receipts, b.receipts);
    assert_eq!(seq.root(), par.root());
    for (i, r) in a.receipts.iter().enumerate() {
        if i < 3 {
            assert_eq!((r.status, r.reason), OK, "tx {i}");
        } else {
            assert_eq!(
                (r.status, r.reason),
                (Status::Rejected, Reason::BlockTxLimit)
            );
            assert_eq!(seq.sequence(users[i].addr), 0);
        }
    }
}
