//! A client of the node's binary submission endpoint (`GET /bin`, protocol
//! `plume-bin/1`; the frame table is in the node's `http::bin` module and
//! the README): pipelined length-prefixed submissions, asynchronous
//! acknowledgements, and an optional stream of every committed block's
//! transaction hashes. Plain blocking sockets: a [`BinWriter`] and a
//! [`BinReader`] own the two directions of one connection and may live on
//! two threads.

use crate::ClientError;
use plume_crypto::Digest;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The `Upgrade` token.
pub const PROTOCOL: &str = "plume-bin/1";
const SUBMIT: u8 = 0x01;
const PING: u8 = 0x03;
const ACK: u8 = 0x81;
const BLOCK: u8 = 0x82;
const ERROR: u8 = 0x83;
const PONG: u8 = 0x84;
/// Largest frame a node sends (a block of up to 1,000,000 hashes).
pub const NODE_FRAME_MAX: usize = 1 + 8 + 64 + 4 + 32 * 1_000_000;

/// Something the node sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Submission `index` (counted from 0 on this connection) was admitted
    /// (`Ok(hash)`) or refused (`Err((code, message))`, the JSON-RPC codes).
    Ack {
        /// Which submission.
        index: u64,
        /// Its outcome.
        outcome: Result<Digest, (i64, String)>,
    },
    /// A committed block.
    Block {
        /// Its height.
        height: u64,
        /// Its id.
        id: Digest,
        /// The state root after it.
        root: Digest,
        /// Its transactions' hashes, in order.
        txs: Vec<Digest>,
    },
    /// The node ends the connection, saying why.
    Closing {
        /// Error code.
        code: i64,
        /// Reason.
        message: String,
    },
    /// Answer to a ping.
    Pong,
}

/// The sending half.
pub struct BinWriter {
    out: BufWriter<TcpStream>,
    sent: u64,
    addr: String,
}

/// The receiving half.
pub struct BinReader {
    inp: BufReader<TcpStream>,
    addr: String,
}

/// Connect to the API at `addr` (host:port) and switch to the binary
/// protocol; with `finality`, the node streams every committed block.
pub fn connect(addr: &str, finality: bool) -> Result<(BinWriter, BinReader), ClientError> {
    let io = |err: std::io::Error| ClientError::Io {
        addr: addr.to_string(),
        err,
    };
    let mut s = TcpStream::connect(addr).map_err(io)?;
    let _ = s.set_nodelay(true);
    let path = if finality { "/bin?finality=1" } else { "/bin" };
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: {PROTOCOL}\r\n\r\n"
    )
    .map_err(io)?;
    // Read the response head byte by byte: nothing after it may be taken
    // from the socket here.
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(ClientError::BadReply("response head too long".into()));
        }
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            Ok(_) => return Err(ClientError::BadReply("closed during the upgrade".into())),
            Err(e) => return Err(io(e)),
        }
    }
    let text = String::from_utf8_lossy(&head);
    if !text.starts_with("HTTP/1.1 101") {
        let status = text.lines().next().unwrap_or("").to_string();
        return Err(ClientError::BadReply(format!(
            "the node did not switch to {PROTOCOL}: {status}"
        )));
    }
    s.set_read_timeout(None).map_err(io)?;
    // A node that stops reading fails our writes instead of blocking us.
    s.set_write_timeout(Some(Duration::from_secs(30)))
        .map_err(io)?;
    let r = s.try_clone().map_err(io)?;
    Ok((
        BinWriter {
            out: BufWriter::with_capacity(256 * 1024, s),
            sent: 0,
            addr: addr.to_string(),
        },
        BinReader {
            inp: BufReader::with_capacity(256 * 1024, r),
            addr: addr.to_string(),
        },
    ))
}

impl BinWriter {
    /// Queue one transaction (its encoded bytes); its index is the return
    /// value. Buffered: call [`BinWriter::flush`] to send.
    pub fn submit(&mut self, tx: &[u8]) -> Result<u64, ClientError> {
        self.out
            .write_all(&(1 + tx.len() as u32).to_le_bytes())
            .and_then(|()| self.out.write_all(&[SUBMIT]))
            .and_then(|()| self.out.write_all(tx))
            .map_err(|err| ClientError::Io {
                addr: self.addr.clone(),
                err,
            })?;
        self.sent += 1;
        Ok(self.sent - 1)
    }

