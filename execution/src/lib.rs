//! The ledger state machine: transaction formats, native token and assets,
//! settlement, fees, and the deterministic parallel scheduler.
//!
//! Not built yet (issue 6). This crate is a placeholder in the workspace map.
