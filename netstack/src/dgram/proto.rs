//! The reliability layer of the datagram transport, as a pure state
//! machine (sans-IO): no sockets, no clock (the caller passes `now`), no
//! randomness (the caller picks connection ids).
//!
//! One [`Conn`] carries one ordered, reliable byte stream each way between
//! two endpoints, cut into packets of at most `mss` bytes. The stream holds
//! the same length-prefixed records as the TCP transport, so a record larger
//! than one datagram is simply spread over several packets (fragmentation)
//! and reassembled by the reader's record parser.
//!
//! - Every packet has a 64-bit sequence number (no wrap-around to handle).
//! - Every packet carries a cumulative acknowledgement (`ack` = the next
//!   sequence the receiver expects), a 256-bit (`SACK_BITS`) selective-acknowledgement
//!   bitmap of the packets received above it, and the receiver's free
//!   window in packets.
//! - Lost packets are resent on a retransmission timeout (RFC 6298 style
//!   smoothed RTT, Karn's rule, exponential back-off) or earlier, once
//!   [`DUP_THRESH`] later packets were acknowledged (fast retransmit).
//! - What is in flight is bounded by the smallest of the congestion window
//!   (AIMD, halved at most once per round trip on loss), the peer's window
//!   and the local send buffer; writers wait when the send buffer is full,
//!   so backpressure reaches the application as with TCP.
//! - A connection opens with SYN / SYN-ACK (retried), and ends with RESET
//!   or when nothing was heard from the peer for `dead_after` while
//!   something waited for an answer. A listener answers a SYN statelessly:
//!   its SYN-ACK carries a cookie in `seq` (a keyed hash of the source, the
//!   connection id and the time, [`syn_cookie`]), the initiator echoes it in
//!   an ACK (retried) and sends data only once the listener answered that;
//!   the listener creates the connection only for a valid echo
//!   ([`Conn::accept_echoed`]). Spoofed-source SYNs hold no state at all.
//!   A SYN-ACK with `seq` 0 (a listener keeping state) establishes at once.
//!
//! Encryption and peer authentication are not here: the endpoint runs the
//! same Noise handshake and record encryption over this stream as over TCP.
//! Like TCP's headers, ours are not authenticated; an on-path attacker can
//! disrupt a link but cannot read or forge records.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Header bytes in every packet.
pub const HEADER: usize = 64;
/// First two bytes of every packet ("PL").
pub const MAGIC: u16 = 0x504c;
/// Protocol version.
pub const VERSION: u8 = 1;
/// Later packets acknowledged before a hole is resent without waiting for
/// the timer.
pub const DUP_THRESH: u64 = 3;
/// Bits in the selective-acknowledgement bitmap.
pub const SACK_BITS: u64 = 256;
/// 64-bit words of the bitmap.
pub const SACK_WORDS: usize = (SACK_BITS / 64) as usize;
/// Smallest congestion window, packets.
pub const CWND_MIN: f64 = 8.0;
/// Hard bound on a packet payload, whatever the configuration says.
pub const PAYLOAD_LIMIT: usize = 9000;

/// Packet type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Open a connection.
    Syn = 1,
    /// Accept a connection.
    SynAck = 2,
    /// Stream bytes (with acknowledgement fields).
    Data = 3,
    /// Acknowledgement only.
    Ack = 4,
    /// The connection is gone.
    Reset = 5,
}

impl Kind {
    fn from_u8(b: u8) -> Result<Kind, PacketError> {
        Ok(match b {
            1 => Kind::Syn,
            2 => Kind::SynAck,
            3 => Kind::Data,
            4 => Kind::Ack,
            5 => Kind::Reset,
            other => return Err(PacketError::Kind(other)),
        })
    }
}

/// Why a datagram is not one of our packets.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PacketError {
    /// Shorter than a header.
    #[error("datagram of {0} bytes is shorter than the {HEADER}-byte header")]
    Short(usize),
    /// Not our protocol.
    #[error("bad magic {0:#06x}")]
    Magic(u16),
    /// Another protocol version.
    #[error("unsupported version {0}")]
    Version(u8),
    /// Unknown packet type.
    #[error("unknown packet kind {0}")]
    Kind(u8),
    /// The length field disagrees with the datagram.
    #[error("payload length {field} but {actual} bytes follow the header")]
    Length {
        /// Declared.
        field: usize,
        /// Present.
        actual: usize,
    },
    /// A payload where none belongs, none where one must be, or too big.
    #[error("{kind:?} packet with a payload of {len} bytes")]
    Payload {
        /// Packet type.
        kind: Kind,
        /// Payload length.
        len: usize,
    },
}

/// A packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Type.
    pub kind: Kind,
    /// Connection id, chosen by the side that opened it.
    pub conn: u32,
    /// Sequence number of a data packet (0 otherwise).
    pub seq: u64,
    /// Next sequence number the sender of this packet expects.
    pub ack: u64,
    /// Bit i (word i / 64, bit i % 64): packet `ack + 1 + i` was received.
    pub sack: [u64; SACK_WORDS],
    /// Packets the sender of this packet can still take.
    pub window: u32,
}

