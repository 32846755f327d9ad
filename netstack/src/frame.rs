//! The wire format below the session: length-prefixed records, and the
//! frame header inside a (decrypted) record.
//!
//! A stream transport carries records as `len: u32 LE` followed by `len`
//! bytes of body. The body is the frame, encrypted (Noise transport
//! messages, see [`crate::session`]) or in the clear when the endpoint was
//! configured without encryption (benchmarks only). A frame is
//! `kind: u8, channel: u8, payload`.
//!
//! Everything here is pure and validates every byte; it is the code the
//! fuzz target and the proptests drive.

use thiserror::Error;

/// Bytes of the record length prefix.
pub const LEN_PREFIX: usize = 4;
/// Bytes of the frame header (kind, channel).
pub const FRAME_HEADER: usize = 2;
/// Hard upper bound on a frame payload, whatever the configuration says.
pub const FRAME_PAYLOAD_LIMIT: usize = 16 << 20;
/// Default bound on a frame payload.
pub const FRAME_PAYLOAD_MAX_DEFAULT: usize = 1 << 20;

/// Priority class of a frame. Lower discriminant = higher priority: a
/// writer always drains [`Channel::Consensus`] before [`Channel::Bulk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Channel {
    /// Votes, proposals, timeouts: small and latency-critical.
    Consensus = 0,
    /// Transaction batches, state sync: large and throughput-bound.
    Bulk = 1,
}

/// Number of channels.
pub const CHANNELS: usize = 2;

impl Channel {
    /// All channels, highest priority first.
    pub const ALL: [Channel; CHANNELS] = [Channel::Consensus, Channel::Bulk];

    /// Index into per-channel arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Parse the wire byte.
    pub fn from_u8(b: u8) -> Result<Channel, FrameError> {
        match b {
            0 => Ok(Channel::Consensus),
            1 => Ok(Channel::Bulk),
            other => Err(FrameError::UnknownChannel(other)),
        }
    }
}

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Application data on a channel.
    Data = 0,
    /// Keep-alive; empty payload; resets the peer's idle timer.
    Ping = 1,
}

/// A malformed record or frame. Any of these closes the session.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The record length prefix is zero.
    #[error("empty record")]
    EmptyRecord,
    /// The record is longer than the session allows.
    #[error("record of {len} bytes exceeds the limit of {max}")]
    RecordTooLarge {
        /// Announced length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Fewer bytes than a frame header.
    #[error("frame of {0} bytes is shorter than its header")]
    Truncated(usize),
    /// Unknown frame kind byte.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Unknown channel byte.
    #[error("unknown channel {0}")]
    UnknownChannel(u8),
    /// A ping that carries bytes.
    #[error("ping frame with a {0}-byte payload")]
    PingWithPayload(usize),
    /// Payload longer than the configured limit.
    #[error("frame payload of {len} bytes exceeds the limit of {max}")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The encrypted body does not split into valid Noise messages.
    #[error("encrypted record of {0} bytes has an impossible chunk layout")]
    BadCiphertextLayout(usize),
    /// Authentication of the ciphertext failed.
    #[error("record failed authentication")]
    Decrypt,
}

/// Result of looking at the front of a receive buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole record: its body is `buf[LEN_PREFIX..LEN_PREFIX + body_len]`.
    Record {
        /// Body length.
        body_len: usize,
    },
    /// Not enough bytes yet; at least this many more are needed in total
    /// (prefix + body) before the record is complete.
    NeedMore {
        /// Total bytes the record occupies, when known (prefix read).
        total: Option<usize>,
    },
}

/// Look at the front of `buf` for one record whose body may be at most
/// `body_max` bytes. Never reads past `buf`; rejects oversize lengths as
/// soon as the prefix is in, before any body byte is buffered.
pub fn decode_record(buf: &[u8], body_max: usize) -> Result<Decoded, FrameError> {
    if buf.len() < LEN_PREFIX {
        return Ok(Decoded::NeedMore { total: None });
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len == 0 {
        return Err(FrameError::EmptyRecord);
    }
    if len > body_max {
        return Err(FrameError::RecordTooLarge { len, max: body_max });
    }
    let total = LEN_PREFIX + len;
    if buf.len() < total {
        return Ok(Decoded::NeedMore { total: Some(total) });
    }
    Ok(Decoded::Record { body_len: len })
}

/// A receive buffer that cuts length-prefixed records out of a byte
/// stream: the part both stream readers (TCP, datagram) share. Grows up to
/// one largest record; a partial record is moved to the front when it
/// would not fit.
#[derive(Debug)]
pub struct RecordBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    body_max: usize,
}

