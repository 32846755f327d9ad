//! Four hosts, each in its own network namespace on a private bridge, form
//! a full mesh; one host's link goes down and up; its sessions recover.
//! Skips (with a message) where namespaces cannot be created.

use plume_crypto::ed25519::SigningKey;
use plume_netstack::netns::{self, Lab};
use plume_netstack::{ChainId, Channel, Endpoint, GlommioTcp, NetConfig, PeerAddr, PeerId};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

const HOSTS: usize = 4;
const PORT: u16 = 7700;
const FLAPPED: usize = 2;

fn key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[40 + i as u8; 32])
}

fn id(i: usize) -> PeerId {
    PeerId::from(&key(i).public_key())
}

#[test]
fn four_hosts_full_mesh_survive_a_link_flap() {
    if let Some(why) = netns::unavailable() {
        eprintln!("SKIPPED four_hosts_full_mesh_survive_a_link_flap: {why}");
        return;
    }
    let lab = Lab::new("plm", HOSTS).expect("create namespaces");
    let addrs: Vec<SocketAddr> = lab
        .addrs
        .iter()
        .map(|ip| SocketAddr::new(*ip, PORT))
        .collect();
    // Phases: 0 meshed, 1 flap done (main thread), 2 recovered and verified.
    // Gates with deadlines, not barriers: a failing host makes the others
    // fail too instead of hanging the test.
    let meshed = Arc::new(AtomicUsize::new(0));
    let flapped = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for i in 0..HOSTS {
        let ns = lab.hosts[i].clone();
        let addrs = addrs.clone();
        let (meshed, flapped, done) = (meshed.clone(), flapped.clone(), done.clone());
        threads.push(std::thread::spawn(move || {
            netns::enter(&ns).expect("setns");
            glommio::LocalExecutorBuilder::default()
                .make()
                .unwrap()
                .run(async move {
                    let mut c = NetConfig::new(addrs[i], ChainId::from_name("mesh"));
                    c.allow = (0..HOSTS).map(id).collect();
                    c.peers = (0..HOSTS)
                        .filter(|j| *j != i)
                        .map(|j| PeerAddr {
                            id: id(j),
                            addr: addrs[j],
                        })
                        .collect();
                    c.idle_timeout = Duration::from_millis(600);
                    c.keepalive = Duration::from_millis(150);
                    c.backoff_min = Duration::from_millis(50);
                    c.backoff_max = Duration::from_millis(400);
                    c.handshake_timeout = Duration::from_millis(500);
                    c.pool_bufs = 256;
                    let ep = Endpoint::start(GlommioTcp, c, key(i)).unwrap();
                    let others: Vec<PeerId> = (0..HOSTS).filter(|j| *j != i).map(id).collect();
                    assert!(
                        ep.wait_connected(&others, Duration::from_secs(10)).await,
                        "host {i}: mesh did not form"
                    );
                    exchange(&ep, i, &others, b"before").await;
                    gate(&meshed, HOSTS + 1).await;
                    // The main thread flaps host FLAPPED's link while we keep running.
                    gate(&flapped, HOSTS + 1).await;
                    if i == FLAPPED {
                        let m = ep.metrics().snapshot();
                        assert!(
                            m.sessions_idle_closed >= 1,
                            "host {i}: idle timeout noticed the dead link: {m:?}"
                        );
                    }
                    assert!(
                        ep.wait_connected(&others, Duration::from_secs(15)).await,
                        "host {i}: mesh did not recover"
                    );
                    exchange(&ep, i, &others, b"after").await;
                    let m = ep.metrics().snapshot();
                    assert_eq!(m.malformed_frames, 0);
                    assert!(m.sessions_opened >= 3);
                    gate(&done, HOSTS).await;
                });
        }));
    }
    gate_blocking(&meshed, HOSTS + 1);
    lab.set_link(FLAPPED, false).unwrap();
    // Longer than the idle timeout, so sessions over the link are dropped.
    std::thread::sleep(Duration::from_millis(1500));
    lab.set_link(FLAPPED, true).unwrap();
    gate_blocking(&flapped, HOSTS + 1);
    for t in threads {
        t.join().expect("host thread");
    }
    drop(lab);
}

/// Each host sends one tagged message to every other and expects one from each.
async fn exchange(ep: &Endpoint<GlommioTcp>, i: usize, others: &[PeerId], tag: &[u8]) {
    let mut msg = tag.to_vec();
    msg.push(i as u8);
    for p in others {
        ep.send(p, Channel::Consensus, &msg).await.unwrap();
    }
    let mut from = Vec::new();
    while from.len() < others.len() {
        let m = glommio::timer::timeout(Duration::from_secs(10), async { Ok(ep.recv().await) })
            .await
            .unwrap_or_else(|_| {
                panic!("host {i}: timed out waiting for {tag:?} messages, got {from:?}")
            });
        let p = m.payload();
        if p.starts_with(tag) && p.len() == tag.len() + 1 {
            from.push(m.peer);
        }
    }
    from.sort();
    let mut want = others.to_vec();
    want.sort();
    assert_eq!(from, want, "host {i}");
}

/// Longest wait at a gate.
const GATE_TIMEOUT: Duration = Duration::from_secs(30);

/// Arrive at `g` and wait until `n` parties have, without blocking the
/// executor's other tasks.
async fn gate(g: &AtomicUsize, n: usize) {
    g.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + GATE_TIMEOUT;
    while g.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "another host failed");
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

fn gate_blocking(g: &AtomicUsize, n: usize) {
    g.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + GATE_TIMEOUT;
    while g.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "a host failed before the gate");
        std::thread::sleep(Duration::from_millis(5));
    }
}
