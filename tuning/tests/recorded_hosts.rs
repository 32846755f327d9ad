//! Whole recorded hosts: `/proc` and `/sys` samples laid out under a
//! temporary root, inspected with `host::inspect`, then assessed. The 2-core
//! VM is this CI machine as recorded on 2026-11-21; the others are typical
//! bare-metal layouts.

use plume_tuning::advice::{Severity, TransportReport};
use plume_tuning::host::{self, Probes, RingProbe, Rlimit};
use plume_tuning::report::{self, Report};
use std::path::Path;

/// A fake root directory.
struct Root(tempfile::TempDir);

impl Root {
    fn new() -> Self {
        Root(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn file(&self, rel: &str, text: impl AsRef<[u8]>) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }
    fn dir(&self, rel: &str) -> &Self {
        std::fs::create_dir_all(self.path().join(rel)).unwrap();
        self
    }
    fn link(&self, rel: &str, target: &str) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
        self
    }
    /// CPUs with their sibling lists and NUMA nodes.
    fn cpus(&self, online: &str, siblings: &[(u32, &str)], nodes: &[(u32, &str)]) -> &Self {
        self.file("sys/devices/system/cpu/online", format!("{online}\n"));
        for (cpu, sib) in siblings {
            self.file(
                &format!("sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"),
                format!("{sib}\n"),
            );
        }
        for (n, list) in nodes {
            self.file(
                &format!("sys/devices/system/node/node{n}/cpulist"),
                format!("{list}\n"),
            );
        }
        self
    }
    /// A network interface with a device, driver and queues.
    fn nic(&self, name: &str, device: &str, driver: &str, queues: u32) -> &Self {
        let base = format!("sys/class/net/{name}");
        let dev = format!("sys/devices/fake/{device}");
        self.dir(&format!("{dev}/driver_is_here"));
        self.link(&format!("{dev}/driver"), &format!("/bus/drivers/{driver}"));
        self.link(
            &format!("{base}/device"),
            &self.path().join(&dev).to_string_lossy(),
        );
        for q in 0..queues {
            self.dir(&format!("{base}/queues/rx-{q}"));
            self.dir(&format!("{base}/queues/tx-{q}"));
        }
        self
    }
}

const FLAGS_CI: &str = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 bmi2 adx sha_ni vaes aes\n";
const FLAGS_SERVER: &str =
    "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512ifma bmi2 adx sha_ni vaes aes\n";
const FLAGS_OLD: &str = "processor\t: 0\nflags\t\t: fpu sse2 avx aes\n";

fn meminfo(total: u64, free: u64, size_kib: u64) -> String {
    format!(
        "MemTotal:        8131244 kB\nMemFree:         6000000 kB\nAnonHugePages:         0 kB\nHugePages_Total:    {total}\nHugePages_Free:     {free}\nHugePages_Rsvd:        0\nHugepagesize:       {size_kib} kB\n"
    )
}

/// A gzip file of `text` (the shape of /proc/config.gz).
fn gzip(text: &str) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    out.extend(miniz_oxide::deflate::compress_to_vec(text.as_bytes(), 6));
    out.extend([0u8; 4]); // CRC, not checked by the reader
    out.extend((text.len() as u32).to_le_bytes());
    out
}

fn probes(memlock: Option<u64>) -> Probes {
    Probes {
        io_uring: RingProbe::Created,
        memlock: Some(Rlimit {
            soft_bytes: memlock,
            hard_bytes: memlock,
        }),
        allowed_cpus: None,
    }
}

fn finding<'a>(r: &'a Report, area: &str) -> &'a plume_tuning::advice::Finding {
    r.findings
        .iter()
        .find(|f| f.area == area)
        .unwrap_or_else(|| panic!("no {area} finding in {:#?}", r.findings))
}

fn transport<'a>(r: &'a Report, name: &str) -> &'a TransportReport {
    r.transports.iter().find(|t| t.transport == name).unwrap()
}

fn check<'a>(t: &'a TransportReport, area: &str) -> &'a plume_tuning::advice::Finding {
    t.checks.iter().find(|c| c.area == area).unwrap()
}

