//! Certified batches against a Byzantine validator (a rogue holding one
//! validator's real keys, speaking the real protocol, see `rogue/`) and
//! against crashes, with real `plume start` processes for the honest ones:
//!
//! - an author sends different signature bytes of one batch to different
//!   peers: at most one version is certified, and it runs everywhere;
//! - a leader proposes digests nobody certified: no honest vote, the view
//!   times out, the chain moves on;
//! - a batch one validator never received is fetched and executed;
//! - a leader proposing an executed batch again, with its genuine
//!   certificate: refused (a batch is final once);
//! - a batch sent under another validator's name: not stored, no vote;
//! - the author is killed right after its batch is certified: the others
//!   still execute it;
//! - a client key with a small-order component: 1,000 transactions, one
//!   verdict on every validator.

mod support;

use plume_client::rpc;
use plume_client::txbuild::{self, Fees};
use plume_crypto::Digest;
use plume_netstack::Channel;
use plume_node::devnet::rogue::{self, Consensus, Rogue};
use plume_node::devnet::LocalNet;
use plume_node::wire::NetMsg;
use plume_protocol::batch::Verdict;
use plume_protocol::Transaction;
use serde_json::json;
use std::time::{Duration, Instant};
use support::{
    diag, exe, final_on, free_base, hash_of, height, metric, submit, transfers, wait_height,
};

/// A network of `n` validators where the last one is not started (the
/// test runs it as a rogue, or not at all).
fn net_without_last(n: usize) -> (tempfile::TempDir, LocalNet) {
    support::with_fresh_ports(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut net = LocalNet::create(exe(), &dir.path().join("net"), n, free_base(n as u16))?;
        for i in 0..n - 1 {
            net.start(i)?;
        }
        net.wait_ready(Duration::from_secs(60))?;
        Ok((dir, net))
    })
}

fn batch_msg(author: u32, expires: u64, txs: &[Vec<u8>]) -> NetMsg {
    NetMsg::Batch {
        author,
        expires,
        verdict: Verdict::all_valid(),
        txs: txs.to_vec(),
        cert: None,
    }
}

/// Honest validators (all but the last) converge on one root, past `h`.
fn assert_roots_equal(net: &LocalNet, h: u64) {
    let (_, roots) = net.converge(h, Duration::from_secs(60)).unwrap();
    assert!(
        roots.windows(2).all(|w| w[0] == w[1]),
        "state roots differ: {roots:?}"
    );
}

