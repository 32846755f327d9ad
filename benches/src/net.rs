//! `plume bench net`: two endpoints, on loopback and across a veth pair
//! between two network namespaces (root only; skipped with a note
//! otherwise). For 64 B, 512 B and 64 KiB messages: messages/s and MB/s
//! one way; for 64 B: round-trip percentiles. Each with plume-netstack
//! encrypted (Noise, AES-GCM), plume-netstack in the clear, and a plain
//! tokio TCP baseline with the same framing (u32 length + 2-byte header),
//! buffered 256 KiB reads and writes, `TCP_NODELAY`. Sender on core 0,
//! receiver on core 1. Ratios are ours / baseline.
//!
//! With `--transport` (default: tcp, plus udp, af_xdp and dpdk when root)
//! the TCP suite above runs if tcp is asked for, and [`net_bypass`]
//! compares the asked transports, encrypted, over a veth pair.

use crate::net_bypass;
use crate::report::histogram;
use crate::{Options, Report};
use plume_crypto::ed25519::SigningKey;
use plume_netstack::netns::{self, Lab};
use plume_netstack::{ChainId, Channel, Endpoint, GlommioTcp, NetConfig, PeerAddr, PeerId};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Message sizes measured.
pub const SIZES: [usize; 3] = [64, 512, 64 << 10];
/// How long glommio executors spin before parking, unless
/// `PLUME_BENCH_NET_SPIN_US` says otherwise.
pub const SPIN_BEFORE_PARK_DEFAULT: Duration = Duration::from_micros(0);

fn spin_before_park() -> Duration {
    std::env::var("PLUME_BENCH_NET_SPIN_US")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_micros)
        .unwrap_or(SPIN_BEFORE_PARK_DEFAULT)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Imp {
    PlumeEnc,
    PlumeClear,
    Tokio,
}

impl Imp {
    fn name(self) -> &'static str {
        match self {
            Imp::PlumeEnc => "plume_enc",
            Imp::PlumeClear => "plume_clear",
            Imp::Tokio => "tokio",
        }
    }
}

#[derive(Clone)]
struct Env {
    name: &'static str,
    ns: [Option<String>; 2],
    ip: [IpAddr; 2],
}

pub(crate) fn scaled(n: u64, opts: &Options) -> u64 {
    ((n as f64 * opts.scale).ceil() as u64).max(10)
}

fn messages_for(size: usize, opts: &Options) -> u64 {
    scaled(
        match size {
            64 => 1_000_000,
            512 => 500_000,
            _ => 20_000,
        },
        opts,
    )
}

/// Run the suite. A process started as the far end of a DPDK pair (see
/// [`net_bypass::PEER_ENV`]) serves that instead and returns an empty report.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    if let Some(served) = net_bypass::serve_peer_from_env() {
        served?;
        return Ok(Report::new("net-peer"));
    }
    let [_, cb] = cores();
    run_with(opts, &net_bypass::PeerLauncher::plume(cb))
}

/// Run the suite; a DPDK far end is started with `launcher`.
pub fn run_with(opts: &Options, launcher: &net_bypass::PeerLauncher) -> anyhow::Result<Report> {
    let transports = net_bypass::requested(opts)?;
    let mut r = Report::new("net");
    let [ca, cb] = cores();
    r.machine.insert("sender_core".into(), ca.to_string());
    r.machine.insert("receiver_core".into(), cb.to_string());
    r.machine.insert("transports".into(), transports.join(","));
    r.machine.insert(
        "veth_enc_busy_poll".into(),
        net_bypass::busy_poll().to_string(),
    );
    if transports.iter().any(|t| t == "tcp") {
        tcp_suite(opts, &mut r)?;
    }
    net_bypass::compare(&mut r, &transports, opts, launcher);
    Ok(r)
}

