//! The Rust SDK for Plume: a JSON-RPC client for a node's API, building
//! and signing transactions of the built-in modules, account key files
//! (the node's format, mode 0600, atomic writes), and offline verification
//! of finality proofs against a genesis file.
//!
//! Used by the `plume` command line (`plume tx`, `plume query`), the devnet
//! load generator and the benchmarks; meant for relayers, regulators'
//! tools and any Rust client. It depends on `plume-protocol` for the
//! formats and on no database, async runtime or network stack of the node
//! (CI checks `cargo tree -p plume-client`).
//!
//! Start at [`rpc::RpcClient`] and [`Node`], then [`txbuild`].
#![forbid(unsafe_code)]

pub mod bin;
pub mod fsutil;
pub mod keyfile;
pub mod rpc;
pub mod txbuild;
pub mod verify;

pub use rpc::{http_get, rpc, ClientError, RpcClient, RpcError};

use plume_crypto::ed25519::Address;
use plume_crypto::Digest;
use plume_protocol::Transaction;
use serde_json::{json, Value};

/// Typed calls to one node (a thin layer over [`RpcClient`]).
#[derive(Debug)]
pub struct Node {
    rpc: RpcClient,
}

impl Node {
    /// A client of the node API at `host:port`.
    pub fn new(addr: &str) -> Node {
        Node {
            rpc: RpcClient::new(addr),
        }
    }

    /// The underlying JSON-RPC client (any method).
    pub fn rpc(&mut self) -> &mut RpcClient {
        &mut self.rpc
    }

    /// `plume_status`.
    pub fn status(&mut self) -> Result<Value, ClientError> {
        self.rpc.call("plume_status", json!([]))
    }

    /// The chain id the node serves.
    pub fn chain_id(&mut self) -> Result<String, ClientError> {
        self.status()?["chain_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ClientError::BadReply("status has no chain_id".into()))
    }

    /// The next sequence number of `account` (0 for an unknown one).
    pub fn next_sequence(&mut self, account: &Address) -> Result<u64, ClientError> {
        let v = self
            .rpc
            .call("plume_getAccount", json!([account.to_hex()]))?;
        Ok(v["sequence"].as_u64().unwrap_or(0))
    }

    /// Submit a signed transaction; its id once the node admitted it.
    pub fn submit(&mut self, tx: &Transaction) -> Result<Digest, ClientError> {
        let v = self.rpc.call(
            "plume_submitTransaction",
            json!([hex::encode(tx.to_bytes())]),
        )?;
        v["hash"]
            .as_str()
            .and_then(|h| Digest::from_hex(h).ok())
            .ok_or_else(|| ClientError::BadReply(format!("submit reply without hash: {v}")))
    }
}
