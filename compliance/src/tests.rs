use super::*;
use plume_protocol::{Cause, Event, Reason};
use std::collections::BTreeMap;

const A: [u8; 32] = [1; 32];
const B: [u8; 32] = [2; 32];
const C: [u8; 32] = [3; 32];
const P1: [u8; 32] = [9; 32];
const NATIVE: [u8; 32] = [0; 32];
/// Every sender of these tests signs.
const SIGNERS: [plume_crypto::ed25519::Address; 3] = [
    plume_crypto::ed25519::Address(A),
    plume_crypto::ed25519::Address(B),
    plume_crypto::ed25519::Address(C),
];

#[derive(Default)]
struct Mem {
    ids: BTreeMap<[u8; 32], Identity>,
    deny: Vec<[u8; 32]>,
    exempt: Vec<[u8; 32]>,
    /// Addresses linked to another identity than their own.
    links: BTreeMap<[u8; 32], [u8; 32]>,
    /// Per owner, the counters record as stored.
    counters: BTreeMap<Owner, Vec<(u16, Counter)>>,
}

impl Env for Mem {
    type Error = std::convert::Infallible;
    // Identities are keyed by their address here (identity id = address).
    fn entry(&self, a: &[u8; 32]) -> Result<AddressEntry, Self::Error> {
        Ok(AddressEntry {
            identity: self
                .links
                .get(a)
                .copied()
                .or_else(|| self.ids.contains_key(a).then_some(*a)),
            deny: self.deny.contains(a),
            exempt: self.exempt.contains(a),
        })
    }
    fn identity(&self, id: &[u8; 32]) -> Result<Option<Identity>, Self::Error> {
        Ok(self.ids.get(id).cloned())
    }
    fn counters(&mut self, o: &Owner) -> Result<Vec<(u16, Counter)>, Self::Error> {
        Ok(self.counters.get(o).cloned().unwrap_or_default())
    }
    fn set_counters(&mut self, o: &Owner, cs: &[(u16, Counter)]) {
        self.counters.insert(*o, cs.to_vec());
    }
}

fn policy(rules: Vec<Rule>) -> Policy {
    Policy {
        version: 3,
        effective_height: 1,
        admin: [7; 32],
        list_keeper: [7; 32],
        providers: vec![Provider {
            key: P1,
            name: "p1".into(),
            revoked_from: None,
        }],
        rules: rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| RuleEntry {
                id: 10 + i as u16,
                rule,
            })
            .collect(),
    }
}

fn kyc(tier: u8, j: &[u8; 2], expiry: u64) -> Identity {
    Identity {
        attestations: vec![Attestation {
            provider: P1,
            status: KycStatus::Verified,
            risk_tier: tier,
            jurisdiction: *j,
            accreditation: 0,
            issued_height: 1,
            expiry_height: expiry,
            expires_at_ms: None,
        }],
        revoked: Vec::new(),
    }
}

fn flow(from: [u8; 32], to: [u8; 32], amount: u128) -> Flow {
    Flow {
        from: Some(from),
        to: Some(to),
        asset: NATIVE,
        amount,
    }
}

fn run(p: &Policy, env: &mut Mem, height: u64, memo: &[u8], flows: &[Flow]) -> Option<Reason> {
    let tx = [0xaa; 32];
    check(
        p,
        env,
        &TxContext {
            height,
            time_ms: 0,
            tx: &tx,
            memo,
            signers: &SIGNERS,
        },
        flows,
    )
    .unwrap()
    .failed
    .map(|f| f.1)
}

fn ev(account: [u8; 32], credit: bool, amount: u128) -> Event {
    Event {
        account,
        asset: NATIVE,
        credit,
        amount,
        cause: Cause::Transfer,
    }
}

