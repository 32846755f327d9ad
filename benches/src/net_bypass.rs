//! `plume bench net --transport tcp,udp,af_xdp,dpdk`: the transports side
//! by side over one veth pair between two network namespaces (the only
//! place AF_XDP and DPDK can run here), all encrypted (the production
//! mode), with the same harness for every transport.
//!
//! Per transport: a fresh veth pair, one endpoint pair, one session. The
//! near end (namespace 0, sender core) drives the phases; the far end
//! (namespace 1, receiver core) counts bulk messages and echoes round-trip
//! probes. Control is in band, on the consensus channel, so the far end can
//! be another process: DPDK's EAL exists once per process, so a DPDK far
//! end runs as a child process of the same executable ([`PeerLauncher`]),
//! and both ends of the `dpdk` row are DPDK ports.
//!
//! Figures: `veth_enc_{transport}_{size}_msgs_per_s` / `_mb_per_s` (one
//! way), `veth_enc_{transport}_rtt_64b_p50_us` / `_p99_us` and the
//! latency row `veth_enc_{transport}_rtt_64b`; the device modes of both
//! ends in `machine["veth_enc_{transport}_mode"]`; a transport that cannot
//! run is `machine["veth_enc_{transport}"] = "skipped: why"`.

use crate::net::{bench_queue, cores, executor, size_name, SIZES};
use crate::report::histogram;
use crate::{Options, Report};
use plume_crypto::ed25519::SigningKey;
use plume_netstack::dgram::open::{open, Device, OpenSpec};
use plume_netstack::dgram::{DgramConfig, DgramMetrics, DgramTransport};
use plume_netstack::netns::{self, Lab};
use plume_netstack::{
    AnyTransport, ChainId, Channel, Endpoint, GlommioTcp, NetConfig, PeerAddr, PeerId,
};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Transports `--transport` knows, in report order.
pub const TRANSPORTS: &[&str] = &["tcp", "udp", "af_xdp", "dpdk"];
/// Environment variable that turns a `plume bench net` process into the
/// far end of a pair (its value: a [`PeerSpec`]).
pub const PEER_ENV: &str = "PLUME_BENCH_NET_PEER";
/// UDP/TCP port of both ends (fresh namespaces: nothing else uses it).
pub const PORT: u16 = 7911;
/// Session set-up (handshake, DPDK child start) at most.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// One measured phase (all messages of one size, or all round trips) at most.
pub const PHASE_TIMEOUT: Duration = Duration::from_secs(120);
/// The far end gives up after this long without a message.
pub const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The far end lives at most this long.
pub const PEER_LIFETIME_MAX: Duration = Duration::from_secs(1800);
/// Round trips before the measured ones.
pub const RTT_WARMUP: u64 = 1000;
/// DPDK EAL memory (MiB) of each end (`--no-huge`).
pub const DPDK_MEM_MB: usize = 128;

/// Control messages on the consensus channel (first byte).
const ECHO: u8 = 0;
const COUNT: u8 = 1;
const COUNTED: u8 = 2;
const QUIT: u8 = 3;

/// Messages per size in the comparison, before `--scale`.
fn messages_for(size: usize, opts: &Options) -> u64 {
    crate::net::scaled(
        match size {
            64 => 200_000,
            512 => 100_000,
            _ => 5_000,
        },
        opts,
    )
}

/// The transports to run: the requested ones (checked), or by default tcp
/// plus the others when namespaces are available (root).
pub fn requested(opts: &Options) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in opts.transports.iter().flat_map(|s| s.split(',')) {
        let t = t.trim().replace('-', "_");
        if t.is_empty() {
            continue;
        }
        if !TRANSPORTS.contains(&t.as_str()) {
            anyhow::bail!("unknown transport {t:?}; known: {}", TRANSPORTS.join(", "));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.is_empty() {
        out.push("tcp".into());
        if netns::unavailable().is_none() {
            out.extend(TRANSPORTS[1..].iter().map(|s| s.to_string()));
        }
    }
    // Report order.
    out.sort_by_key(|t| TRANSPORTS.iter().position(|k| k == t));
    Ok(out)
}

/// How the far end of a DPDK pair is started: this executable again, with
/// [`PEER_ENV`] set, so that it calls [`serve_peer_from_env`].
#[derive(Clone, Debug)]
pub struct PeerLauncher {
    /// Executable.
    pub exe: PathBuf,
    /// Arguments that make it reach [`serve_peer_from_env`] (for
    /// `plume-bench`: `net`; for a test binary: the test's name, `--exact`).
    pub args: Vec<String>,
}

impl PeerLauncher {
    /// `plume-bench net --core CORE` (this benchmark binary again).
    pub fn plume(core: usize) -> PeerLauncher {
        PeerLauncher {
            exe: "/proc/self/exe".into(),
            args: vec!["net".into(), "--core".into(), core.to_string()],
        }
    }
}

/// What the far end of a pair is told (in [`PEER_ENV`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    /// Transport name.
    pub transport: String,
    /// Network namespace to enter.
    pub ns: String,
    /// Own address.
    pub local: SocketAddrV4,
    /// The near end's address.
    pub remote: SocketAddrV4,
    /// Core to pin to (and the DPDK lcore).
    pub core: usize,
}

