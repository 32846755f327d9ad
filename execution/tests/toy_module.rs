//! A ledger module added from outside the crate, in this one file, with
//! one registration line (`.with(Notary)` below): a notary that records the
//! first account to register a document hash. It runs through
//! `apply_block`, sequential and sharded, with equal results.

mod common;

use common::*;
use plume_execution::modules::{
    hex32_arg, module_key, Call, CallResult, Ledger as StateLedger, Module, QueryError, StateRead,
    TxInfo,
};
use plume_execution::{apply_block, apply_block_sharded, Event, PreparedTx, Reason, Status};
use plume_protocol::calls::EncodedCall;

/// The notary's module id (the 400s are applications).
const NOTARY: u16 = 400;
/// A document already has an owner.
const ALREADY_NOTARIZED: Reason = Reason(400);

/// The module.
struct Notary;

/// Its one call: the 32-byte document hash (its own encoding, no archive).
#[derive(Debug)]
struct Notarize([u8; 32]);

fn doc_key(doc: &[u8; 32]) -> [u8; 32] {
    module_key(NOTARY, &[b"doc", doc])
}

impl Module for Notary {
    fn id(&self) -> u16 {
        NOTARY
    }
    fn name(&self) -> &'static str {
        "notary"
    }
    fn decode(&self, call: &[u8]) -> Result<Box<dyn Call>, Reason> {
        let doc: [u8; 32] = call.try_into().map_err(|_| Reason::MalformedCall)?;
        Ok(Box::new(Notarize(doc)))
    }
    fn reason_name(&self, r: Reason) -> Option<&'static str> {
        (r == ALREADY_NOTARIZED).then_some("AlreadyNotarized")
    }
    fn queries(&self) -> &'static [&'static str] {
        &["owner"]
    }
    fn query(
        &self,
        state: &dyn StateRead,
        method: &str,
        args: &[String],
    ) -> Result<serde_json::Value, QueryError> {
        match method {
            "owner" => {
                let doc = hex32_arg(args, 0, "document")?;
                Ok(match state.get(&doc_key(&doc))? {
                    Some(v) => serde_json::json!(hex::encode(&v[..32])),
                    None => serde_json::Value::Null,
                })
            }
            m => Err(QueryError::Unknown(format!("notary.{m}"))),
        }
    }
}

impl Call for Notarize {
    fn gas(&self) -> u64 {
        2_000
    }
    fn touched(&self, _tx: &TxInfo<'_>, out: &mut Vec<[u8; 32]>) {
        out.push(doc_key(&self.0));
    }
    fn apply(&self, tx: &TxInfo<'_>, l: &mut dyn StateLedger, _: &mut Vec<Event>) -> CallResult {
        let key = doc_key(&self.0);
        if l.record(&key)?.is_some() {
            return Ok(Err(ALREADY_NOTARIZED));
        }
        let mut v = tx.payer.to_vec();
        v.extend_from_slice(&tx.height.to_le_bytes());
        l.set_record(&key, Some(v));
        Ok(Ok(()))
    }
}

fn notarize(w: Who, seq: u64, doc: u8) -> PreparedTx {
    prep(body(
        &[w],
        seq,
        EncodedCall {
            module: NOTARY,
            bytes: vec![doc; 32],
        },
    ))
}

