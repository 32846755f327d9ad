//! Findings with severities and exact remedies, and the per-transport
//! capability report (io_uring TCP, AF_XDP, DPDK). Pure functions of
//! [`HostFacts`] and the [`Plan`]: nothing here reads or changes the host.

use crate::host::{cap, HostFacts, RingProbe};
use crate::parse::format_cpu_list;
use crate::plan::Plan;
use serde::Serialize;

/// Memory a validator may want to lock: io_uring registered buffers for
/// its executors plus an AF_XDP UMEM. Below this, a finding.
pub const MEMLOCK_RECOMMENDED_BYTES: u64 = 64 << 20;
/// A typical AF_XDP UMEM: 4096 frames of 4 KiB.
pub const AF_XDP_UMEM_BYTES: u64 = 16 << 20;
/// Huge pages DPDK wants for its mbuf pools (1 GiB of 2 MiB pages).
pub const DPDK_HUGEPAGES_RECOMMENDED_KIB: u64 = 1 << 20;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Nothing to do.
    Ok,
    /// Worth changing for speed or latency.
    Advice,
    /// Breaks or badly slows the node or a transport.
    Problem,
}

impl Severity {
    /// Word shown in the table.
    pub fn word(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Advice => "advice",
            Severity::Problem => "PROBLEM",
        }
    }
}

/// One observation about the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What part of the host (e.g. "memlock").
    pub area: String,
    /// How much it matters.
    pub severity: Severity,
    /// What was seen.
    pub finding: String,
    /// The exact change (command, sysctl, limits line, config line), if any.
    pub remedy: Option<String>,
}

fn f(area: &str, severity: Severity, finding: String, remedy: Option<String>) -> Finding {
    Finding {
        area: area.to_string(),
        severity,
        finding,
        remedy,
    }
}

/// Whether a transport can run here and what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransportReport {
    /// `tcp`, `af_xdp` or `dpdk` (the `transport = ...` config value).
    pub transport: String,
    /// The worst of the checks.
    pub status: Severity,
    /// One line: ready, runs with limits, or cannot run.
    pub verdict: String,
    /// The checks behind it.
    pub checks: Vec<Finding>,
}

fn bytes(n: u64) -> String {
    if n >= 1 << 30 && n % (1 << 30) == 0 {
        format!("{} GiB", n >> 30)
    } else if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{} KiB", n >> 10)
    }
}

/// What each CPU flag buys Plume, and what its absence costs.
pub fn flag_meaning(flag: &str) -> (&'static str, Severity) {
    match flag {
        "avx2" => (
            "curve25519-dalek's AVX2 backend for batched Ed25519 verification (sigverify stage); without it the portable backend is used",
            Severity::Problem,
        ),
        "avx512f" => (
            "AVX-512: not used by this build (curve25519-dalek's AVX-512 IFMA backend needs a nightly compiler)",
            Severity::Ok,
        ),
        "avx512ifma" => (
            "AVX-512 IFMA: would allow curve25519-dalek's IFMA Ed25519 backend (nightly only, not used by this build)",
            Severity::Ok,
        ),
        "sha_ni" => (
            "SHA-256 in hardware for block, Merkle and state hashing (sha2 picks it at run time)",
            Severity::Advice,
        ),
        "adx" => (
            "ADCX/ADOX: blst's fast BLS12-381 field arithmetic (quorum certificates)",
            Severity::Advice,
        ),
        "bmi2" => (
            "MULX: blst's fast BLS12-381 field arithmetic (with adx)",
            Severity::Advice,
        ),
        "vaes" => (
            "vector AES: not used today (the Noise AES-GCM sessions use AES-NI through the aes-gcm crate)",
            Severity::Ok,
        ),
        _ => ("", Severity::Ok),
    }
}

/// All host findings, in table order.
pub fn findings(h: &HostFacts, plan: &Plan) -> Vec<Finding> {
    let mut out = Vec::new();
    cores(h, plan, &mut out);
    cpu_flags(h, &mut out);
    io_uring(h, &mut out);
    memlock(h, &mut out);
    memory(h, &mut out);
    governor(h, &mut out);
    nic(h, plan, &mut out);
    for u in &h.unreadable {
        out.push(f(
            "files",
            Severity::Advice,
            format!("could not read {u}; the checks that need it were skipped"),
            None,
        ));
    }
    out
}

