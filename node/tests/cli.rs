//! The operator's first contact, run as the operator runs it: the `plume`
//! binary with `init`, `keys show`, `genesis new` and `genesis validate`.

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn plume(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plume"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run plume")
}

fn ok(args: &[&str]) -> String {
    let out = plume(args);
    assert!(
        out.status.success(),
        "plume {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run and expect failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = plume(args);
    assert!(!out.status.success(), "plume {args:?} should fail");
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8(out.stderr).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Net {
    dir: tempfile::TempDir,
    homes: Vec<PathBuf>,
}

fn init_net(n: usize) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let homes: Vec<PathBuf> = (0..n).map(|i| dir.path().join(format!("v{i}"))).collect();
    for (i, h) in homes.iter().enumerate() {
        ok(&[
            "init",
            "--home",
            s(h),
            "--moniker",
            &format!("v{i}"),
            "--listen-addr",
            &format!("127.0.0.1:{}", 27000 + i),
        ]);
    }
    Net { dir, homes }
}

fn genesis_new(net: &Net, extra: &[&str]) -> PathBuf {
    let out = net.dir.path().join("genesis.json");
    let mut args: Vec<String> = vec![
        "genesis".into(),
        "new".into(),
        "--chain-id".into(),
        "plume-test".into(),
    ];
    for h in &net.homes {
        args.push("--validator".into());
        args.push(h.join("validator.json").to_str().unwrap().into());
    }
    args.push("--out".into());
    args.push(s(&out).into());
    args.extend(extra.iter().map(|x| x.to_string()));
    let refs: Vec<&str> = args.iter().map(|a| a.as_str()).collect();
    ok(&refs);
    out
}

#[test]
fn init_writes_private_keys_and_refuses_to_overwrite() {
    let net = init_net(1);
    let h = &net.homes[0];
    for f in ["keys/network.key", "keys/consensus.key"] {
        let mode = std::fs::metadata(h.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let cfg = std::fs::read_to_string(h.join("config.toml")).unwrap();
    assert!(cfg.contains("# "), "config has comments");
    let before = std::fs::read(h.join("keys/consensus.key")).unwrap();
    let err = fails(&["init", "--home", s(h)]);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(h.join("keys/consensus.key")).unwrap(),
        before,
        "key untouched"
    );
    ok(&["init", "--home", s(h), "--force"]);
    assert_ne!(
        std::fs::read(h.join("keys/consensus.key")).unwrap(),
        before,
        "--force replaces"
    );
}

#[test]
fn keys_show_matches_validator_json() {
    let net = init_net(1);
    let h = &net.homes[0];
    let shown: Value =
        serde_json::from_str(&ok(&["keys", "show", "--home", s(h), "--json"])).unwrap();
    let file: Value =
        serde_json::from_slice(&std::fs::read(h.join("validator.json")).unwrap()).unwrap();
    for k in ["consensus_key", "network_key", "moniker", "address"] {
        assert_eq!(shown[k], file[k], "{k}");
    }
    assert_eq!(shown["proof_of_possession"].as_str().unwrap().len(), 192);
    let human = ok(&["keys", "show", "--home", s(h)]);
    assert!(human.contains(file["consensus_key"].as_str().unwrap()));
}

#[test]
fn genesis_new_then_validate() {
    let net = init_net(4);
    let addr = "ab".repeat(32);
    let g = genesis_new(
        &net,
        &[
            "--alloc",
            &format!("{addr}=1000000"),
            "--genesis-time-ms",
            "1700000000000",
        ],
    );
    let out = ok(&["genesis", "validate", s(&g)]);
    assert!(
        out.contains("valid")
            && out.contains("4 validators")
            && out.contains("quorum power 3 of 4"),
        "{out}"
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&g).unwrap()).unwrap();
    assert_eq!(v["genesis_time_ms"], 1700000000000u64);
    assert_eq!(v["alloc"][0]["amount"], "1000000");
    // Refuses to overwrite.
    let err = fails(&[
        "genesis",
        "new",
        "--chain-id",
        "x",
        "--validator",
        s(&net.homes[0].join("validator.json")),
        "--out",
        s(&g),
    ]);
    assert!(err.contains("already exists"), "{err}");
}

/// Edit a valid genesis and check `genesis validate` names the problem.
#[test]
fn genesis_validate_rejects_bad_files_naming_the_field() {
    let net = init_net(3);
    let g = genesis_new(&net, &[]);
    let good: Value = serde_json::from_slice(&std::fs::read(&g).unwrap()).unwrap();
    let other_pop = good["validators"][1]["proof_of_possession"].clone();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "zero validators",
            Box::new(|v| v["validators"] = Value::Array(vec![])),
            "at least one validator",
        ),
        (
            "duplicate validator",
            Box::new(|v| {
                let first = v["validators"][0].clone();
                v["validators"].as_array_mut().unwrap().push(first);
            }),
            "validators[3].consensus_key: duplicate validator",
        ),
        (
            "bad pop",
            Box::new(move |v| v["validators"][0]["proof_of_possession"] = other_pop.clone()),
            "validators[0].proof_of_possession",
        ),
        (
            "bad key encoding",
            Box::new(|v| v["validators"][2]["consensus_key"] = Value::String("zz".repeat(48))),
            "validators[2].consensus_key",
        ),
        (
            "short network key",
            Box::new(|v| v["validators"][1]["network_key"] = Value::String("ab".into())),
            "validators[1].network_key",
        ),
        (
            "unknown field",
            Box::new(|v| v["params"]["colour"] = Value::String("blue".into())),
            "unknown field `colour`",
        ),
        (
            "missing field",
            Box::new(|v| drop(v.as_object_mut().unwrap().remove("chain_id"))),
            "missing field `chain_id`",
        ),
        (
            "bad alloc",
            Box::new(|v| {
                v["alloc"] = serde_json::json!([{"address": "ab".repeat(32), "amount": "-5"}]);
            }),
            "alloc[0].amount",
        ),
        (
            "bad chain id",
            Box::new(|v| v["chain_id"] = Value::String("Plume Main".into())),
            "chain_id",
        ),
    ];
    for (name, edit, needle) in cases {
        let mut v = good.clone();
        edit(&mut v);
        let p = net
            .dir
            .path()
            .join(format!("{}.json", name.replace(' ', "_")));
        std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        let err = fails(&["genesis", "validate", s(&p)]);
        assert!(
            err.contains(needle),
            "{name}: {err:?} should contain {needle:?}"
        );
        assert!(err.contains(s(&p)), "{name}: {err:?} should name the file");
    }
    let p = net.dir.path().join("not-json.json");
    std::fs::write(&p, b"{ nope").unwrap();
    assert!(fails(&["genesis", "validate", s(&p)]).contains("not-json.json"));
}

