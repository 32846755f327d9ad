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
//! - Databases ([`Location`]): SQLite (embedded, the default) or
//!   PostgreSQL (a server; feature `postgres`), the same SQL on both
//!   (`db`).
//!
//! - Parties ([`BlockExtras`]): the identity and jurisdiction of every
//!   account a block touches, from the compliance registry (the node's
//!   indexer reads them), kept as the latest (`parties`) and as a history
//!   of changes (`party_history`: volumes by jurisdiction and
//!   [`Index::party_at`] read the one in force at a height); the
//!   compliance engine's flags come with the block the same way.

mod db;
pub mod pg_server;

use db::{Db, Row, Val};
use plume_protocol::receipt::{Cause, Receipt, Status};
use rusqlite::Connection;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// An index error.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// SQLite failed.
    #[error("index database: {0}")]
    Db(#[from] rusqlite::Error),
    /// PostgreSQL failed (connecting, or a statement).
    #[cfg(feature = "postgres")]
    #[error("index database (PostgreSQL): {0}")]
    Pg(#[from] postgres::Error),
    /// This build has no PostgreSQL client.
    #[error("index: this build has no PostgreSQL support (plume-index feature \"postgres\")")]
    NoPostgres,
    /// An index written by another version of this code.
    #[error("index: schema version {0} in the database, this binary writes {SCHEMA_VERSION}: move the old index away and restart (it is rebuilt from the node's block store)")]
    Schema(i64),
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

/// An account's identity in the compliance registry, as the indexer found
/// it when it indexed a block the account took part in.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Party {
    /// The account.
    #[serde(with = "hex32")]
    pub account: [u8; 32],
    /// Its registered identity.
    #[serde(with = "hex32")]
    pub identity: [u8; 32],
    /// ISO 3166-1 alpha-2 jurisdiction of its current attestation.
    pub jurisdiction: String,
    /// The block at which this was recorded.
    pub height: u64,
}

/// `(account, identity, jurisdiction)`: an account's registered identity.
pub type PartyOf = ([u8; 32], [u8; 32], [u8; 2]);

/// What the indexer knows about a block besides its receipts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockExtras {
    /// `(account, identity, jurisdiction)` of the accounts the block's
    /// flows touch, from the compliance registry; each replaces what was
    /// recorded for the account before.
    pub parties: Vec<PartyOf>,
    /// Transactions a compliance rule flagged without stopping them, from
    /// the block's verdict record: (index in the block, rule id).
    pub flags: Vec<(u32, u16)>,
}

/// Transferred volume of one asset from one jurisdiction to another
/// ("" when an account has no registered identity).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct JurisdictionVolume {
    /// Asset (hex).
    pub asset: String,
    /// Debited accounts' jurisdiction.
    pub from: String,
    /// Credited accounts' jurisdiction.
    pub to: String,
    /// Sum of the flows' amounts.
    #[serde(serialize_with = "as_string")]
    pub transferred: u128,
    /// Flows.
    pub flows: u64,
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
    /// A transaction a compliance rule flagged without stopping it (a
    /// structuring pattern, say), from the block's verdict record.
    #[serde(default = "yes")]
    pub compliance_flags: bool,
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
            compliance_flags: true,
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
    /// `large_transfer`, `new_counterparty`, `rapid_in_out`,
    /// `compliance_stop` or `compliance_flag`.
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

/// The schema this code writes (in `meta` as `schema`).
const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, id BLOB NOT NULL, root BLOB NOT NULL, txs INTEGER NOT NULL,
    seen_ms INTEGER NOT NULL);
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
CREATE TABLE IF NOT EXISTS parties (
    account BLOB PRIMARY KEY, identity BLOB NOT NULL, jurisdiction TEXT NOT NULL,
    height INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS parties_identity ON parties (identity);
CREATE TABLE IF NOT EXISTS party_history (
    account BLOB NOT NULL, from_height INTEGER NOT NULL, identity BLOB NOT NULL,
    jurisdiction TEXT NOT NULL,
    PRIMARY KEY (account, from_height));
";

/// Where an index lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file (the embedded default).
    Sqlite(PathBuf),
    /// A PostgreSQL database: a libpq connection string
    /// (`host=127.0.0.1 port=5432 user=plume dbname=plume`) or URL
    /// (`postgresql://plume@127.0.0.1/plume`).
    Postgres(String),
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for Location {
    /// Never prints a PostgreSQL password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "SQLite {}", p.display()),
            Location::Postgres(url) => {
                let shown: Vec<&str> = url
                    .split_whitespace()
                    .filter(|kv| !kv.starts_with("password"))
                    .collect();
                if url.contains("://") {
                    // user:password@host: keep only what follows the '@'.
                    let rest = url.rsplit('@').next().unwrap_or(url);
                    write!(f, "PostgreSQL {rest}")
                } else {
                    write!(f, "PostgreSQL {}", shown.join(" "))
                }
            }
        }
    }
}