#[test]
fn a_toy_module_runs_sequential_and_sharded_with_equal_results() {
    let people: Vec<Who> = (1..=8).map(who).collect();
    let allocs: Vec<_> = people.iter().map(|w| (w.addr, 1_000_000_000)).collect();
    let mut l = Ledger::new(&allocs);
    l.registry = registry().with(Notary);

    let mut txs = Vec::new();
    let mut seq = vec![0u64; people.len()];
    let mut next = |i: usize| {
        seq[i] += 1;
        seq[i] - 1
    };
    for round in 0..4u8 {
        for (i, w) in people.iter().enumerate() {
            // Documents 0..6: later registrations of the same one fail.
            txs.push(notarize(*w, next(i), (i as u8 + round) % 6));
            txs.push(transfer(*w, next(i), people[(i + 1) % people.len()], 7));
        }
    }
    // A module nobody registered, and a call this module cannot decode.
    txs.push(prep(body(
        &[people[0]],
        99,
        EncodedCall {
            module: 401,
            bytes: vec![],
        },
    )));
    txs.push(prep(body(
        &[people[1]],
        99,
        EncodedCall {
            module: NOTARY,
            bytes: vec![1, 2, 3],
        },
    )));

    let ctx = l.ctx();
    let seqout = apply_block(&l.state, &l.params, &l.registry, &ctx, &txs).unwrap();
    for shards in [2, 4] {
        let sharded =
            apply_block_sharded(&l.state, &l.params, &l.registry, &ctx, &txs, shards).unwrap();
        assert_eq!(sharded, seqout, "{shards} shards");
    }

    let reasons: Vec<Reason> = seqout.receipts.iter().map(|r| r.reason).collect();
    let ok_notary = (0..64)
        .filter(|i| i % 2 == 0 && reasons[*i] == Reason::Ok)
        .count();
    assert_eq!(ok_notary, 6, "each of the six documents registered once");
    assert_eq!(
        reasons.iter().filter(|r| **r == ALREADY_NOTARIZED).count(),
        26
    );
    assert!((0..64)
        .filter(|i| i % 2 == 1)
        .all(|i| reasons[i] == Reason::Ok));
    let n = reasons.len();
    assert_eq!(reasons[n - 2], Reason::UnknownModule);
    assert_eq!(reasons[n - 1], Reason::MalformedCall);
    assert_eq!(seqout.receipts[n - 1].status, Status::Rejected);
    // A failed notarization still paid its fee.
    let failed = seqout
        .receipts
        .iter()
        .find(|r| r.reason == ALREADY_NOTARIZED)
        .unwrap();
    assert_eq!(failed.status, Status::Failed);
    assert!(failed.fee_paid > 0);

    l.commit(&seqout);
    // The first registrant of document 0 was person 1 (index 0) in round 0.
    let owner = l
        .registry
        .query(&l.state, "notary", "owner", &[hex::encode([0u8; 32])])
        .unwrap();
    assert_eq!(owner, serde_json::json!(people[0].addr.to_hex()));
    assert_eq!(
        l.registry.reason_name(ALREADY_NOTARIZED),
        "AlreadyNotarized"
    );
    assert_eq!(
        l.registry.reason_name(Reason::InsufficientBalance),
        "InsufficientBalance"
    );
    assert!(l.registry.query(&l.state, "notary", "nope", &[]).is_err());
    assert_eq!(l.meta().total_supply(), l.native_sum());
}

#[test]
#[should_panic(expected = "registered twice")]
fn two_modules_with_one_id_are_refused() {
    let _ = registry().with(Notary).with(Notary);
}

#[test]
fn a_cached_decoding_equals_a_fresh_one_and_only_its_registry_trusts_it() {
    let people: Vec<Who> = (1..=4).map(who).collect();
    let allocs: Vec<_> = people.iter().map(|w| (w.addr, 1_000_000_000)).collect();
    let mut l = Ledger::new(&allocs);
    l.registry = registry().with(Notary);
    let mut txs: Vec<PreparedTx> = (0..4)
        .flat_map(|i| {
            [
                notarize(people[i], 0, i as u8 % 2),
                transfer(people[i], 1, people[(i + 1) % 4], 3),
            ]
        })
        .collect();
    let ctx = l.ctx();
    let fresh = apply_block(&l.state, &l.params, &l.registry, &ctx, &txs).unwrap();
    for t in &mut txs {
        l.registry.prepare(t);
        assert!(t.decoded.is_some());
    }
    let cached = apply_block(&l.state, &l.params, &l.registry, &ctx, &txs).unwrap();
    assert_eq!(cached, fresh);
    let sharded = apply_block_sharded(&l.state, &l.params, &l.registry, &ctx, &txs, 3).unwrap();
    assert_eq!(sharded, fresh);
    // A registry without the notary decodes again (it does not trust the
    // other registry's decoding): the notary's calls are unknown to it.
    let plain = registry();
    let out = apply_block(&l.state, &l.params, &plain, &ctx, &txs).unwrap();
    assert_eq!(out.receipts[0].reason, Reason::UnknownModule);
    // (so the rejected call left the payer's sequence where it was)
    assert_eq!(out.receipts[1].reason, Reason::BadSequence);
}
