//! The batcher driven the way a node drives it, four (or seven) of them
//! wired to each other through a small in-memory router that carries out
//! every action at once (persisting is immediately durable, votes are
//! really signed and certificates really checked).

use super::*;
use plume_crypto::ed25519::SigningKey;
use plume_protocol::batch::{stored_message, verified_message};
use plume_protocol::calls::Transfer;
use plume_protocol::consensus::QuorumCert;
use plume_protocol::tx::{Transaction, TxBody, NATIVE_ASSET};
use plume_protocol::{BlsScheme, PreparedTx};

const CHAIN: u64 = 7;

fn net_key(i: u32) -> SigningKey {
    SigningKey::from_bytes(&[100 + i as u8; 32])
}

fn committee(n: u32) -> BatchCommittee {
    BatchCommittee::new(
        (0..n)
            .map(|i| (net_key(i).public_key().to_bytes(), 1))
            .collect(),
    )
    .unwrap()
}

fn tx(sender: u8, seq: u64, good_sig: bool) -> (PreparedTx, Vec<u8>) {
    let key = SigningKey::from_bytes(&[sender; 32]);
    let mut body = TxBody::for_call(Transfer {
        asset: NATIVE_ASSET,
        to: [7; 32],
        amount: 1,
    });
    body.chain_id = "t".into();
    body.signers = vec![key.public_key().to_bytes()];
    body.sequence = seq;
    body.max_fee_per_gas = 10;
    body.gas_limit = 100_000;
    body.expiry_height = 1000;
    let mut t = Transaction::sign(body, &[&key]);
    if !good_sig {
        t.signatures[0][5] ^= 1;
    }
    let bytes = t.to_bytes();
    (PreparedTx::new(t), bytes)
}

/// What the router saw, per validator.
#[derive(Default)]
struct Seen {
    offered: Vec<Digest>,
    withdrawn: Vec<Digest>,
    executed: Vec<ExecJob<BlsScheme>>,
    verifications: usize,
    evidence: usize,
    fetches: Vec<(u32, Vec<Digest>)>,
}

struct Net {
    b: Vec<Batcher<BlsScheme>>,
    seen: Vec<Seen>,
    /// Validators whose inbound messages are dropped.
    down: BTreeSet<u32>,
    /// (from, to) links dropped.
    cut: BTreeSet<(u32, u32)>,
    /// Per validator, how many of its next signature checks its driver
    /// sheds (a full verifier queue).
    shed_verify: BTreeMap<u32, u32>,
    now: u64,
    committee: BatchCommittee,
    /// Height of the next block each validator finalizes.
    heights: Vec<u64>,
}

impl Net {
    fn new(n: u32) -> Net {
        let c = committee(n);
        Net {
            b: (0..n)
                .map(|i| {
                    Batcher::new(
                        BatcherConfig::new(i, c.clone(), 16, 1 << 20),
                        Mempool::default(),
                    )
                })
                .collect(),
            seen: (0..n).map(|_| Seen::default()).collect(),
            down: BTreeSet::new(),
            cut: BTreeSet::new(),
            shed_verify: BTreeMap::new(),
            now: 0,
            committee: c,
            heights: vec![1; n as usize],
        }
    }

    fn reaches(&self, from: u32, to: u32) -> bool {
        from == to
            || (!self.down.contains(&to)
                && !self.down.contains(&from)
                && !self.cut.contains(&(from, to)))
    }

