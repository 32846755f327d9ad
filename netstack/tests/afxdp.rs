#![cfg(feature = "af-xdp")]
//! The AF_XDP device against the real kernel: two network namespaces joined
//! by a veth pair, our socket and XDP program on `eth0` of h0, kernel UDP
//! sockets on both sides. Plus a check of the XDP program itself, run in a
//! tiny eBPF interpreter below (no root needed for that one).
//!
//! Run: `cargo nextest run -p plume-netstack --features af-xdp --test afxdp`
//! (the namespace tests need root and `ip`; they say so and skip otherwise).

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use plume_netstack::dgram::afxdp::bpf::{self, Insn};
use plume_netstack::dgram::afxdp::{host_support, AfXdp, XdpConfig, XdpError};
use plume_netstack::dgram::device::FrameIo;
use plume_netstack::netns::{self, Lab};

// ---------------------------------------------------------------------------
// Frames: a tiny Ethernet + IPv4 + UDP builder and parser for the test.
// ---------------------------------------------------------------------------

const ETH_HLEN: usize = 14;
const IP_HLEN: usize = 20;
const UDP_HLEN: usize = 8;
const HDRS: usize = ETH_HLEN + IP_HLEN + UDP_HLEN;

/// The one's-complement sum of 16-bit words, folded.
fn ip_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for w in hdr.chunks(2) {
        let v = u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]);
        sum += u32::from(v);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

struct Udp {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddr,
    dst: SocketAddr,
    udp_csum: u16,
    payload: Vec<u8>,
}

