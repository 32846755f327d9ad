//! `plume compliance ...` and `plume audit report`: the compliance
//! engine's commands. Reads go to a node's API (`plume_query compliance
//! ...`, `plume_complianceAudit`); the governed changes are transactions
//! signed with the admin's, list keeper's or provider's key.

use super::tx::{submit_or_dry_run, tx_prelude, TxCommon};
use crate::audit::{AuditPage, AuditReport, AUDIT_BLOCKS_MAX};
use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use plume_client::txbuild;
use plume_compliance::model::hex32;
use plume_compliance::{Claim, ComplianceCall, ListKind, RuleEntry, MODULE_COMPLIANCE};
use plume_protocol::calls::EncodedCall;
use serde_json::{json, Value};
use std::path::PathBuf;

/// `plume compliance ...`.
#[derive(Subcommand, Debug)]
pub enum ComplianceCmd {
    /// The rule set in force (or a stored version), with its providers.
    Rules {
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
        /// A stored policy version instead of the one in force.
        #[arg(long)]
        version: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The identity of an address (or an identity by id), its attestations
    /// and list entries.
    Identity {
        /// Address or identity id (64 hex).
        id: String,
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
    },
    /// Why a finalized transaction passed, failed or was flagged: its
    /// verdict, the rule (id, kind, parameters, policy version) and code.
    Explain {
        /// Transaction id (64 hex).
        tx: String,
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
    },
    /// Every compliance reason code and what it means (offline).
    Codes,
    /// Sign a claim (JSON) with a provider's key file (offline); prints the
    /// signed claim for `plume compliance attest`.
    SignClaim {
        /// The provider's key file.
        #[arg(long)]
        provider_key: PathBuf,
        /// The claim (JSON: chain_id, identity, addresses, provider,
        /// status, risk_tier, jurisdiction, accreditation, issued_height,
        /// expiry_height).
        #[arg(long)]
        claim: PathBuf,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Create an institution's X25519 key for travel-rule envelopes: the
    /// secret goes to a file (mode 0600), the public key is printed.
    EnvelopeKey {
        /// Secret key file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Provider (its key pays): publish the X25519 key travel-rule
    /// envelopes for the identities it attests are sealed to, so
    /// `plume tx transfer --travel-info` finds it (or withdraw it).
    SetEnvelopeKey {
        #[command(flatten)]
        common: TxCommon,
        /// The institution's secret key file (from `envelope-key`); its
        /// public key is published.
        #[arg(long, required_unless_present = "clear")]
        envelope_key: Option<PathBuf>,
        /// Withdraw the published key instead.
        #[arg(long, conflicts_with = "envelope_key")]
        clear: bool,
    },
    /// The envelope keys of the institutions attesting an address's
    /// identity (or of one provider).
    EnvelopeKeys {
        /// Address or provider key (64 hex).
        id: String,
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
    },
    /// Open the travel-rule envelope of a finalized transaction with the
    /// beneficiary institution's secret key file.
    OpenEnvelope {
        /// Transaction id (64 hex).
        tx: String,
        /// The institution's secret key file (from `envelope-key`).
        #[arg(long)]
        key: PathBuf,
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
    },
    /// Record a provider-signed claim (any account may submit it).
    Attest {
        #[command(flatten)]
        common: TxCommon,
        /// A signed claim written by `sign-claim`.
        #[arg(long)]
        signed_claim: PathBuf,
    },
    /// Admin: replace the rule set (JSON list of rules).
    SetRules {
        #[command(flatten)]
        common: TxCommon,
        /// Rules file: `[{"id": 1, "kind": "sanctions"}, ...]`.
        #[arg(long)]
        rules: PathBuf,
    },
    /// Admin: register a KYC provider.
    AddProvider {
        #[command(flatten)]
        common: TxCommon,
        /// The provider's public key (64 hex).
        #[arg(long)]
        provider: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// Admin: the provider's attestations stop counting from a height (at
    /// the earliest the next block).
    RevokeProvider {
        #[command(flatten)]
        common: TxCommon,
        /// The provider's public key (64 hex).
        #[arg(long)]
        provider: String,
        /// First height its attestations no longer count (default: next block).
        #[arg(long, default_value_t = 0)]
        from_height: u64,
    },
    /// Admin: hand over the admin and list-keeper roles.
    SetRoles {
        #[command(flatten)]
        common: TxCommon,
        /// New admin account.
        #[arg(long)]
        admin: String,
        /// New list keeper account.
        #[arg(long)]
        list_keeper: String,
    },
    /// List keeper: add or remove addresses of the deny or exempt list
    /// (effective from the next block).
    List {
        #[command(flatten)]
        common: TxCommon,
        /// Which list.
        #[arg(long, value_enum)]
        list: ListArg,
        /// Address to add (repeat).
        #[arg(long = "add")]
        add: Vec<String>,
        /// Address to remove (repeat).
        #[arg(long = "remove")]
        remove: Vec<String>,
    },
    /// Provider (its key pays): withdraw its attestation of an identity.
    RevokeAttestation {
        #[command(flatten)]
        common: TxCommon,
        /// Identity id (64 hex).
        #[arg(long)]
        identity: String,
    },
}

/// A list on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ListArg {
    /// Sanctions / deny list.
    Deny,
    /// Whitelisted counterparties.
    Exempt,
}

/// Report formats.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// Pretty JSON.
    Json,
    /// CSV with a header line.
    Csv,
    /// PDF (text a reader or pdftotext extracts).
    Pdf,
}

fn h32(s: &str, what: &str) -> Result<[u8; 32]> {
    hex32::parse(s).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

fn query(node: &str, method: &str, args: &[&str]) -> Result<Value> {
    let mut params = vec![json!("compliance"), json!(method)];
    params.extend(args.iter().map(|a| json!(a)));
    Ok(plume_client::rpc(
        node,
        "plume_query",
        Value::Array(params),
    )?)
}

fn submit_call(common: &TxCommon, call: ComplianceCall) -> Result<()> {
    let (key, chain, seq) = tx_prelude(common)?;
    let fees = common.fees();
    let encoded = match common.via_governance {
        // Token holders decide; the call runs as the governance account.
        Some(deposit) => {
            let title = format!("compliance: {}", call_title(&call));
            let p = plume_protocol::governance::GovCall::Propose {
                title,
                kind: plume_protocol::governance::ProposalKind::Execute {
                    module: MODULE_COMPLIANCE,
                    call: call.encode(),
                },
                deposit,
            };
            let id = plume_protocol::governance::proposal_id(&key.public_key().address().0, seq);
            if !common.json {
                println!("proposal id {}", hex::encode(id));
            }
            EncodedCall {
                module: plume_protocol::governance::MODULE_GOVERNANCE,
                bytes: plume_protocol::calls::ModuleCall::encode(&p),
            }
        }
        None => EncodedCall {
            module: MODULE_COMPLIANCE,
            bytes: call.encode(),
        },
    };
    let body = txbuild::body(&chain, &[&key], seq, fees, u64::MAX, encoded);
    let tx = plume_protocol::Transaction::sign(body, &[&key]);
    submit_or_dry_run(common, tx)
}

/// A short description of a compliance call (a proposal's title).
fn call_title(c: &ComplianceCall) -> &'static str {
    match c {
        ComplianceCall::SetRules { .. } => "replace the rule set",
        ComplianceCall::AddProvider { .. } => "register a KYC provider",
        ComplianceCall::RevokeProvider { .. } => "revoke a KYC provider",
        ComplianceCall::SetRoles { .. } => "hand over the admin and list-keeper roles",
        ComplianceCall::UpdateList { .. } => "update a list",
        _ => "a compliance call",
    }
}

/// Run `plume compliance ...`.
pub fn run(cmd: ComplianceCmd) -> Result<()> {
    match cmd {
        ComplianceCmd::Rules {
            node,
            version,
            json,
        } => {
            let v = version.map(|v| v.to_string());
            let p = query(
                &node,
                "policy",
                &v.iter().map(String::as_str).collect::<Vec<_>>(),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else if p.is_null() {
                println!("no compliance policy (no rules in force, nobody governs compliance)");
            } else {
                print_policy(&p);
            }
        }
        ComplianceCmd::Identity { id, node } => {
            h32(&id, "id")?;
            let i = query(&node, "identity", &[&id])?;
            let l = query(&node, "listed", &[&id])?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"identity": i, "lists": l}))?
            );
        }
        ComplianceCmd::Explain { tx, node } => explain(&node, &tx)?,
        ComplianceCmd::EnvelopeKey { out } => {
            use rand::RngCore;
            let mut secret = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            if out.exists() {
                bail!("{} already exists", out.display());
            }
            plume_client::fsutil::write_atomic(&out, hex::encode(secret).as_bytes(), 0o600)?;
            println!(
                "wrote {}; public key {}",
                out.display(),
                hex::encode(plume_compliance::travel::public_key(&secret))
            );
        }
        ComplianceCmd::OpenEnvelope { tx, key, node } => {
            let secret = read_envelope_secret(&key)?;
            let t = plume_client::rpc(&node, "plume_getTransaction", json!([tx]))?;
            let bytes = hex::decode(t["tx"].as_str().unwrap_or_default())?;
            let tx = plume_protocol::Transaction::from_bytes(&bytes)?;
            let env = plume_compliance::travel::envelope_of(&tx.body.memo)
                .context("the transaction's memo carries no travel-rule envelope")?;
            let info = plume_compliance::travel::open(env, &secret)?;
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
        ComplianceCmd::Codes => {
            for (r, n, d) in plume_compliance::codes::ALL {
                println!("{:>4}  {n:<24} {d}", r.0);
            }
        }
        ComplianceCmd::SignClaim {
            provider_key,
            claim,
            out,
        } => {
            let key = plume_client::keyfile::read_account_key(&provider_key)?;
            let text =
                std::fs::read(&claim).with_context(|| format!("reading {}", claim.display()))?;
            let c: Claim = serde_json::from_slice(&text)
                .with_context(|| format!("{}: not a claim", claim.display()))?;
            if c.provider != key.public_key().to_bytes() {
                bail!(
                    "{}: provider {} is not the key in {}",
                    claim.display(),
                    hex::encode(c.provider),
                    provider_key.display()
                );
            }
            c.check()
                .map_err(|r| anyhow::anyhow!("{}: claim breaks a rule ({r:?})", claim.display()))?;
            let sig = key.sign(&c.signing_hash().0).to_bytes();
            let signed = json!({"claim": c, "signature": hex::encode(sig)});
            plume_client::fsutil::write_atomic(&out, &serde_json::to_vec_pretty(&signed)?, 0o644)?;
            println!("wrote {}", out.display());
        }
        ComplianceCmd::Attest {
            common,
            signed_claim,
        } => {
            let text = std::fs::read(&signed_claim)
                .with_context(|| format!("reading {}", signed_claim.display()))?;
            let v: Value = serde_json::from_slice(&text)?;
            let claim: Claim = serde_json::from_value(v["claim"].clone())
                .with_context(|| format!("{}: claim", signed_claim.display()))?;
            let sig = hex::decode(v["signature"].as_str().unwrap_or_default())
                .ok()
                .and_then(|s| <[u8; 64]>::try_from(s).ok())
                .with_context(|| {
                    format!("{}: signature must be 128 hex", signed_claim.display())
                })?;
            submit_call(
                &common,
                ComplianceCall::Attest {
                    claim,
                    signature: sig,
                },
            )?;
        }
        ComplianceCmd::SetRules { common, rules } => {
            let text =
                std::fs::read(&rules).with_context(|| format!("reading {}", rules.display()))?;
            let rules: Vec<RuleEntry> = serde_json::from_slice(&text)
                .with_context(|| format!("{}: not a rule list", rules.display()))?;
            submit_call(&common, ComplianceCall::SetRules { rules })?;
        }
        ComplianceCmd::AddProvider {
            common,
            provider,
            name,
        } => submit_call(
            &common,
            ComplianceCall::AddProvider {
                key: h32(&provider, "--provider")?,
                name,
            },
        )?,
        ComplianceCmd::RevokeProvider {
            common,
            provider,
            from_height,
        } => submit_call(
            &common,
            ComplianceCall::RevokeProvider {
                key: h32(&provider, "--provider")?,
                from_height,
            },
        )?,
        ComplianceCmd::SetRoles {
            common,
            admin,
            list_keeper,
        } => submit_call(
            &common,
            ComplianceCall::SetRoles {
                admin: h32(&admin, "--admin")?,
                list_keeper: h32(&list_keeper, "--list-keeper")?,
            },
        )?,
        ComplianceCmd::List {
            common,
            list,
            add,
            remove,
        } => {
            let parse = |v: &[String]| -> Result<Vec<[u8; 32]>> {
                v.iter().map(|a| h32(a, "address")).collect()
            };
            submit_call(
                &common,
                ComplianceCall::UpdateList {
                    list: match list {
                        ListArg::Deny => ListKind::Deny,
                        ListArg::Exempt => ListKind::Exempt,
                    },
                    add: parse(&add)?,
                    remove: parse(&remove)?,
                },
            )?;
        }
        ComplianceCmd::SetEnvelopeKey {
            common,
            envelope_key,
            clear,
        } => {
            let provider = plume_client::keyfile::read_account_key(&common.key)?;
            let key = match (envelope_key, clear) {
                (Some(f), false) => Some(plume_compliance::travel::public_key(
                    &read_envelope_secret(&f)?,
                )),
                _ => None,
            };
            submit_call(
                &common,
                ComplianceCall::SetEnvelopeKey {
                    provider: provider.public_key().to_bytes(),
                    key,
                },
            )?;
        }
        ComplianceCmd::EnvelopeKeys { id, node } => {
            h32(&id, "address or provider")?;
            let v = plume_client::rpc(
                &node,
                "plume_query",
                json!(["compliance", "envelope-keys", id]),
            )?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        ComplianceCmd::RevokeAttestation { common, identity } => {
            let key = plume_client::keyfile::read_account_key(&common.key)?;
            submit_call(
                &common,
                ComplianceCall::RevokeAttestation {
                    identity: h32(&identity, "--identity")?,
                    provider: key.public_key().to_bytes(),
                },
            )?;
        }
    }
    Ok(())
}

fn read_envelope_secret(p: &std::path::Path) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    h32(text.trim(), &p.display().to_string())
}

