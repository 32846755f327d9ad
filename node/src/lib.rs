//! The `plume` binary's library half: command-line handling, config,
//! genesis and key files. Start at `main.rs` for the commands, then
//! [`genesis`] and [`keys`] for what operators write and read.
//!
//! The validator runtime is [`runtime`] (`plume start`): placement, the
//! signature stage, the [`mempool`], the consensus driver, execution and
//! commit, and the [`api`]. [`wire`] is the peer message codec, [`safety`]
//! the durable vote state, [`proof`] the offline-checkable finality proofs.
//! The local network, load generator and client used by `plume devnet`,
//! `plume tx` and `plume query` live in `plume_benches::cluster`.

pub mod api;
pub mod config;
pub mod fsutil;
pub mod genesis;
pub mod keys;
pub mod mempool;
pub mod proof;
pub mod runtime;
pub mod safety;
pub mod wire;
