//! [`AnyTransport`]: one type over every transport, so the node picks TCP
//! or a datagram transport from its configuration at start-up without
//! making everything above generic.

use crate::dgram::transport::{DgramConn, DgramListener, DgramReader, DgramWriter};
use crate::dgram::DgramTransport;
use crate::tcp::{TcpAcceptor, TcpConn, TcpReader, TcpWriter};
use crate::transport::{Connection, Listener, RecordReader, RecordWriter, Transport};
use crate::{GlommioTcp, NetError};
use std::net::SocketAddr;
use std::time::Duration;

/// TCP or a datagram transport.
#[derive(Debug, Clone)]
pub enum AnyTransport {
    /// TCP on glommio.
    Tcp(GlommioTcp),
    /// UDP datagrams with Plume's reliability layer (kernel, AF_XDP, DPDK).
    Dgram(DgramTransport),
}

macro_rules! either {
    ($name:ident, $tcp:ty, $dg:ty, $doc:literal) => {
        #[doc = $doc]
        pub enum $name {
            /// TCP.
            Tcp($tcp),
            /// Datagrams.
            Dgram($dg),
        }
    };
}

either!(
    AnyListener,
    TcpAcceptor,
    DgramListener,
    "A listener of either kind."
);
either!(AnyConn, TcpConn, DgramConn, "A link of either kind.");
either!(
    AnyReader,
    TcpReader,
    DgramReader,
    "A receive half of either kind."
);
either!(
    AnyWriter,
    TcpWriter,
    DgramWriter,
    "A send half of either kind."
);

impl Transport for AnyTransport {
    type Conn = AnyConn;
    type Listener = AnyListener;

    fn listen(&self, addr: SocketAddr) -> Result<AnyListener, NetError> {
        Ok(match self {
            AnyTransport::Tcp(t) => AnyListener::Tcp(t.listen(addr)?),
            AnyTransport::Dgram(t) => AnyListener::Dgram(t.listen(addr)?),
        })
    }

    async fn connect(&self, addr: SocketAddr, timeout: Duration) -> Result<AnyConn, NetError> {
        Ok(match self {
            AnyTransport::Tcp(t) => AnyConn::Tcp(t.connect(addr, timeout).await?),
            AnyTransport::Dgram(t) => AnyConn::Dgram(t.connect(addr, timeout).await?),
        })
    }
}

impl Listener for AnyListener {
    type Conn = AnyConn;

    async fn accept(&self) -> Result<(AnyConn, SocketAddr), NetError> {
        Ok(match self {
            AnyListener::Tcp(l) => {
                let (c, a) = l.accept().await?;
                (AnyConn::Tcp(c), a)
            }
            AnyListener::Dgram(l) => {
                let (c, a) = l.accept().await?;
                (AnyConn::Dgram(c), a)
            }
        })
    }

    fn local_addr(&self) -> SocketAddr {
        match self {
            AnyListener::Tcp(l) => l.local_addr(),
            AnyListener::Dgram(l) => l.local_addr(),
        }
    }
}

impl Connection for AnyConn {
    type Reader = AnyReader;
    type Writer = AnyWriter;

    fn split(self, body_max: usize, batch_bytes: usize) -> (AnyReader, AnyWriter) {
        match self {
            AnyConn::Tcp(c) => {
                let (r, w) = c.split(body_max, batch_bytes);
                (AnyReader::Tcp(r), AnyWriter::Tcp(w))
            }
            AnyConn::Dgram(c) => {
                let (r, w) = c.split(body_max, batch_bytes);
                (AnyReader::Dgram(r), AnyWriter::Dgram(w))
            }
        }
    }
}

impl RecordReader for AnyReader {
    async fn next_record(&mut self) -> Result<&[u8], NetError> {
        match self {
            AnyReader::Tcp(r) => r.next_record().await,
            AnyReader::Dgram(r) => r.next_record().await,
        }
    }

    fn set_body_max(&mut self, body_max: usize) {
        match self {
            AnyReader::Tcp(r) => r.set_body_max(body_max),
            AnyReader::Dgram(r) => r.set_body_max(body_max),
        }
    }
}

impl RecordWriter for AnyWriter {
    fn reserve(&mut self, body_len: usize) -> &mut [u8] {
        match self {
            AnyWriter::Tcp(w) => w.reserve(body_len),
            AnyWriter::Dgram(w) => w.reserve(body_len),
        }
    }

    fn pending(&self) -> usize {
        match self {
            AnyWriter::Tcp(w) => w.pending(),
            AnyWriter::Dgram(w) => w.pending(),
        }
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        match self {
            AnyWriter::Tcp(w) => w.flush().await,
            AnyWriter::Dgram(w) => w.flush().await,
        }
    }
}
