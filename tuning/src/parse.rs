//! Parsers for the text of `/proc` and `/sys` files. Each takes the file's
//! contents as a string, so tests feed them recorded samples; none of them
//! touches the file system. Malformed text is a [`ParseError`], never a panic.

use std::collections::BTreeMap;

/// Largest CPU number accepted in a CPU list (Linux's NR_CPUS maximum is
/// 8192); a bigger number is a corrupt file, not a machine.
pub const CPU_ID_MAX: u32 = 8191;

/// A file's text did not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct ParseError {
    /// Which kind of file (e.g. "cpu list").
    pub what: &'static str,
    /// What was wrong, quoting the offending text.
    pub detail: String,
}

fn err(what: &'static str, detail: impl Into<String>) -> ParseError {
    ParseError {
        what,
        detail: detail.into(),
    }
}

/// Parse a kernel CPU list such as `0-3,8-11` or `5` (the format of
/// `online`, `cpulist`, `thread_siblings_list`, `smp_affinity_list`).
/// An empty list is valid (a NUMA node without CPUs). Sorted, no duplicates.
pub fn cpu_list(text: &str) -> Result<Vec<u32>, ParseError> {
    const WHAT: &str = "cpu list";
    let text = text.trim();
    let mut out = Vec::new();
    if text.is_empty() {
        return Ok(out);
    }
    for part in text.split(',') {
        let part = part.trim();
        let num = |s: &str| -> Result<u32, ParseError> {
            let n: u32 = s
                .trim()
                .parse()
                .map_err(|_| err(WHAT, format!("{s:?} in {text:?} is not a CPU number")))?;
            if n > CPU_ID_MAX {
                return Err(err(WHAT, format!("CPU {n} above {CPU_ID_MAX}")));
            }
            Ok(n)
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(err(WHAT, format!("range {part:?} is reversed")));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Format CPUs as a kernel CPU list (`0-3,8`), the inverse of [`cpu_list`].
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// The CPU feature flags of the first processor in `/proc/cpuinfo`
/// (`flags` on x86, `Features` on ARM). Empty if neither line is present.
pub fn cpuinfo_flags(text: &str) -> Vec<String> {
    for line in text.lines() {
        if let Some((key, value)) = line.split_once(':') {
            let key = key.trim();
            if key == "flags" || key == "Features" {
                return value.split_whitespace().map(str::to_string).collect();
            }
        }
    }
    Vec::new()
}

/// The `/proc/meminfo` fields the advisor uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct MemInfo {
    /// `MemTotal`, KiB.
    pub mem_total_kib: u64,
    /// `HugePages_Total`, pages.
    pub hugepages_total: u64,
    /// `HugePages_Free`, pages.
    pub hugepages_free: u64,
    /// `Hugepagesize`, KiB.
    pub hugepage_size_kib: u64,
}

/// Parse `/proc/meminfo`. Every field the advisor needs must be present.
pub fn meminfo(text: &str) -> Result<MemInfo, ParseError> {
    const WHAT: &str = "/proc/meminfo";
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        if let Some((key, value)) = line.split_once(':') {
            let number = value.split_whitespace().next().unwrap_or("");
            if let Ok(n) = number.parse::<u64>() {
                fields.insert(key.trim(), n);
            }
        }
    }
    let get = |key: &str| {
        fields
            .get(key)
            .copied()
            .ok_or_else(|| err(WHAT, format!("no {key} line")))
    };
    Ok(MemInfo {
        mem_total_kib: get("MemTotal")?,
        hugepages_total: get("HugePages_Total")?,
        hugepages_free: get("HugePages_Free")?,
        hugepage_size_kib: get("Hugepagesize")?,
    })
}

/// The selected value of a sysfs multiple-choice file such as
/// `always [madvise] never` (transparent huge pages).
pub fn bracketed_choice(text: &str) -> Result<String, ParseError> {
    const WHAT: &str = "choice file";
    let start = text
        .find('[')
        .ok_or_else(|| err(WHAT, format!("no [selected] value in {text:?}")))?;
    let end = text[start..]
        .find(']')
        .ok_or_else(|| err(WHAT, format!("unclosed [ in {text:?}")))?;
    Ok(text[start + 1..start + end].to_string())
}

/// Kernel build options from a kernel config (`CONFIG_X=y`, `=m`, or
/// `# CONFIG_X is not set`, recorded as `n`).
pub fn kernel_config(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# ") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                if name.starts_with("CONFIG_") {
                    out.insert(name.to_string(), "n".to_string());
                }
            }
        } else if line.starts_with("CONFIG_") {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.to_string(), v.trim_matches('"').to_string());
            }
        }
    }
    out
}