/// The index database.
pub struct Index {
    db: Db,
    rules: AlertRules,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("postgres", &self.db.is_postgres())
            .finish()
    }
}

fn blob32(v: Val) -> Result<[u8; 32]> {
    v.blob()?
        .try_into()
        .map_err(|_| IndexError::Corrupt("a 32-byte column of another length".into()))
}

fn opt_blob32(v: Val) -> Result<Option<[u8; 32]>> {
    match v {
        Val::Null => Ok(None),
        v => blob32(v).map(Some),
    }
}

fn amount(v: Val) -> Result<u128> {
    let b: [u8; 16] = v
        .blob()?
        .try_into()
        .map_err(|_| IndexError::Corrupt("an amount that is not 16 bytes".into()))?;
    Ok(u128::from_be_bytes(b))
}

/// Columns read by [`flow_row`].
const FLOW_COLS: &str = "height, idx, seq, src, dst, asset, amount, tx";

/// Most accounts of one identity a walk starts from.
pub const IDENTITY_ACCOUNTS_MAX: usize = 1_000;

fn jurisdiction_text(j: &[u8; 2]) -> Result<String> {
    if j.iter().all(u8::is_ascii_uppercase) {
        Ok(String::from_utf8_lossy(j).into_owned())
    } else {
        Err(IndexError::Corrupt(format!(
            "jurisdiction {j:?} is not two upper-case letters"
        )))
    }
}

fn party_row(r: Row) -> Result<Party> {
    let mut c = Cols::new(r);
    Ok(Party {
        account: blob32(c.next()?)?,
        identity: blob32(c.next()?)?,
        jurisdiction: c.next()?.text()?,
        height: c.next()?.int()? as u64,
    })
}

fn flow_row(r: Row) -> Result<FlowRow> {
    let mut it = r.into_iter();
    let mut next = || {
        it.next()
            .ok_or_else(|| IndexError::Corrupt("a short flow row".into()))
    };
    Ok(FlowRow {
        height: next()?.int()? as u64,
        index: next()?.int()? as u32,
        seq: next()?.int()? as u32,
        from: opt_blob32(next()?)?,
        to: opt_blob32(next()?)?,
        asset: blob32(next()?)?,
        amount: amount(next()?)?,
        tx: blob32(next()?)?,
    })
}

/// Take the columns of a row in order.
struct Cols(std::vec::IntoIter<Val>);

impl Cols {
    fn new(r: Row) -> Cols {
        Cols(r.into_iter())
    }

    fn next(&mut self) -> Result<Val> {
        self.0
            .next()
            .ok_or_else(|| IndexError::Corrupt("a row with too few columns".into()))
    }
}

/// A key that orders flows and alerts: (height, index, seq).
pub type Cursor = (u64, u32, u32);

