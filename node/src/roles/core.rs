//! The core role: one glommio executor pinned to the consensus core. It
//! owns the peer network (`plume_netstack::Endpoint`), the consensus
//! engine and the batcher (`plume_mempool::Batcher`: pool, batches,
//! dissemination policy), and drives them:
//!
//! - engine effects are applied in order; `PersistSafety` is durable
//!   before any later `Send`/`Broadcast` of the same list;
//! - the batcher's actions become network sends, engine inputs and
//!   execution jobs;
//! - view timers are kept here (the engine asks, the tick fires them).
//!
//! Policies live in the two state machines; this file only moves bytes and
//! time between them and the world. Queue policy: every network send is a
//! `try_send` (a full peer queue drops the frame: consensus retries by
//! timeouts, batches by re-sending and requests); peers' batches go to the
//! signature role with `try_send` (dropped when full: re-sent or fetched
//! later); finalized blocks go to execution with a blocking `send` (the
//! exec queue is the back-pressure of the whole pipeline).

use super::channels::{CoreIn, ExecIn, SigIn};
use super::shared::Shared;
use crate::config::NetworkSection;
use crate::http::{codes, ApiError};
use crate::safety::SafetyFile;
use crate::setup::NodeSetup;
use crate::wire::{self, NetMsg};
use anyhow::{anyhow, bail, Result};
use plume_consensus::{BlsScheme, Effect, Engine, Input, Message, Recovered, Timer};
use plume_mempool::{Action, Batcher, BatcherConfig, Mempool, MempoolError};
use plume_netstack::{AnyTransport, Channel, Endpoint, GlommioTcp, NetConfig, PeerAddr, PeerId};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The core executor's state.
struct Core {
    engine: Engine<BlsScheme>,
    safety: SafetyFile,
    ep: Rc<Endpoint<AnyTransport>>,
    peers: Vec<PeerId>,
    batcher: Batcher<BlsScheme>,
    timers: Vec<(Timer, Instant)>,
    exec_tx: flume::Sender<ExecIn>,
    sig_tx: flume::Sender<SigIn>,
    shared: Arc<Shared>,
    /// Zero of the batcher's clock.
    epoch: Instant,
}

/// Run the core until the stop flag is set. Opens the transport on this
/// (pinned) thread.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    setup: NodeSetup,
    recovered: Option<Recovered<BlsScheme>>,
    safety: SafetyFile,
    core_rx: flume::Receiver<CoreIn>,
    sig_tx: flume::Sender<SigIn>,
    exec_tx: flume::Sender<ExecIn>,
    shared: Arc<Shared>,
    core_core: usize,
) -> Result<()> {
    let (ep, peers) = start_network(&setup, &shared, core_core)?;
    let engine = Engine::new(
        engine_config(&setup),
        plume_crypto::bls::SecretKey::from_bytes(&setup.keys.consensus.to_bytes())?,
        recovered,
    );
    let b = &setup.config.batching;
    let batcher = Batcher::new(
        BatcherConfig::new(
            b.batch_max_txs as usize,
            b.batch_max_bytes as usize,
            setup.params.block_txs_max as usize,
        ),
        Mempool::with_limits(
            setup.config.mempool.txs_max as usize,
            setup.config.mempool.mib_max as usize * 1024 * 1024,
        ),
    );
    let ep = Rc::new(ep);
    let stop = shared.stop;
    let core = Rc::new(RefCell::new(Core {
        engine,
        safety,
        ep: ep.clone(),
        peers,
        batcher,
        timers: Vec::new(),
        exec_tx,
        sig_tx,
        shared,
        epoch: Instant::now(),
    }));
    core.borrow_mut().step(Input::Start)?;

    // Network receive task.
    let c1 = core.clone();
    let net_task = glommio::spawn_local(async move {
        loop {
            let inb = ep.recv().await;
            let t0 = Instant::now();
            let r = c1.borrow_mut().on_inbound(&inb.peer, inb.payload());
            if let Err(e) = r {
                tracing::error!("core: {e:#}");
                stop.store(true, Ordering::SeqCst);
                return;
            }
            c1.borrow().busy(t0);
        }
    })
    .detach();
    // Channel task: verified transactions, batches, execution results.
    let c2 = core.clone();
    let chan_task = glommio::spawn_local(async move {
        while let Ok(msg) = core_rx.recv_async().await {
            let t0 = Instant::now();
            c2.borrow()
                .shared
                .metrics
                .mem
                .core_queue
                .set(core_rx.len() as u64);
            let r = c2.borrow_mut().on_core_in(msg);
            if let Err(e) = r {
                tracing::error!("core: {e:#}");
                stop.store(true, Ordering::SeqCst);
                return;
            }
            c2.borrow().busy(t0);
        }
    })
    .detach();
    // Tick: timers, batches, housekeeping.
    let interval = Duration::from_millis(setup.config.batching.batch_delay_ms as u64);
    while !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(interval).await;
        let t0 = Instant::now();
        core.borrow_mut().tick()?;
        core.borrow().busy(t0);
    }
    drop(net_task);
    drop(chan_task);
    Ok(())
}

