//! AF_XDP device (feature `af-xdp`): a [`FrameIo`] over one AF_XDP socket
//! bound to one interface queue, fed by our own XDP program that redirects
//! only our UDP port to the socket and passes everything else (ARP, ICMP,
//! other ports, the kernel's own traffic) to the kernel.
//!
//! Where to start reading: [`AfXdp::open`] (the bring-up order and how the
//! mode is chosen), then [`bpf::redirect_program`] (the program, one
//! commented instruction per line), then `xsk.rs` (UMEM, rings, frame
//! ownership). Everything is raw syscalls through `libc`: no libbpf, no C
//! compiler, no bpffs (nothing is pinned; the program, map and link live
//! exactly as long as the [`AfXdp`]).
//!
//! Mode, chosen automatically unless forced by [`XdpConfig`]: the program is
//! attached in native (driver) mode if the driver supports it, else in
//! generic (skb) mode; the socket binds zero-copy if the driver supports it
//! (native mode only), else copy. [`AfXdp::mode`] says which.

pub mod bpf;
mod xsk;

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

pub use xsk::XskStats;

use super::device::FrameIo;

/// Fewest UMEM frames (half receive, half transmit).
pub const FRAMES_MIN: u32 = 64;
/// Most UMEM frames.
pub const FRAMES_MAX: u32 = 65_536;
/// Most UMEM bytes (frames x frame_size).
pub const UMEM_BYTES_MAX: u64 = 256 << 20;
/// Highest interface queue we bind to (the XSKMAP has `queue + 1` slots).
pub const QUEUE_MAX: u32 = 1023;
/// Ethernet header bytes (no VLAN tag, no FCS).
pub const ETH_HLEN: usize = 14;

/// What to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpConfig {
    /// Interface name, looked up in the calling thread's network namespace.
    pub ifname: String,
    /// Interface rx/tx queue the socket binds to.
    pub queue: u32,
    /// UDP destination port redirected to the socket.
    pub udp_port: u16,
    /// If set, only datagrams to this address are redirected.
    pub local_ip: Option<Ipv4Addr>,
    /// UMEM frames, a power of two in FRAMES_MIN..=FRAMES_MAX.
    pub frames: u32,
    /// Bytes per UMEM frame: 2048 or 4096.
    pub frame_size: u32,
    /// Bind in copy mode even if zero-copy would work.
    pub force_copy: bool,
    /// Attach in generic (skb) mode even if native mode would work.
    pub force_skb: bool,
}

impl XdpConfig {
    /// Defaults: queue 0, 4096 frames of 2048 bytes (8 MiB), automatic mode.
    pub fn new(ifname: &str, udp_port: u16) -> XdpConfig {
        XdpConfig {
            ifname: ifname.to_string(),
            queue: 0,
            udp_port,
            local_ip: None,
            frames: 4096,
            frame_size: 2048,
            force_copy: false,
            force_skb: false,
        }
    }

    fn check(&self) -> Result<(), XdpError> {
        let bad = |m: String| Err(XdpError::Config(m));
        if self.ifname.is_empty() || self.ifname.len() >= libc::IFNAMSIZ {
            return bad(format!(
                "interface name {:?} must be 1..{} bytes",
                self.ifname,
                libc::IFNAMSIZ
            ));
        }
        if !self.frames.is_power_of_two() || !(FRAMES_MIN..=FRAMES_MAX).contains(&self.frames) {
            return bad(format!(
                "frames = {} must be a power of two in {FRAMES_MIN}..={FRAMES_MAX}",
                self.frames
            ));
        }
        if self.frame_size != 2048 && self.frame_size != 4096 {
            return bad(format!(
                "frame_size = {} must be 2048 or 4096",
                self.frame_size
            ));
        }
        if u64::from(self.frames) * u64::from(self.frame_size) > UMEM_BYTES_MAX {
            return bad(format!(
                "frames x frame_size = {} bytes exceeds {UMEM_BYTES_MAX}",
                u64::from(self.frames) * u64::from(self.frame_size)
            ));
        }
        if self.queue > QUEUE_MAX {
            return bad(format!("queue = {} exceeds {QUEUE_MAX}", self.queue));
        }
        if self.udp_port == 0 {
            return bad("udp_port must not be 0".into());
        }
        Ok(())
    }
}