    /// Carry out `acts` of validator `i` (and everything they cause).
    fn run(&mut self, i: u32, acts: Vec<Action<BlsScheme>>) {
        let mut queue: VecDeque<(u32, Action<BlsScheme>)> =
            acts.into_iter().map(|a| (i, a)).collect();
        while let Some((i, a)) = queue.pop_front() {
            let mut out = Vec::new();
            let iu = i as usize;
            match a {
                Action::Persist(LogItem::Batch(b)) => self.b[iu].on_durable(&[b.digest], &mut out),
                Action::Persist(LogItem::Cert(_)) | Action::Retire(_) => {}
                Action::SendBatch { batch, verdict, to } => {
                    for t in to {
                        if self.reaches(i, t) {
                            let copy = Arc::new(Batch::from_raw(
                                batch.author,
                                batch.expires,
                                batch.raw.clone(),
                            ));
                            let mut o = Vec::new();
                            self.b[t as usize].on_batch(
                                copy,
                                verdict.clone(),
                                None,
                                self.now,
                                &mut o,
                            );
                            queue.extend(o.into_iter().map(|a| (t, a)));
                        }
                    }
                }
                Action::Verify(b) if self.shed_verify.get(&i).is_some_and(|n| *n > 0) => {
                    *self.shed_verify.get_mut(&i).expect("present") -= 1;
                    self.b[iu].on_verify_shed(&b.digest);
                }
                Action::Verify(b) => {
                    self.seen[iu].verifications += 1;
                    let verdict = verdict_of(&b);
                    self.b[iu].on_verified(&b.digest, verdict, &mut out);
                }
                Action::Vote { id, verdict } => {
                    let m = match &verdict {
                        None => stored_message(CHAIN, &id),
                        Some(v) => verified_message(CHAIN, &id, v),
                    };
                    let vote = BatchVote {
                        id,
                        voter: i,
                        verdict,
                        sig: net_key(i).sign(m.as_bytes()).to_bytes(),
                    };
                    let to = id.author;
                    if self.reaches(i, to)
                        && self.b[to as usize].wants_vote(&id.digest, i, vote.verdict.is_some())
                    {
                        let mut o = Vec::new();
                        self.b[to as usize].on_vote(vote, self.now, &mut o);
                        queue.extend(o.into_iter().map(|a| (to, a)));
                    }
                }
                Action::SendCert(c) => {
                    c.verify(CHAIN, &self.committee)
                        .expect("formed certificates verify");
                    for t in 0..self.b.len() as u32 {
                        if t != i
                            && self.reaches(i, t)
                            && self.b[t as usize].wants_cert(&c.digest())
                        {
                            let mut o = Vec::new();
                            self.b[t as usize].on_cert(c.clone(), self.now, &mut o);
                            queue.extend(o.into_iter().map(|a| (t, a)));
                        }
                    }
                }
                Action::AskVerify { to, digest } => {
                    if self.reaches(i, to) {
                        let mut o = Vec::new();
                        self.b[to as usize].on_verify_request(&digest, i, &mut o);
                        queue.extend(o.into_iter().map(|a| (to, a)));
                    }
                }
                Action::Offer(ds) => self.seen[iu].offered.extend(ds.iter().map(|(d, _)| *d)),
                Action::Withdraw(ds) => self.seen[iu].withdrawn.extend(ds),
                Action::Fetch { from, digests } => {
                    self.seen[iu].fetches.push((from, digests.clone()));
                    if self.reaches(i, from) && self.reaches(from, i) {
                        for (b, v, c) in self.b[from as usize].serve(&digests) {
                            let copy =
                                Arc::new(Batch::from_raw(b.author, b.expires, b.raw.clone()));
                            self.b[iu].on_batch(copy, v, Some(c), self.now, &mut out);
                        }
                    }
                }
                Action::Evidence(_) => self.seen[iu].evidence += 1,
                Action::Execute(job) => self.seen[iu].executed.push(job),
            }
            queue.extend(out.into_iter().map(|a| (i, a)));
        }
    }

    fn tick(&mut self, i: u32) {
        let mut out = Vec::new();
        self.b[i as usize].tick(self.now, &mut out);
        self.run(i, out);
    }

    fn tick_all(&mut self) {
        for i in 0..self.b.len() as u32 {
            self.tick(i);
        }
    }

    fn finalize(&mut self, i: u32, payload: Vec<Digest>) {
        let h = self.heights[i as usize];
        self.heights[i as usize] += 1;
        let (block, proof) = finalized(payload, h);
        let mut out = Vec::new();
        self.b[i as usize].on_finalized(block, proof, self.now, &mut out);
        self.run(i, out);
    }

    fn submit(&mut self, i: u32, sender: u8, seq: u64) {
        let (p, bytes) = tx(sender, seq, true);
        self.b[i as usize].pool.insert(p, bytes, 0).unwrap();
    }
}

/// A verifier's verdict (the driver's check, `checks::verdict_of`).
fn verdict_of(b: &Batch) -> Verdict {
    crate::checks::verdict_of(b).0
}