/// The rogue author sends version A of its batch to `a` and version B (one
/// signature byte of the first transaction flipped) to `b`, asks every
/// receiver to verify, and certifies whatever it can.
fn two_versions(n: usize, a: &[u32], b: &[u32], expect_certified: bool) {
    let (_d, net) = net_without_last(n);
    let rogue = Rogue::start(&net.homes[n - 1], Consensus::Silent);
    rogue.wait_connected(n - 1, Duration::from_secs(30));
    wait_height(&net, 0, 2, Duration::from_secs(60));
    let txs = transfers(&net, 10, 4);
    let va: Vec<Vec<u8>> = txs.iter().map(Transaction::to_bytes).collect();
    let mut vb = va.clone();
    let mut flipped = txs[0].clone();
    flipped.signatures[0][7] ^= 0x40;
    vb[0] = flipped.to_bytes();
    let expires = height(&net, 0) + 1000;
    let (ida, idb) = (rogue.batch_id(&va, expires), rogue.batch_id(&vb, expires));
    assert_ne!(ida.digest, idb.digest, "the digest binds signature bytes");
    for &i in a {
        rogue.send(i, Channel::Bulk, &batch_msg(rogue.me, ida.expires, &va));
    }
    for &i in b {
        rogue.send(i, Channel::Bulk, &batch_msg(rogue.me, idb.expires, &vb));
    }
    // Once they hold it (a request for a batch not held yet is ignored).
    std::thread::sleep(Duration::from_millis(500));
    for &i in a {
        rogue.send(i, Channel::Bulk, &NetMsg::VerifyRequest(ida.digest));
    }
    for &i in b {
        rogue.send(i, Channel::Bulk, &NetMsg::VerifyRequest(idb.digest));
    }
    // The rogue claims both versions valid and signs both.
    let all_valid = Verdict::all_valid();
    let ca = rogue.certify(&ida, &all_valid, Duration::from_secs(5));
    let cb = rogue.certify(&idb, &all_valid, Duration::from_secs(1));
    assert!(
        cb.is_none(),
        "version B has too few holders to be certified"
    );
    assert_eq!(ca.is_some(), expect_certified, "version A certified?");
    let honest: Vec<usize> = (0..n - 1).collect();
    if let Some(c) = ca {
        for &i in &honest {
            rogue.send(i as u32, Channel::Bulk, &NetMsg::BatchCert(c.clone()));
        }
        // Version A runs everywhere, with the same receipt.
        for t in &txs {
            let mut receipts = Vec::new();
            for &i in &honest {
                let v = final_on(&net.apis[i], &hash_of(t), Duration::from_secs(60))
                    .unwrap_or_else(|| panic!("not final on validator {i}{}", diag(&net)));
                assert_eq!(v["receipt"]["status"], "Success");
                receipts.push(v["receipt"].clone());
            }
            assert!(receipts.windows(2).all(|w| w[0] == w[1]), "{receipts:?}");
        }
    } else {
        // Neither: nothing of it runs; the chain goes on without it.
        let h = height(&net, 0);
        wait_height(&net, 0, h + 5, Duration::from_secs(60));
        for t in &txs {
            for &i in &honest {
                assert!(
                    rpc(&net.apis[i], "plume_getTransaction", json!([hash_of(t)])).is_err(),
                    "an uncertified batch ran on validator {i}"
                );
            }
        }
    }
    let h = height(&net, 0);
    assert_roots_equal(&net, h);
}

#[test]
fn two_versions_of_a_batch_one_certified_and_run_everywhere_4_validators() {
    two_versions(4, &[0, 1], &[2], true);
}

#[test]
fn two_versions_of_a_batch_one_certified_and_run_everywhere_7_validators() {
    two_versions(7, &[0, 1, 2, 3], &[4, 5], true);
}

#[test]
fn two_versions_of_a_batch_neither_certified_7_validators() {
    two_versions(7, &[0, 1, 2], &[3, 4, 5], false);
}

