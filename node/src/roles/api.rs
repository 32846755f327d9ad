//! The API role's method table: what each JSON-RPC method does on a
//! running validator ([`crate::http`] is the server that calls it).
//!
//! Submissions are prechecked against the latest committed state (format,
//! chain id, module call, sequence window, fees), then queued for the
//! signature role with `try_send` (a full queue is "mempool full", retry
//! later); the server waits for the admission outcome without holding a
//! thread. Reads open an LMDB read transaction per call; the server runs
//! at most `Limits::readers_max` calls at once, under LMDB's reader slots.

use super::channels::SigIn;
use super::notify::SUBSCRIPTIONS_MAX;
use super::shared::Shared;
use crate::http::{codes, ApiError, NodeApi, Pending, Sink, Topic};
use crate::metrics::table_bytes;
use crate::views::receipt_json;
use plume_consensus::{Block, BlsScheme};
use plume_crypto::ed25519::Address;
use plume_crypto::Digest;
use plume_protocol::{codec, proof, PreparedTx, Receipt, Transaction};
use plume_storage::{LmdbKv, Store};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most submission times remembered for the finality-latency histogram.
pub const SUBMITTED_MAX: usize = 262_144;
/// Submission times older than this are forgotten (the transaction was
/// dropped, or finalized before its submission was recorded).
pub const SUBMITTED_TTL: Duration = Duration::from_secs(120);

/// The API's view of a running node.
pub struct ApiNode {
    /// Shared with the other roles.
    pub shared: Arc<Shared>,
}

type ApiResult<T> = Result<T, ApiError>;

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(codes::INTERNAL, e.to_string())
}

fn param_str<'a>(params: &'a Value, i: usize, name: &str) -> ApiResult<&'a str> {
    params
        .get(i)
        .or_else(|| params.get(name))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::new(
                codes::INVALID_PARAMS,
                format!("missing string parameter {name:?}"),
            )
        })
}

fn param_account(params: &Value, i: usize) -> ApiResult<[u8; 32]> {
    let s = param_str(params, i, "account")?;
    Address::from_hex(s)
        .map(|a| a.0)
        .map_err(|e| ApiError::new(codes::INVALID_PARAMS, format!("account: {e}")))
}

fn precheck_error(e: &plume_execution::PrecheckError, seq: u64, state_seq: u64) -> ApiError {
    use plume_execution::Reason as R;
    let code = match e {
        plume_execution::PrecheckError::State(_) => codes::INTERNAL,
        plume_execution::PrecheckError::Refused(r) => match *r {
            R::WrongChain => codes::WRONG_CHAIN,
            R::Expired => codes::EXPIRED,
            R::BadSequence if seq < state_seq => codes::SEQUENCE_USED,
            R::BadSequence => codes::SEQUENCE_TOO_FAR,
            R::FeeCapBelowBaseFee | R::InsufficientFeeBalance => codes::FEE_TOO_LOW,
            _ => codes::MALFORMED_TX,
        },
    };
    ApiError::new(code, e.to_string())
}

impl ApiNode {
    fn store(&self) -> ApiResult<Store<LmdbKv>> {
        Store::open(self.shared.kv.clone()).map_err(|e| internal(format!("store: {e}")))
    }

    /// Check and hand over many transactions; outcomes in order.
    fn submit_all(&self, hex_txs: &[ApiResult<&str>]) -> Vec<ApiResult<Pending>> {
        let store = match self.store() {
            Ok(s) => s,
            Err(e) => return hex_txs.iter().map(|_| Err(e.clone())).collect(),
        };
        hex_txs
            .iter()
            .map(|h| h.clone().and_then(|h| self.precheck_and_queue(&store, h)))
            .collect()
    }

    fn precheck_and_queue(&self, store: &Store<LmdbKv>, hex_tx: &str) -> ApiResult<Pending> {
        let bytes = hex::decode(hex_tx.trim_start_matches("0x"))
            .map_err(|_| ApiError::new(codes::MALFORMED_TX, "transaction is not hex"))?;
        self.precheck_and_queue_bytes(store, bytes)
    }

