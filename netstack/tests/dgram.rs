//! The datagram transport on loopback (no root needed): the endpoint's
//! Noise handshake and encrypted records over Plume's reliability layer on
//! kernel UDP sockets, with loss injected in our own layer.

use plume_crypto::ed25519::SigningKey;
use plume_netstack::dgram::udp::KernelUdp;
use plume_netstack::dgram::{DgramConfig, DgramTransport};
use plume_netstack::{ChainId, Channel, Endpoint, NetConfig, PeerAddr, PeerId};
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn id(seed: u8) -> PeerId {
    PeerId::from(&key(seed).public_key())
}

fn net_cfg(listen: SocketAddr, members: &[u8], peers: &[(u8, SocketAddr)]) -> NetConfig {
    let mut c = NetConfig::new(listen, ChainId::from_name("plume-dgram"));
    c.allow = members.iter().map(|s| id(*s)).collect();
    c.peers = peers
        .iter()
        .map(|(s, a)| PeerAddr {
            id: id(*s),
            addr: *a,
        })
        .collect();
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.pool_bufs = 256;
    c
}

fn transport(drop_every: u64) -> DgramTransport {
    let io = KernelUdp::bind("127.0.0.1:0".parse::<SocketAddrV4>().unwrap()).unwrap();
    DgramTransport::start(
        Box::new(io),
        DgramConfig {
            drop_every,
            ..DgramConfig::default()
        },
    )
}

fn run<F: std::future::Future<Output = ()> + 'static>(f: F) {
    glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(f);
}

/// (dialer, listener) seeds: the endpoint with the smaller key dials.
fn ordered(a: u8, b: u8) -> (u8, u8) {
    if id(a) < id(b) {
        (a, b)
    } else {
        (b, a)
    }
}

fn payload(tag: u8, i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (k as u8).wrapping_mul(31) ^ tag ^ (i as u8))
        .collect()
}

#[test]
fn authenticated_messages_survive_injected_loss() {
    run(async {
        let (a, b) = ordered(11, 12);
        let tb = transport(7);
        let ta = transport(5);
        let (mb, ma) = (tb.metrics(), ta.metrics());
        let lb = SocketAddr::V4(tb.local());
        let eb = Endpoint::start(tb, net_cfg(lb, &[a, b], &[]), key(b)).unwrap();
        let la = SocketAddr::V4(ta.local());
        let ea = Endpoint::start(ta, net_cfg(la, &[a, b], &[(b, lb)]), key(a)).unwrap();
        assert!(ea.wait_connected(&[id(b)], Duration::from_secs(10)).await);
        assert!(eb.wait_connected(&[id(a)], Duration::from_secs(10)).await);
        // Votes (small) and batches (far larger than one datagram, so they
        // are fragmented) both ways.
        const VOTES: usize = 300;
        const BATCHES: usize = 12;
        let batch_len = 150_000;
        for i in 0..VOTES {
            ea.send(&id(b), Channel::Consensus, &payload(1, i, 120))
                .await
                .unwrap();
            eb.send(&id(a), Channel::Consensus, &payload(2, i, 90))
                .await
                .unwrap();
        }
        for i in 0..BATCHES {
            ea.send(&id(b), Channel::Bulk, &payload(3, i, batch_len))
                .await
                .unwrap();
            eb.send(&id(a), Channel::Bulk, &payload(4, i, batch_len))
                .await
                .unwrap();
        }
        for (ep, from, vtag, btag) in [(&eb, a, 1u8, 3u8), (&ea, b, 2, 4)] {
            let (mut votes, mut batches) = (0usize, 0usize);
            let vlen = if vtag == 1 { 120 } else { 90 };
            while votes < VOTES || batches < BATCHES {
                let m = plume_netstack_test_timeout(ep.recv()).await;
                assert_eq!(m.peer, id(from));
                match m.channel {
                    Channel::Consensus => {
                        assert_eq!(
                            m.payload(),
                            &payload(vtag, votes, vlen)[..],
                            "vote {votes} differs or is out of order"
                        );
                        votes += 1;
                    }
                    Channel::Bulk => {
                        assert_eq!(
                            m.payload(),
                            &payload(btag, batches, batch_len)[..],
                            "batch {batches} differs or is out of order"
                        );
                        batches += 1;
                    }
                }
            }
        }
        let (sa, sb) = (ma.snapshot(), mb.snapshot());
        eprintln!("a {sa:?}\nb {sb:?}");
        assert!(
            sa.injected_drops > 0 && sb.injected_drops > 0,
            "{sa:?} {sb:?}"
        );
        assert!(
            sa.retransmits > 0 && sb.retransmits > 0,
            "loss was injected, so data must have been resent: {sa:?} {sb:?}"
        );
        let (ea_m, eb_m) = (ea.metrics().snapshot(), eb.metrics().snapshot());
        assert_eq!((ea_m.handshakes_ok, eb_m.handshakes_ok), (1, 1));
        assert_eq!(ea_m.malformed_frames + eb_m.malformed_frames, 0);
    });
}