/// This CI machine: 2 vCPUs, no SMT, no cpufreq, virtio NIC with one
/// queue pair whose IRQs may run on both CPUs, bpffs not mounted.
fn ci_vm() -> Root {
    let r = Root::new();
    r.cpus("0-1", &[(0, "0"), (1, "1")], &[(0, "0-1")])
        .file("proc/sys/kernel/osrelease", "6.18.44-fc-v657\n")
        .file("proc/cpuinfo", FLAGS_CI)
        .file("proc/sys/kernel/io_uring_disabled", "0\n")
        .file("proc/self/status", "Name:\tplume\nCapEff:\t000001fffeffffff\n")
        .file("proc/meminfo", meminfo(0, 0, 2048))
        .file("sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n")
        .nic("eth0", "virtio2", "virtio_net", 1)
        .dir("sys/class/net/lo/queues/rx-0")
        .file(
            "proc/interrupts",
            "           CPU0       CPU1       \n 24:          1          0  IO-APIC   5-edge      ACPI:Ged\n 37:          0          0 PCI-MSIX-0000:00:03.0   0-edge      virtio2-config\n 38:          0       6324 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\n 39:       4091          0 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0\n 41:       2186          0 PCI-MSIX-0000:00:04.0   1-edge      virtio3-rx\nNMI:          0          0   Non-maskable interrupts\n",
        )
        .file("proc/irq/38/smp_affinity_list", "0-1\n")
        .file("proc/irq/39/smp_affinity_list", "0-1\n")
        .file(
            "proc/net/route",
            "Iface\tDestination\tGateway \tFlags\nlo\t0000007F\t00000000\t0001\neth0\t00000000\t010200C0\t0003\n",
        )
        .file("proc/mounts", "proc /proc proc rw 0 0\nsysfs /sys sysfs rw 0 0\n")
        .file(
            "proc/config.gz",
            gzip("CONFIG_BPF_SYSCALL=y\nCONFIG_BPF_JIT=y\nCONFIG_IO_URING=y\nCONFIG_XDP_SOCKETS=y\n# CONFIG_VFIO is not set\nCONFIG_HUGETLBFS=y\n"),
        )
        .dir("sys/kernel/iommu_groups");
    r
}

