//! The compliance engine through the executor: interception of every
//! value-moving call with its reason code, the registry's transactions,
//! H+1 effectiveness, and identical results for any shard count.

mod common;

use common::*;
use plume_compliance::{
    codes, Claim, ComplianceCall, GenesisCompliance, GenesisIdentity, KycStatus, ListKind,
    Provider, Rule, RuleEntry, MODULE_COMPLIANCE,
};
use plume_crypto::ed25519::SigningKey;
use plume_execution::modules::compliance::{read_identity_of, read_policy, read_verdicts};
use plume_execution::{precheck, PrecheckError, PreparedTx, Reason, Status};
use plume_protocol::calls::{EncodedCall, Leg};
use plume_protocol::tx::NATIVE_ASSET;

const RICH: u128 = 1_000_000_000_000;

fn call(c: ComplianceCall) -> EncodedCall {
    EncodedCall {
        module: MODULE_COMPLIANCE,
        bytes: c.encode(),
    }
}

fn ctx_call(signer: Who, seq: u64, c: ComplianceCall) -> PreparedTx {
    prep(body(&[signer], seq, call(c)))
}

struct World {
    l: Ledger,
    admin: Who,
    users: Vec<Who>,
    provider: SigningKey,
}

fn provider_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn genesis(admin: Who, users: &[Who], rules: Vec<Rule>, kyc_expiry: u64) -> GenesisCompliance {
    let p = provider_key().public_key().to_bytes();
    GenesisCompliance {
        admin: admin.addr.0,
        list_keeper: admin.addr.0,
        providers: vec![Provider {
            key: p,
            name: "kyc-co".into(),
            revoked_from: None,
        }],
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| RuleEntry {
                id: i as u16 + 1,
                rule,
            })
            .collect(),
        deny: Vec::new(),
        exempt: Vec::new(),
        identities: users
            .iter()
            .enumerate()
            .map(|(i, u)| GenesisIdentity {
                identity: [i as u8 + 1; 32],
                addresses: vec![u.addr.0],
                provider: p,
                status: KycStatus::Verified,
                risk_tier: 1,
                jurisdiction: *b"DE",
                accreditation: 0,
                expiry_height: kyc_expiry,
                expires_at_ms: None,
            })
            .collect(),
    }
}

fn world(rules: Vec<Rule>, kyc_expiry: u64, kyc_users: usize) -> World {
    let admin = who(100);
    let users: Vec<Who> = (0..6).map(who).collect();
    let mut allocs = vec![(admin.addr, RICH)];
    allocs.extend(users.iter().map(|u| (u.addr, RICH)));
    let g = genesis(admin, &users[..kyc_users], rules, kyc_expiry);
    World {
        l: Ledger::with_compliance(params(), &allocs, Some(&g)),
        admin,
        users,
        provider: provider_key(),
    }
}

fn claim(w: &World, chain: &str, identity: [u8; 32], addr: [u8; 32], expiry: u64) -> Claim {
    Claim {
        chain_id: chain.into(),
        identity,
        addresses: vec![addr],
        provider: w.provider.public_key().to_bytes(),
        status: KycStatus::Verified,
        risk_tier: 0,
        jurisdiction: *b"FR",
        accreditation: 0,
        issued_height: 1,
        expiry_height: expiry,
        expires_at_ms: None,
    }
}

fn signed(w: &World, c: Claim) -> ComplianceCall {
    let signature = w.provider.sign(&c.signing_hash().0).to_bytes();
    ComplianceCall::Attest {
        claim: c,
        signature,
    }
}

fn status(out: &plume_execution::BlockOutput, i: usize) -> (Status, Reason) {
    (out.receipts[i].status, out.receipts[i].reason)
}