#[test]
fn flows_pair_debits_with_credits_in_order() {
    // A batch payment: one debit of the total, one credit per payee; the
    // fee event is not a flow.
    let mut fee = ev(A, false, 5);
    fee.cause = Cause::Fee;
    let f = flows_of(&[fee, ev(A, false, 30), ev(B, true, 10), ev(C, true, 20)]);
    assert_eq!(f, vec![flow(A, B, 10), flow(A, C, 20)]);
    // Settlement legs: debit, credit, debit, credit.
    let f = flows_of(&[
        ev(A, false, 4),
        ev(B, true, 4),
        ev(B, false, 6),
        ev(C, true, 6),
    ]);
    assert_eq!(f, vec![flow(A, B, 4), flow(B, C, 6)]);
    // Issuance: a credit with no debit.
    let f = flows_of(&[ev(C, true, 9)]);
    assert_eq!(f[0].from, None);
    assert_eq!(f[0].to, Some(C));
}

#[test]
fn sanctions_hit_either_side() {
    let p = policy(vec![Rule::Sanctions]);
    let mut env = Mem {
        deny: vec![C],
        ..Mem::default()
    };
    assert_eq!(run(&p, &mut env, 5, b"", &[flow(A, B, 1)]), None);
    assert_eq!(
        run(&p, &mut env, 5, b"", &[flow(A, C, 1)]),
        Some(codes::SANCTIONED)
    );
    assert_eq!(
        run(&p, &mut env, 5, b"", &[flow(C, A, 1)]),
        Some(codes::SANCTIONED)
    );
    // A settlement with one restricted leg fails as a whole.
    assert_eq!(
        run(&p, &mut env, 5, b"", &[flow(A, B, 1), flow(B, C, 1)]),
        Some(codes::SANCTIONED)
    );
}

#[test]
fn kyc_expires_exactly_at_its_height_and_revoked_providers_stop_counting() {
    let mut p = policy(vec![Rule::Kyc { receivers: true }]);
    let mut env = Mem::default();
    env.ids.insert(A, kyc(1, b"DE", 100));
    env.ids.insert(B, kyc(1, b"FR", 1_000));
    assert_eq!(run(&p, &mut env, 99, b"", &[flow(A, B, 1)]), None);
    assert_eq!(
        run(&p, &mut env, 100, b"", &[flow(A, B, 1)]),
        Some(codes::KYC_EXPIRED)
    );
    assert_eq!(
        run(&p, &mut env, 50, b"", &[flow(A, C, 1)]),
        Some(codes::KYC_MISSING)
    );
    p.providers[0].revoked_from = Some(60);
    assert_eq!(run(&p, &mut env, 59, b"", &[flow(A, B, 1)]), None);
    assert_eq!(
        run(&p, &mut env, 60, b"", &[flow(A, B, 1)]),
        Some(codes::KYC_PROVIDER_REVOKED)
    );
    // An attestation from a provider the policy does not know never counts.
    p.providers.clear();
    assert_eq!(
        run(&p, &mut env, 50, b"", &[flow(A, B, 1)]),
        Some(codes::KYC_MISSING)
    );
}

#[test]
fn velocity_fails_the_transfer_that_crosses_the_limit_and_resets_per_window() {
    let p = policy(vec![Rule::Velocity {
        asset: NATIVE,
        window_blocks: 100,
        window_ms: 0,
        max_amount: 10_000,
        max_count: 0,
        min_tier: 0,
        buckets: 0,
        scope: Scope::Account,
    }]);
    let mut env = Mem::default();
    assert_eq!(run(&p, &mut env, 101, b"", &[flow(A, B, 4_000)]), None);
    assert_eq!(run(&p, &mut env, 150, b"", &[flow(A, B, 4_000)]), None);
    assert_eq!(
        run(&p, &mut env, 199, b"", &[flow(A, B, 4_000)]),
        Some(codes::VELOCITY_AMOUNT)
    );
    // Exactly at the limit passes.
    assert_eq!(run(&p, &mut env, 199, b"", &[flow(A, B, 2_000)]), None);
    assert_eq!(
        run(&p, &mut env, 199, b"", &[flow(A, B, 1)]),
        Some(codes::VELOCITY_AMOUNT)
    );
    // The next window starts from zero; other senders have their own.
    assert_eq!(run(&p, &mut env, 200, b"", &[flow(A, B, 10_000)]), None);
    assert_eq!(run(&p, &mut env, 199, b"", &[flow(B, A, 10_000)]), None);
}

