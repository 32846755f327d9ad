//! The validator runtime (`plume start`): one file per role, the bounded
//! channels between them, placement and the stop flag.
//!
//! ```text
//!  API threads ──submit──▶ sigverify ──verified tx──▶ core (glommio, pinned)
//!                             ▲  │                     │  network + consensus
//!  peer batches, votes, certs─┘  └─decoded / verdicts─▶ │  + batcher
//!                                                      │──append──▶ batch log
//!                                                      │◀─durable──┘ (fdatasync)
//!                     exec (pinned) ◀──certified, ordered batches─┘
//!                     execute + one LMDB commit ──executed──▶ core
//! ```
//!
//! - [`core`]: network, consensus engine and batcher, on the consensus core.
//! - [`sigverify`]: Ed25519 (ZIP-215) verification of submissions, of the
//!   batches this validator verifies, of batch votes and certificates.
//! - [`batchlog`]: the durable batch log, group-synced.
//! - [`exec`]: execution, group commit, notifications; executes catch-up
//!   segments after checking them.
//! - [`catchup`]: serves peers' catch-up requests from the block store.
//! - [`api`]: the JSON-RPC method table served by [`crate::http`].
//!
//! Every channel between the roles, its bound and its full-queue policy
//! are in [`channels`]; what they share besides channels in [`shared`]. No
//! role file imports another role's file.

pub mod api;
pub mod batchlog;
pub mod catchup;
pub mod channels;
pub mod core;
pub mod exec;
pub mod feed;
pub mod indexer;
pub mod notify;
pub mod observer;
pub mod shared;
pub mod sigverify;
pub mod webhook;

use crate::config::Role;
use crate::http::ApiServer;
use crate::metrics::NodeMetrics;
use crate::setup::{open_state, open_store, NodeSetup, ObserverSetup};
use anyhow::{anyhow, Result};
use channels::{
    CoreIn, ExecIn, LogIn, ServeIn, SigIn, CORE_QUEUE_MAX, EXEC_QUEUE_MAX, LOG_QUEUE_MAX,
    SERVE_QUEUE_MAX, SIG_QUEUE_MAX,
};
pub use shared::Shared;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::config::INDEX_FILE;

/// The API server's limits, with the access token read from its file.
fn api_limits(config: &crate::config::Config, home: &Path) -> Result<crate::http::Limits> {
    let mut l = config.api.limits();
    l.token = config.api.token(home)?;
    if l.token.is_some() {
        tracing::info!("API: an access token is required on every request but /health");
    }
    Ok(l)
}

/// Stop flag set by SIGINT/SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

/// Longest a clean stop may take before the process exits anyway (what is
/// durable is safe at any moment: kill -9 loses nothing reported final).
pub const STOP_GRACE: Duration = Duration::from_secs(10);

extern "C" fn on_signal(_: libc::c_int) {
    if STOP.swap(true, Ordering::SeqCst) {
        // A second signal: exit at once.
        // SAFETY: _exit is async-signal-safe and takes no pointers.
        unsafe { libc::_exit(130) };
    }
}

/// The process-wide stop flag (set by SIGINT/SIGTERM).
pub fn stop_flag() -> &'static AtomicBool {
    &STOP
}

/// Opt this process out of transparent huge pages. The allocator asks for
/// them on its arenas, and the kernel then zeroes a whole 2 MiB page on
/// the first touch of any of it and again after every purge: measured on
/// `plume bench cluster` at 1,000 tx/s, a validator's anonymous RSS ended
/// at ~140 MiB with them and ~48 MiB without, and page zeroing was 8 % of
/// the host's CPU. LMDB's map is file-backed and never used them.
pub fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integer arguments and touches
    // only this process's memory policy; failure (an old kernel) is benign.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Route SIGINT and SIGTERM to [`stop_flag`].
pub fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Cores of each role, from `[placement]` or the default for this host.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Placement {
    consensus: usize,
    sigverify: usize,
    /// One per execution shard (at least one).
    exec: Vec<usize>,
}

