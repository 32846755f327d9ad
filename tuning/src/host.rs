//! Host facts: what `/proc`, `/sys` and three system calls say about this
//! machine. [`inspect`] reads a tree rooted anywhere (tests lay out recorded
//! samples under a temporary directory); [`inspect_this_host`] reads `/`
//! and runs the real probes. Nothing here changes the system.

use crate::parse::{self, IrqLine, MemInfo};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest `/proc` or `/sys` text file read (a huge `/proc/interrupts` on a
/// many-core box is ~1 MiB); bigger is reported as unreadable.
pub const PROC_FILE_BYTES_MAX: u64 = 4 << 20;
/// Largest uncompressed kernel config accepted (real ones are ~300 KiB).
pub const KERNEL_CONFIG_BYTES_MAX: usize = 16 << 20;
/// Most network interfaces inspected.
pub const NICS_MAX: usize = 64;
/// Entries in the io_uring ring created by the probe.
pub const IO_URING_PROBE_ENTRIES: u32 = 4;

/// Kernel config options the transport report looks at.
pub const KERNEL_OPTIONS: &[&str] = &[
    "CONFIG_BPF_SYSCALL",
    "CONFIG_XDP_SOCKETS",
    "CONFIG_BPF_JIT",
    "CONFIG_IO_URING",
    "CONFIG_HUGETLBFS",
    "CONFIG_VFIO",
    "CONFIG_VFIO_PCI",
    "CONFIG_IOMMU_SUPPORT",
];

/// CPU flags the advisor reports on (x86 names from `/proc/cpuinfo`).
pub const CPU_FLAGS: &[&str] = &[
    "avx2",
    "avx512f",
    "avx512ifma",
    "sha_ni",
    "adx",
    "bmi2",
    "vaes",
];

/// Linux capability numbers used below.
pub mod cap {
    /// Lock memory beyond RLIMIT_MEMLOCK.
    pub const IPC_LOCK: u32 = 14;
    /// Configure interfaces, attach XDP programs.
    pub const NET_ADMIN: u32 = 12;
    /// Raw sockets (AF_XDP needs it).
    pub const NET_RAW: u32 = 13;
    /// The catch-all that also covers BPF on older kernels.
    pub const SYS_ADMIN: u32 = 21;
    /// Load BPF programs (Linux 5.8+).
    pub const BPF: u32 = 39;
}

/// One logical CPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cpu {
    /// Kernel CPU number.
    pub id: u32,
    /// All logical CPUs of the same physical core, this one included.
    pub siblings: Vec<u32>,
    /// NUMA node, when `/sys/devices/system/node` says.
    pub numa_node: Option<u32>,
}

/// CPUs, SMT siblings and NUMA nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Topology {
    /// Online CPUs this process may run on, by id.
    pub cpus: Vec<Cpu>,
    /// NUMA nodes with their CPU lists (empty if not visible).
    pub numa_nodes: BTreeMap<u32, Vec<u32>>,
}

impl Topology {
    /// Build from the online CPU ids and the sibling lists and NUMA nodes
    /// read for them. A CPU whose sibling list is missing counts as its own
    /// physical core; siblings outside `cpus` are dropped.
    pub fn new(
        cpu_ids: &[u32],
        siblings: &BTreeMap<u32, Vec<u32>>,
        numa_nodes: BTreeMap<u32, Vec<u32>>,
    ) -> Self {
        let cpus = cpu_ids
            .iter()
            .map(|&id| {
                let mut sib: Vec<u32> = siblings
                    .get(&id)
                    .map(|s| s.iter().copied().filter(|c| cpu_ids.contains(c)).collect())
                    .unwrap_or_default();
                if !sib.contains(&id) {
                    sib.push(id);
                    sib.sort_unstable();
                }
                let numa_node = numa_nodes
                    .iter()
                    .find(|(_, cpus)| cpus.contains(&id))
                    .map(|(n, _)| *n);
                Cpu {
                    id,
                    siblings: sib,
                    numa_node,
                }
            })
            .collect();
        Topology { cpus, numa_nodes }
    }