#[test]
fn ci_vm_two_cores_without_governor() {
    let root = ci_vm();
    let facts = host::inspect(root.path(), probes(Some(8 << 20)));
    assert!(facts.unreadable.is_empty(), "{:?}", facts.unreadable);
    assert_eq!(facts.topology.logical(), 2);
    assert!(!facts.topology.smt());
    assert_eq!(
        facts.kernel_config.as_ref().unwrap().options["CONFIG_XDP_SOCKETS"],
        "y"
    );
    assert_eq!(facts.default_iface.as_deref(), Some("eth0"));
    let eth0 = facts.peer_nic().unwrap();
    assert_eq!(eth0.driver.as_deref(), Some("virtio_net"));
    assert_eq!((eth0.rx_queues, eth0.tx_queues), (1, 1));
    let irqs: Vec<u32> = eth0.irqs.iter().map(|i| i.irq).collect();
    assert_eq!(irqs, vec![38, 39], "only eth0's queue interrupts");

    let r = report::build(facts);
    assert_eq!(r.plan.consensus_cores, vec![0]);
    assert_eq!(r.plan.sigverify_cores, vec![1]);
    assert_eq!(r.plan.exec_cores, vec![1]);
    assert!(r.plan.api_cores.is_empty());

    let gov = finding(&r, "cpu governor");
    assert_eq!(gov.severity, Severity::Ok);
    assert!(gov.finding.contains("not visible"), "{gov:?}");
    let irq = finding(&r, "irq affinity");
    assert_eq!(irq.severity, Severity::Advice);
    let fix = irq.remedy.as_deref().unwrap();
    assert!(
        fix.contains("echo 0 > /proc/irq/38/smp_affinity_list"),
        "{fix}"
    );
    assert!(
        fix.contains("echo 0 > /proc/irq/39/smp_affinity_list"),
        "{fix}"
    );
    // Root with CAP_IPC_LOCK: the 8 MiB limit does not bind, but is named.
    let ml = finding(&r, "memlock");
    assert_eq!(ml.severity, Severity::Ok);
    assert!(
        ml.finding.contains("8 MiB") && ml.finding.contains("CAP_IPC_LOCK"),
        "{ml:?}"
    );
    assert_eq!(finding(&r, "cpu avx2").severity, Severity::Ok);
    assert_eq!(finding(&r, "cpu avx512f").severity, Severity::Ok);

    assert_eq!(transport(&r, "tcp").status, Severity::Ok);
    assert_eq!(transport(&r, "udp").status, Severity::Ok);
    let xdp = transport(&r, "af_xdp");
    // bpffs is unmounted on this host, which AF_XDP does not need (nothing
    // is pinned): the transport is ready.
    assert_eq!(xdp.status, Severity::Ok, "{xdp:?}");
    let bpffs = check(xdp, "bpffs");
    assert_eq!(bpffs.severity, Severity::Ok);
    assert!(bpffs.finding.contains("not needed"), "{bpffs:?}");
    // A failed live attempt makes it a problem, with the reason shown.
    let mut ts = r.transports.clone();
    plume_tuning::advice::add_probe(&mut ts, "af_xdp", Err("no AF_XDP sockets".into()));
    let xdp2 = ts.iter().find(|t| t.transport == "af_xdp").unwrap();
    assert_eq!(xdp2.status, Severity::Problem);
    assert_eq!(check(xdp2, "live probe").finding, "no AF_XDP sockets");
    assert_eq!(check(xdp, "CONFIG_XDP_SOCKETS").severity, Severity::Ok);
    let dpdk = transport(&r, "dpdk");
    assert_eq!(dpdk.status, Severity::Advice, "--no-huge + vdev only");
    assert!(check(dpdk, "huge pages")
        .remedy
        .as_deref()
        .unwrap()
        .contains("vm.nr_hugepages=512"));
    assert!(check(dpdk, "vfio").finding.contains("without VFIO"));
    assert_eq!(check(dpdk, "iommu").severity, Severity::Advice);

    let text = report::render_text(&r);
    assert!(text.contains("consensus_cores = [0]"), "{text}");
    assert!(text.contains("sigverify_cores = [1]"), "{text}");
    let json: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(json["plan"]["exec_cores"], serde_json::json!([1]));
    assert_eq!(json["transports"][1]["transport"], "udp");
    assert_eq!(json["transports"][2]["transport"], "af_xdp");
    assert_eq!(json["transports"][3]["status"], "advice");
}

/// 8 physical cores x 2 threads (siblings i and i+8), two NUMA nodes, an
/// 8-queue ixgbe NIC on node 1, powersave governor, THP always.
fn smt_numa_box() -> Root {
    let r = Root::new();
    let sib: Vec<(u32, String)> = (0..16u32)
        .map(|c| (c, format!("{},{}", c % 8, c % 8 + 8)))
        .collect();
    let sib_ref: Vec<(u32, &str)> = sib.iter().map(|(c, s)| (*c, s.as_str())).collect();
    r.cpus("0-15", &sib_ref, &[(0, "0-3,8-11"), (1, "4-7,12-15")])
        .file("proc/sys/kernel/osrelease", "6.1.0-18-amd64\n")
        .file("proc/cpuinfo", FLAGS_SERVER)
        .file("proc/self/status", "CapEff:\t000001ffffffffff\n")
        .file("proc/meminfo", meminfo(0, 0, 2048))
        .file(
            "sys/kernel/mm/transparent_hugepage/enabled",
            "[always] madvise never\n",
        )
        .nic("ens1f0", "0000:81:00.0", "ixgbe", 8)
        .file("sys/class/net/ens1f0/device/numa_node", "1\n")
        .file(
            "boot/config-6.1.0-18-amd64",
            "CONFIG_BPF_SYSCALL=y\nCONFIG_XDP_SOCKETS=y\nCONFIG_VFIO=m\nCONFIG_VFIO_PCI=m\n",
        )
        .file("proc/mounts", "bpf /sys/fs/bpf bpf rw,nosuid 0 0\n")
        .dir("sys/kernel/iommu_groups/0")
        .dir("sys/kernel/iommu_groups/1");
    let mut ints = String::from("    ");
    for c in 0..16 {
        ints.push_str(&format!("   CPU{c}"));
    }
    ints.push('\n');
    for q in 0..8u32 {
        let irq = 100 + q;
        ints.push_str(&format!("{irq}:"));
        for _ in 0..16 {
            ints.push_str("  5");
        }
        ints.push_str(&format!("  IR-PCI-MSI 1-edge ens1f0-TxRx-{q}\n"));
        r.file(
            &format!("proc/irq/{irq}/smp_affinity_list"),
            format!("{}\n", q * 2),
        );
        r.dir(&format!("sys/devices/fake/0000:81:00.0/msi_irqs/{irq}"));
    }
    r.file("proc/interrupts", ints);
    for c in 0..16 {
        r.file(
            &format!("sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor"),
            "powersave\n",
        );
    }
    r
}

