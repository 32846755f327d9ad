//! Our XDP program, assembled by hand, and the few `bpf(2)` commands that
//! load it: create the XSKMAP, load the program, put a socket into the map,
//! attach the program to an interface with a BPF link.
//!
//! No C compiler, no libbpf: the program is an array of [`Insn`] built by
//! [`redirect_program`], and the syscall is made through `libc::syscall`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

// ---- eBPF instruction encoding (include/uapi/linux/bpf.h, bpf_common.h) ----

/// Instruction classes.
const CLASS_LD: u8 = 0x00;
const CLASS_LDX: u8 = 0x01;
const CLASS_JMP: u8 = 0x05;
const CLASS_JMP32: u8 = 0x06;
const CLASS_ALU64: u8 = 0x07;
/// Load/store sizes.
const SIZE_W: u8 = 0x00;
const SIZE_H: u8 = 0x08;
const SIZE_B: u8 = 0x10;
const SIZE_DW: u8 = 0x18;
/// Load modes.
const MODE_IMM: u8 = 0x00;
const MODE_MEM: u8 = 0x60;
/// ALU operations.
const ALU_ADD: u8 = 0x00;
const ALU_AND: u8 = 0x50;
const ALU_LSH: u8 = 0x60;
const ALU_MOV: u8 = 0xb0;
/// Jump operations.
const JMP_JGT: u8 = 0x20;
const JMP_JSET: u8 = 0x40;
const JMP_JNE: u8 = 0x50;
const JMP_JLT: u8 = 0xa0;
const JMP_CALL: u8 = 0x80;
const JMP_EXIT: u8 = 0x90;
/// Operand source: immediate or register.
const SRC_K: u8 = 0x00;
const SRC_X: u8 = 0x08;
/// `src_reg` of a 64-bit immediate load that names a map by its fd.
const PSEUDO_MAP_FD: u8 = 1;

/// Helper function id of `bpf_redirect_map`.
pub const FUNC_REDIRECT_MAP: i32 = 51;
/// XDP verdicts.
pub const XDP_PASS: i32 = 2;
pub const XDP_REDIRECT: i32 = 4;

/// Offsets in `struct xdp_md` (the program's context).
const MD_DATA: i16 = 0;
const MD_DATA_END: i16 = 4;
const MD_RX_QUEUE_INDEX: i16 = 16;

/// Frame layout: Ethernet header, then IPv4, then UDP.
const ETH_HLEN: i16 = 14;
const ETH_TYPE_OFF: i16 = 12;
const IPV4_HLEN_MIN: i32 = 20;
const UDP_HLEN: i32 = 8;

/// One eBPF instruction, exactly as the kernel reads it (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Opcode: class | size/op | mode/source.
    pub code: u8,
    /// Destination register in the low nibble, source in the high nibble.
    pub regs: u8,
    /// Signed offset (memory access or jump distance in instructions).
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        debug_assert!(dst < 11 && src < 11);
        Insn {
            code,
            regs: (src << 4) | dst,
            off,
            imm,
        }
    }
    /// Destination register.
    pub fn dst(&self) -> u8 {
        self.regs & 0x0f
    }
    /// Source register.
    pub fn src(&self) -> u8 {
        self.regs >> 4
    }
}

/// `dst = src` (64 bit).
fn mov64_reg(dst: u8, src: u8) -> Insn {
    Insn::new(CLASS_ALU64 | ALU_MOV | SRC_X, dst, src, 0, 0)
}
/// `dst = imm` (64 bit, sign-extended).
fn mov64_imm(dst: u8, imm: i32) -> Insn {
    Insn::new(CLASS_ALU64 | ALU_MOV | SRC_K, dst, 0, 0, imm)
}
/// `dst OP= imm` (64 bit).
fn alu64_imm(op: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(CLASS_ALU64 | op | SRC_K, dst, 0, 0, imm)
}
/// `dst OP= src` (64 bit).
fn alu64_reg(op: u8, dst: u8, src: u8) -> Insn {
    Insn::new(CLASS_ALU64 | op | SRC_X, dst, src, 0, 0)
}
/// `dst = *(size *)(src + off)`, zero-extended.
fn ldx(size: u8, dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(CLASS_LDX | size | MODE_MEM, dst, src, off, 0)
}
/// `call helper`.
fn call(func: i32) -> Insn {
    Insn::new(CLASS_JMP | JMP_CALL, 0, 0, 0, func)
}
/// `exit` (returns r0).
fn exit() -> Insn {
    Insn::new(CLASS_JMP | JMP_EXIT, 0, 0, 0, 0)
}
/// The two halves of `dst = map_by_fd(fd)` (`BPF_LD_IMM64` + pseudo map fd).
fn ld_map_fd(dst: u8, fd: i32) -> [Insn; 2] {
    [
        Insn::new(CLASS_LD | SIZE_DW | MODE_IMM, dst, PSEUDO_MAP_FD, 0, fd),
        Insn::new(0, 0, 0, 0, 0),
    ]
}

