//! Ethernet, ARP, IPv4 and UDP for the kernel-bypass devices: pure
//! builders and a validating parser, and [`EthLink`], which turns a raw
//! [`FrameIo`] into a [`DatagramIo`] for one local address and port.
//!
//! Only what validator links need: IPv4 without options on transmit (any
//! header length on receive), no fragmentation at the IP level (the
//! reliability layer keeps packets under the MTU), UDP checksums computed
//! on transmit (not verified on receive: see [`parse`]). Next hops on the local subnet are
//! resolved directly, others through the configured gateway.
//!
//! Neighbour (MAC) resolution has two modes. [`Neighbours::OwnArp`] answers
//! and sends ARP itself — for a DPDK port that the kernel does not see.
//! [`Neighbours::Kernel`] reads the kernel's neighbour table and asks the
//! kernel to resolve a missing entry by sending it a datagram — for AF_XDP,
//! whose XDP program hands ARP to the kernel. Both also learn the MAC of
//! every peer whose UDP datagrams arrive.

use super::device::{DatagramIo, FrameIo};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};
use thiserror::Error;

/// Ethernet header bytes (no VLAN tag).
pub const ETH_HDR: usize = 14;
/// IPv4 header bytes without options.
pub const IPV4_HDR: usize = 20;
/// UDP header bytes.
pub const UDP_HDR: usize = 8;
/// All headers in front of a datagram payload.
pub const UDP_OVERHEAD: usize = ETH_HDR + IPV4_HDR + UDP_HDR;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Bytes of an ARP frame (Ethernet + ARP for IPv4), before padding.
pub const ARP_FRAME: usize = ETH_HDR + 28;
/// Ethernet minimum frame length without FCS.
pub const ETH_MIN: usize = 60;
/// Most neighbours remembered.
pub const NEIGH_MAX: usize = 1024;
/// Least time between two resolution attempts for one address.
pub const RESOLVE_EVERY: Duration = Duration::from_millis(100);
/// Broadcast MAC.
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// Why a frame was not understood.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EthError {
    /// Too short for the headers it claims.
    #[error("truncated {0} header")]
    Truncated(&'static str),
    /// Bad IPv4 header.
    #[error("bad IPv4 header: {0}")]
    Ipv4(&'static str),
    /// IPv4 header checksum mismatch.
    #[error("IPv4 header checksum mismatch")]
    Ipv4Checksum,
    /// UDP length field disagrees with the IP packet.
    #[error("UDP length {udp} does not fit the IP payload of {ip}")]
    UdpLength {
        /// UDP length field.
        udp: usize,
        /// IP payload length.
        ip: usize,
    },
}

/// A parsed frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A UDP datagram.
    Udp {
        /// Sender's MAC.
        src_mac: [u8; 6],
        /// Source address.
        src: SocketAddrV4,
        /// Destination address.
        dst: SocketAddrV4,
        /// Payload.
        payload: &'a [u8],
    },
    /// An ARP request (op 1) or reply (op 2) for IPv4 over Ethernet.
    Arp {
        /// 1 request, 2 reply.
        op: u16,
        /// Sender MAC.
        sender_mac: [u8; 6],
        /// Sender IP.
        sender_ip: Ipv4Addr,
        /// Target IP.
        target_ip: Ipv4Addr,
    },
    /// Anything else (other EtherTypes, other IP protocols, IP fragments).
    Other,
}

/// The Internet checksum (RFC 1071) of `data`, starting from `sum`.
pub fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    sum
}