/// A block as indexed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BlockRow {
    /// Height.
    pub height: u64,
    /// Block id (hex).
    pub id: String,
    /// State root after it (hex).
    pub root: String,
    /// Transactions.
    pub txs: u64,
    /// When this node indexed it (ms since the Unix epoch, this node's
    /// clock: for throughput figures, never for the ledger).
    pub seen_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Index {
    /// Open (creating) the index at `path`, in WAL mode: readers (the API)
    /// never wait on the indexer.
    pub fn open(path: &Path) -> Result<Index> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        Index::init(Db::sqlite(db))
    }

    /// Open (creating the tables in) the index at `at`.
    pub fn open_at(at: &Location) -> Result<Index> {
        match at {
            Location::Sqlite(p) => Index::open(p),
            Location::Postgres(url) => Index::init(postgres_db(url)?),
        }
    }

    /// Open an existing index at `at` for queries only.
    pub fn open_read_at(at: &Location) -> Result<Index> {
        match at {
            Location::Sqlite(p) => Index::open_read(p),
            Location::Postgres(url) => {
                let db = postgres_db(url)?;
                db.batch("SET default_transaction_read_only = on")?;
                Ok(Index {
                    db,
                    rules: AlertRules::default(),
                })
            }
        }
    }

    fn init(db: Db) -> Result<Index> {
        db.batch(SCHEMA)?;
        let have = db
            .row("SELECT v FROM meta WHERE k = 'schema'", &[])?
            .map(|r| Cols::new(r).next()?.int())
            .transpose()?;
        match have {
            None => {
                db.exec(
                    "INSERT INTO meta (k, v) VALUES ('schema', ?1)",
                    &[Val::I(SCHEMA_VERSION)],
                )?;
            }
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) => return Err(IndexError::Schema(v)),
        }
        Ok(Index {
            db,
            rules: AlertRules::default(),
        })
    }

    /// The connection still works (worth keeping for another query).
    pub fn usable(&self) -> bool {
        self.db.usable()
    }

    /// Which database this is.
    pub fn is_postgres(&self) -> bool {
        self.db.is_postgres()
    }

    /// The alert rules in force.
    pub fn rules(&self) -> &AlertRules {
        &self.rules
    }

    /// Replace the alert rules evaluated on the blocks indexed from now on.
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
            db: Db::sqlite(db),
            rules: AlertRules::default(),
        })
    }

    /// Highest block indexed (0: none yet; genesis has no transactions).
    pub fn height(&self) -> Result<u64> {
        let r = self.db.row("SELECT v FROM meta WHERE k = 'height'", &[])?;
        match r {
            Some(r) => Ok(Cols::new(r).next()?.int()? as u64),
            None => Ok(0),
        }
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
        self.index_block_with(height, id, root, txs, &BlockExtras::default())
    }

    /// [`Index::index_block`], recording in the same transaction the
    /// identities of the accounts the block's flows touch and evaluating
    /// the compliance-flag rule on its flagged transactions.
    pub fn index_block_with(
        &mut self,
        height: u64,
        id: &[u8; 32],
        root: &[u8; 32],
        txs: &[IndexedTx],
        extras: &BlockExtras,
    ) -> Result<bool> {
        self.db.batch("BEGIN")?;
        match self.write_block(height, id, root, txs, extras) {
            Ok(true) => {
                self.db.batch("COMMIT")?;
                Ok(true)
            }
            other => {
                let _ = self.db.batch("ROLLBACK");
                other
            }
        }
    }

    fn write_block(
        &self,
        height: u64,
        id: &[u8; 32],
        root: &[u8; 32],
        txs: &[IndexedTx],
        extras: &BlockExtras,
    ) -> Result<bool> {
        let have = self.height()?;
        if height <= have {
            return Ok(false);
        }
        if height != have + 1 {
            return Err(IndexError::Gap { have, got: height });
        }
        let db = &self.db;
        db.exec(
            "INSERT INTO blocks (height, id, root, txs, seen_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            &[
                height.into(),
                id[..].into(),
                root[..].into(),
                (txs.len() as u64).into(),
                now_ms().into(),
            ],
        )?;
        for (i, itx) in txs.iter().enumerate() {
            let r = &itx.receipt;
            let status = match r.status {
                Status::Success => 0,
                Status::Failed => 1,
                Status::Rejected => 2,
            };
            db.exec(
                "INSERT INTO txs (height, idx, hash, status, reason, fee) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &[
                    height.into(),
                    (i as u64).into(),
                    r.tx_hash[..].into(),
                    Val::I(status),
                    Val::I(r.reason.0.into()),
                    r.fee_paid.to_be_bytes()[..].into(),
                ],
            )?;
            for (k, f) in receipt_flows(r).iter().enumerate() {
                db.exec(
                    "INSERT INTO flows (height, idx, seq, src, dst, asset, amount, tx) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    &[
                        height.into(),
                        (i as u64).into(),
                        (k as u64).into(),
                        f.from.as_ref().into(),
                        f.to.as_ref().into(),
                        f.asset[..].into(),
                        f.amount.to_be_bytes()[..].into(),
                        r.tx_hash[..].into(),
                    ],
                )?;
            }
        }
        for (account, identity, jurisdiction) in &extras.parties {
            let j = jurisdiction_text(jurisdiction)?;
            // The history gets a row when what is recorded changes (from
            // this block on): volumes and traces read the one in force at
            // a flow's height.
            let last = db.row(
                "SELECT identity, jurisdiction FROM party_history WHERE account = ?1
                 ORDER BY from_height DESC LIMIT 1",
                &[account[..].into()],
            )?;
            let same = match last {
                Some(r) => {
                    let mut c = Cols::new(r);
                    blob32(c.next()?)? == *identity && c.next()?.text()? == j
                }
                None => false,
            };
            if !same {
                db.exec(
                    "INSERT INTO party_history (account, from_height, identity, jurisdiction)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (account, from_height) DO UPDATE SET identity = excluded.identity,
                     jurisdiction = excluded.jurisdiction",
                    &[
                        account[..].into(),
                        height.into(),
                        identity[..].into(),
                        Val::T(j.clone()),
                    ],
                )?;
            }
            db.exec(
                "INSERT INTO parties (account, identity, jurisdiction, height) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account) DO UPDATE SET identity = excluded.identity,
                 jurisdiction = excluded.jurisdiction, height = excluded.height",
                &[
                    account[..].into(),
                    identity[..].into(),
                    Val::T(j),
                    height.into(),
                ],
            )?;
        }
        evaluate_alerts(db, &self.rules, height, txs, &extras.flags)?;
        db.exec(
            "INSERT INTO meta (k, v) VALUES ('height', ?1) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            &[height.into()],
        )?;
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
        self.db
            .rows(
                &format!(
                    "SELECT {FLOW_COLS} FROM flows WHERE {col} = ?1 AND height BETWEEN ?2 AND ?3 ORDER BY height, idx, seq"
                ),
                &[account[..].into(), h1.into(), h2.into()],
            )?
            .into_iter()
            .map(flow_row)
            .collect()
    }

    /// An account's flows (both directions), newest first, strictly
    /// before `before` (None: from the newest), at most `limit`: one page
    /// of its history, however long (two index range scans).
    pub fn account_flows(
        &self,
        account: &[u8; 32],
        before: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<FlowRow>> {
        let (h, i, s) = before.unwrap_or((u64::MAX, u32::MAX, u32::MAX));
        let limit = limit.min(10_000) as u64;
        let mut all = Vec::new();
        for col in ["src", "dst"] {
            let rows = self.db.rows(
                &format!(
                    "SELECT {FLOW_COLS} FROM flows WHERE {col} = ?1 AND height <= ?2
                     AND (height < ?2 OR idx < ?3 OR (idx = ?3 AND seq < ?4))
                     ORDER BY height DESC, idx DESC, seq DESC LIMIT ?5"
                ),
                &[
                    account[..].into(),
                    h.into(),
                    u64::from(i).into(),
                    u64::from(s).into(),
                    limit.into(),
                ],
            )?;
            for r in rows {
                all.push(flow_row(r)?);
            }
        }
        all.sort_by(|a, b| b.cmp(a));
        all.dedup_by_key(|f| (f.height, f.index, f.seq));
        all.truncate(limit as usize);
        Ok(all)
    }

    /// Flows out of (or into) `account` in the height range, followed
    /// hop by hop to `depth`: hop 1 is the account's own flows, hop k the
    /// flows of the accounts first reached at hop k-1. Every flow appears
    /// once; the walk stops at `flows_max` flows and says so.
    pub fn walk(&self, account: &[u8; 32], dir: Direction, b: WalkBounds) -> Result<Walk> {
        self.walk_from(std::slice::from_ref(account), dir, b)
    }

    /// [`Index::walk`] out of (into) every account of a registered
    /// identity at once (hop 0: its accounts, at most
    /// [`IDENTITY_ACCOUNTS_MAX`]).
    pub fn walk_identity(
        &self,
        identity: &[u8; 32],
        dir: Direction,
        b: WalkBounds,
    ) -> Result<Walk> {
        let accounts: Vec<[u8; 32]> = self
            .identity_accounts(identity, IDENTITY_ACCOUNTS_MAX)?
            .into_iter()
            .map(|p| p.account)
            .collect();
        self.walk_from(&accounts, dir, b)
    }

    /// The accounts recorded under `identity`, at most `limit`, in account
    /// order.
    pub fn identity_accounts(&self, identity: &[u8; 32], limit: usize) -> Result<Vec<Party>> {
        self.db
            .rows(
                "SELECT account, identity, jurisdiction, height FROM parties WHERE identity = ?1
                 ORDER BY account LIMIT ?2",
                &[identity[..].into(), (limit as u64).into()],
            )?
            .into_iter()
            .map(party_row)
            .collect()
    }

    /// The identity and jurisdiction recorded for `account` as of block
    /// `height` (the last change at or before it; `height` of the result
    /// is the block it was recorded from), if any.
    pub fn party_at(&self, account: &[u8; 32], height: u64) -> Result<Option<Party>> {
        self.db
            .row(
                "SELECT account, identity, jurisdiction, from_height FROM party_history
                 WHERE account = ?1 AND from_height <= ?2 ORDER BY from_height DESC LIMIT 1",
                &[account[..].into(), height.into()],
            )?
            .map(party_row)
            .transpose()
    }

    /// The identity recorded for `account`, if any.
    pub fn party(&self, account: &[u8; 32]) -> Result<Option<Party>> {
        self.db
            .row(
                "SELECT account, identity, jurisdiction, height FROM parties WHERE account = ?1",
                &[account[..].into()],
            )?
            .map(party_row)
            .transpose()
    }

    /// Transferred volume per (asset, debited jurisdiction, credited
    /// jurisdiction) over the height range, by the jurisdictions the
    /// accounts had at each flow's height (issuance and burns are not
    /// transfers).
    pub fn jurisdiction_volume(&self, h1: u64, h2: u64) -> Result<Vec<JurisdictionVolume>> {
        let rows = self.db.rows(
            "SELECT f.height, f.idx, f.seq, f.src, f.dst, f.asset, f.amount, f.tx,
                    ps.jurisdiction, pd.jurisdiction
             FROM flows f
             LEFT JOIN party_history ps ON ps.account = f.src AND ps.from_height =
                 (SELECT MAX(from_height) FROM party_history
                  WHERE account = f.src AND from_height <= f.height)
             LEFT JOIN party_history pd ON pd.account = f.dst AND pd.from_height =
                 (SELECT MAX(from_height) FROM party_history
                  WHERE account = f.dst AND from_height <= f.height)
             WHERE f.height BETWEEN ?1 AND ?2 AND f.src IS NOT NULL AND f.dst IS NOT NULL",
            &[h1.into(), h2.into()],
        )?;
        type Key = ([u8; 32], String, String);
        let mut acc: BTreeMap<Key, (u128, u64)> = BTreeMap::new();
        for mut r in rows {
            if r.len() != 10 {
                return Err(IndexError::Corrupt("a short flow row".into()));
            }
            let jd = r.pop().expect("length checked");
            let js = r.pop().expect("length checked");
            let f = flow_row(r)?;
            let j = |v: Val| match v {
                Val::Null => Ok(String::new()),
                v => v.text(),
            };
            let e = acc.entry((f.asset, j(js)?, j(jd)?)).or_default();
            e.0 = e.0.saturating_add(f.amount);
            e.1 += 1;
        }
        Ok(acc
            .into_iter()
            .map(
                |((asset, from, to), (transferred, flows))| JurisdictionVolume {
                    asset: hex::encode(asset),
                    from,
                    to,
                    transferred,
                    flows,
                },
            )
            .collect())
    }

    /// A bounded breadth-first walk from several accounts at once (each
    /// at hop 0).
    fn walk_from(&self, starts: &[[u8; 32]], dir: Direction, b: WalkBounds) -> Result<Walk> {
        let depth = b.depth.min(DEPTH_MAX);
        let max = b.flows_max.min(WALK_FLOWS_MAX);
        let mut seen_flows: BTreeSet<(u64, u32, u32)> = BTreeSet::new();
        let mut flows = Vec::new();
        let mut reached: BTreeMap<[u8; 32], u32> = BTreeMap::new();
        for a in starts {
            reached.insert(*a, 0);
        }
        let mut frontier: Vec<[u8; 32]> = reached.keys().copied().collect();
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
        let rows = self.db.rows(
            &format!("SELECT {FLOW_COLS} FROM flows WHERE height BETWEEN ?1 AND ?2"),
            &[h1.into(), h2.into()],
        )?;
        let mut acc: BTreeMap<[u8; 32], Volume> = BTreeMap::new();
        for r in rows {
            let f = flow_row(r)?;
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
        let Some(row) = self.db.row(
            "SELECT height, idx, status, reason, fee FROM txs WHERE hash = ?1",
            &[tx[..].into()],
        )?
        else {
            return Ok(None);
        };
        let mut c = Cols::new(row);
        let (height, idx, status, reason, fee) = (
            c.next()?.int()?,
            c.next()?.int()?,
            c.next()?.int()?,
            c.next()?.int()?,
            amount(c.next()?)?,
        );
        let flows = self
            .db
            .rows(
                &format!(
                    "SELECT {FLOW_COLS} FROM flows WHERE height = ?1 AND idx = ?2 ORDER BY seq"
                ),
                &[Val::I(height), Val::I(idx)],
            )?
            .into_iter()
            .map(flow_row)
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
            fee_paid: fee,
            flows,
        }))
    }

    fn alert_rows(&self, sql: &str, params: &[Val]) -> Result<Vec<Alert>> {
        self.db
            .rows(sql, params)?
            .into_iter()
            .map(|r| {
                let mut c = Cols::new(r);
                Ok(Alert {
                    height: c.next()?.int()? as u64,
                    index: c.next()?.int()? as u32,
                    seq: c.next()?.int()? as u32,
                    kind: c.next()?.text()?,
                    account: c.next()?.text()?,
                    tx: c.next()?.text()?,
                    amount: amount(c.next()?)?,
                    detail: c.next()?.text()?,
                })
            })
            .collect()
    }

    /// Alerts raised in blocks [h1, h2], oldest first, at most `limit`.
    pub fn alerts(&self, h1: u64, h2: u64, limit: usize) -> Result<Vec<Alert>> {
        self.alert_rows(
            "SELECT height, idx, seq, kind, account, tx, amount, detail FROM alerts
             WHERE height BETWEEN ?1 AND ?2 ORDER BY height, idx, seq, kind LIMIT ?3",
            &[h1.into(), h2.into(), (limit as u64).into()],
        )
    }

    /// Alerts newest first, strictly before `before` (None: from the
    /// newest), at most `limit`: one page of the alert feed.
    pub fn recent_alerts(
        &self,
        before: Option<(Cursor, &str)>,
        limit: usize,
    ) -> Result<Vec<Alert>> {
        let ((h, i, s), kind) = before.unwrap_or(((u64::MAX, u32::MAX, u32::MAX), "~"));
        self.alert_rows(
            "SELECT height, idx, seq, kind, account, tx, amount, detail FROM alerts
             WHERE height <= ?1 AND (height < ?1 OR idx < ?2
                 OR (idx = ?2 AND (seq < ?3 OR (seq = ?3 AND kind < ?4))))
             ORDER BY height DESC, idx DESC, seq DESC, kind DESC LIMIT ?5",
            &[
                h.into(),
                u64::from(i).into(),
                u64::from(s).into(),
                kind.into(),
                (limit.min(10_000) as u64).into(),
            ],
        )
    }

    /// Blocks newest first, below height `before` (None: from the
    /// newest), at most `limit`.
    pub fn recent_blocks(&self, before: Option<u64>, limit: usize) -> Result<Vec<BlockRow>> {
        self.db
            .rows(
                "SELECT height, id, root, txs, seen_ms FROM blocks WHERE height < ?1
                 ORDER BY height DESC LIMIT ?2",
                &[
                    before.unwrap_or(u64::MAX).into(),
                    (limit.min(10_000) as u64).into(),
                ],
            )?
            .into_iter()
            .map(|r| {
                let mut c = Cols::new(r);
                Ok(BlockRow {
                    height: c.next()?.int()? as u64,
                    id: hex::encode(c.next()?.blob()?),
                    root: hex::encode(c.next()?.blob()?),
                    txs: c.next()?.int()? as u64,
                    seen_ms: c.next()?.int()? as u64,
                })
            })
            .collect()
    }

    /// A block's transactions as indexed: (index, hash hex, status).
    pub fn block_txs(&self, height: u64, limit: usize) -> Result<Vec<(u32, String, String)>> {
        self.db
            .rows(
                "SELECT idx, hash, status FROM txs WHERE height = ?1 ORDER BY idx LIMIT ?2",
                &[height.into(), (limit.min(100_000) as u64).into()],
            )?
            .into_iter()
            .map(|r| {
                let mut c = Cols::new(r);
                let idx = c.next()?.int()? as u32;
                let hash = hex::encode(c.next()?.blob()?);
                let status = match c.next()?.int()? {
                    0 => "success",
                    1 => "failed",
                    _ => "rejected",
                };
                Ok((idx, hash, status.to_string()))
            })
            .collect()
    }

    fn count(&self, sql: &str) -> Result<u64> {
        match self.db.row(sql, &[])? {
            Some(r) => Ok(Cols::new(r).next()?.int()? as u64),
            None => Ok(0),
        }
    }

    /// Rows in the flows table (tests, metrics).
    pub fn flow_count(&self) -> Result<u64> {
        self.count("SELECT COUNT(*) FROM flows")
    }

    /// Rows in the transactions table.
    pub fn tx_count(&self) -> Result<u64> {
        self.count("SELECT COUNT(*) FROM txs")
    }

    /// Rows in the alerts table.
    pub fn alert_count(&self) -> Result<u64> {
        self.count("SELECT COUNT(*) FROM alerts")
    }
}