    fn precheck_and_queue_bytes(
        &self,
        store: &Store<LmdbKv>,
        bytes: Vec<u8>,
    ) -> ApiResult<Pending> {
        if self.shared.observer {
            return Err(ApiError::new(
                codes::READ_ONLY,
                "this node is an observer: it accepts no transaction (submit to a validator)",
            ));
        }
        let max = plume_protocol::tx::TX_BYTES_MAX;
        if bytes.len() > max {
            return Err(ApiError::new(
                codes::OVERSIZED,
                format!("transaction is {} bytes, at most {max}", bytes.len()),
            ));
        }
        // Stateful checks against the latest committed state, before the
        // signature stage.
        let tx = Transaction::from_bytes(&bytes)
            .map_err(|e| ApiError::new(codes::MALFORMED_TX, e.to_string()))?;
        if tx.body.chain_id != self.shared.chain_id {
            return Err(ApiError::new(
                codes::WRONG_CHAIN,
                format!(
                    "chain id {:?}, this network is {:?}",
                    tx.body.chain_id, self.shared.chain_id
                ),
            ));
        }
        let ptx = PreparedTx::new(tx);
        let payer = ptx.payer().copied().unwrap_or_default();
        let state_seq = plume_execution::state::read_account(store, &payer)
            .map_err(internal)?
            .sequence;
        let checked =
            plume_execution::precheck(store, &self.shared.params, &self.shared.registry, &ptx)
                .map_err(|e| precheck_error(&e, ptx.tx.body.sequence, state_seq))?;
        let state_seq = plume_mempool::StateView {
            next_sequence: checked.next_sequence,
            fee_balance: checked.balance,
            tip_per_gas: checked.tip_per_gas,
        };
        let (rtx, rrx) = flume::bounded(1);
        self.shared
            .sig_tx
            .try_send(SigIn::Submit {
                bytes,
                state_seq,
                reply: rtx,
            })
            .map_err(|_| {
                self.shared.metrics.shed("api_sig_queue_full");
                ApiError::new(codes::MEMPOOL_FULL, "signature queue full; retry later")
            })?;
        Ok(rrx)
    }