fn finalized(payload: Vec<Digest>, height: u64) -> (Block<BlsScheme>, CommitProof<BlsScheme>) {
    let parent = QuorumCert {
        epoch: 0,
        view: height - 1,
        block: Digest([height as u8; 32]),
        height: height - 1,
        cert: None,
    };
    let block = Block::new(0, height, 0, payload, parent);
    let child = Block::new(0, height + 1, 0, vec![], QuorumCert::genesis(0, &block));
    let proof = CommitProof {
        child_qc: QuorumCert::genesis(0, &child),
        child,
    };
    (block, proof)
}

#[test]
fn a_batch_is_certified_offered_everywhere_and_verified_by_f_plus_one() {
    let mut net = Net::new(4);
    net.submit(0, 1, 0);
    net.submit(0, 2, 0);
    net.tick(0);
    let own = net.b[0].counters();
    assert_eq!(own.batches_cut, 1);
    assert_eq!(own.certs_formed, 1, "certified at once over a good network");
    // Every validator learned the certificate and offers the digest.
    net.tick_all();
    let d = net.seen[0].offered[0];
    for i in 0..4 {
        assert_eq!(net.seen[i].offered, vec![d], "validator {i}");
        assert!(net.b[i].cert(&d).is_some());
    }
    // Signature checks: the author's at submission plus exactly one
    // designated verifier here (f + 1 = 2 for n = 4).
    let checks: usize = net.seen.iter().map(|s| s.verifications).sum();
    assert_eq!(checks, 1);
    // Not offered twice before the re-offer interval.
    net.now += REPROPOSE_AFTER_US;
    net.tick_all();
    assert_eq!(net.seen[1].offered.len(), 1);
    net.now += 1;
    net.tick_all();
    assert_eq!(
        net.seen[1].offered.len(),
        2,
        "re-offered while not finalized"
    );
    // Finalized: executed with its verdict, and no more offers.
    for i in 0..4 {
        net.finalize(i, vec![d]);
        assert_eq!(net.seen[i as usize].executed.len(), 1);
        let job = &net.seen[i as usize].executed[0];
        let b0 = job.batches[0].as_ref().expect("runs");
        assert!(b0.runs(0) && b0.runs(1));
    }
    net.now += 10 * REPROPOSE_AFTER_US;
    net.tick_all();
    assert_eq!(net.seen[1].offered.len(), 2);
}

#[test]
fn a_silent_designated_verifier_is_replaced_after_the_timeout() {
    let mut net = Net::new(4);
    net.submit(0, 1, 0);
    // Find who verifies first for the batch 0 will cut, and silence it.
    let (p, bytes) = tx(1, 0, true);
    let digest =
        plume_protocol::batch::batch_digest(0, EXPIRY_BLOCKS, std::slice::from_ref(&bytes));
    let _ = p;
    let first = net.committee.designated(&digest, 0)[1];
    net.down.insert(first);
    net.tick(0);
    assert_eq!(
        net.b[0].counters().certs_formed,
        0,
        "stored votes alone do not certify"
    );
    net.now += VERIFY_TIMEOUT_US + 1;
    net.tick(0);
    let c = net.b[0].counters();
    assert_eq!(c.verify_requests, 1);
    assert_eq!(
        c.certs_formed, 1,
        "the next verifier of the ranking stood in"
    );
}

/// The digest of the batch validator 0 cuts from one transaction of
/// sender 1, and its verification ranking.
fn first_batch_ranking(net: &Net) -> (Digest, Vec<u32>) {
    let (_, bytes) = tx(1, 0, true);
    let digest =
        plume_protocol::batch::batch_digest(0, EXPIRY_BLOCKS, std::slice::from_ref(&bytes));
    (digest, net.committee.ranking(&digest, 0))
}

#[test]
fn checks_shed_by_full_verifier_queues_are_retried_until_the_batch_is_certified() {
    // The designated verifier is silent and both stand-ins shed their
    // first check (seen under a member's flood: the batch then waited for
    // a verdict that never came, and its transactions were never final).
    let mut net = Net::new(4);
    net.submit(0, 1, 0);
    let (_, ranking) = first_batch_ranking(&net);
    net.down.insert(ranking[0]);
    net.shed_verify.insert(ranking[1], 1);
    net.shed_verify.insert(ranking[2], 1);
    net.tick(0);
    for _ in 0..2 {
        net.now += VERIFY_TIMEOUT_US + 1;
        net.tick(0);
    }
    assert_eq!(net.b[0].counters().certs_formed, 0, "both checks were shed");
    assert_eq!(net.seen[ranking[1] as usize].verifications, 0);
    net.now += 1;
    net.tick(ranking[1]);
    net.tick(ranking[2]);
    assert_eq!(
        net.b[0].counters().certs_formed,
        1,
        "the shed checks ran on the next tick and certified the batch"
    );
}

