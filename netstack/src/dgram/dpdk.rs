//! A DPDK port as a [`FrameIo`] (cargo feature `dpdk`).
//!
//! Thin bindings of our own: DPDK's fast path (`rte_eth_rx_burst`,
//! `rte_pktmbuf_alloc`, ...) is `static inline` C, so `csrc/dpdk_shim.c`
//! compiles it into plain functions over opaque pointers and this file
//! declares those by hand (no bindgen). `build.rs` links the libraries
//! `pkg-config libdpdk` names; the EAL loads the drivers (PMDs) at run time
//! from Debian's plugin directory.
//!
//! Use: [`eal_init`] once per process, on the thread that will run the port
//! (the EAL pins that thread to [`EalConfig::lcore`]), then
//! [`DpdkPort::open`] the device on that same thread and drive it there.
//! A [`DpdkPort`] is deliberately neither `Send` nor `Sync`.
//!
//! Memory is sized at start-up: one mbuf pool per port
//! ([`PortConfig::mbufs`]), a receive burst array and a transmit burst array
//! of [`PortConfig::burst`] entries. Nothing is allocated per frame on the
//! Rust side.

use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_uint, CStr, CString};
use std::io;
use std::sync::Mutex;

use super::device::FrameIo;

/// Opaque `struct rte_mempool`.
#[repr(C)]
struct RteMempool {
    _opaque: [u8; 0],
}

/// Opaque `struct rte_mbuf`.
#[repr(C)]
struct RteMbuf {
    _opaque: [u8; 0],
}

// The shim in csrc/dpdk_shim.c; see that file for each function's contract.
extern "C" {
    fn plume_dpdk_eal_init(argc: c_int, argv: *mut *mut c_char) -> c_int;
    fn plume_dpdk_errno() -> c_int;
    fn plume_dpdk_strerror(err: c_int) -> *const c_char;
    fn plume_dpdk_pool_create(
        name: *const c_char,
        n: c_uint,
        cache: c_uint,
        data_room: u16,
    ) -> *mut RteMempool;
    fn plume_dpdk_pool_free(mp: *mut RteMempool);
    fn plume_dpdk_port_by_name(name: *const c_char, port: *mut u16) -> c_int;
    fn plume_dpdk_port_next(from: u16) -> u16;
    fn plume_dpdk_port_max() -> u16;
    fn plume_dpdk_port_name(port: u16, buf: *mut c_char, len: usize) -> c_int;
    fn plume_dpdk_port_setup(
        port: u16,
        nb_rxd: *mut u16,
        nb_txd: *mut u16,
        mp: *mut RteMempool,
        mtu: *mut u16,
        stage: *mut *const c_char,
    ) -> c_int;
    fn plume_dpdk_mac(port: u16, mac: *mut u8) -> c_int;
    fn plume_dpdk_rx(
        port: u16,
        bufs: *mut *mut RteMbuf,
        data: *mut *const u8,
        lens: *mut u32,
        n: u16,
    ) -> u16;
    fn plume_dpdk_free_bulk(bufs: *mut *mut RteMbuf, n: c_uint);
    fn plume_dpdk_mbuf_copy(mp: *mut RteMempool, frame: *const u8, len: u16) -> *mut RteMbuf;
    fn plume_dpdk_tx(port: u16, bufs: *mut *mut RteMbuf, n: u16) -> u16;
    fn plume_dpdk_port_close(port: u16) -> c_int;
}

/// Largest burst (rx or tx) a port may be configured with.
pub const BURST_MAX: usize = 512;
/// Bounds on the mbuf pool size.
pub const MBUFS_MIN: usize = 512;
/// Upper bound on the mbuf pool size (about 150 MiB of 2 KiB buffers).
pub const MBUFS_MAX: usize = 1 << 16;
/// Bounds on rx/tx descriptor ring sizes requested from the driver.
pub const DESC_MIN: usize = 64;
/// Upper bound on the rx/tx descriptor ring sizes.
pub const DESC_MAX: usize = 8192;
/// Per-lcore mempool cache (DPDK caps it at 512 and at pool size / 1.5).
const POOL_CACHE: usize = 256;
/// Data room of each mbuf: DPDK's default (2048 bytes + 128 headroom).
const MBUF_DATA_ROOM: u16 = 2048 + 128;
/// Headroom DPDK reserves at the front of each mbuf (RTE_PKTMBUF_HEADROOM).
const MBUF_HEADROOM: usize = 128;
/// Ethernet header without VLAN tag; the FCS is not ours to carry.
const ETH_HDR: usize = 14;
/// Longest device name accepted (DPDK's RTE_ETH_NAME_MAX_LEN is 64).
const DEVICE_NAME_MAX: usize = 63;
/// Longest list of port names put into a "device not found" error.
const PORT_LIST_MAX: usize = 32;
/// Most EAL arguments accepted from a config.
const EAL_ARGS_MAX: usize = 64;

