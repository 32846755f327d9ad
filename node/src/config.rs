//! `config.toml`: the node's own settings (not consensus rules, which live
//! in genesis). Unknown keys are errors, so a typo never silently falls back
//! to a default.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

/// Config file name inside a home.
pub const CONFIG_FILE: &str = "config.toml";

/// The whole config file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Identity and peer address.
    pub node: NodeSection,
    /// Client API.
    #[serde(default)]
    pub api: ApiSection,
    /// Store.
    #[serde(default)]
    pub storage: StorageSection,
    /// Core placement.
    #[serde(default)]
    pub placement: PlacementSection,
    /// Mempool bounds.
    #[serde(default)]
    pub mempool: MempoolSection,
    /// How this node cuts transaction batches.
    #[serde(default)]
    pub batching: BatchingSection,
    /// Which transport carries peer links.
    #[serde(default)]
    pub network: NetworkSection,
    /// Alert rules an observer evaluates on each block it indexes.
    #[serde(default)]
    pub alerts: plume_index::AlertRules,
    /// Where an observer keeps its fund-flow index.
    #[serde(default)]
    pub index: IndexSection,
}

/// `[index]`
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IndexSection {
    /// A PostgreSQL database instead of the embedded SQLite file
    /// (`HOME/data/index.sqlite`): a libpq connection string or URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<String>,
}

impl IndexSection {
    /// Where the index of the node at `home` lives.
    pub fn location(&self, home: &Path) -> plume_index::Location {
        match &self.postgres {
            Some(url) => plume_index::Location::Postgres(url.clone()),
            None => plume_index::Location::Sqlite(home.join("data").join(INDEX_FILE)),
        }
    }
}

/// `network.transport`
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// TCP on glommio (io_uring readiness).
    #[default]
    Tcp,
    /// UDP through the kernel, with Plume's reliability layer.
    Udp,
    /// UDP frames through an AF_XDP socket and our XDP program.
    AfXdp,
    /// UDP frames through a DPDK port.
    Dpdk,
}

impl std::fmt::Display for TransportKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Udp => "udp",
            TransportKind::AfXdp => "af_xdp",
            TransportKind::Dpdk => "dpdk",
        })
    }
}

/// `[network]`: the transport under the authenticated peer links.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    /// "tcp", "udp", "af_xdp" or "dpdk".
    #[serde(default)]
    pub transport: TransportKind,
    /// af_xdp: the interface to attach to (e.g. "eth0").
    #[serde(default)]
    pub interface: String,
    /// af_xdp: the interface queue.
    #[serde(default)]
    pub queue: u32,
    /// af_xdp: "auto" (native, else generic), "native" or "generic".
    #[serde(default = "default_auto")]
    pub xdp_mode: String,
    /// af_xdp: "auto" (zero-copy, else copy) or "copy".
    #[serde(default = "default_auto")]
    pub xdp_bind: String,
    /// dpdk: the port name, a vdev name ("net_af_packet0") or a PCI address.
    #[serde(default)]
    pub dpdk_device: String,
    /// dpdk: `--vdev` arguments, e.g. ["net_af_packet0,iface=eth0"].
    #[serde(default)]
    pub dpdk_vdevs: Vec<String>,
    /// dpdk: PCI devices to allow (bound to vfio-pci); empty: no PCI scan.
    #[serde(default)]
    pub dpdk_pci: Vec<String>,
    /// dpdk: ordinary pages instead of huge pages (testing only).
    #[serde(default)]
    pub dpdk_no_huge: bool,
    /// dpdk: EAL memory in MiB.
    #[serde(default = "default_dpdk_mem")]
    pub dpdk_mem_mb: u32,
    /// Bypass transports: prefix length of the local subnet.
    #[serde(default = "default_prefix")]
    pub prefix_len: u8,
    /// Bypass transports: next hop for peers outside the subnet ("" none).
    #[serde(default)]
    pub gateway: String,
    /// Datagram transports: never sleep between polls (a dedicated core).
    #[serde(default)]
    pub busy_poll: bool,
}

fn default_auto() -> String {
    "auto".into()
}

fn default_dpdk_mem() -> u32 {
    256
}