    /// Logical CPUs.
    pub fn logical(&self) -> usize {
        self.cpus.len()
    }

    /// Physical cores, each as its sorted logical CPUs, ordered by first CPU.
    pub fn physical_cores(&self) -> Vec<Vec<u32>> {
        let mut cores: Vec<Vec<u32>> = self.cpus.iter().map(|c| c.siblings.clone()).collect();
        cores.sort();
        cores.dedup();
        cores
    }

    /// Whether any physical core runs more than one logical CPU.
    pub fn smt(&self) -> bool {
        self.cpus.iter().any(|c| c.siblings.len() > 1)
    }

    /// NUMA node of a CPU.
    pub fn node_of(&self, cpu: u32) -> Option<u32> {
        self.cpus
            .iter()
            .find(|c| c.id == cpu)
            .and_then(|c| c.numa_node)
    }
}

/// Outcome of the `io_uring_setup` probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RingProbe {
    /// A ring was created (and closed right away).
    Created,
    /// The call failed with this errno.
    Failed {
        /// errno value.
        errno: i32,
        /// Its name and meaning.
        meaning: String,
    },
    /// Not run (tests, or not Linux).
    NotRun,
}

/// A resource limit; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rlimit {
    /// Soft limit in bytes.
    pub soft_bytes: Option<u64>,
    /// Hard limit in bytes.
    pub hard_bytes: Option<u64>,
}

/// Results of the system calls (injected so tests can pick them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probes {
    /// `io_uring_setup` with a tiny ring.
    pub io_uring: RingProbe,
    /// `getrlimit(RLIMIT_MEMLOCK)`.
    pub memlock: Option<Rlimit>,
    /// `sched_getaffinity`: CPUs this process may run on.
    pub allowed_cpus: Option<Vec<u32>>,
}

impl Probes {
    /// No probe run: the facts come only from files.
    pub fn none() -> Self {
        Probes {
            io_uring: RingProbe::NotRun,
            memlock: None,
            allowed_cpus: None,
        }
    }

    /// Run the real probes on this host.
    pub fn run() -> Self {
        Probes {
            io_uring: probe_io_uring(),
            memlock: probe_memlock(),
            allowed_cpus: probe_allowed_cpus(),
        }
    }
}

/// An interrupt of a network interface and where it may run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NicIrq {
    /// IRQ number.
    pub irq: u32,
    /// Device name from `/proc/interrupts`.
    pub name: String,
    /// `/proc/irq/N/smp_affinity_list`, if readable.
    pub affinity: Option<Vec<u32>>,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Nic {
    /// Interface name.
    pub name: String,
    /// Backed by a device (`/sys/class/net/X/device` exists): not `lo`,
    /// veth, bridge or ifb.
    pub has_device: bool,
    /// Kernel driver (`virtio_net`, `ixgbe`, `mlx5_core`, ...).
    pub driver: Option<String>,
    /// Receive queues.
    pub rx_queues: u32,
    /// Transmit queues.
    pub tx_queues: u32,
    /// NUMA node of the device, if the platform says.
    pub numa_node: Option<u32>,
    /// Its interrupts.
    pub irqs: Vec<NicIrq>,
}

/// Kernel config as read from `/proc/config.gz` or `/boot/config-RELEASE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelConfig {
    /// Which file.
    pub source: String,
    /// The options in [`KERNEL_OPTIONS`] that the file mentions.
    pub options: BTreeMap<String, String>,
}