/// Open the transport and start the endpoint with every genesis
/// validator allow-listed; returns it and the validators' peer ids (in
/// committee order).
fn start_network(
    setup: &NodeSetup,
    shared: &Shared,
    core_core: usize,
) -> Result<(Endpoint<AnyTransport>, Vec<PeerId>)> {
    let g = &setup.genesis;
    let listen: std::net::SocketAddr = setup.config.node.listen_addr.parse()?;
    let transport = open_transport(&setup.config.network, listen, core_core)?;
    if let AnyTransport::Dgram(t) = &transport {
        let _ = shared.metrics.dgram.set(t.metrics());
    }
    let mut net = NetConfig::new(listen, plume_netstack::ChainId::from_name(&g.chain_id));
    let mut peers = Vec::new();
    for v in &g.validators {
        let id = PeerId(plume_crypto::ed25519::PublicKey::from_hex(&v.network_key)?.to_bytes());
        peers.push(id);
        net.allow.push(id);
        net.peers.push(PeerAddr {
            id,
            addr: v.address.parse()?,
        });
    }
    net.frame_payload_max = wire::FRAME_BYTES_MAX;
    let ep = Endpoint::start(
        transport,
        net,
        plume_crypto::ed25519::SigningKey::from_bytes(&setup.keys.network.to_bytes()),
    )
    .map_err(|e| anyhow!("network: {e}"))?;
    let _ = shared.metrics.net.set(ep.metrics());
    Ok((ep, peers))
}

fn engine_config(setup: &NodeSetup) -> plume_consensus::Config<BlsScheme> {
    let view_timeout_us = setup.genesis.params.view_timeout_ms.saturating_mul(1000);
    plume_consensus::Config {
        me: setup.me,
        epoch: 0,
        committee: setup.committee.clone(),
        chain_id: setup.chain_u64,
        base_timeout_us: view_timeout_us,
        max_timeout_us: view_timeout_us.saturating_mul(16),
        jitter_seed: u64::from_le_bytes(
            setup.keys.network.public_key().to_bytes()[..8]
                .try_into()
                .expect("8"),
        ),
        commit_rule: plume_consensus::CommitRule::TwoChain,
        leader_reputation: true,
        // Validator-set changes are not wired to governance yet: one epoch.
        epoch_length: 0,
    }
}

