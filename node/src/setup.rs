//! Everything `plume start` derives from the home directory before any
//! role starts: config, genesis, keys, the committee and our place in it,
//! the execution parameters, and the opened store (with the genesis state
//! committed on first start) plus what consensus recovers from disk.

use crate::config::Config;
use crate::keys::NodeKeys;
use crate::safety::SafetyFile;
use anyhow::{anyhow, bail, Context, Result};
use plume_consensus::{Block, BlsScheme, Recovered};
use plume_crypto::ed25519::Address;
use plume_crypto::qc::ValidatorSet;
use plume_protocol::genesis::Genesis;
use plume_storage::{LmdbKv, LmdbOptions, Store};
use std::path::{Path, PathBuf};

/// Everything derived from the home directory before threads start.
pub struct NodeSetup {
    /// Home.
    pub home: PathBuf,
    /// Config.
    pub config: Config,
    /// Genesis.
    pub genesis: Genesis,
    /// Keys.
    pub keys: NodeKeys,
    /// Our committee index.
    pub me: u32,
    /// Committee.
    pub committee: ValidatorSet,
    /// The committee as batch certificates see it (network keys, power).
    pub batch_committee: plume_protocol::batch::BatchCommittee,
    /// Execution parameters.
    pub params: plume_execution::Params,
    /// Consensus chain id (from the chain id string).
    pub chain_u64: u64,
    /// The genesis compliance section, parsed.
    pub compliance: Option<plume_compliance::GenesisCompliance>,
}

impl std::fmt::Debug for NodeSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSetup")
            .field("home", &self.home)
            .field("me", &self.me)
            .finish()
    }
}

/// Convert genesis params to execution params.
pub fn exec_params(g: &Genesis) -> Result<plume_execution::Params> {
    let p = &g.params;
    let params = plume_execution::Params {
        chain_id: g.chain_id.clone(),
        block_txs_max: p.block_txs_max,
        block_txs_limit: p.block_txs_max,
        block_gas_limit: p.block_gas_limit,
        block_gas_target: p.block_gas_target,
        base_fee_initial: p.base_fee_initial,
        base_fee_min: p.base_fee_min,
        base_fee_change_denominator: p.base_fee_change_denominator,
        fee_burn_percent: p.fee_burn_percent,
        fee_treasury_percent: p.fee_treasury_percent,
        treasury: Address::from_hex(&p.treasury)?,
        gov: p.governance,
    };
    params
        .validate()
        .map_err(|e| anyhow!("genesis params: {e}"))?;
    Ok(params)
}

/// The genesis document's `compliance` section, parsed and validated
/// (errors name the field at fault).
pub fn compliance_of(g: &Genesis) -> Result<Option<plume_compliance::GenesisCompliance>> {
    let Some(v) = &g.compliance else {
        return Ok(None);
    };
    let c: plume_compliance::GenesisCompliance = serde_json::from_value(v.clone())
        .map_err(|e| anyhow!("genesis compliance section: {e}"))?;
    c.validate()
        .map_err(|e| anyhow!("genesis compliance section: {e}"))?;
    Ok(Some(c))
}

/// The consensus chain id: the first 8 bytes of the chain id's hash.
pub fn chain_u64(chain_id: &str) -> u64 {
    plume_protocol::genesis::consensus_chain(chain_id)
}

impl NodeSetup {
    /// Load config, genesis (`HOME/genesis.json` unless given) and keys.
    pub fn load(home: &Path, genesis: Option<&Path>) -> Result<NodeSetup> {
        let config = Config::load(home)?;
        let gpath = genesis
            .map(Path::to_path_buf)
            .unwrap_or_else(|| home.join("genesis.json"));
        let genesis = plume_client::verify::load_genesis(&gpath)?;
        let keys = NodeKeys::load(home)?;
        let committee = genesis.validator_set()?;
        let batch_committee = genesis.batch_committee()?;
        let me = committee
            .index_of(&keys.consensus.public_key())
            .ok_or_else(|| {
                anyhow!(
                    "this node's consensus key {} is not a validator in {}; non-validator nodes are not built yet",
                    keys.consensus.public_key(),
                    gpath.display()
                )
            })? as u32;
        let net_key = keys.network.public_key().to_hex();
        if genesis.validators[me as usize].network_key != net_key {
            bail!(
                "{}: validators[{me}].network_key does not match keys/network.key",
                gpath.display()
            );
        }
        let params = exec_params(&genesis)?;
        if config.batching.batch_max_txs > params.block_txs_max {
            bail!(
                "{}: batching.batch_max_txs = {} is more than the genesis params.block_txs_max = {} (a batch must fit one block)",
                home.join("config.toml").display(),
                config.batching.batch_max_txs,
                params.block_txs_max
            );
        }
        let chain = chain_u64(&genesis.chain_id);
        let compliance = compliance_of(&genesis).with_context(|| gpath.display().to_string())?;
        Ok(NodeSetup {
            compliance,
            home: home.to_path_buf(),
            config,
            genesis,
            keys,
            me,
            committee,
            batch_committee,
            params,
            chain_u64: chain,
        })
    }
}