/// Why AF_XDP cannot be used; each message says what is missing and how to
/// fix it.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("AF_XDP configuration: {0}")]
    Config(String),
    #[error(
        "cannot {what}: permission denied; run as root or grant CAP_NET_ADMIN, CAP_BPF \
         and CAP_NET_RAW (e.g. `setcap cap_net_admin,cap_bpf,cap_net_raw,cap_ipc_lock+ep plume`)"
    )]
    NotPermitted { what: &'static str },
    #[error("interface {ifname:?} not found in this network namespace (see `ip link`)")]
    InterfaceNotFound { ifname: String },
    #[error(
        "this kernel has no bpf(2) system call (built without CONFIG_BPF_SYSCALL); \
         AF_XDP needs it: use transport = \"tcp\" or another kernel"
    )]
    NoBpf,
    #[error(
        "AF_XDP sockets are not supported by this kernel (built without CONFIG_XDP_SOCKETS); \
         use transport = \"tcp\" or a kernel with CONFIG_XDP_SOCKETS=y"
    )]
    NoXdpSockets,
    #[error("the kernel refused our XDP program ({err}); verifier log:\n{log}")]
    VerifierRejected { err: io::Error, log: String },
    #[error(
        "an XDP program is already attached to {ifname} ({err}); detach it first \
         (`ip link set dev {ifname} xdp off`, or `xdpgeneric off`) or stop the program that owns it"
    )]
    AlreadyAttached { ifname: String, err: io::Error },
    #[error("cannot attach an XDP program to {ifname} in {mode} mode: {err}")]
    AttachFailed {
        ifname: String,
        mode: &'static str,
        err: io::Error,
    },
    #[error(
        "cannot lock {bytes} bytes of UMEM: raise RLIMIT_MEMLOCK (`ulimit -l unlimited`, \
         LimitMEMLOCK=infinity in the systemd unit) or grant CAP_IPC_LOCK"
    )]
    Memlock { bytes: u64 },
    #[error("cannot bind the AF_XDP socket to queue {queue} ({mode}): {err}{hint}")]
    Bind {
        queue: u32,
        mode: &'static str,
        err: io::Error,
        hint: &'static str,
    },
    #[error(
        "interface MTU {mtu} needs UMEM frames of {need} bytes but they hold {have}; \
         lower the MTU (`ip link set dev IF mtu 1500`), or use frame_size = 4096 if the MTU \
         is at most 3826 (no multi-buffer AF_XDP yet)"
    )]
    MtuTooLarge { mtu: u32, need: u32, have: u32 },
    #[error("this kernel is too old for {what}")]
    KernelTooOld { what: &'static str },
    #[error("{what}: {err}")]
    Io { what: &'static str, err: io::Error },
}

fn bpf_error(what: &'static str, err: io::Error) -> XdpError {
    match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => XdpError::NotPermitted { what },
        Some(libc::ENOSYS) => XdpError::NoBpf,
        _ => XdpError::Io { what, err },
    }
}

/// Raise RLIMIT_MEMLOCK to unlimited (only ever raised, and only works
/// with CAP_SYS_RESOURCE, e.g. as root). Returns whether it is now at
/// least `bytes`.
pub(crate) fn raise_memlock(bytes: u64) -> bool {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `cur` is a valid rlimit to write into.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur) } != 0 {
        return false;
    }
    if cur.rlim_cur == libc::RLIM_INFINITY {
        return true;
    }
    let want = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `want` is a valid rlimit; setrlimit only affects this process.
    let ok = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &want) } == 0;
    ok || cur.rlim_cur >= bytes
}

/// `struct ifreq` as far as the ioctls below use it.
#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: [u8; 24],
}

/// Interface index, MAC and MTU, looked up in the calling thread's
/// network namespace.
fn interface(ifname: &str) -> Result<(u32, [u8; 6], u32), XdpError> {
    let not_found = || XdpError::InterfaceNotFound {
        ifname: ifname.to_string(),
    };
    let c = CString::new(ifname).map_err(|_| not_found())?;
    // SAFETY: `c` is a NUL-terminated string alive for the call.
    let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if ifindex == 0 {
        return Err(not_found());
    }
    // SAFETY: plain socket creation; the result is checked.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(XdpError::Io {
            what: "socket for interface ioctls",
            err: io::Error::last_os_error(),
        });
    }
    // SAFETY: `s` is a new descriptor nobody else owns.
    let s = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(s) };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: [0; 24],
    };
    for (d, b) in req.name.iter_mut().zip(ifname.bytes()) {
        *d = b as libc::c_char;
    }
    let mut ioctl = |op: libc::c_ulong, what: &'static str| -> Result<[u8; 24], XdpError> {
        // SAFETY: `req` is a writable ifreq-sized buffer with a
        // NUL-terminated name (len < IFNAMSIZ checked by the config).
        let r = unsafe { libc::ioctl(s.as_raw_fd(), op as _, &mut req as *mut IfReq) };
        if r != 0 {
            return Err(XdpError::Io {
                what,
                err: io::Error::last_os_error(),
            });
        }
        Ok(req.data)
    };
    let hw = ioctl(
        libc::SIOCGIFHWADDR,
        "read the interface MAC (SIOCGIFHWADDR)",
    )?;
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&hw[2..8]); // struct sockaddr: family (2), then bytes
    let m = ioctl(libc::SIOCGIFMTU, "read the interface MTU (SIOCGIFMTU)")?;
    let mtu = i32::from_ne_bytes([m[0], m[1], m[2], m[3]]).max(0) as u32;
    Ok((ifindex, mac, mtu))
}