#[test]
fn exempt_counterparties_skip_amount_rules_but_not_sanctions() {
    let p = policy(vec![
        Rule::Sanctions,
        Rule::SingleLimit {
            asset: NATIVE,
            max: 100,
            min_tier: 0,
            scope: Scope::Account,
        },
    ]);
    let mut env = Mem {
        exempt: vec![C],
        ..Mem::default()
    };
    assert_eq!(
        run(&p, &mut env, 5, b"", &[flow(A, B, 101)]),
        Some(codes::SINGLE_LIMIT)
    );
    assert_eq!(run(&p, &mut env, 5, b"", &[flow(A, C, 101)]), None);
    env.deny.push(C);
    assert_eq!(
        run(&p, &mut env, 5, b"", &[flow(A, C, 1)]),
        Some(codes::SANCTIONED)
    );
}

#[test]
fn tiered_limits_apply_only_from_their_tier() {
    let p = policy(vec![Rule::SingleLimit {
        asset: NATIVE,
        max: 100,
        min_tier: 3,
        scope: Scope::Account,
    }]);
    let mut env = Mem::default();
    env.ids.insert(A, kyc(1, b"DE", 1_000));
    env.ids.insert(B, kyc(3, b"DE", 1_000));
    assert_eq!(run(&p, &mut env, 5, b"", &[flow(A, C, 500)]), None);
    assert_eq!(
        run(&p, &mut env, 5, b"", &[flow(B, C, 500)]),
        Some(codes::SINGLE_LIMIT)
    );
    // No valid attestation: the strictest tier.
    assert_eq!(
        run(&p, &mut env, 5, b"", &[flow(C, A, 500)]),
        Some(codes::SINGLE_LIMIT)
    );
}

#[test]
fn jurisdiction_pairs_block_both_directions() {
    let p = policy(vec![Rule::JurisdictionBlock {
        pairs: vec![[*b"US", *b"KP"]],
    }]);
    let mut env = Mem::default();
    env.ids.insert(A, kyc(1, b"US", 1_000));
    env.ids.insert(B, kyc(1, b"KP", 1_000));
    env.ids.insert(C, kyc(1, b"DE", 1_000));
    assert_eq!(
        run(&p, &mut env, 5, b"", &[flow(A, B, 1)]),
        Some(codes::JURISDICTION_BLOCKED)
    );
    assert_eq!(
        run(&p, &mut env, 5, b"", &[flow(B, A, 1)]),
        Some(codes::JURISDICTION_BLOCKED)
    );
    assert_eq!(run(&p, &mut env, 5, b"", &[flow(A, C, 1)]), None);
}

#[test]
fn travel_rule_needs_a_commitment_at_the_threshold() {
    let p = policy(vec![Rule::TravelRule {
        asset: NATIVE,
        threshold: 1_000,
    }]);
    let mut env = Mem::default();
    assert_eq!(run(&p, &mut env, 5, b"", &[flow(A, B, 999)]), None);
    assert_eq!(
        run(&p, &mut env, 5, b"invoice 7", &[flow(A, B, 1_000)]),
        Some(codes::TRAVEL_RULE)
    );
    let memo = travel_memo(b"sealed envelope");
    assert_eq!(run(&p, &mut env, 5, &memo, &[flow(A, B, 1_000)]), None);
    // A commitment that does not match the envelope carried is refused.
    let mut bad = memo.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(
        run(&p, &mut env, 5, &bad, &[flow(A, B, 1_000)]),
        Some(codes::TRAVEL_RULE)
    );
    // The commitment alone (envelope sent off-chain) is enough.
    assert_eq!(
        run(
            &p,
            &mut env,
            5,
            &memo[..TRAVEL_TAG_LEN + 32],
            &[flow(A, B, 5_000)]
        ),
        None
    );
}