/// The TCP suite: plume (encrypted and clear) against tokio, on loopback
/// and over veth.
fn tcp_suite(opts: &Options, r: &mut Report) -> anyhow::Result<()> {
    r.machine.insert(
        "glommio_spin_before_park_us".into(),
        spin_before_park().as_micros().to_string(),
    );
    let lo = Env {
        name: "loopback",
        ns: [None, None],
        ip: [IpAddr::V4(Ipv4Addr::LOCALHOST); 2],
    };
    let mut envs = vec![(lo, None)];
    let only_loopback = std::env::var("PLUME_BENCH_NET_ENV").is_ok_and(|v| v == "loopback");
    match netns::unavailable() {
        _ if only_loopback => {
            r.machine.insert(
                "veth".into(),
                "skipped: PLUME_BENCH_NET_ENV=loopback".into(),
            );
        }
        None => {
            let lab = Lab::veth_pair("plb")?;
            let env = Env {
                name: "veth",
                ns: [Some(lab.hosts[0].clone()), Some(lab.hosts[1].clone())],
                ip: [lab.addrs[0], lab.addrs[1]],
            };
            envs.push((env, Some(lab)));
        }
        Some(why) => {
            r.machine.insert("veth".into(), format!("skipped: {why}"));
        }
    }
    let imps = [Imp::PlumeEnc, Imp::PlumeClear, Imp::Tokio];
    for (env, _lab) in &envs {
        for size in SIZES {
            let n = messages_for(size, opts);
            for imp in imps {
                let secs = match imp {
                    Imp::Tokio => tokio_throughput(env, size, n)?,
                    _ => plume_throughput(env, imp == Imp::PlumeEnc, size, n)?,
                };
                let key = format!("{}_{}_{}", env.name, imp.name(), size_name(size));
                r.figure(&format!("{key}_msgs_per_s"), n as f64 / secs);
                r.figure(
                    &format!("{key}_mb_per_s"),
                    n as f64 * size as f64 / secs / 1e6,
                );
            }
            for imp in [Imp::PlumeEnc, Imp::PlumeClear] {
                let ours = r.figures
                    [&format!("{}_{}_{}_msgs_per_s", env.name, imp.name(), size_name(size))];
                let base = r.figures[&format!("{}_tokio_{}_msgs_per_s", env.name, size_name(size))];
                let ratio = format!(
                    "{}_ratio_{}_vs_tokio_{}_throughput",
                    env.name,
                    imp.name(),
                    size_name(size)
                );
                r.figure(&ratio, ours / base);
            }
        }
        let iters = scaled(20_000, opts);
        for imp in imps {
            let h = match imp {
                Imp::Tokio => tokio_rtt(env, iters)?,
                _ => plume_rtt(env, imp == Imp::PlumeEnc, iters)?,
            };
            let key = format!("{}_{}_rtt_64b", env.name, imp.name());
            r.figure(
                &format!("{key}_p50_us"),
                h.value_at_quantile(0.5) as f64 / 1e3,
            );
            r.figure(
                &format!("{key}_p99_us"),
                h.value_at_quantile(0.99) as f64 / 1e3,
            );
            r.latency(&key, &h);
        }
        for imp in [Imp::PlumeEnc, Imp::PlumeClear] {
            for q in ["p50", "p99"] {
                let ours = r.figures[&format!("{}_{}_rtt_64b_{q}_us", env.name, imp.name())];
                let base = r.figures[&format!("{}_tokio_rtt_64b_{q}_us", env.name)];
                r.figure(
                    &format!("{}_ratio_{}_vs_tokio_rtt_64b_{q}", env.name, imp.name()),
                    ours / base,
                );
            }
        }
        // The goal: throughput at least the baseline, p99 lower.
        for size in SIZES {
            r.target(
                &format!(
                    "{}_ratio_plume_enc_vs_tokio_{}_throughput",
                    env.name,
                    size_name(size)
                ),
                true,
                1.0,
            );
        }
        r.target(
            &format!("{}_ratio_plume_enc_vs_tokio_rtt_64b_p99", env.name),
            false,
            1.0,
        );
    }
    Ok(())
}

pub(crate) fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{}kib", size / 1024)
    } else {
        format!("{size}b")
    }
}

/// Run `f` on a new thread inside namespace `ns`, pinned to `core`.
fn on_thread<T: Send + 'static>(
    ns: Option<String>,
    core: usize,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> std::thread::JoinHandle<anyhow::Result<T>> {
    std::thread::spawn(move || {
        if let Some(ns) = ns {
            netns::enter(&ns)?;
        }
        crate::report::pin_to_core(core);
        f()
    })
}

/// Sender and receiver cores. Counted from /proc/cpuinfo, not from
/// `available_parallelism`, which only sees the affinity mask of the
/// (already pinned) calling thread.
pub(crate) fn cores() -> [usize; 2] {
    let n = std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(1);
    [0, if n > 1 { 1 } else { 0 }]
}

fn join<T>(h: std::thread::JoinHandle<anyhow::Result<T>>) -> anyhow::Result<T> {
    h.join()
        .map_err(|_| anyhow::anyhow!("benchmark thread panicked"))?
}

// ---- plume-netstack ----

/// Two keys, the first with the smaller id (it dials).
fn keys() -> (u8, u8) {
    let id = |s: u8| PeerId::from(&SigningKey::from_bytes(&[s; 32]).public_key());
    if id(11) < id(12) {
        (11, 12)
    } else {
        (12, 11)
    }
}