fn cores(h: &HostFacts, plan: &Plan, out: &mut Vec<Finding>) {
    let t = &h.topology;
    let logical = t.logical();
    let physical = t.physical_cores().len();
    let sev = if logical < 2 {
        Severity::Problem
    } else {
        Severity::Ok
    };
    out.push(f(
        "cores",
        sev,
        format!("{logical} logical CPU(s) on {physical} physical core(s) usable by this process"),
        (logical < 2).then(|| {
            "give the node at least 2 cores (VM size, or the cgroup cpuset / taskset that restricts it)".to_string()
        }),
    ));
    if t.smt() {
        let (sev, remedy) = if plan.hot_roles_share_core {
            (
                Severity::Advice,
                Some("too few physical cores to keep hot roles apart: disable SMT (`echo off > /sys/devices/system/cpu/smt/control`) only if latency matters more than throughput, or use a host with more cores".to_string()),
            )
        } else {
            (Severity::Ok, None)
        };
        out.push(f(
            "smt",
            sev,
            format!(
                "SMT on; the plan keeps hot roles off sibling threads{}",
                if plan.hot_roles_share_core {
                    " where it can (not fully here)"
                } else {
                    ""
                }
            ),
            remedy,
        ));
    } else {
        out.push(f("smt", Severity::Ok, "no SMT siblings".into(), None));
    }
    let nodes = t.numa_nodes.len();
    if nodes > 1 {
        let sev = if plan.spans_numa_nodes {
            Severity::Advice
        } else {
            Severity::Ok
        };
        let node = plan
            .consensus_cores
            .first()
            .and_then(|&c| t.node_of(c))
            .unwrap_or(0);
        out.push(f(
            "numa",
            sev,
            format!(
                "{nodes} NUMA nodes{}",
                if plan.spans_numa_nodes { "; the plan's hot cores span nodes" } else { "; the plan stays on one node" }
            ),
            Some(format!(
                "bind memory to the consensus core's node: `numactl --cpunodebind={node} --membind={node} plume run --home DIR`"
            )),
        ));
    } else {
        out.push(f(
            "numa",
            Severity::Ok,
            if nodes == 1 {
                "1 NUMA node".into()
            } else {
                "NUMA layout not visible".into()
            },
            None,
        ));
    }
}

fn cpu_flags(h: &HostFacts, out: &mut Vec<Finding>) {
    if !h.cpu_flags_visible {
        out.push(f(
            "cpu flags",
            Severity::Advice,
            "CPU flags not visible in /proc/cpuinfo (not x86, or no procfs); cryptography speed unknown".into(),
            None,
        ));
        return;
    }
    for flag in crate::host::CPU_FLAGS {
        let (meaning, missing) = flag_meaning(flag);
        let have = h.has_flag(flag);
        let remedy = (!have && missing != Severity::Ok).then(|| {
            "a CPU (or VM CPU model, e.g. QEMU `-cpu host`) that exposes this flag".to_string()
        });
        out.push(f(
            &format!("cpu {flag}"),
            if have { Severity::Ok } else { missing },
            format!("{}: {meaning}", if have { "present" } else { "absent" }),
            remedy,
        ));
    }
}

fn io_uring(h: &HostFacts, out: &mut Vec<Finding>) {
    const SYSCTL: &str = "`sysctl -w kernel.io_uring_disabled=0` and persist it: `echo kernel.io_uring_disabled=0 > /etc/sysctl.d/60-plume.conf`";
    match h.io_uring_disabled {
        Some(0) | None => {}
        Some(v) => out.push(f(
            "io_uring",
            Severity::Problem,
            format!(
                "kernel.io_uring_disabled = {v} ({})",
                if v == 1 {
                    "only io_uring_group members and privileged processes"
                } else {
                    "disabled for everyone"
                }
            ),
            Some(SYSCTL.into()),
        )),
    }
    match &h.probes.io_uring {
        RingProbe::Created => out.push(f(
            "io_uring",
            Severity::Ok,
            "io_uring_setup created a ring (probe closed it at once)".into(),
            None,
        )),
        RingProbe::Failed { errno, meaning } => {
            let remedy = match *errno {
                libc::EPERM => {
                    format!("{SYSCTL}; in a container, allow io_uring in its seccomp profile")
                }
                libc::ENOSYS => {
                    "a kernel built with CONFIG_IO_URING=y (Linux 5.10 or newer)".into()
                }
                libc::ENOMEM => "raise the memlock limit (see memlock)".into(),
                _ => "see io_uring_setup(2)".into(),
            };
            out.push(f(
                "io_uring",
                Severity::Problem,
                format!("io_uring_setup failed: {meaning}"),
                Some(remedy),
            ));
        }
        RingProbe::NotRun => out.push(f(
            "io_uring",
            Severity::Ok,
            format!(
                "not probed; kernel.io_uring_disabled = {}",
                h.io_uring_disabled
                    .map_or("not present".to_string(), |v| v.to_string())
            ),
            None,
        )),
    }
}