const TRAVEL_TAG_LEN: usize = model::TRAVEL_TAG.len();

#[test]
fn structuring_flags_the_nth_just_below_threshold_transfer() {
    let p = policy(vec![Rule::Structuring {
        asset: NATIVE,
        threshold: 10_000,
        margin_bps: 1_000,
        count: 3,
        window_blocks: 50,
        window_ms: 0,
        block: false,
    }]);
    let mut env = Mem::default();
    let tx = [1; 32];
    let ctx = |h| TxContext {
        height: h,
        time_ms: 0,
        tx: &tx,
        memo: b"",
        signers: &SIGNERS,
    };
    let o = check(&p, &mut env, &ctx(10), &[flow(A, B, 9_500)]).unwrap();
    assert!(o.flagged.is_empty() && o.failed.is_none());
    // Below the margin: not counted.
    let o = check(&p, &mut env, &ctx(11), &[flow(A, B, 8_000)]).unwrap();
    assert!(o.flagged.is_empty());
    let o = check(&p, &mut env, &ctx(12), &[flow(A, B, 9_999)]).unwrap();
    assert!(o.flagged.is_empty());
    let o = check(&p, &mut env, &ctx(13), &[flow(A, B, 9_000)]).unwrap();
    assert_eq!(o.flagged, vec![10]);
    assert!(o.failed.is_none());
    // A new window starts over.
    let o = check(&p, &mut env, &ctx(50), &[flow(A, B, 9_000)]).unwrap();
    assert!(o.flagged.is_empty());
}

#[test]
fn address_entries_round_trip_and_reject_garbage() {
    for e in [
        AddressEntry::default(),
        AddressEntry {
            identity: Some([3; 32]),
            deny: true,
            exempt: false,
        },
        AddressEntry {
            identity: None,
            deny: false,
            exempt: true,
        },
    ] {
        assert_eq!(AddressEntry::decode(&e.encode()), Some(e));
    }
    assert_eq!(AddressEntry::decode(&[]), None);
    assert_eq!(AddressEntry::decode(&[8]), None);
    assert_eq!(AddressEntry::decode(&[4, 1, 2]), None);
    assert_eq!(AddressEntry::decode(&[1, 0]), None);
}

#[test]
fn input_hash_names_tx_version_and_flows() {
    let f = [flow(A, B, 1)];
    let h = input_hash(&[1; 32], 1, &f);
    assert_ne!(h, input_hash(&[1; 32], 2, &f));
    assert_ne!(h, input_hash(&[2; 32], 1, &f));
    assert_ne!(h, input_hash(&[1; 32], 1, &[flow(A, B, 2)]));
    assert_eq!(h, input_hash(&[1; 32], 1, &f));
}

#[test]
fn calls_and_records_round_trip_and_reject_garbage() {
    let c = ComplianceCall::SetRules {
        rules: policy(vec![Rule::Sanctions, Rule::Kyc { receivers: false }]).rules,
    };
    assert_eq!(ComplianceCall::decode(&c.encode()).unwrap(), c);
    assert_eq!(
        ComplianceCall::decode(b"not an archive"),
        Err(Reason::MalformedCall)
    );
    // Two rules with one id break the rule set.
    let mut rules = policy(vec![Rule::Sanctions, Rule::Sanctions]).rules;
    rules[1].id = rules[0].id;
    assert_eq!(
        ComplianceCall::decode(&ComplianceCall::SetRules { rules }.encode()),
        Err(codes::BAD_RULES)
    );
    let id = kyc(2, b"CH", 9);
    assert_eq!(decode::<Identity>(&encode(&id)).unwrap(), id);
}

