//! The transport seam. It moves *records* (opaque byte strings up to a
//! limit), not a byte stream, so that both a stream transport (TCP, which
//! delimits records with a length prefix) and a datagram kernel-bypass
//! transport (AF_XDP or DPDK, one record per datagram plus its own
//! reliability; issue 9) can implement it. Handshake, encryption, priority
//! and queues live above it in [`crate::endpoint`] and never see a socket.
//!
//! Implementations run on one glommio executor (not `Send`).

use crate::NetError;
use std::net::SocketAddr;
use std::time::Duration;

/// A way to reach peers.
#[allow(async_fn_in_trait)]
pub trait Transport: 'static {
    /// An established link.
    type Conn: Connection;
    /// Accepts inbound links.
    type Listener: Listener<Conn = Self::Conn>;
    /// Start accepting at `addr`.
    fn listen(&self, addr: SocketAddr) -> Result<Self::Listener, NetError>;
    /// Open a link to `addr`, giving up after `timeout`.
    async fn connect(&self, addr: SocketAddr, timeout: Duration) -> Result<Self::Conn, NetError>;
}

/// Accepts inbound links.
#[allow(async_fn_in_trait)]
pub trait Listener: 'static {
    /// Link type.
    type Conn: Connection;
    /// Next inbound link and the address it came from.
    async fn accept(&self) -> Result<(Self::Conn, SocketAddr), NetError>;
    /// The bound address.
    fn local_addr(&self) -> SocketAddr;
}

/// An established link, split into its two directions.
pub trait Connection: 'static {
    /// Receive half.
    type Reader: RecordReader;
    /// Send half.
    type Writer: RecordWriter;
    /// Split. `body_max` bounds an inbound record; `batch_bytes` sizes the
    /// writer's batch buffer.
    fn split(self, body_max: usize, batch_bytes: usize) -> (Self::Reader, Self::Writer);
}

/// Receive half of a link.
#[allow(async_fn_in_trait)]
pub trait RecordReader: 'static {
    /// The next record body, valid until the next call. A record over the
    /// limit or a malformed prefix is an error and ends the link.
    async fn next_record(&mut self) -> Result<&[u8], NetError>;
    /// Change the inbound record limit (small during the handshake).
    fn set_body_max(&mut self, body_max: usize);
}

/// Send half of a link: records are appended to a batch, then flushed with
/// as few system calls as the transport manages.
#[allow(async_fn_in_trait)]
pub trait RecordWriter: 'static {
    /// Append a record of `body_len` bytes to the batch and return its body
    /// for the caller to fill.
    fn reserve(&mut self, body_len: usize) -> &mut [u8];
    /// Bytes waiting in the batch.
    fn pending(&self) -> usize;
    /// Send the batch.
    async fn flush(&mut self) -> Result<(), NetError>;
}