    /// Queue a ping.
    pub fn ping(&mut self) -> Result<(), ClientError> {
        self.out
            .write_all(&1u32.to_le_bytes())
            .and_then(|()| self.out.write_all(&[PING]))
            .map_err(|err| ClientError::Io {
                addr: self.addr.clone(),
                err,
            })
    }

    /// Send what is queued.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        self.out.flush().map_err(|err| ClientError::Io {
            addr: self.addr.clone(),
            err,
        })
    }

    /// Send what is queued and close the connection both ways (its
    /// [`BinReader`] then reads the end).
    pub fn close(mut self) {
        let _ = self.out.flush();
        let _ = self.out.get_ref().shutdown(std::net::Shutdown::Both);
    }

    /// Send what is queued and close our side only: the node still sends
    /// every acknowledgement due, then closes (the [`BinReader`] reads them
    /// and then the end).
    pub fn finish(mut self) -> Result<(), ClientError> {
        self.flush()?;
        self.out
            .get_ref()
            .shutdown(std::net::Shutdown::Write)
            .map_err(|err| ClientError::Io {
                addr: self.addr.clone(),
                err,
            })
    }

    /// Submissions queued so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

fn digest(b: &[u8]) -> Digest {
    let mut d = [0u8; 32];
    d.copy_from_slice(&b[..32]);
    Digest(d)
}

impl BinReader {
    /// The next event (blocks until one arrives; `Ok(None)` once the node
    /// closed).
    pub fn next_event(&mut self) -> Result<Option<Event>, ClientError> {
        let mut head = [0u8; 4];
        match self.inp.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(err) => {
                return Err(ClientError::Io {
                    addr: self.addr.clone(),
                    err,
                })
            }
        }
        let len = u32::from_le_bytes(head) as usize;
        if len == 0 || len > NODE_FRAME_MAX {
            return Err(ClientError::BadReply(format!("a frame of {len} bytes")));
        }
        let mut f = vec![0u8; len];
        self.inp.read_exact(&mut f).map_err(|err| ClientError::Io {
            addr: self.addr.clone(),
            err,
        })?;
        let bad = |what: &str| ClientError::BadReply(format!("malformed {what} frame"));
        let body = &f[1..];
        Ok(Some(match f[0] {
            ACK => {
                if body.len() < 9 {
                    return Err(bad("ack"));
                }
                let index = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
                let outcome = match body[8] {
                    0 if body.len() == 9 + 32 => Ok(digest(&body[9..])),
                    1 if body.len() >= 17 => Err((
                        i64::from_le_bytes(body[9..17].try_into().expect("8 bytes")),
                        String::from_utf8_lossy(&body[17..]).to_string(),
                    )),
                    _ => return Err(bad("ack")),
                };
                Event::Ack { index, outcome }
            }
            BLOCK => {
                if body.len() < 76 {
                    return Err(bad("block"));
                }
                let height = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
                let n = u32::from_le_bytes(body[72..76].try_into().expect("4 bytes")) as usize;
                if body.len() != 76 + 32 * n {
                    return Err(bad("block"));
                }
                Event::Block {
                    height,
                    id: digest(&body[8..40]),
                    root: digest(&body[40..72]),
                    txs: body[76..].chunks_exact(32).map(digest).collect(),
                }
            }
            ERROR => {
                if body.len() < 8 {
                    return Err(bad("error"));
                }
                Event::Closing {
                    code: i64::from_le_bytes(body[..8].try_into().expect("8 bytes")),
                    message: String::from_utf8_lossy(&body[8..]).to_string(),
                }
            }
            PONG => Event::Pong,
            k => {
                return Err(ClientError::BadReply(format!(
                    "unknown frame kind {k:#04x}"
                )))
            }
        }))
    }
}
