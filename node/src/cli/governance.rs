//! `plume tx stake|unstake|withdraw|propose|deposit|vote` and
//! `plume query proposals|proposal|params|stake`: the stake and governance
//! modules from the command line.

use super::tx::{submit_or_dry_run, tx_prelude, TxCommon};
use anyhow::{anyhow, bail, Context, Result};
use plume_client::txbuild;
use plume_protocol::calls::{EncodedCall, ModuleCall};
use plume_protocol::governance::{
    proposal_id, schedule_id, GovCall, ParamChange, ProposalKind, StakeCall, VestingCall,
    VoteOption, MODULE_GOVERNANCE, MODULE_STAKE, MODULE_VESTING,
};
use serde_json::{json, Value};

/// Stake and governance transactions.
#[derive(clap::Subcommand, Debug)]
pub enum GovTxCmd {
    /// Bond PLUME (it then weighs in governance votes).
    Stake {
        #[command(flatten)]
        common: TxCommon,
        /// Amount (base units).
        #[arg(long)]
        amount: u128,
    },
    /// Start unbonding PLUME (withdrawable after the unbonding period).
    Unstake {
        #[command(flatten)]
        common: TxCommon,
        /// Amount (base units).
        #[arg(long)]
        amount: u128,
    },
    /// Pay out every matured unbonding entry.
    Withdraw {
        #[command(flatten)]
        common: TxCommon,
    },
    /// Submit a proposal: `--text`, `--set NAME=VALUE... --activation-height
    /// H`, `--spend-to ADDR --spend-amount N`, or `--upgrade-version V
    /// --upgrade-height H`.
    Propose {
        #[command(flatten)]
        common: TxCommon,
        /// Title.
        #[arg(long)]
        title: String,
        /// Initial deposit (base units).
        #[arg(long)]
        deposit: u128,
        /// A text proposal.
        #[arg(long, conflicts_with_all = ["set", "spend_to"])]
        text: Option<String>,
        /// A parameter change, e.g. `fee_burn_percent=40` (repeat). Names:
        /// fee_burn_percent, fee_treasury_percent, block_gas_target,
        /// base_fee_min, base_fee_change_denominator, min_deposit,
        /// deposit_period_blocks, voting_period_blocks, quorum_percent,
        /// threshold_percent, veto_percent, unbonding_blocks.
        #[arg(long, requires = "activation_height")]
        set: Vec<String>,
        /// First block the change applies to.
        #[arg(long)]
        activation_height: Option<u64>,
        /// A treasury spend to this address.
        #[arg(long, requires = "spend_amount")]
        spend_to: Option<String>,
        /// Amount of the treasury spend.
        #[arg(long)]
        spend_amount: Option<u128>,
        /// A revenue-sharing program: percent of the fee pool's receipts
        /// shared per epoch (with --revenue-epoch-blocks and --institution).
        #[arg(long, requires = "revenue_epoch_blocks")]
        revenue_share: Option<u8>,
        /// Blocks per revenue epoch.
        #[arg(long)]
        revenue_epoch_blocks: Option<u64>,
        /// A participating institution, `IDENTITY=PAYOUT` (64 hex each;
        /// the compliance identity and the address paid; repeat).
        #[arg(long = "institution")]
        institutions: Vec<String>,
        /// A vested treasury grant to this address (starts when it passes).
        #[arg(long, requires_all = ["grant_amount", "grant_duration_ms"])]
        grant_to: Option<String>,
        /// Amount of the grant.
        #[arg(long)]
        grant_amount: Option<u128>,
        /// Cliff of the grant, ms.
        #[arg(long, default_value_t = 0)]
        grant_cliff_ms: u64,
        /// Duration of the grant, ms.
        #[arg(long)]
        grant_duration_ms: Option<u64>,
        /// A software upgrade: the version required from --upgrade-height.
        #[arg(long, requires = "upgrade_height")]
        upgrade_version: Option<String>,
        /// First block the upgraded software executes.
        #[arg(long)]
        upgrade_height: Option<u64>,
    },
    /// Lock PLUME in a vesting schedule for a beneficiary (times are
    /// block times, ms since the Unix epoch; at most five years).
    Vest {
        #[command(flatten)]
        common: TxCommon,
        /// Beneficiary address.
        #[arg(long)]
        beneficiary: String,
        /// Amount locked (base units).
        #[arg(long)]
        total: u128,
        /// Start, ms since the Unix epoch (default: now).
        #[arg(long)]
        start_ms: Option<u64>,
        /// Nothing vests before start + cliff.
        #[arg(long, default_value_t = 0)]
        cliff_ms: u64,
        /// Everything has vested at start + duration.
        #[arg(long)]
        duration_ms: u64,
        /// Address that may take back the unvested part (default: none).
        #[arg(long)]
        clawback: Option<String>,
    },
    /// Beneficiary: claim what vested.
    ClaimVested {
        #[command(flatten)]
        common: TxCommon,
        /// Schedule id (64 hex).
        #[arg(long)]
        schedule: String,
    },
    /// Clawback authority: take back what has not vested.
    Clawback {
        #[command(flatten)]
        common: TxCommon,
        /// Schedule id (64 hex).
        #[arg(long)]
        schedule: String,
    },
    /// Add to a proposal's deposit.
    Deposit {
        #[command(flatten)]
        common: TxCommon,
        /// Proposal id (64 hex).
        #[arg(long)]
        proposal: String,
        /// Amount (base units).
        #[arg(long)]
        amount: u128,
    },
    /// Vote yes, no, abstain or veto (again: the last vote counts).
    Vote {
        #[command(flatten)]
        common: TxCommon,
        /// Proposal id (64 hex).
        #[arg(long)]
        proposal: String,
        /// yes | no | abstain | veto
        #[arg(long)]
        option: String,
    },
}