#[test]
fn verify_requests_go_round_the_ranking_until_a_verified_vote_arrives() {
    let mut net = Net::new(4);
    net.submit(0, 1, 0);
    let (_, ranking) = first_batch_ranking(&net);
    net.down.insert(ranking[0]);
    net.tick(0);
    // Both stand-ins hold the batch and voted (unverified); the requests
    // asking them to verify are lost.
    net.cut.insert((0, ranking[1]));
    net.cut.insert((0, ranking[2]));
    for _ in 0..3 {
        net.now += VERIFY_TIMEOUT_US + 1;
        net.tick(0);
    }
    assert_eq!(net.b[0].counters().certs_formed, 0);
    net.cut.clear();
    for _ in 0..3 {
        net.now += VERIFY_TIMEOUT_US + 1;
        net.tick(0);
    }
    assert_eq!(
        net.b[0].counters().certs_formed,
        1,
        "asked again after one pass of the ranking: {:?}",
        net.b[0].counters()
    );
}

#[test]
fn a_lost_verified_vote_comes_back_without_a_second_check() {
    let mut net = Net::new(4);
    net.submit(0, 1, 0);
    let (_, ranking) = first_batch_ranking(&net);
    // The designated verifier checks, but its vote never arrives; the
    // other two are down.
    net.cut.insert((ranking[0], 0));
    net.down.insert(ranking[2]);
    net.tick(0);
    assert_eq!(net.seen[ranking[0] as usize].verifications, 1);
    net.cut.clear();
    net.down.clear();
    // The author resends the batch to the silent verifier and asks round
    // the ranking: the vote it cast comes back, with no second check.
    for _ in 0..4 {
        net.now += VERIFY_TIMEOUT_US + 1;
        net.tick(0);
    }
    assert_eq!(net.b[0].counters().certs_formed, 1);
    assert_eq!(net.seen[ranking[0] as usize].verifications, 1);
}

#[test]
fn a_lost_verified_vote_after_a_stored_one_is_sent_again_when_asked() {
    let mut net = Net::new(4);
    net.submit(0, 1, 0);
    let (_, ranking) = first_batch_ranking(&net);
    // The designated verifier is silent; the stand-ins vote stored.
    net.down.insert(ranking[0]);
    net.tick(0);
    assert_eq!(net.b[0].counters().certs_formed, 0);
    // The first stand-in is asked, checks, and its verified vote is lost
    // (the author already holds its stored vote: it is not silent, so the
    // batch is not resent to it).
    net.cut.insert((ranking[1], 0));
    net.now += VERIFY_TIMEOUT_US + 1;
    net.tick(0);
    assert_eq!(net.seen[ranking[1] as usize].verifications, 1);
    net.cut.clear();
    // The second stand-in (whose stored vote the author holds) can no
    // longer verify: only the first one's verified vote, sent again when
    // it is asked again, can certify.
    net.down.insert(ranking[2]);
    for _ in 0..4 {
        net.now += VERIFY_TIMEOUT_US + 1;
        net.tick(0);
    }
    assert_eq!(
        net.b[0].counters().certs_formed,
        1,
        "asked again, the first stand-in sent its verified vote again"
    );
    assert_eq!(net.seen[ranking[1] as usize].verifications, 1, "one check");
}

#[test]
fn a_lying_author_gets_evidence_and_no_certificate() {
    // Validator 0 is Byzantine: its batch holds a badly signed transaction
    // but it claims every item valid.
    let mut net = Net::new(4);
    let (_, good) = tx(1, 0, true);
    let (_, bad) = tx(2, 0, false);
    let batch = Arc::new(Batch::from_raw(0, EXPIRY_BLOCKS, vec![good, bad]));
    net.run(
        0,
        vec![Action::SendBatch {
            batch: batch.clone(),
            verdict: Verdict::all_valid(),
            to: vec![1, 2, 3],
        }],
    );
    let evidence: usize = net.seen.iter().map(|s| s.evidence).sum();
    assert_eq!(evidence, 1, "the designated verifier caught it");
    // No honest validator can learn a certificate of it with that verdict:
    // the honest verifiers' votes name the true verdict.
    for i in 1..4 {
        assert!(net.b[i].cert(&batch.digest).is_none());
    }
    // With the true verdict it would be certifiable; the true verdict
    // marks item 1.
    assert_eq!(verdict_of(&batch), Verdict::new(vec![1]));
}