fn plume_cfg(listen: SocketAddr, encrypt: bool, peer: Option<(u8, SocketAddr)>) -> NetConfig {
    let (a, b) = keys();
    let id = |s: u8| PeerId::from(&SigningKey::from_bytes(&[s; 32]).public_key());
    let mut c = NetConfig::new(listen, ChainId::from_name("bench"));
    c.allow = vec![id(a), id(b)];
    c.peers = peer
        .map(|(s, addr)| PeerAddr { id: id(s), addr })
        .into_iter()
        .collect();
    c.encrypt = encrypt;
    c.frame_payload_max = 64 << 10;
    c.send_queue_frames = bench_queue();
    c.recv_queue_frames = bench_queue();
    c
}

/// Queue depth (frames per channel) for the benchmark endpoints.
pub(crate) fn bench_queue() -> usize {
    std::env::var("PLUME_BENCH_NET_QUEUE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024)
}

pub(crate) fn executor(core: usize) -> anyhow::Result<glommio::LocalExecutor> {
    let mut b = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(core));
    let spin = spin_before_park();
    if !spin.is_zero() {
        b = b.spin_before_park(spin);
    }
    b.make()
        .map_err(|e| anyhow::anyhow!("glommio executor: {e}"))
}

async fn wait_std<T>(rx: &mpsc::Receiver<T>) -> T {
    loop {
        if let Ok(v) = rx.try_recv() {
            return v;
        }
        glommio::timer::sleep(Duration::from_micros(200)).await;
    }
}

/// Receiver B (listens) and sender A (dials). `echo`: B sends each message
/// back (round trips); else B counts `n` messages and reports when done.
fn plume_pair<T: Send + 'static>(
    env: &Env,
    encrypt: bool,
    n: u64,
    echo: bool,
    sender: impl FnOnce(
            Endpoint<GlommioTcp>,
            PeerId,
            mpsc::Receiver<Instant>,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>>
        + Send
        + 'static,
) -> anyhow::Result<T> {
    let (a, b) = keys();
    let [ca, cb] = cores();
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let (done_tx, done_rx) = mpsc::channel::<Instant>();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (ip_a, ip_b) = (env.ip[0], env.ip[1]);
    let rx_thread = on_thread(env.ns[1].clone(), cb, move || {
        executor(cb)?.run(async move {
            let ep = Endpoint::start(
                GlommioTcp,
                plume_cfg(SocketAddr::new(ip_b, 0), encrypt, None),
                SigningKey::from_bytes(&[b; 32]),
            )?;
            addr_tx.send(ep.local_addr())?;
            if echo {
                loop {
                    let m = glommio::timer::timeout(Duration::from_millis(50), async {
                        Ok(ep.recv().await)
                    })
                    .await;
                    match m {
                        Ok(m) => ep.send(&m.peer, Channel::Consensus, m.payload()).await?,
                        Err(_) if stop_rx.try_recv().is_ok() => break,
                        Err(_) => {}
                    }
                }
            } else {
                for _ in 0..n {
                    drop(ep.recv().await);
                }
                done_tx.send(Instant::now())?;
                wait_std(&stop_rx).await;
            }
            anyhow::Ok(())
        })
    });
    let addr_b = addr_rx.recv_timeout(Duration::from_secs(10))?;
    let id_b = PeerId::from(&SigningKey::from_bytes(&[b; 32]).public_key());
    let tx_thread = on_thread(env.ns[0].clone(), ca, move || {
        let ip_a = SocketAddr::new(ip_a, 0);
        executor(ca)?.run(async move {
            let ep = Endpoint::start(
                GlommioTcp,
                plume_cfg(ip_a, encrypt, Some((b, addr_b))),
                SigningKey::from_bytes(&[a; 32]),
            )?;
            if !ep.wait_connected(&[id_b], Duration::from_secs(10)).await {
                anyhow::bail!("benchmark endpoints did not connect");
            }
            Ok(sender(ep, id_b, done_rx).await)
        })
    });
    let out = join(tx_thread);
    let _ = stop_tx.send(());
    join(rx_thread)?;
    out
}

fn plume_throughput(env: &Env, encrypt: bool, size: usize, n: u64) -> anyhow::Result<f64> {
    plume_pair(env, encrypt, n, false, move |ep, peer, done| {
        Box::pin(async move {
            let msg = vec![0x5au8; size];
            let t0 = Instant::now();
            for _ in 0..n {
                ep.send(&peer, Channel::Bulk, &msg)
                    .await
                    .expect("bench send");
            }
            let t1 = wait_std(&done).await;
            t1.duration_since(t0).as_secs_f64()
        })
    })
}