/// Everything the advisor knows about the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostFacts {
    /// `uname -r`.
    pub kernel_release: Option<String>,
    /// CPUs, siblings, NUMA.
    pub topology: Topology,
    /// Which of [`CPU_FLAGS`] the CPU has.
    pub cpu_flags: Vec<String>,
    /// Whether `/proc/cpuinfo` had a flags line at all.
    pub cpu_flags_visible: bool,
    /// `kernel.io_uring_disabled` (absent before Linux 6.6).
    pub io_uring_disabled: Option<u8>,
    /// System-call probes.
    pub probes: Probes,
    /// Effective capabilities of this process.
    pub cap_eff: Option<u64>,
    /// Memory and huge pages.
    pub meminfo: Option<MemInfo>,
    /// Transparent huge pages mode.
    pub thp: Option<String>,
    /// Frequency governor per CPU (empty: not visible).
    pub governors: BTreeMap<u32, String>,
    /// Network interfaces.
    pub nics: Vec<Nic>,
    /// Interface of the default route.
    pub default_iface: Option<String>,
    /// Kernel config, if readable.
    pub kernel_config: Option<KernelConfig>,
    /// bpffs mounted at /sys/fs/bpf.
    pub bpffs_mounted: bool,
    /// hugetlbfs mount points.
    pub hugetlbfs_mounts: Vec<String>,
    /// IOMMU groups (`None`: the directory is absent).
    pub iommu_groups: Option<usize>,
    /// `/dev/vfio` exists.
    pub dev_vfio: bool,
    /// `vfio_pci` is loaded or built in.
    pub vfio_pci: bool,
    /// Files that exist but could not be read or parsed.
    pub unreadable: Vec<String>,
}

impl HostFacts {
    /// Whether capability `n` is in the effective set (false if unknown).
    pub fn has_cap(&self, n: u32) -> bool {
        self.cap_eff.is_some_and(|c| c & (1u64 << n) != 0)
    }

    /// Whether the CPU has `flag`.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.cpu_flags.iter().any(|f| f == flag)
    }

    /// The interface peers most likely reach: the default route's, else the
    /// first one with a device.
    pub fn peer_nic(&self) -> Option<&Nic> {
        self.default_iface
            .as_ref()
            .and_then(|n| self.nics.iter().find(|x| &x.name == n))
            .or_else(|| self.nics.iter().find(|x| x.has_device))
    }
}

/// Reads files under a root directory (`/` for the real host).
struct Sys {
    root: PathBuf,
    unreadable: Vec<String>,
}

impl Sys {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// Bounded read of a text file; `None` if absent, and an unreadable
    /// file is noted and treated as absent.
    fn read(&mut self, rel: &str) -> Option<String> {
        match read_bounded(&self.path(rel), PROC_FILE_BYTES_MAX) {
            Ok(Some(bytes)) => match String::from_utf8(bytes) {
                Ok(s) => Some(s),
                Err(_) => {
                    self.unreadable.push(format!("{rel}: not UTF-8"));
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                self.unreadable.push(format!("{rel}: {e}"));
                None
            }
        }
    }

    /// Read and parse; a parse failure is noted.
    fn parse<T>(
        &mut self,
        rel: &str,
        f: impl FnOnce(&str) -> Result<T, parse::ParseError>,
    ) -> Option<T> {
        let text = self.read(rel)?;
        match f(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.unreadable.push(format!("{rel}: {e}"));
                None
            }
        }
    }

    /// Sorted entry names of a directory (empty if absent).
    fn list(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(rel))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// Last component of a symlink's target.
    fn link_name(&self, rel: &str) -> Option<String> {
        let target = std::fs::read_link(self.path(rel)).ok()?;
        target.file_name()?.to_str().map(str::to_string)
    }
}

/// Read at most `max` bytes; `Ok(None)` if the file does not exist, an
/// error if it is bigger than `max`.
fn read_bounded(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    file.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(Some(buf))
}