/// One line of `/proc/mounts`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mount {
    /// Mount point.
    pub target: String,
    /// File system type (`bpf`, `hugetlbfs`, ...).
    pub fstype: String,
}

/// Parse `/proc/mounts` (lines with fewer than three fields are skipped;
/// the kernel never writes them).
pub fn mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let _source = f.next()?;
            let target = f.next()?.replace("\\040", " ");
            let fstype = f.next()?.to_string();
            Some(Mount { target, fstype })
        })
        .collect()
}

/// Module names from `/proc/modules`.
pub fn modules(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// One numbered interrupt line of `/proc/interrupts`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IrqLine {
    /// IRQ number (the `/proc/irq/N` directory).
    pub irq: u32,
    /// Interrupts taken per CPU column, in header order.
    pub counts: Vec<u64>,
    /// The rest of the line: controller, type and device name.
    pub description: String,
    /// The device name (last field), e.g. `virtio2-input.0`, `eth0-TxRx-0`.
    pub name: String,
}

/// Parse `/proc/interrupts`: the header names the CPU columns; named
/// lines (`NMI`, `LOC`, ...) are skipped, they are not steerable.
pub fn interrupts(text: &str) -> Result<Vec<IrqLine>, ParseError> {
    const WHAT: &str = "/proc/interrupts";
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| err(WHAT, "empty"))?;
    let ncpu = header
        .split_whitespace()
        .filter(|w| w.starts_with("CPU"))
        .count();
    if ncpu == 0 {
        return Err(err(WHAT, format!("header {header:?} names no CPU")));
    }
    let mut out = Vec::new();
    for line in lines {
        let Some((label, rest)) = line.split_once(':') else {
            continue;
        };
        let Ok(irq) = label.trim().parse::<u32>() else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let mut counts = Vec::with_capacity(ncpu);
        for _ in 0..ncpu {
            match words.next().map(str::parse::<u64>) {
                Some(Ok(n)) => counts.push(n),
                _ => {
                    return Err(err(WHAT, format!("IRQ {irq}: fewer than {ncpu} counts")));
                }
            }
        }
        let rest: Vec<&str> = words.collect();
        let name = rest.last().copied().unwrap_or("").to_string();
        out.push(IrqLine {
            irq,
            counts,
            description: rest.join(" "),
            name,
        });
    }
    Ok(out)
}

/// The interface of the default IPv4 route in `/proc/net/route`, if any.
pub fn default_route_iface(text: &str) -> Option<String> {
    text.lines().skip(1).find_map(|line| {
        let mut f = line.split_whitespace();
        let iface = f.next()?;
        let dest = f.next()?;
        (dest == "00000000").then(|| iface.to_string())
    })
}

/// Effective capability bits (`CapEff:` in `/proc/self/status`).
pub fn cap_eff(text: &str) -> Result<u64, ParseError> {
    const WHAT: &str = "/proc/self/status";
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .ok_or_else(|| err(WHAT, "no CapEff line"))?;
    u64::from_str_radix(line.trim(), 16)
        .map_err(|_| err(WHAT, format!("CapEff {:?} is not hex", line.trim())))
}