/// The durable state a validator starts from.
pub struct Opened {
    /// The LMDB environment (shared with the API's readers).
    pub kv: LmdbKv,
    /// The block store (owned by the exec role).
    pub store: Store<LmdbKv>,
    /// The safety-state file (owned by the core role).
    pub safety_file: SafetyFile,
    /// What consensus resumes from (`None` on a fresh start).
    pub recovered: Option<Recovered<BlsScheme>>,
    /// Height of the last committed block.
    pub height: u64,
    /// Payload digests of the last `plume_mempool::batcher::FINALIZED_WINDOW`
    /// committed blocks, by height (the vote rule's memory of what is final).
    pub recent_payloads: Vec<(u64, Vec<plume_crypto::Digest>)>,
    /// (height, block id, state root after it) of the last committed
    /// blocks, lowest first (what consensus compares headers against).
    pub recent_roots: Vec<(u64, plume_crypto::Digest, plume_crypto::Digest)>,
}

/// What a node's store is built from: every role has these.
pub struct Chain<'a> {
    /// Home.
    pub home: &'a Path,
    /// Config.
    pub config: &'a Config,
    /// Genesis.
    pub genesis: &'a Genesis,
    /// Execution parameters.
    pub params: &'a plume_execution::Params,
    /// The genesis compliance section, parsed.
    pub compliance: Option<&'a plume_compliance::GenesisCompliance>,
    /// Consensus chain id.
    pub chain_u64: u64,
}

impl NodeSetup {
    /// What the store is built from.
    pub fn chain(&self) -> Chain<'_> {
        Chain {
            home: &self.home,
            config: &self.config,
            genesis: &self.genesis,
            params: &self.params,
            compliance: self.compliance.as_ref(),
            chain_u64: self.chain_u64,
        }
    }
}

/// An observer's setup (`plume start --role observer`): like a
/// validator's, without a consensus key or a committee index.
pub struct ObserverSetup {
    /// Home.
    pub home: PathBuf,
    /// Config.
    pub config: Config,
    /// Genesis.
    pub genesis: Genesis,
    /// Its network identity (listed in genesis `observers`).
    pub network: plume_crypto::ed25519::SigningKey,
    /// The committee whose certificates it checks.
    pub committee: ValidatorSet,
    /// Execution parameters.
    pub params: plume_execution::Params,
    /// Consensus chain id.
    pub chain_u64: u64,
    /// The genesis compliance section, parsed.
    pub compliance: Option<plume_compliance::GenesisCompliance>,
}

impl ObserverSetup {
    /// Load config, genesis and the network key; the key must be one of
    /// genesis `observers` (validators refuse any other).
    pub fn load(home: &Path, genesis: Option<&Path>) -> Result<ObserverSetup> {
        let config = Config::load(home)?;
        let gpath = genesis
            .map(Path::to_path_buf)
            .unwrap_or_else(|| home.join("genesis.json"));
        let genesis = plume_client::verify::load_genesis(&gpath)?;
        let network = crate::keys::load_network_key(home)?;
        let key = network.public_key().to_hex();
        if !genesis.observers.iter().any(|o| o.network_key == key) {
            bail!(
                "this node's network key {key} is not among the observers of {} (add its observer.json with `plume genesis new --observer`)",
                gpath.display()
            );
        }
        let committee = genesis.validator_set()?;
        let params = exec_params(&genesis)?;
        let chain_u64 = chain_u64(&genesis.chain_id);
        let compliance = compliance_of(&genesis).with_context(|| gpath.display().to_string())?;
        Ok(ObserverSetup {
            home: home.to_path_buf(),
            config,
            genesis,
            network,
            committee,
            params,
            chain_u64,
            compliance,
        })
    }

    /// What the store is built from.
    pub fn chain(&self) -> Chain<'_> {
        Chain {
            home: &self.home,
            config: &self.config,
            genesis: &self.genesis,
            params: &self.params,
            compliance: self.compliance.as_ref(),
            chain_u64: self.chain_u64,
        }
    }
}

