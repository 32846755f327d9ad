//! The fund-flow index of a regulator node: every finalized block's
//! receipts turned into flows (who paid whom, which asset, how much) in an
//! embedded SQLite database, and the questions a supervisor asks of them.
//!
//! - [`Index::index_block`] writes one block (its transactions and their
//!   flows) in one SQLite transaction together with the indexed height, so
//!   a process killed at any moment resumes at the next block with no gap
//!   and no duplicate row; blocks must come in height order.
//! - Flows come from receipts' balance events with the compliance engine's
//!   own pairing ([`plume_compliance::flows_of`]): a transfer is one flow,
//!   a settlement one per leg, a batch payment one per payee; issuance has
//!   no source, a burn no destination; fees, tips and fee shares are not
//!   flows. Only successful transactions move value.
//! - Queries: [`Index::walk`] (flows out of or into an account over a
//!   height range, to a bounded depth), [`Index::top_counterparties`],
//!   [`Index::volume`], [`Index::trace`].
//!
//! Amounts are u128: stored as 16-byte big-endian blobs and summed here,
//! never in SQL (SQLite integers are 64-bit).
//!
//! - Alerts ([`AlertRules`]): evaluated on each block as it is indexed, in
//!   the same SQLite transaction (so an alert is stored exactly once, with
//!   its block): large transfers, a first flow to a new counterparty above
//!   an amount, rapid in-out (most of what an account received within a
//!   few blocks sent on), and transactions the compliance rules stopped.
//!
//! Not built: PostgreSQL, identities and jurisdictions from the compliance
//! registry, the compliance engine's non-blocking flags (they are not in
//! receipts).

use plume_protocol::receipt::{Cause, Receipt, Status};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// An index error.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// SQLite failed.
    #[error("index database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A block out of order.
    #[error("index: block {got} does not follow the indexed height {have}")]
    Gap {
        /// Indexed up to.
        have: u64,
        /// Offered.
        got: u64,
    },
    /// A stored row that is not what this code writes.
    #[error("index: corrupt row: {0}")]
    Corrupt(String),
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, IndexError>;

/// One transaction of a block, as the index takes it.
#[derive(Clone, Debug)]
pub struct IndexedTx {
    /// Its receipt (the hash is in it).
    pub receipt: Receipt,
}

/// One flow row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct FlowRow {
    /// Block height.
    pub height: u64,
    /// Transaction's index in the block.
    pub index: u32,
    /// Flow's position among the transaction's flows.
    pub seq: u32,
    /// Debited account (None: issuance).
    #[serde(with = "opt_hex")]
    pub from: Option<[u8; 32]>,
    /// Credited account (None: burn).
    #[serde(with = "opt_hex")]
    pub to: Option<[u8; 32]>,
    /// Asset.
    #[serde(with = "hex32")]
    pub asset: [u8; 32],
    /// Amount.
    #[serde(serialize_with = "as_string")]
    pub amount: u128,
    /// Transaction id.
    #[serde(with = "hex32")]
    pub tx: [u8; 32],
}

/// Direction of a walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Follow money out of the account.
    Out,
    /// Follow money back to where it came from.
    In,
}

/// A walk's bounds.
#[derive(Clone, Copy, Debug)]
pub struct WalkBounds {
    /// Lowest height.
    pub from_height: u64,
    /// Highest height.
    pub to_height: u64,
    /// Hops (1: the account's own flows).
    pub depth: u32,
    /// Most flows returned (the walk stops there and says so).
    pub flows_max: usize,
}

/// Most hops of a walk.
pub const DEPTH_MAX: u32 = 8;
/// Most flows a walk returns.
pub const WALK_FLOWS_MAX: usize = 100_000;

/// What a walk found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Walk {
    /// Every flow reached, ordered by (height, index, seq).
    pub flows: Vec<FlowRow>,
    /// Accounts reached, with the hop they were first reached at.
    pub accounts: BTreeMap<String, u32>,
    /// The walk hit `flows_max` and stopped.
    pub truncated: bool,
}