/// An AF_XDP socket on one interface queue with our XDP program attached.
/// Dropping it detaches the program and frees the socket and UMEM.
pub struct AfXdp {
    // Drop order matters: detach the program first, then the socket.
    _link: OwnedFd,
    xsk: xsk::Xsk,
    _prog: OwnedFd,
    _map: OwnedFd,
    mac: [u8; 6],
    frame_max: usize,
    ifindex: u32,
    queue: u32,
    drv_mode: bool,
}

// SAFETY: the raw pointers inside `Xsk` point into mappings owned by this
// value alone and are only used through `&mut self`/`&self` methods; no
// other Rust value aliases them, so moving the whole device to another
// thread is sound (the kernel side does not care which thread calls).
unsafe impl Send for AfXdp {}

impl AfXdp {
    /// Bring up the device: look up the interface (in the calling thread's
    /// network namespace), create the XSKMAP, load and attach the program
    /// (native mode, else generic), create the socket and bind it
    /// (zero-copy, else copy), then put it into the map.
    pub fn open(cfg: &XdpConfig) -> Result<AfXdp, XdpError> {
        cfg.check()?;
        let (ifindex, mac, mtu) = interface(&cfg.ifname)?;
        let need = mtu + ETH_HLEN as u32;
        let have = cfg.frame_size - xsk::XDP_PACKET_HEADROOM;
        if need > have {
            return Err(XdpError::MtuTooLarge {
                mtu,
                need: need + xsk::XDP_PACKET_HEADROOM,
                have: cfg.frame_size,
            });
        }
        let frame_max = need as usize;

        let map = match bpf::create_xskmap(cfg.queue + 1) {
            Ok(m) => m,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Err(XdpError::NoXdpSockets),
            Err(e) => return Err(bpf_error("create the XSKMAP (bpf BPF_MAP_CREATE)", e)),
        };
        let prog = bpf::redirect_program(
            map.as_raw_fd(),
            cfg.udp_port,
            cfg.local_ip.map(|a| a.octets()),
        );
        let prog = match bpf::load_xdp(&prog.insns) {
            Ok(p) => p,
            Err(bpf::LoadError { err, log }) => {
                return Err(match err.raw_os_error() {
                    Some(libc::EPERM) if log.is_empty() => XdpError::NotPermitted {
                        what: "load an XDP program",
                    },
                    Some(libc::ENOSYS) => XdpError::NoBpf,
                    _ => XdpError::VerifierRejected { err, log },
                })
            }
        };

        let attach = |flags: u32, mode: &'static str| match bpf::link_xdp(&prog, ifindex, flags) {
            Ok(l) => Ok(l),
            Err(err) => Err(match err.raw_os_error() {
                Some(libc::EBUSY) | Some(libc::EEXIST) => XdpError::AlreadyAttached {
                    ifname: cfg.ifname.clone(),
                    err,
                },
                Some(libc::EPERM) | Some(libc::EACCES) => XdpError::NotPermitted {
                    what: "attach an XDP program",
                },
                _ => XdpError::AttachFailed {
                    ifname: cfg.ifname.clone(),
                    mode,
                    err,
                },
            }),
        };
        let (link, drv_mode) = if cfg.force_skb {
            (attach(bpf::XDP_FLAGS_SKB_MODE, "generic (skb)")?, false)
        } else {
            match attach(bpf::XDP_FLAGS_DRV_MODE, "native (driver)") {
                Ok(l) => (l, true),
                Err(XdpError::AttachFailed { .. }) => {
                    (attach(bpf::XDP_FLAGS_SKB_MODE, "generic (skb)")?, false)
                }
                Err(e) => return Err(e),
            }
        };