/// Ethernet + IPv4 (no options, DF, TTL 64, correct header checksum) +
/// UDP (checksum 0 = none, allowed for IPv4).
fn build_udp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::with_capacity(HDRS + payload.len());
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (IP_HLEN + UDP_HLEN + payload.len()) as u16;
    let mut ip = [0u8; IP_HLEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.0.octets());
    ip[16..20].copy_from_slice(&dst.0.octets());
    let c = ip_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&((UDP_HLEN + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Parse an IPv4 UDP frame; None for anything else. Checks the IPv4 header
/// checksum and the lengths.
fn parse_udp(f: &[u8]) -> Option<Udp> {
    if f.len() < HDRS || f[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &f[ETH_HLEN..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < IP_HLEN || ip[9] != 17 || f.len() < ETH_HLEN + ihl + UDP_HLEN {
        return None;
    }
    assert_eq!(ip_checksum(&ip[..ihl]), 0, "IPv4 header checksum");
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    assert!(
        ETH_HLEN + total <= f.len(),
        "IPv4 total length beyond frame"
    );
    let udp = &ip[ihl..total];
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    assert_eq!(ulen, udp.len(), "UDP length");
    let a = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    Some(Udp {
        dst_mac: f[0..6].try_into().unwrap(),
        src_mac: f[6..12].try_into().unwrap(),
        src: SocketAddr::from((a(&ip[12..16]), u16::from_be_bytes([udp[0], udp[1]]))),
        dst: SocketAddr::from((a(&ip[16..20]), u16::from_be_bytes([udp[2], udp[3]]))),
        udp_csum: u16::from_be_bytes([udp[6], udp[7]]),
        payload: udp[UDP_HLEN..].to_vec(),
    })
}

#[test]
fn frame_builder_and_parser_agree() {
    let f = build_udp(
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        (Ipv4Addr::new(10, 77, 0, 1), 5000),
        (Ipv4Addr::new(10, 77, 0, 2), 6000),
        7,
        b"hello",
    );
    assert_eq!(f.len(), HDRS + 5);
    let u = parse_udp(&f).expect("a UDP frame");
    assert_eq!(u.src_mac, [2, 0, 0, 0, 0, 1]);
    assert_eq!(u.dst_mac, [2, 0, 0, 0, 0, 2]);
    assert_eq!(u.src, "10.77.0.1:5000".parse().unwrap());
    assert_eq!(u.dst, "10.77.0.2:6000".parse().unwrap());
    assert_eq!(u.payload, b"hello");
    // Known-answer IPv4 checksum (RFC 1071 example header).
    let hdr = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];
    assert_eq!(ip_checksum(&hdr), 0xb861);
}

// ---------------------------------------------------------------------------
// The XDP program, run in a minimal eBPF interpreter (no root needed).
// ---------------------------------------------------------------------------

const MAP_FD: i32 = 77;
const CTX_ADDR: u64 = 0x1000_0000;
const PKT_ADDR: u64 = 0x2000_0000;
const MAP_ADDR: u64 = 0x3000_0000;
const STEPS_MAX: usize = 1000;

/// Run `prog` on `pkt` received on `rx_queue`; the XSKMAP holds a socket at
/// queue 0 only. Returns the XDP verdict. Panics on any memory access
/// outside the context or the packet: our bounds checks must prevent them
/// (the kernel's verifier would refuse the program otherwise).
fn run(prog: &[Insn], pkt: &[u8], rx_queue: u32) -> i32 {
    let mut ctx = [0u8; 24];
    ctx[0..4].copy_from_slice(&(PKT_ADDR as u32).to_le_bytes());
    ctx[4..8].copy_from_slice(&((PKT_ADDR + pkt.len() as u64) as u32).to_le_bytes());
    ctx[16..20].copy_from_slice(&rx_queue.to_le_bytes());
    let mut r = [0u64; 11];
    r[1] = CTX_ADDR;
    let mut pc = 0usize;
    for _ in 0..STEPS_MAX {
        let i = prog[pc];
        let (dst, src) = (usize::from(i.dst()), usize::from(i.src()));
        let class = i.code & 0x07;
        let k = i64::from(i.imm) as u64;
        pc += 1;
        match class {
            0x07 => {
                // ALU64
                let v = if i.code & 0x08 != 0 { r[src] } else { k };
                r[dst] = match i.code & 0xf0 {
                    0x00 => r[dst].wrapping_add(v),
                    0x50 => r[dst] & v,
                    0x60 => r[dst] << (v & 63),
                    0xb0 => v,
                    op => panic!("ALU op {op:#x} not expected"),
                };
            }
            0x01 => {
                // LDX MEM
                let size = match i.code & 0x18 {
                    0x00 => 4,
                    0x08 => 2,
                    0x10 => 1,
                    s => panic!("size {s:#x} not expected"),
                };
                let addr = r[src].wrapping_add(i64::from(i.off) as u64);
                let bytes: &[u8] = if (CTX_ADDR..CTX_ADDR + 24).contains(&addr) {
                    assert_eq!(size, 4, "context fields are read as u32");
                    let o = (addr - CTX_ADDR) as usize;
                    &ctx[o..o + size]
                } else {
                    assert!(
                        addr >= PKT_ADDR && addr + size as u64 <= PKT_ADDR + pkt.len() as u64,
                        "read of {size} bytes at packet offset {} beyond {} bytes",
                        addr.wrapping_sub(PKT_ADDR),
                        pkt.len()
                    );
                    let o = (addr - PKT_ADDR) as usize;
                    &pkt[o..o + size]
                };
                let mut b = [0u8; 8];
                b[..size].copy_from_slice(bytes);
                r[dst] = u64::from_le_bytes(b);
            }
            0x00 => {
                // LD IMM64 of a map fd
                assert_eq!(i.code, 0x18);
                assert_eq!(i.src(), 1, "BPF_PSEUDO_MAP_FD");
                assert_eq!(i.imm, MAP_FD);
                r[dst] = MAP_ADDR;
                pc += 1;
            }
            0x05 | 0x06 => {
                let op = i.code & 0xf0;
                if op == 0x80 {
                    assert_eq!(i.imm, bpf::FUNC_REDIRECT_MAP);
                    assert_eq!(r[1], MAP_ADDR, "r1 is the XSKMAP");
                    r[0] = if r[2] == 0 {
                        bpf::XDP_REDIRECT as u64
                    } else {
                        r[3] & 3
                    };
                    continue;
                }
                if op == 0x90 {
                    return r[0] as i32;
                }
                let v = if i.code & 0x08 != 0 { r[src] } else { k };
                let (a, b) = if class == 0x06 {
                    (r[dst] & 0xffff_ffff, v & 0xffff_ffff)
                } else {
                    (r[dst], v)
                };
                let taken = match op {
                    0x20 => a > b,
                    0x40 => a & b != 0,
                    0x50 => a != b,
                    0xa0 => a < b,
                    op => panic!("jump op {op:#x} not expected"),
                };
                if taken {
                    pc = (pc as i64 + i64::from(i.off)) as usize;
                }
            }
            c => panic!("class {c:#x} not expected"),
        }
    }
    panic!("program did not finish in {STEPS_MAX} steps");
}

const P: u16 = 47_000;
const A1: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const A2: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const MAC0: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn to(dst: Ipv4Addr, port: u16) -> Vec<u8> {
    build_udp(MAC1, MAC0, (A2, 40_000), (dst, port), 1, b"payload")
}

#[test]
fn program_shape_and_patched_immediates() {
    for port in [1u16, 0x1234, P, 0xffff] {
        let p = bpf::redirect_program(MAP_FD, port, None);
        assert_eq!(p.insns.len(), 33, "instruction count without address check");
        assert_eq!(p.insns[p.port_at].imm, i32::from(port.swap_bytes()));
        assert_eq!(p.ip_at, None);
        // The map reference: BPF_LD_IMM64 with src_reg = BPF_PSEUDO_MAP_FD.
        let ld = p
            .insns
            .iter()
            .position(|i| i.code == 0x18)
            .expect("map load");
        assert_eq!((p.insns[ld].src(), p.insns[ld].imm), (1, MAP_FD));
        assert_eq!(
            p.insns[ld + 1],
            Insn {
                code: 0,
                regs: 0,
                off: 0,
                imm: 0
            }
        );
        // Last two: `r0 = XDP_PASS; exit`.
        let n = p.insns.len();
        assert_eq!(
            (p.insns[n - 2].code, p.insns[n - 2].imm),
            (0xb7, bpf::XDP_PASS)
        );
        assert_eq!(p.insns[n - 1].code, 0x95);
    }
    let p = bpf::redirect_program(MAP_FD, P, Some([10, 77, 0, 200]));
    assert_eq!(p.insns.len(), 35, "instruction count with address check");
    let at = p.ip_at.expect("address compare");
    assert_eq!(p.insns[at].imm, i32::from_le_bytes([10, 77, 0, 200]));
    assert_eq!(p.insns[at].code, 0x56, "JMP32 | JNE | K: no sign extension");
    assert_eq!(bpf::pass_program().len(), 2);
}

#[test]
fn program_redirects_only_our_port() {
    let prog = bpf::redirect_program(MAP_FD, P, None).insns;
    let redirect = bpf::XDP_REDIRECT;
    let pass = bpf::XDP_PASS;
    // Ours, on the queue that has a socket.
    assert_eq!(run(&prog, &to(A1, P), 0), redirect);
    assert_eq!(run(&prog, &to(A2, P), 0), redirect, "no address filter");
    // Ours, but no socket at queue 3: redirect_map falls back to PASS.
    assert_eq!(run(&prog, &to(A1, P), 3), pass);
    // Other ports, byte-swapped port, other protocols and ethertypes.
    assert_eq!(run(&prog, &to(A1, P + 1), 0), pass);
    assert_eq!(run(&prog, &to(A1, P.swap_bytes()), 0), pass);
    let mut tcp = to(A1, P);
    tcp[ETH_HLEN + 9] = 6;
    assert_eq!(run(&prog, &tcp, 0), pass);
    let mut arp = to(A1, P);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(run(&prog, &arp, 0), pass);
    let mut v6 = to(A1, P);
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    assert_eq!(run(&prog, &v6, 0), pass);
    let mut vlan = to(A1, P);
    vlan[12..14].copy_from_slice(&[0x81, 0x00]);
    assert_eq!(run(&prog, &vlan, 0), pass, "802.1Q frames go to the kernel");
    let mut ver6 = to(A1, P);
    ver6[ETH_HLEN] = 0x65;
    assert_eq!(run(&prog, &ver6, 0), pass, "IP version must be 4");
    let mut ihl4 = to(A1, P);
    ihl4[ETH_HLEN] = 0x44;
    assert_eq!(run(&prog, &ihl4, 0), pass, "IHL < 5 is malformed");
    // Fragments: MF set, or a non-zero offset -> kernel; DF alone is fine.
    let mut mf = to(A1, P);
    mf[ETH_HLEN + 6] = 0x20;
    assert_eq!(run(&prog, &mf, 0), pass);
    let mut offs = to(A1, P);
    offs[ETH_HLEN + 6] = 0x00;
    offs[ETH_HLEN + 7] = 0x01;
    assert_eq!(run(&prog, &offs, 0), pass);
    let mut df = to(A1, P);
    df[ETH_HLEN + 6] = 0x40;
    assert_eq!(run(&prog, &df, 0), redirect);
    // IPv4 options: the UDP header moves by the IHL.
    let with_opts = |dport: u16, fake: u16| {
        let mut f = to(A1, dport);
        f[ETH_HLEN] = 0x46;
        // Insert 4 option bytes whose 3rd/4th bytes look like a port.
        let fb = fake.to_be_bytes();
        f.splice(ETH_HLEN + IP_HLEN..ETH_HLEN + IP_HLEN, [1, 1, fb[0], fb[1]]);
        f
    };
    assert_eq!(run(&prog, &with_opts(P, 0), 0), redirect);
    assert_eq!(run(&prog, &with_opts(P + 1, P), 0), pass);
    // Every truncation of a matching frame: never reads out of bounds,
    // passes unless the whole UDP header is there.
    let full = to(A1, P);
    for len in 0..full.len() {
        let want = if len >= HDRS { redirect } else { pass };
        assert_eq!(run(&prog, &full[..len], 0), want, "length {len}");
    }
    let full = with_opts(P, 0);
    for len in 0..HDRS + 4 {
        let want = if len >= HDRS + 4 { redirect } else { pass };
        assert_eq!(run(&prog, &full[..len], 0), want, "options, length {len}");
    }
}

#[test]
fn program_with_address_filter() {
    for ours in [
        A1,
        Ipv4Addr::new(10, 77, 0, 200),
        Ipv4Addr::new(192, 168, 1, 255),
    ] {
        let prog = bpf::redirect_program(MAP_FD, P, Some(ours.octets())).insns;
        assert_eq!(run(&prog, &to(ours, P), 0), bpf::XDP_REDIRECT, "{ours}");
        assert_eq!(run(&prog, &to(A2, P), 0), bpf::XDP_PASS, "{ours}");
        assert_eq!(run(&prog, &to(ours, P + 1), 0), bpf::XDP_PASS, "{ours}");
    }
}

#[test]
fn config_errors_are_values() {
    let mut c = XdpConfig::new("eth0", P);
    c.frames = 1000;
    assert!(matches!(AfXdp::open(&c), Err(XdpError::Config(_))));
    let mut c = XdpConfig::new("eth0", P);
    c.frame_size = 3000;
    assert!(matches!(AfXdp::open(&c), Err(XdpError::Config(_))));
    let c = XdpConfig::new("an-interface-name-too-long", P);
    assert!(matches!(AfXdp::open(&c), Err(XdpError::Config(_))));
    let c = XdpConfig::new("eth0", 0);
    assert!(matches!(AfXdp::open(&c), Err(XdpError::Config(_))));
}

// ---------------------------------------------------------------------------
// The real thing: two namespaces over a veth pair (root only).
// ---------------------------------------------------------------------------

const DATAGRAMS: usize = 200;
const PAYLOAD_MAX: usize = 1400;
const WAIT: Duration = Duration::from_secs(10);
const RX_BATCH: usize = 64;
/// Datagrams each way through the small UMEM (rings of 128).
const WRAP: usize = 300;

/// UDP checksum of a parsed datagram: 0 = none sent, 1 = valid, 2 = wrong
/// (a kernel with checksum offload leaves a partial sum on veth).
fn udp_checksum_state(u: &Udp) -> u8 {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (u.src, u.dst) else {
        return 2;
    };
    let len = (UDP_HLEN + u.payload.len()) as u16;
    let mut b = Vec::with_capacity(20 + u.payload.len());
    b.extend_from_slice(&s.ip().octets());
    b.extend_from_slice(&d.ip().octets());
    b.extend_from_slice(&[0, 17]);
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&s.port().to_be_bytes());
    b.extend_from_slice(&d.port().to_be_bytes());
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&u.udp_csum.to_be_bytes());
    b.extend_from_slice(&u.payload);
    if u.udp_csum == 0 {
        0
    } else if ip_checksum(&b) == 0 {
        1
    } else {
        2
    }
}

fn skip() -> bool {
    if let Some(why) = netns::unavailable() {
        println!("SKIPPED: AF_XDP namespace test needs root and `ip`: {why}");
        return true;
    }
    false
}

/// Run `f` on a fresh thread inside namespace `ns` and return its result
/// (sockets and the AF_XDP device keep their namespace after that).
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            netns::enter(ns).expect("enter namespace");
            f()
        })
        .join()
        .expect("namespace thread")
    })
}

