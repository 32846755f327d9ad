//! Deterministic simulation of a whole Plume cluster in one thread: virtual
//! clock, simulated network and disk, fault injection, seeds.
//!
//! Not built yet (issue 4). This crate is a placeholder in the workspace map.

pub mod cli;