impl PeerSpec {
    fn encode(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.transport, self.ns, self.local, self.remote, self.core
        )
    }

    /// Parse [`PeerSpec::encode`]'s output.
    pub fn decode(s: &str) -> anyhow::Result<PeerSpec> {
        let f: Vec<&str> = s.split_whitespace().collect();
        anyhow::ensure!(f.len() == 5, "{PEER_ENV}: expected 5 fields, got {s:?}");
        anyhow::ensure!(
            TRANSPORTS.contains(&f[0]),
            "{PEER_ENV}: unknown transport {:?}",
            f[0]
        );
        Ok(PeerSpec {
            transport: f[0].into(),
            ns: f[1].into(),
            local: f[2].parse()?,
            remote: f[3].parse()?,
            core: f[4].parse()?,
        })
    }
}

/// If this process was started as the far end of a pair ([`PEER_ENV`] is
/// set), serve it and return its outcome; else `None`.
pub fn serve_peer_from_env() -> Option<anyhow::Result<()>> {
    let spec = std::env::var(PEER_ENV).ok()?;
    Some(serve_peer(&spec))
}

fn serve_peer(spec: &str) -> anyhow::Result<()> {
    let spec = PeerSpec::decode(spec)?;
    netns::enter(&spec.ns)?;
    crate::report::pin_to_core(spec.core);
    executor(spec.core)?.run(async move {
        let (ep, _mode, _dm) =
            start_endpoint(&spec.transport, 1, spec.local, spec.remote, spec.core)?;
        serve(&ep).await
    })
}

/// Keys of the near (0) and far (1) end.
fn key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[91 + i as u8; 32])
}

fn id(i: usize) -> PeerId {
    PeerId::from(&key(i).public_key())
}

fn device(transport: &str, core: usize) -> Option<Device> {
    match transport {
        "udp" => Some(Device::KernelUdp),
        "af_xdp" => Some(Device::AfXdp {
            interface: "eth0".into(),
            queue: 0,
            force_skb: false,
            force_copy: false,
        }),
        "dpdk" => Some(Device::Dpdk {
            device: "net_af_packet0".into(),
            lcore: core,
            mem_mb: DPDK_MEM_MB,
            no_huge: true,
            vdevs: vec!["net_af_packet0,iface=eth0".into()],
            pci_allow: Vec::new(),
        }),
        _ => None,
    }
}

/// Datagram driver busy-polls (`PLUME_BENCH_NET_BUSY_POLL=1`), else the
/// node's default (sleep when idle).
pub(crate) fn busy_poll() -> bool {
    std::env::var("PLUME_BENCH_NET_BUSY_POLL").is_ok_and(|v| v == "1")
}