/// Why DPDK could not be started or used. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    /// `rte_eal_init` failed.
    #[error("DPDK EAL init failed ({reason}) with args [{args}]: {hint}")]
    EalInit {
        /// `rte_strerror(rte_errno)`.
        reason: String,
        /// The EAL argv used.
        args: String,
        /// What to change.
        hint: String,
    },
    /// `rte_eal_init` already failed in this process; DPDK cannot retry.
    #[error("DPDK EAL init already failed in this process ({0}); restart the process with a fixed configuration")]
    EalFailedBefore(String),
    /// A port was opened before [`eal_init`].
    #[error("DPDK EAL is not initialized: call dgram::dpdk::eal_init first, on the thread that will run the port")]
    EalNotInitialized,
    /// The configuration cannot be used as given.
    #[error("bad DPDK configuration: {0}")]
    Config(String),
    /// No port by that name.
    #[error("DPDK device {name:?} not found; available ports: [{available}] (a vdev must be given to the EAL as --vdev=NAME,..., a PCI device must be bound to vfio-pci and allowed with -a ADDR)")]
    DeviceNotFound {
        /// The name asked for.
        name: String,
        /// Port names the EAL knows.
        available: String,
    },
    /// A `--vdev` given to the EAL did not come up (DPDK logs why).
    #[error("DPDK virtual device {name:?} (--vdev={arg}) failed to probe at EAL init: check its arguments, e.g. that iface= names an interface in the network namespace of the thread that called eal_init (DPDK's log above says why)")]
    VdevProbe {
        /// The device name.
        name: String,
        /// The full `--vdev` argument.
        arg: String,
    },
    /// The port is already open in this process.
    #[error("DPDK device {0:?} is already open in this process")]
    AlreadyOpen(String),
    /// The mbuf pool could not be created.
    #[error("DPDK mbuf pool of {mbufs} buffers for {device:?} failed ({reason}): give the EAL more memory (-m / mem_mb) or lower PortConfig::mbufs")]
    Mempool {
        /// The device.
        device: String,
        /// Requested pool size.
        mbufs: usize,
        /// `rte_strerror(rte_errno)`.
        reason: String,
    },
    /// A port set-up step failed.
    #[error("DPDK port {device:?}: {stage} failed: {reason}")]
    Port {
        /// The device.
        device: String,
        /// The DPDK call that failed.
        stage: String,
        /// `rte_strerror(-ret)`.
        reason: String,
    },
}

/// What the EAL is started with. [`EalConfig::to_args`] turns it into argv.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EalConfig {
    /// The lcore (CPU) the calling thread is pinned to (`-l N`).
    pub lcore: usize,
    /// Memory to reserve, MiB (`-m`).
    pub mem_mb: usize,
    /// Use ordinary pages instead of huge pages (`--no-huge`): for tests.
    pub no_huge: bool,
    /// Do not scan the PCI bus (`--no-pci`).
    pub no_pci: bool,
    /// Virtual devices (`--vdev=...`), e.g. `net_af_packet0,iface=eth0`.
    pub vdevs: Vec<String>,
    /// PCI devices to use (`-a ADDR`); with none and `no_pci` false, all.
    pub pci_allow: Vec<String>,
    /// Further EAL arguments, appended last (they can override the log level).
    pub extra: Vec<String>,
}

impl Default for EalConfig {
    fn default() -> Self {
        EalConfig {
            lcore: 0,
            mem_mb: 256,
            no_huge: false,
            no_pci: false,
            vdevs: Vec::new(),
            pci_allow: Vec::new(),
            extra: Vec::new(),
        }
    }
}