/// `kernel.io_uring_disabled`: 0 enabled, 1 only for `io_uring_group`
/// members and privileged processes, 2 disabled.
pub fn io_uring_disabled(text: &str) -> Result<u8, ParseError> {
    match text.trim() {
        "0" => Ok(0),
        "1" => Ok(1),
        "2" => Ok(2),
        other => Err(err(
            "/proc/sys/kernel/io_uring_disabled",
            format!("{other:?} is not 0, 1 or 2"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        let cases: &[(&str, &[u32])] = &[
            ("0", &[0]),
            ("0-1\n", &[0, 1]),
            ("0-3,8-11", &[0, 1, 2, 3, 8, 9, 10, 11]),
            ("1,0,0", &[0, 1]),
            ("", &[]),
            ("\n", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(cpu_list(text).unwrap(), *want, "{text:?}");
        }
        for bad in ["a", "3-1", "0-", "9000", "1,,2"] {
            assert!(cpu_list(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[]), "");
    }

    #[test]
    fn meminfo_and_choices() {
        let m = meminfo(
            "MemTotal:        8000000 kB\nHugePages_Total:     512\nHugePages_Free:      500\nHugepagesize:       2048 kB\n",
        )
        .unwrap();
        assert_eq!(m.hugepages_total, 512);
        assert_eq!(m.hugepages_free, 500);
        assert_eq!(m.hugepage_size_kib, 2048);
        let e = meminfo("MemTotal: 1 kB\n").unwrap_err();
        assert!(e.to_string().contains("HugePages_Total"), "{e}");
        assert_eq!(
            bracketed_choice("always [madvise] never\n").unwrap(),
            "madvise"
        );
        assert!(bracketed_choice("always madvise").is_err());
    }

    #[test]
    fn kernel_config_values() {
        let c = kernel_config(
            "CONFIG_BPF_SYSCALL=y\n# CONFIG_VFIO is not set\nCONFIG_XDP_SOCKETS=m\nCONFIG_LOCALVERSION=\"-x\"\n",
        );
        assert_eq!(c["CONFIG_BPF_SYSCALL"], "y");
        assert_eq!(c["CONFIG_VFIO"], "n");
        assert_eq!(c["CONFIG_XDP_SOCKETS"], "m");
        assert_eq!(c["CONFIG_LOCALVERSION"], "-x");
    }

    #[test]
    fn interrupts_lines() {
        let text = "           CPU0       CPU1       \n 24:          1          0  IO-APIC   5-edge      ACPI:Ged\n 38:          0       6324 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\nNMI:          0          0   Non-maskable interrupts\n";
        let irqs = interrupts(text).unwrap();
        assert_eq!(irqs.len(), 2);
        assert_eq!(irqs[1].irq, 38);
        assert_eq!(irqs[1].counts, vec![0, 6324]);
        assert_eq!(irqs[1].name, "virtio2-input.0");
        assert!(interrupts(" 24: 1 0 x\n").is_err(), "no header");
        assert!(interrupts("  CPU0 CPU1\n 24: 1\n").is_err(), "short line");
    }

    #[test]
    fn small_files() {
        assert_eq!(
            default_route_iface(
                "Iface\tDestination\teth9\nens3\t000200C0\t0\neth0\t00000000\t010200C0\n"
            ),
            Some("eth0".into())
        );
        assert_eq!(default_route_iface("Iface\tDestination\n"), None);
        assert_eq!(
            cap_eff("Name: x\nCapEff:\t000001fffeffffff\n").unwrap(),
            0x1fffeffffff
        );
        assert!(cap_eff("CapEff: zz\n").is_err());
        assert_eq!(io_uring_disabled("2\n").unwrap(), 2);
        assert!(io_uring_disabled("7").is_err());
        let m =
            mounts("bpf /sys/fs/bpf bpf rw 0 0\nnodev /dev/hugepages hugetlbfs rw 0 0\nbroken\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].fstype, "bpf");
        assert_eq!(
            modules("vfio_pci 16384 0 - Live 0x0\nvfio 1 2\n"),
            vec!["vfio_pci", "vfio"]
        );
        assert_eq!(
            cpuinfo_flags("processor : 0\nflags\t\t: fpu avx2 sha_ni\n\nflags : other\n"),
            vec!["fpu", "avx2", "sha_ni"]
        );
    }
}
