//! A real multi-validator network on this machine (`plume devnet`,
//! `plume bench cluster`, the node's integration tests), set up the way an
//! operator does it: through the `plume` binary itself (`plume init`,
//! `plume genesis new`), then N `plume start` processes.

use anyhow::{anyhow, bail, Context, Result};
use plume_client::keyfile;
use plume_crypto::ed25519::SigningKey;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Funded client accounts in a devnet.
pub const DEVNET_ACCOUNTS: usize = 512;
/// Initial balance of each client account.
pub const DEVNET_BALANCE: u128 = 1_000_000_000_000_000;
/// Set `network.transport` in every home's config.toml.
pub fn set_transport(net: &LocalNet, transport: &str) -> Result<()> {
    match transport {
        "tcp" => return Ok(()),
        "udp" => {}
        "af_xdp" | "dpdk" => bail!(
            "--transport {transport} needs each validator on its own network interface \
             (network namespaces as root: see node/tests/bypass.rs); devnet runs on loopback: \
             use tcp or udp"
        ),
        other => bail!("unknown transport {other:?}: tcp or udp"),
    }
    for h in &net.homes {
        let p = h.join("config.toml");
        let text = std::fs::read_to_string(&p)?;
        let new = text.replace(
            "transport = \"tcp\"",
            &format!("transport = \"{transport}\""),
        );
        if new == text {
            bail!("{}: no `transport = \"tcp\"` line to change", p.display());
        }
        std::fs::write(&p, new)?;
    }
    Ok(())
}

/// A running local network; dropping it stops every validator.
pub struct LocalNet {
    /// Validator processes.
    pub children: Vec<Option<Child>>,
    /// Homes.
    pub homes: Vec<PathBuf>,
    /// API addresses.
    pub apis: Vec<String>,
    /// Chain id.
    pub chain_id: String,
    /// The genesis file (also copied into every home).
    pub genesis_path: PathBuf,
    /// Client account keys.
    pub accounts: Vec<SigningKey>,
    /// Network namespace of each validator (None: all in ours).
    pub netns: Option<Vec<String>>,
    /// Observers (non-voting followers listed in genesis `observers`).
    pub observers: Vec<Observer>,
    exe: PathBuf,
}

/// One observer of a [`LocalNet`] (in our network namespace).
#[derive(Debug)]
pub struct Observer {
    /// Its process.
    pub child: Option<Child>,
    /// Home.
    pub home: PathBuf,
    /// API address.
    pub api: String,
}

/// Validators placed in network namespaces (one each), e.g. the hosts of a
/// [`plume_netstack::netns::Lab`], with a config edit per validator (to pick
/// a transport).
pub struct NsLayout<'a> {
    /// Namespace of each validator.
    pub hosts: Vec<String>,
    /// Address of each validator's interface in its namespace.
    pub addrs: Vec<std::net::IpAddr>,
    /// Rewrites validator i's `config.toml` text.
    pub edit_config: &'a dyn Fn(usize, String) -> String,
}

impl std::fmt::Debug for LocalNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNet")
            .field("apis", &self.apis)
            .finish()
    }
}

