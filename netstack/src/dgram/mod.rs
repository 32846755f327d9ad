//! The datagram transport (issue 9): validator records over UDP with our
//! own reliability layer, carried by the kernel's UDP socket, an AF_XDP
//! socket (feature `af-xdp`) or a DPDK port (feature `dpdk`).
//!
//! Layers, bottom up:
//! - [`device`]: the seams — [`device::FrameIo`] (raw Ethernet frames:
//!   AF_XDP, DPDK) and [`device::DatagramIo`] (UDP datagrams).
//! - [`eth`]: Ethernet/ARP/IPv4/UDP framing and neighbour resolution,
//!   turning a `FrameIo` into a `DatagramIo` ([`eth::EthLink`]).
//! - [`udp`]: the kernel's UDP socket as a `DatagramIo`.
//! - [`proto`]: the reliability layer, a pure state machine per connection
//!   (sequence numbers, acknowledgements, retransmission, fragmentation via
//!   a byte stream, windows).
//! - [`transport`]: [`transport::DgramTransport`], the [`crate::transport::Transport`]
//!   the endpoint runs its Noise handshake and encrypted records over.

#[cfg(feature = "af-xdp")]
pub mod afxdp;
pub mod device;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod eth;
pub mod open;
pub mod proto;
pub mod transport;
pub mod udp;
pub mod waiter;

pub use transport::{DgramConfig, DgramMetrics, DgramMetricsSnapshot, DgramTransport};
