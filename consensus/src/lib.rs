//! Consensus engines for Plume as pure state machines: `step(input) -> effects`.
//! No I/O, no clock, no threads.
//!
//! Not built yet (issue 4). This crate is a placeholder in the workspace map.
#![forbid(unsafe_code)]