#[cfg(feature = "postgres")]
fn postgres_db(url: &str) -> Result<Db> {
    Db::postgres(url)
}

#[cfg(not(feature = "postgres"))]
fn postgres_db(_url: &str) -> Result<Db> {
    Err(IndexError::NoPostgres)
}

/// Evaluate `rules` on block `height` (its flows already inserted, in the
/// block's open transaction) and store the alerts in it.
fn evaluate_alerts(
    db: &Db,
    rules: &AlertRules,
    height: u64,
    txs: &[IndexedTx],
    flags: &[(u32, u16)],
) -> Result<()> {
    let mut out: Vec<Alert> = Vec::new();
    for (i, itx) in txs.iter().enumerate() {
        let r = &itx.receipt;
        let tx = hex::encode(r.tx_hash);
        if rules.compliance_flags {
            for (_, rule) in flags.iter().filter(|(k, _)| *k as usize == i) {
                let payer = r
                    .events
                    .iter()
                    .find(|e| e.cause == Cause::Fee && !e.credit)
                    .map(|e| hex::encode(e.account))
                    .unwrap_or_default();
                let amount = receipt_flows(r).iter().map(|f| f.amount).max().unwrap_or(0);
                out.push(Alert {
                    height,
                    index: i as u32,
                    seq: u32::from(*rule),
                    kind: "compliance_flag".into(),
                    account: payer,
                    tx: tx.clone(),
                    amount,
                    detail: format!("flagged by compliance rule {rule}"),
                });
            }
        }
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
            let here = |v: u64| -> Val { v.into() };
            if rules
                .new_counterparty
                .is_some_and(|m| f.amount >= u128::from(m))
                && from != to
            {
                let earlier = db.row(
                    "SELECT height FROM flows WHERE src = ?1 AND dst = ?2
                     AND (height < ?3 OR (height = ?3 AND (idx < ?4 OR (idx = ?4 AND seq < ?5))))
                     LIMIT 1",
                    &[
                        from[..].into(),
                        to[..].into(),
                        here(height),
                        here(i as u64),
                        here(k as u64),
                    ],
                )?;
                if earlier.is_none() {
                    out.push(alert(
                        "new_counterparty",
                        from,
                        format!("first flow to {}: {}", hex::encode(to), f.amount),
                    ));
                }
            }
            if let Some(m) = rules.rapid_in_out.filter(|m| f.amount >= u128::from(*m)) {
                let low = height.saturating_sub(rules.rapid_in_out_blocks);
                let mut inflow = 0u128;
                for a in db.rows(
                    "SELECT amount FROM flows WHERE dst = ?1 AND asset = ?2 AND height BETWEEN ?3 AND ?4
                     AND (height < ?4 OR idx < ?5 OR (idx = ?5 AND seq < ?6))",
                    &[
                        from[..].into(),
                        f.asset[..].into(),
                        here(low),
                        here(height),
                        here(i as u64),
                        here(k as u64),
                    ],
                )? {
                    inflow = inflow.saturating_add(amount(Cols::new(a).next()?)?);
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
    for a in &out {
        db.exec(
            "INSERT INTO alerts (height, idx, seq, kind, account, tx, amount, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            &[
                height.into(),
                u64::from(a.index).into(),
                u64::from(a.seq).into(),
                a.kind.as_str().into(),
                a.account.as_str().into(),
                a.tx.as_str().into(),
                a.amount.to_be_bytes()[..].into(),
                a.detail.as_str().into(),
            ],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