/// The transport `[network]` asks for, opened on the calling (core) thread.
fn open_transport(
    n: &NetworkSection,
    listen: std::net::SocketAddr,
    core: usize,
) -> Result<AnyTransport> {
    use crate::config::TransportKind;
    use plume_netstack::dgram::open::{open, Device, OpenSpec};
    use plume_netstack::dgram::{DgramConfig, DgramTransport};
    let device = match n.transport {
        TransportKind::Tcp => return Ok(AnyTransport::Tcp(GlommioTcp)),
        TransportKind::Udp => Device::KernelUdp,
        TransportKind::AfXdp => Device::AfXdp {
            interface: n.interface.clone(),
            queue: n.queue,
            force_skb: n.xdp_mode == "generic",
            force_copy: n.xdp_bind == "copy",
        },
        TransportKind::Dpdk => Device::Dpdk {
            device: n.dpdk_device.clone(),
            lcore: core,
            mem_mb: n.dpdk_mem_mb as usize,
            no_huge: n.dpdk_no_huge,
            vdevs: n.dpdk_vdevs.clone(),
            pci_allow: n.dpdk_pci.clone(),
        },
    };
    let std::net::SocketAddr::V4(local) = listen else {
        bail!("network.transport = \"{}\" carries IPv4 only", n.transport);
    };
    let gateway = if n.gateway.is_empty() {
        None
    } else {
        Some(n.gateway.parse()?)
    };
    let io = open(&OpenSpec {
        local,
        prefix_len: n.prefix_len,
        gateway,
        device,
    })
    .map_err(|e| anyhow!("network.transport = \"{}\": {e}", n.transport))?;
    let t = DgramTransport::start(
        io,
        DgramConfig {
            busy_poll: n.busy_poll,
            ..DgramConfig::default()
        },
    );
    tracing::info!(transport = %n.transport, mode = t.mode(), %local, "datagram transport up");
    Ok(AnyTransport::Dgram(t))
}

impl Core {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn busy(&self, since: Instant) {
        self.shared
            .metrics
            .add_busy("core", since.elapsed().as_micros() as u64);
    }

    fn me(&self) -> u32 {
        self.engine.config().me
    }

    fn index_of(&self, peer: &PeerId) -> Option<u32> {
        self.peers.iter().position(|p| p == peer).map(|i| i as u32)
    }

    /// Send `bytes` on `ch` to every other validator.
    fn to_all(&self, ch: Channel, bytes: &[u8]) {
        for (i, p) in self.peers.iter().enumerate() {
            if i as u32 != self.me() {
                let _ = self.ep.try_send(p, ch, bytes);
            }
        }
    }

    fn step(&mut self, input: Input<BlsScheme>) -> Result<()> {
        let effects = self.engine.step(input);
        self.apply(effects)
    }

    fn apply(&mut self, effects: Vec<Effect<BlsScheme>>) -> Result<()> {
        let mut actions = Vec::new();
        for e in effects {
            match e {
                Effect::PersistSafety(s) => self.safety.persist(&s)?,
                Effect::PersistBlock(_) => {}
                Effect::Send { to, msg } => {
                    if let Some(p) = self.peers.get(to as usize).copied() {
                        let bytes = wire::encode(&NetMsg::Consensus(msg));
                        let _ = self.ep.try_send(&p, Channel::Consensus, &bytes);
                    }
                }
                Effect::Broadcast(msg) => {
                    if let Message::Proposal(p) = &msg {
                        if p.block.proposer == self.me() {
                            self.batcher.on_own_proposal(&p.block.payload);
                        }
                    }
                    self.to_all(Channel::Consensus, &wire::encode(&NetMsg::Consensus(msg)));
                }
                Effect::SetTimer { timer, after_us } => {
                    // A timer of the same kind replaces the earlier one.
                    self.timers.retain(|(t, _)| {
                        std::mem::discriminant(t) != std::mem::discriminant(&timer)
                    });
                    self.timers
                        .push((timer, Instant::now() + Duration::from_micros(after_us)));
                }
                Effect::Finalized { block, proof } => {
                    let now = self.now_us();
                    self.batcher.on_finalized(block, proof, now, &mut actions);
                }
            }
        }
        let m = &self.shared.metrics;
        m.view.set(self.engine.view());
        m.consensus_rejected.inc_by(
            self.engine
                .metrics()
                .rejected_total()
                .saturating_sub(m.consensus_rejected.get()),
        );
        self.carry_out(actions)
    }

    /// Carry out the batcher's actions.
    fn carry_out(&mut self, actions: Vec<Action<BlsScheme>>) -> Result<()> {
        for a in actions {
            match a {
                Action::Broadcast(b) => {
                    let bytes = wire::encode(&NetMsg::Batch {
                        digest: b.digest,
                        txs: b.raw.clone(),
                    });
                    self.to_all(Channel::Bulk, &bytes);
                }
                Action::Request(want) => {
                    self.to_all(Channel::Bulk, &wire::encode(&NetMsg::BatchRequest(want)));
                }
                Action::Offer(digests) => self.step(Input::PayloadReady(digests))?,
                Action::Execute(job) => {
                    if self.exec_tx.send(job).is_err() {
                        if self.shared.stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        bail!("execution thread is gone");
                    }
                }
            }
        }
        Ok(())
    }