fn mac_of(ns: &str) -> [u8; 6] {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show", "eth0"])
        .output()
        .expect("ip link");
    let s = String::from_utf8_lossy(&out.stdout);
    let hex = s
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no link/ether in {s:?}"));
    let mut mac = [0u8; 6];
    for (m, h) in mac.iter_mut().zip(hex.split(':')) {
        *m = u8::from_str_radix(h, 16).expect("hex MAC");
    }
    mac
}

fn udp_in(ns: &str, addr: &str) -> UdpSocket {
    let addr: SocketAddr = addr.parse().unwrap();
    let s = in_ns(ns, || {
        UdpSocket::bind(addr).expect("bind kernel UDP socket")
    });
    s.set_nonblocking(true).unwrap();
    let bytes: libc::c_int = 8 << 20;
    // SAFETY: setsockopt on a live socket with a c_int of the right size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    s
}

/// Datagram `seq`: 4-byte sequence number, then a pattern; sizes cover
/// 4..=PAYLOAD_MAX.
fn payload(tag: u8, seq: usize) -> Vec<u8> {
    let len = if seq == DATAGRAMS - 1 {
        PAYLOAD_MAX
    } else {
        5 + (seq * 131) % (PAYLOAD_MAX - 5)
    };
    let mut p = vec![tag];
    p.extend_from_slice(&(seq as u32).to_le_bytes());
    p.extend((p.len()..len).map(|i| (i * 7 + seq) as u8));
    p
}

