//! The AF_XDP socket: its UMEM (one anonymous mapping cut into equal
//! frames), the four rings shared with the kernel (fill, completion, rx,
//! tx) and a frame allocator over them.
//!
//! Frame ownership: the first half of the UMEM frames belongs to receive
//! (each frame is in the fill ring, in the rx ring, or briefly with us while
//! the callback reads it, then back to the fill ring); the second half to
//! transmit (each frame is free, in the tx ring, or awaiting completion).
//! A frame is never in two places; the free lists are bounded by the counts.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use super::XdpError;

/// Headroom the kernel leaves in front of every received frame
/// (`XDP_PACKET_HEADROOM`), in copy and in generic mode.
pub const XDP_PACKET_HEADROOM: u32 = 256;
/// Most descriptors taken from the rx ring in one `rx` call.
pub const RX_BATCH_MAX: usize = 256;
/// `sendto` wake-ups in one flush. Copy mode transmits at most 32 frames
/// per wake-up (the kernel's `TX_BATCH_SIZE`), so this covers 2048 frames.
pub const TX_KICKS_MAX: usize = 72;

/// One `mmap`ed region, unmapped on drop.
pub(crate) struct Mmap {
    ptr: *mut u8,
    len: usize,
}

impl Mmap {
    /// Map `len` bytes of `fd` at page offset `off` (shared), or anonymous
    /// private memory if `fd` is None. Populated up front.
    fn new(len: usize, fd: Option<RawFd>, off: libc::off_t) -> io::Result<Mmap> {
        let (flags, fd) = match fd {
            Some(fd) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd),
            None => (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
            ),
        };
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL), so no
        // existing memory is affected; the result is checked for MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mmap { ptr: p.cast(), len })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping we created and nobody else
        // unmaps; no reference into it outlives `self`.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One ring shared with the kernel. For a ring we produce into (fill, tx)
/// `local` is our producer index and `peer` the last consumer index we
/// read; for a ring we consume from (rx, completion) it is the other way
/// round. Indices run freely and wrap; `mask` picks the slot.
struct Ring {
    _map: Mmap,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut u8,
    size: u32,
    local: u32,
    peer: u32,
}

impl Ring {
    /// Map a ring of `size` entries of `entry` bytes at `pgoff`.
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        entry: usize,
        pgoff: libc::off_t,
        producer_side: bool,
    ) -> io::Result<Ring> {
        let len = off.desc as usize + size as usize * entry;
        let map = Mmap::new(len, Some(fd), pgoff)?;
        // SAFETY: the kernel guarantees the offsets it reported lie inside
        // the ring mapping of this length; the u32 indices are 4-aligned.
        let (producer, consumer, flags, desc) = unsafe {
            (
                map.ptr.add(off.producer as usize) as *const AtomicU32,
                map.ptr.add(off.consumer as usize) as *const AtomicU32,
                map.ptr.add(off.flags as usize) as *const AtomicU32,
                map.ptr.add(off.desc as usize),
            )
        };
        let mut r = Ring {
            _map: map,
            producer,
            consumer,
            flags,
            desc,
            size,
            local: 0,
            peer: 0,
        };
        if producer_side {
            r.local = r.prod().load(Ordering::Relaxed);
            r.peer = r.cons().load(Ordering::Acquire);
        } else {
            r.local = r.cons().load(Ordering::Relaxed);
            r.peer = r.prod().load(Ordering::Acquire);
        }
        Ok(r)
    }
    fn prod(&self) -> &AtomicU32 {
        // SAFETY: points into our live mapping (see `map`); the kernel
        // updates it concurrently, hence the atomic type.
        unsafe { &*self.producer }
    }
    fn cons(&self) -> &AtomicU32 {
        // SAFETY: as for `prod`.
        unsafe { &*self.consumer }
    }
    /// The kernel asks to be woken up for this ring.
    fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `prod`.
        let f = unsafe { &*self.flags };
        f.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
    /// Producer side: how many slots are free (at most `want`).
    fn prod_free(&mut self, want: u32) -> u32 {
        let mut free = self.size - self.local.wrapping_sub(self.peer);
        if free < want {
            // Acquire: the kernel has finished reading the slots it released.
            self.peer = self.cons().load(Ordering::Acquire);
            free = self.size - self.local.wrapping_sub(self.peer);
        }
        free.min(want)
    }
    /// Producer side: publish the `n` slots written since the last submit.
    fn prod_submit(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        // Release: the slot contents are visible before the new index.
        self.prod().store(self.local, Ordering::Release);
    }
    /// Consumer side: how many entries are ready (at most `want`).
    fn cons_ready(&mut self, want: u32) -> u32 {
        let mut ready = self.peer.wrapping_sub(self.local);
        if ready < want {
            // Acquire: the entries are visible once we see the index.
            self.peer = self.prod().load(Ordering::Acquire);
            ready = self.peer.wrapping_sub(self.local);
        }
        ready.min(want)
    }
    /// Consumer side: give the `n` entries read back to the kernel.
    fn cons_release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        // Release: we finished reading the entries before freeing them.
        self.cons().store(self.local, Ordering::Release);
    }
    /// Pointer to the u64 entry (fill/completion) at index `i`.
    fn addr_at(&self, i: u32) -> *mut u64 {
        let slot = (i & (self.size - 1)) as usize;
        // SAFETY: slot < size and the mapping holds `size` u64 entries
        // after `desc`.
        unsafe { self.desc.cast::<u64>().add(slot) }
    }
    /// Pointer to the descriptor (rx/tx) at index `i`.
    fn desc_at(&self, i: u32) -> *mut libc::xdp_desc {
        let slot = (i & (self.size - 1)) as usize;
        // SAFETY: slot < size and the mapping holds `size` descriptors
        // after `desc`.
        unsafe { self.desc.cast::<libc::xdp_desc>().add(slot) }
    }
}