/// Open the device and start an encrypted endpoint for end `me` (inside an
/// executor, in the end's namespace). Returns it, the device mode and the
/// datagram counters (None for TCP).
fn start_endpoint(
    transport: &str,
    me: usize,
    local: SocketAddrV4,
    remote: SocketAddrV4,
    core: usize,
) -> anyhow::Result<(Endpoint<AnyTransport>, String, Option<Arc<DgramMetrics>>)> {
    let (t, mode, dm) = match device(transport, core) {
        None => (
            AnyTransport::Tcp(GlommioTcp),
            "kernel tcp (glommio, io_uring)".to_string(),
            None,
        ),
        Some(device) => {
            let io = open(&OpenSpec {
                local,
                prefix_len: 24,
                gateway: None,
                device,
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let t = DgramTransport::start(
                io,
                DgramConfig {
                    busy_poll: busy_poll(),
                    ..DgramConfig::default()
                },
            );
            let mode = t.mode().to_string();
            let dm = t.metrics();
            (AnyTransport::Dgram(t), mode, Some(dm))
        }
    };
    let other = 1 - me;
    let mut c = NetConfig::new(SocketAddr::V4(local), ChainId::from_name("bench"));
    c.allow = vec![id(0), id(1)];
    c.peers = vec![PeerAddr {
        id: id(other),
        addr: SocketAddr::V4(remote),
    }];
    c.encrypt = true;
    c.frame_payload_max = 64 << 10;
    c.send_queue_frames = bench_queue();
    c.recv_queue_frames = bench_queue();
    c.backoff_min = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(500);
    let ep = Endpoint::start(t, c, key(me))?;
    Ok((ep, mode, dm))
}

/// The far end: count bulk messages, answer count queries once that many
/// arrived, echo round-trip probes, stop on QUIT or when idle too long.
async fn serve(ep: &Endpoint<AnyTransport>) -> anyhow::Result<()> {
    let born = Instant::now();
    let mut last = Instant::now();
    let mut bulk: u64 = 0;
    let mut want: Option<u64> = None;
    let near = id(0);
    loop {
        anyhow::ensure!(
            born.elapsed() < PEER_LIFETIME_MAX,
            "far end: lifetime of {PEER_LIFETIME_MAX:?} over"
        );
        let m = glommio::timer::timeout(Duration::from_millis(100), async { Ok(ep.recv().await) })
            .await;
        let Ok(m) = m else {
            anyhow::ensure!(
                last.elapsed() < PEER_IDLE_TIMEOUT,
                "far end: nothing received for {PEER_IDLE_TIMEOUT:?}"
            );
            continue;
        };
        last = Instant::now();
        match (m.channel, m.payload().first().copied()) {
            (Channel::Bulk, _) => bulk += 1,
            (Channel::Consensus, Some(ECHO)) => {
                ep.send(&near, Channel::Consensus, m.payload()).await?
            }
            (Channel::Consensus, Some(COUNT)) if m.payload().len() == 9 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&m.payload()[1..]);
                want = Some(u64::from_le_bytes(n));
            }
            (Channel::Consensus, Some(QUIT)) => {
                ep.send(&near, Channel::Consensus, &[QUIT]).await?;
                // Let the answer (and its acknowledgements) get through.
                glommio::timer::sleep(Duration::from_millis(300)).await;
                return Ok(());
            }
            _ => anyhow::bail!("far end: unexpected message on {:?}", m.channel),
        }
        if let Some(n) = want {
            if bulk >= n {
                let mut out = [COUNTED; 9];
                out[1..].copy_from_slice(&bulk.to_le_bytes());
                ep.send(&near, Channel::Consensus, &out).await?;
                bulk -= n;
                want = None;
            }
        }
    }
}

/// What the near end measured.
struct Measured {
    /// (size, messages, seconds) per size.
    throughput: Vec<(usize, u64, f64)>,
    rtt: hdrhistogram::Histogram<u64>,
    mode: String,
    retransmits: Option<u64>,
}

async fn within<T>(
    what: &str,
    limit: Duration,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    glommio::timer::timeout(limit, async { Ok(f.await) })
        .await
        .map_err(|_| anyhow::anyhow!("{what}: not done within {limit:?}"))?
}

/// Wait for a consensus answer starting with `tag`.
async fn answer(ep: &Endpoint<AnyTransport>, tag: u8) -> anyhow::Result<Vec<u8>> {
    let m = ep.recv().await;
    anyhow::ensure!(
        m.channel == Channel::Consensus && m.payload().first() == Some(&tag),
        "near end: expected answer {tag}, got {:?} {:?}",
        m.channel,
        m.payload().first()
    );
    Ok(m.payload().to_vec())
}