/// Drain the device's rx ring, parsing every frame: UDP frames to `port`
/// are returned; anything else counts as foreign.
fn drain(dev: &mut AfXdp, port: u16, got: &mut Vec<Udp>, foreign: &mut usize) {
    for _ in 0..64 {
        let n = dev
            .rx(RX_BATCH, &mut |f| match parse_udp(f) {
                Some(u) if u.dst.port() == port => got.push(u),
                _ => *foreign += 1,
            })
            .expect("rx");
        if n == 0 {
            break;
        }
    }
}

#[test]
fn xsk_exchanges_udp_with_kernel_sockets_over_veth() {
    if skip() {
        return;
    }
    let lab = Lab::veth_pair("xd").expect("veth pair");
    let (h0, h1) = (lab.hosts[0].clone(), lab.hosts[1].clone());
    let (port, other, h1_port) = (47_100u16, 47_101u16, 47_102u16);
    let cfg = XdpConfig::new("eth0", port);
    let mut dev = in_ns(&h0, || AfXdp::open(&cfg)).unwrap_or_else(|e| panic!("open: {e}"));
    let mode = dev.mode();
    println!("mode: {mode}");
    assert!(mode.starts_with("af_xdp "), "{mode}");
    assert!(
        mode.contains("skb-mode") || mode.contains("drv-mode"),
        "{mode}"
    );
    assert!(
        mode.contains(" copy ") || mode.contains(" zero-copy "),
        "{mode}"
    );
    assert!(mode.ends_with(" queue 0"), "{mode}");
    assert_eq!(dev.frame_max(), 1514, "MTU 1500 + Ethernet header");
    let mac0 = mac_of(&h0);
    let mac1 = mac_of(&h1);
    assert_eq!(dev.mac(), mac0);

    // A kernel socket in h0 on OUR port (must never see a datagram: the
    // program takes them) and one on another port (must see its datagram).
    let k0_ours = udp_in(&h0, &format!("10.77.0.1:{port}"));
    let k0_other = udp_in(&h0, &format!("10.77.0.1:{other}"));
    let k1 = udp_in(&h1, &format!("10.77.0.2:{h1_port}"));
    let dst: SocketAddr = format!("10.77.0.1:{port}").parse().unwrap();

    // (1) kernel socket in h1 -> our socket. The first datagram waits for
    // ARP, which the h0 kernel answers (the program passes ARP).
    let mut got = Vec::new();
    let mut foreign = 0usize;
    let start = Instant::now();
    let mut probes = 0;
    while got.is_empty() {
        assert!(start.elapsed() < WAIT, "no probe reached the AF_XDP socket");
        k1.send_to(b"probe", dst).expect("send probe");
        probes += 1;
        let t = Instant::now();
        while got.is_empty() && t.elapsed() < Duration::from_millis(200) {
            drain(&mut dev, port, &mut got, &mut foreign);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    println!(
        "first datagram after {probes} probe(s), {:?}",
        start.elapsed()
    );
    let u = &got[0];
    assert_eq!(u.src_mac, mac1, "source MAC is h1's eth0");
    assert_eq!(u.dst_mac, mac0);
    assert_eq!(u.src, format!("10.77.0.2:{h1_port}").parse().unwrap());
    assert_eq!(u.dst, dst);
    got.clear();
    for seq in 0..DATAGRAMS {
        k1.send_to(&payload(b'K', seq), dst).expect("send");
        if seq % 32 == 31 {
            drain(&mut dev, port, &mut got, &mut foreign);
        }
    }
    let start = Instant::now();
    let mut rx: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut csum = [0usize; 3];
    loop {
        drain(&mut dev, port, &mut got, &mut foreign);
        for u in got.drain(..) {
            if u.payload == b"probe" {
                continue; // late duplicates of the probe
            }
            assert_eq!(u.payload[0], b'K');
            csum[usize::from(udp_checksum_state(&u))] += 1;
            let seq = u32::from_le_bytes(u.payload[1..5].try_into().unwrap());
            assert!(rx.insert(seq, u.payload).is_none(), "duplicate {seq}");
        }
        if rx.len() == DATAGRAMS || start.elapsed() > WAIT {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(rx.len(), DATAGRAMS, "kernel -> AF_XDP datagrams received");
    println!("UDP checksums from the h1 kernel [zero, valid, not final]: {csum:?}");
    for seq in 0..DATAGRAMS {
        assert_eq!(rx[&(seq as u32)], payload(b'K', seq), "payload {seq}");
    }

    // (2) our socket -> kernel socket in h1.
    let from = (Ipv4Addr::new(10, 77, 0, 1), port);
    let to1 = (Ipv4Addr::new(10, 77, 0, 2), h1_port);
    let mut k1_got: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    let mut read_k1 = |k1_got: &mut HashMap<u32, Vec<u8>>| {
        for _ in 0..DATAGRAMS * 2 {
            match k1.recv_from(&mut buf) {
                Ok((n, src)) => {
                    assert_eq!(src, SocketAddr::from(from), "source address");
                    let p = buf[..n].to_vec();
                    assert_eq!(p[0], b'X');
                    let seq = u32::from_le_bytes(p[1..5].try_into().unwrap());
                    assert!(k1_got.insert(seq, p).is_none(), "duplicate {seq}");
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
    };
    let start = Instant::now();
    let mut full = 0usize;
    for seq in 0..DATAGRAMS {
        let frame = build_udp(mac0, mac1, from, to1, seq as u16, &payload(b'X', seq));
        loop {
            assert!(start.elapsed() < WAIT, "tx ring stayed full");
            if dev.tx(&frame).expect("tx") {
                break;
            }
            full += 1;
            dev.flush().expect("flush");
            read_k1(&mut k1_got);
        }
        if seq % 16 == 15 {
            dev.flush().expect("flush");
            read_k1(&mut k1_got);
        }
    }
    while k1_got.len() < DATAGRAMS && start.elapsed() < WAIT {
        dev.flush().expect("flush");
        read_k1(&mut k1_got);
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "tx: ring full {full} time(s), in flight now {}",
        dev.tx_in_flight()
    );
    assert_eq!(
        k1_got.len(),
        DATAGRAMS,
        "AF_XDP -> kernel datagrams received"
    );
    for seq in 0..DATAGRAMS {
        assert_eq!(k1_got[&(seq as u32)], payload(b'X', seq), "payload {seq}");
    }
    // Every transmit frame comes back once the kernel completes it.
    let start = Instant::now();
    while dev.tx_in_flight() > 0 && start.elapsed() < WAIT {
        dev.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(dev.tx_in_flight(), 0, "completions returned every tx frame");

    // Oversized frames are an error value, not a panic.
    let big = vec![0u8; dev.frame_max() + 1];
    assert_eq!(dev.tx(&big).unwrap_err().kind(), ErrorKind::InvalidInput);

    // (3) traffic that is not for our port still reaches the h0 kernel.
    let other_dst: SocketAddr = format!("10.77.0.1:{other}").parse().unwrap();
    k1.send_to(b"for-the-kernel", other_dst).expect("send");
    k0_other
        .set_nonblocking(false)
        .and_then(|_| k0_other.set_read_timeout(Some(WAIT)))
        .unwrap();
    let (n, src) = k0_other
        .recv_from(&mut buf)
        .expect("kernel socket on another port");
    assert_eq!(&buf[..n], b"for-the-kernel");
    assert_eq!(src, format!("10.77.0.2:{h1_port}").parse().unwrap());
    drain(&mut dev, port, &mut got, &mut foreign);
    assert!(
        got.iter().all(|u| u.payload == b"probe"),
        "only ours redirected"
    );
    assert_eq!(
        foreign, 0,
        "the program redirected a frame not for our port"
    );
    // The h0 kernel socket bound to our port never saw a datagram.
    let e = k0_ours.recv_from(&mut buf).expect_err("port taken by XDP");
    assert_eq!(e.kind(), ErrorKind::WouldBlock);

    let (stats, bad) = dev.stats().expect("stats");
    println!("stats: {stats:?}, bad descriptors {bad}");
    assert_eq!(bad, 0);
    assert_eq!(stats.rx_dropped, 0);
    assert_eq!(stats.tx_invalid, 0);

    // Dropping the device detaches the program: our port goes back to the
    // kernel socket in h0.
    drop(dev);
    k0_ours
        .set_nonblocking(false)
        .and_then(|_| k0_ours.set_read_timeout(Some(WAIT)))
        .unwrap();
    k1.send_to(b"after-detach", dst).expect("send");
    let (n, _) = k0_ours
        .recv_from(&mut buf)
        .expect("kernel gets our port back");
    assert_eq!(&buf[..n], b"after-detach");
    drop(lab);
}

#[test]
fn forced_generic_copy_mode_and_clear_errors() {
    if skip() {
        return;
    }
    host_support().unwrap_or_else(|e| panic!("host_support: {e}"));
    let lab = Lab::veth_pair("xe").expect("veth pair");
    let (h0, h1) = (lab.hosts[0].clone(), lab.hosts[1].clone());
    let port = 47_200u16;

    let missing = XdpConfig::new("nosuch0", port);
    match in_ns(&h0, || AfXdp::open(&missing)) {
        Err(e @ XdpError::InterfaceNotFound { .. }) => println!("{e}"),
        other => panic!("expected InterfaceNotFound, got {:?}", other.err()),
    }

    let mut cfg = XdpConfig::new("eth0", port);
    cfg.force_skb = true;
    cfg.force_copy = true;
    cfg.frames = 256;
    cfg.local_ip = Some(Ipv4Addr::new(10, 77, 0, 1));
    let mut dev = in_ns(&h0, || AfXdp::open(&cfg)).unwrap_or_else(|e| panic!("open: {e}"));
    assert_eq!(dev.mode(), "af_xdp skb-mode copy queue 0");
    assert_eq!(dev.attach_mode(), (false, false));

    // A second program on the same interface: a clear error.
    let cfg2 = XdpConfig::new("eth0", port + 1);
    match in_ns(&h0, || AfXdp::open(&cfg2)) {
        Err(e @ XdpError::AlreadyAttached { .. }) => println!("{e}"),
        other => panic!("expected AlreadyAttached, got {:?}", other.err()),
    }

    // The first device still works after the refused second one. With
    // 128 receive and 128 transmit frames, WRAP datagrams each way make
    // every ring index wrap and every frame get recycled twice.
    let mac0 = mac_of(&h0);
    let mac1 = mac_of(&h1);
    let k1 = udp_in(&h1, "10.77.0.2:47201");
    let dst: SocketAddr = format!("10.77.0.1:{port}").parse().unwrap();
    let mut got = Vec::new();
    let mut foreign = 0;
    // Resolve ARP first so no datagram waits in the h1 kernel's queue.
    let start = Instant::now();
    while got.is_empty() {
        assert!(start.elapsed() < WAIT, "no probe reached the AF_XDP socket");
        k1.send_to(b"probe", dst).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drain(&mut dev, port, &mut got, &mut foreign);
    }
    got.clear();
    let mut rx: HashMap<u32, Vec<u8>> = HashMap::new();
    let (mut csum_ok, mut csum_zero, mut csum_other) = (0, 0, 0);
    let start = Instant::now();
    let mut sent = 0;
    while rx.len() < WRAP && start.elapsed() < WAIT {
        // Bursts of 32: never more than the 128-entry rx ring holds.
        for _ in 0..32 {
            if sent < WRAP {
                k1.send_to(&payload(b'W', sent), dst).unwrap();
                sent += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
        drain(&mut dev, port, &mut got, &mut foreign);
        for u in got.drain(..) {
            if u.payload == b"probe" {
                continue;
            }
            match udp_checksum_state(&u) {
                0 => csum_zero += 1,
                1 => csum_ok += 1,
                _ => csum_other += 1,
            }
            let seq = u32::from_le_bytes(u.payload[1..5].try_into().unwrap());
            assert_eq!(u.payload, payload(b'W', seq as usize));
            assert!(rx.insert(seq, u.payload).is_none(), "duplicate {seq}");
        }
    }
    assert_eq!(rx.len(), WRAP, "kernel -> AF_XDP through a small UMEM");
    assert_eq!(foreign, 0);
    println!(
        "UDP checksums of kernel-sent frames as seen by AF_XDP: {csum_ok} valid, \
         {csum_zero} zero, {csum_other} not final (checksum offload)"
    );

    let from = (Ipv4Addr::new(10, 77, 0, 1), port);
    let to1 = (Ipv4Addr::new(10, 77, 0, 2), 47_201);
    let mut k1_got: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut buf = vec![0u8; 2048];
    let mut full = 0usize;
    let start = Instant::now();
    for seq in 0..WRAP {
        let frame = build_udp(mac0, mac1, from, to1, seq as u16, &payload(b'V', seq));
        while !dev.tx(&frame).expect("tx") {
            assert!(start.elapsed() < WAIT, "tx frames never completed");
            full += 1;
            dev.flush().expect("flush");
            while let Ok((n, _)) = k1.recv_from(&mut buf) {
                let seq = u32::from_le_bytes(buf[1..5].try_into().unwrap());
                assert!(k1_got.insert(seq, buf[..n].to_vec()).is_none());
            }
        }
    }
    while k1_got.len() < WRAP && start.elapsed() < WAIT {
        dev.flush().expect("flush");
        while let Ok((n, _)) = k1.recv_from(&mut buf) {
            let seq = u32::from_le_bytes(buf[1..5].try_into().unwrap());
            assert!(k1_got.insert(seq, buf[..n].to_vec()).is_none());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("small UMEM tx: ring/frames full {full} time(s)");
    assert!(full > 0, "128 tx frames cannot hold {WRAP} datagrams");
    assert_eq!(k1_got.len(), WRAP, "AF_XDP -> kernel through a small UMEM");
    for seq in 0..WRAP {
        assert_eq!(k1_got[&(seq as u32)], payload(b'V', seq), "payload {seq}");
    }
    let (stats, bad) = dev.stats().expect("stats");
    println!("stats: {stats:?}, bad descriptors {bad}");
    assert_eq!((bad, stats.rx_dropped, stats.tx_invalid), (0, 0, 0));
    drop(dev);

    // A queue the interface does not have: a bind error naming the queue.
    let mut cfg = XdpConfig::new("eth0", port);
    cfg.queue = 5;
    match in_ns(&h0, || AfXdp::open(&cfg)) {
        Err(e @ XdpError::Bind { queue: 5, .. }) => println!("{e}"),
        other => panic!("expected a bind error, got {:?}", other.err()),
    }
    drop(lab);
}
