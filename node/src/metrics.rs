//! The node's metrics, exported at `/metrics` through `prometheus-client`
//! (OpenMetrics text). Every role updates its own counters and gauges
//! (atomics, no locks); the API thread encodes them on a scrape.
//!
//! Names are stable (dashboards depend on them): counters are registered
//! without their `_total` suffix, which the encoder appends; gauges and the
//! finality histogram keep their names; the peer-network and datagram
//! counters of `plume-netstack` are exported as `plume_net_*` and
//! `plume_dgram_*` by a collector that reads their snapshots on a scrape.

use plume_mempool::Sizes;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

/// A counter of events.
pub type Count = Counter<u64, AtomicU64>;
/// A gauge of a size or a level.
pub type Level = Gauge<u64, AtomicU64>;

/// Finality-latency histogram buckets, in seconds.
pub const FINALITY_BUCKETS_S: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Fine buckets for sub-second stage latencies (seconds), so the bench can
/// read percentiles off the histogram.
pub const STAGE_BUCKETS_S: [f64; 24] = [
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0065, 0.008, 0.01, 0.0125, 0.015, 0.02,
    0.025, 0.03, 0.04, 0.05, 0.065, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0,
];

/// The label of `plume_role_busy_seconds_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabel {
    /// `core`, `sigverify` or `exec`.
    pub role: &'static str,
}

/// The label of `plume_shed_total`: why an item was dropped or refused
/// under load (the README's limits table names every reason).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShedLabel {
    /// A stable snake_case reason, e.g. `api_rate_limited`.
    pub reason: &'static str,
}

/// Sizes of every long-lived collection of the core, exec and API paths
/// (`plume_mem_*`). Byte figures are approximate: payload bytes plus fixed
/// per-entry overheads, or a hash table's allocated capacity times its slot
/// size.
#[derive(Default, Debug)]
pub struct MemGauges {
    /// Batch cache entries.
    pub batches: Level,
    /// Batch cache approximate bytes.
    pub batches_bytes: Level,
    /// Own batches not yet certified.
    pub own_pending: Level,
    /// Own batches not yet finalized.
    pub own_unfinalized: Level,
    /// Pool senders held back until a batch of theirs is finalized.
    pub mempool_senders_held: Level,
    /// Peers' batches not yet certified.
    pub peer_pending: Level,
    /// Recently finalized batch digests remembered by the core.
    pub finalized_recent: Level,
    /// Certified batches not yet finalized.
    pub certified: Level,
    /// Batch certificates held.
    pub certs: Level,
    /// Missing batches being fetched.
    pub fetching: Level,
    /// Evidence of lying batch authors kept.
    pub evidence: Level,
    /// Segment files of the batch log.
    pub batch_log_segments: Level,
    /// Finalized blocks waiting for their batches.
    pub finalized_waiting: Level,
    /// Armed timers.
    pub timers: Level,
    /// Mempool transactions.
    pub mempool_txs: Level,
    /// Mempool bytes (encoded transactions).
    pub mempool_bytes: Level,
    /// Mempool sender cursors.
    pub mempool_senders: Level,
    /// Mempool ids remembered for duplicate detection.
    pub mempool_recent_ids: Level,
    /// Items queued for the core.
    pub core_queue: Level,
    /// Items waiting in the core's backlogs for full exec and log queues.
    pub exec_backlog: Level,
    /// Finalized blocks queued for execution.
    pub exec_queue: Level,
    /// Executed batch digests remembered by exec (re-proposal skip).
    pub executed_batches: Level,
    /// Bytes allocated by exec's executed-batch set (capacity).
    pub executed_set_bytes: Level,
    /// Submission times held for finality latency.
    pub submitted: Level,
    /// Bytes allocated by the submission-time table (capacity).
    pub submitted_bytes: Level,
    /// Subscriptions.
    pub subscribers: Level,
    /// Items queued for signature verification.
    pub sig_queue: Level,
    /// Resident anonymous memory (heap).
    pub rss_anon_bytes: Level,
    /// Resident file-backed memory (mostly the LMDB map: page cache).
    pub rss_file_bytes: Level,
}

