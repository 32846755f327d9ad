//! A real DPDK port (feature `dpdk`) in a network namespace: the
//! `net_af_packet` virtual device bound to h0's veth `eth0`, exchanging
//! hand-built Ethernet/IPv4/UDP frames with a kernel UDP socket in h1, both
//! directions, exact payloads. Needs root and `ip`; skips with a message
//! otherwise.
//!
//! Everything that touches the EAL is in ONE test function: DPDK can be
//! initialized once per process, and with plain `cargo test` tests share a
//! process (nextest runs each in its own).
#![cfg(feature = "dpdk")]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plume_netstack::dgram::device::FrameIo;
use plume_netstack::dgram::dpdk::{eal_init, DpdkError, DpdkPort, EalConfig, PortConfig};
use plume_netstack::netns::{self, Lab};

/// Datagrams per direction.
const COUNT: usize = 100;
/// Largest UDP payload sent.
const PAYLOAD_MAX: usize = 1400;
/// Send rounds (re-sending what is missing) before giving up.
const ROUNDS_MAX: usize = 5;
/// How long one round waits for everything to arrive.
const ROUND_WAIT: Duration = Duration::from_secs(2);
/// Hard bound on the whole exchange in each direction.
const DIRECTION_DEADLINE: Duration = Duration::from_secs(20);
const DPDK_PORT: u16 = 47001;
const KERNEL_PORT: u16 = 47002;
const DPDK_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const KERNEL_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const VDEV: &str = "net_af_packet0";

/// Payload `i` of direction `dir`: its index (4 bytes) then a pattern,
/// 4..=PAYLOAD_MAX bytes long (index 0 is the largest).
fn payload(dir: u8, i: usize) -> Vec<u8> {
    let len = if i == 0 {
        PAYLOAD_MAX
    } else {
        4 + (i * 97) % (PAYLOAD_MAX - 3)
    };
    let mut p = (i as u32).to_be_bytes().to_vec();
    p.extend((4..len).map(|j| (j as u8).wrapping_mul(31).wrapping_add(i as u8) ^ dir));
    assert_eq!(p.len(), len);
    p
}

fn index_of(p: &[u8]) -> Option<usize> {
    let i = u32::from_be_bytes(p.get(..4)?.try_into().ok()?) as usize;
    (i < COUNT).then_some(i)
}

/// One's-complement sum over `data` (odd tail padded with zero), folded.
fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Ethernet + IPv4 (checksummed) + UDP (checksummed) frame.
fn build_udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    id: u16,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(ip_len as u16).to_be_bytes());
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, offset 0
    f.extend_from_slice(&[64, 17, 0, 0]); // TTL, UDP, checksum placeholder
    f.extend_from_slice(&src.ip().octets());
    f.extend_from_slice(&dst.ip().octets());
    let ip_sum = csum_fold(csum_add(0, &f[ip_start..ip_start + 20]));
    f[ip_start + 10..ip_start + 12].copy_from_slice(&ip_sum.to_be_bytes());
    let udp_start = f.len();
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    // Pseudo-header: src, dst, zero, protocol, UDP length.
    let mut sum = csum_add(0, &src.ip().octets());
    sum = csum_add(sum, &dst.ip().octets());
    sum = csum_add(sum, &[0, 17]);
    sum = csum_add(sum, &(udp_len as u16).to_be_bytes());
    sum = csum_add(sum, &f[udp_start..]);
    let udp_sum = match csum_fold(sum) {
        0 => 0xffff,
        s => s,
    };
    f[udp_start + 6..udp_start + 8].copy_from_slice(&udp_sum.to_be_bytes());
    f
}

/// A parsed IPv4/UDP frame.
#[derive(Debug)]
struct Udp<'a> {
    src_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload: &'a [u8],
}

