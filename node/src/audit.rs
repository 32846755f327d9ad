//! Compliance audit reports: every transaction the compliance engine
//! checked in a height range, with the rule id and policy version that
//! decided, the verdict, the code and the hash of what the rules
//! evaluated; anchored to the state root after the last block (the root a
//! later header certifies). Built from the store by the API
//! (`plume_complianceAudit`, at most [`AUDIT_BLOCKS_MAX`] blocks a call)
//! and rendered by `plume audit report` as JSON, CSV or PDF: the same
//! range gives the same bytes on every run and every validator.

use anyhow::{anyhow, Result};
use plume_compliance::{flows_of, input_hash, Policy};
use plume_execution::modules::compliance::{read_policy, read_policy_version, read_verdicts};
use plume_execution::Registry;
use plume_protocol::{Receipt, Status};
use plume_storage::{KvStore, Store};
use serde::{Deserialize, Serialize};

/// Most blocks one `plume_complianceAudit` call covers.
pub const AUDIT_BLOCKS_MAX: u64 = 1_000;
/// Most entries one call returns (a call stops early and says where).
pub const AUDIT_ENTRIES_MAX: usize = 100_000;

/// One checked transaction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEntry {
    /// Block height.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    /// Transaction id (hex).
    pub tx: String,
    /// Module called.
    pub module: String,
    /// "pass", "fail" or "flag".
    pub verdict: String,
    /// Rule id that decided (none for a pass).
    pub rule_id: Option<u16>,
    /// That rule's kind.
    pub rule_kind: Option<String>,
    /// Policy version in force.
    pub policy_version: u32,
    /// Reason code (0 for pass and flag).
    pub code: u16,
    /// Its name.
    pub code_name: String,
    /// Hash of what the rules evaluated (hex).
    pub input_hash: String,
}

/// A page of the report.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditPage {
    /// First height covered.
    pub from: u64,
    /// Last height covered (below the asked end when the page is full).
    pub to: u64,
    /// The state root after block `to` (hex).
    pub state_root: String,
    /// Checked transactions in chain order.
    pub entries: Vec<AuditEntry>,
}

/// The policy versions in force anywhere in `from..`, newest first
/// (walking back from the current one until one is effective at `from`).
fn versions_since<K: KvStore>(store: &Store<K>, from: u64) -> Result<Vec<Policy>> {
    let mut out = Vec::new();
    let mut p = read_policy(store).map_err(|e| anyhow!("{e}"))?;
    while let Some(cur) = p {
        let (done, v) = (
            cur.effective_height <= from || cur.version <= 1,
            cur.version,
        );
        out.push(cur);
        if done {
            break;
        }
        p = read_policy_version(store, v - 1).map_err(|e| anyhow!("{e}"))?;
    }
    Ok(out)
}

/// The checked transactions of heights `from..=to` (at most
/// [`AUDIT_BLOCKS_MAX`] blocks; a page ends after the block that takes it
/// past [`AUDIT_ENTRIES_MAX`] entries, and says where).
pub fn audit_page<K: KvStore>(
    store: &Store<K>,
    registry: &Registry,
    from: u64,
    to: u64,
) -> Result<AuditPage> {
    let head = store.finalized_height().unwrap_or(0);
    if from == 0 || from > to {
        return Err(anyhow!("need 1 <= from <= to (got {from}..{to})"));
    }
    if to > head {
        return Err(anyhow!("height {to} is not final yet (finalized: {head})"));
    }
    let to = to.min(from.saturating_add(AUDIT_BLOCKS_MAX - 1));
    let versions = versions_since(store, from)?;
    let mut entries = Vec::new();
    let mut last = to;
    for h in from..=to {
        // The newest version effective at h.
        if let Some(policy) = versions.iter().find(|p| p.effective_height <= h) {
            entries.extend(block_entries(store, registry, policy, h)?);
        }
        if entries.len() >= AUDIT_ENTRIES_MAX {
            last = h;
            break;
        }
    }
    let rec = store
        .block(last)?
        .ok_or_else(|| anyhow!("no block record at height {last}"))?;
    let sb = plume_protocol::proof::decode_block_record(&rec.bytes)?;
    Ok(AuditPage {
        from,
        to: last,
        state_root: sb.state_root.to_hex(),
        entries,
    })
}

