//! The `plume` binary's library half. Start at `main.rs` for the commands,
//! then [`roles`] for the validator runtime (`plume start`).
//!
//! - [`roles`]: one module per role (core, sigverify, exec, api), the
//!   channels between them, placement and the stop flag.
//! - [`setup`]: what `plume start` reads from the home before any role
//!   starts; [`config`] the `config.toml` schema; [`keys`] the key files.
//! - [`http`]: the JSON-RPC/WebSocket server the API role's method table
//!   plugs into; [`metrics`] what it exports at `/metrics`.
//! - [`wire`]: the envelope of peer messages; [`safety`]: the durable vote
//!   state.
//! - [`devnet`]: the local network and load generator of `plume devnet`
//!   (also used by `plume bench cluster` and the tests).
//! - [`commands`]: `plume init`, the tune probes, and the `plume bench` /
//!   `plume sim` forwarders.
//!
//! Protocol logic is not here: formats are `plume_protocol`'s, consensus
//! `plume_consensus`'s, batching `plume_mempool`'s, the ledger
//! `plume_execution`'s. This crate moves bytes and time between them.

pub mod audit;
pub mod budget;
pub mod cli;
pub mod commands;
pub mod config;
pub mod devnet;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod roles;
pub mod safety;
pub mod setup;
pub mod transport;
pub mod views;
pub mod wire;

/// The software version this node runs as (what a governance software
/// upgrade is compared with): the crate version, or, for an upgrade drill
/// on a devnet, the value of `PLUME_UPGRADE_DRILL_VERSION` (a real upgrade
/// installs a new binary).
pub fn software_version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        std::env::var("PLUME_UPGRADE_DRILL_VERSION")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
    })
}