/// A counterparty's total with an account.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Counterparty {
    /// Its address (hex).
    pub account: String,
    /// Asset (hex).
    pub asset: String,
    /// Total sent to it (out) plus received from it (in).
    #[serde(serialize_with = "as_string")]
    pub sent: u128,
    /// Total received from it.
    #[serde(serialize_with = "as_string")]
    pub received: u128,
    /// Flows.
    pub flows: u64,
}

/// Volume of one asset.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Volume {
    /// Asset (hex).
    pub asset: String,
    /// Sum of flow amounts (transfers and legs; issuance and burns apart).
    #[serde(serialize_with = "as_string")]
    pub transferred: u128,
    /// Flows between two accounts.
    pub flows: u64,
    /// Issued.
    #[serde(serialize_with = "as_string")]
    pub issued: u128,
    /// Burned.
    #[serde(serialize_with = "as_string")]
    pub burned: u128,
}

/// One transaction's index record.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Trace {
    /// Block height.
    pub height: u64,
    /// Index in the block.
    pub index: u32,
    /// "success", "failed" or "rejected".
    pub status: String,
    /// Reason code.
    pub reason: u16,
    /// Fee paid.
    #[serde(serialize_with = "as_string")]
    pub fee_paid: u128,
    /// Its flows.
    pub flows: Vec<FlowRow>,
}

fn as_string<S: serde::Serializer>(v: &u128, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

mod hex32 {
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
}

mod opt_hex {
    pub fn serialize<S: serde::Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(a) => s.serialize_str(&hex::encode(a)),
            None => s.serialize_none(),
        }
    }
}

/// The flows of one receipt (successful transactions only).
pub fn receipt_flows(r: &Receipt) -> Vec<plume_compliance::Flow> {
    if r.status != Status::Success {
        return Vec::new();
    }
    let moving: Vec<_> = r
        .events
        .iter()
        .filter(|e| matches!(e.cause, Cause::Transfer | Cause::Mint | Cause::Burn))
        .cloned()
        .collect();
    plume_compliance::flows_of(&moving)
}

/// Alert rules an observer evaluates on every block it indexes (its
/// config's `[alerts]`; amounts in the asset's smallest unit, any asset).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRules {
    /// A flow between two accounts of at least this amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub large_transfer: Option<u64>,
    /// A first flow from an account to another, of at least this amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_counterparty: Option<u64>,
    /// An account sends on at least 90 % of what it received within the
    /// last `rapid_in_out_blocks` blocks, both at least this amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rapid_in_out: Option<u64>,
    /// The window of `rapid_in_out`, in blocks.
    #[serde(default = "default_rapid_blocks")]
    pub rapid_in_out_blocks: u64,
    /// A transaction the compliance rules stopped (Failed, code 200-299).
    #[serde(default = "yes")]
    pub compliance_stops: bool,
    /// Also POST each alert (JSON) to this `http://host:port/path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<String>,
}

fn default_rapid_blocks() -> u64 {
    10
}

fn yes() -> bool {
    true
}

impl Default for AlertRules {
    fn default() -> Self {
        AlertRules {
            large_transfer: None,
            new_counterparty: None,
            rapid_in_out: None,
            rapid_in_out_blocks: default_rapid_blocks(),
            compliance_stops: true,
            webhook: None,
        }
    }
}

/// One alert.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Alert {
    /// Block height.
    pub height: u64,
    /// Transaction's index in the block.
    pub index: u32,
    /// Flow's position in the transaction (0 for a transaction alert).
    pub seq: u32,
    /// `large_transfer`, `new_counterparty`, `rapid_in_out` or
    /// `compliance_stop`.
    pub kind: String,
    /// The account it is about (hex).
    pub account: String,
    /// Transaction id (hex).
    pub tx: String,
    /// Amount (decimal; 0 for a compliance stop).
    #[serde(serialize_with = "as_string")]
    pub amount: u128,
    /// For people.
    pub detail: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, id BLOB NOT NULL, root BLOB NOT NULL, txs INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    height INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL UNIQUE,
    status INTEGER NOT NULL, reason INTEGER NOT NULL, fee BLOB NOT NULL,
    PRIMARY KEY (height, idx));
CREATE TABLE IF NOT EXISTS flows (
    height INTEGER NOT NULL, idx INTEGER NOT NULL, seq INTEGER NOT NULL,
    src BLOB, dst BLOB, asset BLOB NOT NULL, amount BLOB NOT NULL, tx BLOB NOT NULL,
    PRIMARY KEY (height, idx, seq));