#[test]
fn genesis_json_parses_and_names_errors() {
    let j = serde_json::json!({
        "admin": hex::encode([7u8; 32]),
        "list_keeper": hex::encode([7u8; 32]),
        "providers": [{"key": hex::encode(P1), "name": "kyc-co"}],
        "rules": [
            {"id": 1, "kind": "sanctions"},
            {"id": 2, "kind": "single_limit", "asset": "native", "max": "1000000"},
            {"id": 3, "kind": "jurisdiction_block", "pairs": [["US", "KP"]]}
        ],
        "deny": [hex::encode(C)],
        "identities": [{
            "identity": hex::encode([5u8; 32]), "addresses": [hex::encode(A)],
            "provider": hex::encode(P1), "status": "verified", "jurisdiction": "DE",
            "expiry_height": 1000
        }]
    });
    let g: GenesisCompliance = serde_json::from_value(j.clone()).unwrap();
    g.validate().unwrap();
    assert_eq!(g.rules.len(), 3);
    assert_eq!(
        g.rules[1].rule,
        Rule::SingleLimit {
            asset: NATIVE,
            max: 1_000_000,
            min_tier: 0,
            scope: Scope::Account,
        }
    );
    let mut bad = j.clone();
    bad["rules"][1]["max"] = serde_json::json!("lots");
    assert!(serde_json::from_value::<GenesisCompliance>(bad)
        .unwrap_err()
        .to_string()
        .contains("not a decimal"));
    let mut bad = j;
    bad["identities"][0]["provider"] = serde_json::json!(hex::encode([8u8; 32]));
    let g: GenesisCompliance = serde_json::from_value(bad).unwrap();
    assert!(g.validate().unwrap_err().contains("not in providers"));
}

#[test]
fn worst_case_policy_gas_is_bounded() {
    // 128 of the costliest rule over the most parties a call can declare
    // (a batch payment: payer + 256 payees) stays far below the default
    // block gas limit (300M): a block always has room for many checks.
    let costliest = [
        Rule::JurisdictionBlock {
            pairs: vec![[*b"US", *b"KP"]; model::PAIRS_MAX],
        },
        // 128 rolling rules of 2 buckets: the most counter entries a
        // policy may keep (256).
        Rule::Velocity {
            asset: NATIVE,
            window_blocks: 0,
            window_ms: 24 * 3_600_000,
            buckets: 2,
            scope: Scope::Identity,
            max_amount: 1,
            max_count: 0,
            min_tier: 0,
        },
    ];
    // More counter entries per sender than the bound are refused: each
    // window rule scans the sender's whole record.
    let rolling = |buckets| Rule::Velocity {
        asset: NATIVE,
        window_blocks: 0,
        window_ms: 24 * 3_600_000,
        buckets,
        scope: Scope::Account,
        max_amount: 1,
        max_count: 0,
        min_tier: 0,
    };
    assert!(policy(vec![rolling(24); 10]).validate().is_ok());
    let e = policy(vec![rolling(24); 11]).validate().unwrap_err();
    assert!(e.contains("264 counter entries"), "{e}");
    for rule in costliest {
        let p = policy(vec![rule; model::RULES_MAX]);
        p.validate().unwrap();
        let g = p.gas(257);
        // At most a quarter of the default block gas limit.
        assert!(g < 75_000_000, "{g}");
        assert!(g > p.gas(2));
    }
}

fn run_at(p: &Policy, env: &mut Mem, height: u64, time_ms: u64, flows: &[Flow]) -> Option<Reason> {
    let tx = [0xab; 32];
    check(
        p,
        env,
        &TxContext {
            height,
            time_ms,
            tx: &tx,
            memo: b"",
            signers: &SIGNERS,
        },
        flows,
    )
    .unwrap()
    .failed
    .map(|f| f.1)
}

