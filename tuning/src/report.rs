//! The advisor's output: findings, transports and plan together, as a
//! table for people or JSON for machines.

use crate::advice::{self, Finding, Severity, TransportReport};
use crate::host::HostFacts;
use crate::parse::format_cpu_list;
use crate::plan::{self, Plan};
use serde::Serialize;
use std::fmt::Write;

/// Everything `plume tune` says.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Raw facts read from the host.
    pub host: HostFacts,
    /// Findings with severities and remedies.
    pub findings: Vec<Finding>,
    /// Whether each transport can run.
    pub transports: Vec<TransportReport>,
    /// The proposed placement.
    pub plan: Plan,
    /// The `[placement]` lines the plan corresponds to.
    pub config_section: String,
    /// The `[placement]` of `--home`'s config.toml, when given: key and
    /// value (`None`: not set).
    pub current_placement: Option<Vec<crate::config_edit::PlacementEntry>>,
}

/// Assess the facts: findings, transports and a plan.
pub fn build(host: HostFacts) -> Report {
    let home_node = host.peer_nic().and_then(|n| n.numa_node);
    let plan = plan::plan(&host.topology, home_node);
    let findings = advice::findings(&host, &plan);
    let transports = advice::transports(&host);
    let mut config_section = String::from("[placement]\n");
    for (k, v) in crate::config_edit::plan_lists(&plan) {
        let items: Vec<String> = v.iter().map(u32::to_string).collect();
        let _ = writeln!(config_section, "{k} = [{}]", items.join(", "));
    }
    Report {
        host,
        findings,
        transports,
        plan,
        config_section,
        current_placement: None,
    }
}

impl Report {
    /// The worst severity in the findings and transports.
    pub fn worst(&self) -> Severity {
        self.findings
            .iter()
            .map(|f| f.severity)
            .chain(self.transports.iter().map(|t| t.status))
            .max()
            .unwrap_or(Severity::Ok)
    }
}

fn cpus(v: &[u32]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        format_cpu_list(v)
    }
}

fn finding_rows(out: &mut String, rows: &[Finding], indent: &str) {
    for r in rows {
        let _ = writeln!(
            out,
            "{indent}{:<8} {:<23} {}",
            r.severity.word(),
            r.area,
            r.finding
        );
        if let Some(fix) = &r.remedy {
            let _ = writeln!(out, "{indent}{:<8} {:<23} fix: {fix}", "", "");
        }
    }
}

/// The report as text for people: findings table, transports, plan.
pub fn render_text(r: &Report) -> String {
    let h = &r.host;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plume tune: {} logical CPU(s), {} physical core(s), {} NUMA node(s), kernel {}",
        h.topology.logical(),
        h.topology.physical_cores().len(),
        h.topology.numa_nodes.len().max(1),
        h.kernel_release.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(
        out,
        "(read-only: nothing on this host was changed; apply the fixes yourself)\n"
    );
    let _ = writeln!(out, "FINDINGS");
    let _ = writeln!(out, "  {:<8} {:<23} finding", "severity", "area");
    finding_rows(&mut out, &r.findings, "  ");
    let _ = writeln!(
        out,
        "\nTRANSPORTS (config.toml [network] `transport = \"...\"`)"
    );
    for t in &r.transports {
        let _ = writeln!(out, "  {:<8} {}", t.transport, t.verdict);
        finding_rows(&mut out, &t.checks, "    ");
    }
    let p = &r.plan;
    let _ = writeln!(out, "\nPLACEMENT PLAN");
    let _ = writeln!(
        out,
        "  network + consensus + storage commit  CPU {}",
        cpus(&p.consensus_cores)
    );
    let _ = writeln!(
        out,
        "  signature verification                CPU {}",
        cpus(&p.sigverify_cores)
    );
    let _ = writeln!(
        out,
        "  execution shards                      CPU {}",
        cpus(&p.exec_cores)
    );
    let _ = writeln!(
        out,
        "  API (advisory, not in config.toml)    {}",
        if p.api_cores.is_empty() {
            "not pinned".to_string()
        } else {
            format!("CPU {}", cpus(&p.api_cores))
        }
    );
    if !p.housekeeping_cores.is_empty() {
        let _ = writeln!(
            out,
            "  OS + interrupts                       CPU {}",
            cpus(&p.housekeeping_cores)
        );
    }
    let _ = writeln!(
        out,
        "  NIC interrupts steered to             CPU {}",
        cpus(&p.nic_irq_cores)
    );
    if !p.idle_siblings.is_empty() {
        let _ = writeln!(
            out,
            "  idle SMT siblings                     CPU {}",
            cpus(&p.idle_siblings)
        );
    }
    for n in &p.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    let _ = writeln!(out, "\nconfig.toml lines for this plan:");
    for line in r.config_section.lines() {
        let _ = writeln!(out, "  {line}");
    }
    if let Some(cur) = &r.current_placement {
        let _ = writeln!(out, "currently in --home's config.toml:");
        for (k, v) in cur {
            let _ = writeln!(
                out,
                "  {k} = {}",
                v.as_ref()
                    .map_or("(not set)".to_string(), |v| format!("{v:?}"))
            );
        }
    }
    out
}