    fn on_inbound(&mut self, peer: &PeerId, bytes: &[u8]) -> Result<()> {
        let Some(from) = self.index_of(peer) else {
            return Ok(());
        };
        let msg = match wire::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.shared.metrics.malformed_msgs.inc();
                tracing::debug!(%peer, "dropping malformed message: {e}");
                return Ok(());
            }
        };
        match msg {
            NetMsg::Consensus(m) => self.step(Input::Message { from, msg: m })?,
            NetMsg::Batch { digest, txs } => {
                // A batch already held, or already finalized (a late or
                // re-sent copy), is not verified again.
                if self.batcher.wants_peer_batch(&digest) {
                    let _ = self.sig_tx.try_send(SigIn::PeerBatch { digest, txs });
                }
            }
            NetMsg::BatchRequest(ds) => {
                for d in ds {
                    if let Some(b) = self.batcher.batch(&d) {
                        let bytes = wire::encode(&NetMsg::Batch {
                            digest: d,
                            txs: b.raw.clone(),
                        });
                        let _ = self.ep.try_send(peer, Channel::Bulk, &bytes);
                    }
                }
            }
        }
        Ok(())
    }

    fn on_core_in(&mut self, msg: CoreIn) -> Result<()> {
        match msg {
            CoreIn::Verified {
                ptx,
                bytes,
                state_seq,
                reply,
            } => {
                let hash = ptx.hash;
                let m = &self.shared.metrics;
                let r = match self.batcher.pool.insert(ptx, bytes, state_seq) {
                    Ok(()) => {
                        m.txs_admitted.inc();
                        Ok(hash)
                    }
                    Err(e) => {
                        m.txs_rejected.inc();
                        let code = match e {
                            MempoolError::Duplicate => codes::DUPLICATE,
                            MempoolError::Full => codes::MEMPOOL_FULL,
                            MempoolError::SequenceUsed { .. } => codes::SEQUENCE_USED,
                            MempoolError::SequenceTooFar { .. } => codes::SEQUENCE_TOO_FAR,
                        };
                        Err(ApiError::new(code, e.to_string()))
                    }
                };
                m.mempool_depth.set(self.batcher.pool.len() as u64);
                let _ = reply.send(r);
            }
            CoreIn::Batch(b) => {
                let mut actions = Vec::new();
                let now = self.now_us();
                self.batcher.on_peer_batch(b, now, &mut actions);
                self.carry_out(actions)?;
            }
            CoreIn::Executed {
                height,
                block,
                root,
                sequences,
            } => {
                for (a, next) in sequences {
                    self.batcher.pool.advance(&a, next);
                }
                self.shared
                    .metrics
                    .mempool_depth
                    .set(self.batcher.pool.len() as u64);
                self.step(Input::Executed {
                    height,
                    block,
                    state_root: root,
                })?;
            }
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<()> {
        let now = Instant::now();
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, at)| *at <= now)
            .map(|(t, _)| *t)
            .collect();
        self.timers.retain(|(_, at)| *at > now);
        for t in due {
            let Timer::View(v) = t;
            if v == self.engine.view() {
                self.shared.metrics.view_changes.inc();
            }
            self.step(Input::TimerFired(t))?;
        }
        let mut actions = Vec::new();
        let now_us = self.now_us();
        self.batcher.tick(now_us, &mut actions);
        self.carry_out(actions)?;
        self.update_gauges();
        Ok(())
    }

    fn update_gauges(&self) {
        let m = &self.shared.metrics;
        m.mem.set_batcher(&self.batcher.sizes());
        m.mem.timers.set(self.timers.len() as u64);
        m.mem.exec_queue.set(self.exec_tx.len() as u64);
        m.mempool_depth.set(self.batcher.pool.len() as u64);
        let connected = self.ep.connected_peers();
        m.peers.set(connected.len() as u64);
        if let Ok(mut p) = self.shared.peers.try_lock() {
            *p = connected.iter().map(|p| p.to_string()).collect();
        }
    }
}