#[test]
fn a_leader_proposing_uncertified_batches_gets_no_vote_and_the_chain_moves_on() {
    let n = 4;
    let (_d, net) = net_without_last(n);
    // One digest nobody has, and one batch two validators hold but that is
    // never certified (the rogue never forms its certificate).
    let stored = transfers(&net, 20, 2);
    let raw: Vec<Vec<u8>> = stored.iter().map(Transaction::to_bytes).collect();
    let unknown = Digest([0xab; 32]);
    let expires = height(&net, 0) + 1000;
    let held = plume_protocol::batch::batch_digest(3, expires, &raw);
    let rogue = Rogue::start(
        &net.homes[3],
        Consensus::propose_uncertified(vec![held, unknown]),
    );
    rogue.wait_connected(3, Duration::from_secs(30));
    rogue.send(0, Channel::Bulk, &batch_msg(3, expires, &raw));
    rogue.send(1, Channel::Bulk, &batch_msg(3, expires, &raw));
    // Until the rogue has led a few views (and been refused).
    let deadline = Instant::now() + Duration::from_secs(90);
    while rogue.proposals.load(std::sync::atomic::Ordering::Relaxed) < 3 {
        assert!(Instant::now() < deadline, "the rogue never led a view");
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused: u64 = (0..3)
        .map(|i| metric(&net.apis[i], "plume_proposals_refused_total"))
        .sum();
    assert!(
        refused >= 3,
        "honest validators refused {refused} proposals"
    );
    // The chain moves on: an honest transaction finalizes everywhere.
    let t = &transfers(&net, 30, 1)[0];
    submit(&net.apis[0], t).unwrap();
    for i in 0..3 {
        let v = final_on(&net.apis[i], &hash_of(t), Duration::from_secs(60)).expect("final");
        assert_eq!(v["receipt"]["status"], "Success");
    }
    // No block carries the rogue's digests: their transactions never ran.
    for s in &stored {
        for i in 0..3 {
            assert!(rpc(&net.apis[i], "plume_getTransaction", json!([hash_of(s)])).is_err());
        }
    }
    let h = height(&net, 0);
    assert_roots_equal(&net, h);
}

#[test]
fn a_certified_batch_one_validator_never_received_is_fetched_and_run() {
    let n = 4;
    let (_d, net) = net_without_last(n);
    let rogue = Rogue::start(&net.homes[3], Consensus::Silent);
    rogue.wait_connected(3, Duration::from_secs(30));
    wait_height(&net, 0, 2, Duration::from_secs(60));
    let txs = transfers(&net, 40, 3);
    let raw: Vec<Vec<u8>> = txs.iter().map(Transaction::to_bytes).collect();
    let id = rogue.batch_id(&raw, height(&net, 0) + 1000);
    // Validator 2 never gets the batch, only its certificate.
    for i in [0, 1] {
        rogue.send(i, Channel::Bulk, &batch_msg(3, id.expires, &raw));
    }
    std::thread::sleep(Duration::from_millis(500));
    for i in [0, 1] {
        rogue.send(i, Channel::Bulk, &NetMsg::VerifyRequest(id.digest));
    }
    let cert = rogue
        .certify(&id, &Verdict::all_valid(), Duration::from_secs(10))
        .expect("two holders and the author certify it");
    let fetches_before = metric(&net.apis[2], "plume_batch_fetches_total");
    for i in 0..3 {
        rogue.send(i, Channel::Bulk, &NetMsg::BatchCert(cert.clone()));
    }
    let h = hash_of(&txs[0]);
    let on0 = final_on(&net.apis[0], &h, Duration::from_secs(60)).expect("final on 0");
    let t0 = Instant::now();
    let on2 = final_on(&net.apis[2], &h, Duration::from_secs(60)).expect("fetched and run on 2");
    let lag = t0.elapsed();
    assert!(
        lag < Duration::from_secs(5),
        "validator 2 ran the batch {lag:?} after validator 0"
    );
    assert_eq!(on0["receipt"], on2["receipt"]);
    assert!(
        metric(&net.apis[2], "plume_batch_fetches_total") > fetches_before,
        "validator 2 fetched it"
    );
    let h = height(&net, 0);
    assert_roots_equal(&net, h);
}

#[test]
fn killing_the_author_right_after_its_batch_is_certified_loses_nothing() {
    let (_d, mut net) = support::net(4);
    wait_height(&net, 0, 2, Duration::from_secs(60));
    let txs = transfers(&net, 50, 5);
    let before = metric(&net.apis[3], "plume_batch_certs_formed_total");
    for t in &txs {
        submit(&net.apis[3], t).unwrap();
    }
    // Kill it as soon as everything it took is in certified batches: its
    // pool is empty and no own batch waits for a certificate.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let api = &net.apis[3];
        if metric(api, "plume_batch_certs_formed_total") > before
            && metric(api, "plume_mempool_depth") == 0
            && metric(api, "plume_mem_own_pending") == 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "validator 3 certified nothing");
        std::thread::sleep(Duration::from_millis(1));
    }
    net.kill9(3);
    for t in &txs {
        for i in 0..3 {
            let v = final_on(&net.apis[i], &hash_of(t), Duration::from_secs(60))
                .unwrap_or_else(|| panic!("lost on validator {i}"));
            assert_eq!(v["receipt"]["status"], "Success");
        }
    }
    let h = height(&net, 0);
    assert_roots_equal(&net, h);
}

/// A key `a·B + T` with `T` a point of order 8, and a signer for it: the
/// signatures verify under the cofactored rule (ZIP-215) and most fail the
/// cofactorless one, which is where a mixed rule splits validators.
struct MixedKey {
    a: curve25519_dalek::scalar::Scalar,
    key: [u8; 32],
}

impl MixedKey {
    fn new(seed: u64) -> MixedKey {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
        let a = curve25519_dalek::scalar::Scalar::from(seed * 7919 + 11);
        let key = (a * B + EIGHT_TORSION[1]).compress().to_bytes();
        MixedKey { a, key }
    }