impl EalConfig {
    /// The EAL argv (program name first). Never any shared state under
    /// /var/run/dpdk, so several validators on one host never collide:
    /// `--in-memory` with huge pages, `--no-shconf` with `--no-huge` (DPDK
    /// refuses `--in-memory` there: `--no-huge` implies legacy memory, and
    /// without hugetlbfs files `--no-shconf` is all `--in-memory` adds).
    /// Also `--no-telemetry` (no telemetry socket to collide on) and
    /// errors-only logging.
    pub fn to_args(&self) -> Result<Vec<String>, DpdkError> {
        if self.mem_mb == 0 {
            return Err(DpdkError::Config("mem_mb must be > 0".into()));
        }
        let mut a = vec![
            "plume".to_string(),
            "-l".into(),
            self.lcore.to_string(),
            "-m".into(),
            self.mem_mb.to_string(),
        ];
        if self.no_huge {
            a.push("--no-huge".into());
            a.push("--no-shconf".into());
        } else {
            a.push("--in-memory".into());
        }
        a.push("--no-telemetry".into());
        a.push("--log-level=4".into());
        if self.no_pci {
            a.push("--no-pci".into());
        }
        for p in &self.pci_allow {
            a.push("-a".into());
            a.push(p.clone());
        }
        for v in &self.vdevs {
            a.push(format!("--vdev={v}"));
        }
        a.extend(self.extra.iter().cloned());
        if a.len() > EAL_ARGS_MAX {
            return Err(DpdkError::Config(format!(
                "{} EAL arguments, at most {EAL_ARGS_MAX}",
                a.len()
            )));
        }
        if let Some(bad) = a.iter().find(|s| s.as_bytes().contains(&0)) {
            return Err(DpdkError::Config(format!(
                "NUL byte in EAL argument {bad:?}"
            )));
        }
        Ok(a)
    }
}

/// Outcome of the one `rte_eal_init` of this process.
enum EalState {
    NotTried,
    Up {
        args: Vec<String>,
        no_huge: bool,
        /// `--vdev` arguments whose device did not come up.
        vdevs_failed: Vec<String>,
    },
    Failed(String),
}