const DAY_MS: u64 = 86_400_000;
/// 2027-01-01T00:00:00Z.
const T0: u64 = 1_798_761_600_000;

#[test]
fn kyc_valid_until_a_block_time_expires_exactly_then_whatever_the_height() {
    let p = policy(vec![Rule::Kyc { receivers: false }]);
    let mut env = Mem::default();
    let mut id = kyc(1, b"DE", u64::MAX);
    id.attestations[0].expires_at_ms = Some(T0);
    env.ids.insert(A, id.clone());
    // One millisecond before T passes (at any height); at T it fails.
    assert_eq!(run_at(&p, &mut env, 5, T0 - 1, &[flow(A, B, 1)]), None);
    assert_eq!(
        run_at(&p, &mut env, 5, T0, &[flow(A, B, 1)]),
        Some(codes::KYC_EXPIRED)
    );
    assert_eq!(
        run_at(&p, &mut env, 1_000_000, T0 + DAY_MS, &[flow(A, B, 1)]),
        Some(codes::KYC_EXPIRED)
    );
    // Both bounds: whichever comes first.
    id.attestations[0].expiry_height = 50;
    env.ids.insert(A, id);
    assert_eq!(
        run_at(&p, &mut env, 50, T0 - 1, &[flow(A, B, 1)]),
        Some(codes::KYC_EXPIRED)
    );
    assert_eq!(run_at(&p, &mut env, 49, T0 - 1, &[flow(A, B, 1)]), None);
}

#[test]
fn a_daily_velocity_limit_by_block_time_resets_at_midnight_utc() {
    let p = policy(vec![Rule::Velocity {
        asset: NATIVE,
        window_blocks: 0,
        window_ms: DAY_MS,
        max_amount: 10_000,
        max_count: 0,
        min_tier: 0,
        buckets: 0,
        scope: Scope::Account,
    }]);
    let mut env = Mem::default();
    // Heights far apart, one UTC day: the third 4,000 fails.
    assert_eq!(run_at(&p, &mut env, 10, T0 + 1, &[flow(A, B, 4_000)]), None);
    assert_eq!(
        run_at(&p, &mut env, 90_000, T0 + DAY_MS / 2, &[flow(A, B, 4_000)]),
        None
    );
    assert_eq!(
        run_at(&p, &mut env, 180_000, T0 + DAY_MS - 1, &[flow(A, B, 4_000)]),
        Some(codes::VELOCITY_AMOUNT)
    );
    // Exactly at midnight, a new day.
    assert_eq!(
        run_at(&p, &mut env, 180_001, T0 + DAY_MS, &[flow(A, B, 4_000)]),
        None
    );
    assert_eq!(
        run_at(&p, &mut env, 180_002, T0 + DAY_MS + 5, &[flow(A, B, 6_000)]),
        None
    );
    assert_eq!(
        run_at(&p, &mut env, 180_003, T0 + DAY_MS + 6, &[flow(A, B, 1)]),
        Some(codes::VELOCITY_AMOUNT)
    );
}

#[test]
fn structuring_by_block_time_counts_within_one_window_only() {
    let p = policy(vec![Rule::Structuring {
        asset: NATIVE,
        threshold: 10_000,
        margin_bps: 1_000,
        count: 3,
        window_blocks: 0,
        window_ms: 3_600_000,
        block: true,
    }]);
    let mut env = Mem::default();
    let hour = 3_600_000;
    assert_eq!(run_at(&p, &mut env, 1, T0, &[flow(A, B, 9_500)]), None);
    assert_eq!(run_at(&p, &mut env, 2, T0 + 10, &[flow(A, B, 9_600)]), None);
    // The next hour starts over: two more pass.
    assert_eq!(
        run_at(&p, &mut env, 3, T0 + hour, &[flow(A, B, 9_700)]),
        None
    );
    assert_eq!(
        run_at(&p, &mut env, 4, T0 + hour + 1, &[flow(A, B, 9_800)]),
        None
    );
    assert_eq!(
        run_at(&p, &mut env, 5, T0 + 2 * hour - 1, &[flow(A, B, 9_900)]),
        Some(codes::STRUCTURING)
    );
}

