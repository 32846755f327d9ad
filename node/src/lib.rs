//! The `plume` binary's library half: command-line handling, config,
//! genesis and key files. Start at `main.rs` for the commands, then
//! [`genesis`] and [`keys`] for what operators write and read.
//!
//! The validator runtime (placement, mempool, consensus driver, API) is not
//! built yet (issue 7).

pub mod api;
pub mod client;
pub mod config;
pub mod fsutil;
pub mod genesis;
pub mod keys;
pub mod mempool;
pub mod proof;
pub mod runtime;
pub mod safety;
pub mod txbuild;
pub mod devnet;
pub mod wire;