/// Open the store in `HOME/data`, committing the genesis state on the
/// first start.
pub fn open_store(c: &Chain<'_>) -> Result<(LmdbKv, Store<LmdbKv>)> {
    let data_dir = c.home.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let kv = LmdbKv::open(
        &data_dir.join("store"),
        &LmdbOptions::with_map_size_gib(c.config.storage.map_size_gib as u64),
    )
    .with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let mut store = Store::open(kv.clone()).context("opening the store")?;
    let genesis_block = Block::<BlsScheme>::genesis(c.chain_u64);
    if store.head().is_none() {
        let allocs = c
            .genesis
            .alloc
            .iter()
            .map(|a| Ok((Address::from_hex(&a.address)?, a.amount.parse::<u128>()?)))
            .collect::<Result<Vec<_>>>()?;
        let writes = plume_execution::genesis_writes_with(c.params, &allocs, c.compliance)
            .map_err(|e| anyhow!("genesis state: {e}"))?;
        let genesis_root = {
            use plume_storage::AuthenticatedState;
            plume_storage::MemoryState::new()
                .apply(&writes)
                .map_err(|e| anyhow!("genesis state root: {e}"))?
        };
        let enc =
            plume_protocol::proof::encode_block_record(&genesis_block, &[], &genesis_root, &[]);
        store
            .commit_block_with_writes(
                &plume_storage::BlockCommit {
                    height: 0,
                    hash: genesis_block.id,
                    block: &enc,
                    qc: &[],
                    txs: &[],
                },
                &writes,
            )
            .context("committing the genesis state")?;
        if store.committed_root() != genesis_root {
            bail!("genesis state root mismatch between the memory tree and the store");
        }
        tracing::info!(root = %store.committed_root(), "genesis state committed");
    }
    Ok((kv, store))
}

/// Open the store (see [`open_store`]) and read back what consensus needs
/// to resume.
pub fn open_state(setup: &NodeSetup) -> Result<Opened> {
    let (kv, store) = open_store(&setup.chain())?;
    let data_dir = setup.home.join("data");
    let (safety_file, safety) = SafetyFile::open(&data_dir)?;
    let head = store.head().expect("genesis committed");
    let committed_block = match store.block(head.finalized_height)? {
        Some(rec) => {
            plume_protocol::proof::decode_block_record(&rec.bytes)
                .with_context(|| format!("stored block {}", head.finalized_height))?
                .block
        }
        None => bail!("store head {} has no block record", head.finalized_height),
    };
    let mut recent_payloads = Vec::new();
    let mut recent_roots = Vec::new();
    let mut committed_chain = Vec::new();
    let chain_floor = head
        .finalized_height
        .saturating_sub(plume_consensus::engine::REPUTATION_WINDOW as u64 - 1);
    let floor = head
        .finalized_height
        .saturating_sub(plume_mempool::batcher::FINALIZED_WINDOW);
    let roots_floor = head
        .finalized_height
        .saturating_sub(2 * plume_protocol::consensus::STATE_LAG);
    for h in floor..=head.finalized_height {
        let Some(rec) = store.block(h)? else {
            bail!(
                "store has no block record at height {h} (head {})",
                head.finalized_height
            );
        };
        let sb = plume_protocol::proof::decode_block_record(&rec.bytes)
            .with_context(|| format!("stored block {h}"))?;
        if h >= roots_floor {
            recent_roots.push((h, sb.block.id, sb.state_root));
        }
        if h >= chain_floor && h < head.finalized_height {
            committed_chain.push(sb.block.clone());
        }
        if !sb.block.payload.is_empty() {
            recent_payloads.push((h, sb.block.payload));
        }
    }
    // The proof that finalized the head (the child of the directly
    // committed block at or above it, and that child's QC).
    let stored_proof = match store.qc(head.finalized_height)? {
        Some(q) if !q.bytes.is_empty() => Some(
            plume_protocol::codec::decode_commit_proof(&q.bytes)
                .map_err(|e| anyhow!("stored commit proof {}: {e}", head.finalized_height))?,
        ),
        _ => None,
    };
    committed_chain.push(committed_block);
    let recovered = Recovered::after_restart(safety, committed_chain, stored_proof);
    Ok(Opened {
        kv,
        store,
        safety_file,
        recovered,
        height: head.finalized_height,
        recent_payloads,
        recent_roots,
    })
}