/// The remedy for a low memlock limit.
pub const MEMLOCK_REMEDY: &str = "`ulimit -l unlimited` in the shell that starts plume; persistent: `plume - memlock unlimited` in /etc/security/limits.d/plume.conf, or `LimitMEMLOCK=infinity` in the systemd unit";

fn memlock(h: &HostFacts, out: &mut Vec<Finding>) {
    let Some(rl) = h.probes.memlock else {
        out.push(f("memlock", Severity::Ok, "not probed".into(), None));
        return;
    };
    match rl.soft_bytes {
        None => out.push(f("memlock", Severity::Ok, "unlimited".into(), None)),
        Some(n) if n >= MEMLOCK_RECOMMENDED_BYTES => {
            out.push(f("memlock", Severity::Ok, format!("{} (enough)", bytes(n)), None))
        }
        Some(n) if h.has_cap(cap::IPC_LOCK) => out.push(f(
            "memlock",
            Severity::Ok,
            format!(
                "limit {}, but this process has CAP_IPC_LOCK, which lifts it; a node run as an unprivileged user needs {} or more",
                bytes(n),
                bytes(MEMLOCK_RECOMMENDED_BYTES)
            ),
            Some(MEMLOCK_REMEDY.into()),
        )),
        Some(n) => out.push(f(
            "memlock",
            Severity::Advice,
            format!(
                "limit {}: io_uring registered buffers and an AF_XDP UMEM need {} or more",
                bytes(n),
                bytes(MEMLOCK_RECOMMENDED_BYTES)
            ),
            Some(MEMLOCK_REMEDY.into()),
        )),
    }
}

fn memory(h: &HostFacts, out: &mut Vec<Finding>) {
    match &h.meminfo {
        Some(m) => out.push(f(
            "huge pages",
            Severity::Ok,
            format!(
                "{} free of {} huge pages of {}: the node itself needs none (LMDB and io_uring use normal pages); DPDK does (see transports)",
                m.hugepages_free,
                m.hugepages_total,
                bytes(m.hugepage_size_kib << 10)
            ),
            None,
        )),
        None => out.push(f("huge pages", Severity::Ok, "/proc/meminfo not visible".into(), None)),
    }
    match h.thp.as_deref() {
        Some("always") => out.push(f(
            "transparent huge pages",
            Severity::Advice,
            "always: khugepaged compaction can stall the LMDB map and cause latency spikes".into(),
            Some("`echo madvise > /sys/kernel/mm/transparent_hugepage/enabled`; persistent: boot with `transparent_hugepage=madvise`".into()),
        )),
        Some(mode) => out.push(f(
            "transparent huge pages",
            Severity::Ok,
            mode.to_string(),
            None,
        )),
        None => out.push(f(
            "transparent huge pages",
            Severity::Ok,
            "not visible".into(),
            None,
        )),
    }
}

fn governor(h: &HostFacts, out: &mut Vec<Finding>) {
    if h.governors.is_empty() {
        out.push(f(
            "cpu governor",
            Severity::Ok,
            "not visible (no cpufreq in this VM or kernel): the hypervisor or firmware sets the frequency".into(),
            None,
        ));
        return;
    }
    let slow: Vec<u32> = h
        .governors
        .iter()
        .filter(|(_, g)| g.as_str() != "performance")
        .map(|(c, _)| *c)
        .collect();
    let mut kinds: Vec<&str> = h.governors.values().map(String::as_str).collect();
    kinds.sort_unstable();
    kinds.dedup();
    if slow.is_empty() {
        out.push(f(
            "cpu governor",
            Severity::Ok,
            "performance on every CPU".into(),
            None,
        ));
    } else {
        out.push(f(
            "cpu governor",
            Severity::Advice,
            format!(
                "{} on CPU(s) {}: frequency ramps add latency to bursts",
                kinds.join("/"),
                format_cpu_list(&slow)
            ),
            Some("`cpupower frequency-set -g performance` (or `echo performance | tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor`)".into()),
        ));
    }
}

