//! Placement plan: which cores run which roles, from the topology alone.
//!
//! Roles: network + consensus + storage commit (one core, latency
//! critical), signature verification and execution shards (throughput),
//! and the API thread (off the hot cores). Rules, in order:
//! 1. one hot role per physical core; SMT siblings of hot cores stay idle
//!    or take the API, except where there are too few physical cores;
//! 2. 2 logical cores: core 0 consensus, core 1 sigverify + execution (the
//!    design's minimal layout);
//! 3. from [`HOUSEKEEPING_MIN_PHYSICAL_CORES`] physical cores, physical
//!    core 0 (where the kernel's timers and most IRQs land) is left to the
//!    OS, interrupts and the API; below that, consensus takes core 0 and
//!    the NIC's interrupts are steered to it;
//! 4. hot roles fill the NIC's NUMA node (else node 0) first;
//! 5. of the remaining physical cores, [`SIGVERIFY_SHARE_PERCENT`] go to
//!    signature verification (the costliest step per transaction), the
//!    rest, at least one, to execution shards. This split is a starting
//!    point; `plume bench sweep` is how to refine it.

use crate::host::Topology;
use serde::Serialize;

/// From this many physical cores, physical core 0 is kept for the OS,
/// interrupts and the API.
pub const HOUSEKEEPING_MIN_PHYSICAL_CORES: usize = 8;
/// Share of the cores after consensus given to signature verification.
pub const SIGVERIFY_SHARE_PERCENT: usize = 60;

/// Cores per role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Network + consensus + storage commit (`[placement] consensus_cores`).
    pub consensus_cores: Vec<u32>,
    /// Signature verification (`[placement] sigverify_cores`).
    pub sigverify_cores: Vec<u32>,
    /// Execution shards (`[placement] exec_cores`).
    pub exec_cores: Vec<u32>,
    /// Where the API thread should run; empty: left to the OS scheduler.
    /// Advisory only: `[placement]` has no API key.
    pub api_cores: Vec<u32>,
    /// Kept for the OS and interrupts.
    pub housekeeping_cores: Vec<u32>,
    /// Where the NIC's interrupts should be steered.
    pub nic_irq_cores: Vec<u32>,
    /// SMT siblings of hot cores, left idle.
    pub idle_siblings: Vec<u32>,
    /// Two hot roles had to share one physical core.
    pub hot_roles_share_core: bool,
    /// Hot roles span more than one NUMA node.
    pub spans_numa_nodes: bool,
    /// Why the plan looks the way it does.
    pub notes: Vec<String>,
}