static EAL: Mutex<EalState> = Mutex::new(EalState::NotTried);
/// Port ids open in this process.
static OPEN_PORTS: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn strerror(err: c_int) -> String {
    // SAFETY: rte_strerror accepts any value and returns a pointer to a
    // NUL-terminated string (static or thread-local) valid until the next
    // call on this thread; we copy it out at once.
    unsafe {
        let p = plume_dpdk_strerror(err);
        if p.is_null() {
            return format!("error {err}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

fn rte_errno() -> c_int {
    // SAFETY: reads DPDK's per-thread rte_errno; no preconditions.
    unsafe { plume_dpdk_errno() }
}

/// Start DPDK's EAL. Once per process: DPDK cannot be initialized twice, so
/// a second call returns `Ok` if the first succeeded (its arguments win; a
/// different `cfg` is logged and ignored) and the first error if it failed.
///
/// Call it on the thread that will run the ports: `rte_eal_init` pins the
/// calling thread to `cfg.lcore`, and virtual devices such as
/// `net_af_packet` are created in the calling thread's network namespace.
pub fn eal_init(cfg: &EalConfig) -> Result<(), DpdkError> {
    let args = cfg.to_args()?;
    let mut st = lock(&EAL);
    match &*st {
        EalState::Up { args: prev, .. } => {
            if *prev != args {
                tracing::warn!(?prev, ?args, "DPDK EAL already up; new arguments ignored");
            }
            return Ok(());
        }
        EalState::Failed(why) => return Err(DpdkError::EalFailedBefore(why.clone())),
        EalState::NotTried => {}
    }
    // The EAL may keep pointers into argv (device arguments, saved args),
    // so the strings live for the rest of the process: a few hundred bytes,
    // once.
    let mut owned: Vec<*mut c_char> = Vec::with_capacity(args.len() + 1);
    for s in &args {
        // to_args rejected NUL bytes.
        let c = CString::new(s.as_str()).map_err(|e| DpdkError::Config(e.to_string()))?;
        owned.push(c.into_raw());
    }
    owned.push(std::ptr::null_mut());
    let argv: &'static mut [*mut c_char] = Box::leak(owned.into_boxed_slice());
    let argc = (argv.len() - 1) as c_int;
    // SAFETY: argv holds argc valid NUL-terminated strings followed by a
    // NULL, all leaked so they outlive the EAL; the EAL lock serializes
    // calls so rte_eal_init runs at most once in this process.
    let r = unsafe { plume_dpdk_eal_init(argc, argv.as_mut_ptr()) };
    if r < 0 {
        let errno = rte_errno();
        let reason = strerror(errno);
        let hint = eal_hint(cfg, errno);
        *st = EalState::Failed(format!("{reason}: {hint}"));
        return Err(DpdkError::EalInit {
            reason,
            args: args.join(" "),
            hint,
        });
    }
    // DPDK does not fail rte_eal_init when a vdev's probe fails; remember
    // which did not come up so that opening them names the cause.
    let vdevs_failed: Vec<String> = cfg
        .vdevs
        .iter()
        .filter(|v| port_id(vdev_name(v)).is_none())
        .cloned()
        .collect();
    for v in &vdevs_failed {
        tracing::warn!(vdev = %v, "DPDK vdev failed to probe");
    }
    *st = EalState::Up {
        args,
        no_huge: cfg.no_huge,
        vdevs_failed,
    };
    Ok(())
}

/// The device name of a `--vdev` argument (before the first comma).
fn vdev_name(arg: &str) -> &str {
    arg.split(',').next().unwrap_or(arg)
}

/// DPDK's port id for `name`, if a port by that name exists.
fn port_id(name: &str) -> Option<u16> {
    let c = CString::new(name).ok()?;
    let mut port = 0u16;
    // SAFETY: c is a valid C string, port a valid out-pointer.
    let r = unsafe { plume_dpdk_port_by_name(c.as_ptr(), &mut port) };
    (r == 0).then_some(port)
}

fn eal_hint(cfg: &EalConfig, errno: c_int) -> String {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return "not running as root: DPDK needs root (or CAP_SYS_ADMIN, CAP_NET_RAW, CAP_IPC_LOCK and access to /dev/vfio)".into();
    }
    if !cfg.no_huge && hugepages_total() == Some(0) {
        return "no huge pages reserved: set no_huge = true for testing, or reserve huge pages: echo 512 > /proc/sys/vm/nr_hugepages and mount hugetlbfs (mount -t hugetlbfs none /dev/hugepages)".into();
    }
    match errno {
        libc::EACCES | libc::EPERM => "permission denied: run as root".into(),
        libc::ENOMEM => format!(
            "out of memory: lower mem_mb ({}) or reserve more huge pages",
            cfg.mem_mb
        ),
        libc::EALREADY => "the EAL was already initialized by other code in this process".into(),
        libc::ENODEV | libc::ENOENT => "a device could not be probed: check the --vdev/-a arguments (a vdev's iface must exist in this thread's network namespace)".into(),
        _ => "check the EAL arguments; DPDK's own log lines above say which step failed".into(),
    }
}

fn hugepages_total() -> Option<u64> {
    meminfo_field("HugePages_Total:")
}

fn meminfo_field(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Whether this host can run DPDK, for `plume tune`: (check, ok, detail).
pub fn host_report() -> Vec<(String, bool, String)> {
    let mut r = Vec::new();
    let total = hugepages_total();
    let free = meminfo_field("HugePages_Free:");
    r.push((
        "huge pages".into(),
        total.is_some_and(|t| t > 0),
        match (total, free) {
            (Some(t), Some(f)) => format!(
                "{t} reserved, {f} free{}",
                if t == 0 {
                    ": echo 512 > /proc/sys/vm/nr_hugepages (or use no_huge for tests)"
                } else {
                    ""
                }
            ),
            _ => "cannot read /proc/meminfo".into(),
        },
    ));
    let vfio = std::path::Path::new("/dev/vfio/vfio").exists();
    r.push((
        "vfio".into(),
        vfio,
        if vfio {
            "/dev/vfio/vfio present".into()
        } else {
            "/dev/vfio/vfio missing: modprobe vfio-pci (PCI NICs need it; vdevs do not)".into()
        },
    ));
    let groups = std::fs::read_dir("/sys/kernel/iommu_groups")
        .map(|d| d.count())
        .unwrap_or(0);
    r.push((
        "iommu".into(),
        groups > 0,
        if groups > 0 {
            format!("{groups} IOMMU groups")
        } else {
            "no IOMMU groups: enable VT-d/AMD-Vi and boot with intel_iommu=on iommu=pt (or use vfio no-IOMMU mode)".into()
        },
    ));
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    r.push((
        "root".into(),
        root,
        if root {
            "running as root".into()
        } else {
            "not root: DPDK needs root or equivalent capabilities".into()
        },
    ));
    r
}

/// Per-port sizes, fixed at [`DpdkPort::open`]. Some virtual devices size
/// their rings from their own `--vdev` arguments instead (`net_af_packet`:
/// `framecnt=`, default 512 frames per queue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// Receive descriptors requested (the driver may adjust).
    pub rx_desc: usize,
    /// Transmit descriptors requested (the driver may adjust).
    pub tx_desc: usize,
    /// Mbufs in the port's pool (rx ring + frames in flight + tx batch).
    pub mbufs: usize,
    /// Largest rx burst and the tx batch size.
    pub burst: usize,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_desc: 1024,
            tx_desc: 1024,
            mbufs: 8191,
            burst: 64,
        }
    }
}

impl PortConfig {
    fn check(&self) -> Result<(), DpdkError> {
        let bad = |what: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(DpdkError::Config(format!(
                    "{what} = {v}, must be in {lo}..={hi}"
                )))
            }
        };
        bad("rx_desc", self.rx_desc, DESC_MIN, DESC_MAX)?;
        bad("tx_desc", self.tx_desc, DESC_MIN, DESC_MAX)?;
        bad("burst", self.burst, 1, BURST_MAX)?;
        bad("mbufs", self.mbufs, MBUFS_MIN, MBUFS_MAX)?;
        let need = self.rx_desc + self.tx_desc + 2 * self.burst + POOL_CACHE;
        if self.mbufs < need {
            return Err(DpdkError::Config(format!(
                "mbufs = {} is too few for rx_desc + tx_desc + 2 * burst + cache = {need}",
                self.mbufs
            )));
        }
        Ok(())
    }
}