impl RecordBuf {
    /// A buffer of at most `initial` bytes to start with.
    pub fn new(initial: usize, body_max: usize) -> RecordBuf {
        RecordBuf {
            buf: vec![0; initial.min(LEN_PREFIX + body_max).max(LEN_PREFIX)],
            start: 0,
            end: 0,
            body_max,
        }
    }

    /// Change the inbound record limit.
    pub fn set_body_max(&mut self, body_max: usize) {
        self.body_max = body_max;
    }

    /// The next whole record's body range, or None (then fill
    /// [`RecordBuf::spare`], which has room for more of it).
    pub fn next_record(&mut self) -> Result<Option<std::ops::Range<usize>>, FrameError> {
        match decode_record(&self.buf[self.start..self.end], self.body_max)? {
            Decoded::Record { body_len } => {
                let b = self.start + LEN_PREFIX;
                self.start = b + body_len;
                if self.start == self.end {
                    // Everything consumed: the next read starts at the
                    // front (the body's bytes stay valid until then).
                    self.start = 0;
                    self.end = 0;
                }
                Ok(Some(b..b + body_len))
            }
            Decoded::NeedMore { total } => {
                let need = total.unwrap_or(LEN_PREFIX);
                if self.start + need > self.buf.len() {
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                    if need > self.buf.len() {
                        self.buf.resize(need, 0);
                    }
                }
                Ok(None)
            }
        }
    }

    /// Room for bytes read from the stream.
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.end..]
    }

    /// `n` bytes were written into [`RecordBuf::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// A record's body, by the range [`RecordBuf::next_record`] gave.
    pub fn body(&self, r: std::ops::Range<usize>) -> &[u8] {
        &self.buf[r]
    }
}

/// Write a record length prefix.
pub fn encode_len_prefix(body_len: usize) -> [u8; LEN_PREFIX] {
    assert!(body_len > 0 && body_len <= u32::MAX as usize);
    (body_len as u32).to_le_bytes()
}

/// A validated frame borrowed from a decrypted record.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Kind.
    pub kind: FrameKind,
    /// Channel (meaningful for data).
    pub channel: Channel,
    /// Payload.
    pub payload: &'a [u8],
}

/// Parse and validate a plaintext frame.
pub fn parse_frame(plain: &[u8], payload_max: usize) -> Result<Frame<'_>, FrameError> {
    if plain.len() < FRAME_HEADER {
        return Err(FrameError::Truncated(plain.len()));
    }
    let kind = match plain[0] {
        0 => FrameKind::Data,
        1 => FrameKind::Ping,
        other => return Err(FrameError::UnknownKind(other)),
    };
    let channel = Channel::from_u8(plain[1])?;
    let payload = &plain[FRAME_HEADER..];
    if kind == FrameKind::Ping && !payload.is_empty() {
        return Err(FrameError::PingWithPayload(payload.len()));
    }
    if payload.len() > payload_max {
        return Err(FrameError::PayloadTooLarge {
            len: payload.len(),
            max: payload_max,
        });
    }
    Ok(Frame {
        kind,
        channel,
        payload,
    })
}

