//! A Byzantine validator for the multi-process tests and `plume bench
//! attack`: it holds one validator's real keys and speaks the real wire
//! protocol over the real transport, but its behaviour is the caller's.
//! The caller sends it raw frames and reads everything it receives;
//! optionally it runs a real consensus engine whose proposals it rewrites
//! (to name batches nobody certified). [`flood_kit`] builds the messages of
//! a peer flood. Never part of a validator: `plume start` does not use it.

use crate::setup::NodeSetup;
use crate::wire::{self, NetMsg};
use plume_consensus::{BlsScheme, Effect, Engine, Input, Message, Timer};
use plume_crypto::ed25519::SigningKey;
use plume_crypto::Digest;
use plume_netstack::{
    AnyTransport, ChainId, Channel, Endpoint, GlommioTcp, NetConfig, PeerAddr, PeerId,
};
use plume_protocol::batch::{
    stored_message, verified_message, BatchCertificate, BatchCommittee, BatchId, BatchVote, Verdict,
};
use plume_protocol::consensus::{Block, Proposal};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the rogue's proposals carry instead of what its engine chose: the
/// payload and the certificates attached (the test may change it while
/// the rogue runs).
pub type Rewrite = Arc<std::sync::Mutex<(Vec<Digest>, Vec<BatchCertificate>)>>;

/// What the rogue does in consensus.
#[derive(Clone, Debug)]
pub enum Consensus {
    /// Nothing: it never votes or proposes.
    Silent,
    /// Runs a real engine, but every proposal it makes names the payload
    /// of the rewrite, with its certificates.
    Propose(Rewrite),
}

impl Consensus {
    /// Proposals naming `payload` with no certificates.
    pub fn propose_uncertified(payload: Vec<Digest>) -> Consensus {
        Consensus::Propose(Arc::new(std::sync::Mutex::new((payload, Vec::new()))))
    }
}

