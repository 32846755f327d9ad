//! Whole-network benchmarking: `plume bench cluster` and `plume bench
//! sweep` over the local network and load generator of `plume devnet`
//! (`plume_node::devnet`), run through the `plume` binary.

pub mod attack;
pub mod bench;
