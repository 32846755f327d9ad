//! Endpoints on 127.0.0.1 in one glommio executor: handshake, refusals,
//! replay, malformed frames, idle timeout, restart, backpressure.

use plume_crypto::ed25519::SigningKey;
use plume_netstack::frame::{frame_header, FrameKind};
use plume_netstack::handshake::{HandshakeConfig, Initiator};
use plume_netstack::session::sealed_len;
use plume_netstack::tcp::{TcpReader, TcpWriter};
use plume_netstack::transport::{Connection, RecordReader, RecordWriter, Transport};
use plume_netstack::{
    AllowList, ChainId, Channel, Endpoint, GlommioTcp, NetConfig, NetError, PeerAddr, PeerId,
    SendError,
};
use std::net::SocketAddr;
use std::time::Duration;

const CHAIN: &str = "plume-test";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn id(seed: u8) -> PeerId {
    PeerId::from(&key(seed).public_key())
}

/// Two seeds ordered so that the first has the smaller id (it dials).
fn ordered(a: u8, b: u8) -> (u8, u8) {
    if id(a) < id(b) {
        (a, b)
    } else {
        (b, a)
    }
}

fn cfg(listen: SocketAddr, members: &[u8], peers: &[(u8, SocketAddr)]) -> NetConfig {
    let mut c = NetConfig::new(listen, ChainId::from_name(CHAIN));
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
    c.idle_timeout = Duration::from_secs(5);
    c.keepalive = Duration::from_millis(500);
    c
}

fn any() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn run<F: std::future::Future<Output = ()> + 'static>(f: F) {
    glommio::LocalExecutorBuilder::default()
        .make()
        .unwrap()
        .run(f);
}

async fn sleep_ms(ms: u64) {
    glommio::timer::sleep(Duration::from_millis(ms)).await;
}

/// A pair: `a` dials `b`.
fn pair(a: u8, b: u8) -> (Endpoint<GlommioTcp>, Endpoint<GlommioTcp>) {
    let eb = Endpoint::start(GlommioTcp, cfg(any(), &[a, b], &[]), key(b)).unwrap();
    let ea = Endpoint::start(
        GlommioTcp,
        cfg(any(), &[a, b], &[(b, eb.local_addr())]),
        key(a),
    )
    .unwrap();
    (ea, eb)
}

#[test]
fn members_exchange_messages_on_both_channels() {
    run(async {
        let (a, b) = ordered(1, 2);
        let (ea, eb) = pair(a, b);
        assert!(ea.wait_connected(&[id(b)], Duration::from_secs(5)).await);
        assert!(eb.wait_connected(&[id(a)], Duration::from_secs(5)).await);
        ea.send(&id(b), Channel::Consensus, b"vote").await.unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect(); // several Noise chunks
        eb.send(&id(a), Channel::Bulk, &big).await.unwrap();
        let m = eb.recv().await;
        assert_eq!(
            (m.peer, m.channel, m.payload()),
            (id(a), Channel::Consensus, &b"vote"[..])
        );
        let m = ea.recv().await;
        assert_eq!((m.peer, m.channel), (id(b), Channel::Bulk));
        assert_eq!(m.payload(), &big[..]);
        let too_big = vec![0u8; (1 << 20) + 1];
        assert!(matches!(
            ea.send(&id(b), Channel::Bulk, &too_big).await,
            Err(SendError::TooLarge { .. })
        ));
        assert_eq!(
            ea.try_send(&id(9), Channel::Bulk, b"x"),
            Err(SendError::UnknownPeer(id(9)))
        );
        let (ma, mb) = (ea.metrics().snapshot(), eb.metrics().snapshot());
        assert_eq!((ma.handshakes_ok, mb.handshakes_ok), (1, 1));
        assert_eq!(ma.malformed_frames + mb.malformed_frames, 0);
        assert_eq!(mb.frames_received, 1);
    });
}

/// A raw client: TCP + a manual handshake as `me`, towards `to`.
async fn raw_connect(addr: SocketAddr) -> (TcpReader, TcpWriter) {
    let c = GlommioTcp
        .connect(addr, Duration::from_secs(2))
        .await
        .unwrap();
    c.split(1 << 21, 1 << 16)
}

