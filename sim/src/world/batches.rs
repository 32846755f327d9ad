//! Batches, their certification and their execution in the simulator,
//! through the node's own code: every validator runs the node's
//! [`Batcher`] (cut, store, vote, certify, offer, fetch, dispatch), peers'
//! batches, votes and certificates pass the node's checks
//! (`plume_mempool::checks`, the functions the node's signature role
//! calls), a proposal reaches the engine only through the node's vote rule
//! of certified batches ([`Batcher::check_proposal`]), and the batch log
//! survives a crash only up to its last sync.
//!
//! The workload is real signed transfers and two-party settlements
//! (`plume_client::txbuild`; one in eight a settlement both parties sign),
//! one in sixteen with a broken signature (refused at submission, as the
//! node's API does); one account in four has a mixed-order key (`a·B + T`,
//! `T` of small order), whose signatures only the cofactored rule
//! (ZIP-215, single and batched alike) accepts. Execution is the node's: what a block runs is picked by
//! `plume_mempool::pick_transactions` (the exec role's rule), run by
//! `plume_execution` (the standard ledger modules, fees included) over the
//! node's `Store` on an in-memory KV, committed with its transactions and
//! receipts; the state root is the store's.

use super::{Ev, ViolationKind, World};
use crate::keys::SimScheme;
use crate::world::{BatchMutation, Behavior};
use plume_consensus::{Input, Message};
use plume_crypto::ed25519::{Address, SigningKey};
use plume_crypto::{hash_parts, Digest, Domain};
use plume_mempool::{
    Action, Batch, Batcher, BatcherConfig, DigestRule, ExecJob, LogItem, Mempool, MempoolError,
    Sent,
};
use plume_protocol::batch::{BatchCertificate, BatchCommittee, BatchVote, Verdict};
use plume_storage::{MemoryKv, Store};
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

/// Most transactions in one batch.
pub const BATCH_TXS: usize = 8;
/// Most transactions in one block (the vote rule checks it).
pub const BLOCK_TXS_MAX: u64 = 64;
/// Accounts each validator's clients send from.
pub const ACCOUNTS_PER_VALIDATOR: usize = 2;
/// Virtual time a batch-log append takes to be synced.
pub const LOG_SYNC_US: u64 = 300;
/// A client whose account made no progress for this long while it has
/// transactions out sends again from the account's executed sequence.
pub const CLIENT_RESYNC_US: u64 = 400_000;

/// Batch traffic between validators (the node's bulk channel).
#[derive(Debug, Clone)]
pub(super) enum Bulk<S: SimScheme> {
    Batch {
        author: u32,
        expires: u64,
        verdict: Verdict,
        txs: Vec<Vec<u8>>,
        cert: Option<BatchCertificate>,
    },
    Vote(BatchVote),
    Cert(BatchCertificate),
    VerifyRequest(Digest),
    BatchRequest(Vec<Digest>),
    /// Blocks of the peer's store from this height, please.
    CatchUpRequest {
        from: u64,
    },
    /// A segment of the store.
    CatchUp(Vec<Arc<super::StoredBlock<S>>>),
}

impl<S: SimScheme> Bulk<S> {
    pub(super) fn fingerprint(&self) -> u64 {
        let d = match self {
            Bulk::Batch { author, txs, .. } => super::mix(u64::from(*author), txs.len() as u64),
            Bulk::Vote(v) => super::mix(super::d64(&v.id.digest), u64::from(v.voter)),
            Bulk::Cert(c) => super::d64(&c.digest()),
            Bulk::VerifyRequest(d) => super::d64(d),
            Bulk::BatchRequest(ds) => ds.len() as u64,
            Bulk::CatchUpRequest { from } => super::mix(13, *from),
            Bulk::CatchUp(seg) => super::mix(14, seg.len() as u64),
        };
        super::mix(11, d)
    }
}

/// A client account of the workload.
#[derive(Debug)]
pub(super) struct Account {
    key: SigningKey,
    /// A mixed-order key signing instead of `key`.
    mixed: Option<MixedKey>,
    addr: Address,
    /// The validator its client submits to.
    home: u32,
    /// Next sequence the client uses.
    next: u64,
    /// When its executed sequence (at its home) last moved.
    moved_at: u64,
    /// Its executed sequence at its home when last looked at.
    seen: u64,
}

