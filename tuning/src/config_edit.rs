//! `plume tune --write`: put a plan into `HOME/config.toml`'s `[placement]`
//! section, leaving every other line (comments included) as it was.
//!
//! The edit is textual, then checked: the old and new files are parsed with
//! `toml`, and everything outside the three placement keys must be equal
//! and the keys must hold the plan. Anything the line editor cannot handle
//! (a dotted `placement.x = ...` key, an inline table) fails that check and
//! is reported, never written. The file is replaced atomically: temporary
//! file, fsync, rename, fsync of the directory.

use crate::plan::Plan;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Config file name inside a node home (as in the node's config module).
pub const CONFIG_FILE: &str = "config.toml";
/// Largest config file accepted.
pub const CONFIG_BYTES_MAX: u64 = 1 << 20;
/// The keys of `[placement]` the plan sets, in file order.
pub const PLACEMENT_KEYS: [&str; 3] = ["consensus_cores", "sigverify_cores", "exec_cores"];

/// Why the config could not be edited.
#[derive(Debug, thiserror::Error)]
pub enum ConfigEditError {
    /// Reading the file failed.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML (or too large); it is left alone.
    #[error("{0}")]
    Invalid(String),
    /// The placement is written in a form the editor does not rewrite.
    #[error("could not edit [placement] safely ({0}); set these lines by hand")]
    Unsupported(String),
    /// Writing the new file failed; the old one is intact.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// The three lists a plan writes.
pub fn plan_lists(plan: &Plan) -> [(&'static str, Vec<u32>); 3] {
    [
        (PLACEMENT_KEYS[0], plan.consensus_cores.clone()),
        (PLACEMENT_KEYS[1], plan.sigverify_cores.clone()),
        (PLACEMENT_KEYS[2], plan.exec_cores.clone()),
    ]
}

fn list_line(key: &str, cores: &[u32]) -> String {
    let items: Vec<String> = cores.iter().map(u32::to_string).collect();
    format!("{key} = [{}]\n", items.join(", "))
}

/// Name of the table a header line opens (`[placement]` -> `placement`),
/// `None` if the line is not a header.
fn header_name(line: &str) -> Option<String> {
    let t = line.trim();
    if !t.starts_with('[') {
        return None;
    }
    let t = t.trim_start_matches('[');
    let end = t.find(']')?;
    Some(t[..end].trim().to_string())
}

/// If `line` assigns `key`, the text after `=`.
fn assigns<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let t = line.trim_start();
    let rest = t.strip_prefix(key)?;
    rest.trim_start().strip_prefix('=')
}

/// Bracket depth change of a value, ignoring a trailing `# comment`.
fn bracket_delta(text: &str) -> i64 {
    let code = text.split('#').next().unwrap_or("");
    code.matches('[').count() as i64 - code.matches(']').count() as i64
}

/// A placement key and its list (`None`: not set).
pub type PlacementEntry = (String, Option<Vec<u32>>);

/// The current `[placement]` lists of a config text.
pub fn current_placement(text: &str) -> Result<[PlacementEntry; 3], ConfigEditError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| ConfigEditError::Invalid(format!("config.toml is not valid TOML: {e}")))?;
    let section = table.get("placement").and_then(|v| v.as_table());
    Ok(PLACEMENT_KEYS.map(|k| {
        let v = section
            .and_then(|s| s.get(k))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_integer().and_then(|i| u32::try_from(i).ok()))
                    .collect()
            });
        (k.to_string(), v)
    }))
}

