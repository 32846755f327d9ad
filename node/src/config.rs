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
}

/// `[api]`
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Address of the JSON-RPC / metrics listener.
    pub listen_addr: String,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen_addr: "127.0.0.1:26700".into(),
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

impl Config {
    /// The defaults `plume init` writes.
    pub fn new(moniker: &str, listen_addr: &str, api_addr: &str) -> Self {
        Config {
            node: NodeSection {
                moniker: moniker.into(),
                listen_addr: listen_addr.into(),
            },
            api: ApiSection {
                listen_addr: api_addr.into(),
            },
            storage: StorageSection::default(),
            placement: PlacementSection::default(),
            mempool: MempoolSection::default(),
            batching: BatchingSection::default(),
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
        self.api
            .listen_addr
            .parse::<SocketAddr>()
            .with_context(|| {
                format!(
                    "api.listen_addr {:?} is not host:port",
                    self.api.listen_addr
                )
            })?;
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
        if b.batch_max_bytes < 1024 || b.batch_max_bytes > 16 * 1024 * 1024 {
            bail!("batching.batch_max_bytes must be 1024 to 16777216");
        }
        if b.batch_max_txs == 0 || b.batch_max_txs > 4096 {
            bail!("batching.batch_max_txs must be 1 to 4096");
        }
        if b.batch_delay_ms == 0 || b.batch_delay_ms > 1000 {
            bail!("batching.batch_delay_ms must be 1 to 1000");
        }
        Ok(())
    }

    /// The file text with a comment above every setting.
    pub fn to_commented_toml(&self) -> String {
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

[api]
# JSON-RPC over HTTP/WebSocket, /metrics and /health.
listen_addr = "{api}"

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
"#,
            moniker = self.node.moniker,
            listen = self.node.listen_addr,
            api = self.api.listen_addr,
            map = self.storage.map_size_gib,
            cc = list(&self.placement.consensus_cores),
            sc = list(&self.placement.sigverify_cores),
            ec = list(&self.placement.exec_cores),
            mtx = self.mempool.txs_max,
            mmib = self.mempool.mib_max,
            bbytes = self.batching.batch_max_bytes,
            btxs = self.batching.batch_max_txs,
            bdelay = self.batching.batch_delay_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> std::result::Result<Config, String> {
        Config::parse(text, Path::new("config.toml")).map_err(|e| format!("{e:#}"))
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
                good.replace("map_size_gib = 64", "map_size_gib = \"big\""),
                "map_size_gib",
            ),
            ("[node]\n".to_string(), "missing field `moniker`"),
        ];
        for (text, needle) in cases {
            let err = check(&text).unwrap_err();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
            assert!(err.contains("config.toml"), "{err:?} should name the file");
        }
    }
}