/// A key `a·B + T` with `T` a nonzero point of small order: a valid
/// signer under the cofactored verification rule, refused by the
/// cofactorless one (the split the review's C-class finding was about).
#[derive(Debug, Clone)]
pub(super) struct MixedKey {
    a: curve25519_dalek::scalar::Scalar,
    key: [u8; 32],
}

impl MixedKey {
    fn new(seed: &[u8; 32], torsion: usize) -> MixedKey {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
        let a = curve25519_dalek::scalar::Scalar::from_bytes_mod_order(*seed);
        let key = (a * B + EIGHT_TORSION[1 + torsion % 7])
            .compress()
            .to_bytes();
        MixedKey { a, key }
    }

    /// A deterministic signature of `msg` (nonce from the key and the
    /// message, as Ed25519 derives it).
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
        use curve25519_dalek::scalar::Scalar;
        use sha2::{Digest as _, Sha512};
        let r = Scalar::from_hash(
            Sha512::new()
                .chain_update(self.a.as_bytes())
                .chain_update(msg),
        );
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
}

impl Account {
    /// The public key it signs with.
    fn public(&self) -> [u8; 32] {
        match &self.mixed {
            Some(m) => m.key,
            None => self.key.public_key().to_bytes(),
        }
    }

    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        match &self.mixed {
            Some(m) => m.sign(msg),
            None => self.key.sign(msg).to_bytes(),
        }
    }
}

/// `body` signed by `signers` (their own keys, mixed-order ones included).
fn signed(mut body: plume_protocol::TxBody, signers: &[&Account]) -> plume_protocol::Transaction {
    body.signers = signers.iter().map(|a| a.public()).collect();
    let h = body.signing_hash();
    plume_protocol::Transaction {
        signatures: signers.iter().map(|a| a.sign(&h.0)).collect(),
        body,
    }
}

/// Balance of every workload account at genesis.
pub const GENESIS_BALANCE: u128 = 1_000_000_000_000;

/// The chain parameters of a simulated network.
pub(super) fn params(seed: u64) -> plume_execution::Params {
    let mut p = plume_execution::Params::with_defaults(&chain_name(seed));
    p.block_txs_max = BLOCK_TXS_MAX as u32;
    p.block_txs_limit = BLOCK_TXS_MAX as u32;
    p
}

/// A fresh disk's store: the genesis state committed at height 0 (as the
/// node's setup does). Returns the KV and the genesis root.
pub(super) fn genesis_store(
    params: &plume_execution::Params,
    accounts: &[Account],
    genesis: &Digest,
) -> (MemoryKv, Digest) {
    let kv = MemoryKv::new();
    let mut store = Store::open(kv.clone()).expect("an empty store opens");
    let allocs: Vec<(Address, u128)> = accounts.iter().map(|a| (a.addr, GENESIS_BALANCE)).collect();
    let writes = plume_execution::genesis_writes(params, &allocs).expect("a valid genesis");
    store
        .commit_block_with_writes(
            &plume_storage::BlockCommit {
                height: 0,
                hash: *genesis,
                block: genesis.as_bytes(),
                qc: &[],
                txs: &[],
            },
            &writes,
        )
        .expect("the genesis commit");
    let root = store.committed_root();
    (kv, root)
}

/// An account's next sequence in a store's committed state.
pub(super) fn sequence_of(store: &Store<MemoryKv>, a: &Address) -> u64 {
    plume_execution::state::read_account(store, a).map_or(0, |acct| acct.sequence)
}

/// The batch log on the simulated disk: records, each durable once a sync
/// covered it.
pub(super) type Log = Vec<(LogItem, bool)>;

fn log_key(it: &LogItem) -> Digest {
    match it {
        LogItem::Batch(b) => b.digest,
        LogItem::Cert(c) => c.digest(),
    }
}

/// Validator `i`'s network key (it signs batch votes).
pub(super) fn net_key(seed: u64, i: u32) -> SigningKey {
    let d = hash_parts(
        Domain::Handshake,
        &[b"sim-net-key", &seed.to_le_bytes(), &i.to_le_bytes()],
    );
    SigningKey::from_bytes(&d.0)
}

