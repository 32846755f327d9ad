//! Validator networks whose peer links run over the datagram transports:
//! four `plume start` processes, each in its own network namespace on a
//! bridged segment, with `network.transport = "af_xdp"` and `"dpdk"`
//! (net_af_packet vdev, `--no-huge`); and four over kernel UDP, also in
//! namespaces, with every 10th datagram dropped by iptables. Each must finalize blocks and
//! transactions with equal state roots. The namespace runs need root and
//! skip with a message otherwise.

mod support;

use plume_client::txbuild::{self, Fees};
use plume_client::{http_get, rpc};
use plume_netstack::netns::{self, Lab};
use plume_node::devnet::{LocalNet, NsLayout};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const PORT: u16 = 26600;
const TXS: u64 = 20;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_plume"))
}

fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Start, wait for blocks, push `TXS` transfers through validator 0 and
/// wait until validator 3 has them final; check roots, logs and counters.
fn exercise(net: &mut LocalNet, transport: &str, lossy: bool) {
    net.start_all(Duration::from_secs(60)).unwrap();
    let (h, roots) = net.converge(3, Duration::from_secs(90)).unwrap();
    assert!(h >= 3);
    assert!(roots.iter().all(|r| r.1 == roots[0].1), "{roots:?}");
    let to = net.accounts[2].public_key().address();
    let mut hashes = Vec::new();
    for seq in 0..TXS {
        let tx = txbuild::transfer(
            &net.chain_id,
            &net.accounts[1],
            seq,
            &to,
            7,
            None,
            Fees::default(),
            u64::MAX,
        );
        let api = net.apis[0].clone();
        let v = net
            .in_ns(0, || {
                rpc(
                    &api,
                    "plume_submitTransaction",
                    json!([hex::encode(tx.to_bytes())]),
                )
            })
            .unwrap();
        hashes.push(v["hash"].as_str().unwrap().to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for hash in &hashes {
        loop {
            let api = net.apis[3].clone();
            let got = net.in_ns(3, || rpc(&api, "plume_getTransaction", json!([hash])));
            if let Ok(v) = got {
                assert_eq!(v["receipt"]["status"], "Success", "{v}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{transport}: transaction {hash} not final on validator 3"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let (h2, roots) = net.converge(h + 1, Duration::from_secs(60)).unwrap();
    assert!(h2 > h);
    assert!(roots.iter().all(|r| r.1 == roots[0].1), "{roots:?}");
    let mut retransmits = Vec::new();
    for i in 0..4 {
        let log = std::fs::read_to_string(net.homes[i].join("node.log")).unwrap();
        assert!(
            log.contains("datagram transport up")
                && log.contains(&format!("\"transport\":\"{transport}\"")),
            "validator {i} did not report its {transport} transport"
        );
        let api = net.apis[i].clone();
        let (_, body) = net.in_ns(i, || http_get(&api, "/metrics")).unwrap();
        assert!(
            metric(&body, "plume_dgram_datagrams_sent") > 0,
            "validator {i}"
        );
        assert!(
            metric(&body, "plume_dgram_datagrams_received") > 0,
            "validator {i}"
        );
        retransmits.push(metric(&body, "plume_dgram_retransmits"));
    }
    if lossy {
        // Which of a validator's packets the kernel drops (data, an ack, a
        // handshake packet) depends on timing, so one validator may have
        // lost only acks and resent nothing; the network as a whole must
        // have recovered lost data by resending it.
        eprintln!("{transport}: retransmits per validator {retransmits:?}");
        assert!(
            retransmits.iter().sum::<u64>() > 0,
            "{transport}: no validator resent anything: {retransmits:?}"
        );
    }
}

fn in_lab(tag: &str, transport: &str, edit: &dyn Fn(usize, String) -> String) {
    if let Some(why) = netns::unavailable() {
        eprintln!("SKIPPED four validators over {transport}: {why}");
        return;
    }
    let lab = Lab::new(tag, 4).expect("create namespaces");
    let dir = tempfile::tempdir().unwrap();
    let layout = NsLayout {
        hosts: lab.hosts.clone(),
        addrs: lab.addrs.clone(),
        edit_config: edit,
    };
    let mut net =
        LocalNet::create_in(exe(), &dir.path().join("net"), 4, PORT, Some(&layout)).unwrap();
    exercise(&mut net, transport, false);
    drop(net);
    drop(lab);
}

#[test]
fn four_validators_over_af_xdp_in_namespaces_finalize() {
    in_lab("bxa", "af_xdp", &|_, cfg| {
        cfg.replace("transport = \"tcp\"", "transport = \"af_xdp\"")
            .replace("interface = \"\"", "interface = \"eth0\"")
    });
}

#[test]
fn four_validators_over_dpdk_in_namespaces_finalize() {
    in_lab("bxd", "dpdk", &|_, cfg| {
        cfg.replace("transport = \"tcp\"", "transport = \"dpdk\"")
            .replace("dpdk_device = \"\"", "dpdk_device = \"net_af_packet0\"")
            .replace(
                "dpdk_vdevs = []",
                "dpdk_vdevs = [\"net_af_packet0,iface=eth0\"]",
            )
            .replace("dpdk_no_huge = false", "dpdk_no_huge = true")
            .replace("dpdk_mem_mb = 256", "dpdk_mem_mb = 128")
    });
}

/// Packets iptables dropped in namespace `ns` (the OUTPUT chain's counters).
fn iptables_drops(ns: &str) -> u64 {
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", ns, "iptables", "-L", "OUTPUT", "-v", "-x", "-n",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("DROP"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn four_validators_over_kernel_udp_with_loss_finalize() {
    // Real loss, in the kernel: every 10th UDP datagram each validator
    // sends is dropped by iptables in its namespace (the node has no loss
    // knob of its own).
    if let Some(why) = netns::unavailable() {
        eprintln!("SKIPPED four validators over lossy udp: {why}");
        return;
    }
    let lab = Lab::new("bxu", 4).expect("create namespaces");
    for ns in &lab.hosts {
        let st = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "iptables",
                "-A",
                "OUTPUT",
                "-p",
                "udp",
                "-m",
                "statistic",
                "--mode",
                "nth",
                "--every",
                "10",
                "--packet",
                "0",
                "-j",
                "DROP",
            ])
            .status()
            .unwrap();
        assert!(st.success(), "iptables in {ns}");
    }
    let dir = tempfile::tempdir().unwrap();
    let edit = |_: usize, cfg: String| cfg.replace("transport = \"tcp\"", "transport = \"udp\"");
    let layout = NsLayout {
        hosts: lab.hosts.clone(),
        addrs: lab.addrs.clone(),
        edit_config: &edit,
    };
    let mut net =
        LocalNet::create_in(exe(), &dir.path().join("net"), 4, PORT, Some(&layout)).unwrap();
    exercise(&mut net, "udp", true);
    for ns in &lab.hosts {
        assert!(
            iptables_drops(ns) > 0,
            "the kernel dropped datagrams in {ns}"
        );
    }
    drop(net);
    drop(lab);
}

#[test]
fn unavailable_transport_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let net = LocalNet::create(exe(), &dir.path().join("net"), 1, support::free_base(1)).unwrap();
    let src = &net.homes[0];
    // AF_XDP on an interface that does not exist: start-up fails, names it.
    let p = src.join("config.toml");
    let cfg = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        cfg.replace("transport = \"tcp\"", "transport = \"af_xdp\"")
            .replace("interface = \"\"", "interface = \"nosuchif0\""),
    )
    .unwrap();
    let out = std::process::Command::new(exe())
        .args(["start", "--home"])
        .arg(src)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "start must fail");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("af_xdp") && text.contains("nosuchif0"),
        "the error names the transport and the interface: {text}"
    );
    eprintln!("{text}");
}