impl Header {
    /// Write the header for a payload of `len` bytes into `out[..HEADER]`.
    pub fn encode(&self, len: usize, out: &mut [u8]) {
        out[0..2].copy_from_slice(&MAGIC.to_be_bytes());
        out[2] = VERSION;
        out[3] = self.kind as u8;
        out[4..8].copy_from_slice(&self.conn.to_be_bytes());
        out[8..16].copy_from_slice(&self.seq.to_be_bytes());
        out[16..24].copy_from_slice(&self.ack.to_be_bytes());
        for (i, w) in self.sack.iter().enumerate() {
            out[24 + 8 * i..32 + 8 * i].copy_from_slice(&w.to_be_bytes());
        }
        out[56..60].copy_from_slice(&self.window.to_be_bytes());
        out[60..62].copy_from_slice(&(len as u16).to_be_bytes());
        out[62..64].copy_from_slice(&[0, 0]);
    }

    /// Parse and validate one datagram; returns the header and payload.
    pub fn decode(d: &[u8]) -> Result<(Header, &[u8]), PacketError> {
        if d.len() < HEADER {
            return Err(PacketError::Short(d.len()));
        }
        let u16_at = |i: usize| u16::from_be_bytes([d[i], d[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes(d[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_be_bytes(d[i..i + 8].try_into().expect("8 bytes"));
        let magic = u16_at(0);
        if magic != MAGIC {
            return Err(PacketError::Magic(magic));
        }
        if d[2] != VERSION {
            return Err(PacketError::Version(d[2]));
        }
        let kind = Kind::from_u8(d[3])?;
        let len = u16_at(60) as usize;
        let payload = &d[HEADER..];
        if payload.len() != len {
            return Err(PacketError::Length {
                field: len,
                actual: payload.len(),
            });
        }
        let ok = match kind {
            Kind::Data => (1..=PAYLOAD_LIMIT).contains(&len),
            _ => len == 0,
        };
        if !ok {
            return Err(PacketError::Payload { kind, len });
        }
        let h = Header {
            kind,
            conn: u32_at(4),
            seq: u64_at(8),
            ack: u64_at(16),
            sack: [u64_at(24), u64_at(32), u64_at(40), u64_at(48)],
            window: u32_at(56),
        };
        Ok((h, payload))
    }
}

/// Bounds and timers of one connection.
#[derive(Clone, Debug)]
pub struct ConnConfig {
    /// Largest payload per packet.
    pub mss: usize,
    /// Packets the send buffer holds (sent-but-unacknowledged plus queued).
    pub send_buffer: usize,
    /// Packets the receiver buffers (out of order plus not yet read).
    pub recv_window: usize,
    /// Congestion window at start, packets.
    pub cwnd_initial: f64,
    /// Retransmission timeout before the first RTT sample.
    pub rto_initial: Duration,
    /// Smallest retransmission timeout.
    pub rto_min: Duration,
    /// Largest retransmission timeout.
    pub rto_max: Duration,
    /// Give up when nothing was heard from the peer for this long while
    /// waiting for an answer.
    pub dead_after: Duration,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            mss: 1500 - 20 - 8 - HEADER,
            send_buffer: 1024,
            recv_window: 1024,
            cwnd_initial: 64.0,
            rto_initial: Duration::from_millis(50),
            rto_min: Duration::from_millis(5),
            rto_max: Duration::from_millis(1000),
            dead_after: Duration::from_secs(10),
        }
    }
}

/// Connection state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// Both sides may send.
    Established,
    /// Finished; the reason.
    Closed(CloseReason),
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum CloseReason {
    /// The peer sent RESET.
    #[error("reset by peer")]
    Reset,
    /// Nothing heard from the peer for `dead_after`.
    #[error("peer unreachable (no answer within the dead-peer timeout)")]
    Unreachable,
    /// Closed locally.
    #[error("closed locally")]
    Local,
}

#[derive(Debug)]
struct Sent {
    seq: u64,
    data: Vec<u8>,
    /// Never transmitted yet.
    fresh: bool,
    /// Last transmission.
    sent_at: Instant,
    tries: u32,
    sacked: bool,
    /// Marked lost: resend at the next opportunity.
    resend: bool,
}

/// Counters a connection reports to the transport's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Data packets sent for the first time.
    pub data_sent: u64,
    /// Data packets sent again.
    pub retransmits: u64,
    /// Retransmission timeouts that fired.
    pub timeouts: u64,
    /// Data packets received in order or filling a hole.
    pub data_received: u64,
    /// Data packets received twice.
    pub data_discarded: u64,
    /// Data packets dropped because the receive window was full.
    pub data_over_window: u64,
}

/// One reliable connection (see the module docs).
#[derive(Debug)]
pub struct Conn {
    cfg: ConnConfig,
    id: u32,
    state: State,
    initiator: bool,
    /// A control packet (SYN, SYN-ACK, cookie echo ACK or RESET) waits to
    /// be sent.
    control: Option<Kind>,
    /// The listener's cookie, echoed until it answers (initiator only).
    cookie: Option<u64>,
    syn_deadline: Option<Instant>,
    last_heard: Instant,
    // --- send side ---
    /// Packets from `snd_una` on: sent and unacknowledged, then fresh ones.
    sendq: VecDeque<Sent>,
    snd_una: u64,
    next_seq: u64,
    cwnd: f64,
    /// Sequence up to which a loss does not halve the window again.
    recovery_end: u64,
    /// A retransmission timeout fired at this time and resent only the
    /// packet with this sequence number; its acknowledgement decides about
    /// the rest.
    rto_probe: Option<(u64, Instant)>,
    peer_window: u64,
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    // --- receive side ---
    rcv_next: u64,
    ooo: BTreeMap<u64, Vec<u8>>,
    ready: VecDeque<Vec<u8>>,
    ready_off: usize,
    ack_due: bool,
    /// Window we advertised last (to send an update when the reader frees
    /// space after a stall).
    advertised: u64,
    stats: ConnStats,
}

impl Conn {
    fn new(cfg: ConnConfig, id: u32, now: Instant, initiator: bool) -> Conn {
        let cfg = ConnConfig {
            mss: cfg.mss.clamp(1, PAYLOAD_LIMIT),
            send_buffer: cfg.send_buffer.max(1),
            recv_window: cfg.recv_window.max(1),
            ..cfg
        };
        Conn {
            rto: cfg.rto_initial,
            cwnd: cfg.cwnd_initial.max(CWND_MIN),
            peer_window: cfg.recv_window as u64,
            advertised: cfg.recv_window as u64,
            cfg,
            id,
            state: if initiator {
                State::SynSent
            } else {
                State::Established
            },
            initiator,
            control: Some(if initiator { Kind::Syn } else { Kind::SynAck }),
            cookie: None,
            syn_deadline: None,
            last_heard: now,
            sendq: VecDeque::new(),
            snd_una: 0,
            next_seq: 0,
            recovery_end: 0,
            rto_probe: None,
            srtt: None,
            rttvar: Duration::ZERO,
            rcv_next: 0,
            ooo: BTreeMap::new(),
            ready: VecDeque::new(),
            ready_off: 0,
            ack_due: false,
            stats: ConnStats::default(),
        }
    }

    /// Open a connection (we send SYN).
    pub fn connect(cfg: ConnConfig, id: u32, now: Instant) -> Conn {
        Conn::new(cfg, id, now, true)
    }

    /// Accept a connection whose SYN arrived (we send SYN-ACK).
    pub fn accept(cfg: ConnConfig, id: u32, now: Instant) -> Conn {
        Conn::new(cfg, id, now, false)
    }

    /// Accept a connection whose initiator echoed our cookie (our SYN-ACK
    /// went out statelessly): established, and an ACK confirms it.
    pub fn accept_echoed(cfg: ConnConfig, id: u32, now: Instant) -> Conn {
        let mut c = Conn::new(cfg, id, now, false);
        c.control = None;
        c.ack_due = true;
        c
    }

    /// Connection id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Whether both sides may send.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Counters so far.
    pub fn stats(&self) -> ConnStats {
        self.stats
    }

    /// Largest payload per packet.
    pub fn mss(&self) -> usize {
        self.cfg.mss
    }

    /// Smoothed round-trip time, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Bytes the writer may add now (0: wait for acknowledgements).
    pub fn send_space(&self) -> usize {
        if matches!(self.state, State::Closed(_)) {
            return 0;
        }
        let free_pkts = self.cfg.send_buffer.saturating_sub(self.sendq.len());
        let tail_room = match self.sendq.back() {
            Some(s) if s.fresh => self.cfg.mss - s.data.len(),
            _ => 0,
        };
        free_pkts * self.cfg.mss + tail_room
    }

    /// Queue stream bytes; returns how many were taken (at most
    /// [`Conn::send_space`]). Small writes fill the last unsent packet.
    pub fn write(&mut self, mut bytes: &[u8], now: Instant) -> usize {
        if matches!(self.state, State::Closed(_)) {
            return 0;
        }
        let mut taken = 0;
        if let Some(s) = self.sendq.back_mut() {
            if s.fresh && s.data.len() < self.cfg.mss {
                let n = (self.cfg.mss - s.data.len()).min(bytes.len());
                s.data.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                taken += n;
            }
        }
        while !bytes.is_empty() && self.sendq.len() < self.cfg.send_buffer {
            let n = self.cfg.mss.min(bytes.len());
            let mut data = Vec::with_capacity(self.cfg.mss);
            data.extend_from_slice(&bytes[..n]);
            self.sendq.push_back(Sent {
                seq: self.next_seq,
                data,
                fresh: true,
                sent_at: now,
                tries: 0,
                sacked: false,
                resend: false,
            });
            self.next_seq += 1;
            bytes = &bytes[n..];
            taken += n;
        }
        taken
    }

    /// Stream bytes received in order and not yet read.
    pub fn readable(&self) -> usize {
        self.ready.iter().map(Vec::len).sum::<usize>() - self.ready_off
    }

    /// Move received stream bytes into `out`; returns how many.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(front) = self.ready.front() else {
                break;
            };
            let avail = &front[self.ready_off..];
            let k = avail.len().min(out.len() - n);
            out[n..n + k].copy_from_slice(&avail[..k]);
            n += k;
            self.ready_off += k;
            if self.ready_off == front.len() {
                self.ready.pop_front();
                self.ready_off = 0;
            }
        }
        if n > 0 {
            // Tell a sender that saw a (nearly) closed window that it may
            // go on.
            let w = self.window();
            if self.advertised < (self.cfg.recv_window as u64) / 2 && w > self.advertised {
                self.ack_due = true;
            }
        }
        n
    }

    /// End the connection from our side: a RESET goes out next.
    pub fn close(&mut self) {
        if !matches!(self.state, State::Closed(_)) {
            self.state = State::Closed(CloseReason::Local);
            self.control = Some(Kind::Reset);
        }
        self.sendq.clear();
    }

    fn window(&self) -> u64 {
        (self.cfg.recv_window as u64).saturating_sub((self.ooo.len() + self.ready.len()) as u64)
    }

    fn sack_bits(&self) -> [u64; SACK_WORDS] {
        let mut bits = [0u64; SACK_WORDS];
        for &s in self
            .ooo
            .range(self.rcv_next + 1..self.rcv_next + 1 + SACK_BITS)
            .map(|(k, _)| k)
        {
            let off = s - self.rcv_next - 1;
            bits[(off / 64) as usize] |= 1 << (off % 64);
        }
        bits
    }

    /// Handle one packet addressed to this connection.
    pub fn on_packet(&mut self, h: &Header, payload: &[u8], now: Instant) {
        if h.conn != self.id {
            return;
        }
        if let State::Closed(_) = self.state {
            return;
        }
        self.last_heard = now;
        match h.kind {
            Kind::Reset => {
                self.state = State::Closed(CloseReason::Reset);
                self.sendq.clear();
                return;
            }
            Kind::Syn => {
                // Our SYN-ACK was lost: send it again.
                if !self.initiator {
                    self.control = Some(Kind::SynAck);
                }
                return;
            }
            Kind::SynAck => {
                if self.initiator && self.state == State::SynSent {
                    if h.seq != 0 {
                        // A stateless listener: echo its cookie (and keep
                        // echoing until it answers); no data before.
                        self.cookie = Some(h.seq);
                        self.control = Some(Kind::Ack);
                        self.syn_deadline = None;
                    } else {
                        self.state = State::Established;
                        self.syn_deadline = None;
                        self.control = None;
                    }
                }
                return;
            }
            Kind::Data | Kind::Ack => {
                if self.initiator && self.state == State::SynSent {
                    // The listener has the connection (it answered our
                    // echo), or its SYN-ACK was lost but it talks to us.
                    self.state = State::Established;
                    self.syn_deadline = None;
                    self.control = None;
                    self.cookie = None;
                }
                if !self.initiator && h.kind == Kind::Ack && h.seq != 0 {
                    // A cookie echo again: our confirming ACK was lost.
                    self.ack_due = true;
                }
            }
        }
        self.on_ack(h, now);
        if h.kind == Kind::Data {
            self.on_data(h.seq, payload);
        }
    }

    fn on_ack(&mut self, h: &Header, now: Instant) {
        // Ignore acknowledgements of packets never sent.
        let ack = h.ack.min(self.next_seq);
        self.peer_window = u64::from(h.window);
        let mut newly = 0u64;
        let mut rtt_sample = None;
        while self.snd_una < ack {
            let Some(s) = self.sendq.pop_front() else {
                break;
            };
            if s.fresh {
                // Cannot be acknowledged before it was sent: put it back.
                self.sendq.push_front(s);
                break;
            }
            if s.tries == 1 && !s.sacked {
                rtt_sample = Some(now.saturating_duration_since(s.sent_at));
            }
            newly += 1;
            self.snd_una += 1;
        }
        // Selective acknowledgements.
        let mut highest_sacked: Option<(u64, Instant)> = None;
        if h.sack.iter().any(|w| *w != 0) {
            for s in self.sendq.iter_mut() {
                if s.fresh {
                    break;
                }
                let Some(off) = s.seq.checked_sub(ack + 1) else {
                    continue;
                };
                if off >= SACK_BITS {
                    break;
                }
                if h.sack[(off / 64) as usize] & (1 << (off % 64)) != 0 {
                    if !s.sacked {
                        s.sacked = true;
                        s.resend = false;
                        newly += 1;
                        if s.tries == 1 {
                            rtt_sample = Some(now.saturating_duration_since(s.sent_at));
                        }
                    }
                    highest_sacked = Some((s.seq, s.sent_at));
                }
            }
        }
        if let Some(r) = rtt_sample {
            self.rtt_update(r);
        }
        // After a timeout only the oldest packet was resent. Now that the
        // peer answered, what it still lacks from before the timeout is
        // lost (and what it acknowledged above was only an ACK lost on the
        // way back: nothing to resend).
        let probe_answered = self.rto_probe.is_some_and(|(seq, _)| {
            seq < self.snd_una || self.sendq.iter().any(|s| s.seq == seq && s.sacked)
        });
        if probe_answered {
            if let Some((_, t)) = self.rto_probe.take() {
                for s in self.sendq.iter_mut() {
                    if s.fresh {
                        break;
                    }
                    if s.seq > ack + SACK_BITS {
                        break;
                    }
                    if !s.sacked && s.sent_at < t {
                        s.resend = true;
                    }
                }
            }
        }
        if newly > 0 {
            // Additive increase: slow start below 2x the initial window,
            // one packet per window above.
            for _ in 0..newly {
                if self.cwnd < 2.0 * self.cfg.cwnd_initial {
                    self.cwnd += 1.0;
                } else {
                    self.cwnd += 1.0 / self.cwnd;
                }
            }
            self.cwnd = self.cwnd.min(self.cfg.send_buffer as f64);
        }
        // Fast retransmit: a hole with DUP_THRESH acknowledged packets above
        // it that were sent after it.
        if let Some((hi, hi_sent)) = highest_sacked {
            let mut lost = false;
            for s in self.sendq.iter_mut() {
                if s.fresh || s.seq + DUP_THRESH > hi {
                    break;
                }
                if !s.sacked && !s.resend && s.sent_at <= hi_sent {
                    s.resend = true;
                    lost = true;
                }
            }
            if lost {
                self.on_loss();
            }
        }
    }

    fn on_loss(&mut self) {
        if self.snd_una >= self.recovery_end {
            self.cwnd = (self.cwnd / 2.0).max(CWND_MIN);
            self.recovery_end = self.next_seq;
        }
    }

    fn rtt_update(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(s) => {
                let diff = s.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((s * 7 + r) / 8);
            }
        }
        let s = self.srtt.unwrap_or(r);
        self.rto = (s + (self.rttvar * 4).max(Duration::from_micros(200)))
            .clamp(self.cfg.rto_min, self.cfg.rto_max);
    }

    fn on_data(&mut self, seq: u64, payload: &[u8]) {
        self.ack_due = true;
        if seq < self.rcv_next || self.ooo.contains_key(&seq) {
            self.stats.data_discarded += 1;
            return;
        }
        // Room for it? The window counts out-of-order and unread packets.
        if seq >= self.rcv_next + self.cfg.recv_window as u64 || self.window() == 0 {
            self.stats.data_over_window += 1;
            return;
        }
        self.stats.data_received += 1;
        if seq == self.rcv_next {
            self.ready.push_back(payload.to_vec());
            self.rcv_next += 1;
            while let Some(p) = self.ooo.remove(&self.rcv_next) {
                self.ready.push_back(p);
                self.rcv_next += 1;
            }
        } else {
            self.ooo.insert(seq, payload.to_vec());
        }
    }

    /// Fire timers: SYN retries, retransmission timeout, dead peer.
    pub fn on_timer(&mut self, now: Instant) {
        if let State::Closed(_) = self.state {
            return;
        }
        let waiting = self.state == State::SynSent || self.sendq.iter().any(|s| !s.fresh);
        if waiting && now.saturating_duration_since(self.last_heard) >= self.cfg.dead_after {
            self.state = State::Closed(CloseReason::Unreachable);
            self.sendq.clear();
            return;
        }
        if self.state == State::SynSent {
            if self.syn_deadline.is_some_and(|d| now >= d) {
                self.control = Some(if self.cookie.is_some() {
                    Kind::Ack
                } else {
                    Kind::Syn
                });
                self.rto = (self.rto * 2).min(self.cfg.rto_max);
                self.syn_deadline = None;
            }
            return;
        }
        // Retransmission timeout: resend the oldest unacknowledged packet
        // that has been out longer than the RTO (as TCP does); its
        // acknowledgement tells whether the rest were lost or only their
        // acknowledgements were (see `on_ack`).
        // The timer runs for the first packet not yet acknowledged (those
        // above it may simply lie beyond the acknowledgement bitmap).
        let rto = self.rto;
        let mut fired = None;
        if let Some(s) = self
            .sendq
            .iter_mut()
            .take_while(|s| !s.fresh)
            .find(|s| !s.sacked)
        {
            if !s.resend && now.saturating_duration_since(s.sent_at) >= rto {
                s.resend = true;
                fired = Some(s.seq);
            }
        }
        if let Some(seq) = fired {
            self.rto_probe = Some((seq, now));
            self.stats.timeouts += 1;
            self.on_loss();
            self.rto = (self.rto * 2).min(self.cfg.rto_max);
        }
    }

    /// When [`Conn::on_timer`] next has something to do.
    pub fn next_timer(&self) -> Option<Instant> {
        match self.state {
            State::Closed(_) => None,
            State::SynSent => Some(
                self.syn_deadline
                    .unwrap_or(self.last_heard)
                    .min(self.last_heard + self.cfg.dead_after),
            ),
            State::Established => {
                let first = self
                    .sendq
                    .iter()
                    .take_while(|s| !s.fresh)
                    .find(|s| !s.sacked)?;
                if first.resend {
                    return Some(self.last_heard + self.cfg.dead_after);
                }
                Some((first.sent_at + self.rto).min(self.last_heard + self.cfg.dead_after))
            }
        }
    }

    fn header(&self, kind: Kind, seq: u64) -> Header {
        Header {
            kind,
            conn: self.id,
            seq,
            ack: self.rcv_next,
            sack: self.sack_bits(),
            window: self.window().min(u64::from(u32::MAX)) as u32,
        }
    }

    /// Write the next packet to send into `out` (at least `HEADER + mss`
    /// bytes); returns its length, or None when nothing is due. Call until
    /// None after every input.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if let Some(kind) = self.control.take() {
            let echo = kind == Kind::Ack && self.initiator && self.state == State::SynSent;
            if kind == Kind::Syn || echo {
                self.syn_deadline = Some(now + self.rto);
            }
            let seq = if echo { self.cookie.unwrap_or(0) } else { 0 };
            let h = self.header(kind, seq);
            h.encode(0, out);
            return Some(HEADER);
        }
        if self.state != State::Established {
            return None;
        }
        // Resends first (not limited by the window: they replace packets
        // presumed gone), then new packets within the window.
        let limit = (self.cwnd as u64)
            .min(self.peer_window.max(1))
            .min(self.cfg.send_buffer as u64);
        let mut pick = None;
        for (i, s) in self.sendq.iter().enumerate() {
            if s.fresh {
                if s.seq < self.snd_una + limit && pick.is_none() {
                    pick = Some(i);
                }
                break;
            }
            if s.resend {
                pick = Some(i);
                break;
            }
        }
        if let Some(i) = pick {
            let (seq, len, was_fresh) = {
                let s = &self.sendq[i];
                (s.seq, s.data.len(), s.fresh)
            };
            let h = self.header(Kind::Data, seq);
            h.encode(len, out);
            let s = &mut self.sendq[i];
            out[HEADER..HEADER + len].copy_from_slice(&s.data);
            s.fresh = false;
            s.resend = false;
            s.sent_at = now;
            s.tries += 1;
            if was_fresh {
                self.stats.data_sent += 1;
            } else {
                self.stats.retransmits += 1;
            }
            self.ack_due = false;
            self.advertised = self.window();
            return Some(HEADER + len);
        }
        if self.ack_due {
            self.ack_due = false;
            self.advertised = self.window();
            let h = self.header(Kind::Ack, 0);
            h.encode(0, out);
            return Some(HEADER);
        }
        None
    }

    /// Unacknowledged or unsent packets.
    pub fn unacked(&self) -> usize {
        self.sendq.len()
    }
}

