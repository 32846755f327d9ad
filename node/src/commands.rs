//! Command implementations of the `plume` binary that are more than glue:
//! `plume init`, the live transport probes of `plume tune`, and running the
//! sibling binaries of `plume bench` and `plume sim`.

use crate::config::{Config, CONFIG_FILE};
use crate::keys::{validator_file, NodeKeys};
use anyhow::{bail, Context, Result};
use plume_client::fsutil::write_atomic;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where `name` (a sibling binary such as `plume-bench`) is: beside the
/// running `plume`, else on `PATH`.
pub fn sibling_path(name: &str) -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    })
}

/// Replace this process with sibling binary `name` run with `args` (its
/// exit code and signals are then the caller's). `plume bench` and
/// `plume sim` are separate binaries so the validator does not link the
/// benchmark and simulator code (docs/adr/0003).
pub fn run_sibling(name: &str, args: &[OsString]) -> Result<ExitCode> {
    let Some(path) = sibling_path(name) else {
        let here = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "plume".into());
        bail!(
            "`{name}` is not installed beside {here} nor on PATH; build it with \
             `cargo build --release -p {}` (scripts/devnet.sh builds every binary)",
            if name == "plume-bench" {
                "plume-benches"
            } else {
                "plume-sim"
            }
        );
    };
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(&path).args(args).exec();
    Err(anyhow::Error::new(err).context(format!("running {}", path.display())))
}

/// `plume init`: config, keys and validator.json in `home`.
pub fn init(home: PathBuf, cfg: Config, force: bool) -> Result<()> {
    let (moniker, listen_addr) = (cfg.node.moniker.clone(), cfg.node.listen_addr.clone());
    let cfg_path = home.join(CONFIG_FILE);
    // Check the settings before touching the disk.
    Config::parse(&cfg.to_commented_toml(), &cfg_path)?;
    if cfg_path.exists() && !force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            cfg_path.display()
        );
    }
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    if cfg.node.role == crate::config::Role::Observer {
        return init_observer(&home, &cfg, &cfg_path, force);
    }
    let keys = NodeKeys::generate();
    keys.save(&home, force)?;
    write_atomic(&cfg_path, cfg.to_commented_toml().as_bytes(), 0o644)
        .with_context(|| format!("writing {}", cfg_path.display()))?;
    let info = keys.validator_info(&moniker, &listen_addr, 1);
    let vpath = validator_file(&home);
    write_atomic(&vpath, &serde_json::to_vec_pretty(&info)?, 0o644)
        .with_context(|| format!("writing {}", vpath.display()))?;
    println!("initialised {}", home.display());
    println!("  config:        {}", cfg_path.display());
    println!(
        "  validator:     {} (send this to the genesis coordinator)",
        vpath.display()
    );
    println!("  network key:   {}", info.network_key);
    println!("  consensus key: {}", info.consensus_key);
    Ok(())
}

/// `plume init --role observer`: config, the network key alone (an
/// observer holds no voting key) and `observer.json` for genesis.
fn init_observer(home: &Path, cfg: &Config, cfg_path: &Path, force: bool) -> Result<()> {
    let network = plume_crypto::ed25519::SigningKey::generate(&mut rand::rngs::OsRng);
    crate::keys::save_network_key(home, &network, force)?;
    write_atomic(cfg_path, cfg.to_commented_toml().as_bytes(), 0o644)
        .with_context(|| format!("writing {}", cfg_path.display()))?;
    let info = crate::keys::ObserverInfo {
        moniker: cfg.node.moniker.clone(),
        network_key: network.public_key().to_hex(),
    };
    let opath = home.join(crate::keys::OBSERVER_FILE);
    write_atomic(&opath, &serde_json::to_vec_pretty(&info)?, 0o644)
        .with_context(|| format!("writing {}", opath.display()))?;
    println!("initialised observer {}", home.display());
    println!("  config:      {}", cfg_path.display());
    println!(
        "  observer:    {} (send this to the genesis coordinator: genesis new --observer)",
        opath.display()
    );
    println!("  network key: {}", info.network_key);
    Ok(())
}

/// Live attempts for `plume tune`: can this process really use each
/// kernel-bypass transport it was built with?
pub fn transport_probes() -> Vec<(String, Result<String, String>)> {
    let mut v = Vec::new();
    #[cfg(feature = "af-xdp")]
    v.push((
        "af_xdp".to_string(),
        plume_netstack::dgram::afxdp::host_support()
            .map(|()| {
                "created an XSKMAP, loaded an XDP program and opened an AF_XDP socket".to_string()
            })
            .map_err(|e| e.to_string()),
    ));
    #[cfg(not(feature = "af-xdp"))]
    v.push((
        "af_xdp".to_string(),
        Err("this plume binary was built without the `af-xdp` feature".to_string()),
    ));
    #[cfg(not(feature = "dpdk"))]
    v.push((
        "dpdk".to_string(),
        Err(
            "this plume binary was built without the `dpdk` feature (needs libdpdk-dev)"
                .to_string(),
        ),
    ));
    v
}