impl MemGauges {
    /// Publish the batcher's sizes.
    pub fn set_batcher(&self, s: &Sizes) {
        let set = |g: &Level, v: usize| {
            g.set(v as u64);
        };
        set(&self.batches, s.batches);
        set(&self.batches_bytes, s.batches_bytes);
        set(&self.own_pending, s.own_pending);
        set(&self.own_unfinalized, s.own_unfinalized);
        set(&self.mempool_senders_held, s.pool_senders_held);
        set(&self.peer_pending, s.peer_pending);
        set(&self.finalized_recent, s.finalized_recent);
        set(&self.certified, s.certified);
        set(&self.certs, s.certs);
        set(&self.fetching, s.fetching);
        set(&self.evidence, s.evidence);
        set(&self.finalized_waiting, s.finalized_waiting);
        set(&self.mempool_txs, s.pool_txs);
        set(&self.mempool_bytes, s.pool_bytes);
        set(&self.mempool_senders, s.pool_senders);
        set(&self.mempool_recent_ids, s.pool_recent_ids);
    }

    // Long by design: a table of (name, help, gauge), one row per gauge.
    fn register(&self, r: &mut Registry) {
        for (name, help, g) in [
            ("batches", "Batches held by the core.", &self.batches),
            (
                "batches_bytes",
                "Approximate bytes of the batches held.",
                &self.batches_bytes,
            ),
            (
                "own_pending",
                "Own batches not yet certified.",
                &self.own_pending,
            ),
            (
                "own_unfinalized",
                "Own batches not yet finalized.",
                &self.own_unfinalized,
            ),
            (
                "mempool_senders_held",
                "Pool senders held back until a batch of theirs is finalized.",
                &self.mempool_senders_held,
            ),
            (
                "peer_pending",
                "Peers' batches not yet certified.",
                &self.peer_pending,
            ),
            (
                "certified",
                "Certified batches not yet finalized.",
                &self.certified,
            ),
            ("certs", "Batch certificates held.", &self.certs),
            ("fetching", "Missing batches being fetched.", &self.fetching),
            (
                "evidence",
                "Evidence of lying batch authors kept.",
                &self.evidence,
            ),
            (
                "batch_log_segments",
                "Segment files of the batch log.",
                &self.batch_log_segments,
            ),
            (
                "finalized_recent",
                "Finalized batch digests remembered by the core.",
                &self.finalized_recent,
            ),
            (
                "finalized_waiting",
                "Finalized blocks waiting for batches.",
                &self.finalized_waiting,
            ),
            ("timers", "Armed consensus timers.", &self.timers),
            ("mempool_txs", "Mempool transactions.", &self.mempool_txs),
            (
                "mempool_bytes",
                "Mempool bytes of encoded transactions.",
                &self.mempool_bytes,
            ),
            (
                "mempool_senders",
                "Mempool sender cursors.",
                &self.mempool_senders,
            ),
            (
                "mempool_recent_ids",
                "Batched ids remembered for duplicate detection.",
                &self.mempool_recent_ids,
            ),
            ("core_queue", "Items queued for the core.", &self.core_queue),
            (
                "core_backlog",
                "Finalized blocks and batch log items waiting in the core for full exec and log queues.",
                &self.exec_backlog,
            ),
            (
                "exec_queue",
                "Finalized blocks queued for execution.",
                &self.exec_queue,
            ),
            (
                "executed_batches",
                "Executed batch digests remembered by exec.",
                &self.executed_batches,
            ),
            (
                "executed_set_bytes",
                "Bytes allocated by exec's executed-batch set.",
                &self.executed_set_bytes,
            ),
            (
                "submitted",
                "Submission times held for finality latency.",
                &self.submitted,
            ),
            (
                "submitted_bytes",
                "Bytes allocated by the submission-time table (capacity).",
                &self.submitted_bytes,
            ),
            ("subscribers", "Subscriptions.", &self.subscribers),
            (
                "sig_queue",
                "Items queued for signature verification.",
                &self.sig_queue,
            ),
            (
                "rss_anon_bytes",
                "Resident anonymous memory (heap).",
                &self.rss_anon_bytes,
            ),
            (
                "rss_file_bytes",
                "Resident file-backed memory (mostly the LMDB map: page cache).",
                &self.rss_file_bytes,
            ),
        ] {
            r.register(format!("plume_mem_{name}"), help, g.clone());
        }
    }
}

