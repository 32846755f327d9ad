//! Plume's peer network: authenticated, encrypted links that only the
//! members named in genesis can open, carried by a pluggable transport.
//!
//! Where to start reading:
//! - [`transport`]: the [`transport::Transport`] trait (record-oriented, so
//!   a datagram kernel-bypass transport can implement it too) and its first
//!   implementation, TCP on glommio ([`tcp::GlommioTcp`]).
//! - [`dgram`]: the datagram transport (issue 9): a reliability layer over
//!   UDP carried by the kernel, AF_XDP (feature `af-xdp`) or DPDK (feature
//!   `dpdk`); [`any::AnyTransport`] lets the node choose at start-up.
//! - [`frame`]: the wire format (length-prefixed records, frame header),
//!   pure and fuzzed.
//! - [`handshake`]: Noise XX bound to the Ed25519 network identity from
//!   genesis, as a sans-IO state machine; allow-list and chain-id checks.
//! - [`session`]: record encryption after the handshake.
//! - [`endpoint`]: what the node uses: one session per peer pair, priority
//!   channels, bounded queues with backpressure, idle timeouts, reconnection
//!   with backoff, rate-limited handshakes, [`metrics::Metrics`].
//! - [`netns`]: network-namespace helpers for the multi-host test and the
//!   benchmark (root only).
//!
//! This crate moves bytes between authenticated peers; it never decides what
//! a message means.

pub mod any;
pub mod dgram;
pub mod endpoint;
pub mod frame;
pub mod handshake;
pub mod metrics;
pub mod netns;
pub mod pool;
pub mod queue;
pub mod session;
pub mod tcp;
pub mod transport;
mod util;

pub use any::AnyTransport;
pub use dgram::{DgramConfig, DgramTransport};
pub use endpoint::{Endpoint, Inbound, NetConfig, PeerAddr, SendError};
pub use frame::Channel;
pub use handshake::{AllowList, ChainId};
pub use metrics::{Metrics, MetricsSnapshot};
pub use tcp::GlommioTcp;

use std::fmt;

/// A peer's network identity: its Ed25519 network public key from genesis.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 32]);

impl From<&plume_crypto::ed25519::PublicKey> for PeerId {
    fn from(pk: &plume_crypto::ed25519::PublicKey) -> Self {
        PeerId(pk.to_bytes())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Transport-level failure.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Socket error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The other end closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// A malformed record or frame.
    #[error("malformed: {0}")]
    Frame(#[from] frame::FrameError),
    /// The handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] handshake::HandshakeError),
    /// Nothing arrived within the idle timeout.
    #[error("idle timeout")]
    Idle,
    /// An operation ran past its deadline.
    #[error("timed out")]
    Timeout,
    /// Runtime error from glommio.
    #[error("runtime: {0}")]
    Runtime(String),
}