/// Counters the kernel keeps for the socket (`XDP_STATISTICS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames dropped for reasons other than a full ring.
    pub rx_dropped: u64,
    /// Frames dropped because the rx ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty: u64,
    /// Invalid tx descriptors the kernel skipped.
    pub tx_invalid: u64,
}

/// An AF_XDP socket bound to one interface queue, with its UMEM and rings.
/// Fields drop in order: socket first, then the rings, then the UMEM.
pub(crate) struct Xsk {
    fd: OwnedFd,
    fill: Ring,
    comp: Ring,
    rx: Ring,
    tx: Ring,
    umem: Mmap,
    frame_size: u32,
    /// Largest frame `tx` accepts.
    tx_frame_max: usize,
    /// Transmit frames (UMEM offsets) ready to be written.
    tx_free: Vec<u64>,
    /// Receive frames handed back but not yet in the fill ring.
    fill_spare: Vec<u64>,
    rx_frames: u32,
    tx_frames: u32,
    /// Bound with XDP_ZEROCOPY.
    pub(crate) zero_copy: bool,
    /// Descriptors from the kernel that pointed outside the UMEM.
    pub(crate) bad_descs: u64,
}

/// Sizes of one socket.
pub(crate) struct XskParams {
    pub ifindex: u32,
    pub queue: u32,
    pub frames: u32,
    pub frame_size: u32,
    pub tx_frame_max: usize,
    pub zero_copy: bool,
}

