//! Authenticated validator links over the kernel-bypass devices, between
//! two network namespaces joined by a veth pair: the endpoint's Noise
//! handshake and encrypted records over Plume's reliability layer, on an
//! AF_XDP socket at both ends, and on a DPDK port (net_af_packet vdev)
//! facing an AF_XDP socket. Every k-th datagram is dropped in our own layer
//! so that delivery depends on retransmission. Needs root (namespaces,
//! XDP, DPDK); skips with a message otherwise.
#![cfg(feature = "af-xdp")]

use plume_crypto::ed25519::SigningKey;
use plume_netstack::dgram::open::{open, Device, OpenSpec};
use plume_netstack::dgram::{DgramConfig, DgramMetricsSnapshot, DgramTransport};
use plume_netstack::netns::{self, Lab};
use plume_netstack::{ChainId, Channel, Endpoint, NetConfig, PeerAddr, PeerId};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PORT: u16 = 7800;
const VOTES: usize = 200;
const BATCHES: usize = 8;
const BATCH_LEN: usize = 100_000;

fn key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[70 + i as u8; 32])
}

fn id(i: usize) -> PeerId {
    PeerId::from(&key(i).public_key())
}

fn payload(from: usize, ch: u8, i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (k as u8).wrapping_mul(17) ^ (from as u8 * 64) ^ ch ^ (i as u8))
        .collect()
}

fn v4(ip: IpAddr) -> SocketAddrV4 {
    match ip {
        IpAddr::V4(a) => SocketAddrV4::new(a, PORT),
        IpAddr::V6(_) => panic!("lab addresses are IPv4"),
    }
}

/// What one side reports back.
struct Outcome {
    mode: String,
    dgram: DgramMetricsSnapshot,
    handshakes_ok: u64,
    malformed: u64,
}