/// The committee as batch certificates see it.
pub(super) fn batch_committee(seed: u64, n: usize) -> BatchCommittee {
    let members = (0..n as u32)
        .map(|i| (net_key(seed, i).public_key().to_bytes(), 1))
        .collect();
    BatchCommittee::new(members).expect("a valid committee")
}

/// The workload's accounts.
pub(super) fn accounts(seed: u64, n: usize) -> Vec<Account> {
    (0..n * ACCOUNTS_PER_VALIDATOR)
        .map(|k| {
            let d = hash_parts(
                Domain::Handshake,
                &[
                    b"sim-account",
                    &seed.to_le_bytes(),
                    &(k as u64).to_le_bytes(),
                ],
            );
            let key = SigningKey::from_bytes(&d.0);
            let mixed = (k % 4 == 3).then(|| MixedKey::new(&d.0, k));
            let addr = match &mixed {
                Some(m) => plume_protocol::tx::address_of_key(&m.key),
                None => key.public_key().address(),
            };
            Account {
                addr,
                mixed,
                key,
                home: (k / ACCOUNTS_PER_VALIDATOR) as u32,
                next: 0,
                moved_at: 0,
                seen: 0,
            }
        })
        .collect()
}

/// The chain id transactions carry.
pub(super) fn chain_name(seed: u64) -> String {
    format!("sim-{seed}")
}

impl<S: SimScheme> World<S> {
    /// A batcher for instance `inst`, from its disk: the committed height
    /// and recent payloads (the node reads them from its block store),
    /// then the durable records of its batch log.
    pub(super) fn boot_batcher(&mut self, inst: usize) {
        let index = self.insts[inst].index;
        let mut cfg = BatcherConfig::new(index, self.batch_committee.clone(), BATCH_TXS, 64 * 1024);
        cfg.block_txs_max = BLOCK_TXS_MAX;
        if self.cfg.batch_mutation == BatchMutation::BodyOnlyDigest {
            cfg.digest_rule = DigestRule::BodyOnly;
        }
        let mut b = Batcher::new(cfg, Mempool::new());
        let d = &self.insts[inst].disk;
        // The payload of the last FINALIZED_WINDOW heights, from the block
        // store (as the node reads it at start).
        let floor = d
            .committed
            .height
            .saturating_sub(plume_mempool::batcher::FINALIZED_WINDOW);
        let history = d
            .store
            .range(floor..)
            .map(|(h, sb)| (*h, sb.block.payload.clone()))
            .collect();
        b.resume(d.committed.height, history);
        let items: Vec<LogItem> = d
            .log
            .iter()
            .filter(|(_, durable)| *durable)
            .map(|(it, _)| it.clone())
            .collect();
        let mut out = Vec::new();
        b.recover(items, self.now, &mut out);
        self.insts[inst].batcher = Some(b);
        self.carry_out(inst, out);
    }

    /// The certificates of `payload` that instance `inst` holds (a
    /// proposal carries them, as the node's does).
    pub(super) fn certs_for(&self, inst: usize, payload: &[Digest]) -> Vec<BatchCertificate> {
        let Some(b) = self.insts[inst].batcher.as_ref() else {
            return Vec::new();
        };
        payload
            .iter()
            .filter_map(|d| b.cert(d).map(|c| (**c).clone()))
            .collect()
    }