impl Drop for LocalNet {
    fn drop(&mut self) {
        let observers = self.observers.iter_mut().filter_map(|o| o.child.as_mut());
        for c in self.children.iter_mut().flatten().chain(observers) {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let observers = self.observers.iter_mut().filter_map(|o| o.child.as_mut());
        for c in self.children.iter_mut().flatten().chain(observers) {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Deterministic client account key `i`.
pub fn account_key(i: usize) -> SigningKey {
    let d = plume_crypto::hash(
        plume_crypto::Domain::Address,
        format!("plume devnet account {i}").as_bytes(),
    );
    SigningKey::from_bytes(&d.0)
}

impl LocalNet {
    /// Create homes and genesis for `n` validators in `dir` (wiped first),
    /// by running `plume init` and `plume genesis new`.
    pub fn create(exe: &Path, dir: &Path, n: usize, base_port: u16) -> Result<LocalNet> {
        Self::create_in(exe, dir, n, base_port, None)
    }

    // Long by design: the operator's sequence (`plume init` per validator,
    // accounts, `plume genesis new`, config edits) read top to bottom.
    /// [`LocalNet::create`], optionally with each validator in its own
    /// network namespace: peers listen on the namespace's address, the API
    /// on 127.0.0.1 inside it (reached through [`LocalNet::in_ns`]).
    pub fn create_in(
        exe: &Path,
        dir: &Path,
        n: usize,
        base_port: u16,
        layout: Option<&NsLayout<'_>>,
    ) -> Result<LocalNet> {
        Self::create_with(exe, dir, n, base_port, layout, None)
    }

    /// [`LocalNet::create_in`] with a genesis compliance section
    /// (`plume genesis new --compliance`).
    pub fn create_with(
        exe: &Path,
        dir: &Path,
        n: usize,
        base_port: u16,
        layout: Option<&NsLayout<'_>>,
        compliance: Option<&plume_compliance::GenesisCompliance>,
    ) -> Result<LocalNet> {
        Self::create_full(exe, dir, n, base_port, layout, compliance, 0)
    }

    // Long by design: see create_in.
    /// [`LocalNet::create_with`] and `observers` observers (homes `o0`,
    /// ...; `plume init --role observer`, `genesis new --observer`), peer
    /// port `base_port + 50 + k`, API `base_port + 150 + k`.
    pub fn create_full(
        exe: &Path,
        dir: &Path,
        n: usize,
        base_port: u16,
        layout: Option<&NsLayout<'_>>,
        compliance: Option<&plume_compliance::GenesisCompliance>,
        observers: usize,
    ) -> Result<LocalNet> {
        if layout.is_some_and(|l| l.hosts.len() != n || l.addrs.len() != n) {
            bail!("namespace layout does not match {n} validators");
        }
        if layout.is_some() && observers > 0 {
            bail!("observers run in this network namespace only");
        }
        if observers > 16 {
            bail!("--observers: at most 16");
        }
        if n == 0 || n > 64 {
            bail!("--validators must be 1 to 64");
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir.join("accounts"))?;
        let ncores = std::thread::available_parallelism()
            .map(|c| c.get())
            .unwrap_or(1);
        let run = |args: &[String]| -> Result<()> {
            let out = Command::new(exe).args(args).stdin(Stdio::null()).output()?;
            if !out.status.success() {
                bail!(
                    "plume {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(())
        };
        let mut homes = Vec::new();
        let mut apis = Vec::new();
        let mut gargs: Vec<String> = [
            "genesis",
            "new",
            "--chain-id",
            "plume-devnet",
            "--view-timeout-ms",
            "500",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for i in 0..n {
            let home = dir.join(format!("v{i}"));
            let p2p = match layout {
                Some(l) => format!("{}:{}", l.addrs[i], base_port),
                None => format!("127.0.0.1:{}", base_port as usize + i),
            };
            let api = format!("127.0.0.1:{}", base_port as usize + 100 + i);
            // Spread the validators' roles over the cores.
            let placement = format!("{},{},{}", i % ncores, (i + 1) % ncores, (i + 1) % ncores);
            run(&[
                "init".into(),
                "--home".into(),
                home.display().to_string(),
                "--moniker".into(),
                format!("v{i}"),
                "--listen-addr".into(),
                p2p,
                "--api-addr".into(),
                api.clone(),
                "--map-size-gib".into(),
                "8".into(),
                "--placement".into(),
                placement,
            ])?;
            gargs.push("--validator".into());
            gargs.push(home.join("validator.json").display().to_string());
            homes.push(home);
            apis.push(api);
        }
        let mut obs = Vec::new();
        for k in 0..observers {
            let home = dir.join(format!("o{k}"));
            let api = format!("127.0.0.1:{}", base_port as usize + 150 + k);
            run(&[
                "init".into(),
                "--role".into(),
                "observer".into(),
                "--home".into(),
                home.display().to_string(),
                "--moniker".into(),
                format!("o{k}"),
                "--listen-addr".into(),
                format!("127.0.0.1:{}", base_port as usize + 50 + k),
                "--api-addr".into(),
                api.clone(),
                "--map-size-gib".into(),
                "8".into(),
            ])?;
            gargs.push("--observer".into());
            gargs.push(home.join("observer.json").display().to_string());
            obs.push(Observer {
                child: None,
                home,
                api,
            });
        }
        let accounts: Vec<SigningKey> = (0..DEVNET_ACCOUNTS).map(account_key).collect();
        for (i, k) in accounts.iter().enumerate() {
            keyfile::write_account_key(&dir.join("accounts").join(format!("{i}.key")), k, false)?;
            gargs.push("--alloc".into());
            gargs.push(format!(
                "{}={DEVNET_BALANCE}",
                k.public_key().address().to_hex()
            ));
        }
        if let Some(c) = compliance {
            let path = dir.join("compliance.json");
            std::fs::write(&path, serde_json::to_vec_pretty(c)?)?;
            gargs.push("--compliance".into());
            gargs.push(path.display().to_string());
        }
        let genesis_path = dir.join("genesis.json");
        gargs.push("--out".into());
        gargs.push(genesis_path.display().to_string());
        run(&gargs)?;
        for o in &obs {
            std::fs::copy(&genesis_path, o.home.join("genesis.json"))?;
        }
        for (i, h) in homes.iter().enumerate() {
            std::fs::copy(&genesis_path, h.join("genesis.json"))?;
            if let Some(l) = layout {
                let path = h.join("config.toml");
                let text = std::fs::read_to_string(&path)?;
                std::fs::write(&path, (l.edit_config)(i, text))?;
            }
        }
        Ok(LocalNet {
            children: (0..n).map(|_| None).collect(),
            homes,
            apis,
            chain_id: "plume-devnet".into(),
            genesis_path,
            accounts,
            netns: layout.map(|l| l.hosts.clone()),
            observers: obs,
            exe: exe.to_path_buf(),
        })
    }

    /// Start observer `k` (its log goes to HOME/node.log) and wait until
    /// its API answers.
    pub fn start_observer(&mut self, k: usize, timeout: Duration) -> Result<()> {
        let o = &mut self.observers[k];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(o.home.join("node.log"))?;
        let child = Command::new(&self.exe)
            .args(["--log-format", "json", "start", "--home"])
            .arg(&o.home)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting observer {k}"))?;
        o.child = Some(child);
        let deadline = Instant::now() + timeout;
        loop {
            if plume_client::http_get(&o.api, "/health").is_ok_and(|(s, _)| s == 200) {
                return Ok(());
            }
            if let Some(Ok(Some(st))) = o.child.as_mut().map(|c| c.try_wait()) {
                let path = o.home.join("node.log");
                let log = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                bail!(
                    "observer {k} exited ({st}); see {}; it ended with:\n{}",
                    path.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            if Instant::now() > deadline {
                bail!("observer {k} API {} did not come up", o.api);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL observer `k`.
    pub fn kill9_observer(&mut self, k: usize) {
        if let Some(mut c) = self.observers[k].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `plume_status` of observer `k`.
    pub fn observer_status(&self, k: usize) -> Result<Value> {
        Ok(plume_client::rpc(
            &self.observers[k].api,
            "plume_status",
            json!([]),
        )?)
    }

    /// Run `f` in validator `i`'s network namespace (on a short-lived
    /// thread that enters it), or here when there are none.
    pub fn in_ns<T: Send, E: Into<anyhow::Error> + Send>(
        &self,
        i: usize,
        f: impl FnOnce() -> std::result::Result<T, E> + Send,
    ) -> Result<T> {
        let Some(hosts) = &self.netns else {
            return f().map_err(Into::into);
        };
        let ns = &hosts[i];
        std::thread::scope(|s| {
            s.spawn(|| {
                plume_netstack::netns::enter(ns)
                    .with_context(|| format!("entering network namespace {ns}"))?;
                f().map_err(Into::into)
            })
            .join()
            .map_err(|_| anyhow!("thread in namespace {ns} panicked"))?
        })
    }

    /// Start validator `i` (its log goes to HOME/node.log).
    pub fn start(&mut self, i: usize) -> Result<()> {
        let home = &self.homes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("node.log"))?;
        let mut cmd = match &self.netns {
            // `ip netns exec` enters the namespace and execs plume (same pid).
            Some(hosts) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &hosts[i]]).arg(&self.exe);
                c
            }
            None => Command::new(&self.exe),
        };
        let child = cmd
            .args(["--log-format", "json", "start", "--home"])
            .arg(home)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting validator {i}"))?;
        self.children[i] = Some(child);
        Ok(())
    }

    /// SIGTERM validator `i` and wait up to `timeout` for it to exit;
    /// returns its exit status and how long it took (`None`: it did not
    /// exit in time and was killed).
    pub fn stop(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Option<(std::process::ExitStatus, Duration)> {
        let mut c = self.children[i].take()?;
        let t0 = Instant::now();
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        while t0.elapsed() < timeout {
            if let Ok(Some(st)) = c.try_wait() {
                return Some((st, t0.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// SIGKILL validator `i` (no clean shutdown).
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start all and wait until every API answers.
    pub fn start_all(&mut self, timeout: Duration) -> Result<()> {
        for i in 0..self.homes.len() {
            self.start(i)?;
        }
        self.wait_ready(timeout)
    }

    /// Wait until every running validator's API answers `/health`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for i in 0..self.apis.len() {
            if self.children[i].is_none() {
                continue;
            }
            loop {
                let api = &self.apis[i];
                if self
                    .in_ns(i, || plume_client::http_get(api, "/health"))
                    .is_ok_and(|(s, _)| s == 200)
                {
                    break;
                }
                if let Some(c) = self.children[i].as_mut() {
                    if let Ok(Some(st)) = c.try_wait() {
                        let path = self.homes[i].join("node.log");
                        let log = std::fs::read_to_string(&path).unwrap_or_default();
                        let tail: Vec<&str> = log.lines().rev().take(3).collect();
                        bail!(
                            "validator {i} exited ({st}); see {}; it ended with:\n{}",
                            path.display(),
                            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                        );
                    }
                }
                if Instant::now() > deadline {
                    bail!("validator {i} API {} did not come up", self.apis[i]);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// `plume_status` of validator `i`.
    pub fn status(&self, i: usize) -> Result<Value> {
        let api = &self.apis[i];
        self.in_ns(i, || plume_client::rpc(api, "plume_status", json!([])))
    }

    /// Wait until all running validators report the same height, at least
    /// `min_height`, and return (height, roots).
    pub fn converge(
        &self,
        min_height: u64,
        timeout: Duration,
    ) -> Result<(u64, Vec<(u64, String)>)> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut roots = Vec::new();
            for i in 0..self.apis.len() {
                if self.children[i].is_none() {
                    continue;
                }
                if let Ok(s) = self.status(i) {
                    roots.push((
                        s["height"].as_u64().unwrap_or(0),
                        s["state_root"].as_str().unwrap_or("").to_string(),
                    ));
                }
            }
            let live = self.children.iter().filter(|c| c.is_some()).count();
            if roots.len() == live && !roots.is_empty() {
                let h = roots[0].0;
                if h >= min_height && roots.iter().all(|r| r.0 == h) {
                    return Ok((h, roots));
                }
            }
            if Instant::now() > deadline {
                return Err(anyhow!("validators did not converge: {roots:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