CREATE INDEX IF NOT EXISTS flows_src ON flows (src, height);
CREATE INDEX IF NOT EXISTS flows_dst ON flows (dst, height);
CREATE TABLE IF NOT EXISTS alerts (
    height INTEGER NOT NULL, idx INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
    account TEXT NOT NULL, tx TEXT NOT NULL, amount BLOB NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (height, idx, seq, kind));
";

/// The index database.
pub struct Index {
    db: Connection,
    rules: AlertRules,
}

fn blob32(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| IndexError::Corrupt("a 32-byte column of another length".into()))
}

fn amount(v: Vec<u8>) -> Result<u128> {
    let b: [u8; 16] = v
        .try_into()
        .map_err(|_| IndexError::Corrupt("an amount that is not 16 bytes".into()))?;
    Ok(u128::from_be_bytes(b))
}

type RawFlow = (
    i64,
    i64,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
);

fn flow_row(r: RawFlow) -> Result<FlowRow> {
    Ok(FlowRow {
        height: r.0 as u64,
        index: r.1 as u32,
        seq: r.2 as u32,
        from: r.3.map(blob32).transpose()?,
        to: r.4.map(blob32).transpose()?,
        asset: blob32(r.5)?,
        amount: amount(r.6)?,
        tx: blob32(r.7)?,
    })
}

const FLOW_COLS: &str = "height, idx, seq, src, dst, asset, amount, tx";

