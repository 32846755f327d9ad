//! The two databases the index runs on, behind one small interface: SQL
//! text with `?N` placeholders, parameters and rows as [`Val`]s.
//!
//! - SQLite (`rusqlite`, compiled in): the embedded default, one file.
//! - PostgreSQL (`postgres`, feature `postgres`): a server, for an index
//!   that outgrows one machine's disk or serves many readers. The SQL is
//!   the same; `?N` becomes `$N`, `INTEGER` columns `BIGINT` and `BLOB`
//!   columns `BYTEA` ([`pg_sql`]).
//!
//! Transactions are explicit (`BEGIN` ... `COMMIT` through [`Db::batch`]),
//! so both behave alike: a block's rows and the indexed height commit
//! together or not at all.

use crate::{IndexError, Result};
#[cfg(feature = "postgres")]
use std::cell::RefCell;
#[cfg(feature = "postgres")]
use std::collections::HashMap;

/// One SQL value: what the index stores (64-bit integers, byte strings,
/// text) and NULL (an issuance has no source, a burn no destination).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Val {
    I(i64),
    B(Vec<u8>),
    T(String),
    /// A NULL byte string.
    Null,
}

impl Val {
    pub(crate) fn int(&self) -> Result<i64> {
        match self {
            Val::I(v) => Ok(*v),
            other => Err(IndexError::Corrupt(format!(
                "an integer column holds {other:?}"
            ))),
        }
    }

    pub(crate) fn blob(self) -> Result<Vec<u8>> {
        match self {
            Val::B(v) => Ok(v),
            other => Err(IndexError::Corrupt(format!(
                "a byte-string column holds {other:?}"
            ))),
        }
    }

    pub(crate) fn text(self) -> Result<String> {
        match self {
            Val::T(v) => Ok(v),
            other => Err(IndexError::Corrupt(format!(
                "a text column holds {other:?}"
            ))),
        }
    }
}

impl From<u64> for Val {
    fn from(v: u64) -> Val {
        Val::I(v.min(i64::MAX as u64) as i64)
    }
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::I(v)
    }
}

impl From<&[u8]> for Val {
    fn from(v: &[u8]) -> Val {
        Val::B(v.to_vec())
    }
}

impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::T(v.to_string())
    }
}

impl From<Option<&[u8; 32]>> for Val {
    fn from(v: Option<&[u8; 32]>) -> Val {
        v.map_or(Val::Null, |a| Val::B(a.to_vec()))
    }
}

/// A row.
pub(crate) type Row = Vec<Val>;

/// An open database.
pub(crate) enum Db {
    Lite(rusqlite::Connection),
    #[cfg(feature = "postgres")]
    Pg(Pg),
}

