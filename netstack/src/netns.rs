//! Network namespaces for the multi-host test and the benchmark: a private
//! L2 segment of N hosts (each its own namespace) joined by a bridge in one
//! more namespace. Interfaces are created directly inside the namespaces,
//! so nothing appears in the host's namespace and parallel labs with the
//! same addresses do not clash. Everything is deleted on drop, also when a
//! test panics. Needs root and `ip` (iproute2).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Why namespaces cannot be used here (None: they can).
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: network namespaces need CAP_SYS_ADMIN".into());
    }
    match Command::new("ip").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("`ip` (iproute2) not found".into()),
    }
}

/// Run `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Move the calling thread into namespace `name` (call before creating the
/// glommio executor on that thread).
pub fn enter(name: &str) -> io::Result<()> {
    let f = std::fs::File::open(format!("/var/run/netns/{name}"))?;
    use std::os::fd::AsRawFd;
    // SAFETY: `f` is an open namespace file descriptor for the duration of
    // the call; setns only changes the calling thread's network namespace.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// N hosts on one bridged segment, 10.77.0.(i+1)/24, interface `eth0`.
#[derive(Debug)]
pub struct Lab {
    /// Namespace of each host.
    pub hosts: Vec<String>,
    /// Namespace holding the bridge (None: two hosts on one veth pair).
    pub bridge: Option<String>,
    /// Address of each host.
    pub addrs: Vec<IpAddr>,
}

impl Lab {
    /// Create `n` hosts. Names start with `tag` (a few letters) plus the
    /// process id and a counter, so parallel runs never share a name.
    pub fn new(tag: &str, n: usize) -> io::Result<Lab> {
        assert!((1..=200).contains(&n));
        let uniq = format!(
            "{tag}{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let br = format!("{uniq}-br");
        let mut lab = Lab {
            hosts: Vec::new(),
            bridge: None,
            addrs: Vec::new(),
        };
        // From here on, Drop cleans up whatever was created.
        ip(&["netns", "add", &br])?;
        lab.bridge = Some(br.clone());
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for i in 0..n {
            let h = format!("{uniq}-h{i}");
            ip(&["netns", "add", &h])?;
            lab.hosts.push(h.clone());
            let port = format!("p{i}");
            ip(&[
                "link", "add", "eth0", "netns", &h, "type", "veth", "peer", "name", &port, "netns",
                &br,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &br, "link", "set", &port, "up"])?;
            let addr = Ipv4Addr::new(10, 77, 0, (i + 1) as u8);
            ip(&[
                "-n",
                &h,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &h, "link", "set", "eth0", "up"])?;
            ip(&["-n", &h, "link", "set", "lo", "up"])?;
            lab.addrs.push(IpAddr::V4(addr));
        }
        Ok(lab)
    }

    /// Two hosts joined directly by one veth pair (10.77.0.1 and .2).
    pub fn veth_pair(tag: &str) -> io::Result<Lab> {
        let uniq = format!(
            "{tag}{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut lab = Lab {
            hosts: Vec::new(),
            bridge: None,
            addrs: Vec::new(),
        };
        for i in 0..2 {
            let h = format!("{uniq}-h{i}");
            ip(&["netns", "add", &h])?;
            lab.hosts.push(h);
        }
        let (h0, h1) = (lab.hosts[0].clone(), lab.hosts[1].clone());
        ip(&[
            "link", "add", "eth0", "netns", &h0, "type", "veth", "peer", "name", "eth0", "netns",
            &h1,
        ])?;
        for (i, h) in [h0, h1].iter().enumerate() {
            let addr = Ipv4Addr::new(10, 77, 0, (i + 1) as u8);
            ip(&["-n", h, "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            ip(&["-n", h, "link", "set", "eth0", "up"])?;
            ip(&["-n", h, "link", "set", "lo", "up"])?;
            lab.addrs.push(IpAddr::V4(addr));
        }
        Ok(lab)
    }

    /// Bring host `i`'s link down or up.
    pub fn set_link(&self, i: usize, up: bool) -> io::Result<()> {
        ip(&[
            "-n",
            &self.hosts[i],
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for h in self.hosts.iter().chain(self.bridge.iter()) {
            if let Err(e) = ip(&["netns", "del", h]) {
                tracing::warn!(ns = %h, error = %e, "netns cleanup failed");
            }
        }
    }
}