/// The two header bytes of a frame.
pub fn frame_header(kind: FrameKind, channel: Channel) -> [u8; FRAME_HEADER] {
    [kind as u8, channel as u8]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feed `stream` to a RecordBuf `chunk` bytes at a time; collect bodies.
    fn cut(stream: &[u8], chunk: usize, initial: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut rb = RecordBuf::new(initial, 1000);
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            while let Some(r) = rb.next_record()? {
                out.push(rb.body(r).to_vec());
            }
            if at == stream.len() {
                return Ok(out);
            }
            let spare = rb.spare();
            let n = chunk.min(spare.len()).min(stream.len() - at);
            spare[..n].copy_from_slice(&stream[at..at + n]);
            rb.filled(n);
            at += n;
        }
    }

    #[test]
    fn record_buf_reassembles_across_reads_and_grows() {
        let bodies: Vec<Vec<u8>> = [3usize, 1, 700, 5, 64]
            .iter()
            .enumerate()
            .map(|(i, n)| vec![i as u8 + 1; *n])
            .collect();
        let mut stream = Vec::new();
        for b in &bodies {
            stream.extend_from_slice(&encode_len_prefix(b.len()));
            stream.extend_from_slice(b);
        }
        for chunk in [1, 3, 7, 100, 4096] {
            // An 8-byte start forces compaction and growth to 704 bytes.
            assert_eq!(cut(&stream, chunk, 8).unwrap(), bodies, "chunk {chunk}");
        }
        let mut bad = encode_len_prefix(1001).to_vec();
        bad.extend_from_slice(&[0; 8]);
        assert!(cut(&bad, 4, 64).is_err(), "over the limit is an error");
    }

    fn record(body: &[u8]) -> Vec<u8> {
        let mut v = encode_len_prefix(body.len()).to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn decode_cases() {
        let check = |buf: &[u8], max: usize, want: Result<Decoded, FrameError>| {
            assert_eq!(decode_record(buf, max), want, "buf {buf:?}");
        };
        check(&[], 8, Ok(Decoded::NeedMore { total: None }));
        check(&[1, 0, 0], 8, Ok(Decoded::NeedMore { total: None }));
        check(&[0, 0, 0, 0], 8, Err(FrameError::EmptyRecord));
        check(
            &[2, 0, 0, 0, 9],
            8,
            Ok(Decoded::NeedMore { total: Some(6) }),
        );
        check(&[2, 0, 0, 0, 9, 9], 8, Ok(Decoded::Record { body_len: 2 }));
        check(&[8, 0, 0, 0], 8, Ok(Decoded::NeedMore { total: Some(12) }));
        check(
            &[9, 0, 0, 0],
            8,
            Err(FrameError::RecordTooLarge { len: 9, max: 8 }),
        );
        check(
            &[0xff, 0xff, 0xff, 0xff],
            8,
            Err(FrameError::RecordTooLarge {
                len: u32::MAX as usize,
                max: 8,
            }),
        );
    }

    #[test]
    fn frame_cases() {
        assert_eq!(parse_frame(&[0], 4), Err(FrameError::Truncated(1)));
        assert_eq!(parse_frame(&[2, 0], 4), Err(FrameError::UnknownKind(2)));
        assert_eq!(parse_frame(&[0, 2], 4), Err(FrameError::UnknownChannel(2)));
        assert_eq!(
            parse_frame(&[1, 0, 5], 4),
            Err(FrameError::PingWithPayload(1))
        );
        assert_eq!(
            parse_frame(&[0, 1, 1, 2, 3, 4, 5], 4),
            Err(FrameError::PayloadTooLarge { len: 5, max: 4 })
        );
        let f = parse_frame(&[0, 1, 1, 2, 3, 4], 4).unwrap();
        assert_eq!(f.channel, Channel::Bulk);
        assert_eq!(f.kind, FrameKind::Data);
        assert_eq!(f.payload, &[1, 2, 3, 4]);
        assert_eq!(parse_frame(&[1, 0], 4).unwrap().kind, FrameKind::Ping);
    }

    proptest! {
        /// Any byte string: the decoder never panics, never claims a record
        /// longer than the buffer or the limit.
        #[test]
        fn decoder_total_on_garbage(buf in proptest::collection::vec(any::<u8>(), 0..64), max in 1usize..40) {
            match decode_record(&buf, max) {
                Ok(Decoded::Record { body_len }) => {
                    prop_assert!(body_len >= 1 && body_len <= max);
                    prop_assert!(LEN_PREFIX + body_len <= buf.len());
                }
                Ok(Decoded::NeedMore { total }) => {
                    if let Some(t) = total { prop_assert!(t > buf.len() && t <= LEN_PREFIX + max); }
                }
                Err(_) => {}
            }
            let _ = parse_frame(&buf, max);
        }

        /// A stream of valid records cut at arbitrary points decodes back to
        /// the same bodies in order.
        #[test]
        fn decoder_roundtrips_split_stream(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..50), 1..8),
            cut in 1usize..17,
        ) {
            let mut stream = Vec::new();
            for b in &bodies { stream.extend(record(b)); }
            let mut got = Vec::new();
            let mut buf: Vec<u8> = Vec::new();
            for chunk in stream.chunks(cut) {
                buf.extend_from_slice(chunk);
                while let Decoded::Record { body_len } = decode_record(&buf, 64).unwrap() {
                    got.push(buf[LEN_PREFIX..LEN_PREFIX + body_len].to_vec());
                    buf.drain(..LEN_PREFIX + body_len);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got, bodies);
        }
    }
}