fn block_entries<K: KvStore>(
    store: &Store<K>,
    registry: &Registry,
    policy: &Policy,
    h: u64,
) -> Result<Vec<AuditEntry>> {
    if !policy.active() {
        return Ok(Vec::new());
    }
    let rec = store
        .block(h)?
        .ok_or_else(|| anyhow!("no block record at height {h}"))?;
    let sb = plume_protocol::proof::decode_block_record(&rec.bytes)?;
    let verdicts = read_verdicts(store, h).map_err(|e| anyhow!("{e}"))?;
    let kind = |id: u16| {
        policy
            .rules
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.rule.kind().to_string())
    };
    let mut out = Vec::new();
    for (i, id) in sb.txs.iter().enumerate() {
        let entry = store
            .tx_entry(id)?
            .ok_or_else(|| anyhow!("transaction {id} of block {h} is not stored"))?;
        let receipt = Receipt::from_bytes(&entry.receipt)?;
        let module = plume_protocol::Transaction::from_bytes(&entry.tx)
            .ok()
            .and_then(|t| registry.get(t.body.module).map(|m| m.name().to_string()))
            .unwrap_or_else(|| "unknown".into());
        let recorded = verdicts
            .as_ref()
            .and_then(|v| v.entries.iter().find(|e| e.index == i as u32));
        let e = match recorded {
            Some(v) => AuditEntry {
                height: h,
                index: i as u32,
                tx: id.to_hex(),
                module,
                verdict: if v.flagged { "flag" } else { "fail" }.into(),
                rule_id: Some(v.rule_id),
                rule_kind: kind(v.rule_id),
                policy_version: policy.version,
                code: v.code,
                code_name: registry.reason_name(plume_protocol::Reason(v.code)),
                input_hash: hex::encode(v.input_hash),
            },
            None if receipt.status == Status::Success => {
                let flows = flows_of(&receipt.events);
                if flows.is_empty() {
                    continue;
                }
                AuditEntry {
                    height: h,
                    index: i as u32,
                    tx: id.to_hex(),
                    module,
                    verdict: "pass".into(),
                    rule_id: None,
                    rule_kind: None,
                    policy_version: policy.version,
                    code: 0,
                    code_name: "Ok".into(),
                    input_hash: input_hash(&id.0, policy.version, &flows).to_hex(),
                }
            }
            // Failed before the rules ran, or rejected: not checked.
            None => continue,
        };
        out.push(e);
    }
    Ok(out)
}

/// A whole report (pages joined).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditReport {
    /// Chain id.
    pub chain_id: String,
    /// First height.
    pub from: u64,
    /// Last height.
    pub to: u64,
    /// State root after block `to`; certified by the header at height
    /// `to + STATE_LAG` (`plume_getStateRoot` proves it).
    pub state_root: String,
    /// Height whose header carries `state_root`.
    pub certified_at_height: u64,
    /// Checked transactions.
    pub checked: usize,
    /// Failed by a rule.
    pub failed: usize,
    /// Flagged.
    pub flagged: usize,
    /// The entries.
    pub entries: Vec<AuditEntry>,
}

impl AuditReport {
    /// Join pages covering `from..=to` in order.
    pub fn from_pages(chain_id: &str, pages: Vec<AuditPage>) -> Result<AuditReport> {
        let first = pages.first().ok_or_else(|| anyhow!("no pages"))?;
        let last = pages.last().expect("non-empty");
        let (from, to, root) = (first.from, last.to, last.state_root.clone());
        let entries: Vec<AuditEntry> = pages.into_iter().flat_map(|p| p.entries).collect();
        let failed = entries.iter().filter(|e| e.verdict == "fail").count();
        let flagged = entries.iter().filter(|e| e.verdict == "flag").count();
        Ok(AuditReport {
            chain_id: chain_id.to_string(),
            from,
            to,
            state_root: root,
            certified_at_height: to + plume_protocol::consensus::STATE_LAG,
            checked: entries.len(),
            failed,
            flagged,
            entries,
        })
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("plain data serializes");
        v.push(b'\n');
        v
    }