fn default_prefix() -> u8 {
    24
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            transport: TransportKind::Tcp,
            interface: String::new(),
            queue: 0,
            xdp_mode: default_auto(),
            xdp_bind: default_auto(),
            dpdk_device: String::new(),
            dpdk_vdevs: Vec::new(),
            dpdk_pci: Vec::new(),
            dpdk_no_huge: false,
            dpdk_mem_mb: default_dpdk_mem(),
            prefix_len: default_prefix(),
            gateway: String::new(),
            busy_poll: false,
        }
    }
}

impl NetworkSection {
    fn check(&self, listen: SocketAddr) -> Result<()> {
        let n = self;
        if n.prefix_len > 32 {
            bail!("network.prefix_len must be 0 to 32");
        }
        if !n.gateway.is_empty() {
            n.gateway.parse::<std::net::Ipv4Addr>().with_context(|| {
                format!("network.gateway {:?} is not an IPv4 address", n.gateway)
            })?;
        }
        if !["auto", "native", "generic"].contains(&n.xdp_mode.as_str()) {
            bail!("network.xdp_mode must be \"auto\", \"native\" or \"generic\"");
        }
        if !["auto", "copy"].contains(&n.xdp_bind.as_str()) {
            bail!("network.xdp_bind must be \"auto\" or \"copy\"");
        }
        if n.dpdk_mem_mb == 0 || n.dpdk_mem_mb > 1 << 20 {
            bail!("network.dpdk_mem_mb must be 1 to 1048576");
        }
        if n.dpdk_vdevs.len() + n.dpdk_pci.len() > 16 {
            bail!("network: at most 16 DPDK devices");
        }
        let bypass = matches!(n.transport, TransportKind::AfXdp | TransportKind::Dpdk);
        if n.transport != TransportKind::Tcp && !listen.is_ipv4() {
            bail!(
                "network.transport = \"{}\" carries IPv4 only; node.listen_addr is {listen}",
                n.transport
            );
        }
        if bypass && (listen.ip().is_unspecified() || listen.port() == 0) {
            bail!(
                "network.transport = \"{}\" needs node.listen_addr to be the interface's own IPv4 address and a fixed port, not {listen}",
                n.transport
            );
        }
        if n.transport == TransportKind::AfXdp && n.interface.is_empty() {
            bail!("network.transport = \"af_xdp\" needs network.interface (e.g. \"eth0\"; see `ip link`)");
        }
        if n.transport == TransportKind::Dpdk && n.dpdk_device.is_empty() {
            bail!("network.transport = \"dpdk\" needs network.dpdk_device (a vdev name such as \"net_af_packet0\" with dpdk_vdevs = [\"net_af_packet0,iface=eth0\"], or a PCI address in dpdk_pci)");
        }
        Ok(())
    }
}

/// `[batching]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchingSection {
    /// Most bytes of transactions in one batch.
    pub batch_max_bytes: u32,
    /// Most transactions in one batch.
    pub batch_max_txs: u32,
    /// How often a batch is cut from the mempool, in milliseconds.
    pub batch_delay_ms: u32,
}

impl Default for BatchingSection {
    fn default() -> Self {
        BatchingSection {
            batch_max_bytes: 4 * 1024 * 1024,
            batch_max_txs: 2048,
            batch_delay_ms: 2,
        }
    }
}

/// `[mempool]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MempoolSection {
    /// Most transactions held.
    pub txs_max: u32,
    /// Most MiB of transactions held.
    pub mib_max: u32,
}

impl Default for MempoolSection {
    fn default() -> Self {
        MempoolSection {
            txs_max: 200_000,
            mib_max: 256,
        }
    }
}

/// `[node]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Human name of this node.
    pub moniker: String,
    /// Address to listen on for peers.
    pub listen_addr: String,
    /// What this node is: a voting validator (the default) or a
    /// non-voting observer that follows the validators' certified blocks.
    #[serde(default, skip_serializing_if = "Role::is_validator")]
    pub role: Role,
}

/// `node.role`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Votes, proposes, accepts transactions.
    #[default]
    Validator,
    /// Holds no voting key; fetches and verifies certified blocks,
    /// executes them, serves reads; accepts no transaction.
    Observer,
}

impl Role {
    fn is_validator(&self) -> bool {
        *self == Role::Validator
    }

    /// The name in config and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Validator => "validator",
            Role::Observer => "observer",
        }
    }
}