#[test]
fn malformed_config_and_key_files_are_named() {
    let net = init_net(1);
    let h = &net.homes[0];
    let cfg = h.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("map_size_gib = 64", "map_size_gib = -1")).unwrap();
    let err = fails(&["keys", "show", "--home", s(h)]);
    assert!(
        err.contains("config.toml") && err.contains("map_size_gib"),
        "{err}"
    );
    std::fs::write(&cfg, text).unwrap();
    let key = h.join("keys/network.key");
    std::fs::write(&key, b"{\"type\":\"ed25519\",\"secret\":\"00\"}").unwrap();
    let err = fails(&["keys", "show", "--home", s(h)]);
    assert!(
        err.contains("network.key") && err.contains("secret"),
        "{err}"
    );
    std::fs::write(&key, b"garbage").unwrap();
    let err = fails(&["keys", "show", "--home", s(h)]);
    assert!(err.contains("network.key"), "{err}");
}

#[test]
fn plume_bench_and_plume_sim_run_their_sibling_binaries() {
    // cargo builds every package's binaries into one directory; `plume`
    // finds `plume-bench` and `plume-sim` beside itself.
    let dir = Path::new(env!("CARGO_BIN_EXE_plume")).parent().unwrap();
    if !dir.join("plume-bench").is_file() || !dir.join("plume-sim").is_file() {
        // Built alone (cargo test -p plume-node): the error says what to do.
        let err = fails(&["bench", "crypto"]);
        assert!(
            err.contains("plume-bench") && err.contains("cargo build"),
            "{err}"
        );
        return;
    }
    // The suite name reaches plume-bench, whose error comes back.
    let err = fails(&["bench", "nonsense"]);
    assert!(err.contains("unknown benchmark suite"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_plume"))
        .args(["bench", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--scale"));
    let out = Command::new(env!("CARGO_BIN_EXE_plume"))
        .args(["sim", "--seeds", "3", "--validators", "4"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
