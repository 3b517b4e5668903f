//! What the last committed run left behind, so that a diff run whose input is
//! exactly that run's input, against the table exactly as that run left it,
//! can skip the transform.
//!
//! The record lives in `bitcram_sync_state`, one row per target table, in the
//! target's schema. `bitcram-sync db init` creates it; without it every run
//! transforms (nothing else changes). Each run that commits rows also updates
//! the record, in the same transaction.
//!
//! The input key is the sha256 of the plugin's sha256, the checkout and
//! warehouse ids, and each body's source, page and sha256. The table digest
//! is an order-independent sum of a hash of each row's id, `stock` and
//! `data` (not `updated_at`), so that an edit to the table by anyone else
//! makes the next diff run a full one, which repairs it.

use anyhow::anyhow;
use sha2::{Digest as _, Sha256};
use sqlx::{AnyConnection, AssertSqlSafe, Row as _};

use super::fingerprint::Fingerprint;
use super::table::{Dialect, TableName, table_columns};
use super::target::describe_db_error;
use crate::model::{BodyDigest, SourceCounts};

/// The state table's name, in the target's schema.
pub const STATE_TABLE: &str = "bitcram_sync_state";

/// The input key of a run: which plugin ran on which bodies for which
/// checkout and warehouse.
pub fn input_key(
    plugin_sha256: &str,
    checkout_id: u64,
    warehouse_id: u64,
    bodies: &[BodyDigest],
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"bitcram-sync input/1\n");
    hasher.update(format!(
        "plugin {plugin_sha256}\ncheckout {checkout_id}\nwarehouse {warehouse_id}\n"
    ));
    for body in bodies {
        hasher.update(format!(
            "{} {} {}\n",
            body.source.name(),
            body.page,
            body.sha256
        ));
    }
    hex::encode(hasher.finalize())
}

/// What the last committed run recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// Its [`input_key`].
    pub input_sha256: String,
    /// The [`TableDigest`] of the rows it left.
    pub table_digest: String,
    /// Its source counts.
    pub counts: SourceCounts,
    /// Its sync time.
    pub synced_at: String,
}

/// An order-independent digest of a table's rows: the wrapping sum of a
/// 128-bit hash of each row's id and fingerprint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableDigest {
    sum: u128,
    rows: u64,
}

impl TableDigest {
    pub fn add(&mut self, id: &str, fingerprint: &Fingerprint) {
        let mut hasher = Sha256::new();
        hasher.update((id.len() as u64).to_le_bytes());
        hasher.update(id.as_bytes());
        hasher.update(fingerprint);
        let hash = hasher.finalize();
        let part = u128::from_le_bytes(hash[..16].try_into().expect("sha256 has 32 bytes"));
        self.sum = self.sum.wrapping_add(part);
        self.rows += 1;
    }

    /// Hex text: the row count and the sum.
    pub fn to_hex(self) -> String {
        format!("{:016x}{:032x}", self.rows, self.sum)
    }
}

/// The state table for `target`: same schema, fixed name.
pub fn state_table(target: &TableName) -> TableName {
    let name = match target.schema() {
        Some(schema) => format!("{schema}.{STATE_TABLE}"),
        None => STATE_TABLE.to_owned(),
    };
    TableName::parse(&name).expect("a valid schema and a valid literal name")
}

/// `CREATE TABLE IF NOT EXISTS` for the state table of `target`.
pub fn create_state_table_sql(target: &TableName, dialect: Dialect) -> String {
    let name = state_table(target).quoted(dialect);
    let (text, datetime, tail) = match dialect {
        Dialect::MySql | Dialect::MariaDb => {
            ("VARCHAR(64)", "DATETIME(6)", " DEFAULT CHARSET = utf8mb4")
        }
        Dialect::Sqlite => ("TEXT", "TEXT", ""),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (\n  \
         target_table {text} NOT NULL PRIMARY KEY,\n  \
         input_sha256 CHAR(64) NOT NULL,\n  \
         table_digest CHAR(48) NOT NULL,\n  \
         price_list_items BIGINT NOT NULL,\n  \
         stock_items BIGINT NOT NULL,\n  \
         dropped_stock_items BIGINT NOT NULL,\n  \
         synced_at {datetime} NOT NULL\n\
         ){tail}"
    )
}

/// Creates the state table if it is missing. Returns whether it was created.
pub async fn create_state_table(
    conn: &mut AnyConnection,
    target: &TableName,
    dialect: Dialect,
) -> anyhow::Result<bool> {
    let table = state_table(target);
    let existed = table_columns(conn, &table, dialect).await?.is_some();
    sqlx::raw_sql(AssertSqlSafe(create_state_table_sql(target, dialect)))
        .execute(&mut *conn)
        .await
        .map_err(|e| anyhow!("creating table {table}: {}", describe_db_error(&e)))?;
    Ok(!existed)
}