/// Registers by their eBPF names.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;
const R7: u8 = 7;

/// A program under construction whose conditional jumps all go to one
/// `pass` label at the end (fixed up by [`Asm::finish`]).
struct Asm {
    insns: Vec<Insn>,
    to_pass: Vec<usize>,
}

impl Asm {
    fn op(&mut self, i: Insn) {
        self.insns.push(i);
    }
    /// `if dst OP imm goto pass` (64-bit compare).
    fn jmp_imm_pass(&mut self, op: u8, dst: u8, imm: i32) {
        self.to_pass.push(self.insns.len());
        self.insns
            .push(Insn::new(CLASS_JMP | op | SRC_K, dst, 0, 0, imm));
    }
    /// `if (u32)dst OP (u32)imm goto pass` (32-bit compare).
    fn jmp32_imm_pass(&mut self, op: u8, dst: u8, imm: i32) {
        self.to_pass.push(self.insns.len());
        self.insns
            .push(Insn::new(CLASS_JMP32 | op | SRC_K, dst, 0, 0, imm));
    }
    /// `if dst OP src goto pass` (64-bit compare).
    fn jmp_reg_pass(&mut self, op: u8, dst: u8, src: u8) {
        self.to_pass.push(self.insns.len());
        self.insns
            .push(Insn::new(CLASS_JMP | op | SRC_X, dst, src, 0, 0));
    }
    /// Append `pass: r0 = XDP_PASS; exit` and point every pending jump at it.
    fn finish(mut self) -> Vec<Insn> {
        let pass = self.insns.len();
        self.op(mov64_imm(R0, XDP_PASS)); // pass: r0 = XDP_PASS
        self.op(exit()); //                    return r0
        for at in self.to_pass {
            let dist = pass - at - 1;
            self.insns[at].off = i16::try_from(dist).expect("program is tiny");
        }
        self.insns
    }
}

/// An assembled XDP program and where its patched immediates sit.
#[derive(Clone, Debug)]
pub struct Program {
    /// The instructions, ready for `BPF_PROG_LOAD`.
    pub insns: Vec<Insn>,
    /// Index of the instruction comparing the UDP destination port.
    pub port_at: usize,
    /// Index of the instruction comparing the destination IPv4 address.
    pub ip_at: Option<usize>,
}

