//! Storage for Plume: a KV-transaction trait with LMDB (heed) and in-memory
//! implementations, rkyv-archived tables, the block store and the
//! authenticated state tree with proofs.
//!
//! Not built yet (issue 3). This crate is a placeholder in the workspace map.