/// `[api]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Address of the JSON-RPC / metrics listener.
    pub listen_addr: String,
    /// Most open API connections (default 1,024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_max: Option<u32>,
    /// Most open API connections from one client address (default 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_per_client: Option<u32>,
    /// Calls per second one client address may make (default 50,000; the
    /// burst is twice this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls_per_s: Option<u32>,
    /// Most calls in one JSON-RPC batch (default 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_calls_max: Option<u32>,
    /// A file (absolute, or relative to the node's home) holding the
    /// access token: every request but `/health` must then carry
    /// `Authorization: Bearer <token>` (or, from a browser, the cookie the
    /// dashboard's `/dashboard/login?token=` sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
}

impl ApiSection {
    /// The server's limits: the defaults, with what this section sets.
    pub fn limits(&self) -> crate::http::Limits {
        let mut l = crate::http::Limits::default();
        if let Some(n) = self.connections_max {
            l.connections_max = n as usize;
        }
        if let Some(n) = self.connections_per_client {
            l.connections_per_client = n as usize;
        }
        if let Some(n) = self.calls_per_s {
            l.calls_per_s = f64::from(n);
            l.calls_burst = 2.0 * f64::from(n);
        }
        if let Some(n) = self.batch_calls_max {
            l.batch_calls_max = n as usize;
        }
        l
    }

    /// The access token (`token_file`, read now), if one is required.
    pub fn token(&self, home: &Path) -> Result<Option<String>> {
        let Some(f) = &self.token_file else {
            return Ok(None);
        };
        let path = home.join(f);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("api.token_file: reading {}", path.display()))?;
        let t = text.trim();
        if t.len() < 16 || t.len() > 256 || !t.bytes().all(|b| b.is_ascii_graphic()) {
            bail!(
                "api.token_file {}: the token must be 16 to 256 printable ASCII characters without spaces",
                path.display()
            );
        }
        Ok(Some(t.to_string()))
    }

    fn check(&self) -> Result<()> {
        if self
            .token_file
            .as_deref()
            .is_some_and(|f| f.trim().is_empty())
        {
            bail!("api.token_file is empty: remove it or name the token's file");
        }
        let bad = |name: &str, v: Option<u32>, max: u32| match v {
            Some(n) if n == 0 || n > max => Err(anyhow::anyhow!("api.{name} must be 1 to {max}")),
            _ => Ok(()),
        };
        bad("connections_max", self.connections_max, 65_536)?;
        bad(
            "connections_per_client",
            self.connections_per_client,
            65_536,
        )?;
        bad("calls_per_s", self.calls_per_s, 10_000_000)?;
        bad("batch_calls_max", self.batch_calls_max, 100_000)?;
        Ok(())
    }
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen_addr: "127.0.0.1:26700".into(),
            connections_max: None,
            connections_per_client: None,
            calls_per_s: None,
            batch_calls_max: None,
            token_file: None,
        }
    }
}

/// `[storage]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// LMDB map size in GiB (virtual address space reserved, not disk used).
    pub map_size_gib: u32,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection { map_size_gib: 64 }
    }
}

/// `[placement]`: which cores run which roles. Empty lists mean "choose
/// from the detected core count".
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PlacementSection {
    /// Cores for network + consensus + storage commit.
    #[serde(default)]
    pub consensus_cores: Vec<u32>,
    /// Cores for signature verification.
    #[serde(default)]
    pub sigverify_cores: Vec<u32>,
    /// Cores for execution shards.
    #[serde(default)]
    pub exec_cores: Vec<u32>,
}

/// Largest map size accepted (TiB-scale typos are caught).
pub const MAP_SIZE_GIB_MAX: u32 = 4096;