/// Counters and gauges shared by every role.
#[derive(Debug)]
pub struct NodeMetrics {
    /// Transactions accepted into the mempool.
    pub txs_admitted: Count,
    /// Submissions rejected (any reason).
    pub txs_rejected: Count,
    /// Transactions executed in finalized blocks.
    pub txs_finalized: Count,
    /// Blocks finalized and committed.
    pub blocks_finalized: Count,
    /// Signature batches verified.
    pub sig_batches: Count,
    /// Signatures verified.
    pub sig_verified: Count,
    /// Local timeouts (view changes).
    pub view_changes: Count,
    /// Malformed peer messages dropped.
    pub malformed_msgs: Count,
    /// Consensus messages rejected by the engine.
    pub consensus_rejected: Count,
    /// Notifications dropped because a subscriber was slow.
    pub notifications_dropped: Count,
    /// Batch votes sent.
    pub batch_votes_sent: Count,
    /// Certificates formed for own batches.
    pub batch_certs_formed: Count,
    /// Batches this validator verified as one of their verifiers.
    pub batch_verifications: Count,
    /// Fallback verification requests sent.
    pub batch_verify_requests: Count,
    /// Batch fetch requests sent.
    pub batch_fetches: Count,
    /// Evidence of lying batch authors found.
    pub batch_evidence: Count,
    /// Proposals refused because a batch lacked a valid certificate.
    pub proposals_refused: Count,
    /// Work dropped because the signature role's queue was full.
    pub shed_sig_queue: Count,
    /// Peer work dropped: the peer's budget was spent.
    pub peer_budget_shed: Count,
    /// Batch log syncs.
    pub batch_log_syncs: Count,
    /// Blocks executed from peers' stores (catch-up).
    pub catchup_blocks: Count,
    /// Catch-up segments refused (failed a check) or useless.
    pub catchup_refused: Count,
    /// Catch-up segments served to peers.
    pub catchup_served: Count,
    /// Catch-up requests received from observers.
    pub observer_requests: Count,
    /// Observers' messages dropped (anything but a catch-up request).
    pub observer_refused: Count,
    /// Observer: blocks verified and executed from the validators' stores.
    pub observed_blocks: Count,
    /// Observer: alerts raised while indexing.
    pub alerts: Count,
    /// Observer: alerts delivered to the webhook.
    pub alert_webhook_sent: Count,
    /// Observer: alerts the webhook did not take (after retries, or a
    /// full queue).
    pub alert_webhook_failed: Count,
    /// Value-moving transactions checked by the compliance engine.
    pub compliance_checked: Count,
    /// Transactions the compliance engine stopped (Failed, 200s code).
    pub compliance_stopped: Count,
    /// Transactions the compliance engine flagged (alert, not stopped).
    pub compliance_flagged: Count,
    /// Own batches: cut to certificate.
    pub certified_latency: Histogram,
    /// Transactions of own batches: admission to certificate.
    pub tx_certified_latency: Histogram,
    /// Busy seconds per role.
    pub busy: Family<RoleLabel, Counter<f64, AtomicU64>>,
    /// Items shed under load, by reason (`plume_shed_total{reason}`).
    pub shed: Family<ShedLabel, Count>,
    /// Mempool depth.
    pub mempool_depth: Level,
    /// Connected peers.
    pub peers: Level,
    /// Consensus view.
    pub view: Level,
    /// 1 once our state diverged from the certified one.
    pub state_diverged: Level,
    /// The height it diverged at.
    pub state_diverged_height: Level,
    /// Finalized height (executed and committed to the store).
    pub height: Level,
    /// Highest block consensus finalized (execution may lag behind it).
    pub consensus_height: Level,
    /// Highest block in the fund-flow index (observers).
    pub index_height: Level,
    /// Finality latency (submission on this node to commit).
    pub finality: Histogram,
    /// Sizes of the long-lived collections (`plume_mem_*`).
    pub mem: MemGauges,
    /// The peer network's counters, once the core has started it.
    pub net: Arc<OnceLock<Arc<plume_netstack::Metrics>>>,
    /// The datagram transport's counters, when one runs.
    pub dgram: Arc<OnceLock<Arc<plume_netstack::dgram::DgramMetrics>>>,
    registry: Registry,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeMetrics {
    // Long by design: the registration tables of every metric (names are
    // part of the interface: dashboards read them).
    /// Fresh metrics, registered.
    pub fn new() -> Self {
        let mut m = NodeMetrics {
            txs_admitted: Count::default(),
            txs_rejected: Count::default(),
            txs_finalized: Count::default(),
            blocks_finalized: Count::default(),
            sig_batches: Count::default(),
            sig_verified: Count::default(),
            view_changes: Count::default(),
            malformed_msgs: Count::default(),
            consensus_rejected: Count::default(),
            notifications_dropped: Count::default(),
            batch_votes_sent: Count::default(),
            batch_certs_formed: Count::default(),
            batch_verifications: Count::default(),
            batch_verify_requests: Count::default(),
            batch_fetches: Count::default(),
            batch_evidence: Count::default(),
            proposals_refused: Count::default(),
            shed_sig_queue: Count::default(),
            peer_budget_shed: Count::default(),
            batch_log_syncs: Count::default(),
            catchup_blocks: Count::default(),
            catchup_refused: Count::default(),
            catchup_served: Count::default(),
            observer_requests: Count::default(),
            observer_refused: Count::default(),
            observed_blocks: Count::default(),
            alerts: Count::default(),
            alert_webhook_sent: Count::default(),
            alert_webhook_failed: Count::default(),
            compliance_checked: Count::default(),
            compliance_stopped: Count::default(),
            compliance_flagged: Count::default(),
            certified_latency: Histogram::new(STAGE_BUCKETS_S),
            tx_certified_latency: Histogram::new(STAGE_BUCKETS_S),
            busy: Family::default(),
            shed: Family::default(),
            mempool_depth: Level::default(),
            peers: Level::default(),
            view: Level::default(),
            state_diverged: Level::default(),
            state_diverged_height: Level::default(),
            height: Level::default(),
            consensus_height: Level::default(),
            index_height: Level::default(),
            finality: Histogram::new(FINALITY_BUCKETS_S),
            mem: MemGauges::default(),
            net: Arc::new(OnceLock::new()),
            dgram: Arc::new(OnceLock::new()),
            registry: Registry::default(),
        };
        let mut r = Registry::default();
        for (name, help, c) in [
            (
                "plume_txs_admitted",
                "Transactions admitted to the mempool.",
                &m.txs_admitted,
            ),
            (
                "plume_txs_rejected",
                "Transactions rejected at submission.",
                &m.txs_rejected,
            ),
            (
                "plume_txs_finalized",
                "Transactions executed in finalized blocks.",
                &m.txs_finalized,
            ),
            (
                "plume_blocks_finalized",
                "Blocks finalized and committed.",
                &m.blocks_finalized,
            ),
            (
                "plume_sig_batches",
                "Signature verification batches.",
                &m.sig_batches,
            ),
            (
                "plume_sig_verified",
                "Transaction signatures verified (submissions and batches verified as a verifier).",
                &m.sig_verified,
            ),
            (
                "plume_view_changes",
                "Local view timeouts.",
                &m.view_changes,
            ),
            (
                "plume_malformed_messages",
                "Malformed peer messages dropped.",
                &m.malformed_msgs,
            ),
            (
                "plume_consensus_rejected",
                "Consensus messages the engine rejected.",
                &m.consensus_rejected,
            ),
            (
                "plume_notifications_dropped",
                "Subscription notifications dropped.",
                &m.notifications_dropped,
            ),
            (
                "plume_batch_votes_sent",
                "Batch votes sent.",
                &m.batch_votes_sent,
            ),
            (
                "plume_batch_certs_formed",
                "Certificates formed for own batches.",
                &m.batch_certs_formed,
            ),
            (
                "plume_batch_verifications",
                "Batches verified as one of their verifiers.",
                &m.batch_verifications,
            ),
            (
                "plume_batch_verify_requests",
                "Fallback verification requests sent.",
                &m.batch_verify_requests,
            ),
            (
                "plume_batch_fetches",
                "Batch fetch requests sent.",
                &m.batch_fetches,
            ),
            (
                "plume_batch_evidence",
                "Evidence of lying batch authors found.",
                &m.batch_evidence,
            ),
            (
                "plume_proposals_refused",
                "Proposals refused by the vote rule of certified batches.",
                &m.proposals_refused,
            ),
            (
                "plume_shed_sig_queue",
                "Work dropped: the signature queue was full.",
                &m.shed_sig_queue,
            ),
            (
                "plume_peer_budget_shed",
                "Peer work dropped: the peer spent its budget (signatures or bytes served).",
                &m.peer_budget_shed,
            ),
            (
                "plume_catchup_blocks",
                "Finalized blocks executed from peers' block stores (catch-up from any distance).",
                &m.catchup_blocks,
            ),
            (
                "plume_catchup_refused",
                "Catch-up segments refused (a check failed) or that held nothing to execute yet.",
                &m.catchup_refused,
            ),
            (
                "plume_catchup_served",
                "Catch-up segments this validator served from its block store.",
                &m.catchup_served,
            ),
            (
                "plume_observer_requests",
                "Catch-up requests received from genesis observers (served after every validator's).",
                &m.observer_requests,
            ),
            (
                "plume_observer_refused",
                "Observers' messages dropped: an observer may only ask for certified blocks (a vote, proposal, batch or transaction from one is refused).",
                &m.observer_refused,
            ),
            (
                "plume_observed_blocks",
                "Observer: finalized blocks whose certificates and certified root it verified and whose execution it reproduced.",
                &m.observed_blocks,
            ),
            (
                "plume_alerts",
                "Observer: alerts raised by the [alerts] rules while indexing (plume_alerts, WebSocket [\"alerts\"]).",
                &m.alerts,
            ),
            (
                "plume_alert_webhook_sent",
                "Observer: alerts delivered to the [alerts] webhook (HTTP 2xx).",
                &m.alert_webhook_sent,
            ),
            (
                "plume_alert_webhook_failed",
                "Observer: alerts the webhook did not take after three attempts, or dropped on a full queue (they stay in plume_alerts).",
                &m.alert_webhook_failed,
            ),
            (
                "plume_compliance_checked",
                "Value-moving transactions checked against the compliance rules.",
                &m.compliance_checked,
            ),
            (
                "plume_compliance_stopped",
                "Transactions the compliance rules stopped (Failed with a 200s code).",
                &m.compliance_stopped,
            ),
            (
                "plume_compliance_flagged",
                "Transactions the compliance rules flagged without stopping them.",
                &m.compliance_flagged,
            ),
            (
                "plume_batch_log_syncs",
                "Batch log syncs (one per group of appends).",
                &m.batch_log_syncs,
            ),
        ] {
            r.register(name, help, c.clone());
        }
        r.register(
            "plume_role_busy_seconds",
            "Seconds each role spent working.",
            m.busy.clone(),
        );
        r.register(
            "plume_shed",
            "Items dropped or refused under load, by reason (README: limits).",
            m.shed.clone(),
        );
        for (name, help, g) in [
            (
                "plume_mempool_depth",
                "Mempool transactions.",
                &m.mempool_depth,
            ),
            ("plume_peers", "Connected peers.", &m.peers),
            ("plume_view", "Current consensus view.", &m.view),
            (
                "plume_state_diverged",
                "1 when this validator's state root differs from the certified one (it stopped voting).",
                &m.state_diverged,
            ),
            (
                "plume_state_diverged_height",
                "Height at which this validator's state diverged.",
                &m.state_diverged_height,
            ),
            (
                "plume_finalized_height",
                "Height of the last committed block.",
                &m.height,
            ),
            (
                "plume_consensus_height",
                "Highest block consensus finalized; execution may lag behind it (plume_finalized_height).",
                &m.consensus_height,
            ),
            (
                "plume_index_height",
                "Observer: highest block whose flows are in the fund-flow index.",
                &m.index_height,
            ),
        ] {
            r.register(name, help, g.clone());
        }
        r.register(
            "plume_finality_latency_seconds",
            "Submission on this node to the commit of its block.",
            m.finality.clone(),
        );
        r.register(
            "plume_batch_certified_seconds",
            "Own batches: cut to certificate.",
            m.certified_latency.clone(),
        );
        r.register(
            "plume_tx_certified_seconds",
            "Transactions this node batched: admission to the batch's certificate.",
            m.tx_certified_latency.clone(),
        );
        m.mem.register(&mut r);
        r.register_collector(Box::new(NetCollector {
            net: m.net.clone(),
            dgram: m.dgram.clone(),
        }));
        m.registry = r;
        m
    }

    /// Add `us` microseconds to `role`'s busy time.
    pub fn add_busy(&self, role: &'static str, us: u64) {
        self.busy
            .get_or_create(&RoleLabel { role })
            .inc_by(us as f64 / 1e6);
    }

    /// Count one item shed for `reason` (`plume_shed_total{reason}`).
    pub fn shed(&self, reason: &'static str) {
        self.shed_n(reason, 1);
    }

    /// Count `n` items shed for `reason`.
    pub fn shed_n(&self, reason: &'static str, n: u64) {
        self.shed.get_or_create(&ShedLabel { reason }).inc_by(n);
    }

    /// How many items were shed for `reason` so far.
    pub fn shed_count(&self, reason: &'static str) -> u64 {
        self.shed.get_or_create(&ShedLabel { reason }).get()
    }

    /// Record one cut-to-certificate time.
    pub fn observe_certified_us(&self, us: u64) {
        self.certified_latency.observe(us as f64 / 1e6);
    }

    /// Record one admission-to-certificate time.
    pub fn observe_tx_certified_us(&self, us: u64) {
        self.tx_certified_latency.observe(us as f64 / 1e6);
    }

    /// Record one finality latency.
    pub fn observe_finality_ms(&self, ms: u64) {
        self.finality.observe(ms as f64 / 1000.0);
    }

    /// The OpenMetrics text of everything registered.
    pub fn encode(&self) -> String {
        if let Some((anon, file)) = proc_self_rss() {
            self.mem.rss_anon_bytes.set(anon);
            self.mem.rss_file_bytes.set(file);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encoding into a String cannot fail");
        out
    }
}

/// Encodes the netstack's counter snapshots under their own names.
#[derive(Debug)]
struct NetCollector {
    net: Arc<OnceLock<Arc<plume_netstack::Metrics>>>,
    dgram: Arc<OnceLock<Arc<plume_netstack::dgram::DgramMetrics>>>,
}

impl NetCollector {
    fn one(
        encoder: &mut DescriptorEncoder,
        prefix: &str,
        name: &str,
        help: &str,
        v: u64,
    ) -> Result<(), std::fmt::Error> {
        // "unknown" keeps the sample name as it is (a counter would get a
        // `_total` suffix the dashboards do not expect).
        let full = format!("{prefix}_{name}");
        let m = encoder.encode_descriptor(&full, help, None, MetricType::Unknown)?;
        ConstGauge::new(v as i64).encode(m)
    }
}

impl Collector for NetCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(nm) = self.net.get() {
            for (name, help, v) in nm.snapshot().described() {
                Self::one(&mut encoder, "plume_net", name, help, v)?;
            }
        }
        if let Some(dm) = self.dgram.get() {
            for (name, help, v) in dm.snapshot().described() {
                Self::one(&mut encoder, "plume_dgram", name, help, v)?;
            }
        }
        Ok(())
    }
}

