//! Opening the peer transport a node's config names (TCP, or the datagram
//! transport over kernel UDP, AF_XDP or DPDK): shared by the validator's
//! core and the observer's follower.

use crate::config::NetworkSection;
use anyhow::{anyhow, bail, Result};
use plume_netstack::{AnyTransport, GlommioTcp};

/// The transport `[network]` asks for, opened on the calling (core) thread.
pub fn open(n: &NetworkSection, listen: std::net::SocketAddr, core: usize) -> Result<AnyTransport> {
    use crate::config::TransportKind;
    use plume_netstack::dgram::open::{open, Device, OpenSpec};
    use plume_netstack::dgram::{DgramConfig, DgramTransport};
    let device = match n.transport {
        TransportKind::Tcp => return Ok(AnyTransport::Tcp(GlommioTcp)),
        TransportKind::Udp => Device::KernelUdp,
        TransportKind::AfXdp => Device::AfXdp {
            interface: n.interface.clone(),
            queue: n.queue,
            force_skb: n.xdp_mode == "generic",
            force_copy: n.xdp_bind == "copy",
        },
        TransportKind::Dpdk => Device::Dpdk {
            device: n.dpdk_device.clone(),
            lcore: core,
            mem_mb: n.dpdk_mem_mb as usize,
            no_huge: n.dpdk_no_huge,
            vdevs: n.dpdk_vdevs.clone(),
            pci_allow: n.dpdk_pci.clone(),
        },
    };
    let std::net::SocketAddr::V4(local) = listen else {
        bail!("network.transport = \"{}\" carries IPv4 only", n.transport);
    };
    let gateway = if n.gateway.is_empty() {
        None
    } else {
        Some(n.gateway.parse()?)
    };
    let io = open(&OpenSpec {
        local,
        prefix_len: n.prefix_len,
        gateway,
        device,
    })
    .map_err(|e| anyhow!("network.transport = \"{}\": {e}", n.transport))?;
    let t = DgramTransport::start(
        io,
        DgramConfig {
            busy_poll: n.busy_poll,
            ..DgramConfig::default()
        },
    );
    tracing::info!(transport = %n.transport, mode = t.mode(), %local, "datagram transport up");
    Ok(AnyTransport::Dgram(t))
}