/// The `[alerts]` settings, commented out where unset.
fn alerts_toml(a: &plume_index::AlertRules) -> String {
    let line = |name: &str, v: Option<u64>, example: u64, doc: &str| match v {
        Some(v) => format!("# {doc}\n{name} = {v}\n"),
        None => format!("# {doc}\n# {name} = {example}\n"),
    };
    format!(
        "{}{}{}# The window of rapid_in_out, in blocks.\nrapid_in_out_blocks = {}\n# A transaction the compliance rules stopped (Failed, code 200-299).\ncompliance_stops = {}\n# A transaction a compliance rule flagged without stopping it (e.g. structuring).\ncompliance_flags = {}\n# Also POST each alert as JSON here (plain http://host:port/path).\n{}\n",
        line("large_transfer", a.large_transfer, 1_000_000_000, "A flow between two accounts of at least this amount."),
        line("new_counterparty", a.new_counterparty, 100_000_000, "A first flow from an account to another, of at least this amount."),
        line("rapid_in_out", a.rapid_in_out, 100_000_000, "An account sends on at least 90 % of what it received within rapid_in_out_blocks (both at least this)."),
        a.rapid_in_out_blocks,
        a.compliance_stops,
        a.compliance_flags,
        match &a.webhook {
            Some(u) => format!("webhook = {u:?}"),
            None => "# webhook = \"http://127.0.0.1:9000/alerts\"".to_string(),
        }
    )
}

impl Config {
    /// The defaults `plume init` writes.
    pub fn new(moniker: &str, listen_addr: &str, api_addr: &str) -> Self {
        Config {
            node: NodeSection {
                moniker: moniker.into(),
                listen_addr: listen_addr.into(),
                role: Role::Validator,
            },
            api: ApiSection {
                listen_addr: api_addr.into(),
                ..ApiSection::default()
            },
            storage: StorageSection::default(),
            placement: PlacementSection::default(),
            mempool: MempoolSection::default(),
            batching: BatchingSection::default(),
            network: NetworkSection::default(),
            alerts: plume_index::AlertRules::default(),
            index: IndexSection::default(),
        }
    }