/// The XDP program: IPv4 UDP datagrams to `udp_port` (and, if given, to
/// `local_ip`) are redirected to the AF_XDP socket stored in the XSKMAP
/// `map_fd` at the frame's rx queue; everything else (ARP, ICMP, other
/// ports, IP fragments, IPv6, VLAN-tagged frames) goes on to the kernel.
/// If the map has no socket at that queue, `bpf_redirect_map` falls back
/// to `XDP_PASS` as well.
///
/// The port and address are immediates in the instructions, in network
/// byte order as a little-endian load sees them.
pub fn redirect_program(map_fd: RawFd, udp_port: u16, local_ip: Option<[u8; 4]>) -> Program {
    let mut a = Asm {
        insns: Vec::with_capacity(40),
        to_pass: Vec::with_capacity(12),
    };
    // r6 = ctx (r1 is clobbered by the helper call later)
    a.op(mov64_reg(R6, R1));
    // r2 = ctx->data (packet start)
    a.op(ldx(SIZE_W, R2, R6, MD_DATA));
    // r3 = ctx->data_end
    a.op(ldx(SIZE_W, R3, R6, MD_DATA_END));
    // r4 = data
    a.op(mov64_reg(R4, R2));
    // r4 += 14 + 20 (Ethernet + minimal IPv4 header)
    a.op(alu64_imm(ALU_ADD, R4, i32::from(ETH_HLEN) + IPV4_HLEN_MIN));
    // if data + 34 > data_end goto pass (bounds check for the verifier)
    a.jmp_reg_pass(JMP_JGT, R4, R3);
    // r5 = ethertype (big-endian on the wire, loaded little-endian)
    a.op(ldx(SIZE_H, R5, R2, ETH_TYPE_OFF));
    // if ethertype != 0x0800 (IPv4) goto pass
    a.jmp_imm_pass(JMP_JNE, R5, i32::from(0x0800u16.swap_bytes()));
    // r5 = IPv4 version/IHL byte
    a.op(ldx(SIZE_B, R5, R2, ETH_HLEN));
    // r7 = r5
    a.op(mov64_reg(R7, R5));
    // r7 &= 0xf0 (version nibble)
    a.op(alu64_imm(ALU_AND, R7, 0xf0));
    // if version != 4 goto pass
    a.jmp_imm_pass(JMP_JNE, R7, 0x40);
    // r5 &= 0x0f (IHL in 32-bit words)
    a.op(alu64_imm(ALU_AND, R5, 0x0f));
    // if IHL < 5 goto pass (malformed header)
    a.jmp_imm_pass(JMP_JLT, R5, 5);
    // r5 <<= 2 (IPv4 header length in bytes, 20..=60)
    a.op(alu64_imm(ALU_LSH, R5, 2));
    // r7 = IPv4 protocol
    a.op(ldx(SIZE_B, R7, R2, ETH_HLEN + 9));
    // if protocol != 17 (UDP) goto pass
    a.jmp_imm_pass(JMP_JNE, R7, 17);
    // r7 = flags + fragment offset (big-endian, loaded little-endian)
    a.op(ldx(SIZE_H, R7, R2, ETH_HLEN + 6));
    // if more-fragments or fragment offset != 0 goto pass (the kernel
    // reassembles; our own layer never sends IP fragments)
    a.jmp_imm_pass(JMP_JSET, R7, i32::from(0x3fffu16.swap_bytes()));
    let mut ip_at = None;
    if let Some(ip) = local_ip {
        // r7 = IPv4 destination address (within the 34 checked bytes)
        a.op(ldx(SIZE_W, R7, R2, ETH_HLEN + 16));
        // if (u32)r7 != our address goto pass (32-bit compare: no sign
        // extension of the immediate)
        ip_at = Some(a.insns.len());
        a.jmp32_imm_pass(JMP_JNE, R7, i32::from_le_bytes(ip));
    }
    // r2 += IHL (so r2 + 14 is the UDP header)
    a.op(alu64_reg(ALU_ADD, R2, R5));
    // r4 = r2
    a.op(mov64_reg(R4, R2));
    // r4 += 14 + 8 (end of the UDP header)
    a.op(alu64_imm(ALU_ADD, R4, i32::from(ETH_HLEN) + UDP_HLEN));
    // if UDP header end > data_end goto pass (bounds check)
    a.jmp_reg_pass(JMP_JGT, R4, R3);
    // r7 = UDP destination port (big-endian, loaded little-endian)
    a.op(ldx(SIZE_H, R7, R2, ETH_HLEN + 2));
    // if port != ours goto pass
    let port_at = a.insns.len();
    a.jmp_imm_pass(JMP_JNE, R7, i32::from(udp_port.swap_bytes()));
    // r2 = ctx->rx_queue_index (the XSKMAP key)
    a.op(ldx(SIZE_W, R2, R6, MD_RX_QUEUE_INDEX));
    // r1 = &xsks_map (64-bit immediate load, two instruction slots)
    for i in ld_map_fd(R1, map_fd) {
        a.op(i);
    }
    // r3 = XDP_PASS (the verdict if the map has no socket at that queue)
    a.op(mov64_imm(R3, XDP_PASS));
    // r0 = bpf_redirect_map(r1, r2, r3)
    a.op(call(FUNC_REDIRECT_MAP));
    // return r0
    a.op(exit());
    Program {
        insns: a.finish(),
        port_at,
        ip_at,
    }
}

// ---- the bpf(2) system call ----

/// `bpf(2)` commands.
const CMD_MAP_CREATE: i32 = 0;
const CMD_MAP_UPDATE_ELEM: i32 = 2;
const CMD_PROG_LOAD: i32 = 5;
const CMD_LINK_CREATE: i32 = 28;
/// `BPF_MAP_TYPE_XSKMAP`.
const MAP_TYPE_XSKMAP: u32 = 17;
/// `BPF_PROG_TYPE_XDP`.
const PROG_TYPE_XDP: u32 = 6;
/// `BPF_XDP` attach type.
const ATTACH_XDP: u32 = 37;
/// Size of `union bpf_attr` we pass (the kernel accepts any size up to
/// its own as long as the tail it does not know is zero).
const ATTR_BYTES: usize = 144;
/// Bytes of verifier log kept when a load fails.
pub const VERIFIER_LOG_BYTES: usize = 64 * 1024;
/// Most instructions we ever load (the kernel allows far more).
const PROG_INSNS_MAX: usize = 256;