#[cfg(feature = "postgres")]
pub(crate) struct Pg {
    client: RefCell<postgres::Client>,
    /// Prepared statements by SQL text (a prepare is a round trip).
    stmts: RefCell<HashMap<String, postgres::Statement>>,
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Val::I(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Val::B(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
            Val::T(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Val::Null => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

fn lite_val(v: rusqlite::types::ValueRef<'_>) -> Result<Val> {
    use rusqlite::types::ValueRef;
    Ok(match v {
        ValueRef::Integer(i) => Val::I(i),
        ValueRef::Blob(b) => Val::B(b.to_vec()),
        ValueRef::Text(t) => Val::T(
            std::str::from_utf8(t)
                .map_err(|_| IndexError::Corrupt("text that is not UTF-8".into()))?
                .to_string(),
        ),
        ValueRef::Null => Val::Null,
        ValueRef::Real(_) => return Err(IndexError::Corrupt("a float column".into())),
    })
}

/// `?N` -> `$N`, `INTEGER` -> `BIGINT`, `BLOB` -> `BYTEA` (the index's SQL
/// uses no string literal with a `?` and no other column types).
#[cfg(feature = "postgres")]
pub(crate) fn pg_sql(sql: &str) -> String {
    sql.replace('?', "$")
        .replace("INTEGER", "BIGINT")
        .replace("BLOB", "BYTEA")
}

impl Db {
    pub(crate) fn is_postgres(&self) -> bool {
        !matches!(self, Db::Lite(_))
    }

    /// Statements without parameters or results (schema, BEGIN, COMMIT).
    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Db::Lite(c) => Ok(c.execute_batch(sql)?),
            #[cfg(feature = "postgres")]
            Db::Pg(p) => Ok(p.client.borrow_mut().batch_execute(&pg_sql(sql))?),
        }
    }

    /// The connection still works (a PostgreSQL session can be closed by
    /// the server; an SQLite file handle cannot).
    pub(crate) fn usable(&self) -> bool {
        match self {
            Db::Lite(_) => true,
            #[cfg(feature = "postgres")]
            Db::Pg(p) => !p.client.borrow().is_closed(),
        }
    }

    /// One statement; the rows it changed.
    pub(crate) fn exec(&self, sql: &str, params: &[Val]) -> Result<u64> {
        match self {
            Db::Lite(c) => {
                let mut s = c.prepare_cached(sql)?;
                Ok(s.execute(rusqlite::params_from_iter(params.iter()))? as u64)
            }
            #[cfg(feature = "postgres")]
            Db::Pg(p) => {
                let st = p.statement(sql)?;
                let args = pg_args(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    args.iter().map(|a| a.as_ref()).collect();
                Ok(p.client.borrow_mut().execute(&st, &refs)?)
            }
        }
    }

    /// One query's rows.
    pub(crate) fn rows(&self, sql: &str, params: &[Val]) -> Result<Vec<Row>> {
        match self {
            Db::Lite(c) => {
                let mut s = c.prepare_cached(sql)?;
                let n = s.column_count();
                let mut rows = s.query(rusqlite::params_from_iter(params.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut row = Vec::with_capacity(n);
                    for i in 0..n {
                        row.push(lite_val(r.get_ref(i)?)?);
                    }
                    out.push(row);
                }
                Ok(out)
            }
            #[cfg(feature = "postgres")]
            Db::Pg(p) => {
                let st = p.statement(sql)?;
                let args = pg_args(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    args.iter().map(|a| a.as_ref()).collect();
                let rows = p.client.borrow_mut().query(&st, &refs)?;
                rows.iter().map(pg_row).collect()
            }
        }
    }

    /// The first row, if any.
    pub(crate) fn row(&self, sql: &str, params: &[Val]) -> Result<Option<Row>> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }

    pub(crate) fn sqlite(c: rusqlite::Connection) -> Db {
        Db::Lite(c)
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(url: &str) -> Result<Db> {
        let client = postgres::Client::connect(url, postgres::NoTls)?;
        Ok(Db::Pg(Pg {
            client: RefCell::new(client),
            stmts: RefCell::new(HashMap::new()),
        }))
    }
}

#[cfg(feature = "postgres")]
impl Pg {
    fn statement(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.stmts.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.borrow_mut().prepare(&pg_sql(sql))?;
        let mut m = self.stmts.borrow_mut();
        if m.len() >= 256 {
            m.clear();
        }
        m.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

#[cfg(feature = "postgres")]
fn pg_args(params: &[Val]) -> Vec<Box<dyn postgres::types::ToSql + Sync>> {
    params
        .iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync> {
            match v {
                Val::I(i) => Box::new(*i),
                Val::B(b) => Box::new(b.clone()),
                Val::T(t) => Box::new(t.clone()),
                Val::Null => Box::new(Option::<Vec<u8>>::None),
            }
        })
        .collect()
}

#[cfg(feature = "postgres")]
fn pg_row(r: &postgres::Row) -> Result<Row> {
    use postgres::types::Type;
    let mut row = Vec::with_capacity(r.len());
    for (i, c) in r.columns().iter().enumerate() {
        let t = c.type_();
        let v = if *t == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?.map(Val::I)
        } else if *t == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?.map(|v| Val::I(v.into()))
        } else if *t == Type::INT2 {
            r.try_get::<_, Option<i16>>(i)?.map(|v| Val::I(v.into()))
        } else if *t == Type::BYTEA {
            r.try_get::<_, Option<Vec<u8>>>(i)?.map(Val::B)
        } else if *t == Type::TEXT || *t == Type::VARCHAR {
            r.try_get::<_, Option<String>>(i)?.map(Val::T)
        } else {
            return Err(IndexError::Corrupt(format!(
                "column {} of type {t}",
                c.name()
            )));
        };
        row.push(v.unwrap_or(Val::Null));
    }
    Ok(row)
}