fn read_flow(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawFlow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

impl Index {
    /// Open (creating) the index at `path`, in WAL mode: readers (the API)
    /// never wait on the indexer.
    pub fn open(path: &Path) -> Result<Index> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        Ok(Index {
            db,
            rules: AlertRules::default(),
        })
    }

    /// Evaluate these alert rules on the blocks indexed from now on.
    pub fn set_rules(&mut self, rules: AlertRules) {
        self.rules = rules;
    }

    /// Open an existing index for queries only.
    pub fn open_read(path: &Path) -> Result<Index> {
        let db = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Index {
            db,
            rules: AlertRules::default(),
        })
    }

    /// Highest block indexed (0: none yet; genesis has no transactions).
    pub fn height(&self) -> Result<u64> {
        let v: Option<i64> = self
            .db
            .query_row("SELECT v FROM meta WHERE k = 'height'", [], |r| r.get(0))
            .optional()?;
        Ok(v.unwrap_or(0) as u64)
    }

    /// Index block `height` (id, state root after it, its transactions in
    /// order) in one transaction with the indexed height. A block at or
    /// below the indexed height is skipped (already there); one above the
    /// next height is an error.
    pub fn index_block(
        &mut self,
        height: u64,
        id: &[u8; 32],
        root: &[u8; 32],
        txs: &[IndexedTx],
    ) -> Result<bool> {
        let have = self.height()?;
        if height <= have {
            return Ok(false);
        }
        if height != have + 1 {
            return Err(IndexError::Gap { have, got: height });
        }
        let t = self.db.transaction()?;
        t.execute(
            "INSERT INTO blocks (height, id, root, txs) VALUES (?1, ?2, ?3, ?4)",
            params![height as i64, &id[..], &root[..], txs.len() as i64],
        )?;
        {
            let mut tx_stmt = t.prepare_cached(
                "INSERT INTO txs (height, idx, hash, status, reason, fee) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut flow_stmt = t.prepare_cached(
                "INSERT INTO flows (height, idx, seq, src, dst, asset, amount, tx) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (i, itx) in txs.iter().enumerate() {
                let r = &itx.receipt;
                let status = match r.status {
                    Status::Success => 0,
                    Status::Failed => 1,
                    Status::Rejected => 2,
                };
                tx_stmt.execute(params![
                    height as i64,
                    i as i64,
                    &r.tx_hash[..],
                    status,
                    r.reason.0,
                    &r.fee_paid.to_be_bytes()[..],
                ])?;
                for (k, f) in receipt_flows(r).iter().enumerate() {
                    flow_stmt.execute(params![
                        height as i64,
                        i as i64,
                        k as i64,
                        f.from.as_ref().map(|a| &a[..]),
                        f.to.as_ref().map(|a| &a[..]),
                        &f.asset[..],
                        &f.amount.to_be_bytes()[..],
                        &r.tx_hash[..],
                    ])?;
                }
            }
        }
        evaluate_alerts(&t, &self.rules, height, txs)?;
        t.execute(
            "INSERT INTO meta (k, v) VALUES ('height', ?1) ON CONFLICT (k) DO UPDATE SET v = ?1",
            params![height as i64],
        )?;
        t.commit()?;
        Ok(true)
    }

    /// Flows with `account` as source (out) or destination (in) in the
    /// height range, ordered.
    fn flows_of(
        &self,
        account: &[u8; 32],
        dir: Direction,
        h1: u64,
        h2: u64,
    ) -> Result<Vec<FlowRow>> {
        let col = match dir {
            Direction::Out => "src",
            Direction::In => "dst",
        };
        let mut stmt = self.db.prepare_cached(&format!(
            "SELECT {FLOW_COLS} FROM flows WHERE {col} = ?1 AND height BETWEEN ?2 AND ?3 ORDER BY height, idx, seq"
        ))?;
        let rows = stmt.query_map(
            params![
                &account[..],
                h1.min(i64::MAX as u64) as i64,
                h2.min(i64::MAX as u64) as i64
            ],
            read_flow,
        )?;
        rows.map(|r| flow_row(r?)).collect()
    }

    /// Flows out of (or into) `account` in the height range, followed
    /// hop by hop to `depth`: hop 1 is the account's own flows, hop k the
    /// flows of the accounts first reached at hop k-1. Every flow appears
    /// once; the walk stops at `flows_max` flows and says so.
    pub fn walk(&self, account: &[u8; 32], dir: Direction, b: WalkBounds) -> Result<Walk> {
        let depth = b.depth.min(DEPTH_MAX);
        let max = b.flows_max.min(WALK_FLOWS_MAX);
        let mut seen_flows: BTreeSet<(u64, u32, u32)> = BTreeSet::new();
        let mut flows = Vec::new();
        let mut reached: BTreeMap<[u8; 32], u32> = BTreeMap::new();
        reached.insert(*account, 0);
        let mut frontier = vec![*account];
        let mut truncated = false;
        'hops: for hop in 1..=depth {
            let mut next = Vec::new();
            for a in &frontier {
                for f in self.flows_of(a, dir, b.from_height, b.to_height)? {
                    if !seen_flows.insert((f.height, f.index, f.seq)) {
                        continue;
                    }
                    if flows.len() >= max {
                        truncated = true;
                        break 'hops;
                    }
                    let other = match dir {
                        Direction::Out => f.to,
                        Direction::In => f.from,
                    };
                    if let Some(o) = other {
                        if let std::collections::btree_map::Entry::Vacant(e) = reached.entry(o) {
                            e.insert(hop);
                            next.push(o);
                        }
                    }
                    flows.push(f);
                }
            }
            next.sort_unstable();
            frontier = next;
            if frontier.is_empty() {
                break;
            }
        }
        flows.sort();
        Ok(Walk {
            flows,
            accounts: reached
                .into_iter()
                .map(|(a, h)| (hex::encode(a), h))
                .collect(),
            truncated,
        })
    }

    /// The accounts `account` exchanged the most with in the height
    /// range (by amount sent plus received, per asset), at most `n`.
    pub fn top_counterparties(
        &self,
        account: &[u8; 32],
        h1: u64,
        h2: u64,
        n: usize,
    ) -> Result<Vec<Counterparty>> {
        // (counterparty, asset) -> (sent, received, flows)
        type Totals = BTreeMap<([u8; 32], [u8; 32]), (u128, u128, u64)>;
        let mut acc: Totals = BTreeMap::new();
        for f in self.flows_of(account, Direction::Out, h1, h2)? {
            if let Some(to) = f.to {
                let e = acc.entry((to, f.asset)).or_default();
                e.0 = e.0.saturating_add(f.amount);
                e.2 += 1;
            }
        }
        for f in self.flows_of(account, Direction::In, h1, h2)? {
            if let Some(from) = f.from {
                let e = acc.entry((from, f.asset)).or_default();
                e.1 = e.1.saturating_add(f.amount);
                e.2 += 1;
            }
        }
        let mut v: Vec<Counterparty> = acc
            .into_iter()
            .map(|((a, asset), (sent, received, flows))| Counterparty {
                account: hex::encode(a),
                asset: hex::encode(asset),
                sent,
                received,
                flows,
            })
            .collect();
        v.sort_by(|x, y| {
            (y.sent.saturating_add(y.received))
                .cmp(&x.sent.saturating_add(x.received))
                .then_with(|| x.account.cmp(&y.account))
        });
        v.truncate(n);
        Ok(v)
    }

    /// Volume per asset in the height range.
    pub fn volume(&self, h1: u64, h2: u64) -> Result<Vec<Volume>> {
        let mut stmt = self.db.prepare_cached(&format!(
            "SELECT {FLOW_COLS} FROM flows WHERE height BETWEEN ?1 AND ?2"
        ))?;
        let rows = stmt.query_map(
            params![
                h1.min(i64::MAX as u64) as i64,
                h2.min(i64::MAX as u64) as i64
            ],
            read_flow,
        )?;
        let mut acc: BTreeMap<[u8; 32], Volume> = BTreeMap::new();
        for r in rows {
            let f = flow_row(r?)?;
            let v = acc.entry(f.asset).or_insert_with(|| Volume {
                asset: hex::encode(f.asset),
                transferred: 0,
                flows: 0,
                issued: 0,
                burned: 0,
            });
            match (f.from, f.to) {
                (Some(_), Some(_)) => {
                    v.transferred = v.transferred.saturating_add(f.amount);
                    v.flows += 1;
                }
                (None, _) => v.issued = v.issued.saturating_add(f.amount),
                (_, None) => v.burned = v.burned.saturating_add(f.amount),
            }
        }
        Ok(acc.into_values().collect())
    }

    /// A transaction's record and flows.
    pub fn trace(&self, tx: &[u8; 32]) -> Result<Option<Trace>> {
        let row: Option<(i64, i64, i64, i64, Vec<u8>)> = self
            .db
            .query_row(
                "SELECT height, idx, status, reason, fee FROM txs WHERE hash = ?1",
                params![&tx[..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((height, idx, status, reason, fee)) = row else {
            return Ok(None);
        };
        let mut stmt = self.db.prepare_cached(&format!(
            "SELECT {FLOW_COLS} FROM flows WHERE height = ?1 AND idx = ?2 ORDER BY seq"
        ))?;
        let flows = stmt
            .query_map(params![height, idx], read_flow)?
            .map(|r| flow_row(r?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Trace {
            height: height as u64,
            index: idx as u32,
            status: match status {
                0 => "success",
                1 => "failed",
                _ => "rejected",
            }
            .into(),
            reason: reason as u16,
            fee_paid: amount(fee)?,
            flows,
        }))
    }

    /// Alerts raised in blocks [h1, h2], oldest first, at most `limit`.
    pub fn alerts(&self, h1: u64, h2: u64, limit: usize) -> Result<Vec<Alert>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT height, idx, seq, kind, account, tx, amount, detail FROM alerts
             WHERE height BETWEEN ?1 AND ?2 ORDER BY height, idx, seq, kind LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![
                h1.min(i64::MAX as u64) as i64,
                h2.min(i64::MAX as u64) as i64,
                limit.min(i64::MAX as usize) as i64
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Vec<u8>>(6)?,
                    r.get::<_, String>(7)?,
                ))
            },
        )?;
        rows.map(|r| {
            let (height, idx, seq, kind, account, tx, amt, detail) = r?;
            Ok(Alert {
                height: height as u64,
                index: idx as u32,
                seq: seq as u32,
                kind,
                account,
                tx,
                amount: amount(amt)?,
                detail,
            })
        })
        .collect()
    }

    /// Rows in the flows table (tests, metrics).
    pub fn flow_count(&self) -> Result<u64> {
        let n: i64 = self
            .db
            .query_row("SELECT COUNT(*) FROM flows", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Rows in the transactions table.
    pub fn tx_count(&self) -> Result<u64> {
        let n: i64 = self
            .db
            .query_row("SELECT COUNT(*) FROM txs", [], |r| r.get(0))?;
        Ok(n as u64)
    }
}

/// Evaluate `rules` on block `height` (its flows already inserted in `t`)
/// and store the alerts in the same transaction.
fn evaluate_alerts(
    t: &rusqlite::Transaction<'_>,
    rules: &AlertRules,
    height: u64,
    txs: &[IndexedTx],
) -> Result<()> {
    let mut out: Vec<Alert> = Vec::new();
    let h = height as i64;
    for (i, itx) in txs.iter().enumerate() {
        let r = &itx.receipt;
        let tx = hex::encode(r.tx_hash);
        if rules.compliance_stops && r.status == Status::Failed && (200..300).contains(&r.reason.0)
        {
            let payer = r
                .events
                .iter()
                .find(|e| e.cause == Cause::Fee && !e.credit)
                .map(|e| hex::encode(e.account))
                .unwrap_or_default();
            out.push(Alert {
                height,
                index: i as u32,
                seq: 0,
                kind: "compliance_stop".into(),
                account: payer,
                tx: tx.clone(),
                amount: 0,
                detail: format!("stopped by the compliance rules with code {}", r.reason.0),
            });
        }
        for (k, f) in receipt_flows(r).iter().enumerate() {
            let (Some(from), Some(to)) = (f.from, f.to) else {
                continue;
            };
            let alert = |kind: &str, account: [u8; 32], detail: String| Alert {
                height,
                index: i as u32,
                seq: k as u32,
                kind: kind.into(),
                account: hex::encode(account),
                tx: tx.clone(),
                amount: f.amount,
                detail,
            };
            if rules
                .large_transfer
                .is_some_and(|m| f.amount >= u128::from(m))
            {
                out.push(alert(
                    "large_transfer",
                    from,
                    format!("{} sent to {}", f.amount, hex::encode(to)),
                ));
            }
            if rules
                .new_counterparty
                .is_some_and(|m| f.amount >= u128::from(m))
                && from != to
            {
                let earlier: Option<i64> = t
                    .query_row(
                        "SELECT 1 FROM flows WHERE src = ?1 AND dst = ?2
                         AND (height < ?3 OR (height = ?3 AND (idx < ?4 OR (idx = ?4 AND seq < ?5))))
                         LIMIT 1",
                        params![&from[..], &to[..], h, i as i64, k as i64],
                        |r| r.get(0),
                    )
                    .optional()?;
                if earlier.is_none() {
                    out.push(alert(
                        "new_counterparty",
                        from,
                        format!("first flow to {}: {}", hex::encode(to), f.amount),
                    ));
                }
            }
            if let Some(m) = rules.rapid_in_out.filter(|m| f.amount >= u128::from(*m)) {
                let low = height.saturating_sub(rules.rapid_in_out_blocks) as i64;
                let mut stmt = t.prepare_cached(
                    "SELECT amount FROM flows WHERE dst = ?1 AND asset = ?2 AND height BETWEEN ?3 AND ?4
                     AND (height < ?4 OR idx < ?5 OR (idx = ?5 AND seq < ?6))",
                )?;
                let mut inflow = 0u128;
                for a in stmt.query_map(
                    params![&from[..], &f.asset[..], low, h, i as i64, k as i64],
                    |r| r.get::<_, Vec<u8>>(0),
                )? {
                    inflow = inflow.saturating_add(amount(a?)?);
                }
                if inflow >= u128::from(m)
                    && f.amount.saturating_mul(10) >= inflow.saturating_mul(9)
                {
                    out.push(alert(
                        "rapid_in_out",
                        from,
                        format!(
                            "received {inflow} within {} blocks and sent {} on to {}",
                            rules.rapid_in_out_blocks,
                            f.amount,
                            hex::encode(to)
                        ),
                    ));
                }
            }
        }
    }
    let mut stmt = t.prepare_cached(
        "INSERT INTO alerts (height, idx, seq, kind, account, tx, amount, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for a in &out {
        stmt.execute(params![
            h,
            a.index as i64,
            a.seq as i64,
            a.kind,
            a.account,
            a.tx,
            &a.amount.to_be_bytes()[..],
            a.detail
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