/// `None` when there is no state table; otherwise the record for `target`,
/// if a run has left one.
pub async fn read(
    conn: &mut AnyConnection,
    target: &TableName,
    dialect: Dialect,
) -> anyhow::Result<Option<Option<RunRecord>>> {
    let table = state_table(target);
    if table_columns(conn, &table, dialect).await?.is_none() {
        return Ok(None);
    }
    let synced_at = match dialect {
        Dialect::MySql | Dialect::MariaDb => "CAST(synced_at AS CHAR)",
        Dialect::Sqlite => "synced_at",
    };
    let sql = format!(
        "SELECT input_sha256, table_digest, price_list_items, stock_items, dropped_stock_items, \
         {synced_at} FROM {} WHERE target_table = ?",
        table.quoted(dialect)
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(target.table().to_owned())
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| anyhow!("reading {table}: {}", describe_db_error(&e)))?;
    let Some(row) = row else {
        return Ok(Some(None));
    };
    let count = |i: usize| -> anyhow::Result<u64> { Ok(row.try_get::<i64, _>(i)?.max(0) as u64) };
    Ok(Some(Some(RunRecord {
        input_sha256: row.try_get(0)?,
        table_digest: row.try_get(1)?,
        counts: SourceCounts {
            price_list_items: count(2)?,
            stock_items: count(3)?,
            dropped_stock_items: count(4)?,
        },
        synced_at: row.try_get(5)?,
    })))
}

/// Records `record` for `target`, replacing the previous one.
pub async fn write(
    conn: &mut AnyConnection,
    target: &TableName,
    dialect: Dialect,
    record: &RunRecord,
) -> anyhow::Result<()> {
    let table = state_table(target);
    let upsert = match dialect {
        Dialect::MySql | Dialect::MariaDb => {
            "ON DUPLICATE KEY UPDATE input_sha256 = VALUES(input_sha256), \
             table_digest = VALUES(table_digest), price_list_items = VALUES(price_list_items), \
             stock_items = VALUES(stock_items), dropped_stock_items = VALUES(dropped_stock_items), \
             synced_at = VALUES(synced_at)"
        }
        Dialect::Sqlite => {
            "ON CONFLICT(target_table) DO UPDATE SET input_sha256 = excluded.input_sha256, \
             table_digest = excluded.table_digest, price_list_items = excluded.price_list_items, \
             stock_items = excluded.stock_items, dropped_stock_items = excluded.dropped_stock_items, \
             synced_at = excluded.synced_at"
        }
    };
    let sql = format!(
        "INSERT INTO {} (target_table, input_sha256, table_digest, price_list_items, stock_items, \
         dropped_stock_items, synced_at) VALUES (?, ?, ?, ?, ?, ?, ?) {upsert}",
        table.quoted(dialect)
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(target.table().to_owned())
        .bind(record.input_sha256.clone())
        .bind(record.table_digest.clone())
        .bind(record.counts.price_list_items as i64)
        .bind(record.counts.stock_items as i64)
        .bind(record.counts.dropped_stock_items as i64)
        .bind(record.synced_at.clone())
        .execute(&mut *conn)
        .await
        .map_err(|e| anyhow!("recording the run in {table}: {}", describe_db_error(&e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_digests_ignore_row_order_and_see_every_change() {
        let rows = [("1", [1u8; 16]), ("2", [2u8; 16]), ("3", [3u8; 16])];
        let digest = |rows: &[(&str, [u8; 16])]| {
            let mut d = TableDigest::default();
            for (id, fp) in rows {
                d.add(id, fp);
            }
            d.to_hex()
        };
        let forward = digest(&rows);
        let mut reversed = rows;
        reversed.reverse();
        assert_eq!(forward, digest(&reversed));
        assert_ne!(forward, digest(&rows[..2]));
        assert_ne!(forward, digest(&[rows[0], rows[1], ("3", [4u8; 16])]));
        assert_ne!(forward, digest(&[rows[0], rows[1], ("4", [3u8; 16])]));
    }

    #[test]
    fn input_keys_change_with_the_plugin_the_ids_and_every_body() {
        let bodies = vec![
            BodyDigest {
                source: crate::model::Source::Stock,
                page: 0,
                sha256: "aa".into(),
            },
            BodyDigest {
                source: crate::model::Source::PriceList,
                page: 0,
                sha256: "bb".into(),
            },
        ];
        let key = input_key("p", 1, 2, &bodies);
        assert_eq!(key, input_key("p", 1, 2, &bodies));
        assert_ne!(key, input_key("q", 1, 2, &bodies));
        assert_ne!(key, input_key("p", 3, 2, &bodies));
        assert_ne!(key, input_key("p", 1, 3, &bodies));
        let mut other = bodies.clone();
        other[1].sha256 = "bc".into();
        assert_ne!(key, input_key("p", 1, 2, &other));
        assert_ne!(key, input_key("p", 1, 2, &bodies[..1]));
    }

    #[test]
    fn the_state_table_lives_beside_the_target() {
        let plain = TableName::parse("raw_item_data").unwrap();
        assert_eq!(state_table(&plain).to_string(), STATE_TABLE);
        let qualified = TableName::parse("app_import.raw_item_data").unwrap();
        assert_eq!(
            state_table(&qualified).to_string(),
            format!("app_import.{STATE_TABLE}")
        );
    }
}