/// Decompress a gzip file (as `/proc/config.gz`) of at most `max` bytes.
pub fn gunzip(data: &[u8], max: usize) -> Result<Vec<u8>, String> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if data.len() < 18 || data[0] != 0x1f || data[1] != 0x8b || data[2] != 8 {
        return Err("not a gzip (deflate) file".into());
    }
    let flags = data[3];
    let mut pos = 10usize;
    let short = || "truncated gzip header".to_string();
    if flags & FEXTRA != 0 {
        let len = data.get(pos..pos + 2).ok_or_else(short)?;
        pos += 2 + u16::from_le_bytes([len[0], len[1]]) as usize;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let end = data
                .get(pos..)
                .and_then(|d| d.iter().position(|&b| b == 0))
                .ok_or_else(short)?;
            pos += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    let body = data.get(pos..).ok_or_else(short)?;
    miniz_oxide::inflate::decompress_to_vec_with_limit(body, max)
        .map_err(|e| format!("inflate failed: {e}"))
}

/// Inspect the tree under `root` (use `/` for this host) with the given
/// probe results.
pub fn inspect(root: &Path, probes: Probes) -> HostFacts {
    let mut sys = Sys {
        root: root.to_path_buf(),
        unreadable: Vec::new(),
    };
    let kernel_release = sys
        .read("proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string());
    let topology = read_topology(&mut sys, probes.allowed_cpus.as_deref());

    let (cpu_flags, cpu_flags_visible) = match sys.read("proc/cpuinfo") {
        Some(text) => {
            let all = parse::cpuinfo_flags(&text);
            let visible = !all.is_empty();
            let wanted = CPU_FLAGS
                .iter()
                .filter(|f| all.iter().any(|a| a == *f))
                .map(|f| f.to_string())
                .collect();
            (wanted, visible)
        }
        None => (Vec::new(), false),
    };
    let io_uring_disabled = sys.parse(
        "proc/sys/kernel/io_uring_disabled",
        parse::io_uring_disabled,
    );
    let cap_eff = sys.parse("proc/self/status", parse::cap_eff);
    let meminfo = sys.parse("proc/meminfo", parse::meminfo);
    let thp = sys.parse(
        "sys/kernel/mm/transparent_hugepage/enabled",
        parse::bracketed_choice,
    );
    let mut governors = BTreeMap::new();
    for cpu in &topology.cpus {
        let rel = format!(
            "sys/devices/system/cpu/cpu{}/cpufreq/scaling_governor",
            cpu.id
        );
        if let Some(g) = sys.read(&rel) {
            governors.insert(cpu.id, g.trim().to_string());
        }
    }

    let irqs = sys
        .parse("proc/interrupts", parse::interrupts)
        .unwrap_or_default();
    let nics = read_nics(&mut sys, &irqs);
    let default_iface = sys
        .read("proc/net/route")
        .and_then(|t| parse::default_route_iface(&t));

    let kernel_config = read_kernel_config(&mut sys, kernel_release.as_deref());
    let mounts = sys
        .read("proc/mounts")
        .map(|t| parse::mounts(&t))
        .unwrap_or_default();
    let bpffs_mounted = mounts
        .iter()
        .any(|m| m.fstype == "bpf" && m.target == "/sys/fs/bpf");
    let hugetlbfs_mounts = mounts
        .iter()
        .filter(|m| m.fstype == "hugetlbfs")
        .map(|m| m.target.clone())
        .collect();
    let iommu_groups = sys
        .exists("sys/kernel/iommu_groups")
        .then(|| sys.list("sys/kernel/iommu_groups").len());
    let dev_vfio = sys.exists("dev/vfio");
    let modules = sys
        .read("proc/modules")
        .map(|t| parse::modules(&t))
        .unwrap_or_default();
    let vfio_pci = modules.iter().any(|m| m == "vfio_pci") || sys.exists("sys/module/vfio_pci");

    HostFacts {
        kernel_release,
        topology,
        cpu_flags,
        cpu_flags_visible,
        io_uring_disabled,
        probes,
        cap_eff,
        meminfo,
        thp,
        governors,
        nics,
        default_iface,
        kernel_config,
        bpffs_mounted,
        hugetlbfs_mounts,
        iommu_groups,
        dev_vfio,
        vfio_pci,
        unreadable: sys.unreadable,
    }
}

/// Inspect this machine: files under `/` and the real probes.
pub fn inspect_this_host() -> HostFacts {
    inspect(Path::new("/"), Probes::run())
}

fn read_topology(sys: &mut Sys, allowed: Option<&[u32]>) -> Topology {
    let mut online = sys
        .parse("sys/devices/system/cpu/online", parse::cpu_list)
        .unwrap_or_default();
    if online.is_empty() {
        // No sysfs: fall back to the CPUs this process may use, else one.
        online = allowed.map(<[u32]>::to_vec).unwrap_or_else(|| vec![0]);
    }
    if let Some(allowed) = allowed {
        let kept: Vec<u32> = online
            .iter()
            .copied()
            .filter(|c| allowed.contains(c))
            .collect();
        if !kept.is_empty() {
            online = kept;
        }
    }
    let mut siblings = BTreeMap::new();
    for &cpu in &online {
        let rel = format!("sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list");
        if let Some(s) = sys.parse(&rel, parse::cpu_list) {
            siblings.insert(cpu, s);
        }
    }
    let mut nodes = BTreeMap::new();
    for name in sys.list("sys/devices/system/node") {
        let Some(n) = name
            .strip_prefix("node")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let rel = format!("sys/devices/system/node/{name}/cpulist");
        if let Some(cpus) = sys.parse(&rel, parse::cpu_list) {
            nodes.insert(n, cpus);
        }
    }
    Topology::new(&online, &siblings, nodes)
}

fn read_nics(sys: &mut Sys, irqs: &[IrqLine]) -> Vec<Nic> {
    let mut out = Vec::new();
    for name in sys.list("sys/class/net").into_iter().take(NICS_MAX) {
        let base = format!("sys/class/net/{name}");
        let queues = sys.list(&format!("{base}/queues"));
        let count = |p: &str| queues.iter().filter(|q| q.starts_with(p)).count() as u32;
        let has_device = sys.exists(&format!("{base}/device"));
        let device = sys.link_name(&format!("{base}/device"));
        let driver = sys.link_name(&format!("{base}/device/driver"));
        let numa_node = sys
            .read(&format!("{base}/device/numa_node"))
            .and_then(|s| s.trim().parse::<i64>().ok())
            .and_then(|n| u32::try_from(n).ok());
        let msi: Vec<u32> = sys
            .list(&format!("{base}/device/msi_irqs"))
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        let mut nic_irqs = Vec::new();
        for line in irqs {
            if nic_irq_matches(&name, device.as_deref(), &line.name) || msi.contains(&line.irq) {
                let affinity = sys.parse(
                    &format!("proc/irq/{}/smp_affinity_list", line.irq),
                    parse::cpu_list,
                );
                nic_irqs.push(NicIrq {
                    irq: line.irq,
                    name: line.name.clone(),
                    affinity,
                });
            }
        }
        out.push(Nic {
            name,
            has_device,
            driver,
            rx_queues: count("rx-"),
            tx_queues: count("tx-"),
            numa_node,
            irqs: nic_irqs,
        });
    }
    out
}

/// Whether an interrupt named `irq_name` belongs to interface `iface`
/// (whose device is `device`, e.g. `virtio2`): `eth0`, `eth0-TxRx-3`,
/// `virtio2-input.0`, `virtio2-output.0`.
pub fn nic_irq_matches(iface: &str, device: Option<&str>, irq_name: &str) -> bool {
    let named = |prefix: &str| {
        irq_name == prefix
            || irq_name
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with(['-', '@', ':']))
    };
    if named(iface) {
        return true;
    }
    match device {
        Some(dev) if dev.starts_with("virtio") => {
            irq_name.starts_with(&format!("{dev}-input"))
                || irq_name.starts_with(&format!("{dev}-output"))
        }
        _ => false,
    }
}