    /// Parse and check, with errors naming `origin` (the file).
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let cfg: Config = toml::from_str(text)
            .with_context(|| format!("{}: invalid config", origin.display()))?;
        cfg.check()
            .with_context(|| format!("{}: invalid config", origin.display()))?;
        Ok(cfg)
    }

    /// Read `HOME/config.toml`.
    pub fn load(home: &Path) -> Result<Self> {
        let path = home.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        Self::parse(&text, &path)
    }

    fn check(&self) -> Result<()> {
        if self.node.moniker.is_empty() || self.node.moniker.len() > 64 {
            bail!("node.moniker must be 1 to 64 characters");
        }
        self.node
            .listen_addr
            .parse::<SocketAddr>()
            .with_context(|| {
                format!(
                    "node.listen_addr {:?} is not host:port",
                    self.node.listen_addr
                )
            })?;
        let listen: SocketAddr = self.node.listen_addr.parse()?;
        self.network.check(listen)?;
        self.api
            .listen_addr
            .parse::<SocketAddr>()
            .with_context(|| {
                format!(
                    "api.listen_addr {:?} is not host:port",
                    self.api.listen_addr
                )
            })?;
        self.api.check()?;
        if self.storage.map_size_gib == 0 || self.storage.map_size_gib > MAP_SIZE_GIB_MAX {
            bail!("storage.map_size_gib must be 1 to {MAP_SIZE_GIB_MAX}");
        }
        if self.mempool.txs_max == 0 || self.mempool.txs_max > 10_000_000 {
            bail!("mempool.txs_max must be 1 to 10000000");
        }
        if self.mempool.mib_max == 0 || self.mempool.mib_max > 65_536 {
            bail!("mempool.mib_max must be 1 to 65536");
        }
        let b = &self.batching;
        let max = crate::wire::BATCH_BYTES_MAX;
        if b.batch_max_bytes < 1024 || b.batch_max_bytes as usize > max {
            bail!(
                "batching.batch_max_bytes must be 1024 to {max} (a full batch must fit one frame)"
            );
        }
        if b.batch_max_txs == 0 || b.batch_max_txs > 4096 {
            bail!("batching.batch_max_txs must be 1 to 4096");
        }
        if b.batch_delay_ms == 0 || b.batch_delay_ms > 1000 {
            bail!("batching.batch_delay_ms must be 1 to 1000");
        }
        if let Some(url) = &self.alerts.webhook {
            parse_webhook(url)?;
        }
        if self.alerts.rapid_in_out_blocks == 0 || self.alerts.rapid_in_out_blocks > 100_000 {
            bail!("alerts.rapid_in_out_blocks must be 1 to 100000");
        }
        if self
            .index
            .postgres
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            bail!("index.postgres is empty: remove it (SQLite) or give a connection string");
        }
        Ok(())
    }

    // Long by design: one template of the whole file, so its comments read
    // in the order an operator sees them.
    /// The file text with a comment above every setting.
    pub fn to_commented_toml(&self) -> String {
        let quoted = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let list = |v: &[u32]| {
            v.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            r#"# Plume node configuration. Consensus rules live in genesis.json, not here.
# Unknown keys are errors.

[node]
# Human-readable name, shown in logs and to peers.
moniker = "{moniker}"
# Address this node listens on for peer links (validators connect here).
listen_addr = "{listen}"
# "validator" (votes) or "observer" (follows certified blocks, never votes,
# accepts no transaction; its network key must be in genesis `observers`).
role = "{role}"

[api]
# JSON-RPC over HTTP/WebSocket, /metrics and /health.
listen_addr = "{api}"
# Limits (README: limits); uncomment to change a default.
# connections_max = 1024
# connections_per_client = 256
# calls_per_s = 50000
# batch_calls_max = 1000
# Require a bearer token (the file's one line, at least 16 characters) on
# every request but /health, the dashboard included.
{token}

[storage]
# LMDB map size in GiB: address space reserved for the store, not disk used.
# When the store fills up the node stops with "store full"; raise this.
map_size_gib = {map}

[placement]
# Which CPU cores run which roles. Empty lists: chosen from the detected core
# count (2 cores: core 0 network+consensus+storage, core 1 sigverify+execution).
# `plume tune --write` fills these from the host's topology.
consensus_cores = [{cc}]
sigverify_cores = [{sc}]
exec_cores = [{ec}]

[mempool]
# Bounds of the pool of verified transactions waiting for a batch. When full,
# a transaction paying more per gas than the cheapest held evicts it;
# otherwise it is refused with "mempool full".
txs_max = {mtx}
mib_max = {mmib}

[batching]
# Batches of verified transactions are cut from the mempool every
# batch_delay_ms and sent to the other validators; proposals carry their
# digests. Bigger batches: more throughput; shorter delay: lower latency.
batch_max_bytes = {bbytes}
batch_max_txs = {btxs}
batch_delay_ms = {bdelay}

[network]
# What carries peer links: "tcp" (default), "udp" (kernel UDP with Plume's
# reliability layer), "af_xdp" (kernel bypass through an AF_XDP socket and
# our XDP program; needs root or CAP_NET_ADMIN+CAP_BPF, set interface) or
# "dpdk" (a DPDK port; set dpdk_device and dpdk_vdevs or dpdk_pci). With
# af_xdp and dpdk, node.listen_addr must be the interface's IPv4 address.
# `plume tune` reports which of them this host can run.
transport = "{transport}"
interface = "{iface}"
queue = {queue}
xdp_mode = "{xmode}"
xdp_bind = "{xbind}"
dpdk_device = "{ddev}"
dpdk_vdevs = [{dvdevs}]
dpdk_pci = [{dpci}]
dpdk_no_huge = {dnohuge}
dpdk_mem_mb = {dmem}
prefix_len = {prefix}
gateway = "{gw}"
busy_poll = {busy}

[alerts]
# Observers only: rules evaluated on every block as it is indexed; alerts
# are stored in the index (plume_alerts) and pushed to WebSocket
# subscribers of ["alerts"]. Amounts in the asset's smallest unit.
{alerts}
[index]
# Observers only: the fund-flow index is an SQLite file in data/ unless a
# PostgreSQL database is named here (libpq string or postgresql:// URL).
{index}"#,
            moniker = self.node.moniker,
            listen = self.node.listen_addr,
            role = self.node.role.name(),
            alerts = alerts_toml(&self.alerts),
            index = match &self.index.postgres {
                Some(u) => format!("postgres = {u:?}"),
                None => "# postgres = \"host=127.0.0.1 port=5432 user=plume dbname=plume\"".into(),
            },
            api = self.api.listen_addr,
            token = match &self.api.token_file {
                Some(f) => format!("token_file = {f:?}"),
                None => "# token_file = \"api.token\"".into(),
            },
            map = self.storage.map_size_gib,
            cc = list(&self.placement.consensus_cores),
            sc = list(&self.placement.sigverify_cores),
            ec = list(&self.placement.exec_cores),
            mtx = self.mempool.txs_max,
            mmib = self.mempool.mib_max,
            bbytes = self.batching.batch_max_bytes,
            btxs = self.batching.batch_max_txs,
            bdelay = self.batching.batch_delay_ms,
            transport = self.network.transport,
            iface = self.network.interface,
            queue = self.network.queue,
            xmode = self.network.xdp_mode,
            xbind = self.network.xdp_bind,
            ddev = self.network.dpdk_device,
            dvdevs = quoted(&self.network.dpdk_vdevs),
            dpci = quoted(&self.network.dpdk_pci),
            dnohuge = self.network.dpdk_no_huge,
            dmem = self.network.dpdk_mem_mb,
            prefix = self.network.prefix_len,
            gw = self.network.gateway,
            busy = self.network.busy_poll,
        )
    }
}