/// Run host `me` of the pair in its namespace: open `device`, start an
/// endpoint over it, exchange messages with the other host, verify them.
fn host(
    lab_ns: String,
    me: usize,
    addrs: [SocketAddrV4; 2],
    device: Device,
    drop_every: u64,
    done: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<Result<Outcome, String>> {
    std::thread::spawn(move || {
        netns::enter(&lab_ns).map_err(|e| format!("setns: {e}"))?;
        let ex = glommio::LocalExecutorBuilder::default()
            .make()
            .map_err(|e| e.to_string())?;
        ex.run(async move {
            let io = open(&OpenSpec {
                local: addrs[me],
                prefix_len: 24,
                gateway: None,
                device,
            })?;
            let t = DgramTransport::start(
                io,
                DgramConfig {
                    drop_every,
                    ..DgramConfig::default()
                },
            );
            let mode = t.mode().to_string();
            let dm = t.metrics();
            let other = 1 - me;
            let mut c = NetConfig::new(SocketAddr::V4(addrs[me]), ChainId::from_name("bypass"));
            c.allow = vec![id(0), id(1)];
            c.peers = vec![PeerAddr {
                id: id(other),
                addr: SocketAddr::V4(addrs[other]),
            }];
            c.backoff_min = Duration::from_millis(50);
            c.backoff_max = Duration::from_millis(500);
            c.pool_bufs = 256;
            let ep = Endpoint::start(t, c, key(me)).map_err(|e| e.to_string())?;
            if !ep
                .wait_connected(&[id(other)], Duration::from_secs(20))
                .await
            {
                return Err(format!(
                    "host {me} ({mode}): no session with the other host"
                ));
            }
            for i in 0..VOTES {
                ep.send(&id(other), Channel::Consensus, &payload(me, 0, i, 100))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            for i in 0..BATCHES {
                ep.send(&id(other), Channel::Bulk, &payload(me, 1, i, BATCH_LEN))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let (mut votes, mut batches) = (0, 0);
            let deadline = Instant::now() + Duration::from_secs(60);
            while votes < VOTES || batches < BATCHES {
                if Instant::now() > deadline {
                    return Err(format!(
                        "host {me}: got {votes}/{VOTES} votes, {batches}/{BATCHES} batches in 60 s"
                    ));
                }
                let Some(m) = ep.try_recv() else {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                    continue;
                };
                if m.peer != id(other) {
                    return Err("message from an unexpected peer".into());
                }
                match m.channel {
                    Channel::Consensus => {
                        if m.payload() != payload(other, 0, votes, 100) {
                            return Err(format!("vote {votes} differs or is out of order"));
                        }
                        votes += 1;
                    }
                    Channel::Bulk => {
                        if m.payload() != payload(other, 1, batches, BATCH_LEN) {
                            return Err(format!("batch {batches} differs or is out of order"));
                        }
                        batches += 1;
                    }
                }
            }
            // Keep the link up until the other side has everything too
            // (it may still need our acknowledgements).
            done.fetch_add(1, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(60);
            while done.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
                glommio::timer::sleep(Duration::from_millis(5)).await;
            }
            let m = ep.metrics().snapshot();
            Ok(Outcome {
                mode,
                dgram: dm.snapshot(),
                handshakes_ok: m.handshakes_ok,
                malformed: m.malformed_frames,
            })
        })
    })
}

fn pair(tag: &str, devices: [Device; 2], drop_every: u64) -> Option<[Outcome; 2]> {
    if let Some(why) = netns::unavailable() {
        eprintln!("SKIPPED {tag}: {why}");
        return None;
    }
    let lab = Lab::veth_pair(tag).expect("create namespaces");
    let addrs = [v4(lab.addrs[0]), v4(lab.addrs[1])];
    let done = Arc::new(AtomicUsize::new(0));
    let [d0, d1] = devices;
    let h0 = host(lab.hosts[0].clone(), 0, addrs, d0, drop_every, done.clone());
    let h1 = host(lab.hosts[1].clone(), 1, addrs, d1, drop_every, done);
    let r0 = h0.join().expect("host 0 thread");
    let r1 = h1.join().expect("host 1 thread");
    let (o0, o1) = match (r0, r1) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => panic!("host 0: {:?}\nhost 1: {:?}", a.err(), b.err()),
    };
    for o in [&o0, &o1] {
        assert_eq!(o.handshakes_ok, 1, "{}: one authenticated session", o.mode);
        assert_eq!(o.malformed, 0, "{}", o.mode);
        assert!(o.dgram.datagrams_sent > 0 && o.dgram.datagrams_received > 0);
        if drop_every > 0 {
            assert!(o.dgram.injected_drops > 0, "{}: {:?}", o.mode, o.dgram);
            assert!(
                o.dgram.retransmits > 0,
                "{}: datagrams were dropped, so data must have been resent: {:?}",
                o.mode,
                o.dgram
            );
        }
    }
    Some([o0, o1])
}

fn xdp() -> Device {
    Device::AfXdp {
        interface: "eth0".into(),
        queue: 0,
        force_skb: false,
        force_copy: false,
    }
}

#[test]
fn af_xdp_endpoints_exchange_authenticated_messages_despite_loss() {
    let Some([a, b]) = pair("axl", [xdp(), xdp()], 9) else {
        return;
    };
    assert!(
        a.mode.starts_with("af_xdp") && b.mode.starts_with("af_xdp"),
        "{} / {}",
        a.mode,
        b.mode
    );
    eprintln!(
        "af_xdp mode: {}\nhost 0 {:?}\nhost 1 {:?}",
        a.mode, a.dgram, b.dgram
    );
}

#[test]
fn af_xdp_generic_mode_without_loss() {
    let skb = || Device::AfXdp {
        interface: "eth0".into(),
        queue: 0,
        force_skb: true,
        force_copy: true,
    };
    let Some([a, b]) = pair("axg", [skb(), skb()], 0) else {
        return;
    };
    assert!(a.mode.contains("skb"), "{}", a.mode);
    eprintln!("{}\nhost 0 {:?}\nhost 1 {:?}", a.mode, a.dgram, b.dgram);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_endpoint_talks_to_af_xdp_endpoint_despite_loss() {
    let dpdk = Device::Dpdk {
        device: "net_af_packet0".into(),
        lcore: 0,
        mem_mb: 128,
        no_huge: true,
        vdevs: vec!["net_af_packet0,iface=eth0".into()],
        pci_allow: Vec::new(),
    };
    let Some([a, b]) = pair("dpl", [dpdk, xdp()], 9) else {
        return;
    };
    assert!(a.mode.starts_with("dpdk"), "{}", a.mode);
    assert!(b.mode.starts_with("af_xdp"), "{}", b.mode);
}