fn nic(h: &HostFacts, plan: &Plan, out: &mut Vec<Finding>) {
    let Some(n) = h.peer_nic() else {
        out.push(f(
            "nic",
            Severity::Ok,
            "no network interface with a device visible".into(),
            None,
        ));
        return;
    };
    let name = &n.name;
    let queues_sev = if n.rx_queues > 1 {
        Severity::Advice
    } else {
        Severity::Ok
    };
    out.push(f(
        "nic queues",
        queues_sev,
        format!(
            "{name} ({}): {} rx / {} tx queue(s){}",
            n.driver.as_deref().unwrap_or("driver unknown"),
            n.rx_queues,
            n.tx_queues,
            if n.rx_queues > 1 {
                ": RSS spreads receive work over several cores, the network role runs on one"
            } else {
                ""
            }
        ),
        (n.rx_queues > 1).then(|| {
            format!(
                "`ethtool -L {name} combined 1`, or keep the queues and steer their IRQs (below)"
            )
        }),
    ));
    let target = &plan.nic_irq_cores;
    if n.irqs.is_empty() {
        out.push(f(
            "irq affinity",
            Severity::Ok,
            format!("no interrupt of {name} found in /proc/interrupts"),
            None,
        ));
        return;
    }
    let mut wrong = Vec::new();
    let mut unknown = 0;
    for irq in &n.irqs {
        match &irq.affinity {
            Some(a) if a.iter().any(|c| !target.contains(c)) => wrong.push(irq),
            Some(_) => {}
            None => unknown += 1,
        }
    }
    let t = format_cpu_list(target);
    if wrong.is_empty() {
        out.push(f(
            "irq affinity",
            Severity::Ok,
            format!(
                "{} interrupt(s) of {name} already on CPU(s) {t}{}",
                n.irqs.len() - unknown,
                if unknown > 0 {
                    format!(" ({unknown} not visible)")
                } else {
                    String::new()
                }
            ),
            None,
        ));
    } else {
        let list: Vec<String> = wrong
            .iter()
            .map(|i| {
                format!(
                    "{} ({}) on {}",
                    i.irq,
                    i.name,
                    format_cpu_list(i.affinity.as_deref().unwrap_or(&[]))
                )
            })
            .collect();
        let cmds: Vec<String> = wrong
            .iter()
            .map(|i| format!("echo {t} > /proc/irq/{}/smp_affinity_list", i.irq))
            .collect();
        out.push(f(
            "irq affinity",
            Severity::Advice,
            format!(
                "{name} interrupts may run on sigverify/execution cores: {}",
                list.join(", ")
            ),
            Some(format!(
                "`{}`; stop irqbalance from moving them back (`systemctl disable --now irqbalance`, or IRQBALANCE_BANNED_CPULIST={}). Kernel-managed IRQs (some virtio/NVMe) refuse the write with EIO",
                cmds.join("; "),
                format_cpu_list(&plan.hot_cores().into_iter().filter(|c| !target.contains(c)).collect::<Vec<_>>())
            )),
        ));
    }
}

/// Can each transport run here?
pub fn transports(h: &HostFacts) -> Vec<TransportReport> {
    vec![tcp(h), udp(), af_xdp(h), dpdk(h)]
}

/// Kernel UDP with Plume's reliability layer: needs nothing special.
fn udp() -> TransportReport {
    report(
        "udp",
        vec![f(
            "sockets",
            Severity::Ok,
            "kernel UDP sockets; no privileges, drivers or memory settings needed".into(),
            None,
        )],
        "",
    )
}

/// Add the result of a live attempt (e.g. opening an AF_XDP socket and
/// loading an XDP program) to `transport`'s report and re-judge it.
pub fn add_probe(reports: &mut [TransportReport], transport: &str, result: Result<String, String>) {
    let Some(r) = reports.iter_mut().find(|r| r.transport == transport) else {
        return;
    };
    let mut checks = std::mem::take(&mut r.checks);
    checks.push(match result {
        Ok(what) => f("live probe", Severity::Ok, what, None),
        Err(why) => f("live probe", Severity::Problem, why, None),
    });
    let limited = match r.transport.as_str() {
        "dpdk" => "virtual devices and `--no-huge` only: good for tests, not for speed",
        _ => "see the advice below",
    };
    *r = report(transport, checks, limited);
}

