//! Host inspection and placement plans for `plume tune`: cores, SMT, NUMA,
//! io_uring, memlock, huge pages, governor, IRQs.
//!
//! Not built yet (issue 8). This crate is a placeholder in the workspace map.

pub mod cli;