    /// Clients submit: each validator's clients send one transfer per tick
    /// half the time (one in sixteen with a broken signature).
    pub(super) fn submit_workload(&mut self) {
        let chain = chain_name(self.cfg.seed);
        for k in 0..self.accounts.len() {
            if self.work.below(2) == 0 {
                continue;
            }
            let home = self.accounts[k].home;
            let Some(inst) = (0..self.insts.len())
                .find(|&i| self.insts[i].index == home && self.insts[i].batcher.is_some())
            else {
                continue;
            };
            let executed = match self.insts[inst].store.as_ref() {
                Some(st) => sequence_of(st, &self.accounts[k].addr),
                None => continue,
            };
            let a = &mut self.accounts[k];
            if executed != a.seen {
                a.seen = executed;
                a.moved_at = self.now;
            }
            if a.next < executed
                || (a.next > executed && self.now.saturating_sub(a.moved_at) > CLIENT_RESYNC_US)
            {
                a.next = executed;
                a.moved_at = self.now;
            }
            let other = self.work.below(self.accounts.len() as u64) as usize;
            let to = self.accounts[other].addr;
            let amount = u128::from(1 + self.work.below(1_000));
            let settle = other != k && self.kinds.below(8) == 0;
            let a = &self.accounts[k];
            let mut tx = if settle {
                // Both debited accounts sign; the payer's sequence is used.
                let b = &self.accounts[other];
                let legs = vec![
                    plume_protocol::calls::Leg {
                        asset: plume_protocol::tx::NATIVE_ASSET,
                        from: a.addr.0,
                        to: b.addr.0,
                        amount,
                    },
                    plume_protocol::calls::Leg {
                        asset: plume_protocol::tx::NATIVE_ASSET,
                        from: b.addr.0,
                        to: a.addr.0,
                        amount: amount / 2 + 1,
                    },
                ];
                let t = plume_client::txbuild::settle(
                    &chain,
                    &[&a.key, &b.key],
                    a.next,
                    legs,
                    plume_client::txbuild::Fees::default(),
                    1_000_000,
                );
                signed(t.body, &[a, b])
            } else {
                let t = plume_client::txbuild::transfer(
                    &chain,
                    &a.key,
                    a.next,
                    &to,
                    amount,
                    None,
                    plume_client::txbuild::Fees::default(),
                    1_000_000,
                );
                signed(t.body, &[a])
            };
            let broken = self.work.below(16) == 0;
            if broken {
                tx.signatures[0][7] ^= 0x20;
            }
            let raw = tx.to_bytes();
            let lying = self.insts[inst].behavior == Behavior::LyingVerdict && self.attacking();
            // The API's submission check (the node verifies every client
            // signature before its pool sees the transaction); a lying
            // author skips it.
            if broken && !lying {
                self.rejected_txs += 1;
                continue;
            }
            let mut ptx = plume_protocol::PreparedTx::new(tx);
            self.registry.prepare(&mut ptx);
            let now = self.now;
            let b = self.insts[inst].batcher.as_mut().expect("running");
            let view = plume_mempool::StateView::unlimited(&ptx, executed);
            match b.pool.insert_at(ptx, raw, view, now) {
                Ok(()) => self.accounts[k].next += 1,
                Err(MempoolError::SequenceUsed { next, .. }) => self.accounts[k].next = next,
                Err(_) => self.rejected_txs += 1,
            }
        }
    }

    /// The batcher's periodic step of instance `inst`.
    pub(super) fn batcher_tick(&mut self, inst: usize) {
        let now = self.now;
        let Some(b) = self.insts[inst].batcher.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        b.tick(now, &mut out);
        self.carry_out(inst, out);
        if self.insts[inst].behavior == Behavior::UncertifiedDigest && self.attacking() {
            // Offer its engine a digest no one certified: it will name it
            // in its proposals.
            let d = Digest(self.byz.bytes32());
            if let Some(e) = self.insts[inst].engine.as_mut() {
                let effects = e.step(Input::PayloadReady(vec![(d, 1)]));
                self.apply(inst, effects);
            }
        }
    }

    /// Send `msg` from instance `inst` to validator `to` over the bulk
    /// channel (the network's faults apply).
    pub(super) fn send_bulk(&mut self, inst: usize, to: u32, msg: Bulk<S>) {
        let from = self.insts[inst].index;
        if to == from {
            return;
        }
        let targets: Vec<usize> = (0..self.insts.len())
            .filter(|&j| j != inst && self.insts[j].index == to && self.link_ok(inst, j))
            .collect();
        for j in targets {
            if self.faults_on && self.net.chance_ppm(self.cfg.drop_ppm) {
                continue;
            }
            let delay = self.cfg.latency_us + self.net.below(self.cfg.jitter_us + 1);
            self.schedule(
                self.now + delay,
                Ev::Bulk {
                    to: j,
                    from,
                    msg: msg.clone(),
                },
            );
        }
    }