#[test]
fn two_versions_of_one_batch_certify_at_most_one() {
    // A Byzantine author (validator 0) sends version X to some validators
    // and X' (one signature byte flipped) to the rest, asks every one of
    // them to verify, and aggregates whatever honest votes it gets, adding
    // its own for both versions. At most one version can be certified.
    for (n, split) in [(4u32, 2u32), (7, 4), (7, 3)] {
        let mut net = Net::new(n);
        let (_, t) = tx(1, 0, true);
        let mut t2 = t.clone();
        let last = t2.len() - 1;
        t2[last] ^= 1;
        let x = Arc::new(Batch::from_raw(0, EXPIRY_BLOCKS, vec![t]));
        let y = Arc::new(Batch::from_raw(0, EXPIRY_BLOCKS, vec![t2]));
        assert_ne!(x.digest, y.digest, "the digest binds the bytes");
        // The author is down for inbound traffic: honest votes to it are
        // captured below instead of delivered.
        let mut votes: BTreeMap<Digest, Vec<(u32, bool, [u8; 64])>> = BTreeMap::new();
        for (b, to) in [
            (x.clone(), (1..=split).collect::<Vec<_>>()),
            (y.clone(), (split + 1..n).collect()),
        ] {
            for t in &to {
                let copy = Arc::new(Batch::from_raw(0, EXPIRY_BLOCKS, b.raw.clone()));
                let mut out = Vec::new();
                net.b[*t as usize].on_batch(copy, Verdict::all_valid(), None, 0, &mut out);
                net.b[*t as usize].on_verify_request(&b.digest, 0, &mut out);
                // Carry out locally; capture the votes meant for 0.
                let mut queue: VecDeque<Action<BlsScheme>> = out.into();
                while let Some(a) = queue.pop_front() {
                    let mut more = Vec::new();
                    match a {
                        Action::Persist(LogItem::Batch(bb)) => {
                            net.b[*t as usize].on_durable(&[bb.digest], &mut more)
                        }
                        Action::Verify(bb) => {
                            let v = verdict_of(&bb);
                            net.b[*t as usize].on_verified(&bb.digest, v, &mut more)
                        }
                        Action::Vote { id, verdict } => {
                            let m = match &verdict {
                                None => stored_message(CHAIN, &id),
                                Some(v) => verified_message(CHAIN, &id, v),
                            };
                            let verified = verdict.as_ref() == Some(&Verdict::all_valid());
                            votes.entry(id.digest).or_default().push((
                                *t,
                                verified,
                                net_key(*t).sign(m.as_bytes()).to_bytes(),
                            ));
                        }
                        _ => {}
                    }
                    queue.extend(more);
                }
            }
        }
        let mut certifiable = 0;
        for b in [&x, &y] {
            let id = BatchId {
                epoch: 0,
                digest: b.digest,
                author: 0,
                items: 1,
                expires: EXPIRY_BLOCKS,
            };
            let mut vs = votes.get(&b.digest).cloned().unwrap_or_default();
            // Keep the best vote per voter (verified over stored).
            vs.sort_by_key(|v| (v.0, !v.1));
            vs.dedup_by_key(|v| v.0);
            let own = net_key(0)
                .sign(verified_message(CHAIN, &id, &Verdict::all_valid()).as_bytes())
                .to_bytes();
            vs.push((0, true, own));
            let cert = BatchCertificate::from_votes(id, Verdict::all_valid(), n as usize, &vs);
            if cert.verify(CHAIN, &net.committee).is_ok() {
                certifiable += 1;
            }
        }
        assert!(
            certifiable <= 1,
            "n = {n}, split {split}: both versions certified"
        );
        // With the larger side a quorum, that side is certifiable.
        if split + 1 >= net.committee.quorum_power() as u32 {
            assert_eq!(certifiable, 1, "n = {n}, split {split}");
        }
    }
}