        let mut params = xsk::XskParams {
            ifindex,
            queue: cfg.queue,
            frames: cfg.frames,
            frame_size: cfg.frame_size,
            tx_frame_max: frame_max,
            zero_copy: drv_mode && !cfg.force_copy,
        };
        let xsk = match xsk::Xsk::open(&params) {
            Ok(x) => x,
            Err(e @ XdpError::Bind { .. }) if params.zero_copy => {
                tracing::debug!(error = %e, "zero-copy bind refused, binding in copy mode");
                params.zero_copy = false;
                xsk::Xsk::open(&params)?
            }
            Err(e) => return Err(e),
        };
        bpf::map_update_u32(&map, cfg.queue, xsk.fd() as u32)
            .map_err(|e| bpf_error("put the socket into the XSKMAP", e))?;
        tracing::info!(
            ifname = %cfg.ifname,
            queue = cfg.queue,
            port = cfg.udp_port,
            drv_mode,
            zero_copy = xsk.zero_copy,
            "AF_XDP device open"
        );
        Ok(AfXdp {
            _link: link,
            xsk,
            _prog: prog,
            _map: map,
            mac,
            frame_max,
            ifindex,
            queue: cfg.queue,
            drv_mode,
        })
    }

    /// `(native driver mode, zero-copy)`: how the program is attached and
    /// how the socket is bound.
    pub fn attach_mode(&self) -> (bool, bool) {
        (self.drv_mode, self.xsk.zero_copy)
    }

    /// The socket's descriptor, for `poll`-style readiness (POLLIN: frames
    /// in the rx ring). Reading and writing go through [`FrameIo`] only.
    pub fn raw_fd(&self) -> RawFd {
        self.xsk.fd()
    }

    /// Interface index (in the namespace the device was opened in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Frames waiting in the rx ring.
    pub fn rx_ready(&mut self) -> usize {
        self.xsk.rx_ready()
    }

    /// Transmit frames queued or in flight (not yet completed).
    pub fn tx_in_flight(&self) -> usize {
        self.xsk.tx_in_flight()
    }

    /// The kernel's counters for the socket, plus descriptors we rejected.
    pub fn stats(&self) -> io::Result<(XskStats, u64)> {
        Ok((self.xsk.stats()?, self.xsk.bad_descs))
    }
}

impl FrameIo for AfXdp {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }
    fn frame_max(&self) -> usize {
        self.frame_max
    }
    fn rx(&mut self, max: usize, f: &mut dyn FnMut(&[u8])) -> io::Result<usize> {
        self.xsk.rx(max, f)
    }
    fn tx(&mut self, frame: &[u8]) -> io::Result<bool> {
        self.xsk.tx(frame)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.xsk.flush()
    }
    fn mode(&self) -> String {
        format!(
            "af_xdp {} {} queue {}",
            if self.drv_mode {
                "drv-mode"
            } else {
                "skb-mode"
            },
            if self.xsk.zero_copy {
                "zero-copy"
            } else {
                "copy"
            },
            self.queue
        )
    }
    fn rx_fd(&self) -> Option<RawFd> {
        Some(self.xsk.fd())
    }
}

/// Can this host run the AF_XDP transport? Creates an XSKMAP, loads a
/// trivial XDP program and opens an AF_XDP socket, then closes them all.
/// Attaching to an interface is not tried (that needs the interface).
/// bpffs is not needed: nothing is pinned.
pub fn host_support() -> Result<(), XdpError> {
    match bpf::create_xskmap(1) {
        Ok(_map) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Err(XdpError::NoXdpSockets),
        Err(e) => return Err(bpf_error("create an XSKMAP", e)),
    }
    match bpf::load_xdp(&bpf::pass_program()) {
        Ok(_prog) => {}
        Err(bpf::LoadError { err, log }) => {
            return Err(match err.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => XdpError::NotPermitted {
                    what: "load an XDP program",
                },
                Some(libc::ENOSYS) => XdpError::NoBpf,
                _ => XdpError::VerifierRejected { err, log },
            })
        }
    }
    // SAFETY: plain socket creation; the result is checked and closed.
    let s = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::EAFNOSUPPORT) => XdpError::NoXdpSockets,
            Some(libc::EPERM) | Some(libc::EACCES) => XdpError::NotPermitted {
                what: "create an AF_XDP socket",
            },
            _ => XdpError::Io {
                what: "socket(AF_XDP)",
                err,
            },
        });
    }
    // SAFETY: `s` is a descriptor we just created and own.
    unsafe { libc::close(s) };
    Ok(())
}