fn h32(s: &str, what: &str) -> Result<[u8; 32]> {
    let v = hex::decode(s.trim_start_matches("0x")).with_context(|| format!("{what}: not hex"))?;
    v.try_into()
        .map_err(|_| anyhow!("{what}: must be 32 bytes (64 hex)"))
}

/// Parse `NAME=VALUE` pairs into a parameter change (unknown names and bad
/// values are errors that name them).
pub fn parse_change(set: &[String]) -> Result<ParamChange> {
    let mut obj = serde_json::Map::new();
    for s in set {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {s}: expected NAME=VALUE"))?;
        let n: u128 = v
            .trim()
            .parse()
            .with_context(|| format!("--set {s}: value is not a non-negative integer"))?;
        obj.insert(k.trim().to_string(), json!(n));
    }
    let c: ParamChange =
        serde_json::from_value(Value::Object(obj)).map_err(|e| anyhow!("--set: {e}"))?;
    c.check_rules()
        .map_err(|r| anyhow!("--set: {}", plume_execution::standard().reason_name(r)))?;
    Ok(c)
}

fn submit(common: &TxCommon, module: u16, bytes: Vec<u8>) -> Result<(String, u64)> {
    let (key, chain, seq) = tx_prelude(common)?;
    let body = txbuild::body(
        &chain,
        &[&key],
        seq,
        common.fees(),
        u64::MAX,
        EncodedCall { module, bytes },
    );
    let tx = plume_protocol::Transaction::sign(body, &[&key]);
    submit_or_dry_run(common, tx)?;
    Ok((key.public_key().address().to_hex(), seq))
}