/// The near end: all phases over one session.
async fn drive(
    ep: Endpoint<AnyTransport>,
    sizes: Vec<(usize, u64)>,
    rtt_iters: u64,
) -> anyhow::Result<(Vec<(usize, u64, f64)>, hdrhistogram::Histogram<u64>)> {
    let far = id(1);
    if !ep.wait_connected(&[far], CONNECT_TIMEOUT).await {
        anyhow::bail!("no session with the far end within {CONNECT_TIMEOUT:?}");
    }
    let mut tp = Vec::new();
    for (size, n) in sizes {
        let secs = within(
            &format!("{} messages", size_name(size)),
            PHASE_TIMEOUT,
            async {
                let msg = vec![0x5au8; size];
                let t0 = Instant::now();
                for _ in 0..n {
                    ep.send(&far, Channel::Bulk, &msg).await?;
                }
                let mut q = [COUNT; 9];
                q[1..].copy_from_slice(&n.to_le_bytes());
                ep.send(&far, Channel::Consensus, &q).await?;
                answer(&ep, COUNTED).await?;
                Ok(t0.elapsed().as_secs_f64())
            },
        )
        .await?;
        tp.push((size, n, secs));
    }
    let h = within("round trips", PHASE_TIMEOUT, async {
        let mut msg = [0x5au8; 64];
        msg[0] = ECHO;
        let mut h = histogram();
        for i in 0..rtt_iters + RTT_WARMUP {
            let t = Instant::now();
            ep.send(&far, Channel::Consensus, &msg).await?;
            let back = answer(&ep, ECHO).await?;
            anyhow::ensure!(back.len() == 64, "echo of {} bytes", back.len());
            if i >= RTT_WARMUP {
                h.record(t.elapsed().as_nanos().max(1) as u64)?;
            }
        }
        Ok(h)
    })
    .await?;
    within("quit", Duration::from_secs(5), async {
        ep.send(&far, Channel::Consensus, &[QUIT]).await?;
        answer(&ep, QUIT).await
    })
    .await?;
    Ok((tp, h))
}

fn v4(ip: IpAddr) -> anyhow::Result<SocketAddrV4> {
    match ip {
        IpAddr::V4(a) => Ok(SocketAddrV4::new(a, PORT)),
        IpAddr::V6(_) => anyhow::bail!("lab addresses are IPv4"),
    }
}

/// Kill the child if it still runs when dropped.
struct Reaper(Option<Child>);