fn report(transport: &str, checks: Vec<Finding>, limited: &str) -> TransportReport {
    let status = checks
        .iter()
        .map(|c| c.severity)
        .max()
        .unwrap_or(Severity::Ok);
    let verdict = match status {
        Severity::Ok => "ready".to_string(),
        Severity::Advice => format!("runs with limits: {limited}"),
        Severity::Problem => "cannot run until the problems below are fixed".to_string(),
    };
    TransportReport {
        transport: transport.to_string(),
        status,
        verdict,
        checks,
    }
}

fn tcp(h: &HostFacts) -> TransportReport {
    let mut checks = Vec::new();
    let check = match &h.probes.io_uring {
        RingProbe::Created => f("io_uring", Severity::Ok, "ring created".into(), None),
        RingProbe::Failed { meaning, .. } => f(
            "io_uring",
            Severity::Problem,
            format!("io_uring_setup failed: {meaning}"),
            Some("see the io_uring finding".into()),
        ),
        RingProbe::NotRun => match h.io_uring_disabled {
            Some(v) if v > 0 => f(
                "io_uring",
                Severity::Problem,
                format!("kernel.io_uring_disabled = {v}"),
                Some("`sysctl -w kernel.io_uring_disabled=0`".into()),
            ),
            _ => f(
                "io_uring",
                Severity::Ok,
                "not probed, not disabled".into(),
                None,
            ),
        },
    };
    checks.push(check);
    report("tcp", checks, "")
}

/// A kernel option check: `y`/`m` ok, `n` a problem, unknown config an
/// advice.
fn kconfig(h: &HostFacts, option: &str, why: &str) -> Finding {
    match &h.kernel_config {
        None => f(
            option,
            Severity::Advice,
            format!("kernel config not readable (no /proc/config.gz or /boot/config-RELEASE): cannot tell whether {why}"),
            Some("`modprobe configs` exposes /proc/config.gz on most distributions".into()),
        ),
        Some(k) => match k.options.get(option).map(String::as_str) {
            Some("y") | Some("m") => f(
                option,
                Severity::Ok,
                format!("{}={} ({})", option, k.options[option], k.source),
                None,
            ),
            other => f(
                option,
                Severity::Problem,
                format!("{option} is {} in {}: {why} is missing", other.unwrap_or("absent"), k.source),
                Some(format!("a kernel built with {option}=y")),
            ),
        },
    }
}

fn af_xdp(h: &HostFacts) -> TransportReport {
    let mut c = vec![
        kconfig(h, "CONFIG_XDP_SOCKETS", "AF_XDP sockets exist"),
        kconfig(h, "CONFIG_BPF_SYSCALL", "XDP programs can be loaded"),
    ];
    c.push(f(
        "bpffs",
        Severity::Ok,
        if h.bpffs_mounted {
            "mounted at /sys/fs/bpf (not needed: Plume pins nothing)".into()
        } else {
            "not mounted, not needed: the XDP program, map and link live exactly as long as the node process".into()
        },
        None,
    ));
    let bpf_ok = h.has_cap(cap::BPF) || h.has_cap(cap::SYS_ADMIN);
    let privileged = h.has_cap(cap::NET_ADMIN) && h.has_cap(cap::NET_RAW) && bpf_ok;
    c.push(if privileged {
        f("privileges", Severity::Ok, "CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF/CAP_SYS_ADMIN held".into(), None)
    } else {
        f(
            "privileges",
            Severity::Problem,
            match h.cap_eff {
                Some(_) => "missing CAP_NET_ADMIN, CAP_NET_RAW or CAP_BPF (needed to attach XDP and open XSK sockets)".into(),
                None => "capabilities not visible".into(),
            },
            Some("run as root, or `setcap cap_net_admin,cap_net_raw,cap_bpf,cap_ipc_lock+ep $(command -v plume)`, or `AmbientCapabilities=` the same in the systemd unit".into()),
        )
    });
    let umem_ok = h
        .probes
        .memlock
        .is_some_and(|m| m.soft_bytes.is_none_or(|n| n >= AF_XDP_UMEM_BYTES))
        || h.has_cap(cap::IPC_LOCK);
    c.push(if umem_ok {
        f(
            "memlock",
            Severity::Ok,
            format!("a {} UMEM can be pinned", bytes(AF_XDP_UMEM_BYTES)),
            None,
        )
    } else {
        f(
            "memlock",
            Severity::Problem,
            format!(
                "the memlock limit is below a {} UMEM and CAP_IPC_LOCK is not held",
                bytes(AF_XDP_UMEM_BYTES)
            ),
            Some(MEMLOCK_REMEDY.into()),
        )
    });
    match h.peer_nic() {
        Some(n) => {
            let driver = n.driver.as_deref().unwrap_or("unknown");
            let mode = "zero-copy needs driver support (e.g. i40e, ice, ixgbe, mlx5_core); other drivers run in copy or generic (skb) mode, which the transport picks and reports at start-up";
            let (sev, remedy) = if n.rx_queues > 1 {
                (
                    Severity::Advice,
                    Some(format!(
                        "steer the validator UDP port to queue 0: `ethtool -N {} flow-type udp4 dst-port PORT action 0`, or `ethtool -L {} combined 1`",
                        n.name, n.name
                    )),
                )
            } else {
                (Severity::Ok, None)
            };
            c.push(f(
                "nic",
                sev,
                format!(
                    "{} (driver {driver}), {} rx queue(s): the socket binds one queue; {mode}",
                    n.name, n.rx_queues
                ),
                remedy,
            ));
        }
        None => c.push(f(
            "nic",
            Severity::Advice,
            "no device-backed interface visible: only veth pairs (generic mode) can be used".into(),
            None,
        )),
    }
    report("af_xdp", c, "see the advice below")
}