#[test]
fn a_missing_batch_is_fetched_from_holders_with_retries() {
    let mut net = Net::new(4);
    net.submit(0, 1, 0);
    // Validator 3 never receives the batch from its author.
    net.cut.insert((0, 3));
    net.tick(0);
    if net.b[0].counters().certs_formed == 0 {
        // 3 was its designated verifier: the next one stands in.
        net.now += VERIFY_TIMEOUT_US + 1;
        net.tick(0);
    }
    assert_eq!(net.b[0].counters().certs_formed, 1);
    let d = *net.b[0].held_digests().iter().next().unwrap();
    // 3 heard of the certificate? The author's link to it is cut; give it
    // the certificate through a block instead: finalized without the batch.
    net.finalize(3, vec![d]);
    assert!(net.seen[3].executed.is_empty() || net.seen[3].executed.len() == 1);
    // It fetched from someone; if that holder was the author (cut), the
    // retry goes to the next holder.
    let mut rounds = 0;
    while net.seen[3].executed.is_empty() && rounds < 10 {
        net.now += FETCH_RETRY_US + 1;
        net.tick(3);
        rounds += 1;
    }
    assert_eq!(net.seen[3].executed.len(), 1, "fetched and executed");
    assert!(rounds <= 3, "within a few retries: {rounds}");
    assert!(!net.seen[3].fetches.is_empty());
}

#[test]
fn finalized_blocks_execute_in_order_once_their_batches_are_here() {
    let mut net = Net::new(4);
    net.submit(0, 1, 0);
    net.tick(0);
    net.submit(1, 2, 0);
    net.tick(1);
    net.tick_all();
    let all: Vec<Digest> = net.seen[2].offered.clone();
    assert_eq!(all.len(), 2);
    // Validator 2 finalizes [all[1]] then [all[0]]: executions in that order.
    net.finalize(2, vec![all[1]]);
    net.finalize(2, vec![all[0]]);
    let order: Vec<Digest> = net.seen[2]
        .executed
        .iter()
        .map(|j| j.batches[0].as_ref().unwrap().batch.digest)
        .collect();
    assert_eq!(order, vec![all[1], all[0]]);
}

#[test]
fn recovery_resumes_own_uncertified_batches() {
    let mut net = Net::new(4);
    net.down.extend([1, 2, 3]);
    net.submit(0, 1, 0);
    net.tick(0);
    assert_eq!(net.b[0].counters().certs_formed, 0);
    let d = *net.b[0].held_digests().iter().next().unwrap();
    let batch = net.b[0].held[&d].batch.clone();
    // Restart validator 0 from its log, with the others back.
    net.down.clear();
    let c = committee(4);
    net.b[0] = Batcher::new(BatcherConfig::new(0, c, 16, 1 << 20), Mempool::default());
    let mut out = Vec::new();
    net.b[0].recover(vec![LogItem::Batch(batch)], net.now, &mut out);
    net.run(0, out);
    assert_eq!(
        net.b[0].counters().certs_formed,
        1,
        "certified after the restart"
    );
}

#[test]
fn executed_batches_stay_in_the_log_and_are_served_after_a_restart() {
    let mut net = Net::new(4);
    net.submit(0, 1, 0);
    net.tick(0);
    net.tick_all();
    let d = net.seen[1].offered[0];
    net.finalize(1, vec![d]);
    let job = net.seen[1].executed.pop().expect("executed");
    let cb = job.batches[0].clone().expect("fresh");
    let cert = net.b[1].cert(&d).cloned().expect("certified");
    let retired = |acts: &[Action<BlsScheme>]| {
        acts.iter()
            .any(|a| matches!(a, Action::Retire(ds) if ds.contains(&d)))
    };
    // Executed: its log records are kept for KEEP_EXECUTED_BLOCKS blocks.
    let mut out = Vec::new();
    net.b[1].on_executed(&[d], &mut out);
    assert!(!retired(&out), "retired at once");
    // A restart of validator 1 with the block executed: the batch is
    // recovered (not held, not offered) and still served with its
    // certificate.
    let c = committee(4);
    net.b[1] = Batcher::new(BatcherConfig::new(1, c, 16, 1 << 20), Mempool::default());
    net.b[1].resume(1, vec![(1, vec![d])]);
    let mut out = Vec::new();
    net.b[1].recover(
        vec![LogItem::Batch(cb.batch.clone()), LogItem::Cert(cert)],
        net.now,
        &mut out,
    );
    assert!(!retired(&out));
    assert!(net.b[1].held_digests().is_empty());
    assert!(!out.iter().any(|a| matches!(a, Action::Offer(_))));
    let served = net.b[1].serve(&[d]);
    assert_eq!(
        served.len(),
        1,
        "an executed batch is served after a restart"
    );
    // KEEP_EXECUTED_BLOCKS later its records are retired.
    let mut out = Vec::new();
    for h in 2..2 + KEEP_EXECUTED_BLOCKS {
        let (block, proof) = finalized(Vec::new(), h);
        net.b[1].on_finalized(block, proof, net.now, &mut out);
    }
    net.b[1].on_executed(&[], &mut out);
    assert!(retired(&out), "retired {KEEP_EXECUTED_BLOCKS} blocks later");
}