/// Bytes a hash table with this capacity allocates for `(K, V)` slots
/// (one control byte per slot; approximate).
pub fn table_bytes<K, V>(capacity: usize) -> u64 {
    (capacity * (std::mem::size_of::<K>() + std::mem::size_of::<V>() + 1)) as u64
}

/// (RssAnon, RssFile) of this process in bytes, from `/proc/self/status`.
pub fn proc_self_rss() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some((field("RssAnon:")?, field("RssFile:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_what_dashboards_expect() {
        let m = NodeMetrics::new();
        m.txs_rejected.inc_by(3);
        m.mem.batches_bytes.set(1234);
        m.add_busy("core", 1_500_000);
        m.observe_finality_ms(30);
        m.height.set(7);
        let text = m.encode();
        for want in [
            "plume_txs_rejected_total 3\n",
            "plume_sig_verified_total 0\n",
            "plume_mem_batches_bytes 1234\n",
            "plume_role_busy_seconds_total{role=\"core\"} 1.5\n",
            "plume_finality_latency_seconds_bucket{le=\"0.05\"} 1\n",
            "plume_finality_latency_seconds_bucket{le=\"0.025\"} 0\n",
            "plume_finality_latency_seconds_count 1\n",
            "plume_finalized_height 7\n",
            "# TYPE plume_mem_rss_anon_bytes gauge\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let rss = proc_self_rss().expect("linux /proc");
        assert!(rss.0 > 0);
    }
}
