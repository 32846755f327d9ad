//! Whole-network benchmarking: a local validator network driven through the
//! `plume` binary, an open-loop load generator, the JSON-RPC client it
//! uses, and `plume bench cluster` / `plume bench sweep`.

pub mod bench;
pub mod client;
pub mod localnet;
pub mod txbuild;