    fn finality_proof(&self, store: &Store<LmdbKv>, height: u64, tx: &Digest) -> ApiResult<Value> {
        let block_at = |h: u64| -> ApiResult<(Block<BlsScheme>, Vec<proof::BatchRecord>)> {
            let rec = store
                .block(h)
                .map_err(internal)?
                .ok_or_else(|| internal(format!("block {h} missing")))?;
            proof::decode_block_record(&rec.bytes)
                .map(|sb| (sb.block, sb.batches))
                .map_err(internal)
        };
        let (first, batches) = block_at(height)?;
        let raw = store
            .tx(tx)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("transaction {tx} missing")))?
            .bytes;
        let at = proof::locate(&batches, &plume_protocol::batch::item_leaf(&raw))
            .ok_or_else(|| internal("transaction not in its block's batches"))?;
        let qc = store
            .qc(height)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("commit proof of block {height} missing")))?;
        let commit = codec::decode_commit_proof(&qc.bytes).map_err(internal)?;
        let committed_height = commit.child.height.saturating_sub(1);
        let mut chain = vec![hex::encode(codec::encode_block(&first))];
        let mut h = height + 1;
        while h <= committed_height && chain.len() < proof::PROOF_CHAIN_MAX {
            chain.push(hex::encode(codec::encode_block(&block_at(h)?.0)));
            h += 1;
        }
        let p = proof::FinalityProof {
            tx: tx.to_hex(),
            tx_bytes: hex::encode(&raw),
            batch_author: at.batch_author,
            batch_expires: at.batch_expires,
            chain,
            batch_index: at.batch_index,
            tx_index: at.tx_index,
            batch_len: at.batch_len,
            siblings: at.siblings.iter().map(|d| d.to_hex()).collect(),
            commit_proof: hex::encode(&qc.bytes),
        };
        serde_json::to_value(p).map_err(internal)
    }

    fn status(&self) -> Value {
        let (height, root) = *self.shared.state_root.lock().expect("not poisoned");
        let diverged = *self.shared.diverged.lock().expect("not poisoned");
        let m = &self.shared.metrics;
        json!({
            "chain_id": self.shared.chain_id,
            "role": if self.shared.observer { "observer" } else { "validator" },
            "index_height": self.shared.index.as_ref().map(|_| m.index_height.get()),
            "height": height,
            "state_root": root.to_hex(),
            "state": if diverged.is_some() { "diverged" } else { "ok" },
            "diverged": diverged.map(|(h, ours, certified)| json!({
                "height": h,
                "ours": ours.to_hex(),
                "certified": certified.to_hex(),
            })),
            "view": m.view.get(),
            "validators": self.shared.committee_len,
            "peers": m.peers.get(),
            "mempool": m.mempool_depth.get(),
            "txs_finalized": m.txs_finalized.get(),
            "blocks_finalized": m.blocks_finalized.get(),
            "view_changes": m.view_changes.get(),
            "compliance": {
                "checked": m.compliance_checked.get(),
                "stopped": m.compliance_stopped.get(),
                "flagged": m.compliance_flagged.get(),
            },
            "uptime_s": self.shared.started.elapsed().as_secs(),
        })
    }

    fn get_block(&self, params: &Value) -> ApiResult<Value> {
        let height = params
            .get(0)
            .or_else(|| params.get("height"))
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                ApiError::new(
                    codes::INVALID_PARAMS,
                    "missing integer parameter \"height\"",
                )
            })?;
        let store = self.store()?;
        let rec = store.block(height).map_err(internal)?.ok_or_else(|| {
            ApiError::new(
                codes::NOT_FOUND,
                format!("no finalized block at height {height}"),
            )
        })?;
        let sb = proof::decode_block_record(&rec.bytes).map_err(internal)?;
        let b = sb.block;
        Ok(json!({
            "height": b.height, "hash": b.id.to_hex(), "view": b.view, "epoch": b.epoch,
            "parent": b.parent.to_hex(), "proposer": b.proposer,
            "time_ms": b.time_ms,
            "state_root": b.state_root.to_hex(),
            "state_root_height": plume_protocol::consensus::state_height(b.height),
            "state_root_after": sb.state_root.to_hex(),
            "batches": b.payload.iter().map(|d| d.to_hex()).collect::<Vec<_>>(),
            "block_bytes": hex::encode(codec::encode_block(&b)),
        }))
    }

    fn get_transaction(&self, params: &Value) -> ApiResult<Value> {
        let h = Digest::from_hex(param_str(params, 0, "hash")?)
            .map_err(|e| ApiError::new(codes::INVALID_PARAMS, e.to_string()))?;
        let store = self.store()?;
        let rec = store.tx_entry(&h).map_err(internal)?.ok_or_else(|| {
            ApiError::new(
                codes::NOT_FOUND,
                format!("transaction {h} is not in a finalized block"),
            )
        })?;
        let receipt = Receipt::from_bytes(&rec.receipt).map_err(internal)?;
        let proof = self.finality_proof(&store, rec.height, &h)?;
        Ok(json!({
            "hash": h.to_hex(),
            "height": rec.height,
            "index": rec.index,
            "tx": hex::encode(&rec.tx),
            "receipt": receipt_json(&self.shared.registry, &receipt),
            "finality_proof": proof,
        }))
    }

    /// An account, with its state proof (hex, `plume_crypto::state_proof`)
    /// under the root after block `height`; `plume_getStateRoot [height]`
    /// proves that root certified once the block carrying it is final.
    fn get_account(&self, params: &Value) -> ApiResult<Value> {
        use plume_storage::AuthenticatedState;
        let a = Address::from_hex(param_str(params, 0, "address")?)
            .map_err(|e| ApiError::new(codes::INVALID_PARAMS, e.to_string()))?;
        let key = plume_protocol::account::account_key(&a.0);
        // Value, proof and root from one committed state: a commit between
        // the reads shows as a proof that does not check; read again.
        for _ in 0..5 {
            let store = self.store()?;
            let root = store.committed_root();
            let height = store.finalized_height().unwrap_or(0);
            let value = store.get(&key).map_err(internal)?;
            let proof = store.prove(&key).map_err(internal)?;
            if proof.verify(&root, &key, value.as_deref()).is_err() {
                continue;
            }
            let (sequence, balance) = match &value {
                Some(v) => plume_protocol::account::decode_account_value(v)
                    .ok_or_else(|| internal("account record of the wrong length"))?,
                None => (0, 0),
            };
            return Ok(json!({
                "address": a.to_hex(),
                "balance": balance.to_string(),
                "sequence": sequence,
                "height": height,
                "state_root": root.to_hex(),
                "key": hex::encode(key),
                "value": value.map(hex::encode),
                "state_proof": hex::encode(proof.to_bytes()),
            }));
        }
        Err(ApiError::new(
            codes::UNAVAILABLE,
            "the state kept changing under the read; try again",
        ))
    }

    /// `plume_getStateRoot [height]`: the proof that the root after block
    /// `height` was certified (by the block `STATE_LAG` above it and a
    /// commit proof), once that block is final.
    fn get_state_root(&self, params: &Value) -> ApiResult<Value> {
        let height = params
            .get(0)
            .and_then(Value::as_u64)
            .ok_or_else(|| ApiError::new(codes::INVALID_PARAMS, "params: [height]"))?;
        let store = self.store()?;
        let head = store.finalized_height().unwrap_or(0);
        let carrier = height
            .saturating_add(plume_protocol::consensus::STATE_LAG)
            .max(1);
        if carrier > head {
            return Err(ApiError::new(
                codes::NOT_FOUND,
                format!(
                    "the root of height {height} is certified by block {carrier}; the chain is at {head}"
                ),
            ));
        }
        let block_at = |h: u64| -> ApiResult<proof::StoredBlock> {
            let rec = store
                .block(h)
                .map_err(internal)?
                .ok_or_else(|| internal(format!("block {h} missing")))?;
            proof::decode_block_record(&rec.bytes).map_err(internal)
        };
        let root = block_at(height)?.state_root;
        let qc = store
            .qc(carrier)
            .map_err(internal)?
            .ok_or_else(|| internal(format!("commit proof of block {carrier} missing")))?;
        let commit = codec::decode_commit_proof(&qc.bytes).map_err(internal)?;
        let committed_height = commit.child.height.saturating_sub(1);
        let mut chain = Vec::new();
        let mut h = carrier;
        while h <= committed_height && chain.len() < proof::PROOF_CHAIN_MAX {
            chain.push(hex::encode(codec::encode_block(&block_at(h)?.block)));
            h += 1;
        }
        let p = proof::RootProof {
            height,
            root: root.to_hex(),
            chain,
            commit_proof: hex::encode(&qc.bytes),
        };
        serde_json::to_value(p).map_err(internal)
    }

    /// `plume_query [module, method, args...]`: a module's read-only query.
    fn query(&self, params: &Value) -> ApiResult<Value> {
        let arr = params.as_array().ok_or_else(|| {
            ApiError::new(
                codes::INVALID_PARAMS,
                "params: [module, method, args...] (strings)",
            )
        })?;
        let strs: Vec<String> = arr
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::new(codes::INVALID_PARAMS, "every parameter is a string"))?;
        let [module, method, args @ ..] = strs.as_slice() else {
            return Err(ApiError::new(
                codes::INVALID_PARAMS,
                "params: [module, method, args...]",
            ));
        };
        let store = self.store()?;
        self.shared
            .registry
            .query(&store, module, method, args)
            .map_err(|e| match e {
                plume_execution::modules::QueryError::Unknown(q) => {
                    ApiError::new(codes::METHOD_NOT_FOUND, format!("unknown query {q}"))
                }
                plume_execution::modules::QueryError::BadArgs(why) => {
                    ApiError::new(codes::INVALID_PARAMS, why)
                }
                plume_execution::modules::QueryError::State(e) => internal(e),
            })
    }
}