/// Run a stake or governance transaction command.
pub fn run_tx(cmd: GovTxCmd) -> Result<()> {
    match cmd {
        GovTxCmd::Stake { common, amount } => {
            submit(&common, MODULE_STAKE, StakeCall::Bond { amount }.encode())?;
        }
        GovTxCmd::Unstake { common, amount } => {
            submit(&common, MODULE_STAKE, StakeCall::Unbond { amount }.encode())?;
        }
        GovTxCmd::Withdraw { common } => {
            submit(&common, MODULE_STAKE, StakeCall::Withdraw.encode())?;
        }
        GovTxCmd::Propose {
            common,
            title,
            deposit,
            text,
            set,
            activation_height,
            spend_to,
            spend_amount,
            upgrade_version,
            upgrade_height,
            grant_to,
            grant_amount,
            grant_cliff_ms,
            grant_duration_ms,
            revenue_share,
            revenue_epoch_blocks,
            institutions,
        } => {
            let kind = match (text, set.is_empty(), spend_to, upgrade_version) {
                _ if revenue_share.is_some() => ProposalKind::RevenueProgram {
                    share_percent: revenue_share.unwrap_or_default(),
                    epoch_blocks: revenue_epoch_blocks
                        .ok_or_else(|| anyhow!("--revenue-share needs --revenue-epoch-blocks"))?,
                    institutions: institutions
                        .iter()
                        .map(|i| {
                            let (id, payout) = i.split_once('=').ok_or_else(|| {
                                anyhow!("--institution {i}: expected IDENTITY=PAYOUT")
                            })?;
                            Ok((h32(id, "--institution identity")?, h32(payout, "--institution payout")?))
                        })
                        .collect::<Result<Vec<_>>>()?,
                },
                _ if grant_to.is_some() => ProposalKind::VestedGrant {
                    to: h32(grant_to.as_deref().unwrap_or_default(), "--grant-to")?,
                    amount: grant_amount.ok_or_else(|| anyhow!("--grant-to needs --grant-amount"))?,
                    cliff_ms: grant_cliff_ms,
                    duration_ms: grant_duration_ms
                        .ok_or_else(|| anyhow!("--grant-to needs --grant-duration-ms"))?,
                },
                (Some(text), true, None, None) => ProposalKind::Text { text },
                (None, false, None, None) => ProposalKind::ParamChange {
                    change: parse_change(&set)?,
                    activation_height: activation_height
                        .ok_or_else(|| anyhow!("--set needs --activation-height"))?,
                },
                (None, true, Some(to), None) => ProposalKind::TreasurySpend {
                    to: h32(&to, "--spend-to")?,
                    amount: spend_amount.ok_or_else(|| anyhow!("--spend-to needs --spend-amount"))?,
                },
                (None, true, None, Some(version)) => {
                    if plume_protocol::governance::parse_version(&version).is_none() {
                        bail!("--upgrade-version {version}: expected MAJOR.MINOR.PATCH");
                    }
                    ProposalKind::SoftwareUpgrade {
                        version,
                        height: upgrade_height
                            .ok_or_else(|| anyhow!("--upgrade-version needs --upgrade-height"))?,
                    }
                }
                _ => bail!(
                    "give one of --text, --set (with --activation-height), --spend-to or --upgrade-version"
                ),
            };
            let call = GovCall::Propose {
                title,
                kind,
                deposit,
            };
            let json_out = common.json;
            let (payer, seq) = submit(&common, MODULE_GOVERNANCE, call.encode())?;
            let id = proposal_id(&h32(&payer, "payer")?, seq);
            if json_out {
                println!("{}", json!({ "proposal": hex::encode(id) }));
            } else {
                println!("proposal id {}", hex::encode(id));
            }
        }
        GovTxCmd::Vest {
            common,
            beneficiary,
            total,
            start_ms,
            cliff_ms,
            duration_ms,
            clawback,
        } => {
            let start_ms = start_ms.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64)
            });
            let call = VestingCall::Create {
                beneficiary: h32(&beneficiary, "--beneficiary")?,
                total,
                start_ms,
                cliff_ms,
                duration_ms,
                clawback: clawback.map(|c| h32(&c, "--clawback")).transpose()?,
            };
            let json_out = common.json;
            let (payer, seq) = submit(&common, MODULE_VESTING, call.encode())?;
            let id = schedule_id(&h32(&payer, "payer")?, seq);
            if json_out {
                println!("{}", json!({ "schedule": hex::encode(id) }));
            } else {
                println!("schedule id {}", hex::encode(id));
            }
        }
        GovTxCmd::ClaimVested { common, schedule } => {
            let call = VestingCall::Claim {
                schedule: h32(&schedule, "--schedule")?,
            };
            submit(&common, MODULE_VESTING, call.encode())?;
        }
        GovTxCmd::Clawback { common, schedule } => {
            let call = VestingCall::Clawback {
                schedule: h32(&schedule, "--schedule")?,
            };
            submit(&common, MODULE_VESTING, call.encode())?;
        }
        GovTxCmd::Deposit {
            common,
            proposal,
            amount,
        } => {
            let call = GovCall::Deposit {
                proposal: h32(&proposal, "--proposal")?,
                amount,
            };
            submit(&common, MODULE_GOVERNANCE, call.encode())?;
        }
        GovTxCmd::Vote {
            common,
            proposal,
            option,
        } => {
            let option = VoteOption::parse(&option)
                .ok_or_else(|| anyhow!("--option: one of yes, no, abstain, veto"))?;
            let call = GovCall::Vote {
                proposal: h32(&proposal, "--proposal")?,
                option,
            };
            submit(&common, MODULE_GOVERNANCE, call.encode())?;
        }
    }
    Ok(())
}