    fn send_bulk_all(&mut self, inst: usize, msg: Bulk<S>) {
        for t in 0..self.cfg.validators as u32 {
            self.send_bulk(inst, t, msg.clone());
        }
    }

    /// Carry out the batcher's actions of instance `inst` (and what they
    /// cause, in order), as the node's core role does.
    pub(super) fn carry_out(&mut self, inst: usize, actions: Vec<Action<S>>) {
        let mut queue: VecDeque<Action<S>> = actions.into();
        let me = self.insts[inst].index;
        let chain = self.cfg.seed;
        while let Some(a) = queue.pop_front() {
            let mut more = Vec::new();
            if self.insts[inst].batcher.is_none() {
                return; // crashed meanwhile
            }
            match a {
                Action::Persist(item) => {
                    let first = self.insts[inst].disk.log.iter().all(|(_, d)| *d);
                    self.insts[inst].disk.log.push((item, false));
                    if first {
                        let life = self.insts[inst].life;
                        self.schedule(self.now + LOG_SYNC_US, Ev::Durable { inst, life });
                    }
                }
                Action::Retire(ds) => {
                    let gone: BTreeSet<Digest> = ds.into_iter().collect();
                    self.insts[inst]
                        .disk
                        .log
                        .retain(|(it, _)| !gone.contains(&log_key(it)));
                }
                Action::SendBatch { batch, verdict, to } => {
                    self.send_batch(inst, &batch, verdict, to);
                }
                Action::Verify(b) => {
                    let (verdict, _) = plume_mempool::verdict_of(&b);
                    let x = self.insts[inst].batcher.as_mut().expect("checked");
                    x.on_verified(&b.digest, verdict, &mut more);
                }
                Action::Vote { id, verdict } => {
                    let mut vote = BatchVote {
                        id,
                        voter: me,
                        verdict,
                        sig: [0; 64],
                    };
                    vote.sig = self.net_keys[me as usize]
                        .sign(vote.message(chain).as_bytes())
                        .to_bytes();
                    if id.author == me {
                        let now = self.now;
                        let x = self.insts[inst].batcher.as_mut().expect("checked");
                        x.on_vote(vote, now, &mut more);
                    } else {
                        self.send_bulk(inst, id.author, Bulk::Vote(vote));
                    }
                }
                Action::SendCert(c) => self.send_bulk_all(inst, Bulk::Cert((*c).clone())),
                Action::AskVerify { to, digest } => {
                    self.send_bulk(inst, to, Bulk::VerifyRequest(digest))
                }
                Action::Offer(ds) => self.step(inst, Input::PayloadReady(ds)),
                Action::Withdraw(ds) => self.step(inst, Input::PayloadWithdrawn(ds)),
                Action::Fetch { from, digests } => {
                    self.send_bulk(inst, from, Bulk::BatchRequest(digests))
                }
                Action::Evidence(ev) => {
                    self.evidence += 1;
                    let author = ev.batch.author as usize;
                    if self.correct(inst) && self.cfg.behaviors[author] == Behavior::Honest {
                        self.violation(
                            ViolationKind::Validity,
                            format!(
                                "validator {me}: evidence against honest author {author} (batch {})",
                                ev.batch.digest
                            ),
                        );
                    }
                }
                Action::Execute(job) => {
                    // Execution takes 0.1-2 ms per block, in order; a crash
                    // before it is done loses the block from the disk.
                    let cost = self.net.range(100, 2_000);
                    let at = self.insts[inst].exec_busy_until.max(self.now) + cost;
                    self.insts[inst].exec_busy_until = at;
                    let life = self.insts[inst].life;
                    self.schedule(at, Ev::Executed { inst, life, job });
                }
            }
            queue.extend(more);
        }
    }

    pub(super) fn step(&mut self, inst: usize, input: Input<S>) {
        if let Some(e) = self.insts[inst].engine.as_mut() {
            let effects = e.step(input);
            self.apply(inst, effects);
        }
    }