async fn send_record(w: &mut TcpWriter, body: &[u8]) {
    w.reserve(body.len()).copy_from_slice(body);
    w.flush().await.unwrap();
}

fn hs_cfg(me: u8, chain: &str, members: &[u8]) -> HandshakeConfig {
    let allow = AllowList::new(members.iter().map(|s| id(*s))).unwrap();
    HandshakeConfig::new(ChainId::from_name(chain), key(me), allow, false).unwrap()
}

/// Run the initiator side by hand; returns the halves, the established
/// state if the responder answered, and the messages we sent.
async fn manual_handshake(
    addr: SocketAddr,
    hc: &HandshakeConfig,
) -> (
    TcpReader,
    TcpWriter,
    Result<plume_netstack::handshake::Established, String>,
    Vec<Vec<u8>>,
) {
    let (mut r, mut w) = raw_connect(addr).await;
    let (i, m1) = Initiator::start(hc, None).unwrap();
    send_record(&mut w, &m1).await;
    let m2 = match r.next_record().await {
        Ok(m) => m.to_vec(),
        Err(e) => return (r, w, Err(e.to_string()), vec![m1]),
    };
    match i.finish(hc, &m2) {
        Ok((est, m3)) => {
            send_record(&mut w, &m3).await;
            (r, w, Ok(est), vec![m1, m3])
        }
        Err(e) => (r, w, Err(e.to_string()), vec![m1]),
    }
}

async fn send_data(
    w: &mut TcpWriter,
    est: &mut plume_netstack::handshake::Established,
    msg: &[u8],
) {
    let mut plain = frame_header(FrameKind::Data, Channel::Consensus).to_vec();
    plain.extend_from_slice(msg);
    let out = w.reserve(sealed_len(plain.len(), true));
    est.cipher.seal(&plain, out).unwrap();
    w.flush().await.unwrap();
}

#[test]
fn non_member_is_dropped_during_handshake() {
    run(async {
        let ea = Endpoint::start(GlommioTcp, cfg(any(), &[1, 2], &[]), key(1)).unwrap();
        // Mallory (key 7) allows A, but A does not allow Mallory.
        let hc = hs_cfg(7, CHAIN, &[1, 7]);
        let (mut r, mut w, est, _) = manual_handshake(ea.local_addr(), &hc).await;
        let mut est = est.expect("A answers msg1 before it knows who is calling");
        // Mallory thinks it is in and sends an application frame at once.
        send_data(&mut w, &mut est, b"let me in").await;
        assert!(
            matches!(
                r.next_record().await,
                Err(NetError::Closed) | Err(NetError::Io(_))
            ),
            "A closes the link"
        );
        sleep_ms(50).await;
        assert!(
            ea.try_recv().is_none(),
            "nothing from a non-member is delivered"
        );
        let m = ea.metrics().snapshot();
        assert_eq!(
            (m.handshakes_not_allowed, m.handshakes_ok, m.frames_received),
            (1, 0, 0)
        );
        assert!(ea.connected_peers().is_empty());
    });
}

#[test]
fn wrong_chain_is_refused() {
    run(async {
        let ea = Endpoint::start(GlommioTcp, cfg(any(), &[1, 2], &[]), key(1)).unwrap();
        let hc = hs_cfg(2, "another-chain", &[1, 2]);
        let (_r, _w, est, _) = manual_handshake(ea.local_addr(), &hc).await;
        assert!(est.is_err(), "A refuses msg1 and closes");
        let m = ea.metrics().snapshot();
        assert_eq!((m.handshakes_wrong_chain, m.handshakes_ok), (1, 0));
    });
}

#[test]
fn replayed_handshake_is_refused() {
    run(async {
        let ea = Endpoint::start(GlommioTcp, cfg(any(), &[1, 2], &[]), key(1)).unwrap();
        let hc = hs_cfg(2, CHAIN, &[1, 2]);
        let (_r, _w, est, sent) = manual_handshake(ea.local_addr(), &hc).await;
        est.unwrap();
        assert!(ea.wait_connected(&[id(2)], Duration::from_secs(2)).await);
        // An eavesdropper replays msg1 and msg3 on a new connection.
        let (mut r, mut w) = raw_connect(ea.local_addr()).await;
        send_record(&mut w, &sent[0]).await;
        let _msg2 = r.next_record().await.unwrap().to_vec();
        send_record(&mut w, &sent[1]).await;
        assert!(
            r.next_record().await.is_err(),
            "A closes the replayed handshake"
        );
        let m = ea.metrics().snapshot();
        assert_eq!((m.handshakes_ok, m.handshakes_failed), (1, 1));
    });
}

