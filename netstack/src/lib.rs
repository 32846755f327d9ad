//! Peer transports behind one trait (io_uring TCP; AF_XDP and DPDK behind
//! features), framing, authenticated encrypted sessions, per-peer quotas.
//!
//! Not built yet (issue 5). This crate is a placeholder in the workspace map.