impl ApiNode {
    /// The protocol parameters in force for a height (default: the next
    /// block's), genesis values with every change governance passed whose
    /// activation height is at most that height; and the scheduled ones.
    fn get_params(&self, params: &Value) -> ApiResult<Value> {
        let store = self.store()?;
        let meta = plume_execution::read_ledger_meta(&store).map_err(internal)?;
        let height = params
            .get(0)
            .or_else(|| params.get("height"))
            .and_then(Value::as_u64)
            .unwrap_or(meta.height + 1);
        let p = plume_execution::modules::governance::effective_params(
            &store,
            &self.shared.params,
            height,
        )
        .map_err(internal)?;
        let gov = serde_json::to_value(p.gov).map_err(internal)?;
        let scheduled = self
            .shared
            .registry
            .query(&store, "governance", "params", &[])
            .map_err(internal)?;
        Ok(json!({
            "height": height,
            "block_txs_max": p.block_txs_max,
            "block_txs_limit": p.block_txs_limit,
            "block_gas_limit": p.block_gas_limit,
            "block_gas_target": p.block_gas_target,
            "base_fee_min": p.base_fee_min,
            "base_fee_change_denominator": p.base_fee_change_denominator,
            "fee_burn_percent": p.fee_burn_percent,
            "fee_treasury_percent": p.fee_treasury_percent,
            "treasury": p.treasury.to_hex(),
            "governance": gov,
            "scheduled": scheduled["scheduled"],
        }))
    }