/// `XDP_FLAGS_SKB_MODE`: generic XDP, run on the skb after the driver.
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
/// `XDP_FLAGS_DRV_MODE`: native XDP in the driver.
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `union bpf_attr`, filled field by field at the kernel's byte offsets.
#[repr(C, align(8))]
struct Attr([u8; ATTR_BYTES]);

impl Attr {
    fn zeroed() -> Attr {
        Attr([0; ATTR_BYTES])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn bytes(&mut self, off: usize, v: &[u8]) -> &mut Attr {
        self.0[off..off + v.len()].copy_from_slice(v);
        self
    }
}

/// Run one `bpf(2)` command; returns the non-negative result.
fn sys_bpf(cmd: i32, attr: &mut Attr) -> io::Result<i32> {
    // SAFETY: `attr` is a valid, writable, 8-aligned buffer of ATTR_BYTES
    // bytes for the whole call and we pass its true size; every pointer
    // stored inside it (instructions, license, log buffer, key, value) is
    // kept alive by the caller until this returns.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            ATTR_BYTES as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}

/// A file descriptor returned by the kernel, now owned by us.
fn owned(fd: i32) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful bpf(2) call that
    // creates a new descriptor; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Create an XSKMAP (key: u32 rx queue, value: u32 AF_XDP socket fd).
pub fn create_xskmap(entries: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::zeroed();
    a.u32(0, MAP_TYPE_XSKMAP)
        .u32(4, 4)
        .u32(8, 4)
        .u32(12, entries)
        .bytes(28, b"plume_xsks");
    sys_bpf(CMD_MAP_CREATE, &mut a).map(owned)
}

/// `map[key] = value` for a map with u32 keys and values.
pub fn map_update_u32(map: &OwnedFd, key: u32, value: u32) -> io::Result<()> {
    let mut a = Attr::zeroed();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, &key as *const u32 as u64)
        .u64(16, &value as *const u32 as u64)
        .u64(24, 0);
    sys_bpf(CMD_MAP_UPDATE_ELEM, &mut a).map(|_| ())
}

/// Why the kernel would not load a program.
#[derive(Debug)]
pub struct LoadError {
    /// The errno of `BPF_PROG_LOAD`.
    pub err: io::Error,
    /// The verifier's log (may be empty, e.g. for EPERM).
    pub log: String,
}

fn prog_load(insns: &[Insn], log: Option<&mut [u8]>) -> io::Result<OwnedFd> {
    let license = CString::new("GPL").expect("no NUL");
    let mut a = Attr::zeroed();
    a.u32(0, PROG_TYPE_XDP)
        .u32(4, insns.len() as u32)
        .u64(8, insns.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .bytes(48, b"plume_xsk_redir")
        .u32(68, ATTACH_XDP);
    if let Some(buf) = log {
        a.u32(24, 1)
            .u32(28, buf.len() as u32)
            .u64(32, buf.as_mut_ptr() as u64);
    }
    sys_bpf(CMD_PROG_LOAD, &mut a).map(owned)
}

/// Load an XDP program. On failure the load is repeated with the verifier
/// log switched on, and the log comes back inside the error.
pub fn load_xdp(insns: &[Insn]) -> Result<OwnedFd, LoadError> {
    if insns.is_empty() || insns.len() > PROG_INSNS_MAX {
        return Err(LoadError {
            err: io::Error::from(io::ErrorKind::InvalidInput),
            log: format!("program has {} instructions", insns.len()),
        });
    }
    match prog_load(insns, None) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            let mut buf = vec![0u8; VERIFIER_LOG_BYTES];
            match prog_load(insns, Some(&mut buf)) {
                Ok(fd) => Ok(fd),
                Err(err) => {
                    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                    let log = String::from_utf8_lossy(&buf[..end]).trim_end().to_string();
                    // Keep the first errno if the retry failed differently
                    // only because of the log (e.g. ENOSPC).
                    let err = if err.raw_os_error() == Some(libc::ENOSPC) {
                        first
                    } else {
                        err
                    };
                    Err(LoadError { err, log })
                }
            }
        }
    }
}

/// Attach `prog` to interface `ifindex` with a BPF link in the mode given
/// by `xdp_flags`; the program stays attached until the link fd is closed.
pub fn link_xdp(prog: &OwnedFd, ifindex: u32, xdp_flags: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::zeroed();
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(4, ifindex)
        .u32(8, ATTACH_XDP)
        .u32(12, xdp_flags);
    sys_bpf(CMD_LINK_CREATE, &mut a).map(owned)
}

/// The smallest XDP program (`return XDP_PASS`), for capability probes.
pub fn pass_program() -> Vec<Insn> {
    vec![
        mov64_imm(R0, XDP_PASS), // r0 = XDP_PASS
        exit(),                  // return r0
    ]
}