/// The stateless SYN-ACK answering `syn` with `cookie`, advertising
/// `window` packets.
pub fn syn_ack_for(syn: &Header, cookie: u64, window: u32, out: &mut [u8]) -> usize {
    Header {
        kind: Kind::SynAck,
        conn: syn.conn,
        seq: cookie,
        ack: 0,
        sack: [0; SACK_WORDS],
        window,
    }
    .encode(0, out);
    HEADER
}

/// A SYN cookie: a keyed hash of the source address, the connection id
/// and the time slot (`slot`, e.g. seconds / 64), never 0. A listener
/// accepts the cookies of the current and the previous slot.
pub fn syn_cookie(secret: &[u8; 32], src: std::net::SocketAddrV4, conn: u32, slot: u64) -> u64 {
    let mut h = plume_crypto::Hasher::new(plume_crypto::Domain::Handshake);
    h.update(b"plume dgram syn cookie")
        .update(secret)
        .update(&src.ip().octets())
        .update(&src.port().to_be_bytes())
        .update(&conn.to_be_bytes())
        .update_u64(slot);
    let d = h.finalize();
    u64::from_be_bytes(d.0[..8].try_into().expect("8 bytes")) | 1
}

/// A RESET answering a packet for a connection we do not have. None for a
/// RESET (never answer one with another).
pub fn reset_for(h: &Header, out: &mut [u8]) -> Option<usize> {
    if h.kind == Kind::Reset {
        return None;
    }
    Header {
        kind: Kind::Reset,
        conn: h.conn,
        seq: 0,
        ack: 0,
        sack: [0; SACK_WORDS],
        window: 0,
    }
    .encode(0, out);
    Some(HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn header_roundtrip_and_rejects() {
        let h = Header {
            kind: Kind::Data,
            conn: 7,
            seq: 1 << 40,
            ack: 99,
            sack: [0b1011, 0, 1 << 63, 7],
            window: 512,
        };
        let mut b = vec![0u8; HEADER + 3];
        h.encode(3, &mut b);
        b[HEADER..].copy_from_slice(b"abc");
        let (g, p) = Header::decode(&b).unwrap();
        assert_eq!(g, h);
        assert_eq!(p, b"abc");
        assert_eq!(Header::decode(&b[..10]), Err(PacketError::Short(10)));
        assert!(matches!(
            Header::decode(&b[..HEADER + 2]),
            Err(PacketError::Length { .. })
        ));
        let mut bad = b.clone();
        bad[0] = 0;
        assert!(matches!(Header::decode(&bad), Err(PacketError::Magic(_))));
        let mut bad = b.clone();
        bad[2] = 9;
        assert_eq!(Header::decode(&bad), Err(PacketError::Version(9)));
        let mut bad = b.clone();
        bad[3] = 77;
        assert_eq!(Header::decode(&bad), Err(PacketError::Kind(77)));
        // An ACK must not carry a payload; DATA must.
        let mut ack = b.clone();
        ack[3] = Kind::Ack as u8;
        assert!(matches!(
            Header::decode(&ack),
            Err(PacketError::Payload { .. })
        ));
        let mut empty = vec![0u8; HEADER];
        h.encode(0, &mut empty);
        assert!(matches!(
            Header::decode(&empty),
            Err(PacketError::Payload { .. })
        ));
    }

    proptest! {
        #[test]
        fn decode_never_panics(d in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Header::decode(&d);
        }
    }

    /// A deterministic two-ended network: loss, duplication and reordering
    /// from a seed, a fixed one-way delay, a simulated clock.
    struct Net {
        rng: rand_chacha::ChaCha8Rng,
        loss: f64,
        dup: f64,
        reorder: f64,
        /// In flight: (deliver at, to side, bytes).
        wire: Vec<(Instant, usize, Vec<u8>)>,
        now: Instant,
        delay: Duration,
        count: u64,
        every: u64,
    }

    impl Net {
        fn send(&mut self, to: usize, pkt: &[u8]) {
            self.count += 1;
            if self.every > 0 && self.count % self.every == 0 {
                return;
            }
            if self.rng.gen_bool(self.loss) {
                return;
            }
            let mut at = self.now + self.delay;
            if self.rng.gen_bool(self.reorder) {
                at += Duration::from_micros(self.rng.gen_range(0..3000));
            }
            self.wire.push((at, to, pkt.to_vec()));
            if self.rng.gen_bool(self.dup) {
                self.wire.push((at + self.delay, to, pkt.to_vec()));
            }
        }
    }

    /// Transfer `total` bytes each way; returns what each side read and the
    /// stats.
    fn transfer(seed: u64, loss: f64, total: usize) -> (Vec<u8>, Vec<u8>, [ConnStats; 2]) {
        transfer_with(seed, loss, 0.02, 0.1, 0, false, total)
    }

    fn transfer_with(
        seed: u64,
        loss: f64,
        dup: f64,
        reorder: f64,
        every: u64,
        default_cfg: bool,
        total: usize,
    ) -> (Vec<u8>, Vec<u8>, [ConnStats; 2]) {
        let start = Instant::now();
        let mut net = Net {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            loss,
            dup,
            reorder,
            wire: Vec::new(),
            now: start,
            delay: Duration::from_micros(500),
            count: 0,
            every,
        };
        let cfg = if default_cfg {
            ConnConfig::default()
        } else {
            ConnConfig {
                mss: 200,
                send_buffer: 64,
                recv_window: 48,
                ..ConnConfig::default()
            }
        };
        let mut c = [
            Conn::connect(cfg.clone(), 42, start),
            Conn::accept(cfg, 42, start),
        ];
        let data: [Vec<u8>; 2] = [
            (0..total).map(|i| (i * 7 + 1) as u8).collect(),
            (0..total).map(|i| (i * 13 + 5) as u8).collect(),
        ];
        let mut written = [0usize; 2];
        let mut got: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        let mut buf = vec![0u8; HEADER + c[0].mss()];
        let mut rbuf = vec![0u8; 333];
        // The acceptor exists only after the SYN arrives in real life; here
        // it starts established, which the protocol must tolerate.
        for _step in 0..2_000_000 {
            for side in 0..2 {
                if c[side].is_established() && written[side] < total {
                    let n = c[side].write(&data[side][written[side]..], net.now);
                    written[side] += n;
                }
                loop {
                    let n = c[side].read(&mut rbuf);
                    if n == 0 {
                        break;
                    }
                    got[side].extend_from_slice(&rbuf[..n]);
                }
                c[side].on_timer(net.now);
                while let Some(n) = c[side].poll_transmit(net.now, &mut buf) {
                    let pkt = buf[..n].to_vec();
                    net.send(1 - side, &pkt);
                }
            }
            if got[0].len() == total
                && got[1].len() == total
                && c[0].unacked() == 0
                && c[1].unacked() == 0
            {
                break;
            }
            // Advance the clock to the next event.
            let next_wire = net.wire.iter().map(|w| w.0).min();
            let next_timer = c.iter().filter_map(|x| x.next_timer()).min();
            let next = match (next_wire, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => net.now + Duration::from_micros(100),
            };
            net.now = next.max(net.now + Duration::from_micros(10));
            let now = net.now;
            let (due, rest): (Vec<_>, Vec<_>) = net.wire.drain(..).partition(|w| w.0 <= now);
            net.wire = rest;
            for (_, to, pkt) in due {
                let (h, p) = Header::decode(&pkt).unwrap();
                c[to].on_packet(&h, p, now);
            }
            assert!(
                !matches!(c[0].state(), State::Closed(_))
                    && !matches!(c[1].state(), State::Closed(_)),
                "seed {seed}: connection died: {:?} {:?}",
                c[0].state(),
                c[1].state()
            );
        }
        // Side 0 reads what side 1 wrote and vice versa.
        assert_eq!(got[0], data[1], "seed {seed}: side 0 stream differs");
        assert_eq!(got[1], data[0], "seed {seed}: side 1 stream differs");
        (got[0].clone(), got[1].clone(), [c[0].stats(), c[1].stats()])
    }

    #[test]
    fn without_reordering_nothing_is_resent_needlessly() {
        // Default bounds (windows far wider than one bitmap), every 9th
        // datagram dropped, FIFO delivery: each loss costs about one
        // retransmission and the receiver never sees a duplicate.
        let (_, _, st) = transfer_with(7, 0.0, 0.0, 0.0, 9, true, 300_000);
        for (side, s) in st.iter().enumerate() {
            assert!(s.data_discarded <= s.retransmits / 10, "side {side}: {s:?}");
            assert!(
                s.retransmits > 0 && s.retransmits <= s.data_sent / 4,
                "side {side}: {s:?}"
            );
        }
    }

    #[test]
    fn lossless_transfer_needs_no_retransmits() {
        let (_, _, st) = transfer(1, 0.0, 50_000);
        // Duplicates and reordering alone cause no timeouts beyond the
        // occasional spurious one; the data is exact (checked inside).
        assert!(st[0].data_sent >= 250);
    }

    #[test]
    fn survives_loss_reordering_and_duplication() {
        for seed in 0..20 {
            let loss = [0.01, 0.05, 0.2][seed as usize % 3];
            let (_, _, st) = transfer(seed, loss, 30_000);
            assert!(
                st[0].retransmits + st[1].retransmits > 0,
                "seed {seed}: loss {loss} but nothing was resent"
            );
        }
    }

    #[test]
    fn syn_is_retried_and_dead_peer_detected() {
        let t0 = Instant::now();
        let mut c = Conn::connect(ConnConfig::default(), 5, t0);
        let mut buf = vec![0u8; 2000];
        assert_eq!(c.poll_transmit(t0, &mut buf), Some(HEADER));
        assert_eq!(Header::decode(&buf[..HEADER]).unwrap().0.kind, Kind::Syn);
        assert_eq!(c.poll_transmit(t0, &mut buf), None);
        let t1 = c.next_timer().unwrap();
        c.on_timer(t1);
        assert_eq!(c.poll_transmit(t1, &mut buf), Some(HEADER), "SYN resent");
        // Nobody answers: after dead_after the connection is closed.
        c.on_timer(t0 + Duration::from_secs(11));
        assert_eq!(c.state(), &State::Closed(CloseReason::Unreachable));
        assert_eq!(c.write(b"x", t0), 0);
    }

    /// All packets `c` has due, decoded.
    fn drain(c: &mut Conn, now: Instant) -> Vec<(Header, Vec<u8>)> {
        let mut out = vec![0u8; HEADER + PAYLOAD_LIMIT];
        let mut v = Vec::new();
        while let Some(n) = c.poll_transmit(now, &mut out) {
            let (h, p) = Header::decode(&out[..n]).expect("our own packet");
            v.push((h, p.to_vec()));
        }
        v
    }

    #[test]
    fn a_cookie_handshake_sends_no_data_before_the_listener_keeps_state() {
        let t0 = Instant::now();
        let src: std::net::SocketAddrV4 = "127.0.0.9:4000".parse().unwrap();
        let secret = [5u8; 32];
        let mut a = Conn::connect(ConnConfig::default(), 77, t0);
        assert_eq!(a.write(b"hello", t0), 5);
        let syn = drain(&mut a, t0);
        assert_eq!(syn.len(), 1);
        assert_eq!(syn[0].0.kind, Kind::Syn);
        // The listener answers statelessly.
        let cookie = syn_cookie(&secret, src, 77, 0);
        assert_ne!(cookie, 0);
        assert_ne!(cookie, syn_cookie(&secret, src, 78, 0), "bound to the id");
        assert_ne!(cookie, syn_cookie(&[6; 32], src, 77, 0), "bound to the key");
        let mut r = [0u8; HEADER];
        syn_ack_for(&syn[0].0, cookie, 64, &mut r);
        let (synack, _) = Header::decode(&r).unwrap();
        a.on_packet(&synack, &[], t0);
        assert!(
            !a.is_established(),
            "not before the listener has the connection"
        );
        let echo = drain(&mut a, t0);
        assert_eq!(echo.len(), 1, "only the echo, no data: {echo:?}");
        assert_eq!((echo[0].0.kind, echo[0].0.seq), (Kind::Ack, cookie));
        // The echo is lost: it is sent again on the timer.
        let later = t0 + Duration::from_secs(2);
        a.on_timer(later);
        let again = drain(&mut a, later);
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].0.kind, again[0].0.seq), (Kind::Ack, cookie));
        // The listener takes it: state now, and an ACK confirms it.
        let mut l = Conn::accept_echoed(ConnConfig::default(), 77, later);
        l.on_packet(&again[0].0, &[], later);
        assert!(l.is_established());
        let confirm = drain(&mut l, later);
        assert_eq!(confirm.len(), 1);
        assert_eq!(confirm[0].0.kind, Kind::Ack);
        a.on_packet(&confirm[0].0, &[], later);
        assert!(a.is_established());
        let data = drain(&mut a, later);
        assert!(data
            .iter()
            .any(|(h, p)| h.kind == Kind::Data && p == b"hello"));
        // A stateful listener's SYN-ACK (seq 0) establishes at once.
        let mut b = Conn::connect(ConnConfig::default(), 78, t0);
        let syn = drain(&mut b, t0);
        syn_ack_for(&syn[0].0, 0, 64, &mut r);
        b.on_packet(&Header::decode(&r).unwrap().0, &[], t0);
        assert!(b.is_established());
    }

    #[test]
    fn send_buffer_bounds_writes_and_reset_closes() {
        let t0 = Instant::now();
        let cfg = ConnConfig {
            mss: 100,
            send_buffer: 4,
            ..ConnConfig::default()
        };
        let mut a = Conn::accept(cfg, 1, t0);
        assert_eq!(a.send_space(), 400);
        assert_eq!(a.write(&[1u8; 1000], t0), 400);
        assert_eq!(a.send_space(), 0);
        assert_eq!(a.write(&[1u8; 10], t0), 0);
        let rst = Header {
            kind: Kind::Reset,
            conn: 1,
            seq: 0,
            ack: 0,
            sack: [0; SACK_WORDS],
            window: 0,
        };
        a.on_packet(&rst, &[], t0);
        assert_eq!(a.state(), &State::Closed(CloseReason::Reset));
        let mut out = [0u8; HEADER];
        assert_eq!(reset_for(&rst, &mut out), None, "never answer a RESET");
    }

    #[test]
    fn receive_window_bounds_buffering() {
        let t0 = Instant::now();
        let cfg = ConnConfig {
            recv_window: 4,
            ..ConnConfig::default()
        };
        let mut r = Conn::accept(cfg, 3, t0);
        for seq in 0..10u64 {
            let h = Header {
                kind: Kind::Data,
                conn: 3,
                seq,
                ack: 0,
                sack: [0; SACK_WORDS],
                window: 100,
            };
            r.on_packet(&h, b"zz", t0);
        }
        // Four packets taken, the rest discarded until the reader drains.
        assert_eq!(r.readable(), 8);
        assert_eq!(r.stats().data_over_window, 6);
        let mut out = [0u8; 100];
        assert_eq!(r.read(&mut out), 8);
        let mut buf = vec![0u8; 2000];
        let mut acks = Vec::new();
        while let Some(n) = r.poll_transmit(t0, &mut buf) {
            acks.push(Header::decode(&buf[..n]).unwrap().0);
        }
        let last = acks.last().expect("an acknowledgement");
        assert_eq!(last.ack, 4);
        assert_eq!(last.window, 4);
    }
}