#[test]
fn a_window_needs_exactly_one_length_and_a_claim_some_expiry() {
    let bad = |window_blocks, window_ms| {
        policy(vec![Rule::Velocity {
            asset: NATIVE,
            window_blocks,
            window_ms,
            max_amount: 1,
            max_count: 0,
            min_tier: 0,
            buckets: 0,
            scope: Scope::Account,
        }])
        .validate()
        .is_err()
    };
    assert!(bad(0, 0));
    assert!(bad(10, 10));
    assert!(!bad(10, 0));
    assert!(!bad(0, 10));
    // Time and block windows never share a counter index.
    assert_ne!(
        model::window_index(0, 1, 7, 7),
        model::window_index(1, 0, 7, 7)
    );
    let mut c = Claim {
        chain_id: "c".into(),
        identity: [1; 32],
        addresses: vec![A],
        provider: P1,
        status: KycStatus::Verified,
        risk_tier: 0,
        jurisdiction: *b"DE",
        accreditation: 0,
        issued_height: 1,
        expiry_height: u64::MAX,
        expires_at_ms: None,
    };
    assert_eq!(c.check(), Err(Reason::MalformedCall));
    c.expires_at_ms = Some(T0);
    assert_eq!(c.check(), Ok(()));
    // In JSON, a time-only claim leaves out expiry_height.
    let j: Claim = serde_json::from_value(serde_json::json!({
        "chain_id": "c", "identity": hex::encode([1u8; 32]),
        "addresses": [hex::encode(A)], "provider": hex::encode(P1),
        "status": "verified", "risk_tier": 0, "jurisdiction": "DE",
        "issued_height": 1, "expires_at_ms": T0
    }))
    .unwrap();
    assert_eq!(j, c);
    assert!(!to_json(&j)
        .as_object()
        .unwrap()
        .contains_key("expiry_height"));
}

#[test]
fn a_rolling_24_hour_window_drops_each_hour_as_it_leaves_unlike_a_daily_one() {
    const H: u64 = 3_600_000;
    let rule = |buckets| Rule::Velocity {
        asset: NATIVE,
        window_blocks: 0,
        window_ms: 24 * H,
        buckets,
        scope: Scope::Account,
        max_amount: 10_000,
        max_count: 0,
        min_tier: 0,
    };
    let (rolling, daily) = (policy(vec![rule(24)]), policy(vec![rule(0)]));
    let (mut er, mut ed) = (Mem::default(), Mem::default());
    for (p, env) in [(&rolling, &mut er), (&daily, &mut ed)] {
        assert_eq!(run_at(p, env, 1, T0 + H, &[flow(A, B, 4_000)]), None);
        assert_eq!(run_at(p, env, 2, T0 + 10 * H, &[flow(A, B, 4_000)]), None);
        assert_eq!(
            run_at(p, env, 3, T0 + 23 * H, &[flow(A, B, 4_000)]),
            Some(codes::VELOCITY_AMOUNT)
        );
    }
    // 25 h: a new UTC day resets the daily window entirely ...
    assert_eq!(
        run_at(&daily, &mut ed, 4, T0 + 25 * H, &[flow(A, B, 10_000)]),
        None
    );
    // ... while the rolling one still holds the 4,000 of 10 h (the 1 h
    // one left at 25 h): 6,000 fit, 6,001 do not.
    assert_eq!(
        run_at(&rolling, &mut er, 4, T0 + 25 * H, &[flow(A, B, 6_001)]),
        Some(codes::VELOCITY_AMOUNT)
    );
    assert_eq!(
        run_at(&rolling, &mut er, 5, T0 + 25 * H, &[flow(A, B, 6_000)]),
        None
    );
    // At 34 h the 10 h bucket has left as well.
    assert_eq!(
        run_at(&rolling, &mut er, 6, T0 + 34 * H - 1, &[flow(A, B, 1)]),
        Some(codes::VELOCITY_AMOUNT)
    );
    assert_eq!(
        run_at(&rolling, &mut er, 7, T0 + 34 * H, &[flow(A, B, 4_000)]),
        None
    );
    // The record keeps only live buckets (at most 24 for the rule).
    let kept = &er.counters[&Owner::Account(A)];
    assert!(kept.len() <= 24 && kept.len() == 2, "{kept:?}");
    // Buckets must divide the window; at most 24.
    assert!(policy(vec![Rule::Velocity {
        asset: NATIVE,
        window_blocks: 10,
        window_ms: 0,
        buckets: 3,
        scope: Scope::Account,
        max_amount: 1,
        max_count: 0,
        min_tier: 0,
    }])
    .validate()
    .is_err());
    assert!(policy(vec![rule(25)]).validate().is_err());
}