    /// An author sends its batch: honestly, or by its strategy.
    fn send_batch(&mut self, inst: usize, batch: &Arc<Batch>, verdict: Verdict, to: Vec<u32>) {
        let behavior = self.insts[inst].behavior;
        let msg = |txs: Vec<Vec<u8>>| Bulk::Batch {
            author: batch.author,
            expires: batch.expires,
            verdict: verdict.clone(),
            txs,
            cert: None,
        };
        let attacking = self.attacking() && behavior != Behavior::Honest;
        match behavior {
            Behavior::TwoBatches if attacking && !batch.raw.is_empty() => {
                // Half the peers get the batch, the others a version with
                // one signature flipped (the same bodies).
                let mut other = batch.raw.clone();
                let last = other.len() - 1;
                let mut tx = plume_protocol::Transaction::from_bytes(&other[last])
                    .expect("own batches decode");
                tx.signatures[0][0] ^= 1;
                other[last] = tx.to_bytes();
                for t in to {
                    let m = if t % 2 == 0 {
                        msg(batch.raw.clone())
                    } else {
                        msg(other.clone())
                    };
                    self.send_bulk(inst, t, m);
                }
            }
            Behavior::WithholdBatches if attacking => {
                // Just enough peers to certify it (a quorum with itself);
                // the others must fetch it, and it serves no fetch.
                let q = self.batch_committee.quorum_power() as usize;
                for t in to.into_iter().take(q.saturating_sub(1)) {
                    self.send_bulk(inst, t, msg(batch.raw.clone()));
                }
            }
            _ => {
                for t in to {
                    self.send_bulk(inst, t, msg(batch.raw.clone()));
                }
            }
        }
    }

    /// Batch traffic arrives at instance `to`: the node's checks, then its
    /// batcher.
    pub(super) fn on_bulk(&mut self, to: usize, from: u32, msg: Bulk<S>) {
        if self.insts[to].batcher.is_none() {
            return;
        }
        let me = self.insts[to].index;
        let chain = self.cfg.seed;
        let now = self.now;
        let rule = if self.cfg.batch_mutation == BatchMutation::BodyOnlyDigest {
            DigestRule::BodyOnly
        } else {
            DigestRule::Bound
        };
        let mut out = Vec::new();
        match msg {
            Bulk::Batch {
                author,
                expires,
                verdict,
                txs,
                cert,
            } => {
                let b = self.insts[to].batcher.as_ref().expect("checked");
                if let Some(c) = &cert {
                    if !b.wants_batch(&c.digest()) && !b.wants_cert(&c.digest()) {
                        return;
                    }
                }
                let opened = plume_mempool::open_peer_batch(
                    Sent {
                        from,
                        author,
                        expires,
                    },
                    txs,
                    cert,
                    me,
                    chain,
                    &self.batch_committee,
                    rule,
                    &|t| self.registry.prepare(t),
                );
                match opened {
                    Ok((batch, cert)) => {
                        let b = self.insts[to].batcher.as_mut().expect("checked");
                        b.on_batch(batch, verdict, cert, now, &mut out);
                    }
                    Err(_) => self.refused_bulk += 1,
                }
            }
            Bulk::Vote(v) => {
                let b = self.insts[to].batcher.as_ref().expect("checked");
                if v.voter == from
                    && b.wants_vote(&v.id.digest, v.voter, v.verdict.is_some())
                    && plume_mempool::vote_is_valid(&v, chain, &self.batch_committee)
                {
                    let b = self.insts[to].batcher.as_mut().expect("checked");
                    b.on_vote(v, now, &mut out);
                } else {
                    self.refused_bulk += 1;
                }
            }
            Bulk::Cert(c) => {
                let b = self.insts[to].batcher.as_ref().expect("checked");
                if b.wants_cert(&c.digest()) {
                    if c.verify(chain, &self.batch_committee).is_ok() {
                        let b = self.insts[to].batcher.as_mut().expect("checked");
                        b.on_cert(Arc::new(c), now, &mut out);
                    } else {
                        self.refused_bulk += 1;
                    }
                }
            }
            Bulk::CatchUpRequest { from: height } => self.serve_segment(to, from, height),
            Bulk::CatchUp(seg) => self.on_segment(to, from, seg),
            Bulk::VerifyRequest(d) => {
                let b = self.insts[to].batcher.as_mut().expect("checked");
                b.on_verify_request(&d, from, &mut out);
            }
            Bulk::BatchRequest(mut ds) => {
                if self.insts[to].behavior == Behavior::WithholdBatches && self.attacking() {
                    return;
                }
                ds.sort_unstable();
                ds.dedup();
                let b = self.insts[to].batcher.as_ref().expect("checked");
                let served = b.serve(&ds);
                for (batch, verdict, c) in served {
                    let m = Bulk::Batch {
                        author: batch.author,
                        expires: batch.expires,
                        verdict,
                        txs: batch.raw.clone(),
                        cert: Some((*c).clone()),
                    };
                    self.send_bulk(to, from, m);
                }
            }
        }
        self.carry_out(to, out);
    }