/// A running rogue validator.
pub struct Rogue {
    /// Its committee index.
    pub me: u32,
    /// Consensus chain id.
    pub chain: u64,
    /// Committee as batch certificates see it.
    pub committee: BatchCommittee,
    key: SigningKey,
    out: flume::Sender<(u32, Channel, Vec<u8>)>,
    /// Everything it received, decoded, with the sender's index.
    pub inbound: flume::Receiver<(u32, NetMsg)>,
    connected: Arc<AtomicUsize>,
    /// Proposals its engine made (then rewritten).
    pub proposals: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Rogue {
    /// Start validator `home`'s identity as a rogue (the validator's own
    /// process must not run).
    pub fn start(home: &Path, mode: Consensus) -> Rogue {
        let setup = NodeSetup::load(home, None).expect("rogue setup");
        let me = setup.me;
        let chain = setup.chain_u64;
        let committee = setup.batch_committee.clone();
        let key = SigningKey::from_bytes(&setup.keys.network.to_bytes());
        let (out_tx, out_rx) = flume::unbounded::<(u32, Channel, Vec<u8>)>();
        let (in_tx, in_rx) = flume::unbounded::<(u32, NetMsg)>();
        let connected = Arc::new(AtomicUsize::new(0));
        let proposals = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c2, p2, s2) = (connected.clone(), proposals.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
                .make()
                .expect("rogue executor")
                .run(run(setup, mode, out_rx, in_tx, c2, p2, s2));
        });
        Rogue {
            me,
            chain,
            committee,
            key,
            out: out_tx,
            inbound: in_rx,
            connected,
            proposals,
            stop,
            thread: Some(thread),
        }
    }

    /// Wait until connected to `n` peers.
    pub fn wait_connected(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.connected.load(Ordering::Relaxed) < n {
            assert!(
                Instant::now() < deadline,
                "rogue did not connect to {n} peers"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A handle another thread can send through (and drain inbound with).
    pub fn sender(&self) -> RogueSender {
        RogueSender {
            out: self.out.clone(),
            inbound: self.inbound.clone(),
        }
    }

    /// Send `msg` to validator `to`.
    pub fn send(&self, to: u32, ch: Channel, msg: &NetMsg) {
        self.out
            .send((to, ch, wire::encode(msg)))
            .expect("rogue running");
    }

    /// The id of a batch of ours with these items, proposable up to height
    /// `expires`.
    pub fn batch_id(&self, txs: &[Vec<u8>], expires: u64) -> BatchId {
        BatchId {
            epoch: 0,
            digest: plume_protocol::batch::batch_digest(self.me, expires, txs),
            author: self.me,
            items: txs.len() as u32,
            expires,
        }
    }

    /// Our own signed votes (stored, and verified with `verdict`).
    pub fn own_votes(&self, id: &BatchId, verdict: &Verdict) -> [(u32, bool, [u8; 64]); 2] {
        let s = self
            .key
            .sign(stored_message(self.chain, id).as_bytes())
            .to_bytes();
        let v = self
            .key
            .sign(verified_message(self.chain, id, verdict).as_bytes())
            .to_bytes();
        [(self.me, false, s), (self.me, true, v)]
    }

    /// Collect the votes peers send for `id` for `wait`, and form a
    /// certificate with ours if they reach a quorum and validity.
    pub fn certify(
        &self,
        id: &BatchId,
        verdict: &Verdict,
        wait: Duration,
    ) -> Option<BatchCertificate> {
        let deadline = Instant::now() + wait;
        let mut votes: std::collections::BTreeMap<u32, (bool, [u8; 64])> = Default::default();
        let own = self.own_votes(id, verdict);
        votes.insert(self.me, (true, own[1].2));
        while Instant::now() < deadline {
            let Ok((from, msg)) = self.inbound.recv_timeout(Duration::from_millis(20)) else {
                continue;
            };
            if let NetMsg::BatchVote(BatchVote {
                id: vid,
                voter,
                verdict: v,
                sig,
            }) = msg
            {
                if vid != *id || voter != from {
                    continue;
                }
                let verified = v.as_ref() == Some(verdict);
                if v.is_some() && !verified {
                    continue;
                }
                let e = votes.entry(voter).or_insert((verified, sig));
                if verified && !e.0 {
                    *e = (true, sig);
                }
            }
            let c = &self.committee;
            let all = c.power_of_members(votes.keys().copied());
            let ver = c.power_of_members(votes.iter().filter(|v| v.1 .0).map(|v| *v.0));
            if all >= c.quorum_power() && ver >= c.validity_power() {
                let list: Vec<(u32, bool, [u8; 64])> =
                    votes.iter().map(|(i, (v, s))| (*i, *v, *s)).collect();
                let cert = BatchCertificate::from_votes(*id, verdict.clone(), c.len(), &list);
                cert.verify(self.chain, c)
                    .expect("a certificate we formed verifies");
                return Some(cert);
            }
        }
        None
    }
}

/// Sends through a running [`Rogue`] from another thread.
#[derive(Clone)]
pub struct RogueSender {
    out: flume::Sender<(u32, Channel, Vec<u8>)>,
    inbound: flume::Receiver<(u32, NetMsg)>,
}

impl RogueSender {
    /// Send `msg` to validator `to` (dropped once the rogue stopped).
    pub fn send(&self, to: u32, ch: Channel, msg: &NetMsg) {
        let _ = self.out.send((to, ch, wire::encode(msg)));
    }

    /// Drop what the rogue received so far.
    pub fn drain(&self) {
        while self.inbound.try_recv().is_ok() {}
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Consensus messages received, with their sender.
type Inbox = VecDeque<(u32, Message<BlsScheme>)>;

async fn run(
    setup: NodeSetup,
    mode: Consensus,
    out: flume::Receiver<(u32, Channel, Vec<u8>)>,
    inbound: flume::Sender<(u32, NetMsg)>,
    connected: Arc<AtomicUsize>,
    proposals: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let g = &setup.genesis;
    let listen: std::net::SocketAddr = setup.config.node.listen_addr.parse().unwrap();
    let mut net = NetConfig::new(listen, ChainId::from_name(&g.chain_id));
    let mut peers = Vec::new();
    for v in &g.validators {
        let id = PeerId(
            plume_crypto::ed25519::PublicKey::from_hex(&v.network_key)
                .unwrap()
                .to_bytes(),
        );
        peers.push(id);
        net.allow.push(id);
        net.peers.push(PeerAddr {
            id,
            addr: v.address.parse().unwrap(),
        });
    }
    net.frame_payload_max = wire::FRAME_BYTES_MAX;
    let key = SigningKey::from_bytes(&setup.keys.network.to_bytes());
    let ep =
        Rc::new(Endpoint::start(AnyTransport::Tcp(GlommioTcp), net, key).expect("rogue endpoint"));
    let me = setup.me;
    let consensus_in: Rc<RefCell<Inbox>> = Rc::default();
    {
        let ep = ep.clone();
        let peers = peers.clone();
        let consensus_in = consensus_in.clone();
        let engine_on = matches!(mode, Consensus::Propose(_));
        glommio::spawn_local(async move {
            loop {
                let inb = ep.recv().await;
                let Some(from) = peers.iter().position(|p| *p == inb.peer) else {
                    continue;
                };
                let Ok(msg) = wire::decode(inb.payload()) else {
                    continue;
                };
                if engine_on {
                    match &msg {
                        NetMsg::Consensus(m) | NetMsg::Proposal { msg: m, .. } => {
                            consensus_in
                                .borrow_mut()
                                .push_back((from as u32, m.clone()));
                        }
                        _ => {}
                    }
                }
                if inbound.send((from as u32, msg)).is_err() {
                    return;
                }
            }
        })
        .detach();
    }
    let mut engine = match &mode {
        Consensus::Silent => None,
        Consensus::Propose(_) => {
            let timeout = g.params.view_timeout_ms * 1000;
            let cfg = plume_consensus::Config {
                me,
                epoch: 0,
                committee: setup.committee.clone(),
                chain_id: setup.chain_u64,
                base_timeout_us: timeout,
                max_timeout_us: timeout * 16,
                jitter_seed: 1,
                commit_rule: plume_consensus::CommitRule::TwoChain,
                leader_reputation: true,
                epoch_length: 0,
                payload_weight_max: 1,
                idle_interval_us: g.params.idle_block_interval_ms * 1000,
                // It executes nothing: its proposals carry no state root
                // (honest validators refuse them: a rogue's in any case).
                state_roots: false,
                mutation: plume_consensus::Mutation::None,
            };
            let sk =
                plume_crypto::bls::SecretKey::from_bytes(&setup.keys.consensus.to_bytes()).unwrap();
            Some(Engine::<BlsScheme>::new(cfg, sk, None))
        }
    };
    let rewrite = match &mode {
        Consensus::Propose(r) => Some(r.clone()),
        Consensus::Silent => None,
    };
    let mut timers: Vec<(Timer, Instant)> = Vec::new();
    let wall_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    let mut effects: Vec<Effect<BlsScheme>> = match engine.as_mut() {
        Some(e) => {
            e.set_clock(wall_ms());
            e.step(Input::Start)
        }
        None => Vec::new(),
    };
    while !stop.load(Ordering::Relaxed) {
        connected.store(ep.connected_peers().len(), Ordering::Relaxed);
        while let Ok((to, ch, bytes)) = out.try_recv() {
            if let Some(p) = peers.get(to as usize) {
                let _ = ep.send(p, ch, &bytes).await;
            }
        }
        if let Some(e) = engine.as_mut() {
            // Its block times and vote bound follow the wall clock, as an
            // honest node's do.
            e.set_clock(wall_ms());
            let msgs: Vec<_> = consensus_in.borrow_mut().drain(..).collect();
            for (from, msg) in msgs {
                effects.extend(e.step(Input::Message { from, msg }));
            }
            let now = Instant::now();
            let due: Vec<Timer> = timers.iter().filter(|t| t.1 <= now).map(|t| t.0).collect();
            timers.retain(|t| t.1 > now);
            for t in due {
                effects.extend(e.step(Input::TimerFired(t)));
            }
        }
        for eff in effects.drain(..) {
            match eff {
                Effect::Send { to, msg } => {
                    if let Some(p) = peers.get(to as usize) {
                        let _ = ep.try_send(
                            p,
                            Channel::Consensus,
                            &wire::encode(&NetMsg::Consensus(msg)),
                        );
                    }
                }
                Effect::Broadcast(Message::Proposal(p)) => {
                    proposals.fetch_add(1, Ordering::Relaxed);
                    let b = &p.block;
                    let (payload, certs) = rewrite
                        .as_ref()
                        .map(|r| r.lock().unwrap().clone())
                        .unwrap_or_default();
                    let block = Block::new(b.epoch, b.view, b.proposer, payload, b.justify.clone())
                        .with_time(b.time_ms);
                    let msg = NetMsg::Proposal {
                        msg: Message::Proposal(Proposal {
                            block,
                            tc: p.tc.clone(),
                        }),
                        certs,
                    };
                    let bytes = wire::encode(&msg);
                    for (i, peer) in peers.iter().enumerate() {
                        if i as u32 != me {
                            let _ = ep.try_send(peer, Channel::Consensus, &bytes);
                        }
                    }
                }
                Effect::Broadcast(msg) => {
                    let bytes = wire::encode(&NetMsg::Consensus(msg));
                    for (i, peer) in peers.iter().enumerate() {
                        if i as u32 != me {
                            let _ = ep.try_send(peer, Channel::Consensus, &bytes);
                        }
                    }
                }
                Effect::SetTimer { timer, after_us } => {
                    timers.retain(|(t, _)| {
                        std::mem::discriminant(t) != std::mem::discriminant(&timer)
                    });
                    timers.push((timer, Instant::now() + Duration::from_micros(after_us)));
                }
                Effect::PersistSafety(_)
                | Effect::PersistBlock(_)
                | Effect::Finalized { .. }
                | Effect::Diverged { .. } => {}
            }
        }
        glommio::timer::sleep(Duration::from_millis(2)).await;
    }
}

/// What [`flood_kit`] builds: messages sent every round (with their
/// channel), and signed timeouts sent one per round in turn.
pub type FloodKit = (Vec<(Channel, NetMsg)>, Vec<NetMsg>);

/// The messages of a peer flood, each costly for its receiver in another
/// way: a batch request naming one real batch 256 times, a block sync
/// request for the most blocks (from `head`), a catch-up request from
/// height 1, `timeouts` validly signed timeouts for future views from
/// `view` on (each a pairing the first time; replays after that), and a
/// junk batch of 200 items. With the channel each goes on.
pub fn flood_kit(
    home: &Path,
    head: Digest,
    batch: Digest,
    view: u64,
    expires: u64,
    timeouts: u64,
) -> anyhow::Result<FloodKit> {
    use plume_protocol::consensus::{timeout_message, QuorumCert, Timeout};
    let setup = NodeSetup::load(home, None)?;
    let sk = plume_crypto::bls::SecretKey::from_bytes(&setup.keys.consensus.to_bytes())?;
    let chain = setup.chain_u64;
    let genesis = Block::<BlsScheme>::genesis(chain);
    let signed: Vec<NetMsg> = (0..timeouts)
        .map(|k| {
            let v = view + 1 + k;
            let m = timeout_message(chain, 0, v, 0);
            NetMsg::Consensus(Message::Timeout(Timeout {
                epoch: 0,
                view: v,
                high_qc: QuorumCert::genesis(0, &genesis),
                voter: setup.me,
                sig: sk.sign(m.as_bytes()),
            }))
        })
        .collect();
    let kinds = vec![
        (
            Channel::Bulk,
            NetMsg::BatchRequest(vec![batch; wire::BATCH_REQUEST_MAX]),
        ),
        (
            Channel::Consensus,
            NetMsg::Consensus(Message::SyncRequest {
                block: head,
                max: u32::MAX,
            }),
        ),
        (Channel::Bulk, NetMsg::CatchUpRequest { from: 1 }),
        (
            Channel::Bulk,
            NetMsg::Batch {
                author: setup.me,
                expires,
                verdict: plume_protocol::batch::Verdict::all_valid(),
                txs: vec![vec![0xAB; 1000]; 200],
                cert: None,
            },
        ),
    ];
    Ok((kinds, signed))
}
