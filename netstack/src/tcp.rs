//! The first [`Transport`]: TCP on glommio's io_uring executor.
//!
//! Records are `u32 LE length + body`. The writer gathers many records into
//! one contiguous batch and writes it with one `send` (glommio's
//! `write_vectored` sends only the first slice, so a contiguous batch is
//! how we get vectored-write behaviour); the reader reads as much as the
//! socket has into one buffer and parses records out of it. `TCP_NODELAY`
//! is on. Note (measured, DEPENDENCIES.md): glommio 0.9 uses io_uring only
//! for readiness here; the send/recv themselves are plain system calls.

use crate::frame::{encode_len_prefix, RecordBuf};
use crate::transport::{Connection, Listener, RecordReader, RecordWriter, Transport};
use crate::NetError;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::{TcpListener, TcpStream};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

/// Initial receive buffer; grows up to one largest record.
pub const READ_BUF_INITIAL: usize = 256 << 10;

/// TCP over glommio.
#[derive(Clone, Copy, Debug, Default)]
pub struct GlommioTcp;

/// A listening socket.
#[derive(Debug)]
pub struct TcpAcceptor {
    l: TcpListener,
    addr: SocketAddr,
}

/// An accepted or dialled TCP link.
#[derive(Debug)]
pub struct TcpConn(TcpStream);

impl Transport for GlommioTcp {
    type Conn = TcpConn;
    type Listener = TcpAcceptor;

    fn listen(&self, addr: SocketAddr) -> Result<TcpAcceptor, NetError> {
        let l = TcpListener::bind(addr).map_err(|e| NetError::Runtime(e.to_string()))?;
        let addr = l.local_addr().map_err(|e| NetError::Io(e.into()))?;
        Ok(TcpAcceptor { l, addr })
    }

    async fn connect(&self, addr: SocketAddr, timeout: Duration) -> Result<TcpConn, NetError> {
        let s = TcpStream::connect_timeout(addr, timeout)
            .await
            .map_err(|e| NetError::Io(e.into()))?;
        s.set_nodelay(true).map_err(|e| NetError::Io(e.into()))?;
        Ok(TcpConn(s))
    }
}

impl Listener for TcpAcceptor {
    type Conn = TcpConn;

    async fn accept(&self) -> Result<(TcpConn, SocketAddr), NetError> {
        let s = self.l.accept().await.map_err(|e| NetError::Io(e.into()))?;
        s.set_nodelay(true).map_err(|e| NetError::Io(e.into()))?;
        let peer = s.peer_addr().map_err(|e| NetError::Io(e.into()))?;
        Ok((TcpConn(s), peer))
    }

    fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Connection for TcpConn {
    type Reader = TcpReader;
    type Writer = TcpWriter;

    fn split(self, body_max: usize, batch_bytes: usize) -> (TcpReader, TcpWriter) {
        // glommio keeps separate read and write readiness sources, so two
        // tasks may poll the two directions of one stream.
        let s = Rc::new(RefCell::new(self.0));
        (
            TcpReader {
                s: s.clone(),
                buf: RecordBuf::new(READ_BUF_INITIAL, body_max),
            },
            TcpWriter {
                s,
                batch: Vec::with_capacity(batch_bytes),
            },
        )
    }
}

/// Receive half.
#[derive(Debug)]
pub struct TcpReader {
    s: Rc<RefCell<TcpStream>>,
    buf: RecordBuf,
}

impl RecordReader for TcpReader {
    async fn next_record(&mut self) -> Result<&[u8], NetError> {
        let range = loop {
            if let Some(r) = self.buf.next_record()? {
                break r;
            }
            let spare = self.buf.spare();
            let n = match recv_now(&self.s, spare) {
                Some(r) => r?,
                None => {
                    let s = &self.s;
                    std::future::poll_fn(|cx| Pin::new(&mut *s.borrow_mut()).poll_read(cx, spare))
                        .await?
                }
            };
            if n == 0 {
                return Err(NetError::Closed);
            }
            self.buf.filled(n);
        };
        Ok(self.buf.body(range))
    }

    fn set_body_max(&mut self, body_max: usize) {
        self.buf.set_body_max(body_max);
    }
}

/// Try a non-blocking `recv` first. glommio's `poll_read` returns Pending
/// after every partial read until an io_uring readiness poll it queued has
/// completed, which costs a reactor round trip even when bytes are already
/// waiting; reading directly avoids that, and glommio's readiness poll is
/// used only when the socket is really empty. None: would block.
fn recv_now(s: &RefCell<TcpStream>, buf: &mut [u8]) -> Option<std::io::Result<usize>> {
    let fd = s.borrow().as_raw_fd();
    // SAFETY: `fd` is the open socket owned by `s`, which outlives this call;
    // `buf` is valid for writes of `buf.len()` bytes.
    let r = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if r >= 0 {
        return Some(Ok(r as usize));
    }
    let e = std::io::Error::last_os_error();
    match e.kind() {
        std::io::ErrorKind::WouldBlock => None,
        std::io::ErrorKind::Interrupted => None,
        _ => Some(Err(e)),
    }
}

/// Send half.
#[derive(Debug)]
pub struct TcpWriter {
    s: Rc<RefCell<TcpStream>>,
    batch: Vec<u8>,
}

impl RecordWriter for TcpWriter {
    fn reserve(&mut self, body_len: usize) -> &mut [u8] {
        self.batch.extend_from_slice(&encode_len_prefix(body_len));
        let at = self.batch.len();
        self.batch.resize(at + body_len, 0);
        &mut self.batch[at..]
    }

    fn pending(&self) -> usize {
        self.batch.len()
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        let mut off = 0;
        while off < self.batch.len() {
            let s = &self.s;
            let buf = &self.batch[off..];
            let n = std::future::poll_fn(|cx| Pin::new(&mut *s.borrow_mut()).poll_write(cx, buf))
                .await?;
            if n == 0 {
                return Err(NetError::Closed);
            }
            off += n;
        }
        self.batch.clear();
        Ok(())
    }
}

/// A blocking std TCP connection to `to` from local address `from` (any
/// port): std has no bind-before-connect. For tools and tests that need
/// a given source address (several loopback addresses as several
/// clients).
pub fn connect_from(
    from: std::net::Ipv4Addr,
    to: SocketAddr,
) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::FromRawFd as _;
    let SocketAddr::V4(to) = to else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "connect_from: IPv4 only",
        ));
    };
    let sa = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let (local, remote) = (sa(from, 0), sa(*to.ip(), to.port()));
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: socket(2) takes no pointers.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own; handed to the stream once, which
    // closes it on every path below.
    let s = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    // Pick the source port at connect, by the whole 4-tuple: a bind with
    // port 0 alone would need a port unused by every socket on `from`,
    // TIME_WAIT ones included, and a busy client runs out of them.
    let one: libc::c_int = 1;
    // SAFETY: `one` is a valid c_int for the duration of the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    // SAFETY: the addresses are valid sockaddr_in of `len` bytes.
    if unsafe { libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(s)
}