/// The SQLite index's file, under `<home>/data`.
pub const INDEX_FILE: &str = "index.sqlite";

/// A parsed `[alerts] webhook` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookTarget {
    /// `host:port` as written (the Host header).
    pub host: String,
    /// Path (with the query).
    pub path: String,
}

/// Parse `http://host:port/path` (no TLS, no credentials).
pub fn parse_webhook(url: &str) -> Result<WebhookTarget> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("alerts.webhook {url:?}: only http://host:port/path is supported");
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() || host.contains('@') || !host.contains(':') {
        bail!("alerts.webhook {url:?}: needs host:port");
    }
    if path.len() > 2048 || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        bail!("alerts.webhook {url:?}: bad path");
    }
    Ok(WebhookTarget {
        host: host.to_string(),
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> std::result::Result<Config, String> {
        Config::parse(text, Path::new("config.toml")).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn api_limits_come_from_the_config() {
        let good = Config::new("v0", "127.0.0.1:26600", "127.0.0.1:26700").to_commented_toml();
        let c = check(&good.replace(
            "# connections_per_client = 256",
            "connections_per_client = 8",
        ))
        .unwrap();
        let l = c.api.limits();
        assert_eq!(l.connections_per_client, 8);
        assert_eq!(
            l.connections_max,
            crate::http::Limits::default().connections_max
        );
    }

    #[test]
    fn commented_defaults_round_trip() {
        let c = Config::new("v0", "127.0.0.1:26600", "127.0.0.1:26700");
        assert_eq!(check(&c.to_commented_toml()).unwrap(), c);
    }

    #[test]
    fn bad_configs_name_the_problem() {
        let good = Config::new("v0", "127.0.0.1:26600", "127.0.0.1:26700").to_commented_toml();
        let cases = [
            (
                good.replace("moniker = \"v0\"", "moniker = \"v0\"\ncolour = 1"),
                "unknown field `colour`",
            ),
            (
                good.replace("127.0.0.1:26600", "nowhere"),
                "node.listen_addr",
            ),
            (
                good.replace("map_size_gib = 64", "map_size_gib = 0"),
                "storage.map_size_gib",
            ),
            (
                good.replace("# calls_per_s = 50000", "calls_per_s = 0"),
                "api.calls_per_s must be 1 to",
            ),
            (
                good.replace("map_size_gib = 64", "map_size_gib = \"big\""),
                "map_size_gib",
            ),
            ("[node]\n".to_string(), "missing field `moniker`"),
            (
                good.replace("transport = \"tcp\"", "transport = \"carrier-pigeon\""),
                "unknown variant `carrier-pigeon`",
            ),
            (
                good.replace("transport = \"tcp\"", "transport = \"af_xdp\""),
                "needs network.interface",
            ),
            (
                good.replace("transport = \"tcp\"", "transport = \"dpdk\""),
                "needs network.dpdk_device",
            ),
            (
                good.replace("transport = \"tcp\"", "transport = \"af_xdp\"")
                    .replace("interface = \"\"", "interface = \"eth0\"")
                    .replace("127.0.0.1:26600", "0.0.0.0:26600"),
                "interface's own IPv4 address",
            ),
        ];
        for (text, needle) in cases {
            let err = check(&text).unwrap_err();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
            assert!(err.contains("config.toml"), "{err:?} should name the file");
        }
    }
}