    /// CSV: a header line, then one line per entry.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut s = String::from(
            "height,index,tx,module,verdict,rule_id,rule_kind,policy_version,code,code_name,input_hash\n",
        );
        for e in &self.entries {
            s.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                e.height,
                e.index,
                e.tx,
                csv_field(&e.module),
                e.verdict,
                e.rule_id.map(|r| r.to_string()).unwrap_or_default(),
                csv_field(e.rule_kind.as_deref().unwrap_or("")),
                e.policy_version,
                e.code,
                csv_field(&e.code_name),
                e.input_hash
            ));
        }
        s.into_bytes()
    }

    /// The lines of the PDF and text forms.
    fn lines(&self) -> Vec<String> {
        let mut l = vec![
            format!("Plume compliance audit report - chain {}", self.chain_id),
            format!(
                "Heights {} to {}; state root after {}: {}",
                self.from, self.to, self.to, self.state_root
            ),
            format!(
                "(certified by the block header at height {})",
                self.certified_at_height
            ),
            format!(
                "Checked {}  failed {}  flagged {}",
                self.checked, self.failed, self.flagged
            ),
            String::new(),
            "height index verdict rule version code tx / input hash".into(),
        ];
        for e in &self.entries {
            l.push(format!(
                "{} {} {} {} v{} {} {} tx {}",
                e.height,
                e.index,
                e.verdict,
                e.rule_id
                    .map(|r| format!("{r}:{}", e.rule_kind.as_deref().unwrap_or("?")))
                    .unwrap_or_else(|| "-".into()),
                e.policy_version,
                e.code,
                e.code_name,
                e.tx
            ));
            l.push(format!("    input {}", e.input_hash));
        }
        l
    }

    /// A PDF (PDF 1.4, Helvetica, A4 pages of 60 lines): text a reader
    /// or `pdftotext` extracts. Deterministic: no dates, no ids.
    pub fn to_pdf(&self) -> Vec<u8> {
        pdf(&self.lines())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Lines per PDF page.
const PDF_LINES: usize = 60;

/// A minimal PDF of `lines` (ASCII; other bytes become '?').
fn pdf(lines: &[String]) -> Vec<u8> {
    let pages: Vec<&[String]> = if lines.is_empty() {
        vec![&[]]
    } else {
        lines.chunks(PDF_LINES).collect()
    };
    // Objects: 1 catalog, 2 pages, 3 font, then per page (page, content).
    let mut objs: Vec<Vec<u8>> = Vec::new();
    objs.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", 4 + 2 * i))
        .collect();
    objs.push(
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            pages.len()
        )
        .into_bytes(),
    );
    objs.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec());
    for (i, page) in pages.iter().enumerate() {
        objs.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                5 + 2 * i
            )
            .into_bytes(),
        );
        let mut content = String::from("BT /F1 8 Tf 10 TL 30 810 Td\n");
        for l in page.iter() {
            let esc: String = l
                .chars()
                .map(|c| match c {
                    '(' | ')' | '\\' => format!("\\{c}"),
                    c if c.is_ascii() && !c.is_ascii_control() => c.to_string(),
                    _ => "?".into(),
                })
                .collect();
            content.push_str(&format!("({esc}) Tj T*\n"));
        }
        content.push_str("ET");
        let mut o = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        o.extend_from_slice(content.as_bytes());
        o.extend_from_slice(b"\nendstream");
        objs.push(o);
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::with_capacity(objs.len());
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(n: usize) -> AuditReport {
        let entries = (0..n)
            .map(|i| AuditEntry {
                height: 5 + i as u64,
                index: i as u32,
                tx: "ab".repeat(32),
                module: "transfer".into(),
                verdict: if i % 3 == 0 { "fail" } else { "pass" }.into(),
                rule_id: (i % 3 == 0).then_some(1),
                rule_kind: (i % 3 == 0).then(|| "sanctions".into()),
                policy_version: 1,
                code: if i % 3 == 0 { 200 } else { 0 },
                code_name: if i % 3 == 0 { "SANCTIONED" } else { "Ok" }.into(),
                input_hash: "cd".repeat(32),
            })
            .collect();
        AuditReport::from_pages(
            "c",
            vec![AuditPage {
                from: 1,
                to: 200,
                state_root: "ef".repeat(32),
                entries,
            }],
        )
        .unwrap()
    }

    #[test]
    fn pdf_has_a_valid_xref_and_one_page_per_60_lines() {
        let r = report(100);
        let p = r.to_pdf();
        assert!(p.starts_with(b"%PDF-1.4"));
        assert!(p.ends_with(b"%%EOF\n"));
        let text = String::from_utf8_lossy(&p);
        // 6 header lines + 2 per entry = 206 lines: 4 pages.
        assert!(text.contains("/Count 4"), "{}", &text[..300]);
        // Each xref offset points at its object.
        let x = text.rfind("startxref\n").unwrap();
        let xref: usize = text[x + 10..].lines().next().unwrap().parse().unwrap();
        let table = &text[xref..];
        for (i, line) in table.lines().skip(3).take(3).enumerate() {
            let off: usize = line[..10].parse().unwrap();
            assert!(text[off..].starts_with(&format!("{} 0 obj", i + 1)));
        }
        assert_eq!(p, r.to_pdf(), "deterministic");
    }

    #[test]
    fn csv_and_json_carry_every_entry_and_counts() {
        let r = report(7);
        assert_eq!((r.checked, r.failed, r.flagged), (7, 3, 0));
        let csv = String::from_utf8(r.to_csv()).unwrap();
        assert_eq!(csv.lines().count(), 8);
        assert!(csv
            .lines()
            .nth(1)
            .unwrap()
            .contains(",fail,1,sanctions,1,200,SANCTIONED,"));
        let back: AuditReport = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(back, r);
        assert_eq!(csv_field("a,b"), "\"a,b\"");
    }
}
