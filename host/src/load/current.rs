//! The table as a run finds it, read inside the load's transaction without
//! locking a row: which ids it holds (replace mode, which empties it
//! whole), or each id's fingerprint (diff mode, which compares row by row).

use std::collections::HashMap;

use anyhow::anyhow;
use futures_util::TryStreamExt as _;
use sqlx::{Any, AssertSqlSafe, Row as _, Transaction};

use super::fingerprint::{Fingerprint, fingerprint};
use super::state::TableDigest;
use super::table::{Dialect, TableName};
use super::target::describe_db_error;
use crate::id_set::IdTally;

/// The state of the table before the run, as the guards and the diff need it.
pub(super) enum Current {
    /// Replace mode: only which ids exist (and how many no row names).
    Ids(IdTally),
    /// Diff mode: each id's fingerprint of `stock` and `data`.
    Fingerprints(HashMap<String, Fingerprint>),
}

/// Which table to read, and how.
pub(super) struct Read<'a> {
    pub table: &'a TableName,
    pub quoted_table: &'a str,
    pub dialect: Dialect,
    /// Diff mode: each row's fingerprint, not only its id.
    pub fingerprints: bool,
}

impl Read<'_> {
    /// Reads the table's rows, adding each one's fingerprint to `before`
    /// when given (the state record's digest of the table as found).
    pub(super) async fn rows(
        &self,
        tx: &mut Transaction<'static, Any>,
        mut before: Option<&mut TableDigest>,
    ) -> anyhow::Result<Current> {
        let (table, dialect) = (self.table, self.dialect);
        if self.fingerprints {
            let data = match dialect {
                // MySQL returns its binary JSON as normalized text.
                Dialect::MySql => "CAST(data AS CHAR)",
                Dialect::MariaDb | Dialect::Sqlite => "data",
            };
            let sql = format!("SELECT id, stock, {data} FROM {}", self.quoted_table);
            let mut map = HashMap::new();
            let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(&mut **tx);
            while let Some(row) = rows.try_next().await.map_err(|e| {
                anyhow!(
                    "reading the current rows of {table}: {}",
                    describe_db_error(&e)
                )
            })? {
                let id: String = row.try_get(0)?;
                let stock: i64 = row.try_get(1)?;
                let data: String = row.try_get(2)?;
                let fp = fingerprint(stock, &data, dialect);
                if let Some(before) = &mut before {
                    before.add(&id, &fp);
                }
                map.insert(id, fp);
            }
            return Ok(Current::Fingerprints(map));
        }
        let sql = format!("SELECT id FROM {}", self.quoted_table);
        let mut tally = IdTally::default();
        let mut ids = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).fetch(&mut **tx);
        while let Some(id) = ids.try_next().await.map_err(|e| {
            anyhow!(
                "reading the current ids of {table}: {}",
                describe_db_error(&e)
            )
        })? {
            tally.add(&id);
        }
        tally.seal();
        Ok(Current::Ids(tally))
    }
}

impl Current {
    /// Rows the table held.
    pub(super) fn len(&self) -> u64 {
        match self {
            Current::Ids(ids) => ids.len(),
            Current::Fingerprints(map) => map.len() as u64,
        }
    }

    /// How many rows no row of the run named, and, in diff mode, their ids
    /// (to delete one by one; replace mode empties the table, and only
    /// their number matters). Leaves none behind.
    pub(super) fn take_vanished(&mut self) -> (u64, Vec<String>) {
        match self {
            Current::Ids(ids) => (std::mem::take(ids).remaining(), Vec::new()),
            Current::Fingerprints(map) => {
                let vanished: Vec<String> = map.drain().map(|(id, _)| id).collect();
                (vanished.len() as u64, vanished)
            }
        }
    }
}