    /// A proposal reaches the engine of instance `to` only through the
    /// node's vote rule of certified batches: every batch it names has a
    /// certificate, known or attached (and checked).
    pub(super) fn on_proposal(
        &mut self,
        to: usize,
        from: u32,
        msg: Message<S>,
        certs: Vec<BatchCertificate>,
    ) {
        let Message::Proposal(p) = &msg else {
            return self.step(to, Input::Message { from, msg });
        };
        let (Some(e), Some(b)) = (
            self.insts[to].engine.as_ref(),
            self.insts[to].batcher.as_ref(),
        ) else {
            return;
        };
        let blk = &p.block;
        let view = e.view();
        if blk.proposer != from
            || blk.view + 1 < view
            || blk.view > view + plume_consensus::engine::VIEW_AHEAD_MAX
        {
            return self.step(to, Input::Message { from, msg });
        }
        let skip = self.cfg.batch_mutation == BatchMutation::SkipVoteRule;
        let mut missing: BTreeSet<Digest> = blk
            .payload
            .iter()
            .filter(|d| b.cert(d).is_none())
            .copied()
            .collect();
        let needed: Vec<BatchCertificate> = certs
            .into_iter()
            .filter(|c| missing.remove(&c.digest()))
            .collect();
        if !missing.is_empty() && !skip {
            self.proposals_refused += 1;
            return;
        }
        let chain = self.cfg.seed;
        let now = self.now;
        let mut out = Vec::new();
        for c in needed {
            if c.verify(chain, &self.batch_committee).is_ok() {
                let b = self.insts[to].batcher.as_mut().expect("checked");
                b.on_cert(Arc::new(c), now, &mut out);
            }
        }
        self.carry_out(to, out);
        let Some(b) = self.insts[to].batcher.as_ref() else {
            return;
        };
        if !skip {
            if let Message::Proposal(p) = &msg {
                if b.check_proposal(&p.block.payload, p.block.height, BLOCK_TXS_MAX)
                    .is_err()
                {
                    self.proposals_refused += 1;
                    return;
                }
            }
        }
        self.step(to, Input::Message { from, msg });
    }

    /// The batch log's sync covered every record appended so far.
    pub(super) fn durable(&mut self, inst: usize) {
        let mut digests = Vec::new();
        for (it, d) in self.insts[inst].disk.log.iter_mut() {
            if !*d {
                *d = true;
                if let LogItem::Batch(b) = it {
                    digests.push(b.digest);
                }
            }
        }
        let mut out = Vec::new();
        if let Some(b) = self.insts[inst].batcher.as_mut() {
            b.on_durable(&digests, &mut out);
        }
        self.carry_out(inst, out);
    }