    /// Dry run: the receipt (and compliance verdict) the transaction would
    /// get if it were the only one of the next block, against the latest
    /// committed state. Nothing is queued or written.
    fn check_compliance(&self, params: &Value) -> ApiResult<Value> {
        let bytes = hex::decode(param_str(params, 0, "tx")?.trim_start_matches("0x"))
            .map_err(|e| ApiError::new(codes::INVALID_PARAMS, format!("tx is not hex: {e}")))?;
        let tx = Transaction::from_bytes(&bytes)
            .map_err(|e| ApiError::new(codes::MALFORMED_TX, e.to_string()))?;
        tx.verify_signatures()
            .map_err(|e| ApiError::new(codes::MALFORMED_TX, e.to_string()))?;
        let mut ptx = PreparedTx::new(tx);
        self.shared.registry.prepare(&mut ptx);
        let store = self.store()?;
        let meta = plume_execution::read_ledger_meta(&store).map_err(internal)?;
        let height = meta.height + 1;
        let ctx = plume_execution::BlockContext {
            height,
            proposer: Address::default(),
            // The next block's time will be about now.
            time_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        let out = plume_execution::apply_block(
            &store,
            &self.shared.params,
            &self.shared.registry,
            &ctx,
            std::slice::from_ref(&ptx),
        )
        .map_err(internal)?;
        let receipt = &out.receipts[0];
        let vk = plume_execution::modules::compliance::verdicts_key(height);
        let verdict = out
            .writes
            .iter()
            .find(|w| w.0 == vk)
            .and_then(|w| w.1.as_deref())
            .and_then(|b| plume_compliance::decode::<plume_compliance::BlockVerdicts>(b).ok())
            .and_then(|v| v.entries.into_iter().next());
        let c = out.compliance;
        Ok(json!({
            "height": height,
            "checked": c.checked > 0,
            "verdict": match (&verdict, c.checked > 0) {
                (Some(v), _) if v.flagged => "flag",
                (Some(_), _) => "fail",
                (None, true) => "pass",
                (None, false) => "not_checked",
            },
            "rule_id": verdict.as_ref().map(|v| v.rule_id),
            "code": receipt.reason.0,
            "code_name": self.shared.registry.reason_name(receipt.reason),
            "receipt": receipt_json(&self.shared.registry, receipt),
        }))
    }

    /// A read-only handle on the fund-flow index (observers only) for one
    /// call, from the shared pool and given back when dropped.
    fn index(&self) -> ApiResult<PooledIndex<'_>> {
        let Some(path) = &self.shared.index else {
            return Err(ApiError::new(
                codes::METHOD_NOT_FOUND,
                "this node keeps no fund-flow index (an observer does: plume start --role observer)",
            ));
        };
        let ix = self
            .shared
            .index_pool
            .take(path)
            .map_err(|e| internal(format!("index: {e}")))?;
        Ok(PooledIndex {
            ix: Some(ix),
            pool: &self.shared.index_pool,
        })
    }

    /// `plume_accountFlows [account, {before, limit}]`: one page of an
    /// account's flows (both directions), newest first; `before` is the
    /// previous page's `next` ("height.index.seq").
    fn account_flows(&self, params: &Value) -> ApiResult<Value> {
        let a = param_account(params, 0)?;
        let o = params.get(1).cloned().unwrap_or(json!({}));
        let before = cursor(&o)?;
        let limit = o
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(50)
            .clamp(1, 1_000) as usize;
        let ix = self.index()?;
        let flows = ix
            .account_flows(&a, before.as_ref().map(|c| c.0), limit)
            .map_err(internal)?;
        let next = (flows.len() == limit)
            .then(|| {
                flows
                    .last()
                    .map(|f| format!("{}.{}.{}", f.height, f.index, f.seq))
            })
            .flatten();
        Ok(json!({"indexed_height": ix.height().map_err(internal)?, "flows": flows, "next": next}))
    }

    /// `plume_recentAlerts [{before, limit}]`: one page of alerts, newest
    /// first; `before` is the previous page's `next`.
    fn recent_alerts(&self, params: &Value) -> ApiResult<Value> {
        let o = params.get(0).cloned().unwrap_or(json!({}));
        let before = cursor(&o)?;
        let limit = o
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(50)
            .clamp(1, 1_000) as usize;
        let ix = self.index()?;
        let alerts = ix
            .recent_alerts(before.as_ref().map(|(c, k)| (*c, k.as_str())), limit)
            .map_err(internal)?;
        let next = (alerts.len() == limit)
            .then(|| {
                alerts
                    .last()
                    .map(|a| format!("{}.{}.{}.{}", a.height, a.index, a.seq, a.kind))
            })
            .flatten();
        Ok(json!({
            "indexed_height": ix.height().map_err(internal)?,
            "total": ix.alert_count().map_err(internal)?,
            "alerts": alerts,
            "next": next,
        }))
    }

    /// `plume_indexedBlocks [{before, limit}]`: blocks as indexed, newest
    /// first, below height `before`.
    fn indexed_blocks(&self, params: &Value) -> ApiResult<Value> {
        let o = params.get(0).cloned().unwrap_or(json!({}));
        let before = o.get("before").and_then(Value::as_u64);
        let limit = o
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(50)
            .clamp(1, 1_000) as usize;
        let ix = self.index()?;
        let blocks = ix.recent_blocks(before, limit).map_err(internal)?;
        Ok(json!({
            "indexed_height": ix.height().map_err(internal)?,
            "blocks": blocks,
        }))
    }

