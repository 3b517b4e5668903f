//! The target table: its validated name, the SQL dialect of the server that
//! holds it, its schema, and the check that it is usable.

use std::fmt;

use anyhow::{Context as _, bail};
use sqlx::{AnyConnection, AssertSqlSafe, Row as _};

/// Which kind of server the table lives on. The statements differ in a few
/// places: quoting, upserts, how JSON is stored and returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MySQL (Cloud SQL). `JSON` is a binary type; its text comes back
    /// normalized, not as it was written.
    MySql,
    /// MariaDB: `JSON` is `LONGTEXT` with a validity check; text is kept as written.
    MariaDb,
    /// The embedded local sink.
    Sqlite,
}

impl Dialect {
    /// Finds out which server `conn` talks to.
    pub async fn detect(conn: &mut AnyConnection) -> anyhow::Result<Self> {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            return Ok(Dialect::Sqlite);
        }
        let version: String = sqlx::query_scalar("SELECT CAST(VERSION() AS CHAR)")
            .fetch_one(&mut *conn)
            .await
            .context("asking the database server for its version")?;
        Ok(if version.to_ascii_lowercase().contains("mariadb") {
            Dialect::MariaDb
        } else {
            Dialect::MySql
        })
    }

    /// Whether `data` comes back byte for byte as it was written.
    pub fn keeps_json_text(self) -> bool {
        !matches!(self, Dialect::MySql)
    }

    fn quote(self, identifier: &str) -> String {
        match self {
            Dialect::Sqlite => format!("\"{identifier}\""),
            Dialect::MySql | Dialect::MariaDb => format!("`{identifier}`"),
        }
    }
}

/// A table name, optionally with its schema (`schema.table`), checked so that
/// it can be quoted safely: 1 to 64 characters of letters, digits, `_` and `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    schema: Option<String>,
    table: String,
}

impl TableName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= 64
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
        };
        let (schema, table) = match text.split_once('.') {
            Some((schema, table)) => (Some(schema), table),
            None => (None, text),
        };
        if !valid(table) || schema.is_some_and(|s| !valid(s)) {
            return Err(format!(
                "{text:?} is not a usable table name: use `table` or `schema.table`, each 1 to 64 \
                 letters, digits, `_` or `$`"
            ));
        }
        Ok(Self {
            schema: schema.map(str::to_owned),
            table: table.to_owned(),
        })
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The name quoted for `dialect`; safe to splice into SQL since `parse`
    /// allows no quote characters.
    pub fn quoted(&self, dialect: Dialect) -> String {
        match (&self.schema, dialect) {
            (Some(schema), Dialect::MySql | Dialect::MariaDb) => {
                format!("{}.{}", dialect.quote(schema), dialect.quote(&self.table))
            }
            // SQLite has no schemas but attached databases; the local sink
            // uses the table name alone.
            _ => dialect.quote(&self.table),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

/// `CREATE TABLE IF NOT EXISTS` for the target table.
pub fn create_table_sql(table: &TableName, dialect: Dialect) -> String {
    let name = table.quoted(dialect);
    match dialect {
        Dialect::MySql | Dialect::MariaDb => format!(
            "CREATE TABLE IF NOT EXISTS {name} (\n  \
             id VARCHAR(64) NOT NULL PRIMARY KEY,\n  \
             data JSON NOT NULL,\n  \
             stock BIGINT NOT NULL,\n  \
             updated_at DATETIME(6) NOT NULL\n\
             ) DEFAULT CHARSET = utf8mb4"
        ),
        Dialect::Sqlite => format!(
            "CREATE TABLE IF NOT EXISTS {name} (\n  \
             id TEXT NOT NULL PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),\n  \
             data TEXT NOT NULL CHECK (json_valid(data)),\n  \
             stock INTEGER NOT NULL,\n  \
             updated_at TEXT NOT NULL\n\
             )"
        ),
    }
}

/// Creates the table if it is missing. Returns whether it was created.
pub async fn create_table(
    conn: &mut AnyConnection,
    table: &TableName,
    dialect: Dialect,
) -> anyhow::Result<bool> {
    let existed = table_columns(conn, table, dialect).await?.is_some();
    sqlx::raw_sql(AssertSqlSafe(create_table_sql(table, dialect)))
        .execute(&mut *conn)
        .await
        .with_context(|| format!("creating table {table}"))?;
    Ok(!existed)
}

/// The table's columns as (name, declared type), or `None` if it does not exist.
pub(super) async fn table_columns(
    conn: &mut AnyConnection,
    table: &TableName,
    dialect: Dialect,
) -> anyhow::Result<Option<Vec<(String, String)>>> {
    let rows = match dialect {
        Dialect::Sqlite => sqlx::query("SELECT name, type FROM pragma_table_info(?)")
            .bind(table.table().to_owned())
            .fetch_all(&mut *conn)
            .await,
        Dialect::MySql | Dialect::MariaDb => sqlx::query(
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
        )
        .bind(table.schema().map(str::to_owned))
        .bind(table.table().to_owned())
        .fetch_all(&mut *conn)
        .await,
    }
    .with_context(|| format!("reading the columns of table {table}"))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut columns = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get(0)?;
        let ty: String = row.try_get(1)?;
        columns.push((name.to_ascii_lowercase(), ty.to_ascii_lowercase()));
    }
    Ok(Some(columns))
}

/// Checks that the table exists and has the four columns with usable types;
/// says what is wrong if not.
pub async fn check_table(
    conn: &mut AnyConnection,
    table: &TableName,
    dialect: Dialect,
) -> anyhow::Result<()> {
    let Some(columns) = table_columns(conn, table, dialect).await? else {
        bail!("table {table} does not exist; create it with `bitcram-sync db init`");
    };
    let expectations: [(&str, &[&str], &str); 4] = [
        ("id", &["char", "text"], "VARCHAR(64)"),
        ("data", &["json", "text"], "JSON"),
        ("stock", &["int"], "BIGINT"),
        ("updated_at", &["date", "time", "text"], "DATETIME(6)"),
    ];
    for (name, accepted, wanted) in expectations {
        match columns.iter().find(|(column, _)| column == name) {
            None => bail!(
                "table {table} has no column `{name}` (expected {wanted}); see `bitcram-sync db init --print`"
            ),
            Some((_, ty)) if !accepted.iter().any(|a| ty.contains(a)) => {
                bail!("table {table} column `{name}` has type {ty}; expected {wanted}")
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_validated_and_quoted() {
        let plain = TableName::parse("raw_item_data").unwrap();
        assert_eq!(plain.quoted(Dialect::MariaDb), "`raw_item_data`");
        assert_eq!(plain.quoted(Dialect::Sqlite), "\"raw_item_data\"");
        let qualified = TableName::parse("app_import.raw_item_data").unwrap();
        assert_eq!(
            qualified.quoted(Dialect::MySql),
            "`app_import`.`raw_item_data`"
        );
        for bad in [
            "",
            "a`b",
            "x'y",
            "a.b.c",
            "a b",
            "t;DROP",
            ".t",
            "t.",
            &"x".repeat(65),
        ] {
            assert!(TableName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