fn plume_rtt(env: &Env, encrypt: bool, iters: u64) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    plume_pair(env, encrypt, 0, true, move |ep, peer, _done| {
        Box::pin(async move {
            let msg = [0x5au8; 64];
            let mut h = histogram();
            for i in 0..iters + 1000 {
                let t = Instant::now();
                ep.send(&peer, Channel::Consensus, &msg)
                    .await
                    .expect("bench send");
                let m = ep.recv().await;
                assert_eq!(m.payload().len(), 64);
                if i >= 1000 {
                    h.record(t.elapsed().as_nanos().max(1) as u64)
                        .expect("in range");
                }
            }
            h
        })
    })
}

// ---- tokio baseline: same framing, plain epoll TCP ----

fn tokio_rt() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?)
}

const TOKIO_BUF: usize = 256 << 10;

fn tokio_pair<T: Send + 'static>(
    env: &Env,
    server: impl FnOnce(
            tokio::net::TcpStream,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>
        + Send
        + 'static,
    client: impl FnOnce(
            tokio::net::TcpStream,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<T>>>>
        + Send
        + 'static,
) -> anyhow::Result<T> {
    let [ca, cb] = cores();
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let ip_b = env.ip[1];
    let srv = on_thread(env.ns[1].clone(), cb, move || {
        tokio_rt()?.block_on(async move {
            let l = tokio::net::TcpListener::bind(SocketAddr::new(ip_b, 0)).await?;
            addr_tx.send(l.local_addr()?)?;
            let (s, _) = l.accept().await?;
            s.set_nodelay(true)?;
            server(s).await
        })
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(10))?;
    let cli = on_thread(env.ns[0].clone(), ca, move || {
        tokio_rt()?.block_on(async move {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            client(s).await
        })
    });
    let out = join(cli);
    join(srv)?;
    out
}

async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    anyhow::ensure!(
        (2..=2 + (64 << 10)).contains(&len),
        "bad frame length {len}"
    );
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    Ok(())
}

async fn write_frame<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    msg: &[u8],
) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    w.write_all(&((msg.len() + 2) as u32).to_le_bytes()).await?;
    w.write_all(&[0, 1]).await?;
    w.write_all(msg).await?;
    Ok(())
}

fn tokio_throughput(env: &Env, size: usize, n: u64) -> anyhow::Result<f64> {
    tokio_pair(
        env,
        move |s| {
            Box::pin(async move {
                use tokio::io::AsyncWriteExt;
                let (r, mut w) = s.into_split();
                let mut r = tokio::io::BufReader::with_capacity(TOKIO_BUF, r);
                let mut buf = Vec::with_capacity(2 + size);
                for _ in 0..n {
                    read_frame(&mut r, &mut buf).await?;
                }
                w.write_all(&[1]).await?; // done
                Ok(())
            })
        },
        move |s| {
            Box::pin(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let (mut r, w) = s.into_split();
                let mut w = tokio::io::BufWriter::with_capacity(TOKIO_BUF, w);
                let msg = vec![0x5au8; size];
                let t0 = Instant::now();
                for _ in 0..n {
                    write_frame(&mut w, &msg).await?;
                }
                w.flush().await?;
                let mut done = [0u8; 1];
                r.read_exact(&mut done).await?;
                Ok(t0.elapsed().as_secs_f64())
            })
        },
    )
}

fn tokio_rtt(env: &Env, iters: u64) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let total = iters + 1000;
    tokio_pair(
        env,
        move |mut s| {
            Box::pin(async move {
                use tokio::io::AsyncWriteExt;
                let mut buf = Vec::new();
                for _ in 0..total {
                    read_frame(&mut s, &mut buf).await?;
                    let mut out = Vec::with_capacity(4 + buf.len());
                    out.extend_from_slice(&(buf.len() as u32).to_le_bytes());
                    out.extend_from_slice(&buf);
                    s.write_all(&out).await?;
                }
                Ok(())
            })
        },
        move |mut s| {
            Box::pin(async move {
                use tokio::io::AsyncWriteExt;
                let mut h = histogram();
                let mut buf = Vec::new();
                let mut out = Vec::with_capacity(4 + 2 + 64);
                out.extend_from_slice(&66u32.to_le_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&[0x5a; 64]);
                for i in 0..total {
                    let t = Instant::now();
                    s.write_all(&out).await?;
                    read_frame(&mut s, &mut buf).await?;
                    if i >= 1000 {
                        h.record(t.elapsed().as_nanos().max(1) as u64)?;
                    }
                }
                Ok(h)
            })
        },
    )
}