    /// `plume_blockTransactions [height]`: a block's transactions as
    /// indexed (index, hash, status).
    fn block_transactions(&self, params: &Value) -> ApiResult<Value> {
        let h = params
            .get(0)
            .or_else(|| params.get("height"))
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                ApiError::new(
                    codes::INVALID_PARAMS,
                    "missing integer parameter \"height\"",
                )
            })?;
        let ix = self.index()?;
        let txs: Vec<Value> = ix
            .block_txs(h, 100_000)
            .map_err(internal)?
            .into_iter()
            .map(|(i, hash, status)| json!({"index": i, "hash": hash, "status": status}))
            .collect();
        Ok(json!({"height": h, "transactions": txs}))
    }

    /// `plume_flows [account, {direction, from, to, depth, limit}]`: the
    /// flows out of (or into) an account over a height range, followed to
    /// a bounded depth.
    fn flows(&self, params: &Value) -> ApiResult<Value> {
        self.walk(params, false)
    }

    /// `plume_identityFlows [identity, {direction, from, to, depth,
    /// limit}]`: [`Self::flows`] from every account registered under the
    /// identity at once.
    fn identity_flows(&self, params: &Value) -> ApiResult<Value> {
        self.walk(params, true)
    }

    fn walk(&self, params: &Value, identity: bool) -> ApiResult<Value> {
        let a = param_account(params, 0)?;
        let o = params.get(1).cloned().unwrap_or(json!({}));
        let dir = match o.get("direction").and_then(Value::as_str).unwrap_or("out") {
            "out" => plume_index::Direction::Out,
            "in" => plume_index::Direction::In,
            other => {
                return Err(ApiError::new(
                    codes::INVALID_PARAMS,
                    format!("direction {other:?}: \"out\" or \"in\""),
                ))
            }
        };
        let ix = self.index()?;
        let top = ix.height().map_err(internal)?;
        let num = |k: &str, d: u64| o.get(k).and_then(Value::as_u64).unwrap_or(d);
        let depth = num("depth", 1);
        if depth == 0 || depth > u64::from(plume_index::DEPTH_MAX) {
            return Err(ApiError::new(
                codes::INVALID_PARAMS,
                format!("depth: 1 to {}", plume_index::DEPTH_MAX),
            ));
        }
        let b = plume_index::WalkBounds {
            from_height: num("from", 1),
            to_height: num("to", top),
            depth: depth as u32,
            flows_max: num("limit", 10_000).min(plume_index::WALK_FLOWS_MAX as u64) as usize,
        };
        let w = if identity {
            ix.walk_identity(&a, dir, b)
        } else {
            ix.walk(&a, dir, b)
        }
        .map_err(internal)?;
        Ok(json!({
            "indexed_height": top,
            "flows": w.flows,
            "accounts": w.accounts,
            "truncated": w.truncated,
        }))
    }

    /// `plume_counterparties [account, {from, to, limit}]`.
    fn counterparties(&self, params: &Value) -> ApiResult<Value> {
        let a = param_account(params, 0)?;
        let o = params.get(1).cloned().unwrap_or(json!({}));
        let ix = self.index()?;
        let top = ix.height().map_err(internal)?;
        let num = |k: &str, d: u64| o.get(k).and_then(Value::as_u64).unwrap_or(d);
        let v = ix
            .top_counterparties(
                &a,
                num("from", 1),
                num("to", top),
                num("limit", 20).min(1_000) as usize,
            )
            .map_err(internal)?;
        Ok(json!({"indexed_height": top, "counterparties": v}))
    }

    /// `plume_volume [{from, to}]`: per asset.
    fn volume(&self, params: &Value) -> ApiResult<Value> {
        let o = params.get(0).cloned().unwrap_or(json!({}));
        let ix = self.index()?;
        let top = ix.height().map_err(internal)?;
        let (from, to) = height_range(&o, top);
        let v = ix.volume(from, to).map_err(internal)?;
        Ok(json!({"indexed_height": top, "assets": v}))
    }

    /// `plume_jurisdictionVolume [{from, to}]`: transferred volume per
    /// (asset, debited jurisdiction, credited jurisdiction), "" for an
    /// account without a registered identity.
    fn jurisdiction_volume(&self, params: &Value) -> ApiResult<Value> {
        let o = params.get(0).cloned().unwrap_or(json!({}));
        let ix = self.index()?;
        let top = ix.height().map_err(internal)?;
        let (from, to) = height_range(&o, top);
        let v = ix.jurisdiction_volume(from, to).map_err(internal)?;
        Ok(json!({"indexed_height": top, "volumes": v}))
    }

    /// `plume_party [account or identity]`: the identity and jurisdiction
    /// recorded for an account and every account of that identity (at
    /// most 1,000), or, given an identity, its accounts.
    fn party(&self, params: &Value) -> ApiResult<Value> {
        let a = param_account(params, 0)?;
        let ix = self.index()?;
        let p = ix.party(&a).map_err(internal)?;
        let identity = p.as_ref().map_or(a, |p| p.identity);
        let accounts = ix
            .identity_accounts(&identity, plume_index::IDENTITY_ACCOUNTS_MAX)
            .map_err(internal)?;
        if p.is_none() && accounts.is_empty() {
            return Err(ApiError::new(
                codes::NOT_FOUND,
                format!(
                    "{} is neither an account with a registered identity nor an identity in the index",
                    hex::encode(a)
                ),
            ));
        }
        Ok(json!({
            "identity": hex::encode(identity),
            "party": p,
            "accounts": accounts,
        }))
    }

    /// `plume_alerts [{from, to, limit}]`: stored alerts, oldest first.
    fn alerts(&self, params: &Value) -> ApiResult<Value> {
        let o = params.get(0).cloned().unwrap_or(json!({}));
        let ix = self.index()?;
        let top = ix.height().map_err(internal)?;
        let num = |k: &str, d: u64| o.get(k).and_then(Value::as_u64).unwrap_or(d);
        let v = ix
            .alerts(
                num("from", 1),
                num("to", top),
                num("limit", 1_000).min(10_000) as usize,
            )
            .map_err(internal)?;
        Ok(json!({"indexed_height": top, "alerts": v}))
    }

    /// `plume_trace [tx]`: a transaction's flows from the index, its
    /// receipt and finality proof from the store.
    fn trace(&self, params: &Value) -> ApiResult<Value> {
        let h = Digest::from_hex(param_str(params, 0, "hash")?)
            .map_err(|e| ApiError::new(codes::INVALID_PARAMS, e.to_string()))?;
        let ix = self.index()?;
        let t = ix.trace(&h.0).map_err(internal)?.ok_or_else(|| {
            ApiError::new(
                codes::NOT_FOUND,
                format!("transaction {h} is not in the index (not final, or not indexed yet)"),
            )
        })?;
        let tx = self.get_transaction(&json!([h.to_hex()]))?;
        // The compliance engine's verdicts on it (stopped or flagged), from
        // the block's verdict record, and the flows' parties.
        let store = self.store()?;
        let verdicts: Vec<Value> =
            plume_execution::modules::compliance::read_verdicts(&store, t.height)
                .map_err(internal)?
                .map(|v| {
                    v.entries
                        .iter()
                        .filter(|e| e.tx == h.0)
                        .map(plume_compliance::to_json)
                        .collect()
                })
                .unwrap_or_default();
        let mut parties = serde_json::Map::new();
        for f in &t.flows {
            for a in [f.from, f.to].into_iter().flatten() {
                let k = hex::encode(a);
                if !parties.contains_key(&k) {
                    // As of the transaction's block.
                    if let Some(p) = ix.party_at(&a, t.height).map_err(internal)? {
                        parties.insert(k, json!({"identity": hex::encode(p.identity), "jurisdiction": p.jurisdiction}));
                    }
                }
            }
        }
        Ok(json!({"index": t, "transaction": tx, "compliance": verdicts, "parties": parties}))
    }

    /// One page of the compliance audit report: [from, to] heights.
    fn compliance_audit(&self, params: &Value) -> ApiResult<Value> {
        let h = |i: usize, name: &str| {
            params
                .get(i)
                .or_else(|| params.get(name))
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    ApiError::new(
                        codes::INVALID_PARAMS,
                        format!("missing integer parameter {name:?}"),
                    )
                })
        };
        let (from, to) = (h(0, "from")?, h(1, "to")?);
        let store = self.store()?;
        let page = crate::audit::audit_page(&store, &self.shared.registry, from, to)
            .map_err(|e| ApiError::new(codes::INVALID_PARAMS, format!("{e:#}")))?;
        serde_json::to_value(page).map_err(internal)
    }
}