impl Plan {
    /// Every CPU used by a hot role.
    pub fn hot_cores(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .consensus_cores
            .iter()
            .chain(&self.sigverify_cores)
            .chain(&self.exec_cores)
            .copied()
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Propose a plan. `home_node` is the NUMA node to fill first (the NIC's),
/// `None` for the node of the lowest CPU.
///
/// Panics if the topology has no CPU (the inspector always reports one).
pub fn plan(topo: &Topology, home_node: Option<u32>) -> Plan {
    let mut cores = topo.physical_cores();
    assert!(!cores.is_empty(), "a topology has at least one CPU");
    let home = home_node.or_else(|| topo.node_of(cores[0][0]));
    cores.sort_by_key(|c| (topo.node_of(c[0]) != home, c[0]));
    // The physical core of CPU 0 takes the kernel's timers and most IRQs:
    // it is the housekeeping core on big hosts, consensus on small ones
    // when it sits on the home node, and last choice otherwise.
    let zero = cores
        .iter()
        .position(|c| c.contains(&0))
        .map(|i| cores.remove(i));
    let housekeeping =
        if cores.len() + usize::from(zero.is_some()) >= HOUSEKEEPING_MIN_PHYSICAL_CORES {
            zero
        } else {
            if let Some(z) = zero {
                if home.is_none() || topo.node_of(0) == home {
                    cores.insert(0, z);
                } else {
                    cores.push(z);
                }
            }
            None
        };
    let first = |c: &Vec<u32>| c[0];
    let second = |c: &Vec<u32>| c.get(1).copied();
    let mut p = Plan {
        consensus_cores: Vec::new(),
        sigverify_cores: Vec::new(),
        exec_cores: Vec::new(),
        api_cores: Vec::new(),
        housekeeping_cores: Vec::new(),
        nic_irq_cores: Vec::new(),
        idle_siblings: Vec::new(),
        hot_roles_share_core: false,
        spans_numa_nodes: false,
        notes: Vec::new(),
    };
    match cores.len() {
        1 => {
            let c = &cores[0];
            p.consensus_cores = vec![first(c)];
            match second(c) {
                Some(s) => {
                    p.sigverify_cores = vec![s];
                    p.exec_cores = vec![s];
                    p.hot_roles_share_core = true;
                    p.notes.push(format!(
                        "one physical core: consensus on CPU {}, sigverify + execution on its SMT sibling {s}",
                        first(c)
                    ));
                }
                None => {
                    p.sigverify_cores = vec![first(c)];
                    p.exec_cores = vec![first(c)];
                    p.hot_roles_share_core = true;
                    p.notes
                        .push("one core: every role shares it; expect low throughput".into());
                }
            }
            p.nic_irq_cores = p.consensus_cores.clone();
        }
        2 => {
            let (c0, c1) = (&cores[0], &cores[1]);
            p.consensus_cores = vec![first(c0)];
            p.sigverify_cores = vec![first(c1)];
            match second(c1) {
                Some(s) => {
                    p.exec_cores = vec![s];
                    p.hot_roles_share_core = true;
                    p.notes.push(format!(
                        "two physical cores: sigverify on CPU {} and execution on its SMT sibling {s}",
                        first(c1)
                    ));
                }
                None => {
                    p.exec_cores = vec![first(c1)];
                    p.notes.push(format!(
                        "2 cores: CPU {} runs network + consensus + storage, CPU {} signature verification + execution",
                        first(c0),
                        first(c1)
                    ));
                }
            }
            p.api_cores = second(c0).into_iter().collect();
            p.idle_siblings = c0
                .iter()
                .skip(2)
                .chain(c1.iter().skip(2))
                .copied()
                .collect();
            p.nic_irq_cores = p.consensus_cores.clone();
        }
        n => {
            let mut rest = &cores[..];
            if let Some(hk) = &housekeeping {
                p.housekeeping_cores = hk.clone();
                p.api_cores = vec![*hk.last().unwrap_or(&hk[0])];
                if home.is_none() || topo.node_of(hk[0]) == home {
                    p.nic_irq_cores = hk.clone();
                }
                p.notes.push(format!(
                    "{} physical cores: CPUs {} kept for the OS, interrupts and the API",
                    n + 1,
                    crate::parse::format_cpu_list(hk)
                ));
            }
            let cons = &rest[0];
            p.consensus_cores = vec![first(cons)];
            if p.nic_irq_cores.is_empty() {
                p.nic_irq_cores = p.consensus_cores.clone();
            }
            match (second(cons), p.api_cores.is_empty()) {
                (Some(s), true) => p.api_cores = vec![s],
                (Some(s), false) => p.idle_siblings.push(s),
                (None, _) => {}
            }
            p.idle_siblings.extend(cons.iter().skip(2));
            rest = &rest[1..];
            let r = rest.len();
            let sig = (r * SIGVERIFY_SHARE_PERCENT).div_ceil(100).clamp(1, r - 1);
            for (i, c) in rest.iter().enumerate() {
                if i < sig {
                    p.sigverify_cores.push(first(c));
                } else {
                    p.exec_cores.push(first(c));
                }
                p.idle_siblings.extend(c.iter().skip(1));
            }
            p.notes.push(format!(
                "one hot role per physical core: {} sigverify, {} execution shard(s); SMT siblings of hot cores stay idle",
                p.sigverify_cores.len(),
                p.exec_cores.len()
            ));
        }
    }
    let nodes: std::collections::BTreeSet<u32> = p
        .hot_cores()
        .iter()
        .filter_map(|&c| topo.node_of(c))
        .collect();
    p.spans_numa_nodes = nodes.len() > 1;
    if p.spans_numa_nodes {
        p.notes.push(format!(
            "hot roles span NUMA nodes {nodes:?}: messages between them cross the interconnect; consider one validator per NUMA node"
        ));
    }
    if p.api_cores.is_empty() {
        p.notes
            .push("API thread: not pinned (no spare core); the OS schedules it".into());
    }
    p.idle_siblings.sort_unstable();
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// `physical` cores of `threads` each; thread t of core c is CPU
    /// `c + t * physical` (the usual Linux numbering); `nodes` equal NUMA
    /// nodes by core.
    fn topo(physical: u32, threads: u32, nodes: u32) -> Topology {
        let ids: Vec<u32> = (0..physical * threads).collect();
        let mut sib = BTreeMap::new();
        let mut numa: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &id in &ids {
            let core = id % physical;
            sib.insert(id, (0..threads).map(|t| core + t * physical).collect());
            let node = core * nodes / physical;
            numa.entry(node).or_default().push(id);
        }
        Topology::new(&ids, &sib, numa)
    }

    /// (physical, threads) -> (consensus, sigverify, exec, hot roles share).
    type Case = (
        (u32, u32),
        (&'static [u32], &'static [u32], &'static [u32], bool),
    );

    #[test]
    fn small_hosts() {
        let cases: &[Case] = &[
            ((1, 1), (&[0], &[0], &[0], true)),
            ((1, 2), (&[0], &[1], &[1], true)),
            ((2, 1), (&[0], &[1], &[1], false)),
            ((2, 2), (&[0], &[1], &[3], true)),
            ((3, 1), (&[0], &[1], &[2], false)),
            ((4, 2), (&[0], &[1, 2], &[3], false)),
        ];
        for &((phys, thr), (c, s, e, share)) in cases {
            let p = plan(&topo(phys, thr, 1), None);
            assert_eq!(
                (
                    &p.consensus_cores[..],
                    &p.sigverify_cores[..],
                    &p.exec_cores[..],
                    p.hot_roles_share_core
                ),
                (c, s, e, share),
                "{phys}x{thr}"
            );
        }
        // 2x2: the API gets consensus's sibling.
        assert_eq!(plan(&topo(2, 2, 1), None).api_cores, vec![2]);
    }

    #[test]
    fn invariants_over_many_shapes() {
        for phys in 1..=40u32 {
            for threads in 1..=2 {
                for nodes in 1..=2u32.min(phys) {
                    let t = topo(phys, threads, nodes);
                    let p = plan(&t, None);
                    let all: Vec<u32> = t.cpus.iter().map(|c| c.id).collect();
                    for c in p
                        .hot_cores()
                        .iter()
                        .chain(&p.api_cores)
                        .chain(&p.nic_irq_cores)
                    {
                        assert!(all.contains(c), "{phys}x{threads}: CPU {c} not on host");
                    }
                    assert_eq!(p.consensus_cores.len(), 1);
                    assert!(!p.sigverify_cores.is_empty() && !p.exec_cores.is_empty());
                    if phys >= 3 {
                        // Every hot CPU on its own physical core.
                        let hot = p.hot_cores();
                        let mut owners: Vec<u32> = hot.iter().map(|c| c % phys).collect();
                        owners.dedup();
                        assert_eq!(owners.len(), hot.len(), "{phys}x{threads}: {p:?}");
                        assert!(!p.hot_roles_share_core);
                        assert!(
                            !hot.contains(&0) || (phys as usize) < HOUSEKEEPING_MIN_PHYSICAL_CORES
                        );
                    }
                    if phys as usize >= HOUSEKEEPING_MIN_PHYSICAL_CORES {
                        assert!(p.housekeeping_cores.contains(&0), "{phys}x{threads}");
                    }
                    if phys >= 4 {
                        assert!(p.sigverify_cores.len() >= p.exec_cores.len());
                    }
                }
            }
        }
    }

    #[test]
    fn fills_the_home_node_first() {
        // 6 physical cores, node 0 = cores 0-2, node 1 = cores 3-5; the NIC
        // is on node 1, so core 0 goes last and consensus starts on node 1.
        let t = topo(6, 1, 2);
        let p = plan(&t, Some(1));
        assert_eq!(p.consensus_cores, vec![3]);
        assert_eq!(p.sigverify_cores, vec![4, 5, 1]);
        assert_eq!(
            p.exec_cores,
            vec![2, 0],
            "core 0 is the last choice off the home node"
        );
        assert!(p.spans_numa_nodes);
        let p0 = plan(&t, Some(0));
        assert_eq!(p0.consensus_cores, vec![0]);
    }
}