    fn sign(&self, msg: &[u8], nonce: u64) -> [u8; 64] {
        use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
        use curve25519_dalek::scalar::Scalar;
        use sha2::{Digest as _, Sha512};
        let r = Scalar::from(nonce * 104_729 + 3);
        let big_r = (r * B).compress().to_bytes();
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(big_r)
                .chain_update(self.key)
                .chain_update(msg),
        );
        let s = r + k * self.a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&big_r);
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    }

    fn transfer(&self, net: &LocalNet, seq: u64) -> Transaction {
        let mut t = txbuild::transfer(
            &net.chain_id,
            &net.accounts[2],
            seq,
            &net.accounts[1].public_key().address(),
            1,
            None,
            Fees::default(),
            u64::MAX,
        );
        t.body.signers = vec![self.key];
        let h = t.body.signing_hash();
        t.signatures = vec![self.sign(&h.0, seq)];
        t
    }

    fn address(&self) -> plume_crypto::ed25519::Address {
        plume_crypto::ed25519::PublicKey::from_bytes(&self.key)
            .expect("a mixed-order point decodes")
            .address()
    }
}

#[test]
fn a_mixed_order_client_key_gets_one_verdict_on_every_validator_1000_times() {
    let (_d, net) = support::net(4);
    wait_height(&net, 0, 2, Duration::from_secs(60));
    let mk = MixedKey::new(1);
    // The rule the chain uses accepts them, alone and batched.
    let probe = mk.transfer(&net, 0);
    assert!(probe.verify_signatures().is_ok());
    // Fund the key's account.
    let fund = txbuild::transfer(
        &net.chain_id,
        &net.accounts[60],
        0,
        &mk.address(),
        // Enough for the fees of every transaction the mempool may hold
        // for it at once (they are checked together).
        1_000_000_000_000,
        None,
        Fees::default(),
        u64::MAX,
    );
    submit(&net.apis[0], &fund).unwrap();
    for i in 0..4 {
        final_on(&net.apis[i], &hash_of(&fund), Duration::from_secs(60)).expect("funded");
    }
    // 1,000 transactions from it, 250 through each validator in turn (each
    // validator's batches are verified by the author and other validators).
    let txs: Vec<Transaction> = (0..1000).map(|s| mk.transfer(&net, s)).collect();
    for (k, chunk) in txs.chunks(250).enumerate() {
        for t in chunk {
            submit(&net.apis[k], t).unwrap_or_else(|e| panic!("validator {k} refused: {e:?}"));
        }
        let last = chunk.last().unwrap();
        for i in 0..4 {
            final_on(&net.apis[i], &hash_of(last), Duration::from_secs(120))
                .unwrap_or_else(|| panic!("not final on validator {i}"));
        }
    }
    for t in &txs {
        let mut receipts = Vec::new();
        for i in 0..4 {
            let v = rpc(&net.apis[i], "plume_getTransaction", json!([hash_of(t)])).unwrap();
            receipts.push(v["receipt"].clone());
        }
        assert_eq!(receipts[0]["status"], "Success", "{}", receipts[0]);
        assert!(receipts.windows(2).all(|w| w[0] == w[1]), "{receipts:?}");
    }
    let h = height(&net, 0);
    assert_roots_equal(&net, h);
}

/// The rogue authors a certified batch of `k` transfers from accounts
/// `from..from+k` (stored by 0 and 1, certified with their votes) and
/// sends the certificate to every honest validator.
fn certified_batch(
    net: &LocalNet,
    rogue: &Rogue,
    from: usize,
    k: usize,
) -> (Vec<Transaction>, plume_protocol::batch::BatchCertificate) {
    let txs = transfers(net, from, k);
    let raw: Vec<Vec<u8>> = txs.iter().map(Transaction::to_bytes).collect();
    let id = rogue.batch_id(&raw, height(net, 0) + 1000);
    for i in [0, 1] {
        rogue.send(i, Channel::Bulk, &batch_msg(rogue.me, id.expires, &raw));
    }
    std::thread::sleep(Duration::from_millis(500));
    for i in [0, 1] {
        rogue.send(i, Channel::Bulk, &NetMsg::VerifyRequest(id.digest));
    }
    let cert = rogue
        .certify(&id, &Verdict::all_valid(), Duration::from_secs(10))
        .expect("two holders and the author certify it");
    for i in 0..3 {
        rogue.send(i, Channel::Bulk, &NetMsg::BatchCert(cert.clone()));
    }
    (txs, cert)
}