fn dpdk(h: &HostFacts) -> TransportReport {
    let mut c = Vec::new();
    c.push(match &h.meminfo {
        Some(m) if m.hugepages_free * m.hugepage_size_kib >= DPDK_HUGEPAGES_RECOMMENDED_KIB && !h.hugetlbfs_mounts.is_empty() => f(
            "huge pages",
            Severity::Ok,
            format!(
                "{} free huge pages of {}, hugetlbfs at {}",
                m.hugepages_free,
                bytes(m.hugepage_size_kib << 10),
                h.hugetlbfs_mounts.join(", ")
            ),
            None,
        ),
        Some(m) => {
            let pages = DPDK_HUGEPAGES_RECOMMENDED_KIB / m.hugepage_size_kib.max(1);
            let mut fix = format!(
                "`sysctl -w vm.nr_hugepages={pages}` (persist in /etc/sysctl.d/60-plume.conf)"
            );
            if h.hugetlbfs_mounts.is_empty() {
                fix.push_str("; `mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages`");
            }
            f(
                "huge pages",
                Severity::Advice,
                format!(
                    "{} free of {} pages ({}), hugetlbfs {}: DPDK only runs with `--no-huge` (testing speed)",
                    m.hugepages_free,
                    m.hugepages_total,
                    bytes(m.hugepage_size_kib << 10),
                    if h.hugetlbfs_mounts.is_empty() { "not mounted" } else { "mounted" }
                ),
                Some(fix),
            )
        }
        None => f("huge pages", Severity::Advice, "/proc/meminfo not visible".into(), None),
    });
    c.push(match h.iommu_groups {
        Some(n) if n > 0 => f("iommu", Severity::Ok, format!("{n} IOMMU group(s)"), None),
        _ => f(
            "iommu",
            Severity::Advice,
            "no IOMMU groups: no PCI NIC can be handed to DPDK through vfio-pci; only virtual devices (net_tap, net_af_packet, net_ring) work".into(),
            Some("enable VT-d / AMD-Vi in the firmware and boot with `intel_iommu=on iommu=pt` (Intel) or `amd_iommu=on iommu=pt` (AMD); in a VM, give it a vIOMMU and a passthrough NIC".into()),
        ),
    });
    let vfio_built = h
        .kernel_config
        .as_ref()
        .and_then(|k| k.options.get("CONFIG_VFIO"))
        .map(|v| v != "n");
    c.push(if h.vfio_pci || h.dev_vfio {
        f("vfio", Severity::Ok, "vfio-pci available".into(), None)
    } else if vfio_built == Some(false) {
        f(
            "vfio",
            Severity::Advice,
            "kernel built without VFIO (CONFIG_VFIO not set): PCI devices cannot be bound for DPDK"
                .into(),
            Some("a kernel with CONFIG_VFIO=m and CONFIG_VFIO_PCI=m".into()),
        )
    } else {
        f(
            "vfio",
            Severity::Advice,
            "vfio-pci not loaded, /dev/vfio absent".into(),
            Some("`modprobe vfio-pci`, then `dpdk-devbind.py --bind=vfio-pci PCI_ADDRESS`".into()),
        )
    });
    report(
        "dpdk",
        c,
        "virtual devices and `--no-huge` only: good for tests, not for speed",
    )
}