/// An index handle taken from the pool for one call.
struct PooledIndex<'a> {
    ix: Option<plume_index::Index>,
    pool: &'a super::shared::IndexPool,
}

impl std::ops::Deref for PooledIndex<'_> {
    type Target = plume_index::Index;
    fn deref(&self) -> &plume_index::Index {
        self.ix.as_ref().expect("held until dropped")
    }
}

impl Drop for PooledIndex<'_> {
    fn drop(&mut self) {
        if let Some(ix) = self.ix.take() {
            self.pool.put(ix);
        }
    }
}

/// The `{from, to}` heights of `o`, by default everything indexed.
fn height_range(o: &Value, top: u64) -> (u64, u64) {
    let num = |k: &str, d: u64| o.get(k).and_then(Value::as_u64).unwrap_or(d);
    (num("from", 1), num("to", top))
}

/// A page cursor, `before`: "height.index.seq" (flows) or
/// "height.index.seq.kind" (alerts).
fn cursor(o: &Value) -> ApiResult<Option<(plume_index::Cursor, String)>> {
    let Some(c) = o.get("before").and_then(Value::as_str) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            codes::INVALID_PARAMS,
            format!("before: {c:?} is not a page cursor (the \"next\" of the previous page)"),
        )
    };
    let mut it = c.splitn(4, '.');
    let h = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let i = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let s = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let kind = it.next().unwrap_or("~").to_string();
    if kind.len() > 64 {
        return Err(bad());
    }
    Ok(Some(((h, i, s), kind)))
}

