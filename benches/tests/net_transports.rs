//! `plume bench net --transport tcp,udp,af_xdp,dpdk` at a tiny scale: the
//! JSON report has a row per requested transport with positive figures,
//! or, where the host or build cannot run it, a skip with the reason. As
//! root (CI), tcp and udp must run, and af_xdp / dpdk too when this crate
//! was built with those features. The DPDK far end runs as a child
//! process: this test binary again, which serves it (see the first line of
//! the test). Checks the command and its output, never speed.

use plume_benches::net_bypass::{serve_peer_from_env, PeerLauncher, TRANSPORTS};
use plume_benches::{net, Options};
use serde_json::Value;

const TEST: &str = "bench_net_has_a_row_per_requested_transport";

#[test]
fn bench_net_has_a_row_per_requested_transport() {
    // Started again as the far end of the DPDK pair: serve it and stop.
    if let Some(served) = serve_peer_from_env() {
        served.expect("far end of the DPDK pair");
        return;
    }
    let opts = Options {
        core: None,
        scale: 0.001,
        // Repeated and comma-separated, as the CLI passes them.
        transports: vec!["dpdk,udp".into(), "tcp".into(), "af-xdp".into()],
        ..Options::default()
    };
    let launcher = PeerLauncher {
        exe: std::env::current_exe().expect("test executable"),
        args: vec![TEST.into(), "--exact".into(), "--nocapture".into()],
    };
    let report = net::run_with(&opts, &launcher).expect("bench net");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.json");
    report.write_json(&path).unwrap();
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let table = report.to_table();

    assert_eq!(v["machine"]["transports"], "tcp,udp,af_xdp,dpdk");
    // The TCP suite still runs (loopback always).
    for k in [
        "loopback_plume_enc_64b_msgs_per_s",
        "loopback_tokio_64kib_mb_per_s",
        "loopback_plume_enc_rtt_64b_p99_us",
    ] {
        let x = v["figures"][k].as_f64().unwrap_or_else(|| panic!("{k}"));
        assert!(x > 0.0, "{k} = {x}");
    }

    let root = plume_netstack::netns::unavailable().is_none();
    for t in TRANSPORTS {
        let key = format!("veth_enc_{t}");
        if let Some(why) = v["machine"][&key].as_str() {
            assert!(why.starts_with("skipped: "), "{key}: {why}");
            let may_skip = match *t {
                _ if !root => true,
                "af_xdp" => !cfg!(feature = "af-xdp"),
                "dpdk" => !cfg!(feature = "dpdk"),
                _ => false,
            };
            assert!(may_skip, "{key} must run here (root): {why}");
            eprintln!("SKIPPED {key}: {why}");
            continue;
        }
        for size in ["64b", "512b", "64kib"] {
            for unit in ["msgs_per_s", "mb_per_s"] {
                let k = format!("{key}_{size}_{unit}");
                let x = v["figures"][&k].as_f64().unwrap_or_else(|| panic!("{k}"));
                assert!(x.is_finite() && x > 0.0, "{k} = {x}");
            }
        }
        let rtt = &v["latencies"][format!("{key}_rtt_64b")];
        assert!(rtt["samples"].as_u64().unwrap() >= 10, "{key}: {rtt}");
        assert!(rtt["p99_ns"].as_u64().unwrap() >= rtt["p50_ns"].as_u64().unwrap());
        let mode = v["machine"][format!("{key}_mode")].as_str().unwrap();
        let want = match *t {
            "tcp" => "kernel tcp",
            "udp" => "udp",
            other => other,
        };
        assert!(mode.contains(want), "{key}: mode {mode:?}");
        assert!(table.contains(&format!("{key}_64b_msgs_per_s")), "{table}");
    }
}