async fn plume_netstack_test_timeout<F: std::future::Future>(f: F) -> F::Output {
    let t = glommio::timer::Timer::new(Duration::from_secs(30));
    futures_lite::future::or(async { Some(f.await) }, async {
        t.await;
        None
    })
    .await
    .expect("timed out waiting for a message")
}

#[test]
fn non_member_is_refused_over_datagrams() {
    run(async {
        let tb = transport(0);
        let lb = SocketAddr::V4(tb.local());
        // Member set {1, 2}.
        let eb = Endpoint::start(tb, net_cfg(lb, &[1, 2], &[]), key(2)).unwrap();
        let ti = transport(0);
        let li = SocketAddr::V4(ti.local());
        // An intruder whose key sorts below 2's (so it is the one that
        // dials) believes it is a member and dials 2.
        let x = (3..64u8)
            .find(|s| id(*s) < id(2))
            .expect("some key sorts lower");
        let ei = Endpoint::start(ti, net_cfg(li, &[2, x], &[(2, lb)]), key(x)).unwrap();
        glommio::timer::sleep(Duration::from_millis(1500)).await;
        assert!(!eb.is_connected(&id(x)));
        assert!(!ei.is_connected(&id(2)));
        let m = eb.metrics().snapshot();
        assert!(
            m.handshakes_not_allowed + m.handshakes_rate_limited >= 1,
            "the listener refused the intruder: {m:?}"
        );
    });
}

/// 1,000 SYNs from 200 loopback addresses that never answer (as spoofed
/// sources never can) leave the listener holding no connection state: it
/// answers each with a cookie, and members connect meanwhile.
#[test]
fn a_syn_flood_holds_no_state_and_members_still_connect() {
    use plume_netstack::dgram::proto::{Header, Kind, HEADER, SACK_WORDS};
    run(async {
        let (a, b) = ordered(5, 6);
        let tb = transport(0);
        let lb = SocketAddr::V4(tb.local());
        let tb_metrics = tb.metrics();
        let eb = Endpoint::start(tb, net_cfg(lb, &[a, b], &[]), key(b)).unwrap();
        // The flood: SYNs with fresh connection ids from 127.0.0.10-209.
        let socks: Vec<std::net::UdpSocket> = (10..210u8)
            .filter_map(|i| {
                std::net::UdpSocket::bind((std::net::Ipv4Addr::new(127, 0, 0, i), 0)).ok()
            })
            .collect();
        assert_eq!(socks.len(), 200);
        let mut syn = [0u8; HEADER];
        for k in 0..1000u32 {
            Header {
                kind: Kind::Syn,
                conn: 0xF000_0000 | k,
                seq: 0,
                ack: 0,
                sack: [0; SACK_WORDS],
                window: 64,
            }
            .encode(0, &mut syn);
            let _ = socks[k as usize % socks.len()].send_to(&syn, lb);
            if k % 50 == 0 {
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        }
        // A member dials during the flood's aftermath.
        let ta = transport(0);
        let la = SocketAddr::V4(ta.local());
        let ea = Endpoint::start(ta, net_cfg(la, &[a, b], &[(b, lb)]), key(a)).unwrap();
        assert!(
            ea.wait_connected(&[id(b)], Duration::from_secs(5)).await,
            "the member connected"
        );
        ea.send(&id(b), Channel::Consensus, b"through")
            .await
            .unwrap();
        assert_eq!(eb.recv().await.payload(), b"through");
        let m = tb_metrics.snapshot();
        assert!(
            m.cookies_sent + m.conns_refused >= 1000,
            "every SYN was answered statelessly or refused: {m:?}"
        );
        assert!(m.cookies_sent >= 64, "{m:?}");
        drop(socks);
    });
}