    /// Execute `job` on instance `inst` as the node's exec role does:
    /// pick its transactions, run them through the ledger modules over the
    /// store, stage the writes. Returns the new state root and the block's
    /// transaction entries (id, encoding, receipt), or `None` when the
    /// block cannot execute (a violation is recorded).
    #[allow(clippy::type_complexity)]
    pub(super) fn execute(
        &mut self,
        inst: usize,
        job: &ExecJob<S>,
    ) -> Option<(Digest, Vec<(Digest, Vec<u8>, Vec<u8>)>)> {
        let correct = self.correct(inst);
        let who = self.insts[inst].index;
        let x = &mut self.insts[inst];
        let store = x.store.as_ref()?;
        let executed = &x.executed_batches;
        let mut group = BTreeSet::new();
        let picked = plume_mempool::pick_transactions(
            &job.batches,
            &|d| executed.contains(d),
            &mut |h| -> Result<bool, plume_storage::StorageError> {
                Ok(group.insert(*h) && !store.has_tx(h)?)
            },
        );
        let picked = match picked {
            Ok(p) => p,
            Err(e) => {
                self.violation(
                    ViolationKind::Validity,
                    format!("validator {who}: tx index: {e}"),
                );
                return None;
            }
        };
        if picked.txs.len() as u64 > BLOCK_TXS_MAX {
            self.violation(
                ViolationKind::Validity,
                format!(
                    "validator {who}: finalized block {} carries {} transactions, over block_txs_max",
                    job.block.height,
                    picked.txs.len()
                ),
            );
            return None;
        }
        let proposer = self
            .net_keys
            .get(job.block.proposer as usize)
            .map(|k| k.public_key().address())
            .unwrap_or_default();
        let ctx = plume_execution::BlockContext {
            height: job.block.height,
            proposer,
            time_ms: job.block.time_ms,
        };
        let store = self.insts[inst].store.as_ref().expect("checked");
        let out = plume_execution::apply_block_sharded_with(
            store,
            &self.params,
            &self.registry,
            &ctx,
            &picked.txs,
            1,
            &|_| {},
        );
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                self.violation(
                    ViolationKind::Validity,
                    format!("validator {who}: executing block {}: {e}", job.block.height),
                );
                return None;
            }
        };
        let x = &mut self.insts[inst];
        let store = x.store.as_mut().expect("checked");
        let root = match plume_storage::AuthenticatedState::apply(store, &out.writes) {
            Ok(r) => r,
            Err(e) => {
                self.violation(
                    ViolationKind::Validity,
                    format!("validator {who}: staging: {e}"),
                );
                return None;
            }
        };
        x.executed_batches.extend(picked.batches.iter().copied());
        if correct {
            for (t, r) in picked.txs.iter().zip(&out.receipts) {
                if r.status != plume_protocol::Status::Success {
                    continue;
                }
                self.txs_succeeded += 1;
                if t.tx.body.module == plume_protocol::calls::MODULE_SETTLEMENT {
                    self.settlements_succeeded += 1;
                }
                if t.tx.body.signers.iter().any(|k| {
                    self.accounts
                        .iter()
                        .any(|a| a.mixed.as_ref().is_some_and(|m| &m.key == k))
                }) {
                    self.mixed_succeeded += 1;
                }
            }
        }
        let mut entries = Vec::with_capacity(picked.txs.len());
        let mut bad_sig: Option<Digest> = None;
        for ((tx, raw), receipt) in picked.txs.iter().zip(picked.raws).zip(&out.receipts) {
            if correct && bad_sig.is_none() {
                let leaf = plume_protocol::batch::item_leaf(&raw);
                let valid = *self.sig_checked.entry(leaf).or_insert_with(|| {
                    plume_protocol::tx::verify_batch(std::slice::from_ref(&tx.tx)).is_empty()
                });
                if !valid {
                    bad_sig = Some(tx.hash);
                }
            }
            entries.push((tx.hash, raw, receipt.to_bytes()));
        }
        if let Some(h) = bad_sig {
            self.violation(
                ViolationKind::Validity,
                format!(
                    "validator {who}: executed transaction {h}, whose signature does not verify"
                ),
            );
        }
        Some((root, entries))
    }

    /// After a block committed: the pool's sequence cursors and the
    /// batcher learn it.
    pub(super) fn after_commit(&mut self, inst: usize, payload: &[Digest]) {
        let x = &mut self.insts[inst];
        let Some(b) = x.batcher.as_mut() else {
            return;
        };
        if let Some(st) = x.store.as_ref() {
            for a in &self.accounts {
                if b.pool.pending_of(&a.addr) > 0 {
                    b.pool.advance(&a.addr, sequence_of(st, &a.addr));
                }
            }
        }
        let mut out = Vec::new();
        b.on_executed(payload, &mut out);
        self.carry_out(inst, out);
    }
}