impl NodeApi for ApiNode {
    fn call(&self, method: &str, params: &Value) -> ApiResult<Value> {
        match method {
            "plume_submitTransaction" => Err(ApiError::new(
                codes::INTERNAL,
                "submissions go through NodeApi::submit",
            )),
            "plume_status" => Ok(self.status()),
            "plume_peers" => Ok(json!(self
                .shared
                .peers
                .lock()
                .expect("not poisoned")
                .clone())),
            "plume_getBlock" => self.get_block(params),
            "plume_getTransaction" => self.get_transaction(params),
            "plume_getAccount" => self.get_account(params),
            "plume_getStateRoot" => self.get_state_root(params),
            "plume_query" => self.query(params),
            "plume_getParams" => self.get_params(params),
            "plume_checkCompliance" => self.check_compliance(params),
            "plume_complianceAudit" => self.compliance_audit(params),
            "plume_flows" => self.flows(params),
            "plume_identityFlows" => self.identity_flows(params),
            "plume_jurisdictionVolume" => self.jurisdiction_volume(params),
            "plume_party" => self.party(params),
            "plume_counterparties" => self.counterparties(params),
            "plume_volume" => self.volume(params),
            "plume_trace" => self.trace(params),
            "plume_alerts" => self.alerts(params),
            "plume_recentAlerts" => self.recent_alerts(params),
            "plume_accountFlows" => self.account_flows(params),
            "plume_indexedBlocks" => self.indexed_blocks(params),
            "plume_blockTransactions" => self.block_transactions(params),
            other => Err(ApiError::new(
                codes::METHOD_NOT_FOUND,
                format!("unknown method {other:?}"),
            )),
        }
    }

    fn submit(&self, params: &[Value]) -> Vec<ApiResult<Pending>> {
        let txs: Vec<ApiResult<&str>> = params.iter().map(|p| param_str(p, 0, "tx")).collect();
        self.submit_all(&txs)
    }

    fn submit_raw(&self, txs: Vec<Vec<u8>>) -> Vec<ApiResult<Pending>> {
        let store = match self.store() {
            Ok(s) => s,
            Err(e) => return txs.iter().map(|_| Err(e.clone())).collect(),
        };
        txs.into_iter()
            .map(|b| self.precheck_and_queue_bytes(&store, b))
            .collect()
    }

    fn submitted(&self, hashes: &[Digest], at: Instant) {
        let mut sub = self.shared.submitted.lock().expect("not poisoned");
        for h in hashes {
            if sub.len() >= SUBMITTED_MAX {
                // Entries that never saw finality here (dropped, or finalized
                // before they were recorded) would otherwise stay forever.
                sub.retain(|_, t| at.duration_since(*t) < SUBMITTED_TTL);
            }
            if sub.len() < SUBMITTED_MAX {
                sub.insert(*h, at);
            }
        }
    }

    fn shed(&self, reason: &'static str) {
        self.shared.metrics.shed(reason);
    }

    fn metrics_text(&self) -> String {
        let m = &self.shared.metrics;
        {
            let sub = self.shared.submitted.lock().expect("not poisoned");
            m.mem.submitted.set(sub.len() as u64);
            m.mem
                .submitted_bytes
                .set(table_bytes::<Digest, Instant>(sub.capacity()));
        }
        let subs = self.shared.subscribers.lock().expect("not poisoned").len();
        m.mem.subscribers.set(subs as u64);
        m.mem.sig_queue.set(self.shared.sig_tx.len() as u64);
        m.encode()
    }

    fn health(&self) -> (bool, Value) {
        let ok = !self.shared.stop.load(Ordering::Relaxed);
        (
            ok,
            json!({"ok": ok, "height": self.shared.metrics.height.get()}),
        )
    }

    fn subscribe(&self, topic: Topic, sink: Sink) -> ApiResult<()> {
        let mut subs = self.shared.subscribers.lock().expect("not poisoned");
        if subs.len() >= SUBSCRIPTIONS_MAX {
            self.shared.metrics.shed("ws_subscriptions_full");
            return Err(ApiError::new(
                codes::UNAVAILABLE,
                format!("too many subscriptions on this node (at most {SUBSCRIPTIONS_MAX})"),
            ));
        }
        subs.push((topic, sink));
        self.shared
            .subscriber_count
            .store(subs.len(), Ordering::Relaxed);
        Ok(())
    }
}