/// (sender key byte, sequence) of every transaction of own batch `d`.
fn contents(b: &Batcher<BlsScheme>, d: &Digest) -> Vec<u64> {
    b.held[d]
        .batch
        .txs
        .iter()
        .flatten()
        .map(|t| t.tx.body.sequence)
        .collect()
}

#[test]
fn a_senders_next_transactions_wait_until_its_batch_is_finalized() {
    // Two certified batches of one author can be ordered either way; a
    // sender's later sequence must not be in a batch that could run first.
    let mut net = Net::new(4);
    let new_batch = |net: &Net, before: &BTreeSet<Digest>| -> Option<Digest> {
        net.b[0].held_digests().difference(before).next().copied()
    };
    net.submit(0, 1, 0);
    net.tick(0);
    let first = new_batch(&net, &BTreeSet::new()).expect("cut");
    net.submit(0, 1, 1);
    net.submit(0, 2, 0);
    let before = net.b[0].held_digests();
    net.tick(0);
    let second = new_batch(&net, &before).expect("a second batch was cut");
    assert_eq!(
        contents(&net.b[0], &second),
        vec![0],
        "only sender 2's transaction: sender 1 waits for its first batch"
    );
    assert_eq!(net.b[0].pool.len(), 1);
    assert_eq!(net.b[0].sizes().pool_senders_held, 2);
    let before = net.b[0].held_digests();
    net.tick(0);
    assert_eq!(new_batch(&net, &before), None, "still held back");
    net.finalize(0, vec![first]);
    net.tick(0);
    let third = new_batch(&net, &before).expect("released by finality");
    assert_eq!(contents(&net.b[0], &third), vec![1]);
    assert!(net.b[0].pool.is_empty());
}

#[test]
fn held_senders_are_released_when_their_batch_expires_unfinalized() {
    let mut net = Net::new(4);
    net.down.extend([1, 2, 3]);
    net.submit(0, 1, 0);
    net.tick(0);
    net.submit(0, 1, 1);
    net.tick(0);
    assert_eq!(net.b[0].pool.len(), 1, "held back");
    // Blocks go by without the batch (validator 0 cannot reach anyone):
    // past its expiry it is dropped and the sender released.
    for _ in 0..=EXPIRY_BLOCKS {
        net.finalize(0, vec![]);
    }
    net.tick(0);
    net.tick(0);
    assert!(net.b[0].pool.is_empty(), "released and batched again");
    assert_eq!(net.b[0].counters().own_expired_txs, 1);
}

