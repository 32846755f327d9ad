//! Open a datagram device from a description: what the node's
//! `[network]` section and `plume bench net --transport` turn into. A
//! transport this binary was built without, or one the host cannot run, is
//! an error that says what is missing and how to fix it.

use super::device::DatagramIo;
use super::udp::KernelUdp;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Which device carries the datagrams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// The kernel's UDP socket.
    KernelUdp,
    /// An AF_XDP socket on an interface queue.
    AfXdp {
        /// Interface name (in the calling thread's network namespace).
        interface: String,
        /// Queue id.
        queue: u32,
        /// Attach in generic (skb) mode even if native mode works.
        force_skb: bool,
        /// Bind in copy mode even if zero-copy works.
        force_copy: bool,
    },
    /// A DPDK port.
    Dpdk {
        /// Port name: a vdev name (`net_af_packet0`) or a PCI address.
        device: String,
        /// The lcore the calling thread is pinned to.
        lcore: usize,
        /// EAL memory, MiB.
        mem_mb: usize,
        /// Ordinary pages instead of huge pages (testing).
        no_huge: bool,
        /// `--vdev` arguments.
        vdevs: Vec<String>,
        /// PCI devices to allow (none: no PCI scan).
        pci_allow: Vec<String>,
    },
}

/// Where the device sits on the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSpec {
    /// Local IPv4 address and UDP port.
    pub local: SocketAddrV4,
    /// Prefix length of the local subnet (bypass devices).
    pub prefix_len: u8,
    /// Next hop off the subnet (bypass devices).
    pub gateway: Option<Ipv4Addr>,
    /// The device.
    pub device: Device,
}

/// Open the device on the calling thread (which must be the network core's
/// thread, in the right network namespace).
pub fn open(spec: &OpenSpec) -> Result<Box<dyn DatagramIo>, String> {
    match &spec.device {
        Device::KernelUdp => KernelUdp::bind(spec.local)
            .map(|u| Box::new(u) as Box<dyn DatagramIo>)
            .map_err(|e| format!("udp: cannot bind {}: {e}", spec.local)),
        Device::AfXdp {
            interface,
            queue,
            force_skb,
            force_copy,
        } => open_af_xdp(spec, interface, *queue, *force_skb, *force_copy),
        Device::Dpdk {
            device,
            lcore,
            mem_mb,
            no_huge,
            vdevs,
            pci_allow,
        } => open_dpdk(spec, device, *lcore, *mem_mb, *no_huge, vdevs, pci_allow),
    }
}

#[cfg(any(feature = "af-xdp", feature = "dpdk"))]
fn bypass_local(spec: &OpenSpec, what: &str) -> Result<(), String> {
    if spec.local.ip().is_unspecified() || spec.local.port() == 0 {
        return Err(format!(
            "{what} needs a concrete local address and port (the interface's IPv4 address), not {}",
            spec.local
        ));
    }
    Ok(())
}

#[cfg(feature = "af-xdp")]
fn open_af_xdp(
    spec: &OpenSpec,
    interface: &str,
    queue: u32,
    force_skb: bool,
    force_copy: bool,
) -> Result<Box<dyn DatagramIo>, String> {
    use super::afxdp::{AfXdp, XdpConfig};
    use super::eth::{EthLink, LinkConfig, Neighbours};
    bypass_local(spec, "af_xdp")?;
    let mut cfg = XdpConfig::new(interface, spec.local.port());
    cfg.queue = queue;
    cfg.local_ip = Some(*spec.local.ip());
    cfg.force_skb = force_skb;
    cfg.force_copy = force_copy;
    let dev = AfXdp::open(&cfg).map_err(|e| format!("af_xdp on {interface}: {e}"))?;
    let link = EthLink::new(
        dev,
        LinkConfig {
            local: spec.local,
            prefix_len: spec.prefix_len,
            gateway: spec.gateway,
            // The XDP program passes ARP to the kernel: ask the kernel.
            neighbours: Neighbours::Kernel,
        },
    )
    .map_err(|e| format!("af_xdp on {interface}: {e}"))?;
    Ok(Box::new(link))
}

#[cfg(not(feature = "af-xdp"))]
fn open_af_xdp(
    _spec: &OpenSpec,
    _interface: &str,
    _queue: u32,
    _force_skb: bool,
    _force_copy: bool,
) -> Result<Box<dyn DatagramIo>, String> {
    Err(
        "this plume binary was built without the `af-xdp` feature; rebuild with \
         `cargo build --release -p plume-node --features af-xdp` (it is on by default)"
            .into(),
    )
}

#[cfg(feature = "dpdk")]
fn open_dpdk(
    spec: &OpenSpec,
    device: &str,
    lcore: usize,
    mem_mb: usize,
    no_huge: bool,
    vdevs: &[String],
    pci_allow: &[String],
) -> Result<Box<dyn DatagramIo>, String> {
    use super::dpdk::{eal_init, DpdkPort, EalConfig, PortConfig};
    use super::eth::{EthLink, LinkConfig, Neighbours};
    bypass_local(spec, "dpdk")?;
    eal_init(&EalConfig {
        lcore,
        mem_mb,
        no_huge,
        no_pci: pci_allow.is_empty(),
        vdevs: vdevs.to_vec(),
        pci_allow: pci_allow.to_vec(),
        extra: Vec::new(),
    })
    .map_err(|e| format!("dpdk: {e}"))?;
    let port = DpdkPort::open(device, &PortConfig::default()).map_err(|e| format!("dpdk: {e}"))?;
    let link = EthLink::new(
        port,
        LinkConfig {
            local: spec.local,
            prefix_len: spec.prefix_len,
            gateway: spec.gateway,
            // A DPDK port may be invisible to the kernel: answer ARP ourselves.
            neighbours: Neighbours::OwnArp,
        },
    )
    .map_err(|e| format!("dpdk on {device}: {e}"))?;
    Ok(Box::new(link))
}

#[cfg(not(feature = "dpdk"))]
fn open_dpdk(
    _spec: &OpenSpec,
    _device: &str,
    _lcore: usize,
    _mem_mb: usize,
    _no_huge: bool,
    _vdevs: &[String],
    _pci_allow: &[String],
) -> Result<Box<dyn DatagramIo>, String> {
    Err("this plume binary was built without the `dpdk` feature; install libdpdk-dev \
         (scripts/setup.sh does) and rebuild with `cargo build --release -p plume-node --features dpdk` \
         (it is on by default)"
        .into())
}