fn read_kernel_config(sys: &mut Sys, release: Option<&str>) -> Option<KernelConfig> {
    let keep = |all: std::collections::BTreeMap<String, String>| {
        all.into_iter()
            .filter(|(k, _)| KERNEL_OPTIONS.contains(&k.as_str()))
            .collect()
    };
    match read_bounded(&sys.path("proc/config.gz"), PROC_FILE_BYTES_MAX) {
        Ok(Some(gz)) => match gunzip(&gz, KERNEL_CONFIG_BYTES_MAX) {
            Ok(raw) => {
                let text = String::from_utf8_lossy(&raw);
                return Some(KernelConfig {
                    source: "/proc/config.gz".into(),
                    options: keep(parse::kernel_config(&text)),
                });
            }
            Err(e) => sys.unreadable.push(format!("/proc/config.gz: {e}")),
        },
        Ok(None) => {}
        Err(e) => sys.unreadable.push(format!("/proc/config.gz: {e}")),
    }
    let rel = format!("boot/config-{}", release?);
    let text = sys.read(&rel)?;
    Some(KernelConfig {
        source: format!("/{rel}"),
        options: keep(parse::kernel_config(&text)),
    })
}

#[cfg(target_os = "linux")]
fn probe_io_uring() -> RingProbe {
    /// `struct io_uring_params` is 120 bytes: 10 u32 fields then two
    /// 40-byte offset structs (each ends in a u64, hence the alignment).
    #[repr(C, align(8))]
    struct Params([u32; 30]);
    let mut params = Params([0; 30]);
    // SAFETY: io_uring_setup reads and writes exactly one
    // `struct io_uring_params` (120 bytes, zeroed as the kernel requires)
    // through the pointer, which lives for the whole call. It returns a new
    // file descriptor or -1; nothing else is touched.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_setup,
            IO_URING_PROBE_ENTRIES,
            &mut params as *mut Params,
        )
    };
    if ret >= 0 {
        // SAFETY: `ret` is a descriptor we just created and own; closing it
        // once frees the ring.
        unsafe { libc::close(ret as libc::c_int) };
        return RingProbe::Created;
    }
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    let meaning = match errno {
        libc::ENOSYS => "ENOSYS: the kernel has no io_uring (CONFIG_IO_URING off or too old)",
        libc::EPERM => {
            "EPERM: io_uring is disabled (kernel.io_uring_disabled) or blocked by a seccomp filter"
        }
        libc::ENOMEM => {
            "ENOMEM: no memory for the ring (on kernels before 5.12: RLIMIT_MEMLOCK too low)"
        }
        libc::EMFILE | libc::ENFILE => "EMFILE: out of file descriptors",
        _ => "unexpected error",
    };
    RingProbe::Failed {
        errno,
        meaning: meaning.to_string(),
    }
}