fn query(node: &str, module: &str, method: &str, args: &[&str]) -> Result<Value> {
    let mut params = vec![json!(module), json!(method)];
    params.extend(args.iter().map(|a| json!(a)));
    Ok(plume_client::rpc(
        node,
        "plume_query",
        Value::Array(params),
    )?)
}

/// Stake and governance queries.
#[derive(clap::Subcommand, Debug)]
pub enum GovQueryCmd {
    /// Open proposals (deposit or voting period).
    Proposals {
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One proposal, open or decided.
    Proposal {
        /// Proposal id (64 hex).
        id: String,
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
    },
    /// The parameters in force (and those scheduled).
    Params {
        /// Height (default: the next block).
        #[arg(long)]
        height: Option<u64>,
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
    },
    /// A vesting schedule, with what has vested at the latest block's time.
    Vesting {
        /// Schedule id (64 hex).
        id: String,
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
    },
    /// The revenue-sharing program and the current epoch's counts.
    Revenue {
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
    },
    /// An account's bonded and unbonding stake.
    Stake {
        /// Address (64 hex).
        address: String,
        /// Node API address.
        #[arg(long, default_value = "127.0.0.1:26700")]
        node: String,
    },
}

fn print_proposal(p: &Value) {
    println!(
        "{}  {:<20} {}  deposit {} / {}  yes {} no {} abstain {} veto {}  (voting {}..={}, decided at {})",
        p["id"].as_str().unwrap_or(""),
        p["status"].as_str().unwrap_or(""),
        p["title"].as_str().unwrap_or(""),
        p["total_deposit"].as_str().unwrap_or(""),
        p["min_deposit"].as_str().unwrap_or(""),
        p["tally"]["yes"].as_str().unwrap_or(""),
        p["tally"]["no"].as_str().unwrap_or(""),
        p["tally"]["abstain"].as_str().unwrap_or(""),
        p["tally"]["veto"].as_str().unwrap_or(""),
        p["voting_start"],
        p["voting_end"],
        p["decided_height"],
    );
}

/// Run a stake or governance query.
pub fn run_query(cmd: GovQueryCmd) -> Result<()> {
    match cmd {
        GovQueryCmd::Proposals { node, json } => {
            let v = query(&node, "governance", "proposals", &[])?;
            if json {
                println!("{v}");
            } else {
                let list = v.as_array().cloned().unwrap_or_default();
                if list.is_empty() {
                    println!("no open proposals");
                }
                for p in &list {
                    print_proposal(p);
                }
            }
        }
        GovQueryCmd::Proposal { id, node } => {
            let v = query(&node, "governance", "proposal", &[&id])?;
            if v.is_null() {
                bail!("no proposal {id}");
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        GovQueryCmd::Params { height, node } => {
            let params = match height {
                Some(h) => json!([h]),
                None => json!([]),
            };
            let v = plume_client::rpc(&node, "plume_getParams", params)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        GovQueryCmd::Vesting { id, node } => {
            let status = plume_client::rpc(&node, "plume_status", json!([]))?;
            let h = status["height"].as_u64().unwrap_or(0);
            let t = plume_client::rpc(&node, "plume_getBlock", json!([h]))
                .ok()
                .and_then(|b| b["time_ms"].as_u64())
                .unwrap_or(0);
            let v = query(&node, "vesting", "schedule", &[&id, &t.to_string()])?;
            if v.is_null() {
                bail!("no vesting schedule {id}");
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        GovQueryCmd::Revenue { node } => {
            let v = query(&node, "governance", "revenue", &[])?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        GovQueryCmd::Stake { address, node } => {
            let v = query(&node, "stake", "account", &[&address])?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_changes_parse_and_bad_ones_name_the_fault() {
        let c = parse_change(&["fee_burn_percent=40".into(), "min_deposit=5".into()]).unwrap();
        assert_eq!(c.fee_burn_percent, Some(40));
        assert_eq!(c.min_deposit, Some(5));
        let e = parse_change(&["burn=40".into()]).unwrap_err().to_string();
        assert!(e.contains("burn"), "{e}");
        let e = parse_change(&["fee_burn_percent=101".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("BAD_PARAMS"), "{e}");
        let e = parse_change(&["fee_burn_percent".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("NAME=VALUE"), "{e}");
    }
}