/// Names of all ports the EAL knows, at most [`PORT_LIST_MAX`].
pub fn port_names() -> Vec<String> {
    let mut names = Vec::new();
    // SAFETY: no preconditions; returns a constant.
    let max = unsafe { plume_dpdk_port_max() };
    let mut p = 0u16;
    while names.len() < PORT_LIST_MAX {
        // SAFETY: rte_eth_find_next accepts any port id and returns the
        // next valid one or RTE_MAX_ETHPORTS.
        p = unsafe { plume_dpdk_port_next(p) };
        if p >= max {
            break;
        }
        let mut buf = [0 as c_char; 64];
        // SAFETY: buf is 64 writable bytes, the shim NUL-terminates within
        // len; p is a valid port id.
        let r = unsafe { plume_dpdk_port_name(p, buf.as_mut_ptr(), buf.len()) };
        if r == 0 {
            // SAFETY: the shim wrote a NUL-terminated string into buf.
            let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
            names.push(s.to_string_lossy().into_owned());
        }
        p += 1;
    }
    names
}

/// One DPDK ethernet port with one rx and one tx queue, driven from the
/// thread that opened it. Closed (stopped and released) on drop.
pub struct DpdkPort {
    device: String,
    port: u16,
    pool: *mut RteMempool,
    mac: [u8; 6],
    frame_max: usize,
    burst: usize,
    no_huge: bool,
    rx_desc: u16,
    tx_desc: u16,
    /// Receive burst: mbufs, their data pointers and lengths.
    rx_bufs: Box<[*mut RteMbuf]>,
    rx_data: Box<[*const u8]>,
    rx_lens: Box<[u32]>,
    /// Frames copied into mbufs, waiting for [`FrameIo::flush`];
    /// `tx_bufs[..tx_len]` are ours.
    tx_bufs: Box<[*mut RteMbuf]>,
    tx_len: usize,
    /// Received frames dropped because they were split over mbufs.
    rx_dropped_multiseg: u64,
}

impl std::fmt::Debug for DpdkPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkPort")
            .field("device", &self.device)
            .field("port", &self.port)
            .field("mac", &self.mac)
            .field("frame_max", &self.frame_max)
            .finish_non_exhaustive()
    }
}