/// Parse an Ethernet/IPv4/UDP frame, checking the IPv4 header checksum and
/// the lengths. None for anything else.
fn parse_udp(f: &[u8]) -> Option<Udp<'_>> {
    if f.len() < 14 + 20 + 8 || f[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &f[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl + 8 || ip[9] != 17 {
        return None;
    }
    if csum_fold(csum_add(0, &ip[..ihl])) != 0 {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total > ip.len() || total < ihl + 8 {
        return None;
    }
    let udp = &ip[ihl..total];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len != udp.len() {
        return None;
    }
    let a = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    Some(Udp {
        src_mac: f[6..12].try_into().ok()?,
        src: SocketAddrV4::new(a(&ip[12..16]), port(&udp[0..2])),
        dst: SocketAddrV4::new(a(&ip[16..20]), port(&udp[2..4])),
        payload: &udp[8..],
    })
}

fn mac_of(ns: &str) -> [u8; 6] {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-j", "link", "show", "eth0"])
        .output()
        .expect("run ip");
    assert!(out.status.success(), "ip link show failed");
    let s = String::from_utf8_lossy(&out.stdout);
    let key = "\"address\":\"";
    let at = s.find(key).expect("address in ip -j output") + key.len();
    let hex: Vec<u8> = s[at..at + 17]
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).expect("hex MAC"))
        .collect();
    hex.try_into().expect("6-byte MAC")
}

#[test]
fn udp_checksum_builder_round_trips() {
    // The builder/parser used below, checked against itself and a known
    // IPv4 header checksum (RFC 1071 example header).
    let hdr = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];
    assert_eq!(csum_fold(csum_add(0, &hdr)), 0xb861);
    let p = payload(0, 7);
    let f = build_udp_frame(
        [2; 6],
        [4; 6],
        SocketAddrV4::new(DPDK_IP, 1),
        SocketAddrV4::new(KERNEL_IP, 2),
        9,
        &p,
    );
    let u = parse_udp(&f).expect("parses");
    assert_eq!(u.payload, &p[..]);
    assert_eq!(u.src_mac, [2; 6]);
    assert_eq!(u.dst, SocketAddrV4::new(KERNEL_IP, 2));
    let mut bad = f.clone();
    bad[14 + 8] ^= 1; // TTL: header checksum no longer matches
    assert!(parse_udp(&bad).is_none());
}

/// What the DPDK side saw, for the assertions and the report.
#[derive(Debug, Default)]
struct DpdkSide {
    mode: String,
    mac: [u8; 6],
    frame_max: usize,
    /// Payloads of kernel -> DPDK datagrams, by index.
    got: BTreeMap<usize, Vec<u8>>,
    rx_frames: usize,
    rx_arp: usize,
    /// Frames whose source MAC is our own (h0's kernel transmitting on the
    /// interface the af_packet socket is bound to).
    rx_own_mac: usize,
    /// Of those, ICMP (h0's kernel answering "port unreachable": the
    /// af_packet vdev gets a copy of each frame, the kernel still sees it).
    rx_own_icmp: usize,
    tx_rounds: usize,
    not_found_error: String,
}

