//! Plume's BFT consensus engine as a pure state machine:
//! [`Engine::step`]`(input) -> effects`. No I/O, no clock, no threads, no
//! randomness; the driver (the node, or the `sim` crate) owns all of those.
//!
//! The protocol is Jolteon's two-chain HotStuff (see [`engine`] for the paper
//! references, commit rule and voting rule). Start reading at
//! [`engine::Input`] and [`engine::Effect`] (the driver API), then
//! [`Engine::step`]; the messages, certificates and the signature-scheme trait (real BLS,
//! or, with the `test-utils` feature, a cheap test scheme for simulation)
//! are `plume_protocol`'s, re-exported here.
#![forbid(unsafe_code)]

pub mod engine;

pub use engine::{CommitRule, Config, Effect, Engine, Input, Metrics, Mutation, Recovered, Timer};
/// The messages, blocks and certificates the engine exchanges (they are
/// part of the protocol: defined in `plume_protocol`, re-exported here).
pub use plume_protocol::consensus::*;
pub use plume_protocol::scheme::{BlsScheme, Scheme};
#[cfg(feature = "test-utils")]
pub use plume_protocol::scheme::{TestCert, TestCommittee, TestScheme, TestSigner};
