//! The kernel's UDP socket as a [`DatagramIo`]: the datagram transport
//! without kernel bypass (`transport = "udp"`), the reference the bypass
//! devices are compared with, and what the loss tests run on without root.

use super::device::DatagramIo;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

/// Socket buffer size asked for (the kernel caps it at `rmem_max`).
pub const SOCKET_BUFFER: usize = 4 << 20;
/// Largest datagram payload we send (fits a 1500-byte MTU with IPv4/UDP).
pub const PAYLOAD_MAX: usize = 1500 - 20 - 8;

/// A non-blocking kernel UDP socket.
#[derive(Debug)]
pub struct KernelUdp {
    sock: UdpSocket,
    local: SocketAddrV4,
    buf: Vec<u8>,
}

impl KernelUdp {
    /// Bind `addr` (port 0: any free port).
    pub fn bind(addr: SocketAddrV4) -> io::Result<KernelUdp> {
        let sock = UdpSocket::bind(addr)?;
        sock.set_nonblocking(true)?;
        for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            let v = SOCKET_BUFFER as libc::c_int;
            // SAFETY: valid fd, option value points to a c_int of the given
            // size for the duration of the call.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&v as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        let local = match sock.local_addr()? {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "IPv4 only"))
            }
        };
        Ok(KernelUdp {
            sock,
            local,
            buf: vec![0; 65536],
        })
    }
}

impl DatagramIo for KernelUdp {
    fn local(&self) -> SocketAddrV4 {
        self.local
    }

    fn payload_max(&self) -> usize {
        PAYLOAD_MAX
    }

    fn recv(&mut self, max: usize, f: &mut dyn FnMut(SocketAddrV4, &[u8])) -> io::Result<usize> {
        let mut n = 0;
        while n < max {
            match self.sock.recv_from(&mut self.buf) {
                Ok((len, SocketAddr::V4(src))) => {
                    n += 1;
                    f(src, &self.buf[..len]);
                }
                Ok((_, SocketAddr::V6(_))) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors from earlier sends surface here: not fatal.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn send(&mut self, dst: SocketAddrV4, payload: &[u8]) -> io::Result<bool> {
        match self.sock.send_to(payload, dst) {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn mode(&self) -> String {
        "kernel udp".into()
    }

    fn rx_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.sock.as_raw_fd())
    }
}