fn placement(cfg: &crate::config::Config) -> Placement {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let p = &cfg.placement;
    let pick =
        |v: &[u32], default: usize| v.first().map(|c| *c as usize % n).unwrap_or(default % n);
    let exec = if p.exec_cores.is_empty() {
        vec![1 % n]
    } else {
        p.exec_cores.iter().map(|c| *c as usize % n).collect()
    };
    Placement {
        consensus: pick(&p.consensus_cores, 0),
        sigverify: pick(&p.sigverify_cores, 1),
        exec,
    }
}

fn pin(core: usize) {
    if let Some(id) = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.id == core)
    {
        core_affinity::set_for_current(id);
    }
}

/// `plume start`: run the home's node in `role` (default: its config's
/// `node.role`) until SIGINT/SIGTERM.
pub fn start(home: &Path, genesis: Option<&Path>, role: Option<Role>) -> Result<()> {
    let role = match role {
        Some(r) => r,
        None => crate::config::Config::load(home)?.node.role,
    };
    match role {
        Role::Validator => run(home, genesis),
        Role::Observer => run_observer(home, genesis),
    }
}

/// Run an observer until SIGINT/SIGTERM: the follower (network) on one
/// pinned executor, execution, the notifier and a read-only API; no
/// consensus, batcher, mempool, signature role or batch log.
pub fn run_observer(home: &Path, genesis: Option<&Path>) -> Result<()> {
    install_signal_handlers();
    let setup = ObserverSetup::load(home, genesis)?;
    let (kv, store) = open_store(&setup.chain())?;
    let height = store.finalized_height().unwrap_or(0);
    tracing::info!(
        height,
        root = %store.committed_root(),
        validators = setup.committee.len(),
        "starting observer"
    );
    let metrics = Arc::new(NodeMetrics::new());
    metrics.height.set(height);
    metrics.consensus_height.set(height);
    let (done_tx, done_rx) = flume::unbounded::<CoreIn>();
    let (exec_tx, exec_rx) = flume::bounded::<ExecIn>(EXEC_QUEUE_MAX);
    let (notify_tx, notify_rx) = flume::bounded::<notify::Note>(notify::NOTIFY_QUEUE_MAX);
    // Nothing reads it: an observer's API refuses submissions before
    // they reach a queue (`Shared::observer`).
    let (sig_tx, _) = flume::bounded::<SigIn>(1);
    let index_path = setup.config.index.location(&setup.home);
    let shared = Arc::new(Shared {
        chain_id: setup.genesis.chain_id.clone(),
        kv: kv.clone(),
        metrics: metrics.clone(),
        sig_tx,
        subscribers: Mutex::new(Vec::new()),
        subscriber_count: AtomicUsize::new(0),
        notify_tx,
        notes_lost: AtomicBool::new(false),
        submitted: Mutex::new(HashMap::new()),
        state_root: Mutex::new((height, store.committed_root())),
        peers: Mutex::new(Vec::new()),
        params: setup.params.clone(),
        registry: plume_execution::standard(),
        committee_len: setup.committee.len(),
        started: Instant::now(),
        stop: stop_flag(),
        fatal: Mutex::new(None),
        diverged: Mutex::new(None),
        observer: true,
        index: Some(index_path.clone()),
        index_pool: Default::default(),
    });
    let place = placement(&setup.config);
    let notify_thread = {
        let (shared, registry) = (shared.clone(), shared.registry.clone());
        std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || notify::run(notify_rx, shared, registry))?
    };
    let exec_thread = spawn_exec(
        ExecSetup {
            params: setup.params.clone(),
            validators: setup.genesis.validators.clone(),
            committee: setup.committee.clone(),
            chain: setup.chain_u64,
        },
        store,
        exec_rx,
        done_tx.clone(),
        shared.clone(),
        place.exec.clone(),
    )?;
    let index_thread = {
        let (kv, shared, path) = (kv.clone(), shared.clone(), index_path.clone());
        let rules = setup.config.alerts.clone();
        let hook = match &rules.webhook {
            Some(url) => {
                let target = webhook::parse(url)?;
                let (tx, rx) = flume::bounded::<String>(webhook::WEBHOOK_QUEUE_MAX);
                let metrics = metrics.clone();
                std::thread::Builder::new()
                    .name("webhook".into())
                    .spawn(move || webhook::run(target, rx, &metrics, stop_flag()))?;
                Some(tx)
            }
            None => None,
        };
        std::thread::Builder::new()
            .name("indexer".into())
            .spawn(move || {
                if let Err(e) = indexer::run(kv, &path, rules, hook, &shared, stop_flag()) {
                    tracing::error!("indexer stopped: {e:#}");
                    STOP.store(true, Ordering::SeqCst);
                }
            })?
    };
    let api = ApiServer::start_with(
        &setup.config.api.listen_addr,
        Arc::new(api::ApiNode {
            shared: shared.clone(),
        }),
        api_limits(&setup.config, &setup.home)?,
    )?;
    tracing::info!(addr = %api.addr, "API listening (read-only: an observer accepts no transaction)");
    let follow_thread = {
        let shared = shared.clone();
        let core = place.consensus;
        glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(core))
            .name("follow")
            .spawn(move || async move {
                let r = observer::run(setup, height, exec_tx, done_rx, shared.clone(), core).await;
                if let Err(e) = r {
                    tracing::error!("follower stopped: {e:#}");
                    *shared.fatal.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("{e:#}"));
                    STOP.store(true, Ordering::SeqCst);
                }
            })
            .map_err(|e| anyhow!("starting the follower executor: {e}"))?
    };
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!("stopping");
    std::thread::Builder::new()
        .name("stop-watchdog".into())
        .spawn(|| {
            std::thread::sleep(STOP_GRACE);
            tracing::error!("clean stop took longer than {STOP_GRACE:?}; exiting now");
            std::process::exit(1);
        })?;
    api.stop();
    let _ = follow_thread.join();
    drop(done_tx);
    let _ = exec_thread.join();
    let _ = notify_thread.join();
    let _ = index_thread.join();
    tracing::info!("stopped cleanly");
    let fatal = shared
        .fatal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    match fatal {
        Some(e) => Err(anyhow!("{e}")),
        None => Ok(()),
    }
}