impl Reaper {
    /// Wait up to `limit` for the child to exit; kill it after that.
    fn finish(&mut self, limit: Duration) -> anyhow::Result<()> {
        let Some(mut c) = self.0.take() else {
            return Ok(());
        };
        let end = Instant::now() + limit;
        loop {
            if let Some(st) = c.try_wait()? {
                anyhow::ensure!(st.success(), "far-end process exited with {st}");
                return Ok(());
            }
            if Instant::now() > end {
                let _ = c.kill();
                let _ = c.wait();
                anyhow::bail!("far-end process still running after {limit:?}; killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One transport over a fresh veth pair.
fn measure(transport: &str, opts: &Options, launcher: &PeerLauncher) -> anyhow::Result<Measured> {
    let lab = Lab::veth_pair("pbt")?;
    let addrs = [v4(lab.addrs[0])?, v4(lab.addrs[1])?];
    let [ca, cb] = cores();
    let far_spec = PeerSpec {
        transport: transport.to_string(),
        ns: lab.hosts[1].clone(),
        local: addrs[1],
        remote: addrs[0],
        core: cb,
    };
    let sizes: Vec<(usize, u64)> = SIZES.iter().map(|&s| (s, messages_for(s, opts))).collect();
    let rtt_iters = crate::net::scaled(20_000, opts);
    let (ns0, t) = (lab.hosts[0].clone(), transport.to_string());
    // The near end opens its device first: if that fails (feature off, no
    // driver), no far end is started.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let near = std::thread::spawn(move || -> anyhow::Result<Measured> {
        netns::enter(&ns0)?;
        crate::report::pin_to_core(ca);
        executor(ca)?.run(async move {
            let (ep, mode, dm) = start_endpoint(&t, 0, addrs[0], addrs[1], ca)?;
            let _ = ready_tx.send(());
            let (throughput, rtt) = drive(ep, sizes, rtt_iters).await?;
            Ok(Measured {
                throughput,
                rtt,
                mode,
                retransmits: dm.map(|d| d.snapshot().retransmits),
            })
        })
    });
    let join_near = |h: std::thread::JoinHandle<anyhow::Result<Measured>>| {
        h.join()
            .map_err(|_| anyhow::anyhow!("near-end thread panicked"))?
    };
    if ready_rx.recv_timeout(CONNECT_TIMEOUT).is_err() {
        // The thread ended with an error (sender dropped) or is stuck
        // opening the device; its own timeouts end it.
        return Err(join_near(near)
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("near end not ready")));
    }
    // The far end: a child process for DPDK (one EAL per process), else a
    // thread of this process.
    let mut child = Reaper(None);
    let far_thread = if transport == "dpdk" {
        let c = Command::new(&launcher.exe)
            .args(&launcher.args)
            .env(PEER_ENV, far_spec.encode())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting the far end {:?}: {e}", launcher.exe))?;
        child.0 = Some(c);
        None
    } else {
        Some(std::thread::spawn(move || -> anyhow::Result<String> {
            netns::enter(&far_spec.ns)?;
            crate::report::pin_to_core(far_spec.core);
            executor(far_spec.core)?.run(async move {
                let (ep, mode, _) = start_endpoint(
                    &far_spec.transport,
                    1,
                    far_spec.local,
                    far_spec.remote,
                    far_spec.core,
                )?;
                serve(&ep).await?;
                Ok(mode)
            })
        }))
    };
    let near = join_near(near);
    let far: anyhow::Result<Option<String>> = match far_thread {
        Some(h) if near.is_ok() || h.is_finished() => h
            .join()
            .map_err(|_| anyhow::anyhow!("far-end thread panicked"))
            .and_then(|r| r.map(Some)),
        // The far end stops by itself once idle; do not wait for it.
        Some(_) => Ok(None),
        None if near.is_ok() => child.finish(Duration::from_secs(10)).map(|()| None),
        None => child.finish(Duration::from_millis(100)).map(|()| None),
    };
    let (mut m, far_mode) = match (near, far) {
        (Ok(m), Ok(f)) => (m, f),
        (Ok(_), Err(e)) => return Err(e.context("far end")),
        (Err(e), Ok(_)) => return Err(e),
        (Err(e), Err(f)) => return Err(e.context(format!("far end: {f:#}"))),
    };
    m.mode = match far_mode {
        Some(far) if far == m.mode => format!("{far} (both ends)"),
        Some(far) => format!("{} <-> {far}", m.mode),
        None => format!("{} (both ends; the far end a child process)", m.mode),
    };
    drop(lab);
    Ok(m)
}

/// Run the comparison for `transports` into `r`.
pub fn compare(r: &mut Report, transports: &[String], opts: &Options, launcher: &PeerLauncher) {
    if let Some(why) = netns::unavailable() {
        for t in transports {
            r.machine
                .insert(format!("veth_enc_{t}"), format!("skipped: {why}"));
        }
        return;
    }
    for t in transports {
        let key = format!("veth_enc_{t}");
        match measure(t, opts, launcher) {
            Ok(m) => {
                r.machine.insert(format!("{key}_mode"), m.mode);
                for (size, n, secs) in m.throughput {
                    let k = format!("{key}_{}", size_name(size));
                    r.figure(&format!("{k}_msgs_per_s"), n as f64 / secs);
                    r.figure(
                        &format!("{k}_mb_per_s"),
                        n as f64 * size as f64 / secs / 1e6,
                    );
                }
                let k = format!("{key}_rtt_64b");
                r.figure(
                    &format!("{k}_p50_us"),
                    m.rtt.value_at_quantile(0.5) as f64 / 1e3,
                );
                r.figure(
                    &format!("{k}_p99_us"),
                    m.rtt.value_at_quantile(0.99) as f64 / 1e3,
                );
                r.latency(&k, &m.rtt);
                if let Some(n) = m.retransmits {
                    r.figure(&format!("{key}_retransmits"), n as f64);
                }
            }
            Err(e) => {
                r.machine.insert(key, format!("skipped: {e:#}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(t: &[&str]) -> Options {
        Options {
            transports: t.iter().map(|s| s.to_string()).collect(),
            ..Options::default()
        }
    }

    #[test]
    fn transports_are_parsed_checked_deduplicated_and_ordered() {
        let got = requested(&opts(&["dpdk,tcp", "af-xdp", "tcp", " udp "])).unwrap();
        assert_eq!(got, ["tcp", "udp", "af_xdp", "dpdk"]);
        let err = requested(&opts(&["tcp,quic"])).unwrap_err().to_string();
        assert!(err.contains("quic") && err.contains("af_xdp"), "{err}");
        let default = requested(&opts(&[])).unwrap();
        assert_eq!(default[0], "tcp");
        let all = netns::unavailable().is_none();
        assert_eq!(default.len(), if all { TRANSPORTS.len() } else { 1 });
    }

    #[test]
    fn peer_spec_round_trips_and_rejects_garbage() {
        let s = PeerSpec {
            transport: "dpdk".into(),
            ns: "pbt1x2-h1".into(),
            local: "10.77.0.2:7911".parse().unwrap(),
            remote: "10.77.0.1:7911".parse().unwrap(),
            core: 1,
        };
        assert_eq!(PeerSpec::decode(&s.encode()).unwrap(), s);
        assert!(PeerSpec::decode("dpdk ns 10.77.0.2:7911").is_err());
        assert!(PeerSpec::decode("quic ns 10.77.0.2:1 10.77.0.1:1 0").is_err());
        assert!(PeerSpec::decode("udp ns 10.77.0.2 10.77.0.1:1 0").is_err());
    }
}