impl DpdkPort {
    /// Open `device` (a vdev name such as `net_af_packet0`, or a PCI
    /// address such as `0000:01:00.0`), create its mbuf pool, configure one
    /// rx and one tx queue, start it with promiscuous mode off.
    ///
    /// Dropping the port stops and closes it; a closed virtual device is
    /// released by DPDK and cannot be opened again in this process.
    pub fn open(device: &str, opts: &PortConfig) -> Result<DpdkPort, DpdkError> {
        opts.check()?;
        let (no_huge, vdevs_failed) = match &*lock(&EAL) {
            EalState::Up {
                no_huge,
                vdevs_failed,
                ..
            } => (*no_huge, vdevs_failed.clone()),
            EalState::Failed(why) => return Err(DpdkError::EalFailedBefore(why.clone())),
            EalState::NotTried => return Err(DpdkError::EalNotInitialized),
        };
        if device.is_empty() || device.len() > DEVICE_NAME_MAX {
            return Err(DpdkError::Config(format!(
                "device name {device:?} must be 1..={DEVICE_NAME_MAX} bytes"
            )));
        }
        if device.as_bytes().contains(&0) {
            return Err(DpdkError::Config(format!(
                "NUL byte in device name {device:?}"
            )));
        }
        let Some(port) = port_id(device) else {
            if let Some(arg) = vdevs_failed.iter().find(|v| vdev_name(v) == device) {
                return Err(DpdkError::VdevProbe {
                    name: device.to_string(),
                    arg: arg.clone(),
                });
            }
            return Err(DpdkError::DeviceNotFound {
                name: device.to_string(),
                available: port_names().join(", "),
            });
        };
        if !lock(&OPEN_PORTS).insert(port) {
            return Err(DpdkError::AlreadyOpen(device.to_string()));
        }
        match Self::setup(device, port, opts, no_huge) {
            Ok(p) => Ok(p),
            Err(e) => {
                lock(&OPEN_PORTS).remove(&port);
                Err(e)
            }
        }
    }

    fn setup(
        device: &str,
        port: u16,
        opts: &PortConfig,
        no_huge: bool,
    ) -> Result<DpdkPort, DpdkError> {
        let pool_name = CString::new(format!("plume_mp{port}"))
            .map_err(|e| DpdkError::Config(e.to_string()))?;
        // SAFETY: pool_name is a valid C string (DPDK copies it); sizes were
        // bounded by PortConfig::check; the EAL is up.
        let pool = unsafe {
            plume_dpdk_pool_create(
                pool_name.as_ptr(),
                opts.mbufs as c_uint,
                POOL_CACHE as c_uint,
                MBUF_DATA_ROOM,
            )
        };
        if pool.is_null() {
            return Err(DpdkError::Mempool {
                device: device.to_string(),
                mbufs: opts.mbufs,
                reason: strerror(rte_errno()),
            });
        }
        let (mut nb_rxd, mut nb_txd, mut mtu) = (opts.rx_desc as u16, opts.tx_desc as u16, 0u16);
        let mut stage: *const c_char = std::ptr::null();
        // SAFETY: port is a valid port id not open elsewhere in this process
        // (OPEN_PORTS), pool is a live mempool, all out-pointers are valid.
        let r = unsafe {
            plume_dpdk_port_setup(port, &mut nb_rxd, &mut nb_txd, pool, &mut mtu, &mut stage)
        };
        if r != 0 {
            let stage = if stage.is_null() {
                "port setup".to_string()
            } else {
                // SAFETY: the shim only stores pointers to string literals.
                unsafe { CStr::from_ptr(stage) }
                    .to_string_lossy()
                    .into_owned()
            };
            // SAFETY: the port did not start (the shim stops it on late
            // failures), so no queue holds mbufs of the pool any more.
            unsafe { plume_dpdk_pool_free(pool) };
            return Err(DpdkError::Port {
                device: device.to_string(),
                stage,
                reason: strerror(-r),
            });
        }
        let mut mac = [0u8; 6];
        // SAFETY: mac is 6 writable bytes; port is valid.
        let r = unsafe { plume_dpdk_mac(port, mac.as_mut_ptr()) };
        if r != 0 {
            // SAFETY: the port is started; close it, then free its pool.
            unsafe {
                plume_dpdk_port_close(port);
                plume_dpdk_pool_free(pool);
            }
            return Err(DpdkError::Port {
                device: device.to_string(),
                stage: "rte_eth_macaddr_get".into(),
                reason: strerror(-r),
            });
        }
        let room = MBUF_DATA_ROOM as usize - MBUF_HEADROOM;
        let frame_max = (mtu as usize + ETH_HDR).min(room);
        let b = opts.burst;
        Ok(DpdkPort {
            device: device.to_string(),
            port,
            pool,
            mac,
            frame_max,
            burst: b,
            no_huge,
            rx_desc: nb_rxd,
            tx_desc: nb_txd,
            rx_bufs: vec![std::ptr::null_mut(); b].into_boxed_slice(),
            rx_data: vec![std::ptr::null(); b].into_boxed_slice(),
            rx_lens: vec![0; b].into_boxed_slice(),
            tx_bufs: vec![std::ptr::null_mut(); b].into_boxed_slice(),
            tx_len: 0,
            rx_dropped_multiseg: 0,
        })
    }