#[test]
fn sixteen_cpu_smt_box_with_two_numa_nodes() {
    let root = smt_numa_box();
    let facts = host::inspect(root.path(), probes(None));
    assert!(facts.unreadable.is_empty(), "{:?}", facts.unreadable);
    assert_eq!(facts.topology.logical(), 16);
    assert_eq!(facts.topology.physical_cores().len(), 8);
    assert!(facts.topology.smt());
    assert_eq!(facts.topology.numa_nodes.len(), 2);
    assert_eq!(
        facts.kernel_config.as_ref().unwrap().source,
        "/boot/config-6.1.0-18-amd64"
    );
    let nic = facts.peer_nic().unwrap();
    assert_eq!(nic.numa_node, Some(1));
    assert_eq!(nic.irqs.len(), 8);

    let r = report::build(facts);
    let p = &r.plan;
    // CPU 0's physical core is kept for the OS; consensus on the NIC's node.
    assert_eq!(p.housekeeping_cores, vec![0, 8]);
    assert_eq!(p.consensus_cores, vec![4]);
    assert_eq!(
        p.nic_irq_cores,
        vec![4],
        "the housekeeping core is on the other node"
    );
    assert_eq!(p.sigverify_cores.len() + p.exec_cores.len(), 6);
    assert!(p.sigverify_cores.len() > p.exec_cores.len());
    // One hot role per physical core: no two hot CPUs are siblings.
    let hot = p.hot_cores();
    assert_eq!(hot.len(), 7);
    for &c in &hot {
        assert!(
            !hot.contains(&((c + 8) % 16)),
            "{c} and its sibling are both hot"
        );
    }
    assert!(p.spans_numa_nodes);

    assert_eq!(finding(&r, "numa").severity, Severity::Advice);
    assert!(finding(&r, "numa")
        .remedy
        .as_deref()
        .unwrap()
        .contains("--cpunodebind=1"));
    assert_eq!(finding(&r, "smt").severity, Severity::Ok);
    let gov = finding(&r, "cpu governor");
    assert_eq!(gov.severity, Severity::Advice);
    assert!(gov.finding.contains("powersave on CPU(s) 0-15"), "{gov:?}");
    assert!(gov
        .remedy
        .as_deref()
        .unwrap()
        .contains("cpupower frequency-set -g performance"));
    assert_eq!(
        finding(&r, "transparent huge pages").severity,
        Severity::Advice
    );
    let q = finding(&r, "nic queues");
    assert_eq!(q.severity, Severity::Advice);
    assert!(q
        .remedy
        .as_deref()
        .unwrap()
        .contains("ethtool -L ens1f0 combined 1"));
    let irq = finding(&r, "irq affinity");
    assert_eq!(irq.severity, Severity::Advice);
    assert!(irq
        .remedy
        .as_deref()
        .unwrap()
        .contains("echo 4 > /proc/irq/100/smp_affinity_list"));
    assert_eq!(finding(&r, "memlock").finding, "unlimited");

    let xdp = transport(&r, "af_xdp");
    assert_eq!(xdp.status, Severity::Advice, "{xdp:#?}");
    assert!(check(xdp, "nic")
        .remedy
        .as_deref()
        .unwrap()
        .contains("ethtool -N ens1f0 flow-type udp4"));
    let dpdk = transport(&r, "dpdk");
    assert_eq!(check(dpdk, "iommu").severity, Severity::Ok);
    assert!(check(dpdk, "vfio")
        .remedy
        .as_deref()
        .unwrap()
        .contains("modprobe vfio-pci"));
    assert!(report::render_text(&r).contains("OS + interrupts                       CPU 0,8"));
}