#[test]
fn the_vote_rule_wants_certificates_no_repeats_nothing_final_or_expired_and_a_block_sized_total() {
    let mut net = Net::new(4);
    net.submit(0, 1, 0);
    net.submit(0, 2, 0);
    net.tick(0);
    net.submit(1, 3, 0);
    net.tick(1);
    net.tick_all();
    let certified: Vec<Digest> = net.seen[2].offered.clone();
    assert_eq!(certified.len(), 2);
    let b = &net.b[2];
    assert_eq!(b.check_proposal(&certified, 1, 3), Ok(()));
    assert_eq!(b.check_proposal(&[], 1, 3), Ok(()), "an empty block");
    assert_eq!(
        b.check_proposal(&certified, 1, 2),
        Err(Refusal::TooManyTxs { txs: 3, max: 2 }),
        "the certificates prove 2 + 1 transactions"
    );
    let unknown = Digest([9; 32]);
    assert_eq!(
        b.check_proposal(&[certified[0], unknown], 1, 10),
        Err(Refusal::Uncertified(unknown))
    );
    assert_eq!(
        b.check_proposal(&[certified[0], certified[0]], 1, 10),
        Err(Refusal::Repeated(certified[0]))
    );
    assert_eq!(
        b.check_proposal(&[certified[0]], EXPIRY_BLOCKS + 1, 10),
        Err(Refusal::Expired {
            digest: certified[0],
            expires: EXPIRY_BLOCKS
        })
    );
    // Once final, never again (a replayed certificate is no way back).
    let cert = net.b[2].cert(&certified[0]).unwrap().clone();
    net.finalize(2, vec![certified[0]]);
    assert_eq!(
        net.b[2].check_proposal(&[certified[0]], 2, 10),
        Err(Refusal::AlreadyFinal(certified[0]))
    );
    let mut out = Vec::new();
    net.b[2].on_cert(cert, net.now, &mut out);
    assert!(
        !net.b[2].wants_cert(&certified[0]),
        "a final batch's certificate is not wanted"
    );
    assert_eq!(
        net.b[2].check_proposal(&[certified[0]], 3, 10),
        Err(Refusal::AlreadyFinal(certified[0]))
    );
}

#[test]
fn a_batch_naming_us_or_empty_or_oversized_or_expired_is_not_stored() {
    let mut net = Net::new(4);
    let (_, t) = tx(1, 0, true);
    let cases = [
        (
            Batch::from_raw(1, EXPIRY_BLOCKS, vec![t.clone()]),
            "names us",
        ),
        (Batch::from_raw(0, EXPIRY_BLOCKS, vec![]), "empty"),
        (
            Batch::from_raw(0, EXPIRY_MAX + 1, vec![t.clone()]),
            "too far ahead",
        ),
    ];
    for (b, why) in cases {
        let mut out = Vec::new();
        net.b[1].on_batch(Arc::new(b), Verdict::all_valid(), None, 0, &mut out);
        assert!(out.is_empty(), "{why}: {out:?}");
        assert!(net.b[1].held_digests().is_empty(), "{why}");
    }
    // Expired: the chain is past it.
    for _ in 0..3 {
        net.finalize(1, vec![]);
    }
    let old = Batch::from_raw(0, 2, vec![t]);
    let mut out = Vec::new();
    net.b[1].on_batch(Arc::new(old), Verdict::all_valid(), None, 0, &mut out);
    assert!(out.is_empty() && net.b[1].held_digests().is_empty());
    assert_eq!(net.b[1].counters().refused, 4);
}

#[test]
fn a_lost_vote_is_sent_again_when_the_author_resends() {
    let mut net = Net::new(4);
    // Votes from 2 and 3 to the author are lost; then the links heal.
    net.cut.insert((2, 0));
    net.cut.insert((3, 0));
    net.submit(0, 1, 0);
    net.tick(0);
    assert_eq!(net.b[0].counters().certs_formed, 0);
    net.cut.clear();
    net.now += VERIFY_TIMEOUT_US + 1;
    net.tick(0);
    assert_eq!(
        net.b[0].counters().certs_formed,
        1,
        "the resend brought the votes again"
    );
}

#[test]
fn offers_take_authors_in_turn_with_certified_weights() {
    let mut net = Net::new(4);
    for s in 1..=3 {
        net.submit(0, s, 0);
        net.tick(0);
    }
    net.submit(1, 9, 0);
    net.submit(1, 10, 0);
    net.tick(1);
    // Validator 2 learns three batches of 0 and one of 1 (two txs).
    net.tick(2);
    let offered = net.seen[2].offered.clone();
    assert_eq!(offered.len(), 4);
    let author = |d: &Digest| net.b[2].cert(d).unwrap().id.author;
    let first_two: BTreeSet<u32> = offered[..2].iter().map(author).collect();
    assert_eq!(first_two.len(), 2, "one of each author first: {offered:?}");
    let of_1 = offered.iter().find(|d| author(d) == 1).unwrap();
    assert_eq!(net.b[2].cert(of_1).unwrap().id.items, 2);
}