    /// The device name this port was opened with.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// DPDK's port id.
    pub fn port_id(&self) -> u16 {
        self.port
    }

    /// Frames queued by [`FrameIo::tx`] and not yet taken by the device.
    pub fn tx_pending(&self) -> usize {
        self.tx_len
    }

    /// Received frames dropped because the driver split them over mbufs.
    pub fn rx_dropped_multiseg(&self) -> u64 {
        self.rx_dropped_multiseg
    }

    /// Hand queued frames to the device; returns how many it took. Frames
    /// it did not take stay queued (in order) for the next call.
    fn push(&mut self) -> usize {
        if self.tx_len == 0 {
            return 0;
        }
        // SAFETY: tx_bufs[..tx_len] are mbufs we own; the device takes
        // ownership of the first `sent` of them.
        let sent =
            unsafe { plume_dpdk_tx(self.port, self.tx_bufs.as_mut_ptr(), self.tx_len as u16) }
                as usize;
        let sent = sent.min(self.tx_len);
        self.tx_bufs.copy_within(sent..self.tx_len, 0);
        self.tx_len -= sent;
        sent
    }
}

impl FrameIo for DpdkPort {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn frame_max(&self) -> usize {
        self.frame_max
    }

    fn rx(&mut self, max: usize, f: &mut dyn FnMut(&[u8])) -> io::Result<usize> {
        let n = max.min(self.burst);
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: the three arrays have `burst` >= n entries; the port is
        // started and only this thread polls its queue 0 (DpdkPort is !Send).
        let got = unsafe {
            plume_dpdk_rx(
                self.port,
                self.rx_bufs.as_mut_ptr(),
                self.rx_data.as_mut_ptr(),
                self.rx_lens.as_mut_ptr(),
                n as u16,
            )
        } as usize;
        let got = got.min(n);
        // Free the mbufs even if `f` panics.
        struct FreeOnDrop<'a>(&'a mut [*mut RteMbuf]);
        impl Drop for FreeOnDrop<'_> {
            fn drop(&mut self) {
                // SAFETY: the slice holds mbufs rx_burst handed to us, each
                // freed exactly once, here.
                unsafe { plume_dpdk_free_bulk(self.0.as_mut_ptr(), self.0.len() as c_uint) };
            }
        }
        let _free = FreeOnDrop(&mut self.rx_bufs[..got]);
        let mut handed = 0;
        for i in 0..got {
            let len = self.rx_lens[i] as usize;
            if len == 0 {
                self.rx_dropped_multiseg += 1;
                continue;
            }
            // SAFETY: rx_data[i] points at the first (only) segment's
            // `len` data bytes, valid until the mbuf is freed after this loop.
            let frame = unsafe { std::slice::from_raw_parts(self.rx_data[i], len) };
            f(frame);
            handed += 1;
        }
        Ok(handed)
    }

    fn tx(&mut self, frame: &[u8]) -> io::Result<bool> {
        if frame.len() < ETH_HDR || frame.len() > self.frame_max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes, must be {ETH_HDR}..={}",
                    frame.len(),
                    self.frame_max
                ),
            ));
        }
        if self.tx_len == self.burst {
            // A full batch: push it now rather than refuse.
            self.push();
            if self.tx_len == self.burst {
                return Ok(false);
            }
        }
        // SAFETY: frame is frame.len() <= frame_max < u16::MAX readable
        // bytes; pool is live. The shim copies them into a new mbuf.
        let m = unsafe { plume_dpdk_mbuf_copy(self.pool, frame.as_ptr(), frame.len() as u16) };
        if m.is_null() {
            // Pool empty: buffers are in flight in the device. Backpressure.
            return Ok(false);
        }
        self.tx_bufs[self.tx_len] = m;
        self.tx_len += 1;
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push();
        Ok(())
    }

    fn mode(&self) -> String {
        let kind = if self.device.starts_with("net_") {
            "vdev"
        } else {
            "pci"
        };
        let mem = if self.no_huge {
            "no-huge"
        } else {
            "huge pages"
        };
        format!(
            "dpdk {} ({kind}, {mem}, port {}, rxd {} txd {} burst {})",
            self.device, self.port, self.rx_desc, self.tx_desc, self.burst
        )
    }
}

