//! Command-line pieces shared by the `plume` binary's commands (the
//! binary's `main.rs` holds the top-level command table).

pub mod compliance;
pub mod governance;
pub mod tx;