/// Run a validator until SIGINT/SIGTERM.
pub fn run(home: &Path, genesis: Option<&Path>) -> Result<()> {
    install_signal_handlers();
    let setup = NodeSetup::load(home, genesis)?;
    let opened = open_state(&setup)?;
    let (batch_log, log_items) = batchlog::open(&setup.home.join("data").join("batches"))?;
    tracing::info!(
        me = setup.me,
        height = opened.height,
        root = %opened.store.committed_root(),
        restarted = opened.recovered.is_some(),
        logged_batch_items = log_items.len(),
        "starting validator"
    );
    let metrics = Arc::new(NodeMetrics::new());
    metrics.height.set(opened.height);
    metrics.consensus_height.set(opened.height);
    let (sig_tx, sig_rx) = flume::bounded::<SigIn>(SIG_QUEUE_MAX);
    let (core_tx, core_rx) = flume::bounded::<CoreIn>(CORE_QUEUE_MAX);
    // Execution and the batch log report on a queue of their own that
    // never makes them wait on the core (bounded by the work the core gave
    // them: channels.rs).
    let (done_tx, done_rx) = flume::unbounded::<CoreIn>();
    let (exec_tx, exec_rx) = flume::bounded::<ExecIn>(EXEC_QUEUE_MAX);
    let (log_tx, log_rx) = flume::bounded::<LogIn>(LOG_QUEUE_MAX);
    let (serve_tx, serve_rx) = flume::bounded::<ServeIn>(SERVE_QUEUE_MAX);
    let (sync_tx, sync_rx) = flume::bounded::<ServeIn>(SERVE_QUEUE_MAX);
    let (observer_tx, observer_rx) = flume::bounded::<ServeIn>(SERVE_QUEUE_MAX);
    let (notify_tx, notify_rx) = flume::bounded::<notify::Note>(notify::NOTIFY_QUEUE_MAX);
    let shared = Arc::new(Shared {
        chain_id: setup.genesis.chain_id.clone(),
        kv: opened.kv.clone(),
        metrics: metrics.clone(),
        sig_tx: sig_tx.clone(),
        subscribers: Mutex::new(Vec::new()),
        subscriber_count: AtomicUsize::new(0),
        notify_tx,
        notes_lost: AtomicBool::new(false),
        submitted: Mutex::new(HashMap::new()),
        state_root: Mutex::new((opened.height, opened.store.committed_root())),
        peers: Mutex::new(Vec::new()),
        params: setup.params.clone(),
        registry: plume_execution::standard(),
        committee_len: setup.committee.len(),
        started: Instant::now(),
        stop: stop_flag(),
        fatal: Mutex::new(None),
        diverged: Mutex::new(None),
        observer: false,
        index: None,
        index_pool: Default::default(),
    });
    let place = placement(&setup.config);
    let sig_thread = spawn_sigverify(
        sig_rx,
        core_tx.clone(),
        metrics.clone(),
        &setup,
        shared.registry.clone(),
        place.sigverify,
    )?;
    let log_thread = spawn_batchlog(batch_log, log_rx, done_tx.clone(), metrics.clone())?;
    let serve_thread = {
        let (kv, core_tx, metrics) = (opened.kv.clone(), core_tx.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("catchup".into())
            .spawn(move || {
                catchup::run(
                    kv,
                    serve_rx,
                    sync_rx,
                    observer_rx,
                    core_tx,
                    &metrics,
                    stop_flag(),
                )
            })?
    };
    let notify_thread = {
        let (shared, registry) = (shared.clone(), shared.registry.clone());
        std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || notify::run(notify_rx, shared, registry))?
    };
    let exec_thread = spawn_exec(
        ExecSetup {
            params: setup.params.clone(),
            validators: setup.genesis.validators.clone(),
            committee: setup.committee.clone(),
            chain: setup.chain_u64,
        },
        opened.store,
        exec_rx,
        done_tx.clone(),
        shared.clone(),
        place.exec.clone(),
    )?;
    let api = ApiServer::start_with(
        &setup.config.api.listen_addr,
        Arc::new(api::ApiNode {
            shared: shared.clone(),
        }),
        api_limits(&setup.config, &setup.home)?,
    )?;
    tracing::info!(addr = %api.addr, "API listening");
    let start = core::CoreStart {
        recovered: opened.recovered,
        safety: opened.safety_file,
        log_items,
        committee: setup.batch_committee.clone(),
        height: opened.height,
        recent_payloads: opened.recent_payloads,
        recent_roots: opened.recent_roots,
    };
    let core_thread = spawn_core(
        setup,
        start,
        Queues {
            core_rx,
            done_rx,
            sig_tx,
            exec_tx,
            log_tx,
            serve_tx,
            sync_tx,
            observer_tx,
        },
        shared.clone(),
        place.consensus,
    )?;

    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!("stopping");
    let stopping = Instant::now();
    std::thread::Builder::new()
        .name("stop-watchdog".into())
        .spawn(|| {
            std::thread::sleep(STOP_GRACE);
            tracing::error!("clean stop took longer than {STOP_GRACE:?}; exiting now");
            std::process::exit(1);
        })?;
    api.stop();
    let _ = core_thread.join();
    drop(core_tx);
    drop(done_tx);
    let _ = exec_thread.join();
    let _ = sig_thread.join();
    let _ = log_thread.join();
    let _ = serve_thread.join();
    let _ = notify_thread.join();
    tracing::info!(
        ms = stopping.elapsed().as_millis() as u64,
        "stopped cleanly"
    );
    let fatal = shared
        .fatal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    match fatal {
        Some(e) => Err(anyhow!("{e}")),
        None => Ok(()),
    }
}