/// The X25519 key to seal a travel-rule envelope to `beneficiary` with:
/// the one published (`set-envelope-key`) by the institution attesting
/// its identity. Several such institutions: the one whose attestation is
/// verified, if it is the only one; otherwise `--beneficiary-key` must
/// choose.
pub fn beneficiary_envelope_key(node: &str, beneficiary: &[u8; 32]) -> Result<String> {
    let v = plume_client::rpc(
        node,
        "plume_query",
        json!(["compliance", "envelope-keys", hex::encode(beneficiary)]),
    )?;
    let all = v.as_array().cloned().unwrap_or_default();
    // Only an institution whose attestation of the beneficiary still
    // stands: a registered provider not revoked, verified, not expired by
    // time (by this machine's clock; height expiry is the chain's to judge).
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let standing: Vec<&Value> = all
        .iter()
        .filter(|k| {
            let a = &k["attestation"];
            k["registered"] == true
                && k["revoked_from"].is_null()
                && a["status"] == "verified"
                && a["expires_at_ms"].as_u64().is_none_or(|t| t > now_ms)
        })
        .collect();
    let pick = match (all.len(), standing.len()) {
        (0, _) => bail!(
            "no institution attesting {} has published an envelope key \
             (`plume compliance set-envelope-key`); pass --beneficiary-key",
            hex::encode(beneficiary)
        ),
        (_, 0) => bail!(
            "the institutions attesting {} that published envelope keys are revoked or their \
             attestations no longer stand; pass --beneficiary-key",
            hex::encode(beneficiary)
        ),
        (_, 1) => standing[0],
        _ => bail!(
            "several institutions attest {} ({}); choose one with --beneficiary-key",
            hex::encode(beneficiary),
            all.iter()
                .map(|k| format!(
                    "{} {}",
                    k["name"].as_str().unwrap_or("?"),
                    k["envelope_key"]
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    pick["envelope_key"]
        .as_str()
        .map(str::to_owned)
        .context("the node's answer has no envelope_key")
}

/// The memo of a transfer carrying `info` (a JSON file) sealed to the
/// beneficiary institution's X25519 key (hex), with its commitment.
pub fn travel_memo_from(info: &std::path::Path, beneficiary_key: &str) -> Result<Vec<u8>> {
    use rand::RngCore;
    let text = std::fs::read(info).with_context(|| format!("reading {}", info.display()))?;
    let ti: plume_compliance::travel::TravelInfo = serde_json::from_slice(&text)
        .with_context(|| format!("{}: not travel-rule information", info.display()))?;
    let mut eph = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut eph);
    let sealed =
        plume_compliance::travel::seal(&ti, &h32(beneficiary_key, "--beneficiary-key")?, &eph);
    let memo = plume_compliance::travel_memo(&sealed);
    if memo.len() > plume_protocol::tx::MEMO_BYTES_MAX {
        bail!(
            "{}: the sealed envelope is {} bytes, the memo holds {}; shorten the fields",
            info.display(),
            memo.len(),
            plume_protocol::tx::MEMO_BYTES_MAX
        );
    }
    Ok(memo)
}

fn print_policy(p: &Value) {
    println!(
        "policy version {} (effective from height {})",
        p["version"], p["effective_height"]
    );
    println!("  admin        {}", p["admin"].as_str().unwrap_or("-"));
    println!(
        "  list keeper  {}",
        p["list_keeper"].as_str().unwrap_or("-")
    );
    for pr in p["providers"].as_array().into_iter().flatten() {
        println!(
            "  provider     {} {}{}",
            pr["key"].as_str().unwrap_or("-"),
            pr["name"].as_str().unwrap_or("-"),
            pr.get("revoked_from")
                .map(|h| format!(" (revoked from height {h})"))
                .unwrap_or_default()
        );
    }
    for r in p["rules"].as_array().into_iter().flatten() {
        let mut params = r.as_object().cloned().unwrap_or_default();
        let id = params.remove("id").unwrap_or_default();
        let kind = params.remove("kind").unwrap_or_default();
        println!(
            "  rule {:>4}    {:<20} {}",
            id,
            kind.as_str().unwrap_or("?"),
            Value::Object(params)
        );
    }
}

fn explain(node: &str, tx: &str) -> Result<()> {
    let t = plume_client::rpc(node, "plume_getTransaction", json!([tx]))?;
    let height = t["height"]
        .as_u64()
        .context("node answered without a height")?;
    let page: AuditPage = serde_json::from_value(plume_client::rpc(
        node,
        "plume_complianceAudit",
        json!([height, height]),
    )?)?;
    let tx_lc = tx.trim_start_matches("0x").to_ascii_lowercase();
    let receipt = &t["receipt"];
    println!("transaction {tx_lc} at height {height}");
    println!(
        "  receipt: {} ({}, code {})",
        receipt["status"].as_str().unwrap_or("?"),
        receipt["reason"].as_str().unwrap_or("?"),
        receipt["reason_code"]
    );
    let Some(e) = page.entries.iter().find(|e| e.tx == tx_lc) else {
        println!("  not checked by the compliance rules (no value moved, or no rules in force, or it failed before the rules ran)");
        return Ok(());
    };
    println!(
        "  compliance verdict: {} under policy version {}",
        e.verdict, e.policy_version
    );
    println!("  input hash: {}", e.input_hash);
    if let Some(id) = e.rule_id {
        let p = query(node, "policy", &[&e.policy_version.to_string()])?;
        let rule = p["rules"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["id"] == json!(id)))
            .cloned()
            .unwrap_or(Value::Null);
        println!("  decided by rule {id}: {rule}");
        println!("  code {} {}", e.code, e.code_name);
    }
    Ok(())
}

/// Fetch the audit report of `from..=to` from `node` (page by page).
pub fn fetch_report(node: &str, from: u64, to: u64) -> Result<AuditReport> {
    let chain = plume_client::rpc(node, "plume_status", json!([]))?["chain_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut pages = Vec::new();
    let mut h = from;
    while h <= to {
        let end = to.min(h + AUDIT_BLOCKS_MAX - 1);
        let page: AuditPage = serde_json::from_value(plume_client::rpc(
            node,
            "plume_complianceAudit",
            json!([h, end]),
        )?)
        .context("the node's audit page does not parse")?;
        if page.to < h {
            bail!("the node returned an empty page at height {h}");
        }
        h = page.to + 1;
        pages.push(page);
    }
    AuditReport::from_pages(&chain, pages)
}

/// `plume audit report`.
pub fn report(
    node: &str,
    from: u64,
    to: u64,
    format: Format,
    out: Option<&std::path::Path>,
) -> Result<()> {
    let r = fetch_report(node, from, to)?;
    let bytes = match format {
        Format::Json => r.to_json(),
        Format::Csv => r.to_csv(),
        Format::Pdf => r.to_pdf(),
    };
    match out {
        Some(p) => {
            plume_client::fsutil::write_atomic(p, &bytes, 0o644)
                .with_context(|| format!("writing {}", p.display()))?;
            eprintln!(
                "wrote {} ({} checked, {} failed, {} flagged; heights {}..{}, state root {})",
                p.display(),
                r.checked,
                r.failed,
                r.flagged,
                r.from,
                r.to,
                r.state_root
            );
        }
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
        }
    }
    Ok(())
}