#[test]
fn malformed_frame_closes_the_session_and_is_counted() {
    run(async {
        let ea = Endpoint::start(GlommioTcp, cfg(any(), &[1, 2], &[]), key(1)).unwrap();
        let hc = hs_cfg(2, CHAIN, &[1, 2]);
        let (mut r, mut w, est, _) = manual_handshake(ea.local_addr(), &hc).await;
        let mut est = est.unwrap();
        send_data(&mut w, &mut est, b"fine").await;
        assert_eq!(ea.recv().await.payload(), b"fine");
        // A well-encrypted frame with an unknown channel byte.
        let out = w.reserve(sealed_len(3, true));
        est.cipher.seal(&[0, 9, 1], out).unwrap();
        w.flush().await.unwrap();
        assert!(r.next_record().await.is_err());
        // Garbage that does not authenticate, on a fresh session.
        let (mut r, mut w, est, _) = manual_handshake(ea.local_addr(), &hc).await;
        est.unwrap();
        send_record(&mut w, &[0xab; 40]).await;
        assert!(r.next_record().await.is_err());
        // A handshake message over the handshake record limit.
        let (mut r, mut w) = raw_connect(ea.local_addr()).await;
        send_record(&mut w, &[0; 600]).await;
        assert!(r.next_record().await.is_err());
        sleep_ms(20).await;
        let m = ea.metrics().snapshot();
        assert_eq!(m.malformed_frames, 2);
        assert_eq!(m.handshakes_failed, 1);
        assert_eq!(m.frames_received, 1);
    });
}

#[test]
fn silent_session_hits_the_idle_timeout() {
    run(async {
        let mut c = cfg(any(), &[1, 2], &[]);
        c.idle_timeout = Duration::from_millis(300);
        c.keepalive = Duration::from_millis(100);
        let ea = Endpoint::start(GlommioTcp, c, key(1)).unwrap();
        let hc = hs_cfg(2, CHAIN, &[1, 2]);
        let (mut r, _w, est, _) = manual_handshake(ea.local_addr(), &hc).await;
        let mut est = est.unwrap();
        // We receive A's keep-alive pings, but never answer.
        let mut pings = 0;
        while let Ok(rec) = r.next_record().await {
            let mut out = Vec::new();
            est.cipher.open(rec, &mut out).unwrap();
            assert_eq!(out, [FrameKind::Ping as u8, 0]);
            pings += 1;
        }
        assert!(pings >= 1, "A sent keep-alives while idle");
        assert_eq!(ea.metrics().snapshot().sessions_idle_closed, 1);
        assert!(!ea.is_connected(&id(2)));
    });
}

#[test]
fn unknown_addresses_are_rate_limited() {
    run(async {
        let mut c = cfg(any(), &[1, 2], &[]);
        c.unknown_handshakes_per_s = 0.0;
        c.unknown_handshake_burst = 2.0;
        let ea = Endpoint::start(GlommioTcp, c, key(1)).unwrap();
        let mut links = Vec::new();
        for _ in 0..3 {
            links.push(raw_connect(ea.local_addr()).await);
        }
        // The third is closed without a word; the first two wait for msg1.
        let (r3, _) = &mut links[2];
        assert!(r3.next_record().await.is_err());
        let m = ea.metrics().snapshot();
        assert_eq!(m.handshakes_rate_limited, 1);
    });
}