/// 4 cores, no SMT, huge pages reserved and mounted, IOMMU + vfio-pci,
/// but run as an unprivileged user with a 64 KiB memlock limit and an old
/// CPU without AVX2.
#[test]
fn hugepage_box_unprivileged() {
    let r = Root::new();
    r.cpus(
        "0-3",
        &[(0, "0"), (1, "1"), (2, "2"), (3, "3")],
        &[(0, "0-3")],
    )
    .file("proc/cpuinfo", FLAGS_OLD)
    .file("proc/self/status", "CapEff:\t0000000000000000\n")
    .file("proc/meminfo", meminfo(1024, 1000, 2048))
    .file(
        "sys/kernel/mm/transparent_hugepage/enabled",
        "always madvise [never]\n",
    )
    .file(
        "proc/mounts",
        "nodev /dev/hugepages hugetlbfs rw 0 0\nbpf /sys/fs/bpf bpf rw 0 0\n",
    )
    .file(
        "proc/modules",
        "vfio_pci 16384 0 - Live 0x0\nvfio 45056 1 vfio_pci, Live 0x0\n",
    )
    .dir("sys/kernel/iommu_groups/7")
    .dir("dev/vfio")
    .nic("enp1s0", "0000:01:00.0", "ice", 1)
    .file(
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
        "performance\n",
    )
    .file(
        "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
        "performance\n",
    );
    let facts = host::inspect(r.path(), probes(Some(64 << 10)));
    assert!(facts.kernel_config.is_none());
    let rep = report::build(facts);
    assert_eq!(rep.plan.consensus_cores, vec![0]);
    assert_eq!(rep.plan.sigverify_cores, vec![1, 2]);
    assert_eq!(rep.plan.exec_cores, vec![3]);

    let ml = finding(&rep, "memlock");
    assert_eq!(ml.severity, Severity::Advice);
    assert!(ml.remedy.as_deref().unwrap().contains("memlock unlimited"));
    assert_eq!(finding(&rep, "cpu avx2").severity, Severity::Problem);
    assert_eq!(finding(&rep, "cpu sha_ni").severity, Severity::Advice);
    assert_eq!(finding(&rep, "cpu governor").severity, Severity::Ok);
    assert_eq!(
        finding(&rep, "transparent huge pages").severity,
        Severity::Ok
    );

    let dpdk = transport(&rep, "dpdk");
    assert_eq!(dpdk.status, Severity::Ok, "{dpdk:#?}");
    assert!(check(dpdk, "huge pages")
        .finding
        .contains("1000 free huge pages"));
    let xdp = transport(&rep, "af_xdp");
    assert_eq!(xdp.status, Severity::Problem);
    assert_eq!(check(xdp, "privileges").severity, Severity::Problem);
    assert!(check(xdp, "privileges")
        .remedy
        .as_deref()
        .unwrap()
        .contains("setcap"));
    assert_eq!(check(xdp, "memlock").severity, Severity::Problem);
    assert_eq!(
        check(xdp, "CONFIG_XDP_SOCKETS").severity,
        Severity::Advice,
        "config unreadable"
    );
}