#[test]
fn a_leader_proposing_an_executed_batch_again_with_its_certificate_is_refused() {
    let (_d, net) = net_without_last(4);
    let rewrite: rogue::Rewrite = Default::default();
    let rogue = Rogue::start(&net.homes[3], Consensus::Propose(rewrite.clone()));
    rogue.wait_connected(3, Duration::from_secs(30));
    wait_height(&net, 0, 2, Duration::from_secs(60));
    let (txs, cert) = certified_batch(&net, &rogue, 70, 2);
    let mut first = Vec::new();
    for i in 0..3 {
        let v = final_on(&net.apis[i], &hash_of(&txs[0]), Duration::from_secs(60)).expect("final");
        first.push(v["height"].clone());
    }
    // Now every proposal of the rogue names that batch again, with its
    // genuine certificate attached; and it replays the certificate.
    *rewrite.lock().unwrap() = (vec![cert.digest()], vec![cert.clone()]);
    for i in 0..3 {
        rogue.send(i, Channel::Bulk, &NetMsg::BatchCert(cert.clone()));
    }
    let refused = |net: &LocalNet| -> u64 {
        (0..3)
            .map(|i| metric(&net.apis[i], "plume_proposals_refused_total"))
            .sum()
    };
    let proposals = || rogue.proposals.load(std::sync::atomic::Ordering::Relaxed);
    let (refused0, proposals0) = (refused(&net), proposals());
    let deadline = Instant::now() + Duration::from_secs(90);
    while proposals() < proposals0 + 3 {
        assert!(Instant::now() < deadline, "the rogue never led again");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(refused(&net) >= refused0 + 3, "refused as already final");
    // The chain goes on; the batch ran once, at its first height.
    let t = &transfers(&net, 80, 1)[0];
    submit(&net.apis[0], t).unwrap();
    for i in 0..3 {
        final_on(&net.apis[i], &hash_of(t), Duration::from_secs(60)).expect("the chain moves on");
        let v = rpc(
            &net.apis[i],
            "plume_getTransaction",
            json!([hash_of(&txs[0])]),
        )
        .unwrap();
        assert_eq!(v["height"], first[i]);
    }
    let h = height(&net, 0);
    assert_roots_equal(&net, h);
}

#[test]
fn a_batch_sent_under_another_validators_name_is_not_stored() {
    let (_d, net) = net_without_last(4);
    let rogue = Rogue::start(&net.homes[3], Consensus::Silent);
    rogue.wait_connected(3, Duration::from_secs(30));
    wait_height(&net, 0, 2, Duration::from_secs(60));
    let txs = transfers(&net, 90, 2);
    let mut raw: Vec<Vec<u8>> = txs.iter().map(Transaction::to_bytes).collect();
    let mut bad = txs[1].clone();
    bad.signatures[0][3] ^= 1;
    raw[1] = bad.to_bytes();
    let expires = height(&net, 0) + 1000;
    let votes = |net: &LocalNet| -> Vec<u64> {
        (0..3)
            .map(|i| metric(&net.apis[i], "plume_batch_votes_sent_total"))
            .collect()
    };
    let malformed = |net: &LocalNet| -> u64 {
        (0..3)
            .map(|i| metric(&net.apis[i], "plume_malformed_messages_total"))
            .sum()
    };
    let (v0, m0) = (votes(&net), malformed(&net));
    // Validator 0's name, to validator 0 itself and to 1 and 2.
    for i in 0..3 {
        rogue.send(i, Channel::Bulk, &batch_msg(0, expires, &raw));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(votes(&net), v0, "nobody voted for it");
    assert!(malformed(&net) >= m0 + 3, "each refused and counted it");
    for t in &txs {
        for i in 0..3 {
            assert!(rpc(&net.apis[i], "plume_getTransaction", json!([hash_of(t)])).is_err());
        }
    }
}