/// Return `text` with `[placement]` holding the plan's lists.
pub fn set_placement(text: &str, plan: &Plan) -> Result<String, ConfigEditError> {
    let before: toml::Table = text.parse().map_err(|e| {
        ConfigEditError::Invalid(format!(
            "config.toml is not valid TOML, not editing it: {e}"
        ))
    })?;
    let lists = plan_lists(plan);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let start = lines
        .iter()
        .position(|l| header_name(l).as_deref() == Some("placement"));
    let mut out = String::with_capacity(text.len() + 128);
    match start {
        None => {
            out.push_str(text);
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(
                "\n[placement]\n# Written by `plume tune --write` from this host's topology.\n",
            );
            for (k, v) in &lists {
                out.push_str(&list_line(k, v));
            }
        }
        Some(start) => {
            let end = lines[start + 1..]
                .iter()
                .position(|l| header_name(l).is_some())
                .map_or(lines.len(), |p| start + 1 + p);
            let mut done = [false; 3];
            let mut body: Vec<String> = Vec::new();
            let mut i = start + 1;
            while i < end {
                let line = lines[i];
                let hit = PLACEMENT_KEYS
                    .iter()
                    .position(|k| assigns(line, k).is_some());
                match hit {
                    Some(k) => {
                        let mut depth =
                            bracket_delta(assigns(line, PLACEMENT_KEYS[k]).unwrap_or(""));
                        while depth > 0 && i + 1 < end {
                            i += 1;
                            depth += bracket_delta(lines[i]);
                        }
                        let indent: String =
                            line.chars().take_while(|c| c.is_whitespace()).collect();
                        body.push(format!("{indent}{}", list_line(lists[k].0, &lists[k].1)));
                        done[k] = true;
                    }
                    None => body.push(line.to_string()),
                }
                i += 1;
            }
            // Missing keys go after the section's last non-blank line.
            let insert_at = body
                .iter()
                .rposition(|l| !l.trim().is_empty())
                .map_or(0, |p| p + 1);
            if let Some(last) = insert_at.checked_sub(1).and_then(|p| body.get_mut(p)) {
                if !last.ends_with('\n') {
                    last.push('\n');
                }
            }
            let missing: Vec<String> = (0..3)
                .filter(|&k| !done[k])
                .map(|k| list_line(lists[k].0, &lists[k].1))
                .collect();
            body.splice(insert_at..insert_at, missing);
            for l in &lines[..=start] {
                out.push_str(l);
            }
            if !lines[start].ends_with('\n') {
                out.push('\n');
            }
            for l in &body {
                out.push_str(l);
            }
            for l in &lines[end..] {
                out.push_str(l);
            }
        }
    }
    verify(&before, &out, plan)?;
    Ok(out)
}

/// Everything but the three keys is unchanged, and the keys hold the plan.
fn verify(before: &toml::Table, after_text: &str, plan: &Plan) -> Result<(), ConfigEditError> {
    let after: toml::Table = after_text.parse().map_err(|e| {
        ConfigEditError::Unsupported(format!("the edited file does not parse: {e}"))
    })?;
    let strip = |t: &toml::Table| {
        let mut t = t.clone();
        if let Some(p) = t.get_mut("placement").and_then(|p| p.as_table_mut()) {
            for k in PLACEMENT_KEYS {
                p.remove(k);
            }
            if p.is_empty() {
                t.remove("placement");
            }
        }
        t
    };
    if strip(before) != strip(&after) {
        return Err(ConfigEditError::Unsupported(
            "other settings would have changed".into(),
        ));
    }
    let got = current_placement(after_text)?;
    for ((k, want), (_, have)) in plan_lists(plan).iter().zip(got.iter()) {
        if have.as_ref() != Some(want) {
            return Err(ConfigEditError::Unsupported(format!(
                "placement.{k} reads back as {have:?}, not {want:?}"
            )));
        }
    }
    Ok(())
}