fn spawn_sigverify(
    rx: flume::Receiver<SigIn>,
    core_tx: flume::Sender<CoreIn>,
    metrics: Arc<NodeMetrics>,
    setup: &NodeSetup,
    registry: plume_execution::Registry,
    core: usize,
) -> Result<std::thread::JoinHandle<()>> {
    let committee = setup.batch_committee.clone();
    let chain = setup.chain_u64;
    let me = setup.me;
    Ok(std::thread::Builder::new()
        .name("sigverify".into())
        .spawn(move || {
            pin(core);
            let cx = sigverify::SigContext {
                metrics: &metrics,
                registry: &registry,
                committee: &committee,
                chain,
                me,
            };
            sigverify::run(rx, core_tx, &cx, stop_flag());
        })?)
}

/// The batch log thread (unpinned: it mostly waits on the disk). Drains
/// its queue after the stop flag, so what the core queued is synced.
fn spawn_batchlog(
    log: plume_storage::BatchLog,
    rx: flume::Receiver<LogIn>,
    core_tx: flume::Sender<CoreIn>,
    metrics: Arc<NodeMetrics>,
) -> Result<std::thread::JoinHandle<()>> {
    Ok(std::thread::Builder::new()
        .name("batchlog".into())
        .spawn(move || {
            if let Err(e) = batchlog::run(log, rx, core_tx, &metrics, stop_flag()) {
                tracing::error!("batch log stopped: {e:#}");
                STOP.store(true, Ordering::SeqCst);
            }
        })?)
}