#[test]
fn reconnects_after_the_peer_restarts() {
    run(async {
        let (a, b) = ordered(3, 4);
        let (ea, eb) = pair(a, b);
        assert!(ea.wait_connected(&[id(b)], Duration::from_secs(5)).await);
        let addr_b = eb.local_addr();
        drop(eb);
        sleep_ms(100).await;
        assert!(!ea.is_connected(&id(b)), "A notices the closed link");
        // Queued while B is down; delivered after the restart.
        ea.send(&id(b), Channel::Consensus, b"after restart")
            .await
            .unwrap();
        sleep_ms(300).await; // a few failed dials with backoff
        let eb = Endpoint::start(GlommioTcp, cfg(addr_b, &[a, b], &[]), key(b)).unwrap();
        assert!(ea.wait_connected(&[id(b)], Duration::from_secs(5)).await);
        let m = eb.recv().await;
        assert_eq!(m.payload(), b"after restart");
        let ma = ea.metrics().snapshot();
        assert!(
            ma.dial_failures >= 1,
            "dials failed while B was down: {ma:?}"
        );
        assert_eq!(ma.sessions_opened, 2);
    });
}

#[test]
fn full_queue_pushes_back() {
    run(async {
        let mut c = cfg(any(), &[1, 2], &[]);
        c.send_queue_frames = 4;
        let ea = Endpoint::start(GlommioTcp, c, key(1)).unwrap();
        for i in 0..4u8 {
            ea.try_send(&id(2), Channel::Bulk, &[i]).unwrap();
        }
        assert_eq!(
            ea.try_send(&id(2), Channel::Bulk, b"x"),
            Err(SendError::Full)
        );
        assert!(
            ea.try_send(&id(2), Channel::Consensus, b"v").is_ok(),
            "channels have separate room"
        );
        assert_eq!(ea.metrics().snapshot().send_queue_full, 1);
    });
}

/// A peer that never reads holds at most `send_queue_bytes` of our memory
/// whatever its frames' sizes (4 frames of 1 MiB against a 4 MiB bound,
/// far under the frame count bound); once its frames leave, room returns.
#[test]
fn queued_bytes_per_peer_are_bounded() {
    run(async {
        let (a, b) = ordered(11, 12);
        let mut c = cfg(any(), &[a, b], &[]);
        c.send_queue_bytes = 4 << 20;
        c.frame_payload_max = 2 << 20;
        let ea = Endpoint::start(GlommioTcp, c, key(a)).unwrap();
        let big = vec![7u8; (1 << 20) - 64];
        for _ in 0..4 {
            ea.try_send(&id(b), Channel::Bulk, &big).unwrap();
        }
        assert_eq!(
            ea.try_send(&id(b), Channel::Bulk, &big),
            Err(SendError::Full),
            "the byte bound holds for bulk"
        );
        assert!(
            ea.try_send(&id(b), Channel::Consensus, b"vote").is_ok(),
            "bulk never starves consensus"
        );
        // The peer comes up and drains the queue: room again.
        let mut cb = cfg(any(), &[a, b], &[]);
        cb.frame_payload_max = 2 << 20;
        cb.recv_budget_bytes = 16 << 20;
        let eb = Endpoint::start(GlommioTcp, cb, key(b)).unwrap();
        drop(ea);
        let mut c = cfg(any(), &[a, b], &[(b, eb.local_addr())]);
        c.send_queue_bytes = 4 << 20;
        c.frame_payload_max = 2 << 20;
        let ea = Endpoint::start(GlommioTcp, c, key(a)).unwrap();
        assert!(ea.wait_connected(&[id(b)], Duration::from_secs(5)).await);
        for _ in 0..12 {
            ea.send(&id(b), Channel::Bulk, &big).await.unwrap();
        }
        for _ in 0..12 {
            assert_eq!(eb.recv().await.payload().len(), big.len());
        }
    });
}

#[test]
fn receive_budget_bounds_held_messages() {
    run(async {
        let (a, b) = ordered(5, 6);
        let mut cb = cfg(any(), &[a, b], &[]);
        cb.frame_payload_max = 1000;
        cb.recv_budget_bytes = 3000; // two 1002-byte frames fit, three do not
        let eb = Endpoint::start(GlommioTcp, cb, key(b)).unwrap();
        let mut ca = cfg(any(), &[a, b], &[(b, eb.local_addr())]);
        ca.frame_payload_max = 1000;
        let ea = Endpoint::start(GlommioTcp, ca, key(a)).unwrap();
        for i in 0..10u8 {
            ea.send(&id(b), Channel::Bulk, &[i; 1000]).await.unwrap();
        }
        sleep_ms(200).await;
        let mut held = Vec::new();
        while let Some(m) = eb.try_recv() {
            held.push(m);
        }
        assert_eq!(held.len(), 2, "the reader stops at the budget");
        let mut got: Vec<u8> = held.iter().map(|m| m.payload()[0]).collect();
        drop(held);
        while got.len() < 10 {
            let m = eb.recv().await;
            got.push(m.payload()[0]);
        }
        assert_eq!(got, (0..10).collect::<Vec<u8>>(), "in order, nothing lost");
    });
}