/// Rewrite `HOME/config.toml` with the plan; returns the file's path.
/// Never touches anything but that file (and its temporary sibling).
pub fn write_placement(home: &Path, plan: &Plan) -> Result<PathBuf, ConfigEditError> {
    let path = home.join(CONFIG_FILE);
    let read_err = |source| ConfigEditError::Read {
        path: path.clone(),
        source,
    };
    let meta = std::fs::metadata(&path).map_err(read_err)?;
    if meta.len() > CONFIG_BYTES_MAX {
        return Err(ConfigEditError::Invalid(format!(
            "{}: larger than {CONFIG_BYTES_MAX} bytes",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path).map_err(read_err)?;
    let new = set_placement(&text, plan)?;
    let tmp = home.join(format!(".{CONFIG_FILE}.tune-{}", std::process::id()));
    let write_err = |source| ConfigEditError::Write {
        path: path.clone(),
        source,
    };
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.set_permissions(meta.permissions())?;
        file.write_all(new.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(home)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(write_err)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file `plume init` writes (node/src/config.rs `to_commented_toml`).
    const NODE_CONFIG: &str = r#"# Plume node configuration. Consensus rules live in genesis.json, not here.
# Unknown keys are errors.

[node]
# Human-readable name, shown in logs and to peers.
moniker = "v0"
# Address this node listens on for peer links (validators connect here).
listen_addr = "127.0.0.1:26600"

[api]
# JSON-RPC over HTTP/WebSocket, /metrics and /health.
listen_addr = "127.0.0.1:26700"

[storage]
# LMDB map size in GiB: address space reserved for the store, not disk used.
# When the store fills up the node stops with "store full"; raise this.
map_size_gib = 64

[placement]
# Which CPU cores run which roles. Empty lists: chosen from the detected core
# count (2 cores: core 0 network+consensus+storage, core 1 sigverify+execution).
# `plume tune --write` fills these from the host's topology.
consensus_cores = []
sigverify_cores = []
exec_cores = []
"#;

    fn plan(c: &[u32], s: &[u32], e: &[u32]) -> Plan {
        Plan {
            consensus_cores: c.to_vec(),
            sigverify_cores: s.to_vec(),
            exec_cores: e.to_vec(),
            api_cores: vec![],
            housekeeping_cores: vec![],
            nic_irq_cores: vec![],
            idle_siblings: vec![],
            hot_roles_share_core: false,
            spans_numa_nodes: false,
            notes: vec![],
        }
    }

    #[test]
    fn rewrites_only_the_three_lines() {
        let p = plan(&[1], &[2, 3, 4], &[5, 6]);
        let out = set_placement(NODE_CONFIG, &p).unwrap();
        let want = NODE_CONFIG
            .replace("consensus_cores = []", "consensus_cores = [1]")
            .replace("sigverify_cores = []", "sigverify_cores = [2, 3, 4]")
            .replace("exec_cores = []", "exec_cores = [5, 6]");
        assert_eq!(out, want);
        // Idempotent.
        assert_eq!(set_placement(&out, &p).unwrap(), out);
    }

    #[test]
    fn edge_shapes() {
        let p = plan(&[0], &[1], &[1]);
        // No [placement] section: appended, rest byte-identical.
        let no_section = NODE_CONFIG
            .split("[placement]")
            .next()
            .unwrap()
            .trim_end()
            .to_string();
        let out = set_placement(&no_section, &p).unwrap();
        assert!(out.starts_with(&no_section));
        assert!(out.ends_with("[placement]\n# Written by `plume tune --write` from this host's topology.\nconsensus_cores = [0]\nsigverify_cores = [1]\nexec_cores = [1]\n"), "{out}");
        // Multi-line array, a missing key, a section after placement.
        let text = "[placement]\nconsensus_cores = [\n  7, # old\n  8,\n]\n# keep me\n\n[node]\nmoniker = \"x\"\n";
        let out = set_placement(text, &p).unwrap();
        assert_eq!(
            out,
            "[placement]\nconsensus_cores = [0]\n# keep me\nsigverify_cores = [1]\nexec_cores = [1]\n\n[node]\nmoniker = \"x\"\n"
        );
        // Forms the line editor does not rewrite are refused, not mangled.
        let dotted = "placement.consensus_cores = [3]\n[node]\nmoniker = \"x\"\n";
        assert!(matches!(
            set_placement(dotted, &p),
            Err(ConfigEditError::Unsupported(_))
        ));
        assert!(matches!(
            set_placement("[node\n", &p),
            Err(ConfigEditError::Invalid(_))
        ));
    }

    #[test]
    fn writes_atomically_into_a_home() {
        let home = tempfile::tempdir().unwrap();
        let path = home.path().join(CONFIG_FILE);
        std::fs::write(&path, NODE_CONFIG).unwrap();
        let p = plan(&[0], &[1], &[1]);
        assert_eq!(write_placement(home.path(), &p).unwrap(), path);
        let text = std::fs::read_to_string(&path).unwrap();
        let cur = current_placement(&text).unwrap();
        assert_eq!(cur[0], ("consensus_cores".to_string(), Some(vec![0])));
        assert_eq!(cur[2], ("exec_cores".to_string(), Some(vec![1])));
        assert!(text.contains("moniker = \"v0\"") && text.contains("# Unknown keys are errors."));
        let names: Vec<_> = std::fs::read_dir(home.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from(CONFIG_FILE)],
            "no temporary left"
        );
        // A home without a config is an error, and nothing is created.
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            write_placement(empty.path(), &p),
            Err(ConfigEditError::Read { .. })
        ));
        assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
    }
}
