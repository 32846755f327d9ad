//! The seam between the datagram transport and a kernel-bypass device.
//!
//! A [`FrameIo`] moves whole Ethernet frames; it knows nothing about IP,
//! UDP, ARP or Plume. [`super::eth`] builds and parses the Ethernet, ARP,
//! IPv4 and UDP headers on top of it, so AF_XDP and DPDK share one framing
//! and one neighbour table. Implementations are driven from one glommio
//! task on the pinned network core and must never block.

use std::io;

/// A raw Ethernet frame device: an AF_XDP socket or a DPDK port.
pub trait FrameIo {
    /// The device's MAC address.
    fn mac(&self) -> [u8; 6];
    /// Largest frame (Ethernet header included, FCS excluded) the device
    /// sends or receives.
    fn frame_max(&self) -> usize;
    /// Hand up to `max` received frames to `f`, each borrowed only for the
    /// call (zero-copy where the device allows). Never blocks; returns how
    /// many were handed over (0: nothing waiting).
    fn rx(&mut self, max: usize, f: &mut dyn FnMut(&[u8])) -> io::Result<usize>;
    /// Queue one frame for transmission (copied into the device's buffer).
    /// `Ok(false)`: the transmit ring is full and the frame was not queued;
    /// the caller keeps it and tries again after [`FrameIo::flush`].
    fn tx(&mut self, frame: &[u8]) -> io::Result<bool>;
    /// Push queued frames to the wire and reclaim completed buffers.
    fn flush(&mut self) -> io::Result<()>;
    /// How the device runs, for logs and the benchmark report, e.g.
    /// `"af_xdp skb-mode copy queue 0"` or `"dpdk net_af_packet0 (vdev)"`.
    fn mode(&self) -> String;
    /// A descriptor that `poll(2)` reports readable when frames wait
    /// (None: the driver has to poll, as for DPDK).
    fn rx_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}

/// What the reliability layer talks to: UDP datagrams to and from one
/// local IPv4 address and port. [`super::udp::KernelUdp`] is the kernel's
/// socket; [`super::eth::EthLink`] puts Ethernet, IPv4 and UDP headers
/// around the datagrams and runs them over a [`FrameIo`].
pub trait DatagramIo {
    /// The local address datagrams arrive at.
    fn local(&self) -> std::net::SocketAddrV4;
    /// Largest datagram payload.
    fn payload_max(&self) -> usize;
    /// Hand up to `max` received datagrams (source, payload) to `f`.
    /// Never blocks; returns how many.
    fn recv(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(std::net::SocketAddrV4, &[u8]),
    ) -> io::Result<usize>;
    /// Queue one datagram. `Ok(false)`: not sent now (ring full, or the
    /// next hop's MAC address is still being resolved); the reliability
    /// layer sends it again later.
    fn send(&mut self, dst: std::net::SocketAddrV4, payload: &[u8]) -> io::Result<bool>;
    /// Push queued datagrams out.
    fn flush(&mut self) -> io::Result<()>;
    /// How it runs (for logs and the benchmark report).
    fn mode(&self) -> String;
    /// A descriptor that `poll(2)` reports readable when datagrams wait
    /// (None: the driver has to poll).
    fn rx_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
}