/// Fold and complement.
pub fn csum_finish(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn udp_csum(src: Ipv4Addr, dst: Ipv4Addr, udp: &[u8]) -> u16 {
    let mut s = csum_add(0, &src.octets());
    s = csum_add(s, &dst.octets());
    s += 17 + udp.len() as u32;
    let c = csum_finish(csum_add(s, udp));
    // 0 means "no checksum" in UDP over IPv4; send all ones instead.
    if c == 0 {
        0xffff
    } else {
        c
    }
}

/// Write an Ethernet + IPv4 + UDP frame into `out`; returns its length.
/// `out` must hold `UDP_OVERHEAD + payload.len()` bytes (and at least
/// [`ETH_MIN`]; short frames are zero-padded).
pub fn build_udp(
    out: &mut [u8],
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &[u8],
) -> usize {
    let ip_len = IPV4_HDR + UDP_HDR + payload.len();
    out[0..6].copy_from_slice(&dst_mac);
    out[6..12].copy_from_slice(&src_mac);
    out[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let ip = &mut out[ETH_HDR..ETH_HDR + IPV4_HDR];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&[0, 0]); // id
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let c = csum_finish(csum_add(0, ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let u = ETH_HDR + IPV4_HDR;
    let udp_len = UDP_HDR + payload.len();
    out[u..u + 2].copy_from_slice(&src.port().to_be_bytes());
    out[u + 2..u + 4].copy_from_slice(&dst.port().to_be_bytes());
    out[u + 4..u + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    out[u + 6..u + 8].copy_from_slice(&[0, 0]);
    out[u + UDP_HDR..u + udp_len].copy_from_slice(payload);
    let c = udp_csum(*src.ip(), *dst.ip(), &out[u..u + udp_len]);
    out[u + 6..u + 8].copy_from_slice(&c.to_be_bytes());
    let len = u + udp_len;
    if len < ETH_MIN {
        out[len..ETH_MIN].fill(0);
        return ETH_MIN;
    }
    len
}

/// Write an ARP frame into `out` (at least [`ETH_MIN`] bytes); returns its
/// length. A request goes to the broadcast address with a zero target MAC.
pub fn build_arp(
    out: &mut [u8],
    op: u16,
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
) -> usize {
    let dst = if op == 1 { BROADCAST } else { target_mac };
    out[0..6].copy_from_slice(&dst);
    out[6..12].copy_from_slice(&sender_mac);
    out[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    let a = &mut out[ETH_HDR..ARP_FRAME];
    a[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    a[2..4].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    a[4] = 6;
    a[5] = 4;
    a[6..8].copy_from_slice(&op.to_be_bytes());
    a[8..14].copy_from_slice(&sender_mac);
    a[14..18].copy_from_slice(&sender_ip.octets());
    a[18..24].copy_from_slice(if op == 1 { &[0; 6] } else { &target_mac });
    a[24..28].copy_from_slice(&target_ip.octets());
    out[ARP_FRAME..ETH_MIN].fill(0);
    ETH_MIN
}

/// Parse and validate one Ethernet frame.
pub fn parse(f: &[u8]) -> Result<Parsed<'_>, EthError> {
    if f.len() < ETH_HDR {
        return Err(EthError::Truncated("Ethernet"));
    }
    let mac = |i: usize| -> [u8; 6] { f[i..i + 6].try_into().expect("6 bytes") };
    let ethertype = u16::from_be_bytes([f[12], f[13]]);
    let body = &f[ETH_HDR..];
    match ethertype {
        ETHERTYPE_ARP => {
            if body.len() < 28 {
                return Err(EthError::Truncated("ARP"));
            }
            if body[0..2] != [0, 1] || body[2..4] != [8, 0] || body[4] != 6 || body[5] != 4 {
                return Ok(Parsed::Other);
            }
            let ip = |i: usize| Ipv4Addr::new(body[i], body[i + 1], body[i + 2], body[i + 3]);
            Ok(Parsed::Arp {
                op: u16::from_be_bytes([body[6], body[7]]),
                sender_mac: body[8..14].try_into().expect("6 bytes"),
                sender_ip: ip(14),
                target_ip: ip(24),
            })
        }
        ETHERTYPE_IPV4 => {
            if body.len() < IPV4_HDR {
                return Err(EthError::Truncated("IPv4"));
            }
            if body[0] >> 4 != 4 {
                return Err(EthError::Ipv4("version is not 4"));
            }
            let ihl = usize::from(body[0] & 0x0f) * 4;
            if ihl < IPV4_HDR || body.len() < ihl {
                return Err(EthError::Ipv4("header length"));
            }
            let total = usize::from(u16::from_be_bytes([body[2], body[3]]));
            if total < ihl || total > body.len() {
                return Err(EthError::Ipv4("total length"));
            }
            if csum_finish(csum_add(0, &body[..ihl])) != 0 {
                return Err(EthError::Ipv4Checksum);
            }
            if body[9] != 17 {
                return Ok(Parsed::Other);
            }
            let frag = u16::from_be_bytes([body[6], body[7]]);
            if frag & 0x3fff != 0 {
                // More-fragments flag or an offset: not ours.
                return Ok(Parsed::Other);
            }
            let src_ip = Ipv4Addr::new(body[12], body[13], body[14], body[15]);
            let dst_ip = Ipv4Addr::new(body[16], body[17], body[18], body[19]);
            let udp = &body[ihl..total];
            if udp.len() < UDP_HDR {
                return Err(EthError::Truncated("UDP"));
            }
            let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
            if udp_len < UDP_HDR || udp_len > udp.len() {
                return Err(EthError::UdpLength {
                    udp: udp_len,
                    ip: udp.len(),
                });
            }
            // The UDP checksum is not verified: frames a kernel socket sends
            // over veth (and NICs with checksum offload) carry an unfinished
            // one. The link's FCS protects the frame, the Noise AEAD every
            // record, and the packet header is range-checked.
            let udp = &udp[..udp_len];
            Ok(Parsed::Udp {
                src_mac: mac(6),
                src: SocketAddrV4::new(src_ip, u16::from_be_bytes([udp[0], udp[1]])),
                dst: SocketAddrV4::new(dst_ip, u16::from_be_bytes([udp[2], udp[3]])),
                payload: &udp[UDP_HDR..],
            })
        }
        _ => Ok(Parsed::Other),
    }
}

/// How [`EthLink`] finds MAC addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Neighbours {
    /// Answer and send ARP ourselves.
    OwnArp,
    /// Ask the kernel (its neighbour table, primed by a datagram).
    Kernel,
}

/// Where an [`EthLink`] lives on the network.
#[derive(Clone, Debug)]
pub struct LinkConfig {
    /// Local address and UDP port.
    pub local: SocketAddrV4,
    /// Prefix length of the local subnet.
    pub prefix_len: u8,
    /// Next hop for addresses outside the subnet.
    pub gateway: Option<Ipv4Addr>,
    /// Neighbour resolution.
    pub neighbours: Neighbours,
}

/// Counters of one link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames that failed validation.
    pub bad_frames: u64,
    /// UDP datagrams for another address or port, or other protocols.
    pub ignored: u64,
    /// Datagrams not sent because the next hop was unresolved.
    pub unresolved: u64,
    /// ARP frames sent.
    pub arp_sent: u64,
}

/// A [`DatagramIo`] over a raw Ethernet device.
#[derive(Debug)]
pub struct EthLink<F: FrameIo> {
    dev: F,
    cfg: LinkConfig,
    mac: [u8; 6],
    neigh: HashMap<Ipv4Addr, [u8; 6]>,
    tried: HashMap<Ipv4Addr, Instant>,
    /// Kernel mode: the socket whose datagrams make the kernel resolve.
    primer: Option<UdpSocket>,
    scratch: Vec<u8>,
    /// Frames to send after the current receive burst (ARP replies).
    deferred: Vec<Vec<u8>>,
    stats: LinkStats,
}

impl<F: FrameIo> EthLink<F> {
    /// Wrap `dev`. In kernel mode this opens a UDP socket in the calling
    /// thread's network namespace (call it on the network thread).
    pub fn new(dev: F, cfg: LinkConfig) -> io::Result<EthLink<F>> {
        if cfg.prefix_len > 32 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("prefix length {} > 32", cfg.prefix_len),
            ));
        }
        let primer = match cfg.neighbours {
            Neighbours::Kernel => Some(UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?),
            Neighbours::OwnArp => None,
        };
        if let Some(p) = &primer {
            p.set_nonblocking(true)?;
        }
        let frame_max = dev.frame_max();
        Ok(EthLink {
            mac: dev.mac(),
            dev,
            cfg,
            neigh: HashMap::new(),
            tried: HashMap::new(),
            primer,
            scratch: vec![0; frame_max.max(ETH_MIN)],
            deferred: Vec::new(),
            stats: LinkStats::default(),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// The device.
    pub fn device(&self) -> &F {
        &self.dev
    }

    fn on_link(&self, ip: Ipv4Addr) -> bool {
        let p = u32::from(self.cfg.prefix_len);
        let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
        (u32::from(ip) & mask) == (u32::from(*self.cfg.local.ip()) & mask)
    }

    fn next_hop(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if self.on_link(dst) {
            Some(dst)
        } else {
            self.cfg.gateway
        }
    }

    fn learn(&mut self, ip: Ipv4Addr, mac: [u8; 6]) {
        if mac == BROADCAST || mac[0] & 1 != 0 || !self.on_link(ip) {
            return;
        }
        if self.neigh.len() >= NEIGH_MAX && !self.neigh.contains_key(&ip) {
            self.neigh.clear();
        }
        self.neigh.insert(ip, mac);
        self.tried.remove(&ip);
    }

    /// Try to resolve `hop`: at most once per [`RESOLVE_EVERY`].
    fn resolve(&mut self, hop: Ipv4Addr) -> io::Result<()> {
        let now = Instant::now();
        if self
            .tried
            .get(&hop)
            .is_some_and(|t| now.duration_since(*t) < RESOLVE_EVERY)
        {
            return Ok(());
        }
        if self.tried.len() >= NEIGH_MAX {
            self.tried.clear();
        }
        self.tried.insert(hop, now);
        match self.cfg.neighbours {
            Neighbours::OwnArp => {
                let n = build_arp(
                    &mut self.scratch,
                    1,
                    self.mac,
                    *self.cfg.local.ip(),
                    [0; 6],
                    hop,
                );
                if self.dev.tx(&self.scratch[..n])? {
                    self.stats.arp_sent += 1;
                }
            }
            Neighbours::Kernel => {
                if let Some(mac) = kernel_neighbour(hop) {
                    self.learn(hop, mac);
                    return Ok(());
                }
                // Make the kernel resolve it: any datagram to the address
                // does (port 9 is "discard"; an answer, if any, is ICMP).
                if let Some(p) = &self.primer {
                    match p.send_to(&[0], (hop, 9)) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => {
                            tracing::debug!(%hop, error = %e, "neighbour priming failed")
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The kernel's complete neighbour entry for `ip` in the calling thread's
/// network namespace.
pub fn kernel_neighbour(ip: Ipv4Addr) -> Option<[u8; 6]> {
    let table = std::fs::read_to_string("/proc/thread-self/net/arp").ok()?;
    parse_arp_table(&table, ip)
}

/// Find `ip` in the text of `/proc/net/arp` (flag 0x2 = complete).
pub fn parse_arp_table(table: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 4 || cols[0].parse::<Ipv4Addr>().ok() != Some(ip) {
            continue;
        }
        let flags = u32::from_str_radix(cols[2].trim_start_matches("0x"), 16).ok()?;
        if flags & 0x2 == 0 {
            return None;
        }
        let mut mac = [0u8; 6];
        let parts: Vec<&str> = cols[3].split(':').collect();
        if parts.len() != 6 {
            return None;
        }
        for (m, p) in mac.iter_mut().zip(parts) {
            *m = u8::from_str_radix(p, 16).ok()?;
        }
        return Some(mac);
    }
    None
}

impl<F: FrameIo> DatagramIo for EthLink<F> {
    fn local(&self) -> SocketAddrV4 {
        self.cfg.local
    }

    fn payload_max(&self) -> usize {
        self.dev.frame_max().min(ETH_HDR + 1500) - UDP_OVERHEAD
    }

    fn recv(&mut self, max: usize, f: &mut dyn FnMut(SocketAddrV4, &[u8])) -> io::Result<usize> {
        let local = self.cfg.local;
        let own_arp = self.cfg.neighbours == Neighbours::OwnArp;
        let mut delivered = 0;
        let mut learned: Vec<(Ipv4Addr, [u8; 6])> = Vec::new();
        let mut stats = self.stats;
        let my_mac = self.mac;
        let mut replies = std::mem::take(&mut self.deferred);
        let known = &self.neigh;
        self.dev.rx(max, &mut |frame| match parse(frame) {
            Ok(Parsed::Udp {
                src_mac,
                src,
                dst,
                payload,
            }) => {
                if dst != local {
                    stats.ignored += 1;
                    return;
                }
                // Learn (or refresh) only what changed: no table write per
                // datagram.
                if known.get(src.ip()) != Some(&src_mac) && learned.len() < 64 {
                    learned.push((*src.ip(), src_mac));
                }
                delivered += 1;
                f(src, payload);
            }
            Ok(Parsed::Arp {
                op,
                sender_mac,
                sender_ip,
                target_ip,
            }) => {
                if !own_arp {
                    return;
                }
                if (target_ip == *local.ip() || op == 2) && learned.len() < 64 {
                    learned.push((sender_ip, sender_mac));
                }
                if op == 1 && target_ip == *local.ip() && replies.len() < 16 {
                    let mut out = vec![0u8; ETH_MIN];
                    build_arp(&mut out, 2, my_mac, *local.ip(), sender_mac, sender_ip);
                    replies.push(out);
                }
            }
            Ok(Parsed::Other) => stats.ignored += 1,
            Err(e) => {
                stats.bad_frames += 1;
                tracing::debug!(error = %e, "dropped a malformed frame");
            }
        })?;
        self.stats = stats;
        for (ip, mac) in learned {
            // Learn only from frames of a known subnet peer; an existing
            // entry is refreshed.
            self.learn(ip, mac);
        }
        for r in replies.drain(..) {
            if self.dev.tx(&r)? {
                self.stats.arp_sent += 1;
            }
        }
        self.deferred = replies;
        Ok(delivered)
    }

    fn send(&mut self, dst: SocketAddrV4, payload: &[u8]) -> io::Result<bool> {
        if UDP_OVERHEAD + payload.len() > self.scratch.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "datagram of {} bytes exceeds the device frame limit",
                    payload.len()
                ),
            ));
        }
        let Some(hop) = self.next_hop(*dst.ip()) else {
            return Err(io::Error::new(
                io::ErrorKind::HostUnreachable,
                format!(
                    "{dst} is outside {}/{} and no gateway is configured",
                    self.cfg.local.ip(),
                    self.cfg.prefix_len
                ),
            ));
        };
        let Some(mac) = self.neigh.get(&hop).copied() else {
            self.stats.unresolved += 1;
            self.resolve(hop)?;
            return Ok(false);
        };
        let n = build_udp(
            &mut self.scratch,
            self.mac,
            mac,
            self.cfg.local,
            dst,
            payload,
        );
        self.dev.tx(&self.scratch[..n])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.dev.flush()
    }

    fn mode(&self) -> String {
        self.dev.mode()
    }

    fn rx_fd(&self) -> Option<std::os::fd::RawFd> {
        self.dev.rx_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn udp_roundtrip_and_checksums() {
        let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 4000);
        let dst = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 5000);
        for len in [0usize, 1, 17, 18, 1400] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut f = vec![0u8; UDP_OVERHEAD + len + ETH_MIN];
            let n = build_udp(&mut f, [2; 6], [4; 6], src, dst, &payload);
            assert_eq!(n, (UDP_OVERHEAD + len).max(ETH_MIN));
            match parse(&f[..n]).unwrap() {
                Parsed::Udp {
                    src_mac,
                    src: s,
                    dst: d,
                    payload: p,
                } => {
                    assert_eq!(src_mac, [2; 6]);
                    assert_eq!((s, d), (src, dst));
                    assert_eq!(p, &payload[..]);
                }
                other => panic!("{other:?}"),
            }
            // The checksum we send is complete: summing over the pseudo
            // header and segment gives zero.
            let u = ETH_HDR + IPV4_HDR;
            let mut s = csum_add(0, &src.ip().octets());
            s = csum_add(s, &dst.ip().octets());
            s += 17 + (UDP_HDR + len) as u32;
            assert_eq!(csum_finish(csum_add(s, &f[u..u + UDP_HDR + len])), 0);
            let mut g = f.clone();
            g[ETH_HDR + 8] ^= 1; // TTL
            assert_eq!(parse(&g[..n]), Err(EthError::Ipv4Checksum));
        }
    }

    #[test]
    fn arp_roundtrip_and_table_parse() {
        let mut f = [0u8; ETH_MIN];
        build_arp(
            &mut f,
            1,
            [2; 6],
            Ipv4Addr::new(10, 0, 0, 1),
            [0; 6],
            Ipv4Addr::new(10, 0, 0, 2),
        );
        assert_eq!(&f[0..6], &BROADCAST);
        assert_eq!(
            parse(&f).unwrap(),
            Parsed::Arp {
                op: 1,
                sender_mac: [2; 6],
                sender_ip: Ipv4Addr::new(10, 0, 0, 1),
                target_ip: Ipv4Addr::new(10, 0, 0, 2),
            }
        );
        let table = "IP address       HW type     Flags       HW address            Mask     Device\n\
                     10.77.0.2        0x1         0x2         5a:1b:00:ff:10:02     *        eth0\n\
                     10.77.0.3        0x1         0x0         00:00:00:00:00:00     *        eth0\n";
        assert_eq!(
            parse_arp_table(table, Ipv4Addr::new(10, 77, 0, 2)),
            Some([0x5a, 0x1b, 0, 0xff, 0x10, 2])
        );
        assert_eq!(parse_arp_table(table, Ipv4Addr::new(10, 77, 0, 3)), None);
        assert_eq!(parse_arp_table(table, Ipv4Addr::new(10, 77, 0, 4)), None);
    }

    proptest! {
        #[test]
        fn parse_never_panics(f in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&f);
        }

        #[test]
        fn parse_ipv4_mutations_never_panic(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            at in 0usize..120,
            v in any::<u8>(),
        ) {
            let src = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 1);
            let dst = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 2);
            let mut f = vec![0u8; UDP_OVERHEAD + 64 + ETH_MIN];
            let n = build_udp(&mut f, [2; 6], [4; 6], src, dst, &payload);
            let at = at % n;
            f[at] = v;
            let _ = parse(&f[..n]);
        }
    }

    /// A device that loops frames between two links in memory.
    struct Wire {
        mac: [u8; 6],
        rx: std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>,
        peer: std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>,
    }

    impl FrameIo for Wire {
        fn mac(&self) -> [u8; 6] {
            self.mac
        }
        fn frame_max(&self) -> usize {
            1514
        }
        fn rx(&mut self, max: usize, f: &mut dyn FnMut(&[u8])) -> io::Result<usize> {
            let frames: Vec<Vec<u8>> = {
                let mut q = self.rx.borrow_mut();
                let k = q.len().min(max);
                q.drain(..k).collect()
            };
            for fr in &frames {
                f(fr);
            }
            Ok(frames.len())
        }
        fn tx(&mut self, frame: &[u8]) -> io::Result<bool> {
            self.peer.borrow_mut().push(frame.to_vec());
            Ok(true)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn mode(&self) -> String {
            "memory".into()
        }
    }

    #[test]
    fn own_arp_resolves_then_datagrams_flow() {
        let qa = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let qb = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let a_addr = SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, 1), 7000);
        let b_addr = SocketAddrV4::new(Ipv4Addr::new(10, 9, 0, 2), 7000);
        let cfg = |local| LinkConfig {
            local,
            prefix_len: 24,
            gateway: None,
            neighbours: Neighbours::OwnArp,
        };
        let mut a = EthLink::new(
            Wire {
                mac: [2, 0, 0, 0, 0, 1],
                rx: qa.clone(),
                peer: qb.clone(),
            },
            cfg(a_addr),
        )
        .unwrap();
        let mut b = EthLink::new(
            Wire {
                mac: [2, 0, 0, 0, 0, 2],
                rx: qb.clone(),
                peer: qa.clone(),
            },
            cfg(b_addr),
        )
        .unwrap();
        // Unknown MAC: not sent, an ARP request goes out instead.
        assert!(!a.send(b_addr, b"hello").unwrap());
        assert_eq!(a.stats().arp_sent, 1);
        // b answers the request (and learns a), a learns b from the reply.
        let mut got = Vec::new();
        b.recv(16, &mut |s, p| got.push((s, p.to_vec()))).unwrap();
        a.recv(16, &mut |s, p| got.push((s, p.to_vec()))).unwrap();
        assert!(got.is_empty());
        assert!(a.send(b_addr, b"hello").unwrap());
        assert!(
            b.send(a_addr, b"back").unwrap(),
            "b learned a from its request"
        );
        b.recv(16, &mut |s, p| got.push((s, p.to_vec()))).unwrap();
        a.recv(16, &mut |s, p| got.push((s, p.to_vec()))).unwrap();
        assert_eq!(
            got,
            vec![(a_addr, b"hello".to_vec()), (b_addr, b"back".to_vec())]
        );
        // Off-subnet without a gateway is a clear error.
        let far = SocketAddrV4::new(Ipv4Addr::new(192, 168, 1, 1), 1);
        assert!(a.send(far, b"x").is_err());
    }
}
