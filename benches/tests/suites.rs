//! The `plume-bench` suites at tiny scales: each command runs and writes
//! its JSON with the named figures. Checks the commands and their output,
//! never speed. The cluster suites run the `plume` binary that cargo builds
//! beside `plume-bench` (the workspace test run builds both).

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn bench_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_plume-bench"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = Command::new(bench_exe()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "plume-bench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn fails(args: &[&str]) -> String {
    let out = Command::new(bench_exe()).args(args).output().unwrap();
    assert!(!out.status.success(), "plume-bench {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn bench_crypto_writes_json_with_the_named_figures() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("crypto.json");
    // A tiny scale: this checks the command and its output, not speed.
    ok(&["crypto", "--scale", "0.01", "--json", s(&json)]);
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for k in [
        "sha256_64b_gb_per_s",
        "sha256_1mib_gb_per_s",
        "ed25519_verify_per_s",
        "ed25519_batch64_verify_per_s",
        "ed25519_batch256_verify_per_s",
        "ed25519_batch1024_verify_per_s",
        "bls_sign_us",
        "bls_verify_us",
        "bls_aggregate_4_us",
        "bls_aggregate_16_us",
        "bls_aggregate_100_us",
        "bls_qc_verify_4_us",
        "bls_qc_verify_16_us",
        "bls_qc_verify_100_us",
    ] {
        let x = v["figures"][k]
            .as_f64()
            .unwrap_or_else(|| panic!("missing {k}"));
        assert!(x.is_finite() && x > 0.0, "{k} = {x}");
    }
    assert!(
        v["latencies"]["bls_qc_verify_100"]["p99_ns"]
            .as_u64()
            .unwrap()
            > 0
    );
    let err = fails(&["nonsense"]);
    assert!(err.contains("unknown benchmark suite"), "{err}");
}

#[test]
fn bench_cluster_and_sweep_write_json_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("cluster.json");
    let out = std::process::Command::new(bench_exe())
        .args([
            "cluster",
            "--validators",
            "4",
            "--rate",
            "100",
            "--duration",
            "3",
            "--tx-size",
            "512",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let f = &v["figures"];
    assert!(f["finalized"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(f["state_roots_equal"], 1.0);
    assert!(f["tx_bytes_mean"].as_f64().unwrap() >= 512.0);
    for k in [
        "finality_p50_ms",
        "finality_p99_ms",
        "finality_p999_ms",
        "node0_cpu_percent",
        "node3_peak_rss_mib",
        "stage_exec_busy_percent_per_node",
        "view_changes",
        "node2_rss_growth_percent",
    ] {
        assert!(f[k].as_f64().is_some(), "missing {k}");
    }
    assert!(f["node0_peak_rss_mib"].as_f64().unwrap() > 1.0);
    // A sweep with an impossible bound stops after its first run.
    let json = dir.path().join("sweep.json");
    let out = std::process::Command::new(bench_exe())
        .args([
            "sweep",
            "--rate",
            "50",
            "--duration",
            "2",
            "--bound-ms",
            "0.001",
            "--param",
            "batch_delay_ms=2",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(
        v["figures"]["max_sustainable_tx_per_s"].as_f64().is_some(),
        "{v}"
    );
    let svg = std::fs::read_to_string(json.with_extension("svg")).unwrap();
    assert!(svg.contains("<polyline"));
}