/// The core's queues.
struct Queues {
    core_rx: flume::Receiver<CoreIn>,
    done_rx: flume::Receiver<CoreIn>,
    sig_tx: flume::Sender<SigIn>,
    exec_tx: flume::Sender<ExecIn>,
    log_tx: flume::Sender<LogIn>,
    serve_tx: flume::Sender<ServeIn>,
    sync_tx: flume::Sender<ServeIn>,
    observer_tx: flume::Sender<ServeIn>,
}

/// What the execution role needs from the setup (validator or observer).
struct ExecSetup {
    params: plume_execution::Params,
    validators: Vec<plume_protocol::genesis::ValidatorInfo>,
    committee: plume_crypto::qc::ValidatorSet,
    chain: u64,
}

fn spawn_exec(
    setup: ExecSetup,
    store: plume_storage::Store<plume_storage::LmdbKv>,
    rx: flume::Receiver<ExecIn>,
    core_tx: flume::Sender<CoreIn>,
    shared: Arc<Shared>,
    cores: Vec<usize>,
) -> Result<std::thread::JoinHandle<()>> {
    let ExecSetup {
        params,
        validators,
        committee,
        chain,
    } = setup;
    Ok(std::thread::Builder::new()
        .name("exec".into())
        .spawn(move || {
            pin(cores[0]);
            let pin_worker = |k: usize| pin(cores[k % cores.len()]);
            let cx = exec::ExecContext {
                shared: &shared,
                params: &params,
                registry: &shared.registry,
                validators: &validators,
                shards: cores.len(),
                pin_worker: &pin_worker,
                committee: &committee,
                chain,
            };
            if let Err(e) = exec::run(store, rx, core_tx, &cx) {
                tracing::error!("execution stopped: {e:#}");
                // The process exits with it (an upgrade halt names the
                // version to install).
                *shared.fatal.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("execution stopped: {e:#}"));
                STOP.store(true, Ordering::SeqCst);
            }
        })?)
}

fn spawn_core(
    setup: NodeSetup,
    start: core::CoreStart,
    q: Queues,
    shared: Arc<Shared>,
    core: usize,
) -> Result<glommio::ExecutorJoinHandle<()>> {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(core))
        .name("core")
        .spawn(move || async move {
            let r = core::run(
                setup,
                start,
                q.core_rx,
                q.done_rx,
                q.sig_tx,
                q.exec_tx,
                q.log_tx,
                q.serve_tx,
                q.sync_tx,
                q.observer_tx,
                shared.clone(),
                core,
            )
            .await;
            if let Err(e) = r {
                tracing::error!("core stopped: {e:#}");
                *shared.fatal.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{e:#}"));
                STOP.store(true, Ordering::SeqCst);
            }
        })
        .map_err(|e| anyhow!("starting the core executor: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_gives_one_exec_shard_per_exec_core() {
        let mut cfg = crate::config::Config::new("v", "127.0.0.1:1", "127.0.0.1:2");
        let p = placement(&cfg);
        assert_eq!(p.exec.len(), 1, "default: one shard");
        cfg.placement.exec_cores = vec![0, 1, 0];
        assert_eq!(placement(&cfg).exec.len(), 3);
    }
}