#[test]
fn sanctioned_transfer_fails_with_its_code_fee_charged_nothing_moved_list_updates_apply_next_block()
{
    let mut w = world(vec![Rule::Sanctions], 1_000, 0);
    let (a, x) = (w.users[0], w.users[1]);
    // Block 1: the keeper lists x; a transfer to x in the same block still
    // passes (the list update applies from the next block).
    let out = w.l.block(&[
        ctx_call(
            w.admin,
            0,
            ComplianceCall::UpdateList {
                list: ListKind::Deny,
                add: vec![x.addr.0],
                remove: vec![],
            },
        ),
        transfer(a, 0, x, 10),
    ]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
    assert_eq!(status(&out, 1), (Status::Success, Reason::Ok));
    let before_a = w.l.native(a.addr);
    let before_x = w.l.native(x.addr);
    // Block 2: stopped.
    let out = w.l.block(&[transfer(a, 1, x, 10)]);
    assert_eq!(status(&out, 0), (Status::Failed, codes::SANCTIONED));
    let fee = out.receipts[0].fee_paid;
    assert!(fee > 0);
    assert_eq!(w.l.native(a.addr), before_a - fee);
    assert_eq!(w.l.native(x.addr), before_x);
    assert_eq!(w.l.sequence(a.addr), 2);
    assert_eq!(out.compliance.stopped, 1);
    // The block's verdict record (in state, under the root) names the rule.
    let v = read_verdicts(&w.l.state, 2).unwrap().unwrap();
    assert_eq!(v.policy_version, 1);
    assert_eq!(v.entries.len(), 1);
    assert_eq!(v.entries[0].rule_id, 1);
    assert_eq!(v.entries[0].code, codes::SANCTIONED.0);
    assert_eq!(v.entries[0].tx, out.receipts[0].tx_hash);
    // Only the keeper may change the list.
    let out = w.l.block(&[ctx_call(
        a,
        2,
        ComplianceCall::UpdateList {
            list: ListKind::Deny,
            add: vec![],
            remove: vec![x.addr.0],
        },
    )]);
    assert_eq!(status(&out, 0), (Status::Failed, codes::NOT_AUTHORITY));
}

#[test]
fn kyc_expiry_is_exact_revoked_providers_stop_counting_and_foreign_claims_are_refused() {
    let mut w = world(vec![Rule::Kyc { receivers: true }], 4, 2);
    let (a, b, c) = (w.users[0], w.users[1], w.users[2]);
    // Heights 1..3 pass, 4 fails with the expiry code.
    for h in 1..=3u64 {
        let out = w.l.block(&[transfer(a, h - 1, b, 1)]);
        assert_eq!(status(&out, 0), (Status::Success, Reason::Ok), "height {h}");
    }
    let out = w.l.block(&[transfer(a, 3, b, 1)]);
    assert_eq!(status(&out, 0), (Status::Failed, codes::KYC_EXPIRED));

    // c has no identity: transfers to it fail until a provider's claim is
    // recorded (by anyone: the provider's signature is the authority).
    let out = w.l.block(&[transfer(b, 0, c, 1)]);
    assert_eq!(status(&out, 0), (Status::Failed, codes::KYC_EXPIRED));
    let ok = claim(&w, CHAIN, [9; 32], c.addr.0, 1_000);
    let mut foreign = ok.clone();
    foreign.chain_id = "other-chain".into();
    let mut forged = signed(&w, ok.clone());
    if let ComplianceCall::Attest { signature, .. } = &mut forged {
        signature[0] ^= 1;
    }
    let out = w.l.block(&[
        ctx_call(c, 0, signed(&w, foreign)),
        ctx_call(c, 1, forged),
        ctx_call(c, 2, signed(&w, ok.clone())),
    ]);
    assert_eq!(status(&out, 0), (Status::Failed, codes::CLAIM_WRONG_CHAIN));
    assert_eq!(
        status(&out, 1),
        (Status::Failed, codes::CLAIM_BAD_SIGNATURE)
    );
    assert_eq!(status(&out, 2), (Status::Success, Reason::Ok));
    let (id, rec) = read_identity_of(&w.l.state, &c.addr.0).unwrap().unwrap();
    assert_eq!(id, [9; 32]);
    assert_eq!(&rec.attestations[0].jurisdiction, b"FR");
    // Re-attest a (expired) so it can send again.
    let renew = claim(&w, CHAIN, [1; 32], a.addr.0, 1_000);
    let out = w.l.block(&[ctx_call(a, 4, signed(&w, renew))]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
    let out = w.l.block(&[transfer(a, 5, c, 1)]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));

    // The admin revokes the provider at height H: from H+1 its
    // attestations do not count.
    let p = w.provider.public_key().to_bytes();
    let h = w.l.height + 1;
    let out = w.l.block(&[
        ctx_call(
            w.admin,
            0,
            ComplianceCall::RevokeProvider {
                key: p,
                from_height: 0,
            },
        ),
        transfer(a, 6, c, 1),
    ]);
    assert_eq!(status(&out, 1), (Status::Success, Reason::Ok));
    let policy = read_policy(&w.l.state).unwrap().unwrap();
    assert_eq!(policy.version, 2);
    assert_eq!(policy.providers[0].revoked_from, Some(h + 1));
    let out = w.l.block(&[transfer(a, 7, c, 1)]);
    assert_eq!(
        status(&out, 0),
        (Status::Failed, codes::KYC_PROVIDER_REVOKED)
    );
    // A revoked provider's new claims are refused too.
    let again = claim(&w, CHAIN, [9; 32], c.addr.0, 2_000);
    let out = w.l.block(&[ctx_call(c, 3, signed(&w, again))]);
    assert_eq!(status(&out, 0), (Status::Failed, codes::UNKNOWN_PROVIDER));
}

#[test]
fn a_revoked_attestation_cannot_be_replayed() {
    let mut w = world(vec![Rule::Kyc { receivers: false }], 1_000, 0);
    let a = w.users[0];
    let b = w.users[1];
    let pk = w.provider.public_key().to_bytes();
    let provider_who = Who {
        pk,
        addr: plume_protocol::tx::address_of_key(&pk),
    };
    let c = claim(&w, CHAIN, [5; 32], a.addr.0, 1_000);
    let out = w.l.block(&[ctx_call(a, 0, signed(&w, c.clone()))]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
    // The provider account needs PLUME for its fee.
    let out = w.l.block(&[transfer(b, 0, provider_who, 1_000_000_000)]);
    assert_eq!(status(&out, 0), (Status::Failed, codes::KYC_MISSING));
    let out = w.l.block(&[transfer(a, 1, provider_who, 1_000_000_000)]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
    let out = w.l.block(&[ctx_call(
        provider_who,
        0,
        ComplianceCall::RevokeAttestation {
            identity: [5; 32],
            provider: pk,
        },
    )]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
    let out =
        w.l.block(&[ctx_call(a, 2, signed(&w, c.clone())), transfer(a, 3, b, 1)]);
    assert_eq!(status(&out, 0), (Status::Failed, codes::CLAIM_STALE));
    assert_eq!(status(&out, 1), (Status::Failed, codes::KYC_MISSING));
    // A newer claim from the provider is accepted.
    let mut newer = c;
    newer.issued_height = 2;
    let out = w.l.block(&[ctx_call(a, 4, signed(&w, newer))]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
}

#[test]
fn velocity_third_transfer_of_4000_fails_at_the_boundary() {
    let mut w = world(
        vec![Rule::Velocity {
            asset: NATIVE_ASSET,
            window_blocks: 10,
            window_ms: 0,
            max_amount: 10_000,
            max_count: 0,
            min_tier: 0,
            buckets: 0,
            scope: plume_compliance::Scope::Account,
        }],
        1_000,
        0,
    );
    let (a, b) = (w.users[0], w.users[1]);
    let out = w.l.block(&[
        transfer(a, 0, b, 4_000),
        transfer(a, 1, b, 4_000),
        transfer(a, 2, b, 4_000),
        transfer(a, 3, b, 2_000),
        transfer(a, 4, b, 1),
    ]);
    let got: Vec<_> = (0..5).map(|i| status(&out, i).1).collect();
    assert_eq!(
        got,
        vec![
            Reason::Ok,
            Reason::Ok,
            codes::VELOCITY_AMOUNT,
            Reason::Ok,
            codes::VELOCITY_AMOUNT
        ]
    );
    // Height 10 starts a new window (heights 10..20).
    while w.l.height < 9 {
        w.l.block(&[]);
    }
    let out = w.l.block(&[transfer(a, 5, b, 10_000)]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
}

#[test]
fn travel_rule_needs_an_envelope_commitment_and_the_envelope_is_carried() {
    let mut w = world(
        vec![Rule::TravelRule {
            asset: NATIVE_ASSET,
            threshold: 1_000,
        }],
        1_000,
        0,
    );
    let (a, b) = (w.users[0], w.users[1]);
    // The originator's institution seals the IVMS101 data to the
    // beneficiary institution's X25519 key.
    let bank_b_secret = [0x5b; 32];
    let person = |n: &str| plume_compliance::travel::Person {
        name: n.into(),
        account_number: n.to_lowercase(),
        country: "DE".into(),
        national_id: String::new(),
        address: String::new(),
    };
    let info = plume_compliance::travel::TravelInfo {
        originator: person("Alice"),
        beneficiary: person("Bob"),
        originating_vasp: "Bank A".into(),
        beneficiary_vasp: "Bank B".into(),
    };
    let sealed = plume_compliance::travel::seal(
        &info,
        &plume_compliance::travel::public_key(&bank_b_secret),
        &[0x11; 32],
    );
    let envelope = sealed.as_slice();
    let mut with = body(
        &[a],
        1,
        plume_protocol::calls::Transfer {
            asset: NATIVE_ASSET,
            to: b.addr.0,
            amount: 1_000,
        },
    );
    with.memo = plume_compliance::travel_memo(envelope);
    let out = w.l.block(&[
        transfer(a, 0, b, 1_000),
        prep(with.clone()),
        transfer(a, 2, b, 999),
    ]);
    assert_eq!(status(&out, 0), (Status::Failed, codes::TRAVEL_RULE));
    assert_eq!(status(&out, 1), (Status::Success, Reason::Ok));
    assert_eq!(status(&out, 2), (Status::Success, Reason::Ok));
    // The beneficiary institution recovers the data from the final
    // transaction's memo; another key does not open it.
    let carried = plume_compliance::travel::envelope_of(&with.memo).unwrap();
    assert_eq!(carried, envelope);
    assert_eq!(
        plume_compliance::travel::open(carried, &bank_b_secret).unwrap(),
        info
    );
    assert!(plume_compliance::travel::open(carried, &[0x5c; 32]).is_err());
}

#[test]
fn a_settlement_with_one_restricted_leg_fails_as_a_whole() {
    let mut w = world(vec![Rule::Sanctions], 1_000, 0);
    let (a, b, x) = (w.users[0], w.users[1], w.users[2]);
    w.l.block(&[ctx_call(
        w.admin,
        0,
        ComplianceCall::UpdateList {
            list: ListKind::Deny,
            add: vec![x.addr.0],
            remove: vec![],
        },
    )]);
    let before: Vec<u128> = [a, b, x].iter().map(|u| w.l.native(u.addr)).collect();
    let legs = vec![
        Leg {
            asset: NATIVE_ASSET,
            from: a.addr.0,
            to: b.addr.0,
            amount: 100,
        },
        Leg {
            asset: NATIVE_ASSET,
            from: b.addr.0,
            to: x.addr.0,
            amount: 50,
        },
    ];
    let out = w.l.block(&[prep(body(
        &[a, b],
        0,
        plume_protocol::calls::Settle { legs },
    ))]);
    assert_eq!(status(&out, 0), (Status::Failed, codes::SANCTIONED));
    let fee = out.receipts[0].fee_paid;
    assert_eq!(w.l.native(a.addr), before[0] - fee);
    assert_eq!(w.l.native(b.addr), before[1]);
    assert_eq!(w.l.native(x.addr), before[2]);
}

#[test]
fn rules_set_in_block_h_apply_from_h_plus_1_and_are_versioned() {
    let mut w = world(vec![], 1_000, 0);
    let (a, b) = (w.users[0], w.users[1]);
    let limit = ComplianceCall::SetRules {
        rules: vec![RuleEntry {
            id: 7,
            rule: Rule::SingleLimit {
                asset: NATIVE_ASSET,
                max: 500,
                min_tier: 0,
                scope: plume_compliance::Scope::Account,
            },
        }],
    };
    // Not the admin: refused.
    let out = w.l.block(&[ctx_call(a, 0, limit.clone())]);
    assert_eq!(status(&out, 0), (Status::Failed, codes::NOT_AUTHORITY));
    let out =
        w.l.block(&[ctx_call(w.admin, 0, limit), transfer(a, 1, b, 501)]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
    assert_eq!(status(&out, 1), (Status::Success, Reason::Ok));
    let out = w.l.block(&[transfer(a, 2, b, 501), transfer(a, 3, b, 500)]);
    assert_eq!(status(&out, 0), (Status::Failed, codes::SINGLE_LIMIT));
    assert_eq!(status(&out, 1), (Status::Success, Reason::Ok));
    let p = read_policy(&w.l.state).unwrap().unwrap();
    assert_eq!((p.version, p.effective_height), (2, 3));
    let v1 = plume_execution::modules::compliance::read_policy_version(&w.l.state, 1)
        .unwrap()
        .unwrap();
    assert!(v1.rules.is_empty());
}

#[test]
fn compliance_gas_is_charged_and_precheck_knows_it() {
    let mut plain = world(vec![], 1_000, 0);
    let mut ruled = world(
        vec![
            Rule::Sanctions,
            Rule::SingleLimit {
                asset: NATIVE_ASSET,
                max: 10,
                min_tier: 0,
                scope: plume_compliance::Scope::Account,
            },
        ],
        1_000,
        0,
    );
    let (a, b) = (plain.users[0], plain.users[1]);
    let g0 = plain.l.block(&[transfer(a, 0, b, 1)]).receipts[0].gas_used;
    let g1 = ruled.l.block(&[transfer(a, 0, b, 1)]).receipts[0].gas_used;
    // Two rules, two parties: 2 x 200 + (400 + 100) x 2.
    assert_eq!(g1 - g0, 1_400);
    let mut low = body(
        &[a],
        1,
        plume_protocol::calls::Transfer {
            asset: NATIVE_ASSET,
            to: b.addr.0,
            amount: 1,
        },
    );
    low.gas_limit = g0;
    assert!(precheck(
        &plain.l.state,
        &plain.l.params,
        &plain.l.registry,
        &prep(low.clone())
    )
    .is_ok());
    assert!(matches!(
        precheck(
            &ruled.l.state,
            &ruled.l.params,
            &ruled.l.registry,
            &prep(low)
        ),
        Err(PrecheckError::Refused(Reason::OutOfGas))
    ));
}

/// A seeded mixed workload (transfers among few accounts, list updates,
/// settlements) under velocity, structuring, sanctions and KYC rules gives
/// the same receipts, verdict records and roots for 1, 2, 3 and 8 shards.
#[test]
fn any_shard_count_gives_identical_receipts_and_roots() {
    use rand::{Rng, SeedableRng};
    let rules = vec![
        Rule::Sanctions,
        Rule::Kyc { receivers: false },
        Rule::Velocity {
            asset: NATIVE_ASSET,
            window_blocks: 3,
            window_ms: 0,
            max_amount: 20_000,
            max_count: 6,
            min_tier: 0,
            buckets: 0,
            scope: plume_compliance::Scope::Account,
        },
        Rule::Structuring {
            asset: NATIVE_ASSET,
            threshold: 5_000,
            margin_bps: 2_000,
            count: 2,
            window_blocks: 4,
            window_ms: 0,
            block: false,
        },
    ];
    let (mut stopped, mut flagged) = (0, 0);
    for seed in 0..12u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut worlds: Vec<World> = (0..4).map(|_| world(rules.clone(), 30, 5)).collect();
        let users = worlds[0].users.clone();
        let admin = worlds[0].admin;
        let mut seqs = vec![0u64; users.len()];
        let mut admin_seq = 0u64;
        for _block in 0..8 {
            let mut txs = Vec::new();
            for _ in 0..rng.gen_range(1..30) {
                let i = rng.gen_range(0..users.len());
                let j = rng.gen_range(0..users.len());
                let amount = *[100u128, 4_200, 4_900, 9_000]
                    .get(rng.gen_range(0..4))
                    .unwrap();
                if rng.gen_bool(0.05) {
                    txs.push(ctx_call(
                        admin,
                        admin_seq,
                        ComplianceCall::UpdateList {
                            list: ListKind::Deny,
                            add: vec![users[j].addr.0],
                            remove: vec![],
                        },
                    ));
                    admin_seq += 1;
                } else if rng.gen_bool(0.1) && i != j {
                    let legs = vec![
                        Leg {
                            asset: NATIVE_ASSET,
                            from: users[i].addr.0,
                            to: users[j].addr.0,
                            amount,
                        },
                        Leg {
                            asset: NATIVE_ASSET,
                            from: users[j].addr.0,
                            to: users[i].addr.0,
                            amount: 7,
                        },
                    ];
                    txs.push(prep(body(
                        &[users[i], users[j]],
                        seqs[i],
                        plume_protocol::calls::Settle { legs },
                    )));
                    seqs[i] += 1;
                } else {
                    txs.push(transfer(users[i], seqs[i], users[j], amount));
                    seqs[i] += 1;
                }
            }
            let outs: Vec<_> = worlds
                .iter_mut()
                .zip([1usize, 2, 3, 8])
                .map(|(w, shards)| w.l.block_sharded(&txs, shards))
                .collect();
            for o in &outs[1..] {
                assert_eq!(o.receipts, outs[0].receipts, "seed {seed}");
                assert_eq!(o.writes, outs[0].writes, "seed {seed}");
            }
            let roots: Vec<_> = worlds.iter().map(|w| w.l.root()).collect();
            assert!(roots.windows(2).all(|r| r[0] == r[1]), "seed {seed}");
            assert!(outs[0].compliance.checked > 0);
            stopped += outs[0].compliance.stopped;
            flagged += outs[0].compliance.flagged;
        }
    }
    // The workload exercises both outcomes (else it proves little).
    assert!(
        stopped > 50 && flagged > 5,
        "stopped {stopped} flagged {flagged}"
    );
}

#[test]
fn kyc_valid_until_a_block_time_and_a_daily_window_follow_the_header_time() {
    // One block an hour: block h has time h x 3,600,000 ms.
    const HOUR: u64 = 3_600_000;
    let mut w = world(
        vec![
            Rule::Kyc { receivers: false },
            Rule::Velocity {
                asset: NATIVE_ASSET,
                window_blocks: 0,
                window_ms: 24 * HOUR,
                max_amount: 10_000,
                max_count: 0,
                min_tier: 0,
                buckets: 0,
                scope: plume_compliance::Scope::Account,
            },
        ],
        u64::MAX, // no height expiry for the genesis identities
        0,
    );
    w.l.block_ms = HOUR;
    let (a, b) = (w.users[0], w.users[1]);
    let pk = w.provider.public_key().to_bytes();
    // a's claim is valid until block time T = 30 h (block 30), whatever
    // the height.
    let mut c = claim(&w, CHAIN, [7; 32], a.addr.0, u64::MAX);
    c.expires_at_ms = Some(30 * HOUR);
    let out = w.l.block(&[ctx_call(a, 0, signed(&w, c))]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
    let rec = read_identity_of(&w.l.state, &a.addr.0).unwrap().unwrap().1;
    assert_eq!(rec.attestations[0].provider, pk);
    assert_eq!(rec.attestations[0].expires_at_ms, Some(30 * HOUR));
    // Day 0 (blocks 2..23): the third 4,000 fails, exactly at the limit
    // passes.
    let out = w.l.block(&[
        transfer(a, 1, b, 4_000),
        transfer(a, 2, b, 4_000),
        transfer(a, 3, b, 4_000),
        transfer(a, 4, b, 2_000),
    ]);
    let got: Vec<_> = (0..4).map(|i| status(&out, i).1).collect();
    assert_eq!(
        got,
        vec![Reason::Ok, Reason::Ok, codes::VELOCITY_AMOUNT, Reason::Ok]
    );
    let out = w.l.block(&[transfer(a, 5, b, 1)]);
    assert_eq!(status(&out, 0), (Status::Failed, codes::VELOCITY_AMOUNT));
    // Block 24 is time 24 h: a new UTC day, a fresh window.
    while w.l.height < 23 {
        w.l.block(&[]);
    }
    let out = w.l.block(&[transfer(a, 6, b, 9_000)]);
    assert_eq!(w.l.ctx().time_ms, 25 * HOUR);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
    // Block 29 (29 h) still before T; block 30 (T) fails with the expiry
    // code.
    while w.l.height < 28 {
        w.l.block(&[]);
    }
    let out = w.l.block(&[transfer(a, 7, b, 1)]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok), "at T - 1 h");
    let out = w.l.block(&[transfer(a, 8, b, 1)]);
    assert_eq!(w.l.height, 30);
    assert_eq!(
        status(&out, 0),
        (Status::Failed, codes::KYC_EXPIRED),
        "at T"
    );
    // A claim with neither a height nor a time expiry is malformed.
    let mut forever = claim(&w, CHAIN, [8; 32], b.addr.0, u64::MAX);
    forever.expires_at_ms = None;
    let out = w.l.block(&[ctx_call(b, 0, signed(&w, forever))]);
    assert_eq!(status(&out, 0).1, Reason::MalformedCall);
}

#[test]
fn institutions_publish_envelope_keys_and_a_sender_finds_the_beneficiarys() {
    let mut w = world(
        vec![Rule::TravelRule {
            asset: NATIVE_ASSET,
            threshold: 1_000,
        }],
        1_000,
        2,
    );
    let (a, b, c) = (w.users[0], w.users[1], w.users[2]);
    let pk = w.provider.public_key().to_bytes();
    let provider_who = Who {
        pk,
        addr: plume_protocol::tx::address_of_key(&pk),
    };
    let bank_secret = [0x6b; 32];
    let bank_pub = plume_compliance::travel::public_key(&bank_secret);
    let set = |who: Who, seq, provider, key| {
        ctx_call(who, seq, ComplianceCall::SetEnvelopeKey { provider, key })
    };
    // Fund the provider's account (above the threshold: a commitment
    // without the envelope bytes).
    let mut fund = body(
        &[a],
        0,
        plume_protocol::calls::Transfer {
            asset: NATIVE_ASSET,
            to: provider_who.addr.0,
            amount: 1_000_000_000,
        },
    );
    fund.memo = [plume_compliance::model::TRAVEL_TAG, &[1; 32]].concat();
    let out = w.l.block(&[prep(fund)]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
    let out = w.l.block(&[
        // Only the provider itself publishes its key...
        set(a, 1, pk, Some(bank_pub)),
        // ...and only a registered provider.
        set(c, 0, c.pk, Some(bank_pub)),
        set(provider_who, 0, pk, Some(bank_pub)),
    ]);
    // (Authorization is checked before inclusion: rejected, no fee.)
    assert_eq!(status(&out, 0), (Status::Rejected, codes::NOT_AUTHORITY));
    assert_eq!(status(&out, 1), (Status::Failed, codes::UNKNOWN_PROVIDER));
    assert_eq!(status(&out, 2), (Status::Success, Reason::Ok));
    let q = |l: &Ledger, id: [u8; 32]| {
        l.registry
            .query(&l.state, "compliance", "envelope-keys", &[hex::encode(id)])
            .unwrap()
    };
    // b's identity is attested by the provider: its key is where an
    // envelope to b is sealed.
    let keys = q(&w.l, b.addr.0);
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(keys[0]["envelope_key"], hex::encode(bank_pub));
    assert_eq!(keys[0]["name"], "kyc-co");
    assert_eq!(keys[0]["attestation"]["status"], "verified");
    assert_eq!(q(&w.l, pk)[0]["envelope_key"], hex::encode(bank_pub));
    // c has no identity: nobody to seal to.
    assert_eq!(q(&w.l, c.addr.0), serde_json::json!([]));
    // The sender seals to the published key; the institution opens it.
    let info = plume_compliance::travel::TravelInfo {
        originator: plume_compliance::travel::Person {
            name: "Alice".into(),
            account_number: "a-1".into(),
            country: "DE".into(),
            national_id: String::new(),
            address: String::new(),
        },
        beneficiary: plume_compliance::travel::Person {
            name: "Bob".into(),
            account_number: "b-1".into(),
            country: "FR".into(),
            national_id: String::new(),
            address: String::new(),
        },
        originating_vasp: "Bank A".into(),
        beneficiary_vasp: "Bank B".into(),
    };
    let published: [u8; 32] = hex::decode(keys[0]["envelope_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let sealed = plume_compliance::travel::seal(&info, &published, &[0x21; 32]);
    let mut with = body(
        &[a],
        1, // the rejected call above consumed no sequence
        plume_protocol::calls::Transfer {
            asset: NATIVE_ASSET,
            to: b.addr.0,
            amount: 5_000,
        },
    );
    with.memo = plume_compliance::travel_memo(&sealed);
    let out = w.l.block(&[prep(with.clone())]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
    let env = plume_compliance::travel::envelope_of(&with.memo).unwrap();
    assert_eq!(
        plume_compliance::travel::open(env, &bank_secret).unwrap(),
        info
    );
    // Withdrawn: the registry no longer names it.
    let out = w.l.block(&[set(provider_who, 1, pk, None)]);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
    assert_eq!(q(&w.l, b.addr.0), serde_json::json!([]));
    // An all-zero key is malformed.
    let out = w.l.block(&[set(provider_who, 2, pk, Some([0; 32]))]);
    assert_eq!(status(&out, 0).1, Reason::MalformedCall);
}

#[test]
fn counters_are_a_fixed_width_record_and_bad_lengths_are_corrupt() {
    use plume_compliance::Counter;
    use plume_execution::modules::compliance::{decode_counters, encode_counters};
    let cs = vec![
        (
            3u16,
            Counter {
                window: plume_compliance::model::TIME_WINDOW | 20_000,
                count: 7,
                amount: u128::MAX - 1,
            },
        ),
        (
            9,
            Counter {
                window: 12,
                count: 0,
                amount: 5,
            },
        ),
    ];
    let b = encode_counters(&cs);
    assert_eq!(b.len(), 60);
    assert_eq!(decode_counters(&b), Some(cs));
    assert_eq!(decode_counters(&b[..59]), None);
    assert_eq!(decode_counters(&[]), Some(Vec::new()));
    // At most one entry per live bucket of every rule in force.
    let most =
        plume_compliance::model::RULES_MAX * usize::from(plume_compliance::model::BUCKETS_MAX);
    assert!(decode_counters(&vec![0u8; 30 * most]).is_some());
    let too_many = vec![0u8; 30 * (most + 1)];
    assert_eq!(decode_counters(&too_many), None);
}

#[test]
fn prepared_and_unprepared_transactions_get_identical_receipts_and_roots() {
    // The admission stage derives the parties' compliance keys ahead
    // (Registry::prepare); a transaction that was not prepared derives
    // them during execution. Same receipts, same root.
    let rules = vec![
        Rule::Sanctions,
        Rule::Velocity {
            asset: NATIVE_ASSET,
            window_blocks: 5,
            window_ms: 0,
            max_amount: 9_000,
            max_count: 0,
            min_tier: 0,
            buckets: 0,
            scope: plume_compliance::Scope::Account,
        },
    ];
    let mut prepared = world(rules.clone(), 1_000, 0);
    let mut plain = world(rules, 1_000, 0);
    let (a, b, c) = (prepared.users[0], prepared.users[1], prepared.users[2]);
    let txs = [
        transfer(a, 0, b, 4_000),
        transfer(a, 1, c, 4_000),
        transfer(a, 2, b, 4_000),
        transfer(b, 0, c, 100),
    ];
    // Prepared by the registry that executes them (another registry's
    // cache is not trusted).
    let reg = prepared.l.registry.clone();
    let with_keys: Vec<PreparedTx> = txs
        .iter()
        .map(|p| {
            let mut p = PreparedTx::new(p.tx.clone());
            reg.prepare(&mut p);
            assert!(!reg.party_keys(&p).is_empty());
            p
        })
        .collect();
    let without: Vec<PreparedTx> = txs.iter().map(|p| PreparedTx::new(p.tx.clone())).collect();
    assert!(reg.party_keys(&without[0]).is_empty());
    assert!(registry().party_keys(&with_keys[0]).is_empty());
    let o1 = prepared.l.block(&with_keys);
    let o2 = plain.l.block(&without);
    assert_eq!(o1.receipts, o2.receipts);
    assert_eq!(status(&o1, 2), (Status::Failed, codes::VELOCITY_AMOUNT));
    assert_eq!(prepared.l.root(), plain.l.root());
}

#[test]
fn identity_scoped_rolling_limits_give_identical_receipts_for_any_shard_count() {
    use plume_compliance::Scope;
    use rand::{Rng, SeedableRng};
    let rules = vec![
        Rule::Velocity {
            asset: NATIVE_ASSET,
            window_blocks: 8,
            window_ms: 0,
            buckets: 4,
            scope: Scope::Identity,
            max_amount: 30_000,
            max_count: 0,
            min_tier: 0,
        },
        Rule::SingleLimit {
            asset: NATIVE_ASSET,
            max: 12_000,
            min_tier: 0,
            scope: Scope::Identity,
        },
    ];
    let admin = who(100);
    let users: Vec<Who> = (0..6).map(who).collect();
    let mut allocs = vec![(admin.addr, RICH)];
    allocs.extend(users.iter().map(|u| (u.addr, RICH)));
    let mut g = genesis(admin, &[], rules, 0);
    // Identity 1 holds users 0-2, identity 2 users 3-4; user 5 has none.
    for (id, members) in [(1u8, 0..3), (2, 3..5)] {
        g.identities.push(GenesisIdentity {
            identity: [id; 32],
            addresses: users[members].iter().map(|u| u.addr.0).collect(),
            provider: provider_key().public_key().to_bytes(),
            status: KycStatus::Verified,
            risk_tier: 1,
            jurisdiction: *b"DE",
            accreditation: 0,
            expiry_height: 1_000_000,
            expires_at_ms: None,
        });
    }
    let mut stopped = 0;
    for seed in 0..10u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut ledgers: Vec<Ledger> = (0..4)
            .map(|_| Ledger::with_compliance(params(), &allocs, Some(&g)))
            .collect();
        let mut seqs = vec![0u64; users.len()];
        for _block in 0..10 {
            let mut txs = Vec::new();
            for _ in 0..rng.gen_range(5..40) {
                let i = rng.gen_range(0..users.len());
                let j = rng.gen_range(0..users.len());
                let amount = *[500u128, 3_000, 7_000].get(rng.gen_range(0..3)).unwrap();
                if rng.gen_bool(0.2) && i != j && i / 3 == j / 3 {
                    // Two accounts of one identity pay a third party in
                    // one settlement: the single limit sums them.
                    let legs = vec![
                        Leg {
                            asset: NATIVE_ASSET,
                            from: users[i].addr.0,
                            to: users[5].addr.0,
                            amount,
                        },
                        Leg {
                            asset: NATIVE_ASSET,
                            from: users[j].addr.0,
                            to: users[5].addr.0,
                            amount,
                        },
                    ];
                    txs.push(prep(body(
                        &[users[i], users[j]],
                        seqs[i],
                        plume_protocol::calls::Settle { legs },
                    )));
                } else {
                    txs.push(transfer(users[i], seqs[i], users[j], amount));
                }
                seqs[i] += 1;
            }
            let outs: Vec<_> = ledgers
                .iter_mut()
                .zip([1usize, 2, 3, 8])
                .map(|(l, shards)| l.block_sharded(&txs, shards))
                .collect();
            for o in &outs[1..] {
                assert_eq!(o.receipts, outs[0].receipts, "seed {seed}");
                assert_eq!(o.writes, outs[0].writes, "seed {seed}");
            }
            stopped += outs[0].compliance.stopped;
            // Sequences: a rejected transaction did not consume one.
            for (t, r) in txs.iter().zip(&outs[0].receipts) {
                if r.status == Status::Rejected {
                    let i = users
                        .iter()
                        .position(|u| u.addr == t.signer_addresses[0])
                        .unwrap();
                    seqs[i] = seqs[i].min(t.tx.body.sequence);
                }
            }
        }
        let roots: Vec<_> = ledgers.iter().map(|l| l.root()).collect();
        assert!(roots.windows(2).all(|r| r[0] == r[1]), "seed {seed}");
    }
    assert!(stopped > 20, "stopped {stopped}");
}

#[test]
fn a_window_rule_keeps_its_id_s_counter_meaning_across_rule_sets() {
    let vel = |window_blocks| Rule::Velocity {
        asset: NATIVE_ASSET,
        window_blocks,
        window_ms: 0,
        buckets: 0,
        scope: plume_compliance::Scope::Account,
        max_amount: 10_000,
        max_count: 0,
        min_tier: 0,
    };
    let mut w = world(vec![vel(10)], 1_000, 0);
    let set = |seq, rules: Vec<(u16, Rule)>| {
        ctx_call(
            w.admin,
            seq,
            ComplianceCall::SetRules {
                rules: rules
                    .into_iter()
                    .map(|(id, rule)| RuleEntry { id, rule })
                    .collect(),
            },
        )
    };
    // Rule 1 with another window under the same id: refused (its stored
    // counters would count under the new window); a new id is fine, and so
    // is a changed limit under the same window.
    let mut more = vel(10);
    if let Rule::Velocity { max_amount, .. } = &mut more {
        *max_amount = 20_000;
    }
    let txs = [
        set(0, vec![(1, more)]),
        set(1, vec![(1, vel(100))]),
        set(2, vec![(2, vel(100))]),
    ];
    let out = w.l.block(&txs);
    assert_eq!(status(&out, 0), (Status::Success, Reason::Ok));
    assert_eq!(status(&out, 1), (Status::Failed, codes::BAD_RULES));
    assert_eq!(status(&out, 2), (Status::Success, Reason::Ok));
    let p = read_policy(&w.l.state).unwrap().unwrap();
    assert_eq!(p.rules.len(), 1);
    assert_eq!(p.rules[0].id, 2);
}