#[cfg(not(target_os = "linux"))]
fn probe_io_uring() -> RingProbe {
    RingProbe::NotRun
}

fn probe_memlock() -> Option<Rlimit> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `struct rlimit` through a valid pointer.
    let ret = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut rl) };
    if ret != 0 {
        return None;
    }
    let conv = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Some(Rlimit {
        soft_bytes: conv(rl.rlim_cur),
        hard_bytes: conv(rl.rlim_max),
    })
}

#[cfg(target_os = "linux")]
fn probe_allowed_cpus() -> Option<Vec<u32>> {
    // SAFETY: cpu_set_t is plain bits; all-zero is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity(0, ...) writes at most `size_of::<cpu_set_t>()`
    // bytes into `set`, which we own.
    let ret =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if ret != 0 {
        return None;
    }
    let max = (std::mem::size_of::<libc::cpu_set_t>() * 8) as u32;
    // SAFETY: CPU_ISSET reads one bit of the set for an index below its size.
    let cpus: Vec<u32> = (0..max)
        .filter(|&c| unsafe { libc::CPU_ISSET(c as usize, &set) })
        .collect();
    (!cpus.is_empty()).then_some(cpus)
}

#[cfg(not(target_os = "linux"))]
fn probe_allowed_cpus() -> Option<Vec<u32>> {
    None
}