/// Only the side with the greater key knows the other's address (the
/// smaller side cannot dial): it dials after `fallback_dial_after`, and
/// again after the link drops.
#[test]
fn the_greater_key_dials_when_the_smaller_side_cannot() {
    run(async {
        let (small, great) = ordered(5, 6);
        let es = Endpoint::start(GlommioTcp, cfg(any(), &[small, great], &[]), key(small)).unwrap();
        let mut c = cfg(any(), &[small, great], &[(small, es.local_addr())]);
        c.fallback_dial_after = Duration::from_millis(300);
        let eg = Endpoint::start(GlommioTcp, c.clone(), key(great)).unwrap();
        assert!(
            es.wait_connected(&[id(great)], Duration::from_secs(5))
                .await
        );
        assert_eq!(eg.metrics().snapshot().dials, 1);
        // The greater side restarts: it dials again.
        drop(eg);
        sleep_ms(100).await;
        assert!(!es.is_connected(&id(great)));
        let eg = Endpoint::start(GlommioTcp, c, key(great)).unwrap();
        assert!(
            es.wait_connected(&[id(great)], Duration::from_secs(5))
                .await
        );
        eg.send(&id(small), Channel::Consensus, b"back")
            .await
            .unwrap();
        assert_eq!(es.recv().await.payload(), b"back");
    });
}

/// The smaller side dials at once; the greater one, holding the address
/// too, does not race it (one session, one dial).
#[test]
fn with_both_addresses_only_the_smaller_key_dials() {
    run(async {
        let (small, great) = ordered(7, 8);
        let (es, eg) = pair(small, great);
        assert!(
            es.wait_connected(&[id(great)], Duration::from_secs(5))
                .await
        );
        sleep_ms(2500).await; // past the greater side's grace
        assert_eq!(eg.metrics().snapshot().dials, 0, "the greater key waited");
        assert_eq!(es.metrics().snapshot().sessions_opened, 1);
    });
}

/// Strangers from 40 addresses open connections that never handshake:
/// they fill the strangers' slots, and a member still connects at once
/// (its address has slots of its own).
#[test]
fn strangers_holding_every_handshake_slot_do_not_keep_a_member_out() {
    run(async {
        let (small, great) = ordered(9, 10);
        // The member's listener first, so its address is known to `great`.
        let mut cs = cfg(any(), &[small, great], &[]);
        cs.fallback_dial_after = Duration::from_secs(60);
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr_small = probe.local_addr().unwrap();
        drop(probe);
        cs.listen = addr_small;
        let mut cg = cfg(any(), &[small, great], &[(small, addr_small)]);
        cg.fallback_dial_after = Duration::from_secs(60);
        cg.handshake_timeout = Duration::from_secs(30);
        let eg = Endpoint::start(GlommioTcp, cg, key(great)).unwrap();
        let target = eg.local_addr();
        let held: Vec<std::net::TcpStream> = (2..42u8)
            .flat_map(|i| {
                let ip = std::net::Ipv4Addr::new(127, 0, 0, i);
                (0..4).filter_map(move |_| plume_netstack::tcp::connect_from(ip, target).ok())
            })
            .collect();
        assert_eq!(held.len(), 160);
        sleep_ms(300).await;
        let m = eg.metrics().snapshot();
        assert!(
            m.handshakes_overload > 0,
            "the strangers' slots are full: {m:?}"
        );
        cs.peers = vec![PeerAddr {
            id: id(great),
            addr: eg.local_addr(),
        }];
        let es = Endpoint::start(GlommioTcp, cs, key(small)).unwrap();
        assert!(
            es.wait_connected(&[id(great)], Duration::from_secs(5))
                .await,
            "the member got in while strangers held their slots"
        );
        drop(held);
    });
}