impl Drop for DpdkPort {
    fn drop(&mut self) {
        // SAFETY: tx_bufs[..tx_len] are mbufs we still own. Then the port
        // is stopped and closed (releasing the mbufs its queues held) before
        // the pool is freed; nothing else uses the port or pool.
        unsafe {
            plume_dpdk_free_bulk(self.tx_bufs.as_mut_ptr(), self.tx_len as c_uint);
            self.tx_len = 0;
            let r = plume_dpdk_port_close(self.port);
            if r != 0 {
                tracing::warn!(device = %self.device, error = %strerror(-r), "DPDK port close");
            }
            plume_dpdk_pool_free(self.pool);
        }
        lock(&OPEN_PORTS).remove(&self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_args_never_share_state_and_are_quiet() {
        let cfg = EalConfig {
            lcore: 1,
            mem_mb: 128,
            no_huge: true,
            no_pci: true,
            vdevs: vec!["net_af_packet0,iface=eth0".into()],
            pci_allow: vec![],
            extra: vec![],
        };
        let a = cfg.to_args().unwrap();
        assert_eq!(
            a,
            [
                "plume",
                "-l",
                "1",
                "-m",
                "128",
                "--no-huge",
                "--no-shconf",
                "--no-telemetry",
                "--log-level=4",
                "--no-pci",
                "--vdev=net_af_packet0,iface=eth0"
            ]
        );
        let pci = EalConfig {
            pci_allow: vec!["0000:01:00.0".into()],
            ..EalConfig::default()
        };
        let a = pci.to_args().unwrap();
        assert!(a.windows(2).any(|w| w == ["-a", "0000:01:00.0"]));
        assert!(!a.contains(&"--no-huge".to_string()));
        assert!(a.contains(&"--in-memory".to_string()));
    }

    #[test]
    fn bad_eal_config_is_an_error() {
        let nul = EalConfig {
            extra: vec!["a\0b".into()],
            ..EalConfig::default()
        };
        assert!(matches!(nul.to_args(), Err(DpdkError::Config(_))));
        let zero = EalConfig {
            mem_mb: 0,
            ..EalConfig::default()
        };
        assert!(matches!(zero.to_args(), Err(DpdkError::Config(_))));
        let many = EalConfig {
            extra: vec!["-v".into(); EAL_ARGS_MAX],
            ..EalConfig::default()
        };
        assert!(matches!(many.to_args(), Err(DpdkError::Config(_))));
    }

    #[test]
    fn port_config_bounds() {
        assert!(PortConfig::default().check().is_ok());
        for bad in [
            PortConfig {
                burst: 0,
                ..PortConfig::default()
            },
            PortConfig {
                burst: BURST_MAX + 1,
                ..PortConfig::default()
            },
            PortConfig {
                rx_desc: DESC_MAX + 1,
                ..PortConfig::default()
            },
            PortConfig {
                mbufs: MBUFS_MIN,
                rx_desc: 1024,
                tx_desc: 1024,
                burst: 64,
            },
        ] {
            assert!(matches!(bad.check(), Err(DpdkError::Config(_))), "{bad:?}");
        }
    }

    #[test]
    fn host_report_names_every_check() {
        let r = host_report();
        let names: Vec<&str> = r.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, ["huge pages", "vfio", "iommu", "root"]);
        assert!(r.iter().all(|(_, _, d)| !d.is_empty()));
    }
}