#[test]
fn identity_scope_sums_every_account_of_one_identity() {
    let vel = |scope| Rule::Velocity {
        asset: NATIVE,
        window_blocks: 100,
        window_ms: 0,
        buckets: 0,
        scope,
        max_amount: 10_000,
        max_count: 0,
        min_tier: 0,
    };
    // A and B are two accounts of identity A.
    let mem = || {
        let mut m = Mem::default();
        m.ids.insert(A, kyc(1, b"DE", u64::MAX));
        m.links.insert(B, A);
        m
    };
    let (per_id, per_acct) = (
        policy(vec![vel(Scope::Identity)]),
        policy(vec![vel(Scope::Account)]),
    );
    let (mut ei, mut ea) = (mem(), mem());
    assert_eq!(run(&per_id, &mut ei, 5, b"", &[flow(A, C, 6_000)]), None);
    assert_eq!(
        run(&per_id, &mut ei, 6, b"", &[flow(B, C, 6_000)]),
        Some(codes::VELOCITY_AMOUNT)
    );
    assert_eq!(run(&per_id, &mut ei, 7, b"", &[flow(B, C, 4_000)]), None);
    assert!(ei.counters.contains_key(&Owner::Identity(A)));
    assert!(!ei.counters.contains_key(&Owner::Account(B)));
    // Per account, each has its own 10,000.
    assert_eq!(run(&per_acct, &mut ea, 5, b"", &[flow(A, C, 6_000)]), None);
    assert_eq!(run(&per_acct, &mut ea, 6, b"", &[flow(B, C, 6_000)]), None);
    // A sender that did not sign counts alone (its identity's counters are
    // not in the transaction's access set).
    let mut e = mem();
    let tx = [0xac; 32];
    let only_a = [plume_crypto::ed25519::Address(A)];
    let ctx = TxContext {
        height: 5,
        time_ms: 0,
        tx: &tx,
        memo: b"",
        signers: &only_a,
    };
    check(&per_id, &mut e, &ctx, &[flow(B, C, 6_000)]).unwrap();
    assert!(e.counters.contains_key(&Owner::Account(B)));
    // A single limit per identity: one settlement with a leg from each
    // account of the identity counts both.
    let single = |scope| Rule::SingleLimit {
        asset: NATIVE,
        max: 1_000,
        min_tier: 0,
        scope,
    };
    let legs = [flow(A, C, 600), flow(B, C, 600)];
    assert_eq!(
        run(
            &policy(vec![single(Scope::Identity)]),
            &mut mem(),
            5,
            b"",
            &legs
        ),
        Some(codes::SINGLE_LIMIT)
    );
    assert_eq!(
        run(
            &policy(vec![single(Scope::Account)]),
            &mut mem(),
            5,
            b"",
            &legs
        ),
        None
    );
}
