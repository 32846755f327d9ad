//! Plume's BFT consensus engine as a pure state machine:
//! [`Engine::step`]`(input) -> effects`. No I/O, no clock, no threads, no
//! randomness; the driver (the node, or the `sim` crate) owns all of those.
//!
//! The protocol is Jolteon's two-chain HotStuff (see [`engine`] for the paper
//! references, commit rule and voting rule). Start reading at
//! [`engine::Input`] and [`engine::Effect`] (the driver API), then
//! [`Engine::step`]; [`types`] holds the messages and certificates; [`scheme`]
//! the signature-scheme trait (real BLS, or a cheap test scheme for
//! simulation).
#![forbid(unsafe_code)]

pub mod engine;
pub mod scheme;
pub mod types;

pub use engine::{CommitRule, Config, Effect, Engine, Input, Metrics, Recovered, Timer};
pub use scheme::{BlsScheme, Scheme, TestCert, TestCommittee, TestScheme, TestSigner};
pub use types::*;