#[test]
fn dpdk_af_packet_exchanges_udp_with_kernel_socket() {
    if let Some(why) = netns::unavailable() {
        eprintln!("SKIPPED dpdk_af_packet_exchanges_udp_with_kernel_socket: {why}");
        return;
    }
    let lab = Lab::veth_pair("dp").expect("veth pair lab");
    let (h0, h1) = (lab.hosts[0].clone(), lab.hosts[1].clone());
    let h1_mac = mac_of(&h1);

    // Direction 1 (DPDK -> kernel): indices the kernel socket received.
    let k_got: Arc<Mutex<BTreeMap<usize, Vec<u8>>>> = Arc::default();
    // Direction 2 (kernel -> DPDK): set by the DPDK side once all arrived.
    let d_done = Arc::new(AtomicBool::new(false));
    let k_ready = Arc::new(AtomicBool::new(false));
    let d_ready = Arc::new(AtomicBool::new(false));

    let kernel = {
        let (k_got, d_done, k_ready, d_ready) = (
            k_got.clone(),
            d_done.clone(),
            k_ready.clone(),
            d_ready.clone(),
        );
        std::thread::spawn(move || {
            netns::enter(&h1).expect("enter h1");
            let sock = UdpSocket::bind(SocketAddrV4::new(KERNEL_IP, KERNEL_PORT)).expect("bind");
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .expect("timeout");
            k_ready.store(true, Ordering::SeqCst);
            // Direction 1: receive until all arrived or the deadline.
            let t0 = Instant::now();
            let mut buf = vec![0u8; 2048];
            while k_got.lock().unwrap().len() < COUNT && t0.elapsed() < DIRECTION_DEADLINE {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        assert_eq!(from, SocketAddrV4::new(DPDK_IP, DPDK_PORT).into());
                        if let Some(i) = index_of(&buf[..n]) {
                            k_got.lock().unwrap().insert(i, buf[..n].to_vec());
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => panic!("recv: {e}"),
                }
            }
            // Direction 2: send everything, re-send whole rounds until the
            // DPDK side has all of it (bounded).
            let t0 = Instant::now();
            while !d_ready.load(Ordering::SeqCst) && t0.elapsed() < DIRECTION_DEADLINE {
                std::thread::sleep(Duration::from_millis(10));
            }
            let to = SocketAddrV4::new(DPDK_IP, DPDK_PORT);
            let mut rounds = 0;
            while !d_done.load(Ordering::SeqCst) && rounds < ROUNDS_MAX {
                rounds += 1;
                for i in 0..COUNT {
                    sock.send_to(&payload(0x55, i), to).expect("send_to");
                }
                let t = Instant::now();
                while !d_done.load(Ordering::SeqCst) && t.elapsed() < ROUND_WAIT {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            rounds
        })
    };

    let dpdk = {
        let (k_got, d_done, k_ready, d_ready) = (
            k_got.clone(),
            d_done.clone(),
            k_ready.clone(),
            d_ready.clone(),
        );
        std::thread::spawn(move || -> DpdkSide {
            netns::enter(&h0).expect("enter h0");
            let cfg = EalConfig {
                lcore: 0,
                mem_mb: 128,
                no_huge: true,
                no_pci: true,
                vdevs: vec![format!("{VDEV},iface=eth0")],
                pci_allow: vec![],
                // e.g. PLUME_DPDK_EAL_EXTRA=--log-level=8 to see DPDK's log.
                extra: std::env::var("PLUME_DPDK_EAL_EXTRA")
                    .map(|v| v.split_whitespace().map(str::to_owned).collect())
                    .unwrap_or_default(),
            };
            eal_init(&cfg).expect("EAL init");
            // A second init is a no-op.
            eal_init(&cfg).expect("EAL init again");
            let mut side = DpdkSide::default();

            // Wrong names are clear errors that list what exists.
            match DpdkPort::open("net_nosuch0", &PortConfig::default()) {
                Err(e @ DpdkError::DeviceNotFound { .. }) => {
                    side.not_found_error = e.to_string();
                }
                other => panic!("expected DeviceNotFound, got {other:?}"),
            }
            assert!(matches!(
                DpdkPort::open("bad\0name", &PortConfig::default()),
                Err(DpdkError::Config(_))
            ));
            let bad_sizes = PortConfig {
                burst: 0,
                ..PortConfig::default()
            };
            assert!(matches!(
                DpdkPort::open(VDEV, &bad_sizes),
                Err(DpdkError::Config(_))
            ));

            let mut port = DpdkPort::open(VDEV, &PortConfig::default()).expect("open port");
            assert!(matches!(
                DpdkPort::open(VDEV, &PortConfig::default()),
                Err(DpdkError::AlreadyOpen(_))
            ));
            side.mode = port.mode();
            side.mac = port.mac();
            side.frame_max = port.frame_max();
            assert!(side.frame_max >= 14 + 20 + 8 + PAYLOAD_MAX);
            let too_big = vec![0u8; side.frame_max + 1];
            assert!(port.tx(&too_big).is_err());
            assert!(port.tx(&[0u8; 5]).is_err());

            // Direction 1: DPDK -> kernel socket in h1.
            let t0 = Instant::now();
            while !k_ready.load(Ordering::SeqCst) && t0.elapsed() < DIRECTION_DEADLINE {
                std::thread::sleep(Duration::from_millis(10));
            }
            let src = SocketAddrV4::new(DPDK_IP, DPDK_PORT);
            let dst = SocketAddrV4::new(KERNEL_IP, KERNEL_PORT);
            let frames: Vec<Vec<u8>> = (0..COUNT)
                .map(|i| build_udp_frame(side.mac, h1_mac, src, dst, i as u16, &payload(0, i)))
                .collect();
            while k_got.lock().unwrap().len() < COUNT && side.tx_rounds < ROUNDS_MAX {
                side.tx_rounds += 1;
                let missing: Vec<usize> = {
                    let got = k_got.lock().unwrap();
                    (0..COUNT).filter(|i| !got.contains_key(i)).collect()
                };
                for i in missing {
                    let mut tries = 0;
                    while !port.tx(&frames[i]).expect("tx") {
                        port.flush().expect("flush");
                        tries += 1;
                        assert!(tries < 10_000, "tx ring never drained");
                    }
                }
                let t = Instant::now();
                while port.tx_pending() > 0 && t.elapsed() < ROUND_WAIT {
                    port.flush().expect("flush");
                }
                let t = Instant::now();
                while k_got.lock().unwrap().len() < COUNT && t.elapsed() < ROUND_WAIT {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }

            // Direction 2: kernel socket in h1 -> DPDK rx.
            d_ready.store(true, Ordering::SeqCst);
            let t0 = Instant::now();
            while side.got.len() < COUNT && t0.elapsed() < DIRECTION_DEADLINE {
                let n = port
                    .rx(64, &mut |f: &[u8]| {
                        side.rx_frames += 1;
                        if f[6..12] == side.mac {
                            side.rx_own_mac += 1;
                            if f.len() > 23 && f[12..14] == [0x08, 0x00] && f[23] == 1 {
                                side.rx_own_icmp += 1;
                            }
                        }
                        if f.len() >= 14 && f[12..14] == [0x08, 0x06] {
                            side.rx_arp += 1;
                        }
                        if let Some(u) = parse_udp(f) {
                            if u.dst == src && u.src == dst {
                                assert_eq!(u.src_mac, h1_mac);
                                if let Some(i) = index_of(u.payload) {
                                    side.got.insert(i, u.payload.to_vec());
                                }
                            }
                        }
                    })
                    .expect("rx");
                if n == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            d_done.store(true, Ordering::SeqCst);
            // Keep polling briefly so late frames (and h0's own kernel
            // replies) show up in the counters.
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(200) {
                port.rx(64, &mut |f: &[u8]| {
                    side.rx_frames += 1;
                    if f[6..12] == side.mac {
                        side.rx_own_mac += 1;
                    }
                })
                .expect("rx");
            }
            drop(port);
            side
        })
    };

    let side = dpdk.join().expect("dpdk thread");
    let k_rounds = kernel.join().expect("kernel thread");
    let k_got = k_got.lock().unwrap();
    eprintln!(
        "dpdk: mode {:?}, mac {:02x?}, frame_max {}, tx rounds {}, kernel send rounds {k_rounds}, \
         rx frames {} (arp {}, own mac {}, own icmp {})",
        side.mode,
        side.mac,
        side.frame_max,
        side.tx_rounds,
        side.rx_frames,
        side.rx_arp,
        side.rx_own_mac,
        side.rx_own_icmp
    );
    eprintln!("not-found error: {}", side.not_found_error);

    assert!(side.mode.starts_with("dpdk net_af_packet0 (vdev, no-huge"));
    assert!(
        side.not_found_error.contains("net_nosuch0") && side.not_found_error.contains(VDEV),
        "{}",
        side.not_found_error
    );
    // The af_packet vdev takes the kernel interface's MAC.
    assert_eq!(side.mac, mac_of(&lab.hosts[0]));
    assert_eq!(k_got.len(), COUNT, "DPDK -> kernel: missing datagrams");
    for (i, p) in k_got.iter() {
        assert_eq!(*p, payload(0, *i), "DPDK -> kernel payload {i}");
    }
    assert_eq!(side.got.len(), COUNT, "kernel -> DPDK: missing datagrams");
    for (i, p) in side.got.iter() {
        assert_eq!(*p, payload(0x55, *i), "kernel -> DPDK payload {i}");
    }
    drop(lab);
}

/// Env var naming the EAL failure case `eal_failure_child` runs (unset: it
/// is the parent's helper, run only through `eal_failure_case`).
const CHILD_CASE: &str = "PLUME_DPDK_CHILD_CASE";

/// Entry point for a child process: DPDK initializes once per process, so
/// each failing EAL start is tried in a fresh copy of this test binary.
#[test]
fn eal_failure_child() {
    let Ok(case) = std::env::var(CHILD_CASE) else {
        return;
    };
    let mut cfg = EalConfig {
        lcore: 0,
        mem_mb: 128,
        no_huge: true,
        no_pci: true,
        vdevs: vec![],
        pci_allow: vec![],
        extra: vec![],
    };
    match case.as_str() {
        "huge" => cfg.no_huge = false,
        "iface" => cfg.vdevs = vec![format!("{VDEV},iface=plumenosuch0")],
        other => panic!("unknown case {other}"),
    }
    match eal_init(&cfg) {
        Err(first) => {
            println!("FIRST: {first}");
            let again = eal_init(&cfg).expect_err("a failed EAL stays failed");
            println!("AGAIN: {again}");
        }
        // A vdev that fails to probe does not fail rte_eal_init.
        Ok(()) => println!("FIRST: ok"),
    }
    let open = DpdkPort::open(VDEV, &PortConfig::default()).expect_err("no port");
    println!("OPEN: {open}");
}

/// Run `eal_failure_child` for `case` in a child process; its stdout.
fn eal_failure_case(case: &str) -> String {
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "eal_failure_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_CASE, case)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child {case} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn eal_failures_are_clear_errors() {
    if let Some(why) = netns::unavailable() {
        eprintln!("SKIPPED eal_failures_are_clear_errors: {why}");
        return;
    }
    let line = |out: &str, tag: &str| -> String {
        out.lines()
            // libtest may print "test NAME ... " in front of the first line.
            .find_map(|l| l.split_once(tag).map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("no {tag} line in:\n{out}"))
            .to_string()
    };
    // A vdev bound to an interface that does not exist.
    let out = eal_failure_case("iface");
    eprintln!("{out}");
    // DPDK still starts; opening the device names the failed probe.
    assert_eq!(line(&out, "FIRST: "), "ok");
    let open = line(&out, "OPEN: ");
    assert!(open.contains("failed to probe at EAL init"), "{open}");
    assert!(open.contains("iface=plumenosuch0"), "{open}");
    // Huge pages asked for on a host that has none reserved.
    let none_reserved = std::fs::read_to_string("/proc/meminfo")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().eq(["HugePages_Total:", "0"]))
        })
        .unwrap_or(false);
    if none_reserved {
        let out = eal_failure_case("huge");
        eprintln!("{out}");
        let first = line(&out, "FIRST: ");
        assert!(first.contains("no_huge = true"), "{first}");
        assert!(first.contains("nr_hugepages"), "{first}");
        assert!(line(&out, "AGAIN: ").contains("already failed in this process"));
        assert!(line(&out, "OPEN: ").contains("already failed in this process"));
    } else {
        eprintln!("huge-page failure case not run: this host has huge pages reserved");
    }
}