#[test]
fn io_uring_disabled_and_blocked() {
    let root = ci_vm();
    root.file("proc/sys/kernel/io_uring_disabled", "2\n");
    let mut p = probes(None);
    p.io_uring = RingProbe::Failed {
        errno: libc::EPERM,
        meaning: "EPERM".into(),
    };
    let r = report::build(host::inspect(root.path(), p));
    let uring: Vec<_> = r.findings.iter().filter(|f| f.area == "io_uring").collect();
    assert_eq!(uring.len(), 2, "sysctl and probe");
    assert!(uring.iter().all(|f| f.severity == Severity::Problem));
    assert!(uring[0]
        .remedy
        .as_deref()
        .unwrap()
        .contains("sysctl -w kernel.io_uring_disabled=0"));
    assert!(uring[1].remedy.as_deref().unwrap().contains("seccomp"));
    assert_eq!(transport(&r, "tcp").status, Severity::Problem);
}

#[test]
fn corrupt_files_are_reported_not_fatal() {
    let root = ci_vm();
    root.file("proc/meminfo", "garbage\n")
        .file("proc/interrupts", "no cpus here\n")
        .file(
            "proc/config.gz",
            b"not gzip at all, definitely not".as_slice(),
        )
        .file(
            "sys/devices/system/cpu/cpu1/topology/thread_siblings_list",
            "zz\n",
        );
    let facts = host::inspect(root.path(), probes(None));
    let joined = facts.unreadable.join("\n");
    for needle in [
        "proc/meminfo",
        "proc/interrupts",
        "config.gz",
        "thread_siblings_list",
    ] {
        assert!(joined.contains(needle), "{needle} missing from {joined}");
    }
    assert_eq!(
        facts.topology.logical(),
        2,
        "a bad sibling list still counts the CPU"
    );
    let r = report::build(facts);
    assert!(r.findings.iter().any(|f| f.area == "files"));
    assert_eq!(r.plan.consensus_cores, vec![0]);
}

#[test]
fn gzip_header_fields_and_limit() {
    let text = "CONFIG_XDP_SOCKETS=y\n".repeat(100);
    let mut gz = gzip(&text);
    assert_eq!(host::gunzip(&gz, 1 << 20).unwrap(), text.as_bytes());
    assert!(host::gunzip(&gz, 100).is_err(), "over the size bound");
    // FNAME set: a zero-terminated name follows the fixed header.
    gz[3] = 8;
    gz.splice(10..10, b"config\0".iter().copied());
    assert_eq!(host::gunzip(&gz, 1 << 20).unwrap(), text.as_bytes());
    assert!(host::gunzip(&gz[..12], 1 << 20).is_err());
}

#[test]
fn allowed_cpus_restrict_the_topology() {
    let root = ci_vm();
    root.cpus(
        "0-3",
        &[(0, "0"), (1, "1"), (2, "2"), (3, "3")],
        &[(0, "0-3")],
    );
    let mut p = probes(None);
    p.allowed_cpus = Some(vec![2, 3]);
    let r = report::build(host::inspect(root.path(), p));
    assert_eq!(r.plan.consensus_cores, vec![2]);
    assert_eq!(r.plan.sigverify_cores, vec![3]);
}

/// The real inspection on the machine running the tests. Run with
/// `--nocapture` to see the report.
#[test]
fn this_host() {
    let facts = host::inspect_this_host();
    assert!(facts.topology.logical() >= 1);
    let r = report::build(facts);
    let p = &r.plan;
    for (role, cores) in [
        ("consensus", &p.consensus_cores),
        ("sigverify", &p.sigverify_cores),
        ("exec", &p.exec_cores),
    ] {
        assert!(!cores.is_empty(), "{role} has no core");
        for c in cores.iter() {
            assert!(
                r.host.topology.cpus.iter().any(|x| x.id == *c),
                "{role} core {c} is not on this host"
            );
        }
    }
    assert!(!matches!(r.host.probes.io_uring, RingProbe::NotRun));
    assert_eq!(r.transports.len(), 4, "tcp, udp, af_xdp, dpdk");
    println!("{}", report::render_text(&r));
}
