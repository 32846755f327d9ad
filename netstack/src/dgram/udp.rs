//! The kernel's UDP socket as a [`DatagramIo`]: the datagram transport
//! without kernel bypass (`transport = "udp"`), the reference the bypass
//! devices are compared with, and what the loss tests run on without root.
//!
//! Datagrams move in batches: `recvmmsg(2)` takes up to [`BATCH`] per
//! system call into buffers allocated once (headers on the stack: no
//! allocation per call), and sends are gathered and
//! pushed with one `sendmmsg(2)` per flush (or when the batch is full).

use super::device::DatagramIo;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

/// Socket buffer size asked for (the kernel caps it at `rmem_max`).
pub const SOCKET_BUFFER: usize = 4 << 20;
/// Largest datagram payload we send (fits a 1500-byte MTU with IPv4/UDP).
pub const PAYLOAD_MAX: usize = 1500 - 20 - 8;
/// Datagrams per `recvmmsg` / `sendmmsg`.
pub const BATCH: usize = 64;
/// Receive buffer per datagram (larger ones are truncated and dropped).
pub const RECV_SLOT: usize = 2048;

/// A non-blocking kernel UDP socket.
pub struct KernelUdp {
    sock: UdpSocket,
    local: SocketAddrV4,
    rx: Vec<u8>,
    rx_addrs: Vec<libc::sockaddr_in>,
    tx: Vec<u8>,
    tx_lens: Vec<usize>,
    tx_addrs: Vec<libc::sockaddr_in>,
}

impl std::fmt::Debug for KernelUdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KernelUdp({})", self.local)
    }
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn from_sockaddr(s: &libc::sockaddr_in) -> Option<SocketAddrV4> {
    (s.sin_family == libc::AF_INET as libc::sa_family_t).then(|| {
        SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr)),
            u16::from_be(s.sin_port),
        )
    })
}

/// `n` message headers for `sendmmsg`/`recvmmsg`: header i names
/// `addrs[i]` and its one iovec `iov[i]`. On the stack: no allocation per
/// call.
fn headers(
    n: usize,
    addrs: &mut [libc::sockaddr_in],
    iov: &mut [libc::iovec; BATCH],
) -> [libc::mmsghdr; BATCH] {
    // SAFETY: all-zero mmsghdr values are valid empty headers; the ones we
    // use are filled in below.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        let h = &mut msgs[i].msg_hdr;
        h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in).cast();
        h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        h.msg_iov = &mut iov[i];
        h.msg_iovlen = 1;
    }
    msgs
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
        let zero = sockaddr(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        Ok(KernelUdp {
            sock,
            local,
            rx: vec![0; BATCH * RECV_SLOT],
            rx_addrs: vec![zero; BATCH],
            tx: vec![0; BATCH * PAYLOAD_MAX],
            tx_lens: Vec::with_capacity(BATCH),
            tx_addrs: Vec::with_capacity(BATCH),
        })
    }

    /// Push the gathered datagrams; keeps what the kernel did not take.
    fn push(&mut self) -> io::Result<()> {
        while !self.tx_lens.is_empty() {
            let n = self.tx_lens.len();
            // SAFETY: an all-zero iovec is valid; the first n are set.
            let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            for (i, v) in iov.iter_mut().enumerate().take(n) {
                v.iov_base = self.tx[i * PAYLOAD_MAX..].as_mut_ptr().cast();
                v.iov_len = self.tx_lens[i];
            }
            let mut msgs = headers(n, &mut self.tx_addrs, &mut iov);
            // SAFETY: `msgs` holds `n` headers whose name and iovec pointers
            // point into `tx_addrs`, `iov` and `tx`, all alive and unmoved
            // for the duration of the call.
            let r = unsafe {
                libc::sendmmsg(
                    self.sock.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    n as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    // Full socket buffer: keep them for the next flush.
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(()),
                    // An ICMP error from an earlier datagram: drop the first
                    // one (the reliability layer resends) and go on.
                    io::ErrorKind::ConnectionRefused => {
                        self.drop_front(1);
                        continue;
                    }
                    _ => {
                        self.tx_lens.clear();
                        self.tx_addrs.clear();
                        Err(e)
                    }
                };
            }
            self.drop_front(r as usize);
        }
        Ok(())
    }

    fn drop_front(&mut self, k: usize) {
        let n = self.tx_lens.len();
        let k = k.min(n);
        if k == 0 {
            return;
        }
        self.tx.copy_within(k * PAYLOAD_MAX..n * PAYLOAD_MAX, 0);
        self.tx_lens.drain(..k);
        self.tx_addrs.drain(..k);
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
        let want = max.clamp(1, BATCH);
        // SAFETY: an all-zero iovec is valid; the first `want` are set.
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        for (i, v) in iov.iter_mut().enumerate().take(want) {
            v.iov_base = self.rx[i * RECV_SLOT..].as_mut_ptr().cast();
            v.iov_len = RECV_SLOT;
        }
        let mut msgs = headers(want, &mut self.rx_addrs, &mut iov);
        // SAFETY: `msgs` holds `want` headers pointing into `rx_addrs`,
        // `iov` and `rx`, alive and unmoved for the duration of the call.
        let r = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                want as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                // ICMP errors from earlier sends surface here: not fatal.
                io::ErrorKind::ConnectionRefused => Ok(0),
                _ => Err(e),
            };
        }
        let got = r as usize;
        for (i, m) in msgs.iter().take(got).enumerate() {
            let len = m.msg_len as usize;
            if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > RECV_SLOT {
                continue; // larger than any datagram of ours
            }
            if let Some(src) = from_sockaddr(&self.rx_addrs[i]) {
                f(src, &self.rx[i * RECV_SLOT..i * RECV_SLOT + len]);
            }
        }
        Ok(got)
    }

    fn send(&mut self, dst: SocketAddrV4, payload: &[u8]) -> io::Result<bool> {
        if payload.len() > PAYLOAD_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("datagram of {} bytes > {PAYLOAD_MAX}", payload.len()),
            ));
        }
        if self.tx_lens.len() == BATCH {
            self.push()?;
            if self.tx_lens.len() == BATCH {
                return Ok(false);
            }
        }
        let i = self.tx_lens.len();
        self.tx[i * PAYLOAD_MAX..i * PAYLOAD_MAX + payload.len()].copy_from_slice(payload);
        self.tx_lens.push(payload.len());
        self.tx_addrs.push(sockaddr(dst));
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }

    fn mode(&self) -> String {
        "kernel udp".into()
    }

    fn rx_fd(&self) -> Option<std::os::fd::RawFd> {
        Some(self.sock.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_both_ways_and_refuses_oversize() {
        let lo = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
        let mut a = KernelUdp::bind(lo).unwrap();
        let mut b = KernelUdp::bind(lo).unwrap();
        let to = b.local();
        // More than one batch: the first BATCH go out when the batch is
        // full, the rest on flush.
        for i in 0..100u32 {
            let p = vec![i as u8; 10 + i as usize];
            assert!(a.send(to, &p).unwrap());
        }
        a.flush().unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while got.len() < 100 && std::time::Instant::now() < deadline {
            b.recv(BATCH, &mut |src, p| got.push((src, p.to_vec())))
                .unwrap();
        }
        assert_eq!(got.len(), 100);
        for (i, (src, p)) in got.iter().enumerate() {
            assert_eq!(*src, a.local());
            assert_eq!(p, &vec![i as u8; 10 + i]);
        }
        assert!(a.send(to, &vec![0; PAYLOAD_MAX + 1]).is_err());
    }
}