fn setsockopt<T>(fd: RawFd, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` points to a live T of the size we pass.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn getsockopt<T: Default>(fd: RawFd, name: libc::c_int) -> io::Result<(T, usize)> {
    let mut v = T::default();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` is a writable T and `len` its size; the kernel writes at
    // most `len` bytes and reports how many.
    let r =
        unsafe { libc::getsockopt(fd, libc::SOL_XDP, name, (&mut v as *mut T).cast(), &mut len) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((v, len as usize))
}

impl Xsk {
    /// Create the socket, register the UMEM, map the rings and bind to
    /// `ifindex`/`queue` in zero-copy or copy mode as asked.
    pub(crate) fn open(p: &XskParams) -> Result<Xsk, XdpError> {
        // SAFETY: plain socket creation; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EAFNOSUPPORT) => XdpError::NoXdpSockets,
                Some(libc::EPERM) | Some(libc::EACCES) => XdpError::NotPermitted {
                    what: "create an AF_XDP socket",
                },
                _ => XdpError::Io {
                    what: "socket(AF_XDP)",
                    err: e,
                },
            });
        }
        // SAFETY: `raw` is a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let rfd = fd.as_raw_fd();

        let umem_len = p.frames as usize * p.frame_size as usize;
        let umem = Mmap::new(umem_len, None, 0).map_err(|err| XdpError::Io {
            what: "mmap the UMEM",
            err,
        })?;
        let reg = libc::xdp_umem_reg {
            addr: umem.ptr as u64,
            len: umem_len as u64,
            chunk_size: p.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        if let Err(e) = setsockopt(rfd, libc::XDP_UMEM_REG, &reg) {
            let retry = matches!(e.raw_os_error(), Some(libc::ENOMEM) | Some(libc::EPERM))
                && super::raise_memlock(umem_len as u64);
            let e = if retry {
                setsockopt(rfd, libc::XDP_UMEM_REG, &reg).err()
            } else {
                Some(e)
            };
            if let Some(e) = e {
                return Err(match e.raw_os_error() {
                    Some(libc::ENOMEM) | Some(libc::EPERM) => XdpError::Memlock {
                        bytes: umem_len as u64,
                    },
                    _ => XdpError::Io {
                        what: "register the UMEM (XDP_UMEM_REG)",
                        err: e,
                    },
                });
            }
        }

        let rx_frames = p.frames / 2;
        let tx_frames = p.frames - rx_frames;
        let ring_size = rx_frames; // power of two: frames is one
        for name in [
            libc::XDP_UMEM_FILL_RING,
            libc::XDP_UMEM_COMPLETION_RING,
            libc::XDP_RX_RING,
            libc::XDP_TX_RING,
        ] {
            setsockopt(rfd, name, &ring_size).map_err(|err| XdpError::Io {
                what: "size the AF_XDP rings",
                err,
            })?;
        }
        let (off, len) =
            getsockopt::<XdpMmapOffsets>(rfd, libc::XDP_MMAP_OFFSETS).map_err(|err| {
                XdpError::Io {
                    what: "read the ring offsets (XDP_MMAP_OFFSETS)",
                    err,
                }
            })?;
        if len != std::mem::size_of::<XdpMmapOffsets>() {
            return Err(XdpError::KernelTooOld {
                what: "AF_XDP ring flags (need-wakeup, Linux 5.4)",
            });
        }
        let off = off.0;
        let map_err = |err| XdpError::Io {
            what: "mmap an AF_XDP ring",
            err,
        };
        let desc = std::mem::size_of::<libc::xdp_desc>();
        let rx = Ring::map(
            rfd,
            &off.rx,
            ring_size,
            desc,
            libc::XDP_PGOFF_RX_RING,
            false,
        )
        .map_err(map_err)?;
        let tx = Ring::map(rfd, &off.tx, ring_size, desc, libc::XDP_PGOFF_TX_RING, true)
            .map_err(map_err)?;
        let fill = Ring::map(
            rfd,
            &off.fr,
            ring_size,
            8,
            libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
            true,
        )
        .map_err(map_err)?;
        let comp = Ring::map(
            rfd,
            &off.cr,
            ring_size,
            8,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
            false,
        )
        .map_err(map_err)?;

        let mode = if p.zero_copy {
            libc::XDP_ZEROCOPY
        } else {
            libc::XDP_COPY
        };
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: mode | libc::XDP_USE_NEED_WAKEUP,
            sxdp_ifindex: p.ifindex,
            sxdp_queue_id: p.queue,
            sxdp_shared_umem_fd: 0,
        };
        // SAFETY: `sa` is a complete sockaddr_xdp and we pass its size.
        let r = unsafe {
            libc::bind(
                rfd,
                (&sa as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if r != 0 {
            let err = io::Error::last_os_error();
            let hint = match err.raw_os_error() {
                Some(libc::EBUSY) => "; another AF_XDP socket already uses this queue",
                Some(libc::EINVAL) => {
                    "; is the queue id below the interface's queue count (`ethtool -l`)?"
                }
                Some(libc::EOPNOTSUPP) => "; the driver does not support this mode",
                _ => "",
            };
            return Err(XdpError::Bind {
                queue: p.queue,
                mode: if p.zero_copy { "zero-copy" } else { "copy" },
                err,
                hint,
            });
        }

        let fs = u64::from(p.frame_size);
        let mut xsk = Xsk {
            fd,
            fill,
            comp,
            rx,
            tx,
            umem,
            frame_size: p.frame_size,
            tx_frame_max: p.tx_frame_max,
            tx_free: (rx_frames..p.frames)
                .rev()
                .map(|i| u64::from(i) * fs)
                .collect(),
            fill_spare: (0..rx_frames).rev().map(|i| u64::from(i) * fs).collect(),
            rx_frames,
            tx_frames,
            zero_copy: p.zero_copy,
            bad_descs: 0,
        };
        xsk.refill();
        assert!(xsk.fill_spare.is_empty(), "fill ring holds every rx frame");
        Ok(xsk)
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Put every spare receive frame into the fill ring.
    fn refill(&mut self) {
        let n = self.fill.prod_free(self.fill_spare.len() as u32);
        for k in 0..n {
            let addr = self.fill_spare.pop().expect("n <= spare count");
            // SAFETY: the slot lies in the fill ring and belongs to us
            // until the submit below publishes it.
            unsafe { ptr::write(self.fill.addr_at(self.fill.local.wrapping_add(k)), addr) };
        }
        if n > 0 {
            self.fill.prod_submit(n);
        }
    }

    /// Start of the UMEM frame holding offset `addr` (aligned chunks).
    fn frame_of(&self, addr: u64) -> u64 {
        addr & !(u64::from(self.frame_size) - 1)
    }

    /// Move completed transmit frames back to the free list.
    fn reclaim(&mut self) {
        let n = self.comp.cons_ready(self.tx_frames);
        for k in 0..n {
            // SAFETY: the entry lies in the completion ring and the kernel
            // published it (Acquire in `cons_ready`).
            let addr = unsafe { ptr::read(self.comp.addr_at(self.comp.local.wrapping_add(k))) };
            let base = self.frame_of(addr);
            let in_tx_half = base >= u64::from(self.rx_frames) * u64::from(self.frame_size)
                && base < self.umem.len as u64;
            if in_tx_half && self.tx_free.len() < self.tx_frames as usize {
                self.tx_free.push(base);
            } else {
                self.bad_descs += 1;
            }
        }
        if n > 0 {
            self.comp.cons_release(n);
        }
    }

    /// Wake the kernel to read the fill ring (needed when it says so).
    fn wake_rx(&self) {
        // SAFETY: a zero-length non-blocking recvfrom on our socket with
        // no buffer; the kernel only uses it as a wake-up.
        unsafe {
            libc::recvfrom(
                self.fd(),
                ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
    }

    pub(crate) fn rx(&mut self, max: usize, f: &mut dyn FnMut(&[u8])) -> io::Result<usize> {
        let want = max.min(RX_BATCH_MAX) as u32;
        let n = self.rx.cons_ready(want);
        let umem_len = self.umem.len as u64;
        let rx_end = u64::from(self.rx_frames) * u64::from(self.frame_size);
        for k in 0..n {
            // SAFETY: the descriptor lies in the rx ring and the kernel
            // published it (Acquire in `cons_ready`).
            let d = unsafe { ptr::read(self.rx.desc_at(self.rx.local.wrapping_add(k))) };
            let base = self.frame_of(d.addr);
            let end = d.addr.saturating_add(u64::from(d.len));
            if base >= rx_end || end > base + u64::from(self.frame_size) || end > umem_len {
                self.bad_descs += 1;
                continue;
            }
            // SAFETY: [addr, addr+len) lies inside one receive frame of the
            // UMEM (checked above); the kernel wrote it before publishing
            // the descriptor and will not touch the frame until we put it
            // back in the fill ring, after the callback returns.
            let frame = unsafe {
                std::slice::from_raw_parts(self.umem.ptr.add(d.addr as usize), d.len as usize)
            };
            f(frame);
            if self.fill_spare.len() < self.rx_frames as usize {
                self.fill_spare.push(base);
            }
        }
        if n > 0 {
            self.rx.cons_release(n);
        }
        self.refill();
        if n == 0 && self.fill.needs_wakeup() {
            self.wake_rx();
        }
        Ok(n as usize)
    }

    pub(crate) fn tx(&mut self, frame: &[u8]) -> io::Result<bool> {
        if frame.is_empty() || frame.len() > self.tx_frame_max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes; this AF_XDP socket sends 1..={} bytes",
                    frame.len(),
                    self.tx_frame_max
                ),
            ));
        }
        if self.tx_free.is_empty() {
            self.reclaim();
        }
        if self.tx_free.is_empty() || self.tx.prod_free(1) == 0 {
            return Ok(false);
        }
        let addr = self.tx_free.pop().expect("checked non-empty");
        // SAFETY: `addr` is a free transmit frame of frame_size bytes inside
        // the UMEM, owned by us until the descriptor is published; the
        // frame fits (tx_frame_max <= frame_size, checked at open).
        unsafe {
            ptr::copy_nonoverlapping(
                frame.as_ptr(),
                self.umem.ptr.add(addr as usize),
                frame.len(),
            );
        }
        let d = libc::xdp_desc {
            addr,
            len: frame.len() as u32,
            options: 0,
        };
        // SAFETY: the slot is free (prod_free above) and ours until submit.
        unsafe { ptr::write(self.tx.desc_at(self.tx.local), d) };
        self.tx.prod_submit(1);
        Ok(true)
    }

    pub(crate) fn flush(&mut self) -> io::Result<()> {
        for _ in 0..TX_KICKS_MAX {
            // Anything published that the kernel has not taken yet?
            let taken = self.tx.cons().load(Ordering::Acquire);
            if taken == self.tx.local || !self.tx.needs_wakeup() {
                break;
            }
            // SAFETY: a zero-length non-blocking sendto on our socket with
            // no buffer and no address: the AF_XDP transmit wake-up.
            let r = unsafe {
                libc::sendto(
                    self.fd(),
                    ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    ptr::null(),
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    // More to send (copy mode sends 32 per call), or the
                    // device queue / completion ring is busy: reclaim, retry.
                    Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) => {
                        self.reclaim();
                    }
                    _ => return Err(e),
                }
            }
        }
        self.reclaim();
        self.refill();
        Ok(())
    }

    /// Frames queued for transmit that have not completed yet.
    pub(crate) fn tx_in_flight(&self) -> usize {
        self.tx_frames as usize - self.tx_free.len()
    }

    /// Entries waiting in the rx ring (peeks at the kernel's index).
    pub(crate) fn rx_ready(&mut self) -> usize {
        self.rx.cons_ready(self.rx.size) as usize
    }

    pub(crate) fn stats(&self) -> io::Result<XskStats> {
        let (s, _) = getsockopt::<XdpStatistics>(self.fd(), libc::XDP_STATISTICS)?;
        Ok(XskStats {
            rx_dropped: s.0.rx_dropped,
            rx_ring_full: s.0.rx_ring_full,
            rx_fill_ring_empty: s.0.rx_fill_ring_empty_descs,
            tx_invalid: s.0.tx_invalid_descs,
        })
    }
}

/// `xdp_mmap_offsets` with a Default for getsockopt.
struct XdpMmapOffsets(libc::xdp_mmap_offsets);
impl Default for XdpMmapOffsets {
    fn default() -> Self {
        // SAFETY: a plain-old-data struct of integers; all zeros is valid.
        XdpMmapOffsets(unsafe { std::mem::zeroed() })
    }
}
/// `xdp_statistics` with a Default for getsockopt.
struct XdpStatistics(libc::xdp_statistics);
impl Default for XdpStatistics {
    fn default() -> Self {
        // SAFETY: a plain-old-data struct of integers; all zeros is valid.
        XdpStatistics(unsafe { std::mem::zeroed() })
    }
}
